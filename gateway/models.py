"""The gateway's tables (SQLAlchemy Core; created and changed only by the Alembic migrations).

Nothing here holds a plaintext identity: records are keyed by the agent's
record token (a keyed hash of the department's record id) and carry the
encoding (CLK), presence flags, blocking tokens, the escrow-sealed identity and
the policy-allowed attributes.

Persons stay stable across linkage runs: each run writes its own
``assignments`` rows under a new run id and the single ``current_run`` row is
flipped to it at the end, so readers always see one complete run.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from service.accounts import account_tables

metadata = MetaData()

#: one definition with the escrow's (service.accounts); the gateway's users hold one policy role
users, sessions = account_tables(metadata, Column("role", String(32), nullable=False))

agents = Table(
    "agents",
    metadata,
    Column("agent_id", String(64), primary_key=True),
    Column("signing_key", LargeBinary(32), nullable=False),
    Column("signing_key_id", String(80), nullable=False),
    Column("network", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # enrolled | revoked
    Column("registered_at", DateTime, nullable=False),
    Column("revoked_at", DateTime),
    Column("revoked_reason", Text),
)

agent_sources = Table(
    "agent_sources",
    metadata,
    Column("agent_id", String(64), ForeignKey("agents.agent_id", ondelete="CASCADE"), primary_key=True),
    Column("source", String(64), primary_key=True),
)

submissions = Table(
    "submissions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("agent_id", String(64), ForeignKey("agents.agent_id"), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("content_sha256", String(64), nullable=False),
    Column("network", String(16), nullable=False),
    Column("source", String(64), nullable=False, index=True),
    Column("schema_version", String(32), nullable=False),
    Column("linkage_key_id", String(80), nullable=False),
    Column("escrow_key_id", String(80), nullable=False),
    Column("batch_id", String(128), nullable=False),
    Column("seal_header", Text, nullable=False),
    Column("created_at", String(40), nullable=False),  # as the agent stamped it
    Column("received_at", DateTime, nullable=False),
    Column("channel", String(16), nullable=False),  # http | import | drop
    Column("record_count", Integer, nullable=False),
    Column("accepted", Integer, nullable=False),
    Column("refused", Text, nullable=False),  # JSON list of {token, reason}
    UniqueConstraint("agent_id", "sequence", name="uq_submissions_agent_sequence"),
)

records = Table(
    "records",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("token", String(128), primary_key=True),
    Column("submission_id", Integer, ForeignKey("submissions.id"), nullable=False),
    Column("first_submission_id", Integer, ForeignKey("submissions.id"), nullable=False),
    Column("clk", LargeBinary, nullable=False),
    Column("present", Integer, nullable=False),
    Column("blocks", LargeBinary, nullable=False),  # little-endian uint64 per blocking key
    Column("sealed", LargeBinary, nullable=False),
    Column("attributes", Text, nullable=False),  # JSON object
)

record_history = Table(
    "record_history",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("token", String(128), primary_key=True),
    Column("submission_id", Integer, ForeignKey("submissions.id"), primary_key=True),
    Column("status", String(8), nullable=False),  # present | deleted
    Column("attributes", Text, nullable=False),
    Index("ix_record_history_submission", "submission_id"),
)

ingest_events = Table(
    "ingest_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime, nullable=False, index=True),
    Column("channel", String(16), nullable=False),  # http | import | drop | api
    Column("status", Integer, nullable=False),
    Column("code", String(48), nullable=False),
    Column("detail", Text, nullable=False),
    Column("agent_id", String(64)),
    Column("sequence", BigInteger),
    Column("submission_id", Integer),
    Column("path", String(256)),
)

link_runs = Table(
    "link_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("trigger", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # running | done | failed
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Column("records", Integer),
    Column("sources", Integer),
    Column("candidates", Integer),
    Column("matched_pairs", Integer),
    Column("review_pairs", Integer),
    Column("persons", Integer),
    Column("new_persons", Integer),
    Column("merges", Integer),
    Column("splits", Integer),
    Column("load_seconds", Float),
    Column("link_seconds", Float),
    Column("store_seconds", Float),
    Column("error", Text),
)

current_run = Table(
    "current_run",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("link_runs.id")),
)

persons = Table(
    "persons",
    metadata,
    Column("person_id", String(24), primary_key=True),
    Column("created_run_id", Integer, ForeignKey("link_runs.id"), nullable=False),
    Column("retired_run_id", Integer, ForeignKey("link_runs.id")),
)

assignments = Table(
    "assignments",
    metadata,
    Column("run_id", Integer, ForeignKey("link_runs.id", ondelete="CASCADE"), primary_key=True),
    Column("source", String(64), primary_key=True),
    Column("token", String(128), primary_key=True),
    Column("person_id", String(24), nullable=False),
    Index("ix_assignments_run_person", "run_id", "person_id"),
)

#: One row per person of a run, written with the run's assignments (``gateway.link``): how many records, how many
#: sources and which (",maternal,school,"), so that the persons list filters, sorts and pages with an index
#: instead of a GROUP BY over the run's assignments.
run_persons = Table(
    "run_persons",
    metadata,
    Column("run_id", Integer, ForeignKey("link_runs.id", ondelete="CASCADE"), primary_key=True),
    Column("person_id", String(24), primary_key=True),
    Column("records", Integer, nullable=False),
    Column("sources", Integer, nullable=False),
    Column("source_list", String(1024), nullable=False),
)
# Descending counts, ascending ids: the list's two count orders, each one index walk (stable paging by person id).
Index("ix_run_persons_records", run_persons.c.run_id, run_persons.c.records.desc(), run_persons.c.person_id)
Index("ix_run_persons_sources", run_persons.c.run_id, run_persons.c.sources.desc(), run_persons.c.person_id)

person_events = Table(
    "person_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("link_runs.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("kind", String(8), nullable=False),  # merge | split
    Column("person_id", String(24), nullable=False, index=True),
    Column("related", Text, nullable=False),  # JSON list of person ids
)

review_pairs = Table(
    "review_pairs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("link_runs.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("source_a", String(64), nullable=False),
    Column("token_a", String(128), nullable=False),
    Column("source_b", String(64), nullable=False),
    Column("token_b", String(128), nullable=False),
    Column("weight", Float, nullable=False),
    Column("fields", Text, nullable=False),  # JSON {comparison: {"level": n, "label": "..."}}
)

purges = Table(
    "purges",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime, nullable=False),
    Column("source", String(64), nullable=False),
    Column("retention_days", Integer, nullable=False),
    Column("records_removed", Integer, nullable=False),
    Column("history_removed", Integer, nullable=False),
    Column("tokens", Text, nullable=False),  # JSON list of removed record tokens (pseudonyms)
)

# ---- federation (gateway.federation): linkage with other municipalities' gateways ----------------
# Federation encodings are keyed with the federation secret (another key id than the municipality's
# own); they are compared only with each other, never with ``records``.

federation_submissions = Table(
    "federation_submissions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("agent_id", String(64), ForeignKey("agents.agent_id"), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("content_sha256", String(64), nullable=False),
    Column("federation_key_id", String(80), nullable=False),
    Column("source", String(64), nullable=False),
    Column("record_count", Integer, nullable=False),
    Column("received_at", DateTime, nullable=False),
    UniqueConstraint("agent_id", "sequence", name="uq_federation_submissions_agent_sequence"),
)

federation_records = Table(
    "federation_records",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("token", String(128), primary_key=True),  # the record's internal token: never sent to a peer
    Column("submission_id", Integer, ForeignKey("federation_submissions.id"), nullable=False),
    Column("clk", LargeBinary, nullable=False),
    Column("present", Integer, nullable=False),
    Column("blocks", LargeBinary, nullable=False),
    Column("moved_in_from", String(6), index=True),
    Column("moved_out_to", String(6), index=True),
)

federation_nonces = Table(
    "federation_nonces",
    metadata,
    Column("peer", String(6), primary_key=True),
    Column("nonce", String(64), primary_key=True),
    Column("expires_at", DateTime, nullable=False, index=True),
)

federation_exchanges = Table(
    "federation_exchanges",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("direction", String(8), nullable=False),  # out (we asked) | in (we answered)
    Column("peer", String(6), nullable=False, index=True),
    Column("kind", String(24), nullable=False),
    Column("status", String(16), nullable=False),  # sent | answered | refused
    Column("items", Integer, nullable=False),
    Column("created_at", DateTime, nullable=False, index=True),
    Column("answered_at", DateTime),
    Column("actor", String(64), nullable=False),
    Column("answer", Text),  # the signed answer (in: what we sent back; out: what we received)
)

federation_query_items = Table(
    "federation_query_items",
    metadata,
    Column("exchange_id", String(40), ForeignKey("federation_exchanges.id", ondelete="CASCADE"), primary_key=True),
    Column("qid", String(40), primary_key=True),
    Column("source", String(64), nullable=False),
    Column("token", String(128), nullable=False),
    Column("match", Boolean),
    Column("band", String(4)),
    Column("handle", String(64)),
    Column("contact", Text),
    Column("expires_at", DateTime),
)

federation_handles = Table(
    "federation_handles",
    metadata,
    Column("handle_hash", LargeBinary(32), primary_key=True),  # SHA-256 of the handle given to the peer
    Column("exchange_id", String(40), ForeignKey("federation_exchanges.id", ondelete="CASCADE"), nullable=False),
    Column("peer", String(6), nullable=False),
    Column("source", String(64), nullable=False),
    Column("token", String(128), nullable=False),
    Column("band", String(4), nullable=False),
    Column("expires_at", DateTime, nullable=False),
)

federation_handovers = Table(
    "federation_handovers",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("direction", String(8), nullable=False),  # out (our request) | in (a peer's request)
    Column("peer", String(6), nullable=False, index=True),
    Column("source", String(64), nullable=False),
    Column("token", String(128), nullable=False),
    Column("purpose", String(64), nullable=False),
    Column("case_ref", String(128), nullable=False),
    Column("message", Text, nullable=False),
    Column("status", String(16), nullable=False),  # open | answered | refused (by the peer)
    Column("created_at", DateTime, nullable=False),
    Column("requested_by", String(64), nullable=False),
    Column("answered_at", DateTime),
    Column("answered_by", String(64)),
    Column("answer_message", Text),
    Column("answer_attributes", Text),  # JSON object of the attributes shared
)

# ---- casework (gateway.review): reviewers' decisions on record pairs, binding every later run ----------------

review_decisions = Table(
    "review_decisions",
    metadata,
    Column("id", Integer, primary_key=True),
    # The pair in a canonical order ((source_a, token_a) < (source_b, token_b)): one pair, one key.
    Column("source_a", String(64), nullable=False),
    Column("token_a", String(128), nullable=False),
    Column("source_b", String(64), nullable=False),
    Column("token_b", String(128), nullable=False),
    Column("decision", String(8), nullable=False),  # link | non_link
    Column("reason", Text, nullable=False),
    Column("decided_by", String(64), nullable=False),
    Column("decided_at", DateTime, nullable=False),
    Column("review_pair_id", Integer),  # the review pair shown, if the decision came from the review list
    Index("ix_review_decisions_pair", "source_a", "token_a", "source_b", "token_b"),
)

# ---- support (gateway.support): what staff decided and did, pseudonymous and coded -------------------------
# No free text that could name a child: codes from the policy's [support] vocabularies, and a short note that
# policy.support.note_problem checked. Features are the pseudonymous attribute values the screening saw.

screening_snapshots = Table(
    "screening_snapshots",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("link_runs.id"), nullable=False, unique=True),  # one frozen list per linkage run
    Column("taken_at", DateTime, nullable=False, index=True),
    Column("taken_by", String(64), nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("flagged", Integer, nullable=False),
    Column("rules", Text, nullable=False),  # JSON {rule_id: label} of the rules in force
)

screening_flags = Table(
    "screening_flags",
    metadata,
    Column("snapshot_id", Integer, ForeignKey("screening_snapshots.id", ondelete="CASCADE"), primary_key=True),
    Column("person_id", String(24), primary_key=True),
    Column("rank", Integer, nullable=False),  # over every flagged person; rank <= capacity: on the list shown
    Column("score", Float, nullable=False),
    Column("rules", Text, nullable=False),  # JSON list of fired rule ids
    Column("features", Text, nullable=False),  # JSON {"source.attribute": value}
    Index("ix_screening_flags_person", "person_id"),
)

support_cases = Table(
    "support_cases",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("person_id", String(24), nullable=False, index=True),
    Column("snapshot_id", Integer, ForeignKey("screening_snapshots.id")),  # None: found by another route (not the list)
    Column("rules", Text, nullable=False),  # JSON list of the rule ids that led here ([] for another route)
    Column("rank", Integer),
    Column("features", Text, nullable=False),  # JSON {"source.attribute": value} when the case was opened
    Column("status", String(16), nullable=False),  # policy.support.CASE_STATUSES
    Column("assignee", String(64)),
    Column("department", String(40)),
    Column("assessment", String(16), nullable=False),  # policy.support.ASSESSMENTS
    Column("difficulties", Text, nullable=False),  # JSON list of codes
    Column("supports", Text, nullable=False),  # JSON list of codes
    Column("not_needed_reason", String(40)),
    Column("note", String(400), nullable=False),
    Column("opened_on", String(10), nullable=False),  # ISO date (JST) the case was opened
    Column("checked_on", String(10)),
    Column("supported_on", String(10)),
    Column("opened_by", String(64), nullable=False),
    Column("opened_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("version", Integer, nullable=False),
)

support_events = Table(
    "support_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("case_id", Integer, ForeignKey("support_cases.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("at", DateTime, nullable=False),
    Column("by", String(64), nullable=False),
    Column("state", Text, nullable=False),  # JSON of the case's coded fields after this change
)

return_lists = Table(
    "return_lists",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("source", String(64), nullable=False, index=True),
    Column("action", String(40), nullable=False),
    Column("purpose", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("records", Integer, nullable=False),
    Column("content_sha256", String(64), nullable=False),
    Column("signed", Text, nullable=False),  # the signed list as sent (record tokens of the department's own records)
)

return_list_items = Table(
    "return_list_items",
    metadata,
    Column("list_id", String(40), ForeignKey("return_lists.id", ondelete="CASCADE"), primary_key=True),
    Column("token", String(128), primary_key=True),
    Column("case_id", Integer, ForeignKey("support_cases.id"), nullable=False),
)

pooled_reports = Table(
    "pooled_reports",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("peer", String(6), nullable=False, index=True),  # the town that shared (prefecture side)
    Column("period", String(16), nullable=False),
    Column("received_at", DateTime, nullable=False),
    Column("counts", Text, nullable=False),  # JSON of aggregate counts only (small counts suppressed by the town)
    UniqueConstraint("peer", "period", "received_at", name="uq_pooled_reports"),
)

# ---- delivery (gateway.ingest, gateway.scheduler): chained submissions, one owner per source, run requests ----------

submission_chain = Table(
    "submission_chain",
    metadata,
    # Each accepted submission of an agent names the one before it (keys.submission "previous"),
    # so the gateway can refuse a fork: two copies of one agent sending from the same point.
    Column("submission_id", Integer, ForeignKey("submissions.id", ondelete="CASCADE"), primary_key=True),
    Column("agent_id", String(64), ForeignKey("agents.agent_id"), nullable=False, index=True),
    Column("sequence", BigInteger, nullable=False),
    Column("manifest_sha256", String(64), nullable=False),
    Column("previous_sha256", String(64), nullable=False),  # "" for an agent's first chained submission
    Column("instance", String(64), nullable=False),  # which copy of the agent (machine and folder) sent it
    Column("instance_label", String(200), nullable=False),  # host:folder, for the message saying which copy to keep
)

source_owners = Table(
    "source_owners",
    metadata,
    # One registered agent per source: only it may submit the source's snapshots.
    Column("source", String(64), primary_key=True),
    Column("agent_id", String(64), ForeignKey("agents.agent_id"), nullable=False),
    Column("since", DateTime, nullable=False),
)

link_requests = Table(
    "link_requests",
    metadata,
    # "Data changed since the last run": written in the transaction of the change, removed by
    # the run that covered it, so a crash or a busy scheduler never loses a run.
    Column("id", Integer, primary_key=True),
    Column("requested_at", DateTime, nullable=False),
    Column("trigger", String(16), nullable=False),
)

snapshot_parts = Table(
    "snapshot_parts",
    metadata,
    # The records of the parts of a multi-part snapshot received so far; the last part replaces the source's
    # records with all of them in one transaction (all parts or nothing), and they leave this table.
    Column("submission_id", Integer, ForeignKey("submissions.id", ondelete="CASCADE"), primary_key=True),
    Column("token", String(128), primary_key=True),
    Column("agent_id", String(64), nullable=False),
    Column("batch_id", String(128), nullable=False),
    Column("part", Integer, nullable=False),
    Column("source", String(64), nullable=False),
    Column("clk", LargeBinary, nullable=False),
    Column("present", Integer, nullable=False),
    Column("blocks", LargeBinary, nullable=False),
    Column("sealed", LargeBinary, nullable=False),
    Column("attributes", Text, nullable=False),
    Index("ix_snapshot_parts_batch", "agent_id", "batch_id"),
)
