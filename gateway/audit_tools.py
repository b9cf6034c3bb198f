"""Auditors' tools at the gateway: its audit log as an export, and the re-identification report joined with the escrow's export."""

from __future__ import annotations

from typing import Any, Iterable

from gateway.core import Gateway
from gateway.identity import User
from keys import audit, audit_report


def export_lines(gw: Gateway) -> list[str]:
    """The gateway's audit log as the JSON-lines export ``tsunagu audit verify`` checks (a consistent snapshot)."""
    store = gw.audit
    size = store.size()  # the log only grows: its first ``size`` entries and checkpoints are consistent
    entries = [e for _, e in zip(range(size), store.entries())]
    notes = [n for _, n in zip(range(size), store.checkpoints())]
    return list(audit.export_lines(store.origin, gw.signer.verifier.vkey(), entries, notes, size))


def report(gateway_lines: Iterable[str], escrow_lines: Iterable[str] | None,
           rules: audit_report.AnomalyRules = audit_report.AnomalyRules()) -> dict[str, Any]:
    """Both exports verified, then every request joined across them, outcome counts and anomalies."""
    gateway_lines, escrow_lines = list(gateway_lines), list(escrow_lines or [])
    verified = {"gateway": audit.verify_export(gateway_lines).size}
    if escrow_lines:
        verified["escrow"] = audit.verify_export(escrow_lines).size
    rows = audit_report.requests_report(audit_report.read_entries(gateway_lines), audit_report.read_entries(escrow_lines))
    return {"verified_entries": verified, "requests": [r.to_json() for r in rows], "outcomes": audit_report.counts(rows),
            "outcome_labels": audit_report.OUTCOMES, "anomalies": [a.to_json() for a in audit_report.anomalies(rows, rules)]}


def report_for(gw: Gateway, user: User, escrow_lines: Iterable[str] | None,
               rules: audit_report.AnomalyRules = audit_report.AnomalyRules()) -> dict[str, Any]:
    """The report over this gateway's log (and the escrow export an auditor brought); the view is logged."""
    gw.record(user.username, user.role, "audit.report", "viewed" + (" with escrow export" if escrow_lines else ""))
    return report(export_lines(gw), escrow_lines, rules)
