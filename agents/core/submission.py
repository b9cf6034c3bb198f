"""Submission: the manifest and the persisted sequence number (the signed bytes: ``keys.submission``).

Sequence numbers are per agent and strictly increasing; the gateway refuses
one it has seen (a replay). The counter is written to disk (atomically, and
fsynced) before the submission that uses it, so a crash can leave a gap but
never hand out a number twice.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from keys.documents import write_atomic
from agents.core.config import AgentConfig
from agents.core.package import Spooled
from keys.custody import EscrowPublicKey
from keys.enrolment import AgentKeys

MODE = "snapshot"


class StateError(Exception):
    """The agent's state files are damaged; the message says which and what to do."""


class SequenceCounter:
    """The agent's next sequence number, in ``<home>/state/sequence.json``."""

    def __init__(self, home: Path) -> None:
        self._path = home / "state" / "sequence.json"

    def peek(self) -> int:
        """The number the next submission will get."""
        if not self._path.exists():
            return 1
        try:
            value = json.loads(self._path.read_text(encoding="utf-8"))["next"]
        except (ValueError, KeyError, TypeError):
            raise StateError(f"{self._path} が壊れています。ゲートウェイの管理者に最後に受け付けた連番を確認し、"
                             '{"next": その連番+1} と書いて戻してください。') from None
        if not isinstance(value, int) or value < 1:
            raise StateError(f"{self._path} の連番 {value!r} が不正です。")
        return value

    def at_least(self, value: int) -> None:
        """Make sure the next number is at least ``value`` (the gateway has accepted up to ``value - 1``)."""
        if self.peek() < value:
            write_atomic(self._path, json.dumps({"next": value}).encode("utf-8"))

    def take(self) -> int:
        """Allocate the next number; it is on disk before it is returned."""
        value = self.peek()
        write_atomic(self._path, json.dumps({"next": value + 1}).encode("utf-8"))
        return value


def new_batch_id() -> str:
    """A fresh batch id (random: unique even if the agent's state is restored from a backup)."""
    return "b-" + uuid.uuid4().hex


def snapshot_manifest(
    config: AgentConfig, agent: AgentKeys, escrow: EscrowPublicKey, linkage_key_id: str, spooled: Spooled, sequence: int,
    batch_id: str, links: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest of one source's snapshot (or one part of it) before it is signed (``keys.submission.submission_head``).

    ``links``: previous, instance, instance_label (, moved_from) of the hash chain, and part/parts.
    """
    return {
        "agent_id": agent.agent_id,
        "signing_key_id": agent.public.signing_key_id,
        "municipality": config.agent.municipality,
        "network": config.agent.network,
        "source": spooled.source,
        "schema_version": spooled.schema_version,
        "linkage_key_id": linkage_key_id,
        "escrow_key_id": escrow.key_id,
        "sequence": sequence,
        "batch_id": batch_id,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "mode": MODE,
        "seal_header": spooled.seal_header,
        **(links or {}),
    }
