"""Agent throughput: ``python -m bench.agents [--records 50000]`` prints records per second, end to end.

Generates a 住民記録 export (CP932, with 外字) of a synthetic town, enrols a
throwaway agent with real keys, and times one ``tsunagu agent run --bundle-out`` as the
agent does it, step by step (read, validate, normalise, encode, seal, sign;
then the outbox and the bundle file). The target is 20,000 records/s from
reading to signing, on 2 cores. It also prints the peak memory (resident set,
``ru_maxrss``) of the agent's process and of its largest worker: each run is a
fresh process, and the synthetic file is made in another one, so the memory
of making it is not counted (on Linux ``ru_maxrss`` survives into a process
started by a larger one; the agent's own peak is read from VmHWM). The
agent streams the file (``agents.core.package``), so its peak memory stays
bounded as ``--records`` grows (the issue's target: 1,000,000 rows in ≤ 1 GiB);
the snapshot goes as several signed parts past ``records_per_part``. On a
shared machine the wall-clock figures fall with the load; the CPU-time line
says what the work itself costs.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from agents.core.config import AgentConfig, load_config
from agents.core.pipeline import run
from synthetic.samples import RESIDENT_COLUMNS, resident_rows, write_csv
from keys import custody, enrolment
from keys.keyring import Keyring, init_municipality
from keys.passphrase import KdfParams
from synthetic import generate_town

PRESET = Path(__file__).resolve().parents[1] / "agents" / "mynumber_network"
_KDF = KdfParams(memory_kib=1024, iterations=1, lanes=1)  # throwaway keys; the cost of unlocking is not what is measured
_PASSPHRASE = "bench-passphrase-only"


def _setup(root: Path, records: int, seed: int) -> None:
    admin, home = root / "admin", root / "agent"
    init_municipality(admin, "000000", [custody.Custodian("a", "bench-custodian-1"), custody.Custodian("b", "bench-custodian-2")],
                      2, _PASSPHRASE, _KDF)
    ring = Keyring(admin)
    public = enrolment.init_agent(home, "bench-1", _PASSPHRASE, _KDF)
    wrapped = enrolment.AgentRegistry(admin).enrol(enrolment.read_agent_public(public), ring.linkage_secret(_PASSPHRASE),
                                                   ring.federation_signer(_PASSPHRASE), root / "enrol")
    enrolment.install_linkage_secret(home, wrapped, _PASSPHRASE, params=_KDF)
    shutil.copy(admin / "keys" / "escrow-public.json", home / "escrow-public.json")
    town = generate_town(n_children=records, seed=seed)
    gaiji: dict[str, str] = {}
    cities = ["011002", "131016", "271004"]
    write_csv(home / "residents.csv", RESIDENT_COLUMNS, resident_rows(town, cities), "cp932", gaiji=gaiji)
    (home / "gaiji.toml").write_text("[gaiji]\n" + "".join(f'"U+{ord(c):04X}" = "{ch}"\n' for ch, c in gaiji.items()), encoding="utf-8")
    (home / "agent.toml").write_text(
        '[agent]\nid = "bench-1"\nmunicipality = "000000"\nnetwork = "mynumber"\nescrow_public_key = "escrow-public.json"\n'
        f'policy = "{PRESET / "policy.toml"}"\ngaiji = "gaiji.toml"\n\n'
        f'[[sources]]\nmapping = "{PRESET / "mappings" / "residents.toml"}"\nfile = "residents.csv"\n', encoding="utf-8")


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _peak_rss_kib() -> int:
    """This process's peak resident set in KiB: Linux's VmHWM (the high-water mark of this program's own memory),
    else ``ru_maxrss``, which on Linux also keeps the peak of the process that started this one."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _once(config: AgentConfig, bundle: Path, force: bool) -> None:
    before = set(bundle.glob("*.jsonl")) if bundle.is_dir() else set()
    cpu_before = _cpu_seconds()
    start = time.perf_counter()
    result = run(config, _PASSPHRASE, bundle_out=bundle, force=force)
    wall = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu_before
    source, t = result.sources[0], result.timings
    pipeline = t["read"] + t["encode"] + t["sign"]
    made = sorted(set(bundle.glob("*.jsonl")) - before)
    size = sum(p.stat().st_size for p in made)
    print(f"読み込み→署名（read, validate, normalise, encode, seal, sign）: {pipeline:.2f} 秒 → {source.encoded / pipeline:,.0f} 件/秒")
    print(f"実行全体（鍵の解錠・送信待ちへの保存・持ち出しファイルを含む）: {wall:.2f} 秒 → {source.encoded / wall:,.0f} 件/秒"
          f"（提出 {len(made)} 部分、計 {size / 1e6:.1f} MB、最大の部分 {max(p.stat().st_size for p in made) / 1e6:.1f} MB、"
          f"送らない行 {source.problems}）")
    print(f"CPU 時間 {cpu:.2f} 秒（本体とワーカーの合計）: 2 コアを占有できれば {source.encoded / (cpu / 2):,.0f} 件/秒に相当。"
          "他の処理と CPU を分け合うと上の実測値はこれより下がります。")
    own, workers = _peak_rss_kib(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"最大メモリ使用量（常駐）: エージェント本体 {own / 1024:,.0f} MiB、最大のワーカー {workers / 1024:,.0f} MiB"
          f"（合計 {(own + 2 * workers) / 1024:,.0f} MiB 以下。ワーカーの値は fork 時に本体と共有するページを含みます）")
    for step, label in (("read", "見出しの確認・入力の指紋"), ("encode", "読み込み・検証・正規化・符号化・封緘・直列化（ストリーム）"),
                        ("sign", "部分への振り分け・並べ替え・署名"), ("outbox", "送信待ちへの保存"), ("deliver", "持ち出しファイル")):
        print(f"  {t[step]:6.2f} 秒  {label}")


def _once_in_process(config_path: str, bundle: str, force: bool) -> None:
    _once(load_config(Path(config_path)), Path(bundle), force)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.agents", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1, help="runs (each a new snapshot of the same file; on a shared machine take the best)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tsunagu-agent-bench-") as tmp:
        root = Path(tmp)
        # The synthetic town is made in a process of its own, so its memory cannot show in the agent's figures.
        maker = multiprocessing.get_context("spawn").Process(target=_setup, args=(root, args.records, args.seed))
        maker.start()
        maker.join()
        if maker.exitcode:
            raise SystemExit(f"making the synthetic file failed (exit {maker.exitcode})")
        config_path = root / "agent" / "agent.toml"
        config = load_config(config_path)
        size = (config.home / "residents.csv").stat().st_size
        print(f"入力: 住民記録 {args.records:,} 件（CP932、{size / 1e6:.1f} MB）、CPU {os.cpu_count()} コア")
        for number in range(1, args.repeat + 1):
            if args.repeat > 1:
                print(f"--- {number} 回目")
            # Each run in a fresh process: the peak memory printed is the agent's, not the file generator's.
            runner = multiprocessing.get_context("spawn").Process(target=_once_in_process,
                                                                  args=(str(config_path), str(root / "bundle"), number > 1))
            runner.start()
            runner.join()
            if runner.exitcode:
                raise SystemExit(f"the agent run failed (exit {runner.exitcode})")


if __name__ == "__main__":
    main()
