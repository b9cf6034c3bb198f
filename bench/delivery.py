"""Delivery integrity: ``python -m bench.delivery [--database both]`` runs each case of issue #15 for real and counts the records.

Each case is what a city's operators do: ``state/`` restored from a backup
and run again; an agent's home cloned and both copies run; a second agent
registered for a source; the gateway killed right after it accepted a
submission; a large file delivered in parts, interrupted; federation
encodings made while the gateway is down. Every case uses real agents
(``agents.core.pipeline.run``), real files (``synthetic.samples``) and the
real gateway (``tsunagu gateway serve``, uvicorn, on loopback) on SQLite, or
with ``--database postgresql`` (or ``both``) on a throwaway PostgreSQL cluster
(``tests.support.postgres``). It prints per case the records in the file, the records
the gateway holds for that source afterwards, the records lost or
overwritten (the file's records the gateway does not hold, plus records it
holds that are not in the file), and what the operator saw. The issue's
target is 0 lost or overwritten in every case (3,425 in five cases before).

The setup reuses the test suite's helpers (``tests.agents``, ``tests.gateway``,
``tests.federation``), so this runs from a source checkout.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:  # `tsunagu bench delivery` from another folder: the test helpers are in the checkout
    sys.path.insert(0, str(_REPO))

from sqlalchemy import select  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from agents.core.config import load_config  # noqa: E402
from agents.core.pipeline import RunError, RunResult, run  # noqa: E402
from agents.core.token import RecordTokeniser  # noqa: E402
from gateway import models  # noqa: E402
from gateway.core import Gateway  # noqa: E402
from gateway.link import current_run_id  # noqa: E402
from keys import custody, enrolment  # noqa: E402
from keys import federation as fed  # noqa: E402
from keys.keyring import Keyring, init_municipality  # noqa: E402
from synthetic.samples import write_samples  # noqa: E402
from tests.support import server as _server  # noqa: E402
from tests.support.agents import AGENT_PASSPHRASE, KDF, OPERATOR, PRESETS, Municipality, enrol_agent, write_agent_toml  # noqa: E402
from tests.integration.agents.test_end_to_end import municipal_policy  # noqa: E402
from tests.integration.gateway.federation import test_federation_keys as federation_helpers  # noqa: E402
from tests.support.federation import Town  # noqa: E402
from tests.support.gateway import PASSWORD, TSUNAGU, Home, Server, cli, wait_for_run  # noqa: E402
from tsunagu.cli import app  # noqa: E402

SCHOOL_MAPPING = PRESETS / "edu_network" / "mappings" / "school.toml"
EDU_POLICY = PRESETS / "edu_network" / "policy.toml"
#: Generous: a busy 2-core machine can take seconds to answer.
_GATEWAY_SETTINGS = "attempts = 3\nbackoff_seconds = 0.5\ntimeout_seconds = 180\n"


@dataclass
class Outcome:
    """One case: the file's records, what the gateway holds afterwards, and what the operator saw."""

    case: str
    in_file: int
    held: int
    lost: int
    saw: list[str] = field(default_factory=list)


def _short(text: str, limit: int = 90) -> str:
    # The ports and temporary folders change from run to run: the table says what the operator read, not where.
    text = re.sub(r"/tmp/tsunagu-bench-delivery-[^/\s]+", "…", re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1", " ".join(text.split())))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _saw(result: RunResult | Exception) -> str:
    """What ``tsunagu agent run`` showed, in one line: 正常 or 失敗, its notes, and each delivery trouble once (with a count)."""
    if isinstance(result, Exception):
        return "停止: " + _short(str(result))
    said = [_short(n, 100) for n in result.notes]
    troubles = Counter(_short(d.message, 80) for d in result.deliveries if d.status in ("refused", "pending", "stale"))
    said += [f"{message} ×{count}" if count > 1 else message for message, count in troubles.items()]
    return ("正常" if result.ok else "失敗") + (f"（{'; '.join(said)}）" if said else "")


def _run(home: Path) -> RunResult | RunError:
    try:
        return run(load_config(home / "agent.toml"), AGENT_PASSPHRASE)
    except RunError as exc:
        return exc


def _municipality(root: Path) -> Municipality:
    home = root / "admin"
    init_municipality(home, "000000", [custody.Custodian("佐藤", "custodian-pass-1"), custody.Custodian("鈴木", "custodian-pass-2")],
                      2, OPERATOR, KDF)
    return Municipality(home, Keyring(home))


class _Gateway:
    """A gateway home set up through the real CLI and served by `tsunagu gateway serve` (plain HTTP on loopback)."""

    def __init__(self, root: Path, key_id: str) -> None:
        self.home = Home(root / "gateway", {k: os.environ[k] for k in ("TSUNAGU_DATABASE_URL",) if k in os.environ})
        self.port = _server.free_port()
        self.process = None
        cli(["gateway", "init", "--home", str(self.home.path), "--linkage-key-id", key_id,
             "--policy", str(municipal_policy(root / "policy.toml"))], env=self.home.env)
        self.home.cli("user", "add", "--username", "admin", "--role", "admin", "--password-stdin", input=PASSWORD + "\n")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, crash_at: str = "") -> None:
        env = {**os.environ, **self.home.env, "TSUNAGU_LINK_DEBOUNCE_SECONDS": "0.2"}
        if crash_at:
            env["TSUNAGU_TEST_CRASH_AT"] = crash_at
        self.process, _ = _server.start([TSUNAGU, "gateway", "serve", "--home", str(self.home.path)], "/api/v1/health",
                                        self.home.path / "logs" / "serve.out", env, port=self.port)

    def server(self) -> Server:
        return Server(self.url, self.home, self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            _server.stop(self.process, timeout=600)
        self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None

    def register(self, public: Path, network: str, source: str) -> tuple[int, str]:
        """`tsunagu gateway agent register`: its exit code and output (a refusal is an answer here, not an error)."""
        result = CliRunner().invoke(app, ["gateway", "agent", "register", "--home", str(self.home.path), "--agent-public", str(public),
                                          "--network", network, "--source", source], env=self.home.env)
        return result.exit_code, result.output + (str(result.exception) if result.exit_code and result.exception else "")

    def _open(self) -> Gateway:
        url = self.home.env.get("TSUNAGU_DATABASE_URL")
        return Gateway.open(self.home.path, **({"database_url": url} if url else {}))

    def tokens(self, source: str) -> set[str]:
        """The tokens of the records the gateway holds for ``source``."""
        gw = self._open()
        try:
            with gw.engine.connect() as conn:
                return set(conn.execute(select(models.records.c.token).where(models.records.c.source == source)).scalars())
        finally:
            gw.close()

    def linked(self, source: str) -> set[str]:
        """The tokens of ``source`` that the current linkage run assigned to a person."""
        gw = self._open()
        try:
            with gw.engine.connect() as conn:
                a = models.assignments
                return set(conn.execute(select(a.c.token).where(a.c.run_id == current_run_id(conn), a.c.source == source)).scalars())
        finally:
            gw.close()


def _school_tokens(agent_home: Path, school: Path) -> set[str]:
    tokeniser = RecordTokeniser(enrolment.load_linkage_secret(agent_home, AGENT_PASSPHRASE).secret, "school")
    with school.open(encoding="cp932", newline="") as fh:
        return {tokeniser.token(row["学籍番号"].strip()) for row in csv.DictReader(fh)}


def _append(path: Path, first: int, count: int) -> None:
    lines = "".join(f"S{9000000 + i},小1,1,山田　{'一二三四五六七八九十'[i % 10]},やまだ　はじめ,H30.4.{1 + i % 28},男,,,0,0,0,受診\r\n"
                    for i in range(first, first + count))
    path.write_bytes(path.read_bytes() + lines.encode("cp932"))


def _keep_rows(path: Path, rows: int) -> None:
    """Cut a department's CSV (CRLF lines) to its header and its first ``rows`` rows: an older, smaller export."""
    path.write_bytes(b"\r\n".join(path.read_bytes().split(b"\r\n")[:rows + 1]) + b"\r\n")


def _school(root: Path, children: int, name: str = "town") -> Path:
    write_samples(root / name, children=children, seed=11)
    return root / name / "edu_network" / "school.csv"


def _edu_agent(municipality: Municipality, gateway: _Gateway, root: Path, school: Path, agent_id: str = "edu-1",
               register: bool = True, per_part: int = 0) -> tuple[Path, Path]:
    """An enrolled edu agent for ``school`` (registered with the gateway unless ``register=False``): its home and public key."""
    home = root / agent_id
    home.mkdir(parents=True)
    public = enrol_agent(municipality, home, agent_id)
    if register:
        code, out = gateway.register(public, "edu", "school")
        assert code == 0, out
    _toml(home, agent_id, gateway, school, per_part)
    return home, public


def _toml(home: Path, agent_id: str, gateway: _Gateway, school: Path, per_part: int = 0) -> None:
    toml = write_agent_toml(home, agent_id, "edu", [(SCHOOL_MAPPING, school)], gateway=gateway.url, policy=EDU_POLICY,
                            extra_gateway=_GATEWAY_SETTINGS)
    if per_part:
        toml.write_text(toml.read_text(encoding="utf-8").replace("[agent]\n", f"[agent]\nrecords_per_part = {per_part}\n"),
                        encoding="utf-8")


@contextmanager
def _served(root: Path, crash_at: str = "") -> Iterator[tuple[Municipality, _Gateway]]:
    """A case's municipality and its gateway, served (crashing at ``crash_at`` if given) and stopped after the case, whatever happens."""
    municipality = _municipality(root)
    gateway = _Gateway(root, municipality.ring.current_linkage_key_id)
    gateway.start(crash_at)
    try:
        yield municipality, gateway
    finally:
        gateway.stop()


def _outcome(case: str, expected: set[str], held: set[str], saw: list[str]) -> Outcome:
    return Outcome(case, len(expected), len(held), len(expected - held) + len(held - expected), saw)


def case_restored(root: Path, children: int) -> Outcome:
    """``state/`` restored from a backup after two more snapshots, then run; restored again and run with the file unchanged."""
    with _served(root) as (municipality, gateway):
        school = _school(root, children)
        home, _public = _edu_agent(municipality, gateway, root, school)
        saw = [_saw(_run(home))]
        backup = root / "backup-state"
        shutil.copytree(home / "state", backup)
        for first in (0, 10):
            _append(school, first, 10)
            _run(home)
        for first in (20, None):  # restored, the file grown by 10 rows; restored again, the file unchanged
            shutil.rmtree(home / "state")
            shutil.copytree(backup, home / "state")
            if first is not None:
                _append(school, first, 10)
            saw.append(_saw(_run(home)))
        return _outcome("state/ をバックアップから戻して再実行", _school_tokens(home, school), gateway.tokens("school"), saw[1:])


def case_cloned(root: Path, children: int) -> Outcome:
    """The agent's home copied to a second machine (with an older, 50-row export) and both copies run, twice each."""
    with _served(root) as (municipality, gateway):
        school = _school(root, children)
        home, _public = _edu_agent(municipality, gateway, root, school)
        _run(home)
        clone = root / "other-machine" / "edu-1"
        shutil.copytree(home, clone)
        small = _school(root, children, "older-export")
        _keep_rows(small, 50)
        _toml(clone, "edu-1", gateway, small)
        saw = []
        for first in (0, 5):
            _append(school, first, 5)
            _run(home)
            saw.append(_saw(_run(clone)))
        return _outcome("エージェントの配置フォルダを複製し両方で 2 回ずつ実行", _school_tokens(home, school), gateway.tokens("school"), saw[:1])


def case_second_agent(root: Path, children: int) -> Outcome:
    """A second agent registered for the source another agent delivers, then run with its own (smaller) file."""
    with _served(root) as (municipality, gateway):
        school = _school(root, children)
        home, _public = _edu_agent(municipality, gateway, root, school)
        _run(home)
        other_file = _school(root, children, "other-export")
        _keep_rows(other_file, 100)
        second, second_public = _edu_agent(municipality, gateway, root, other_file, "edu-2", register=False)
        code, out = gateway.register(second_public, "edu", "school")
        saw = [("登録は拒否: " if code else "登録された: ") + _short(out.strip().splitlines()[-1] if out.strip() else "")]
        saw.append(_saw(_run(second)))
        return _outcome("同じデータ元に 2 つ目のエージェントを登録して実行", _school_tokens(home, school), gateway.tokens("school"), saw)


def case_killed(root: Path, children: int) -> Outcome:
    """The gateway killed right after it committed a submission (before answering), restarted; the records must be linked."""
    with _served(root, crash_at="ingest.after_commit") as (municipality, gateway):
        school = _school(root, children)
        home, _public = _edu_agent(municipality, gateway, root, school)
        saw = [_saw(_run(home))]
        gateway.kill()
        gateway.start()
        saw.append(_saw(_run(home)))
        wait_for_run(gateway.server())
        linked = gateway.linked("school")
        return _outcome("受付直後にゲートウェイを強制終了（名寄せ済みの件数）", _school_tokens(home, school), linked, saw)


def case_parts(root: Path, children: int) -> Outcome:
    """A snapshot in parts interrupted by a gateway killed after its first part, then resumed: old records until the last part."""
    with _served(root) as (municipality, gateway):
        school = _school(root, children)
        home, _public = _edu_agent(municipality, gateway, root, school, per_part=max(children // 10, 20))
        _run(home)
        before = _school_tokens(home, school)
        gateway.stop()
        _append(school, 0, children // 5)
        gateway.start(crash_at="ingest.after_commit")
        saw = [_saw(_run(home))]
        gateway.kill()
        mid = gateway.tokens("school")
        mid_wrong = len(before - mid) + len(mid - before)
        saw.append(f"中断時にゲートウェイが持つ記録: 前の提出 {len(before):,} 件のうち {len(before & mid):,} 件（食い違い {mid_wrong} 件）")
        gateway.start()
        saw.append(_saw(_run(home)))
        outcome = _outcome("大きなファイルを分割提出、途中でゲートウェイを強制終了して再開", _school_tokens(home, school),
                           gateway.tokens("school"), saw)
        outcome.lost += mid_wrong
        return outcome


def case_federation(root: Path, children: int) -> Outcome:
    """Federation encodings of transferred children made while the gateway is down, delivered once it is back."""
    pref = root / "pref"
    made = fed.init_coordinator(pref, "ibaraki-2026", federation_helpers.COORDINATOR, KDF)
    member = federation_helpers._municipality(root, "082201")
    wrapped = fed.issue(pref, federation_helpers.COORDINATOR, fed.member_identity(member, OPERATOR, KDF), root / "out")
    world = {"pref": pref, "made": made, "member": member, "wrapped": wrapped, "root": root}
    samples = write_samples(root / "town", children=children, seed=23)
    town = Town("082201", root / "gateway", env={k: os.environ[k] for k in ("TSUNAGU_DATABASE_URL",) if k in os.environ})
    agent_home, public, ring = federation_helpers._federation_agent(world, town.url)
    toml = agent_home / "agent.toml"
    toml.write_text(toml.read_text(encoding="utf-8")
                    .replace(str(federation_helpers.PRESET / "samples" / "residents.csv"), str(samples["residents"]))
                    .replace(str(federation_helpers.PRESET / "samples" / "gaiji.toml"), str(samples["gaiji"])), encoding="utf-8")
    federation_helpers._gateway(town.home, public, ring, world)
    expected = federation_helpers._moves(samples["residents"], RecordTokeniser(
        enrolment.load_linkage_secret(agent_home, federation_helpers.AGENT).secret, "residents"))
    saw = []
    for up in (False, True):
        if up:
            town.start()
        try:
            result = run(load_config(toml), federation_helpers.AGENT)
            saw.append(_saw(result))
        finally:
            if up:
                town.stop()
    gw = Gateway.open(town.home, **({"database_url": town.env["TSUNAGU_DATABASE_URL"]} if town.env else {}))
    try:
        with gw.engine.connect() as conn:
            f = models.federation_records
            held = {(r.token, r.moved_in_from or "", r.moved_out_to or "") for r in conn.execute(
                select(f.c.token, f.c.moved_in_from, f.c.moved_out_to).where(f.c.source == "residents"))}
    finally:
        gw.close()
    return Outcome("ゲートウェイ停止中に連携用の提出（転入・転出の子ども）", len(expected), len(held),
                   len(expected - held) + len(held - expected), saw)


CASES: list[Callable[[Path, int], Outcome]] = [case_restored, case_cloned, case_second_agent, case_killed, case_parts,
                                               case_federation]


def table(database: str, outcomes: list[Outcome]) -> list[str]:
    """The Markdown table of one database's cases."""
    lines = [f"### {database}", "", "| ケース | ファイルの件数 | ゲートウェイが持つ件数 | 失われた・上書きされた件数 | 運用者に見えたもの |",
             "|---|---:|---:|---:|---|"]
    for o in outcomes:
        lines.append(f"| {o.case} | {o.in_file:,} | {o.held:,} | {o.lost:,} | {' / '.join(o.saw).replace('|', '｜')} |")
    lines.append(f"| **合計** | {sum(o.in_file for o in outcomes):,} | {sum(o.held for o in outcomes):,} | "
                 f"**{sum(o.lost for o in outcomes):,}** | |")
    return lines


@contextmanager
def _database(url: object | None, name: str) -> Iterator[None]:
    """Point the gateway at a fresh PostgreSQL database ``name`` on ``url``'s server (or at SQLite when None)."""
    if url is None:
        yield
        return
    from tests.support.postgres import create_database

    os.environ["TSUNAGU_DATABASE_URL"] = create_database(url, name).render_as_string(hide_password=False)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        os.environ.pop("TSUNAGU_DATABASE_URL", None)


def run_cases(database: str, url: object | None, children: int, chosen: list[Callable[[Path, int], Outcome]]) -> list[Outcome]:
    """Run ``chosen`` cases, each in a fresh folder and database; print each as it ends."""
    outcomes = []
    for number, case in enumerate(chosen):
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="tsunagu-bench-delivery-") as tmp, _database(url, f"bench_{number}"):
            outcome = case(Path(tmp), children)
        print(f"[{database}] {outcome.case}: file {outcome.in_file}, held {outcome.held}, lost or overwritten {outcome.lost} "
              f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
        outcomes.append(outcome)
    return outcomes


def main(argv: list[str] | None = None) -> int:
    """Run the cases on the chosen databases and print the tables; exit 1 if any record was lost or overwritten."""
    parser = argparse.ArgumentParser(prog="python -m bench.delivery", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--children", type=int, default=300, help="children of the synthetic town (the files' size)")
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="sqlite",
                        help="the gateway's database: SQLite, a throwaway PostgreSQL cluster (tests.support.postgres), or both")
    parser.add_argument("--case", action="append", choices=[c.__name__.removeprefix("case_") for c in CASES],
                        help="run only this case (repeatable)")
    args = parser.parse_args(argv)
    chosen = [c for c in CASES if not args.case or c.__name__.removeprefix("case_") in args.case]
    os.environ.pop("TSUNAGU_DATABASE_URL", None)
    os.environ.pop("TSUNAGU_HOME", None)
    outcomes: list[Outcome] = []
    lines: list[str] = []
    if args.database in ("sqlite", "both"):
        outcomes += run_cases("SQLite", None, args.children, chosen)
        lines += table("SQLite", outcomes)
    if args.database in ("postgresql", "both"):
        from tests.support.postgres import PostgresUnavailable, cluster

        try:
            with cluster() as url:
                on_postgres = run_cases("PostgreSQL", url, args.children, chosen)
            outcomes += on_postgres
            lines += ["", *table("PostgreSQL", on_postgres)]
        except PostgresUnavailable as exc:
            lines += ["", f"PostgreSQL は測っていません: {exc}"]
    else:
        lines += ["", "PostgreSQL は測っていません（--database postgresql または both で測ります）。"]
    print("\n".join(lines))
    return 1 if any(o.lost for o in outcomes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
