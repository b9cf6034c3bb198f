"""Encoding: clkhash without its pinned dependencies, bit-for-bit equality with clkhash, missing fields."""

from __future__ import annotations

import hashlib
import json
import struct
from importlib.metadata import version

import clkhash.clk
import clkhash.schema
import numpy as np
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from linkage.encode import Encoder, Present, derive_key
from linkage.record import UNKNOWN_CHAR, NormalisedRecord
from linkage.schema import SchemaError, load_schema, parse_schema

SECRET = b"0123456789abcdef0123456789abcdef"

FULL = NormalisedRecord(
    family_name="佐々木",
    given_name="健太",
    name_script="kanji",
    family_kana="ササキ",
    given_kana="ケンタ",
    birth_year=2015,
    birth_month=4,
    birth_day=1,
    sex="M",
    postal_code="3050031",
    address="茨城県つなぐ市吾妻1-2-3",
)


def _segment_values(rec: NormalisedRecord) -> dict[str, tuple[str, ...]]:
    return {
        "name_family": (rec.family_name,),
        "name_given": (rec.given_name,),
        "name_full": (rec.family_name + rec.given_name,),
        "kana_family": (rec.family_kana,),
        "kana_given": (rec.given_kana,),
        "kana_full": (rec.family_kana + rec.given_kana,),
        "demographic": (f"{rec.birth_year:04d}", f"{rec.birth_month:02d}", f"{rec.birth_day:02d}", rec.sex),
        "address": (rec.postal_code, rec.address),
    }


def test_clkhash_runs_on_current_cryptography_and_matches_an_independent_encoder():
    """clkhash is installed without its dependencies: it must run on the project's cryptography and encode right."""
    major = int(version("cryptography").split(".")[0])
    assert major >= 41, "clkhash must not pull its pinned cryptography<41"
    schema_doc = {
        "version": 3,
        "clkConfig": {"l": 256, "kdf": {"type": "HKDF", "hash": "SHA256", "keySize": 64}},
        "features": [
            {
                "identifier": "name",
                "format": {"type": "string", "encoding": "utf-8"},
                "hashing": {"comparison": {"type": "ngram", "n": 2}, "strategy": {"bitsPerToken": 10}, "hash": {"type": "blakeHash"}},
            }
        ],
    }
    schema = clkhash.schema.from_json_dict(schema_doc)
    [clk] = clkhash.clk.generate_clks([("タナカ",)], schema, SECRET, max_workers=1)

    # The same encoding written from the published construction: HKDF-SHA256
    # feature keys (2 per feature, 64 bytes), keyed BLAKE2b per padded bigram,
    # the digest read as 32 little-endian shorts, each modulo l.
    keys = HKDF(algorithm=hashes.SHA256(), length=128, salt=None, info=None).derive(SECRET)
    key = keys[:64]
    expected = np.zeros(256, dtype=np.uint8)
    word = " タナカ "
    for gram in (word[i : i + 2] for i in range(len(word) - 1)):
        digest = hashlib.blake2b(gram.encode("utf-8"), key=key, salt=b"0").digest()
        for short in struct.unpack("32H", digest)[:10]:
            expected[short % 256] = 1
    assert clk.tobytes() == np.packbits(expected).tobytes()


@pytest.mark.parametrize("segment", [s.name for s in load_schema().segments])
def test_every_segment_equals_clkhash_bit_for_bit(segment):
    schema = load_schema()
    seg = schema.segment(segment)
    encoded = Encoder(SECRET, "k1").encode([FULL])
    seg_secret = derive_key(SECRET, f"segment|{seg.key_group}")
    [reference] = clkhash.clk.generate_clks([_segment_values(FULL)[segment]], seg.clk, seg_secret, max_workers=1)
    assert encoded.bits[0][seg.byte_slice].tobytes() == reference.tobytes()


def test_missing_fields_set_no_bits_and_no_presence_flag():
    partial = NormalisedRecord(family_kana="ササキ", given_kana="ケンタ", birth_year=2015, birth_month=4)
    enc = Encoder(SECRET, "k1").encode([partial])
    schema = load_schema()
    flags = Present(int(enc.present[0]))
    assert Present.KANA_FAMILY in flags and Present.BIRTH_MONTH in flags
    assert Present.NAME_FAMILY not in flags and Present.BIRTH_DAY not in flags and Present.ADDRESS not in flags
    for name in ("name_family", "name_given", "name_full", "address"):
        assert not enc.bits[0][schema.segment(name).byte_slice].any(), name
    # Year-month only: the blocking keys needing a day are absent.
    assert enc.blocks[0].tolist()[0] != 0 and enc.blocks[0].tolist()[1:] == [0, 0, 0]


def test_ngrams_with_an_unknown_character_are_dropped():
    enc = Encoder(SECRET, "k1")
    seg = load_schema().segment("name_family").byte_slice
    known = enc.encode([NormalisedRecord(family_name="高橋")]).bits[0][seg]
    unknown = enc.encode([NormalisedRecord(family_name="高" + UNKNOWN_CHAR)]).bits[0][seg]
    other = enc.encode([NormalisedRecord(family_name="高木")]).bits[0][seg]
    # 高〓 keeps only the bigram " 高", which 高橋 and 高木 both have: it agrees with neither more than the other.
    assert not (unknown & ~known).any()
    assert not (unknown & ~other).any()
    assert unknown.any()


def test_encodings_carry_schema_version_and_key_id_and_differ_by_secret():
    a = Encoder(SECRET, "k1").encode([FULL])
    b = Encoder(b"another secret of thirty-two byt", "k2").encode([FULL])
    assert a.schema_version == "tsunagu-jp/1" and a.key_id == "k1"
    assert a.bits.tobytes() != b.bits.tobytes()


def test_schema_document_is_validated():
    doc = json.loads(json.dumps(load_schema().document))
    doc["segments"][0]["clkhash"]["clkConfig"]["l"] = 100
    with pytest.raises(SchemaError):
        parse_schema(doc)
    with pytest.raises(SchemaError):
        load_schema("tsunagu-jp/99")


# --- tsunagu-jp/2: diffused record-level views (chosen with TSUNAGU_SCHEMA; docs/privacy.md) ---------------

V2 = "tsunagu-jp/2"


def _v2() -> Encoder:
    return Encoder(SECRET, "k1", load_schema(V2))


def _town_records(n: int = 400):
    from linkage.normalise import normalise_record
    from linkage.record import CanonicalRecord
    from synthetic import generate_town

    rows = generate_town(n_children=n, seed=3).sources["residents"]
    return [normalise_record(CanonicalRecord.from_mapping(r)) for r in rows]


def test_the_default_schema_is_v1_and_tsunagu_schema_chooses_v2(monkeypatch: pytest.MonkeyPatch) -> None:
    from linkage.encode import encode_records
    from linkage.record import CanonicalRecord

    record = CanonicalRecord(record_id="R1", family_name="佐藤", given_name="翔", birth_date="2015-04-01")
    monkeypatch.delenv("TSUNAGU_SCHEMA", raising=False)
    assert encode_records([record], SECRET, "k1")[0].schema_version == "tsunagu-jp/1"
    monkeypatch.setenv("TSUNAGU_SCHEMA", V2)
    enc = encode_records([record], SECRET, "k1")[0]
    assert enc.schema_version == V2 and enc.bits.shape[1] == load_schema(V2).total_bytes


def test_diffused_encoding_is_deterministic_under_a_key_and_differs_under_another():
    records = _town_records(50)
    a1 = _v2().encode(records)
    a2 = _v2().encode(records)
    b = Encoder(b"another secret of thirty-two byt", "k2", load_schema(V2)).encode(records)
    schema = load_schema(V2)
    assert a1.bits.shape == (50, schema.total_bytes) and schema.total_bits == 4096 * len(schema.views)
    assert a1.bits.tobytes() == a2.bits.tobytes()
    # Under another key the views are unrelated: about half the bits differ.
    differing = np.bitwise_count(a1.bits ^ b.bits).sum() / a1.bits.size / 8
    assert 0.45 < differing < 0.55


def test_views_hide_the_filter_popcount():
    """Balanced + XOR: a view's popcount is about half its length, whatever the names' lengths."""
    records = _town_records(400)
    enc = _v2().encode(records)
    schema = load_schema(V2)
    for view in schema.views:
        share = np.bitwise_count(enc.bits[:, view.byte_slice]).sum(axis=1) / view.length
        assert (np.abs(share - 0.5) < 0.05).mean() > 0.99, view.name
    # Two records with one identical family name share no more bits than two strangers do.
    same = [i for i, r in enumerate(records) if r.family_name == records[0].family_name][:2]
    assert len(same) == 2
    assert np.bitwise_count(enc.bits[same[0]] ^ enc.bits[same[1]]).sum() / (enc.bits.shape[1] * 8) > 0.4


def test_same_child_is_close_and_strangers_are_far_in_every_view():
    import dataclasses

    from linkage.compare import compare_pairs

    same_child = dataclasses.replace(FULL, address="茨城県つなぐ市吾妻1-2-3-101")
    twin = dataclasses.replace(FULL, given_name="翔", given_kana="ショウ")
    stranger = NormalisedRecord(family_name="山田", given_name="花子", name_script="kanji", family_kana="ヤマダ",
                                given_kana="ハナコ", birth_year=2012, birth_month=9, birth_day=30, sex="F")
    enc = _v2().encode([FULL, same_child, twin, stranger])
    sims = compare_pairs(enc, np.array([0, 0, 0]), enc, np.array([1, 2, 3]))
    fam, giv = sims.values[:, 0], sims.values[:, 1]
    assert fam[0] == 1.0 and giv[0] == 1.0          # a different flat number changes no name
    assert fam[1] == 1.0 and giv[1] < 0.45           # a twin: same family, another given name
    assert giv[2] == 0.0 and fam[2] == 0.0           # a stranger: every field differs


def test_v2_views_are_not_affine_over_gf2():
    """Each output is t1 ⊕ t2 ⊕ t3 ⊕ (b ⊕ β)(c ⊕ γ) ⊕ δ: XORing the views of x ⊕ y, x, y and 0 leaves the product terms.

    Under an XOR (affine) layer that sum is zero for every bit, which is what lets a gateway
    intersect the views' column spans back to each segment's filter bits (bench/attack.py).
    """
    schema = load_schema(V2)
    encoder = _v2()
    rng = np.random.default_rng(5)
    x, y = (np.packbits(rng.random((20, schema.filter_bits)) < 0.3, axis=1) for _ in range(2))
    zero = np.zeros_like(x)
    second = encoder.diffuse(x ^ y) ^ encoder.diffuse(x) ^ encoder.diffuse(y) ^ encoder.diffuse(zero)
    share = np.bitwise_count(second).sum() / second.size / 8
    assert 0.1 < share < 0.4, share
    xor_doc = json.loads(json.dumps(schema.document))
    xor_doc["diffusion"]["function"] = "xor"
    xor = Encoder(SECRET, "k1", parse_schema(xor_doc))
    assert not (xor.diffuse(x ^ y) ^ xor.diffuse(x) ^ xor.diffuse(y) ^ xor.diffuse(zero)).any()


@pytest.mark.parametrize("differing", [2, 12, 48])
def test_v2_view_estimate_gives_back_the_differing_filter_bits(differing: int) -> None:
    """The quadratic layer's q(p) = (1 - (1 - 2p)^(taps-2) (1 - p)²)/2 inverts to the number of differing filter bits, without bias."""
    from linkage.compare import _view_estimates

    schema = load_schema(V2)
    encoder = _v2()
    rng = np.random.default_rng(differing)
    base = rng.random((300, schema.filter_bits)) < 0.3
    other = base.copy()
    for row in other:
        row[rng.choice(schema.filter_bits, differing, replace=False)] ^= True
    a, b = (np.ascontiguousarray(encoder.diffuse(np.packbits(m, axis=1))).view(np.uint64) for m in (base, other))
    rows = np.arange(len(base))
    # Balanced: each differing filter bit differs twice among the view's inputs (bit and complement).
    h, var = _view_estimates(a, b, rows, rows, schema.views[0], schema.taps, 2 * schema.filter_bits, schema.function)
    estimate, sd = h / 2, np.sqrt(var) / 2
    assert abs(estimate.mean() - differing) < 0.25 * np.sqrt(differing) + 0.3
    # The delta-method standard error matches the spread it claims.
    assert 0.7 < estimate.std() / sd.mean() < 1.3


def test_v2_hashes_the_address_core_so_an_abbreviated_address_agrees():
    """/2 cannot compare addresses by containment (the views hide sizes): it hashes district and block numbers."""
    import dataclasses

    from linkage.compare import COMPARISONS, compare_pairs
    from linkage.encode import address_core
    from linkage.normalise import normalise_address

    core = lambda text: address_core(normalise_address(text))  # noqa: E731
    assert core("茨城県つなぐ市東町2丁目18番3号 メゾンさくら108号室") == core("東町2-18-3") == "東町2-18-3"
    assert core("茨城県つなぐ市大字沢辺670番地") == core("沢辺670") == "沢辺670"
    assert core("東町2-18-3") != core("東町2-18-4")
    register = dataclasses.replace(FULL, address=normalise_address("茨城県つなぐ市吾妻1丁目2番3号 コーポ吾妻101号室"))
    school = dataclasses.replace(FULL, address=normalise_address("吾妻1-2-3"))
    elsewhere = dataclasses.replace(FULL, address=normalise_address("茨城県つなぐ市栄町4丁目9番1号"))
    enc = _v2().encode([register, school, elsewhere])
    address = compare_pairs(enc, np.array([0, 0]), enc, np.array([1, 2])).values[:, COMPARISONS.index("address")]
    assert address[0] == 1.0 and address[1] < 0.6


def test_v2_least_squares_recovers_each_segments_differing_bits_from_the_views():
    """The 15 views are equations in the 8 segments: exact view figures give back every segment, never below 0."""
    from linkage.compare import _field_estimates

    schema = load_schema(V2)
    names = [s.name for s in schema.segments]
    incidence = np.array([[0.0 if s in v.omit else 1.0 for s in names] for v in schema.views])
    truth = np.array([[0, 0, 0, 0, 0, 0, 16, 40], [0, 30, 30, 0, 35, 35, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0]], float)
    views = truth @ incidence.T
    x, sd = _field_estimates(views, np.ones_like(views), incidence)
    assert np.allclose(x, truth, atol=1e-3) and (x >= 0).all() and (sd < 5).all()
    # A view figure off by noise never yields a negative segment; saturated views weigh nothing.
    noisy = views + np.array([-3.0, 2.0, 1.0] * 5)[None, :]
    x, _ = _field_estimates(noisy, np.ones_like(noisy), incidence)
    assert (x >= 0).all()
    saturated = np.where(incidence[:, names.index("address")] == 1, np.inf, views)
    x, sd = _field_estimates(saturated, np.where(np.isinf(saturated), np.inf, 1.0), incidence)
    assert (sd[:, names.index("address")] > 25).all()  # the address is not identified: it counts as differing


def test_v2_a_postal_code_alone_agrees_with_the_same_postal_code_and_an_address():
    """/1 compares by containment; /2 takes the part one side lacks off at its typical size first."""
    import dataclasses

    from linkage.compare import COMPARISONS, compare_pairs

    full = dataclasses.replace(FULL, postal_code="3001208", address="東町2-18-3")
    postal_only = dataclasses.replace(FULL, postal_code="3001208", address=None)
    other_postal = dataclasses.replace(FULL, postal_code="3001299", address=None)
    enc = _v2().encode([full, postal_only, other_postal])
    address = compare_pairs(enc, np.array([0, 0]), enc, np.array([1, 2])).values[:, COMPARISONS.index("address")]
    assert address[0] >= 0.9 and address[1] < 0.6
