"""Sealing: identities are padded to size classes, so a ciphertext's length says nothing about the name in it."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from keys import seal
from keys.custody import EscrowPrivateKey, EscrowPublicKey


def _escrow() -> EscrowPrivateKey:
    private = X25519PrivateKey.generate()
    public = EscrowPublicKey.from_raw(private.public_key().public_bytes_raw())
    return EscrowPrivateKey(public.key_id, private)


def test_size_classes() -> None:
    assert [seal.padded_size(n) for n in (0, 1, 512, 513, 1024, 1025, 2048, 2049, 5000)] == [
        512, 512, 512, 1024, 1024, 2048, 2048, 4096, 6144]


def test_short_and_long_identities_seal_to_one_size_and_open_unchanged() -> None:
    escrow = _escrow()
    identities = {
        "t-short": {"family_name": "林", "given_name": "凛"},
        "t-long": {"family_name": "勅使河原", "given_name": "由紀恵", "family_name_kana": "テシガワラ",
                   "given_name_kana": "ユキエ", "birth_date": "2015-04-01",
                   "address": "茨城県つなぐ市大字吾妻字東原一丁目二十三番地の四 つなぐハイツ101号室"},
    }
    batch = seal.seal_batch(escrow.public, "residents", "b1", identities)
    assert len({len(c) for c in batch.records.values()}) == 1
    assert len(batch.records["t-short"]) == 12 + 512 + 16  # nonce, padded body, GCM tag
    for token, identity in identities.items():
        key = seal.derive_record_key(escrow, batch.header, token)
        assert seal.open_record(key, batch.header, batch.records[token]) == identity


def test_an_identity_beyond_the_first_class_moves_to_the_next() -> None:
    escrow = _escrow()
    batch = seal.seal_batch(escrow.public, "residents", "b2", {"t": {"address": "あ" * 300}})  # 900+ bytes of UTF-8
    assert len(batch.records["t"]) == 12 + 1024 + 16
