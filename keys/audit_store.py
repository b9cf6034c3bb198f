"""Durable storage of the audit log through SQLAlchemy 2 (SQLite with WAL by default; portable to PostgreSQL).

:meth:`AuditStore.append` commits the entry, its Merkle nodes and a signed
checkpoint in one transaction before it returns, so an action is recorded
before it takes effect. The store keeps the hash of every perfect subtree
(node ``(level, index)``); any root, inclusion proof or consistency proof is
then O(log n) nodes read with one query (see :mod:`keys.merkle`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterator

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    create_engine,
    event,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.engine import Connection, Engine

from keys import checkpoint as _cp
from keys import merkle
from keys._files import b64e, canonical_json
from keys.audit import AuditEntry
from keys.errors import AuditStoreError

_metadata = MetaData()
_head = Table("audit_head", _metadata, Column("id", Integer, primary_key=True), Column("size", BigInteger, nullable=False))
_entries = Table("audit_entries", _metadata, Column("idx", BigInteger, primary_key=True), Column("body", Text, nullable=False))
_nodes = Table(
    "audit_nodes",
    _metadata,
    Column("level", Integer, primary_key=True),
    Column("idx", BigInteger, primary_key=True),
    Column("hash", LargeBinary(32), nullable=False),
)
_checkpoints = Table(
    "audit_checkpoints", _metadata, Column("tree_size", BigInteger, primary_key=True), Column("note", Text, nullable=False)
)


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


def sqlite_engine(path: str) -> Engine:
    """An engine on a SQLite file in WAL mode with full fsync, so a commit survives power loss."""
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    return engine


class AuditStore:
    """The append-only audit log of one deployment, signing a checkpoint at every append."""

    def __init__(self, engine: Engine, signer: _cp.Signer | None, origin: str) -> None:
        """Open (and create if needed) the log on ``engine``; ``signer`` is needed to append only."""
        self._engine = engine
        self._signer = signer
        self.origin = origin
        _metadata.create_all(engine)
        with engine.begin() as conn:
            if conn.execute(select(_head.c.size).where(_head.c.id == 1)).first() is None:
                conn.execute(insert(_head).values(id=1, size=0))

    def append(self, entry: AuditEntry) -> Receipt:
        """Append ``entry`` and commit it with its tree nodes and a signed checkpoint before returning."""
        if self._signer is None:
            raise AuditStoreError("監査ログに追記するには署名鍵が必要です。")
        leaf = entry.leaf_hash()
        with self._engine.begin() as conn:
            # Writing the head row first takes the write lock at once (SQLite) or
            # the row lock (PostgreSQL), so concurrent appenders queue up here.
            size = conn.execute(
                update(_head).where(_head.c.id == 1).values(size=_head.c.size + 1).returning(_head.c.size)
            ).scalar_one()
            index = size - 1
            new_nodes, root, path = self._grow(conn, index, leaf)
            conn.execute(insert(_entries).values(idx=index, body=canonical_json(entry.to_json()).decode("utf-8")))
            conn.execute(insert(_nodes), [{"level": lv, "idx": ix, "hash": h} for (lv, ix), h in new_nodes.items()])
            note = _cp.sign_checkpoint(_cp.Checkpoint(self.origin, size, root), self._signer)
            conn.execute(insert(_checkpoints).values(tree_size=size, note=note))
        return Receipt(index, leaf, note, InclusionProof(index, size, leaf, root, path))

    def size(self) -> int:
        """The number of entries."""
        with self._engine.connect() as conn:
            return conn.execute(select(_head.c.size).where(_head.c.id == 1)).scalar_one()

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
            return conn.execute(select(_checkpoints.c.note).order_by(_checkpoints.c.tree_size.desc()).limit(1)).scalar()

    def entries(self) -> Iterator[AuditEntry]:
        """Every entry in log order."""
        with self._engine.connect() as conn:
            for body in conn.execute(select(_entries.c.body).order_by(_entries.c.idx)).scalars():
                yield AuditEntry.from_json(json.loads(body))

    def checkpoints(self) -> Iterator[str]:
        """Every signed checkpoint note, by tree size."""
        with self._engine.connect() as conn:
            yield from conn.execute(select(_checkpoints.c.note).order_by(_checkpoints.c.tree_size)).scalars()

    @staticmethod
    def _check_size(conn: Connection, size: int | None) -> int:
        current = conn.execute(select(_head.c.size).where(_head.c.id == 1)).scalar_one()
        if size is None:
            size = current
        if not 0 < size <= current:
            raise AuditStoreError(f"木の大きさ {size} は範囲外です（現在 {current} 件）。")
        return size

    @staticmethod
    def _grow(conn: Connection, index: int, leaf: bytes) -> tuple[dict[tuple[int, int], bytes], bytes, list[bytes]]:
        """The nodes that leaf ``index`` completes, the new root and the leaf's inclusion proof, with one read."""
        # Leaf `index` completes the perfect subtree at every level l where
        # 2**l divides index + 1; each needs its (stored) left sibling. The
        # other perfect subtrees of the new right edge are read in the same
        # query so that the new root is folded without another round trip.
        size = index + 1
        lefts = []
        level = 1
        while size % (1 << level) == 0:
            lefts.append((level - 1, (size >> (level - 1)) - 2))
            level += 1
        edge = merkle.perfect_subtrees(0, size)
        top = edge[-1]  # the subtree that ends with the new leaf
        stored = AuditStore._load(conn, lefts + edge[:-1])
        new = {(0, index): leaf}
        node = leaf
        for lv, ix in lefts:
            node = merkle.node_hash(stored[(lv, ix)], node)
            new[(lv + 1, ix // 2)] = node
        # For the last leaf, PATH (RFC 9162 §2.1.3.1) is its left siblings
        # bottom-up, then the earlier perfect subtrees of the edge, nearest first.
        path = [stored[n] for n in lefts] + [stored[n] for n in reversed(edge[:-1])]
        return new, merkle.fold_right([stored[n] for n in edge[:-1]] + [new[top]]), path

    @staticmethod
    def _fold(
        conn: Connection, ranges: list[tuple[int, int]], known: dict[tuple[int, int], bytes] | None = None
    ) -> list[bytes]:
        per_range = [merkle.perfect_subtrees(s, e) for s, e in ranges]
        known = dict(known or {})
        known.update(AuditStore._load(conn, [n for nodes in per_range for n in nodes if n not in known]))
        return [merkle.fold_right([known[n] for n in nodes]) for nodes in per_range]

    @staticmethod
    def _load(conn: Connection, keys: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        if not keys:
            return {}
        rows = conn.execute(
            select(_nodes.c.level, _nodes.c.idx, _nodes.c.hash).where(tuple_(_nodes.c.level, _nodes.c.idx).in_(set(keys)))
        ).all()
        found = {(lv, ix): bytes(h) for lv, ix, h in rows}
        missing = set(keys) - set(found)
        if missing:
            raise AuditStoreError(f"監査ログの木のノードが欠けています（{sorted(missing)[:3]}）。データベースが壊れています。")
        return found
