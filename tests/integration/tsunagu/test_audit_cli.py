"""`tsunagu audit verify-proof` on every conformance vector: exit 0 when valid, 1 with a reason when not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
CONFORMANCE = REPO / ".." / "shared" / "conformance" / "rfc6962" / "testdata"


def test_verify_proof_on_conformance_vectors() -> None:
    assert CONFORMANCE.is_dir(), f"conformance data missing: {CONFORMANCE}"
    cases = sorted(CONFORMANCE.rglob("*.json"))
    assert cases
    # One interpreter for all ~200 cases (the machine is shared), through the real typer app.
    script = (
        "import sys, json\n"
        "from typer.testing import CliRunner\n"
        "from tsunagu.cli import app\n"
        "runner = CliRunner()\n"
        "out = {}\n"
        "for path in sys.argv[1:]:\n"
        "    r = runner.invoke(app, ['audit', 'verify-proof', path])\n"
        "    out[path] = [r.exit_code, r.output]\n"
        "print(json.dumps(out))\n"
    )
    result = subprocess.run([sys.executable, "-c", script, *map(str, cases)], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    outcomes = json.loads(result.stdout)
    for path in cases:
        code, output = outcomes[str(path)]
        want_err = json.loads(path.read_text())["wantErr"]
        assert code == (1 if want_err else 0), f"{path}: {code} {output}"
        assert ("無効" in output) == want_err


def test_verify_proof_subprocess_reports_reason(tmp_path: Path) -> None:
    case = json.loads((CONFORMANCE / "inclusion" / "1" / "modified-proof[0]-bit-@3.json").read_text())
    bad = tmp_path / "proof.json"
    bad.write_text(json.dumps(case))
    r = subprocess.run([str(REPO / ".venv" / "bin" / "tsunagu"), "audit", "verify-proof", str(bad)], capture_output=True, text=True)
    assert r.returncode == 1 and "根ハッシュ" in r.stderr
    bad.write_text("{not json")
    r = subprocess.run([str(REPO / ".venv" / "bin" / "tsunagu"), "audit", "verify-proof", str(bad)], capture_output=True, text=True)
    assert r.returncode == 1 and "JSON ではありません" in r.stderr
