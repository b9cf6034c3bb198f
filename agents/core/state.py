"""The agent's state against the gateway's: which copy of the agent this is, its hash chain, and reconciling the two.

The gateway is the authority on what it has accepted from an agent. Before a
run sends anything, the agent asks it (``POST /api/v1/submissions/state``,
signed with the agent's key) and compares the answer with its own state:

* the gateway's last accepted submission is the agent's chain head, or the one
  its waiting outbox continues from: in step. A source whose current snapshot
  at the gateway is not the one the agent last delivered is snapshotted again.
* it is not, but the gateway's last submission came from this same copy of the
  agent (this machine and folder): the agent's ``state/`` was restored from a
  backup or lost, or the gateway's database was. The agent takes the gateway's
  head and sequence, sets aside what its outbox held (``stale/``) and takes a
  new snapshot of every source, so nothing is lost.
* it came from another copy (a clone of the agent's folder on another machine
  or in another folder): a fork. Nothing is sent; the message says which copy
  the gateway followed. ``tsunagu agent resync`` (after the other copy is
  stopped) makes this copy the one the gateway follows.

A copy is named by :func:`instance`: a hash of the machine's id and the
agent's folder, so a backup restored in place is the same copy and a clone
elsewhere is not.
"""

from __future__ import annotations

import hashlib
import json
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keys.documents import write_atomic

_MACHINE_ID_FILES = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))


class ForkError(Exception):
    """Another copy of this agent delivers to the gateway; the message says which one the gateway follows and what to do."""


@dataclass(frozen=True, slots=True)
class Instance:
    """This copy of the agent: ``id`` goes into every submission, ``label`` into messages."""

    id: str
    label: str


def instance(home: Path) -> Instance:
    """This machine and folder as the copy of the agent they hold."""
    machine = ""
    for path in _MACHINE_ID_FILES:
        try:
            machine = path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if machine:
            break
    if not machine:
        machine = f"{socket.gethostname()}|{uuid.getnode():012x}"  # Windows and containers without a machine id
    folder = str(home.resolve())
    return Instance(hashlib.sha256(f"{machine}|{folder}".encode("utf-8")).hexdigest()[:32], f"{socket.gethostname()}:{folder}"[:200])


class Chain:
    """The agent's chain head (``state/chain.json``): the last submission it made, which the next one names."""

    def __init__(self, home: Path) -> None:
        self._path = home / "state" / "chain.json"

    def read(self) -> dict[str, Any]:
        """``{"sequence", "manifest_sha256", "moved_from"}``; ``manifest_sha256`` is "" before the first."""
        if not self._path.exists():
            return {"sequence": 0, "manifest_sha256": "", "moved_from": ""}
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
            return {"sequence": int(data["sequence"]), "manifest_sha256": str(data["manifest_sha256"]),
                    "moved_from": str(data.get("moved_from", ""))}
        except (ValueError, KeyError, TypeError):
            from agents.core.submission import StateError

            raise StateError(f"{self._path} が壊れています。削除してから tsunagu agent resync を実行してください"
                             "（ゲートウェイの記録から作り直します）。") from None

    @property
    def exists(self) -> bool:
        """Whether the agent has made a chained submission (or taken the gateway's head)."""
        return self._path.exists()

    def write(self, sequence: int, manifest_sha256: str, moved_from: str = "") -> None:
        """Move the head (before the submission that has it is in the outbox)."""
        write_atomic(self._path, json.dumps({"sequence": sequence, "manifest_sha256": manifest_sha256,
                                             "moved_from": moved_from}).encode("utf-8"))


@dataclass(slots=True)
class Reconciled:
    """What reconciling did: ``adopted`` (took the gateway's state), sources to snapshot again, a message for staff."""

    adopted: bool
    resend: list[str]
    message: str


def reconcile(home: Path, me: Instance, state: dict[str, Any], outbox: Any, counter: Any, prints: Any, *,
              moved: bool = False) -> Reconciled:
    """Bring the agent's state in line with the gateway's answer ``state`` (see the module docstring).

    ``moved``: the operator says this copy replaces the one the gateway followed (``tsunagu agent resync``).
    Raises :class:`ForkError` when another copy delivers and ``moved`` is not given.
    """
    chain = Chain(home)
    local = chain.read()
    head = state.get("head") or None
    gateway_hash = head["manifest_sha256"] if head else ""
    counter.at_least(int(state.get("sequence") or 0) + 1)
    waiting = [p for p in outbox.pending() if p.meta.get("kind", "submission") == "submission" and "manifest_sha256" in p.meta]
    known = {local["manifest_sha256"], *(p.meta["manifest_sha256"] for p in waiting)}
    if waiting:
        known.add(str(waiting[0].meta.get("previous", "")))
    other = head is not None and head.get("instance") and head["instance"] != me.id and local.get("moved_from") != head["instance"]
    if other and not moved:
        raise ForkError(
            f"このエージェントは別の場所でも動いています。ゲートウェイが最後に受け付けたのは {head.get('instance_label') or '別の場所'} からの"
            f"連番 {head['sequence']} です（ここは {me.label}）。同じエージェントを 2 か所で動かすと互いの記録を上書きするため、"
            "何も送りませんでした。ゲートウェイが受け付けている側を残し、こちらを止めてください。こちらを残す（機械を移した）場合は、"
            "もう一方を止めてから、こちらで tsunagu agent resync を実行してください。")
    in_step = gateway_hash in known and not (moved and other)
    if in_step:
        pending_sources = {p.source for p in outbox.pending()}
        resend = []
        for source, current in (state.get("sources") or {}).items():
            mine = prints.data.get(source)
            if mine is None or source in pending_sources:
                continue
            if current is None or (mine.get("content_sha256") and current.get("content_sha256") != mine["content_sha256"]):
                prints.forget(source)
                resend.append(source)
        message = (f"ゲートウェイにある {'、'.join(resend)} の提出が、このエージェントが最後に送ったものと違うため、送り直します。"
                   if resend else "")
        return Reconciled(False, resend, message)
    for item in waiting:
        outbox.set_aside(item)
    chain.write(int(head["sequence"]) if head else int(state.get("sequence") or 0), gateway_hash,
                moved_from=head["instance"] if (moved and head and head.get("instance")) else "")
    resend = sorted(prints.data)
    prints.forget_all()
    why = ("この場所のエージェントを、ゲートウェイが受け付けている側として引き継ぎました" if moved else
           "エージェントの状態（state/）がゲートウェイの記録と合わないため（バックアップからの復元など）、ゲートウェイの記録に合わせました")
    return Reconciled(True, resend, f"{why}。すべてのデータ元の最新の提出を作り直して送ります"
                                   f"（送信待ちだった {len(waiting)} 件は stale/ に移しました）。")
