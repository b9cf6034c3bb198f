"""`make demo`: a generated town, as each department holds it, linked with `tsunagu link`.

Leaves everything under `.demo/` so anyone can look at what each party holds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DEMO = Path(".demo")


def _tsunagu(*args: str) -> None:
    cmd = [sys.executable, "-m", "tsunagu.cli", *args]
    print("$ tsunagu " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True)


def main() -> None:
    """Generate a town, link its four departments and print the quality table."""
    from linkage.synthetic import generate_town

    town_dir = DEMO / "town"
    town_dir.mkdir(parents=True, exist_ok=True)
    children = int(os.environ.get("TSUNAGU_DEMO_CHILDREN", "10000"))
    print(f"== 合成自治体（子ども {children:,} 人）の各部署のファイルを作成します: {town_dir}", flush=True)
    town = generate_town(n_children=children, seed=2026)
    town.write(town_dir, encodings={"school": "cp932"})
    secret = DEMO / "linkage-secret.bin"
    if not secret.exists():
        secret.write_bytes(os.urandom(32))
        secret.chmod(0o600)
    files = [str(town_dir / f"{s}.csv") for s in ("residents", "school", "maternal", "npo")]
    print("== 4 部署のファイルを符号化して名寄せします（氏名はこのプロセスの外に出ません）", flush=True)
    _tsunagu("link", *files, "--out", str(DEMO / "clusters.csv"), "--secret-file", str(secret), "--truth", str(town_dir / "truth.csv"))
    print(f"\n結果: {DEMO / 'clusters.csv'}（source,record_id,cluster_id）")


if __name__ == "__main__":
    main()
