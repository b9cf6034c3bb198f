"""Durable storage of the audit log through SQLAlchemy 2 (SQLite with WAL by default; PostgreSQL in production).

The log's formats and proofs are the pure library's (:mod:`keys.audit`,
:mod:`transparency.rfc9162`, :mod:`transparency.tlog_checkpoint`); this store, the services' base,
keeps them in a database (engines: :mod:`service.db`).

:meth:`AuditStore.append` commits the entry, the Merkle nodes it completes and
its signed checkpoint in one row, in one transaction, before it returns, so an
action is recorded before it takes effect.

Layout: row ``idx`` of ``audit_entries`` carries, besides the entry and the
checkpoint signed right after it, the hashes of every perfect subtree that
*ends* at that entry, level 0 (its leaf hash) upwards, concatenated. Node
``(level, index)`` of the tree therefore lives in row
``(index + 1) * 2**level - 1`` at byte ``32 * level``; any root, inclusion
proof or consistency proof is O(log n) nodes read with one query (see
:mod:`transparency.rfc9162`).

Concurrency: every append first increments the single ``audit_head`` row.
That takes SQLite's write lock, or the row lock in PostgreSQL, until commit,
so appenders — threads or processes — queue there and each gets the next
index; the primary key on ``idx`` backs this up. Within one process the
right edge of the tree (the frontier) is kept in memory under a lock, so an
append reads nothing; when the head shows another process appended since, the
frontier is reloaded inside the locked transaction.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from itertools import islice
from typing import Any, Iterator

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from transparency import tlog_checkpoint as _cp
from transparency import rfc9162 as merkle
from keys.documents import b64e, canonical_json
from keys.audit import AuditEntry
from keys.errors import AuditStoreError
from keys.keyring import Keyring
from service.db import sqlite_engine

_HASH = merkle.HASH_SIZE
#: how often a first open of a new SQLite log is tried when another opener holds the lock
_SQLITE_CREATE_TRIES = 40
# PostgreSQL advisory lock held while a standalone log is migrated (any constant
# unique to this schema: "tsunagua" in ASCII, for tsunagu audit).
_PG_CREATE_LOCK = 0x7473756E61677561

#: The log's tables. They are created by Alembic only: in the gateway's and the escrow's own
#: migrations (:func:`service.schema.create_service_tables`), and for a standalone log (the key
#: administrator's) by :func:`open_log` through ``service/audit_migrations``.
metadata = MetaData()
_head = Table("audit_head", metadata, Column("id", Integer, primary_key=True), Column("size", BigInteger, nullable=False))
_entries = Table(
    "audit_entries",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("body", Text, nullable=False),
    Column("subtrees", LargeBinary, nullable=False),
    Column("checkpoint", Text, nullable=False),
)
# Witnesses' cosignature lines (transparency.tlog_witness) on the checkpoint of a tree size, one row per witness and size.
_cosignatures = Table(
    "audit_cosignatures",
    metadata,
    Column("witness", Text, primary_key=True),
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("line", Text, nullable=False),
)

# Built once: the hot path then skips statement construction and hits the
# compiled cache (and the driver's own prepared-statement cache) every time.
_BUMP_HEAD = update(_head).where(_head.c.id == 1).values(size=_head.c.size + 1).returning(_head.c.size)
_INSERT_ENTRY = insert(_entries).values(
    idx=bindparam("idx"), body=bindparam("body"), subtrees=bindparam("subtrees"), checkpoint=bindparam("checkpoint")
)
_HEAD_SIZE = select(_head.c.size).where(_head.c.id == 1)
#: The head row (size 0) unless it exists; one statement, so SQLite runs the check under its write lock.
CREATE_HEAD = insert(_head).from_select(
    ["id", "size"], select(literal(1), literal(0)).where(~exists().where(_head.c.id == 1))
)
_SUBTREES = select(_entries.c.idx, _entries.c.subtrees).where(_entries.c.idx.in_(bindparam("rows", expanding=True)))


@dataclass(frozen=True)
class InclusionProof:
    """An inclusion proof in the layout of the transparency-dev conformance vectors."""

    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    root: bytes
    proof: list[bytes]

    def to_json(self) -> dict[str, Any]:
        """``leafIdx``, ``treeSize``, ``root``, ``leafHash``, ``proof`` (base64)."""
        return {"leafIdx": self.leaf_index, "treeSize": self.tree_size, "root": b64e(self.root),
                "leafHash": b64e(self.leaf_hash), "proof": [b64e(p) for p in self.proof]}


@dataclass(frozen=True)
class ConsistencyProof:
    """A consistency proof in the layout of the transparency-dev conformance vectors."""

    size1: int
    size2: int
    root1: bytes
    root2: bytes
    proof: list[bytes]

    def to_json(self) -> dict[str, Any]:
        """``size1``, ``size2``, ``root1``, ``root2``, ``proof`` (base64)."""
        return {"size1": self.size1, "size2": self.size2, "root1": b64e(self.root1), "root2": b64e(self.root2),
                "proof": [b64e(p) for p in self.proof]}


@dataclass(frozen=True)
class Receipt:
    """What :meth:`AuditStore.append` returns once the entry is durable: its signed checkpoint and inclusion proof."""

    index: int
    leaf_hash: bytes
    checkpoint: str
    proof: InclusionProof


class AuditStore:
    """The append-only audit log of one deployment, signing a checkpoint at every append."""

    def __init__(self, engine: Engine, signer: _cp.Signer | None, origin: str) -> None:
        """Open the log on ``engine``, whose tables its migrations made; ``signer`` is needed to append only.

        A service's database gets the tables from the service's own Alembic
        migrations; a database holding nothing but a log is opened with :func:`open_log`.
        """
        self._engine = engine
        self._signer = signer
        self.origin = origin
        self._lock = threading.Lock()
        # The tree's right edge as (level, hash), largest subtree first, and its size;
        # None until the first append loads it.
        self._frontier: list[tuple[int, bytes]] | None = None
        self._size = 0

    def append(self, entry: AuditEntry, *, connection: Connection | None = None) -> Receipt:
        """Append ``entry`` and commit it with its tree nodes and a signed checkpoint before returning.

        With ``connection`` (a connection inside the caller's open transaction on
        this store's database) the entry is written there instead and commits or
        rolls back with the caller's change: the change and its audit entry are
        atomic. The receipt is then only valid once the caller has committed.
        """
        if self._signer is None:
            raise AuditStoreError("監査ログに追記するには署名鍵が必要です。")
        body = canonical_json(entry.to_json())
        leaf = merkle.leaf_hash(body)
        if connection is not None:
            return self._append_on(connection, body, leaf)
        with self._lock:
            # The cached edge is dropped until this append commits, so a failed
            # transaction makes the next append reload it from the store.
            frontier, self._frontier = self._frontier, None
            with self._engine.begin() as conn:
                # Bumping the head first takes the write lock (SQLite) or the row
                # lock (PostgreSQL) until commit, so appenders queue up here.
                size = conn.execute(_BUMP_HEAD).scalar_one()
                index = size - 1
                if frontier is None or self._size != index:  # first append here, or another process appended
                    frontier = self._load_frontier(conn, index)
                frontier, subtrees, root, path = _grow(frontier, leaf)
                note = _cp.sign_checkpoint(_cp.Checkpoint(self.origin, size, root), self._signer)
                conn.execute(
                    _INSERT_ENTRY, {"idx": index, "body": body.decode("utf-8"), "subtrees": subtrees, "checkpoint": note}
                )
            self._frontier, self._size = frontier, size
        return Receipt(index, leaf, note, InclusionProof(index, size, leaf, root, path))

    def _append_on(self, conn: Connection, body: bytes, leaf: bytes) -> Receipt:
        """Append inside the caller's transaction; the cached edge is not trusted, as that transaction may roll back."""
        with self._lock:
            self._frontier = None
        size = conn.execute(_BUMP_HEAD).scalar_one()
        index = size - 1
        frontier = self._load_frontier(conn, index)
        frontier, subtrees, root, path = _grow(frontier, leaf)
        note = _cp.sign_checkpoint(_cp.Checkpoint(self.origin, size, root), self._signer)
        conn.execute(_INSERT_ENTRY, {"idx": index, "body": body.decode("utf-8"), "subtrees": subtrees, "checkpoint": note})
        return Receipt(index, leaf, note, InclusionProof(index, size, leaf, root, path))

    def size(self) -> int:
        """The number of entries."""
        with self._engine.connect() as conn:
            return conn.execute(_HEAD_SIZE).scalar_one()

    def root(self, size: int | None = None) -> bytes:
        """The RFC 9162 root hash of the first ``size`` entries (default: all)."""
        size = self.size() if size is None else size
        if size == 0:
            return merkle.EMPTY_ROOT
        with self._engine.connect() as conn:
            return self._fold(conn, [(0, self._check_size(conn, size))])[0]

    def inclusion_proof(self, index: int, size: int | None = None) -> InclusionProof:
        """An inclusion proof of entry ``index`` in the tree of ``size`` entries (default: all)."""
        with self._engine.connect() as conn:
            size = self._check_size(conn, size)
            ranges = merkle.inclusion_ranges(index, size)
            hashes = self._fold(conn, [(0, size), (index, index + 1), *ranges])
        return InclusionProof(index, size, hashes[1], hashes[0], hashes[2:])

    def consistency_proof(self, size1: int, size2: int | None = None) -> ConsistencyProof:
        """A consistency proof from the tree of ``size1`` entries to that of ``size2`` (default: all)."""
        with self._engine.connect() as conn:
            size2 = self._check_size(conn, size2)
            if not 0 < size1 <= size2:
                raise AuditStoreError(f"一貫性証明には 0 < 旧サイズ ≤ 新サイズ が必要です（{size1}、{size2}）。")
            ranges = merkle.consistency_ranges(size1, size2) if size1 < size2 else []
            hashes = self._fold(conn, [(0, size1), (0, size2), *ranges])
        return ConsistencyProof(size1, size2, hashes[0], hashes[1], hashes[2:])

    def latest_checkpoint(self) -> str | None:
        """The signed note of the latest checkpoint, if any entry exists."""
        with self._engine.connect() as conn:
            return conn.execute(select(_entries.c.checkpoint).order_by(_entries.c.idx.desc()).limit(1)).scalar()

    def export(self, vkey: str) -> list[str]:
        """The log as the JSON-lines export ``tsunagu audit verify`` checks: a consistent snapshot, witnesses' cosignatures included."""
        from keys.audit import export_lines

        size = self.size()  # the log only grows: its first ``size`` entries and checkpoints are consistent
        entries = islice(self.entries(), size)
        notes = islice(self.checkpoints(), size)
        return list(export_lines(self.origin, vkey, entries, notes, size, self.cosignatures(size)))

    def add_cosignature(self, size: int, witness: str, line: str) -> None:
        """Keep a witness's cosignature line(s) on the checkpoint of ``size`` (a repeat replaces the earlier one)."""
        with self._engine.begin() as conn:
            conn.execute(delete(_cosignatures).where(_cosignatures.c.witness == witness, _cosignatures.c.size == size))
            conn.execute(insert(_cosignatures).values(witness=witness, size=size, line=line))

    def cosigned_size(self, witness: str) -> int:
        """The largest size ``witness`` cosigned for this log (0 if none)."""
        with self._engine.connect() as conn:
            return conn.execute(select(func.max(_cosignatures.c.size)).where(_cosignatures.c.witness == witness)).scalar() or 0

    def cosignatures(self, max_size: int | None = None) -> dict[int, list[str]]:
        """Every kept cosignature line by tree size (up to ``max_size``), for the export."""
        query = select(_cosignatures.c.size, _cosignatures.c.line).order_by(_cosignatures.c.size, _cosignatures.c.witness)
        if max_size is not None:
            query = query.where(_cosignatures.c.size <= max_size)
        out: dict[int, list[str]] = {}
        with self._engine.connect() as conn:
            for size, line in conn.execute(query):
                out.setdefault(int(size), []).append(line)
        return out

    def entries(self) -> Iterator[AuditEntry]:
        """Every entry in log order."""
        with self._engine.connect() as conn:
            for body in conn.execute(select(_entries.c.body).order_by(_entries.c.idx)).scalars():
                yield AuditEntry.from_json(json.loads(body))

    def checkpoints(self) -> Iterator[str]:
        """Every signed checkpoint note, by tree size."""
        with self._engine.connect() as conn:
            yield from conn.execute(select(_entries.c.checkpoint).order_by(_entries.c.idx)).scalars()

    @staticmethod
    def _check_size(conn: Connection, size: int | None) -> int:
        current = conn.execute(_HEAD_SIZE).scalar_one()
        if size is None:
            size = current
        if not 0 < size <= current:
            raise AuditStoreError(f"木の大きさ {size} は範囲外です（現在 {current} 件）。")
        return size

    @staticmethod
    def _load_frontier(conn: Connection, size: int) -> list[tuple[int, bytes]]:
        """The perfect subtrees of the first ``size`` entries, largest first, read from the store."""
        nodes = merkle.perfect_subtrees(0, size)
        stored = AuditStore._load(conn, nodes)
        return [(level, stored[(level, ix)]) for level, ix in nodes]

    @staticmethod
    def _fold(conn: Connection, ranges: list[tuple[int, int]]) -> list[bytes]:
        per_range = [merkle.perfect_subtrees(s, e) for s, e in ranges]
        known = AuditStore._load(conn, [n for nodes in per_range for n in nodes])
        return [merkle.fold_right([known[n] for n in nodes]) for nodes in per_range]

    @staticmethod
    def _load(conn: Connection, keys: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The hashes of nodes ``(level, index)``, each from the row of the last entry it covers."""
        if not keys:
            return {}
        rows = dict(conn.execute(_SUBTREES, {"rows": sorted({((ix + 1) << lv) - 1 for lv, ix in keys})}).all())
        found = {}
        for lv, ix in keys:
            blob = rows.get(((ix + 1) << lv) - 1)
            if blob is None or len(blob) < (lv + 1) * _HASH:
                raise AuditStoreError(f"監査ログの木のノード {(lv, ix)} が欠けています。データベースが壊れています。")
            found[(lv, ix)] = bytes(blob[lv * _HASH : (lv + 1) * _HASH])
        return found


def open_log(engine: Engine, signer: _cp.Signer | None, origin: str) -> AuditStore:
    """The log on a database of its own (the key administrator's ``audit.db``, a copy to check), migrated first."""
    migrate_log(engine)
    return AuditStore(engine, signer, origin)


def migrate_log(engine: Engine) -> None:
    """Bring a standalone log's database to the newest revision of ``service/audit_migrations`` (idempotent).

    Safe when several processes open a new log at once: the migration runs in
    one transaction that first takes SQLite's write lock (``BEGIN IMMEDIATE``)
    or a PostgreSQL advisory lock, so the others wait and then find it done.
    """
    for attempt in range(_SQLITE_CREATE_TRIES):
        try:
            return _migrate_once(engine)
        except OperationalError as exc:
            # SQLite answers "database is locked" at once, without waiting out the busy
            # timeout, when two first openers race to switch a new file to WAL; the loser
            # simply tries again.
            if engine.dialect.name != "sqlite" or "locked" not in str(exc) or attempt == _SQLITE_CREATE_TRIES - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def _migrate_once(engine: Engine) -> None:
    from importlib import resources

    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(resources.files("service").joinpath("audit_migrations")))
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            # The driver begins transactions lazily, before DML only; taking the write
            # lock up front makes the DDL and the version row one atomic step.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.execute(select(func.pg_advisory_xact_lock(_PG_CREATE_LOCK)))
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        conn.commit()


def _grow(frontier: list[tuple[int, bytes]], leaf: bytes) -> tuple[list[tuple[int, bytes]], bytes, bytes, list[bytes]]:
    """Add ``leaf`` to the right edge: the new edge, the subtrees the leaf completes, the new root and the leaf's proof."""
    # The leaf merges with every edge subtree of its own growing level; those
    # are its left siblings, bottom-up. For the last leaf, PATH (RFC 9162
    # §2.1.3.1) is those siblings, then the untouched edge subtrees, nearest first.
    edge = list(frontier)
    level, node = 0, leaf
    completed = [leaf]
    siblings = []
    while edge and edge[-1][0] == level:
        left = edge.pop()[1]
        siblings.append(left)
        node = merkle.node_hash(left, node)
        completed.append(node)
        level += 1
    path = siblings + [h for _, h in reversed(edge)]
    edge.append((level, node))
    return edge, b"".join(completed), merkle.fold_right([h for _, h in edge]), path


def keyring_log(ring: Keyring, signer: _cp.Signer | None) -> AuditStore:
    """The audit log of key operations in the key administrator's home (``<home>/audit.db``)."""
    return open_log(sqlite_engine(str(ring.audit_path)), signer, ring.audit_origin)


def record_key_operation(ring: Keyring, signer: _cp.Signer, **entry: str) -> Receipt:
    """Append an entry to the key administrator's log (committed) before the operation it describes takes effect."""
    return keyring_log(ring, signer).append(AuditEntry.now(**entry))
