"""The RFC 9162 verifiers against transparency-dev/merkle's published vectors, as they are."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from transparency import rfc9162 as merkle

CONFORMANCE = Path(__file__).resolve().parents[3] / ".." / "shared" / "conformance" / "rfc6962" / "testdata"


def _cases(kind: str) -> list[Path]:
    # A missing folder must fail the suite, not silently skip it.
    assert CONFORMANCE.is_dir(), f"conformance data missing: {CONFORMANCE} (clone shared/ beside the repo)"
    cases = sorted((CONFORMANCE / kind).rglob("*.json"))
    assert cases, f"no {kind} vectors under {CONFORMANCE}"
    return cases


def _b64(values: list[str] | None) -> list[bytes]:
    return [base64.b64decode(v) for v in values or []]


def test_conformance_folder_is_complete() -> None:
    assert len(_cases("inclusion")) + len(_cases("consistency")) >= 190


def _run(kind: str, case: dict) -> None:
    if kind == "inclusion":
        merkle.verify_inclusion(
            base64.b64decode(case["leafHash"] or ""), case["leafIdx"], case["treeSize"], _b64(case["proof"]),
            base64.b64decode(case["root"] or ""),
        )
    else:
        merkle.verify_consistency(
            case["size1"], case["size2"], base64.b64decode(case["root1"] or ""), base64.b64decode(case["root2"] or ""),
            _b64(case["proof"]),
        )


@pytest.mark.parametrize("kind", ["inclusion", "consistency"])
def test_every_vector(kind: str) -> None:
    failures = []
    for path in _cases(kind):
        case = json.loads(path.read_text())
        try:
            _run(kind, case)
            error = None
        except merkle.ProofError as exc:
            error = exc
        if bool(error) != case["wantErr"]:
            failures.append(f"{path.relative_to(CONFORMANCE)}: wantErr={case['wantErr']} got {error!r}")
    assert not failures, "\n".join(failures)
