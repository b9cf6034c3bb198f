"""The agent's run, in pipeline order: read → validate → normalise → encode → seal → package → deliver; and its dry run (check).

A run takes one snapshot of every configured source whose input changed since
the last snapshot (file, mapping, policy, 外字 table or keys), puts it in the
outbox, then delivers everything waiting there. One bad source does not stop
the others. The result is written to ``<home>/status.json`` for monitoring.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx

from keys.documents import write_atomic
from agents.core.config import AgentConfig, ConfigError, SourceMapping, load_mapping
from agents.core import federation
from agents.core.deliver import GatewayRefused, Outbox, Outcome, Pusher, push_pending, write_bundles
from agents.core.normalise import Refused, normalise
from agents.core.package import RecordSpool, Row, SourceInput, Spooled, attribute_decisions, package_to_spool, parts, shuffled_lines
from agents.core.read import GaijiTable, SourceError, Table, open_table
from agents.core.state import Chain, ForkError, Instance, instance, reconcile
from agents.core.submission import SequenceCounter, StateError, new_batch_id, snapshot_manifest
from agents.core.validate import ReportWriter, RowValidator
from keys.custody import EscrowPublicKey, read_escrow_public
from keys.enrolment import AgentKeys, load_agent_keys, load_linkage_secret
from keys.errors import KeysError
from keys.submission import manifest_sha256, submission_head
from policy import Policy, default_policy, load_policy


class RunError(Exception):
    """The run cannot start (another run holds the lock, no delivery target); nothing was sent."""


@dataclass(slots=True)
class SourceResult:
    """What became of one source in a run or check."""

    source: str
    file: str
    status: str  # sent | unchanged | failed | checked
    rows: int = 0
    encoded: int = 0
    problems: int = 0
    sequence: int | None = None
    report: str | None = None
    attributes_sent: list[str] = field(default_factory=list)
    attributes_refused: dict[str, str] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)
    unmapped_gaiji: int = 0
    message: str = ""
    sample_problems: list[str] = field(default_factory=list)


@dataclass(slots=True)
class RunResult:
    """The whole run: per source, per delivery, and what is left in the outbox."""

    started_at: str
    finished_at: str = ""
    sources: list[SourceResult] = field(default_factory=list)
    deliveries: list[Outcome] = field(default_factory=list)
    outbox: int = 0
    #: seconds spent per step: read (read + validate), encode (normalise, encode, seal), sign, outbox, deliver
    timings: dict[str, float] = field(default_factory=dict)
    #: what reconciling with the gateway did, and other things staff should know about this run
    notes: list[str] = field(default_factory=list)

    def timed(self, step: str, started: float) -> None:
        """Add the time since ``started`` (a ``time.perf_counter()`` value) to ``step``."""
        self.timings[step] = round(self.timings.get(step, 0.0) + time.perf_counter() - started, 3)

    @property
    def ok(self) -> bool:
        """No source failed and nothing is left undelivered or was refused."""
        return (all(s.status != "failed" for s in self.sources)
                and all(d.status in ("delivered", "bundled") for d in self.deliveries) and self.outbox == 0)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def load_policy_for(config: AgentConfig) -> Policy:
    """The agent's field policy: its own file, or the policy shipped with tsunagu."""
    return load_policy(config.agent.policy) if config.agent.policy else default_policy()


def load_gaiji(config: AgentConfig) -> GaijiTable:
    """The municipality's 外字 table (empty when none is configured)."""
    return GaijiTable.load(config.agent.gaiji) if config.agent.gaiji else GaijiTable()


def load_escrow(config: AgentConfig) -> EscrowPublicKey:
    """The escrow public key identities are sealed to (given by the key administrator)."""
    path = config.agent.escrow_public_key
    if not path.is_file():
        raise ConfigError(f"エスクロー公開鍵 {path} がありません。鍵管理者から escrow-public.json を受け取り、agent.toml の"
                          " escrow_public_key の場所に置いてください。")
    return read_escrow_public(path)


@contextmanager
def run_lock(home: Path) -> Iterator[None]:
    """Hold the agent's run lock (a scheduled run and a manual one never interleave)."""
    path = home / "state" / "run.lock"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(path, "a") as handle:
        try:
            _lock(handle)
        except OSError:
            raise RunError("このエージェントは別の実行の途中です。終わってからもう一度実行してください。") from None
        try:
            yield
        finally:
            _unlock(handle)


if os.name == "nt":  # Windows servers: msvcrt's byte-range lock on the lock file's first byte
    import msvcrt

    def _lock(handle: Any) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)

    def _unlock(handle: Any) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _lock(handle: Any) -> None:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(handle: Any) -> None:
        fcntl.flock(handle, fcntl.LOCK_UN)


class _Fingerprints:
    """The input fingerprint of each source's last snapshot (``state/sources.json``)."""

    def __init__(self, home: Path) -> None:
        self._path = home / "state" / "sources.json"
        self.data: dict[str, dict] = json.loads(self._path.read_text(encoding="utf-8")) if self._path.exists() else {}

    def unchanged(self, source: str, fingerprint: str) -> bool:
        return self.data.get(source, {}).get("fingerprint") == fingerprint

    def set(self, source: str, fingerprint: str, sequence: int, content_sha256: str = "") -> None:
        self.data[source] = {"fingerprint": fingerprint, "sequence": sequence, "content_sha256": content_sha256}
        self._save()

    def forget(self, source: str) -> None:
        """Snapshot ``source`` again in this run even if its input did not change."""
        if self.data.pop(source, None) is not None:
            self._save()

    def forget_all(self) -> None:
        """Snapshot every source again (after taking the gateway's state)."""
        self.data = {}
        self._save()

    def forget_refused(self, outcomes: list[Outcome]) -> None:
        for o in outcomes:
            if o.status in ("refused", "stale") and self.data.get(o.source, {}).get("sequence") == o.sequence:
                del self.data[o.source]
        self._save()

    def _save(self) -> None:
        write_atomic(self._path, json.dumps(self.data, ensure_ascii=False).encode("utf-8"))


def _fingerprint(file: Path, mapping: SourceMapping, allowed: tuple[str, ...], gaiji: GaijiTable, key_ids: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    digest.update(json.dumps([mapping.model_dump(mode="json"), allowed, sorted(gaiji.mapping.items()), key_ids],
                             ensure_ascii=False).encode("utf-8"))
    return digest.hexdigest()


def _report(config: AgentConfig, stamp: str, source: str) -> ReportWriter:
    return ReportWriter(config.report_dir / f"{stamp}-{source}.csv")


def _samples(report: ReportWriter) -> list[str]:
    return [f"{p.row} 行目 {p.column or '(行全体)'}: {p.reason}" for p in report.samples]


def _prepare(config: AgentConfig, gaiji: GaijiTable, policy: Policy, index: int,
             work_dir: Path | None = None) -> tuple[SourceMapping, Table, RowValidator, SourceResult]:
    """Open one source: its mapping checked against the policy, the file's header read, its rows not yet.

    ``work_dir``: where validation keeps the record ids seen (``agents.core.validate.SeenIds``; a run's spool).
    """
    entry = config.sources[index]
    mapping = load_mapping(entry.mapping)
    if policy.network_of(mapping.source) != config.agent.network:
        raise ConfigError(f"データ元「{mapping.source}」は、ポリシー（{policy.origin}）でこのネットワーク（{config.agent.network}）から"
                          "送ることを認められていません。ポリシーに加えるか、対応表の source を確かめてください。")
    table = open_table(entry.file, mapping, gaiji)
    validator = RowValidator(table, mapping, work_dir)
    allowed, refused = attribute_decisions(policy, config.agent.network, mapping)
    result = SourceResult(mapping.source, str(entry.file), "checked", attributes_sent=list(allowed),
                          attributes_refused=refused, ignored_columns=validator.ignored_columns)
    return mapping, table, validator, result


def _failed(config: AgentConfig, index: int, exc: Exception) -> SourceResult:
    entry = config.sources[index]
    return SourceResult(entry.mapping.stem, str(entry.file), "failed", message=str(exc))


def _close(source: SourceResult, table: Table, report: ReportWriter) -> None:
    report.close()
    source.unmapped_gaiji = table.unmapped_gaiji
    source.problems, source.report, source.sample_problems = report.not_sent, str(report.path), _samples(report)


def check(config: AgentConfig) -> RunResult:
    """Dry run: read, validate and normalise every source and say what would be sent or refused; sends nothing, needs no key."""
    result = RunResult(_now())
    policy, gaiji = load_policy_for(config), load_gaiji(config)
    load_escrow(config)
    stamp = "check-" + datetime.now().strftime("%Y%m%d-%H%M%S")
    for index in range(len(config.sources)):
        try:
            mapping, table, validator, source = _prepare(config, gaiji, policy, index)
        except (SourceError, ConfigError) as exc:
            result.sources.append(_failed(config, index, exc))
            continue
        report = _report(config, stamp, mapping.source)
        try:
            for number, record, problem in validator.rows():
                source.rows += 1
                if problem is not None:
                    report.add(problem)
                if record is None:
                    continue
                normalised = normalise(number, record)
                if isinstance(normalised, Refused):
                    report.add(normalised.problem(str(config.sources[index].file), mapping))
                    continue
                source.encoded += 1
        except SourceError as exc:
            report.close()
            result.sources.append(_failed(config, index, exc))
            continue
        _close(source, table, report)
        if source.encoded == 0:
            source.status, source.message = "failed", "送れる行が 1 行もありません。"
        result.sources.append(source)
    result.outbox = Outbox(config.home).size()
    result.finished_at = _now()
    return result


def run(
    config: AgentConfig,
    passphrase: str,
    *,
    bundle_out: Path | None = None,
    force: bool = False,
    transport: httpx.BaseTransport | None = None,
    progress: Callable[[int], Callable[[int], None]] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> RunResult:
    """One run: snapshot changed sources into the outbox, then push (or bundle) everything waiting.

    ``progress(total)`` returns the callback that encoding calls with the number of rows done.
    """
    if bundle_out is None and config.gateway is None:
        raise RunError("送り先がありません。agent.toml に [gateway] を書くか、--bundle-out で持ち出し用フォルダを指定してください。")
    home = config.home
    if not (home / "keys" / "agent-identity.json").is_file():
        raise RunError(f"{home} にはエージェントの鍵がありません。先に tsunagu keys agent-init --home {home} で鍵を作り、"
                       "管理者の登録を受けて tsunagu keys agent-install で連携鍵を導入してください。")
    with run_lock(home):
        try:
            return _run_locked(config, passphrase, bundle_out, force, transport, progress, sleep)
        except Exception as exc:
            # Whatever stopped the run, monitoring must not keep reading the last run's "ok".
            write_failure_status(home, str(exc) if isinstance(exc, (RunError, ConfigError, SourceError, KeysError, StateError))
                                 else f"予期しないエラーで実行が止まりました（{type(exc).__name__}: {exc}）。")
            raise


def _run_locked(config: AgentConfig, passphrase: str, bundle_out: Path | None, force: bool,
                transport: httpx.BaseTransport | None, progress: Callable[[int], Callable[[int], None]] | None,
                sleep: Callable[[float], None] | None) -> RunResult:
    home = config.home
    result = RunResult(_now())
    agent = load_agent_keys(home, passphrase)
    linkage = load_linkage_secret(home, passphrase)
    escrow = load_escrow(config)
    policy, gaiji = load_policy_for(config), load_gaiji(config)
    outbox, counter, prints = Outbox(home), SequenceCounter(home), _Fingerprints(home)
    me, chain = instance(home), Chain(home)
    pusher = None
    kept_apart: list[RecordSpool] = []
    if bundle_out is None:
        assert config.gateway is not None
        pusher = Pusher(config.gateway, transport=transport, **({"sleep": sleep} if sleep else {}))
    try:
        if pusher is not None:
            _reconcile(home, me, pusher, agent, outbox, counter, prints, result)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        snapshotted: list[SourceInput] = []
        _clear_spool(home)
        _clear_transferred(home)
        for index in range(len(config.sources)):
            started = time.perf_counter()
            try:
                mapping, table, validator, source = _prepare(config, gaiji, policy, index, _spool_dir(home))
                fingerprint = _fingerprint(table.path, mapping, tuple(source.attributes_sent), gaiji,
                                           (linkage.key_id, escrow.key_id, agent.agent_id))
            except (SourceError, ConfigError) as exc:
                result.sources.append(_failed(config, index, exc))
                continue
            result.timed("read", started)
            if not force and prints.unchanged(mapping.source, fingerprint):
                source.status, source.message = "unchanged", "前回の提出から入力が変わっていないため、新しい提出は作りません。"
                result.sources.append(source)
                continue
            item = SourceInput(mapping, str(table.path), new_batch_id())
            if federation.tracks_moves(mapping):
                item.transferred = RecordSpool(_transferred_dir(home) / f"{item.batch_id}.sqlite")
                kept_apart.append(item.transferred)
            report = _report(config, stamp, mapping.source)
            started = time.perf_counter()
            try:
                spooled = package_to_spool(item, _counted(validator.rows(), source), linkage, escrow, policy, config.agent.network,
                                          _spool_dir(home) / f"{item.batch_id}.lines", report.add,
                                          keep=federation.is_transferred if federation.tracks_moves(mapping) else None,
                                          progress=progress(table.size_hint) if progress else None)
            except SourceError as exc:
                # Found part-way through the file (an undecodable byte, …): nothing of it is sent.
                report.close()
                _clear_spool(home)
                result.sources.append(_failed(config, index, exc))
                continue
            result.timed("encode", started)
            _close(source, table, report)
            source.encoded = spooled.records
            if not spooled.records:
                source.status, source.message = "failed", "送れる行が 1 行もありません（空の提出は前回の記録をすべて消すため送りません）。"
            else:
                sequence = _enqueue_snapshot(config, agent, escrow, linkage.key_id, spooled, item.batch_id, fingerprint,
                                             outbox, counter, chain, me, prints, result)
                source.status, source.sequence = "sent", sequence
                snapshotted.append(item)
            _clear_spool(home)
            result.sources.append(source)
        # Transferred children's federation encodings follow their source's snapshot, through the same outbox.
        federation.enqueue(config, agent, passphrase, linkage, snapshotted, outbox, counter)
        started = time.perf_counter()
        if pusher is None:
            assert bundle_out is not None
            result.deliveries = write_bundles(outbox, bundle_out, agent.agent_id)
        else:
            result.deliveries = push_pending(outbox, pusher)
        result.timed("deliver", started)
    finally:
        for spool in kept_apart:
            spool.close()
        _clear_transferred(home)
        if pusher is not None:
            pusher.close()
    if any(d.status == "stale" for d in result.deliveries):
        # The gateway's head is the refused submission's previous one: take it from the gateway next run.
        result.notes.append("拒否された提出の後に作った提出は送らず stale/ に移しました。次回の実行で作り直して送ります。")
    prints.forget_refused(result.deliveries)
    result.outbox = outbox.size()
    result.finished_at = _now()
    write_status(home, result)
    return result


def _spool_dir(home: Path) -> Path:
    return home / "state" / "spool"


def _transferred_dir(home: Path) -> Path:
    return home / "state" / "transferred"


def _clear_transferred(home: Path) -> None:
    """Remove the transferred children kept for federation (``RecordSpool`` files) by an earlier run or this one."""
    folder = _transferred_dir(home)
    if folder.is_dir():
        shutil.rmtree(folder)


def _clear_spool(home: Path) -> None:
    """Remove what an earlier run (or this one) left in the spool: encoded lines not yet in the outbox."""
    folder = _spool_dir(home)
    if folder.is_dir():
        shutil.rmtree(folder)


def _counted(rows: Iterator[Row], source: SourceResult) -> Iterator[Row]:
    for row in rows:
        source.rows += 1
        yield row


def _enqueue_snapshot(config: AgentConfig, agent: AgentKeys, escrow: EscrowPublicKey, linkage_key_id: str, spooled: Spooled,
                      batch_id: str, fingerprint: str, outbox: Outbox, counter: SequenceCounter, chain: Chain, me: Instance,
                      prints: _Fingerprints, result: RunResult) -> int:
    """Sign one source's snapshot into the outbox, as several parts past ``records_per_part``; returns the last sequence.

    One part is in memory at a time. The records' order within and across parts is random (``agents.core.package.parts``).
    """
    started = time.perf_counter()
    files = parts(spooled, config.agent.records_per_part, _spool_dir(config.home) / f"{batch_id}.parts")
    result.timed("sign", started)
    digest = content = ""
    sequence = 0
    for number, path in enumerate(files, start=1):
        started = time.perf_counter()
        lines = shuffled_lines(path)
        body = hashlib.sha256()
        for line in lines:
            body.update(line)
            body.update(b"\n")
        sequence = counter.take()
        head = chain.read()
        links: dict[str, Any] = {"previous": head["manifest_sha256"], "instance": me.id, "instance_label": me.label,
                                 **({"moved_from": head["moved_from"]} if head["moved_from"] else {})}
        if len(files) > 1:
            links.update(part=number, parts=len(files))
        manifest = snapshot_manifest(config, agent, escrow, linkage_key_id, spooled, sequence, batch_id, links)
        signed = submission_head(manifest, len(lines), body.hexdigest(), agent.signing_key)
        manifest = json.loads(signed)["manifest"]
        digest, content = manifest_sha256(manifest), manifest["content_sha256"]
        result.timed("sign", started)
        # The head moves first: a crash before the outbox write is healed by reconciling with the gateway,
        # whereas two waiting submissions naming the same previous one would be a fork.
        chain.write(sequence, digest, head["moved_from"])
        started = time.perf_counter()
        outbox.put_lines(sequence, signed, lines, {"source": spooled.source, "batch_id": batch_id, "records": len(lines),
                                                   "fingerprint": fingerprint, "created_at": _now(), "kind": "submission",
                                                   "manifest_sha256": digest, "previous": head["manifest_sha256"],
                                                   "content_sha256": content,
                                                   **({"part": number, "parts": len(files)} if len(files) > 1 else {})})
        del lines
        path.unlink()
        result.timed("outbox", started)
    prints.set(spooled.source, fingerprint, sequence, content)
    return sequence


def _reconcile(home: Path, me: Instance, pusher: Pusher, agent: AgentKeys, outbox: Outbox, counter: SequenceCounter,
               prints: _Fingerprints, result: RunResult, moved: bool = False) -> None:
    """Ask the gateway what it accepted from this agent and bring the local state in line (agents.core.state)."""
    try:
        state = pusher.state(agent.agent_id, agent.signing_key)
    except GatewayRefused as exc:
        if moved:
            raise RunError(str(exc)) from None
        # The submissions will be refused for the same reason, and kept in refused/ with it.
        result.notes.append(str(exc))
        return
    if state is None:
        if moved:
            raise RunError("ゲートウェイに接続できないため、ゲートウェイの記録と突き合わせられません。接続できるときにもう一度実行してください。")
        result.notes.append("ゲートウェイに接続できないため、状態の突き合わせをせずに実行しました（提出は送信待ちに残ります）。")
        return
    try:
        done = reconcile(home, me, state, outbox, counter, prints, moved=moved)
    except ForkError as exc:
        raise RunError(str(exc)) from None
    if done.message:
        result.notes.append(done.message)


def resync(config: AgentConfig, passphrase: str, *, transport: httpx.BaseTransport | None = None) -> list[str]:
    """Make this copy of the agent the one the gateway follows (after moving it, or after the other copy was stopped).

    Takes the gateway's record as this agent's state; the next run snapshots every source again.
    """
    if config.gateway is None:
        raise RunError("agent.toml に [gateway] がないため、ゲートウェイの記録と突き合わせられません。")
    home = config.home
    with run_lock(home):
        agent = load_agent_keys(home, passphrase)
        result = RunResult(_now())
        with Pusher(config.gateway, transport=transport) as pusher:
            _reconcile(home, instance(home), pusher, agent, Outbox(home), SequenceCounter(home), _Fingerprints(home), result,
                       moved=True)
        return result.notes


def write_status(home: Path, result: RunResult) -> None:
    """Write ``<home>/status.json``: last run, result, counts and outbox size (for monitoring)."""
    status = {
        "last_run": result.started_at,
        "finished_at": result.finished_at,
        "result": "ok" if result.ok else "failed",
        "outbox": result.outbox,
        "timings": result.timings,
        "notes": result.notes,
        "sources": [asdict(s) for s in result.sources],
        "deliveries": [asdict(d) for d in result.deliveries],
    }
    write_atomic(home / "status.json", json.dumps(status, ensure_ascii=False, indent=1).encode("utf-8"), mode=0o644)


def write_failure_status(home: Path, message: str) -> None:
    """Record a run that could not start (wrong passphrase, lock held, bad configuration)."""
    status = {"last_run": _now(), "finished_at": _now(), "result": "failed", "outbox": Outbox(home).size(), "message": message,
              "sources": [], "deliveries": []}
    write_atomic(home / "status.json", json.dumps(status, ensure_ascii=False, indent=1).encode("utf-8"), mode=0o644)
