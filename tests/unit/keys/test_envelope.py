"""The envelope: every message between parties has one signed, versioned first line, described by a checked-in JSON Schema."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import jsonschema
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keys import envelope
from keys.documents import canonical_json
from keys.federation import FederationRecord, read_federation_submission, write_federation_submission
from keys.filing import FilingError, RequestFiling, open_filing
from keys.filing import seal as seal_filing
from keys.return_list import ReturnListError, read_return_list, write_return_list
from keys.submission import (
    MalformedSubmissionError,
    SubmissionVersionError,
    SubmittedRecord,
    read_state_request,
    read_submission,
    write_state_request,
    write_submission,
)

SCHEMA = json.loads((Path(envelope.__file__).parent / "envelope.schema.json").read_text(encoding="utf-8"))
KEY = Ed25519PrivateKey.generate()

SUBMISSION = {"agent_id": "edu-1", "signing_key_id": "k1", "municipality": "082201", "network": "edu", "source": "school",
              "schema_version": "v1", "linkage_key_id": "lk", "escrow_key_id": "ek", "sequence": 3, "batch_id": "b-1",
              "created_at": "2026-12-02T00:00:00+00:00", "mode": "snapshot", "seal_header": {"batch_id": "b-1"}}


FILING = RequestFiling(
    request_id="reid-1", requester="tanaka", purpose="child_protection", legal_basis="69-2-2", case_ref="要対協-2026-015",
    justification="訪問前に世帯を確認する。", max_records=5, approvals_required=2,
    records=[{"batch_header": {"batch_id": "b-1"}, "token": "tok-1", "ciphertext": "AAAA"}],
    gateway_evidence={"entry": {}, "leaf_index": 0, "inclusion_proof": [], "checkpoint": "c"})


def _messages() -> dict[str, bytes]:
    record = SubmittedRecord("tok-1", b"\x01" * 8, 3, [5, 0], b"sealed", {"grade": "3"})
    federation = FederationRecord("tok-1", b"\x02" * 8, 1, [7], "082201", "")
    return {
        "submission": write_submission(SUBMISSION, [record], KEY),
        "federation-submission": write_federation_submission(
            {k: SUBMISSION[k] for k in ("agent_id", "signing_key_id", "municipality", "source", "schema_version", "sequence",
                                        "created_at")} | {"federation_key_id": "fk"}, [federation], KEY),
        "agent-state-request": write_state_request("edu-1", KEY, "2026-12-02T00:00:00+00:00"),
        "return-list": write_return_list({"list_id": "l-1", "municipality": "082201", "source": "school", "action": "home_visit",
                                          "purpose": "early_support", "created_at": "2026-12-02T00:00:00+00:00"}, ["tok-1"], KEY),
        "reidentification-filing": json.dumps(seal_filing(FILING, KEY), ensure_ascii=False).encode("utf-8"),
        **{kind: envelope.seal(kind, {"from": "082201", "to": "082210", "purpose": "early_support", "federation_key_id": "fk",
                                      "nonce": "ab" * 16, "issued_at": "2026-12-02T00:00:00+00:00",
                                      "expires_at": "2026-12-02T00:05:00+00:00", "body": {}}, (), KEY)
           for kind in envelope.KINDS if kind.startswith("federation.")},
    }


def test_the_schema_and_the_kinds_say_the_same() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    manifest = SCHEMA["properties"]["manifest"]["properties"]
    assert manifest["format"]["const"] == envelope.FORMAT and manifest["version"]["const"] == envelope.VERSION
    assert manifest["kind"]["enum"] == list(envelope.KINDS)
    required = {rule["if"]["properties"]["manifest"]["properties"]["kind"]["const"]: rule["then"]["properties"]["manifest"]["required"]
                for rule in SCHEMA["allOf"]}
    for kind in envelope.KINDS.values():
        assert set(required[kind.name]) == {"format", "version", "kind", *kind.fields,
                                            *(envelope.BODY_FIELDS if kind.body else ())}, kind.name


def test_every_message_is_an_envelope_the_schema_accepts_and_the_one_verifier_checks() -> None:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    messages = _messages()
    assert set(messages) == set(envelope.KINDS)  # every kind has a writer
    for kind, data in messages.items():
        first = json.loads(data.partition(b"\n")[0])
        validator.validate(first)
        env = envelope.open_envelope(data)
        assert env.kind == kind
        env.verify(KEY.public_key())
        with pytest.raises(envelope.EnvelopeSignatureError, match="署名"):
            env.verify(Ed25519PrivateKey.generate().public_key())
    # a manifest missing a field of its kind fails the schema, and the reader names the field
    first = json.loads(messages["submission"].partition(b"\n")[0])
    del first["manifest"]["source"]
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(first)
    with pytest.raises(envelope.EnvelopeError, match="source"):
        envelope.read_head(json.dumps(first).encode())


def test_the_signature_binds_the_kind_and_is_no_bare_signature_of_the_manifest() -> None:
    data = _messages()["federation.query"]
    top = json.loads(data)
    # the same manifest relabelled as another kind: its signature no longer verifies
    relabelled = {**top["manifest"], "kind": "federation.answer"}
    with pytest.raises(envelope.EnvelopeSignatureError):
        envelope.verify(relabelled, base64.b64decode(top["signature"]), KEY.public_key())
    # a signature over the bare canonical manifest (what version 1 signed) is not an envelope signature
    bare = KEY.sign(canonical_json(top["manifest"]))
    with pytest.raises(envelope.EnvelopeSignatureError):
        envelope.verify(top["manifest"], bare, KEY.public_key())


def _version_one_submission() -> bytes:
    """A submission as agents before the envelope wrote it (format tsunagu-submission, version 1)."""
    body = b'{"t":"tok-1"}\n'
    manifest = {**SUBMISSION, "format": "tsunagu-submission", "version": 1, "record_count": 1, "content_sha256": "0" * 64}
    signature = base64.b64encode(KEY.sign(canonical_json(manifest))).decode()
    return json.dumps({"manifest": manifest, "signature": signature}).encode() + b"\n" + body


def test_old_and_unknown_versions_are_refused_saying_what_to_do() -> None:
    with pytest.raises(SubmissionVersionError, match="古い形式.*エージェントを最新版に更新") as old:
        read_submission(_version_one_submission())
    assert "送り直して" in str(old.value)
    newer = json.loads(_messages()["submission"].partition(b"\n")[0])
    newer["manifest"]["version"] = 3
    with pytest.raises(SubmissionVersionError, match="版 3 には対応していません.*受信側を更新"):
        read_submission(json.dumps(newer).encode() + b"\n")
    old_state = json.dumps({"request": {"purpose": "tsunagu-agent-state", "agent_id": "edu-1", "at": "x"}, "signature": ""})
    with pytest.raises(SubmissionVersionError, match="状態の問い合わせは古い形式"):
        read_state_request(old_state.encode())
    old_message = json.dumps({"message": {"kind": "query"}, "signature": ""}).encode()
    with pytest.raises(envelope.EnvelopeVersionError, match="ゲートウェイを最新版に更新"):
        envelope.open_envelope(old_message)
    old_list = json.loads(_messages()["return-list"].partition(b"\n")[0])
    old_list["manifest"]["format"] = "tsunagu-return-list"
    with pytest.raises(ReturnListError, match="古い形式"):
        read_return_list(json.dumps(old_list).encode() + b"\n", KEY.public_key())


def test_kinds_are_not_interchangeable() -> None:
    messages = _messages()
    with pytest.raises(MalformedSubmissionError, match="受け付けません"):
        read_submission(messages["federation-submission"])
    with pytest.raises(Exception, match="受け付けません"):
        read_federation_submission(messages["submission"])
    with pytest.raises(ReturnListError):
        read_return_list(messages["submission"], KEY.public_key())
    # a one-line kind with lines after it is refused, and a body kind's records are bound by the hash
    with pytest.raises(envelope.EnvelopeError, match="1 行だけ"):
        envelope.open_envelope(messages["agent-state-request"] + b"\n{}\n")
    tampered = messages["return-list"].replace(b"tok-1", b"tok-2")
    with pytest.raises(ReturnListError, match="ハッシュ"):
        read_return_list(tampered, KEY.public_key())


def test_a_filing_opens_only_as_the_gateway_signed_it() -> None:
    sealed = seal_filing(FILING, KEY)
    assert open_filing(sealed, KEY.public_key()) == FILING
    assert open_filing(json.dumps(sealed).encode(), KEY.public_key()) == FILING  # the downloaded file, as bytes
    edited = {"manifest": {**sealed["manifest"], "max_records": 50}, "signature": sealed["signature"]}
    with pytest.raises(envelope.EnvelopeSignatureError, match="再識別の申請の署名をゲートウェイの"):
        open_filing(edited, KEY.public_key())
    with pytest.raises(envelope.EnvelopeSignatureError):
        open_filing(sealed, Ed25519PrivateKey.generate().public_key())
    # the bare filing (before the envelope) and another kind of message are not filings
    with pytest.raises(envelope.EnvelopeError, match="マニフェスト"):
        open_filing(FILING.model_dump(mode="json"), KEY.public_key())
    with pytest.raises(envelope.EnvelopeError, match="受け付けません"):
        open_filing(_messages()["federation.query"], KEY.public_key())
    # signed, but not a filing's fields: the field is named
    bad = json.loads(envelope.head("reidentification-filing", {**FILING.model_dump(mode="json"), "max_records": "many"}, KEY))
    with pytest.raises(FilingError, match="max_records"):
        open_filing(bad, KEY.public_key())


def test_the_filing_kind_requires_exactly_the_filings_fields() -> None:
    # The kind's fields are derived from the model; the JSON Schema is written by hand, so it must say the model's fields.
    assert envelope.KINDS["reidentification-filing"].fields == tuple(RequestFiling.model_fields)
    required = next(rule["then"]["properties"]["manifest"]["required"] for rule in SCHEMA["allOf"]
                    if rule["if"]["properties"]["manifest"]["properties"]["kind"]["const"] == "reidentification-filing")
    assert set(required) == {"format", "version", "kind", *RequestFiling.model_fields}
