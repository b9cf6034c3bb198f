"""Retention: remove records and record versions older than their source's retention period (policy), and say what went.

A record still in its source's latest snapshot was submitted recently, so in
practice this removes the versions of past submissions and the records of a
source that stopped submitting. The purge is logged with counts and record
tokens (pseudonyms) only: in ``purges``, the audit log and the log file.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, delete, insert, select

from gateway import models
from gateway.core import Gateway
from gateway.db import utcnow
from gateway.link import request_run

log = logging.getLogger("tsunagu.gateway.retention")


def purge(gw: Gateway, actor: str = "scheduler") -> list[dict[str, Any]]:
    """Apply every source's retention period now; returns what was removed per source."""
    r, h, s = models.records, models.record_history, models.submissions
    now = utcnow()
    report = []
    with gw.engine.connect() as conn:
        sources = sorted(set(conn.execute(select(s.c.source).distinct()).scalars()))
    for source in sources:
        days = gw.policy.retention_days(source)
        if days is None:
            continue
        cutoff = now - timedelta(days=days)
        old = select(s.c.id).where(s.c.source == source, s.c.received_at < cutoff)
        with gw.engine.begin() as conn:
            tokens = conn.execute(select(r.c.token).where(r.c.source == source, r.c.submission_id.in_(old))).scalars().all()
            removed = conn.execute(delete(r).where(r.c.source == source, r.c.submission_id.in_(old))).rowcount
            history = conn.execute(delete(h).where(and_(h.c.source == source, h.c.submission_id.in_(old)))).rowcount
            if not removed and not history:
                continue
            conn.execute(insert(models.purges).values(at=now, source=source, retention_days=days, records_removed=removed,
                                                      history_removed=history, tokens=json.dumps(sorted(tokens))))
            request_run(conn, "retention")
        entry = {"source": source, "retention_days": days, "records_removed": removed, "history_removed": history,
                 "tokens": sorted(tokens)}
        report.append(entry)
        gw.record(actor, "system", "retention.purge", f"records={removed} versions={history}", target=f"{source}:{days}d")
        log.info("retention purge %s (%d days): %d records, %d versions removed; tokens %s",
                 source, days, removed, history, ",".join(sorted(tokens)) or "-")
    return report


def purges(gw: Gateway, limit: int = 100) -> list[dict[str, Any]]:
    """Past purges, newest first."""
    with gw.engine.connect() as conn:
        rows = conn.execute(select(models.purges).order_by(models.purges.c.id.desc()).limit(limit)).all()
    return [{**dict(x._mapping), "tokens": json.loads(x.tokens)} for x in rows]
