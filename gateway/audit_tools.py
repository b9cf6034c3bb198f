"""Auditors' tools at the gateway: its audit log as an export (cosigned by its witnesses), and the re-identification report joined with the escrow's export."""

from __future__ import annotations

from typing import Any, Iterable

from gateway.core import Gateway
from gateway.identity import User
from keys import audit, audit_report
from service.witness_client import http_post
from transparency import tlog_witness as witness


def export_lines(gw: Gateway) -> list[str]:
    """The gateway's audit log as the JSON-lines export ``tsunagu audit verify`` checks (a consistent snapshot)."""
    return gw.audit.export(gw.signer.verifier.vkey())


def witnessed_export_lines(gw: Gateway) -> list[str]:
    """The export after the gateway's witnesses cosigned its latest checkpoint (what auditors download)."""
    return witness.witnessed_export(gw.audit, gw.signer.verifier.vkey(), gw.witness_folder, http_post())


def sync_witnesses(gw: Gateway) -> dict[str, str]:
    """Ask the gateway's witnesses (the escrow, an auditor's) to cosign its latest checkpoint; failures are logged, not raised."""
    return witness.submit_all(gw.audit, gw.witness_folder, http_post())


def _escrow_trust(gw: Gateway, escrow_lines: list[str]) -> tuple[str | None, list[str] | None]:
    # When this gateway witnesses the escrow, the escrow's log key is pinned and
    # the gateway's own cosignature is required on the export an auditor brought.
    try:
        origin = audit._parse_export(escrow_lines)[0]["origin"]
        own = witness.Witness.open(gw.witness_folder)
    except (audit.AuditVerificationError, witness.WitnessError):
        return None, None
    vkey = own.logs.get(origin)
    return (vkey, [own.vkey]) if vkey else (None, None)


def report(gateway_lines: Iterable[str], escrow_lines: Iterable[str] | None,
           rules: audit_report.AnomalyRules = audit_report.AnomalyRules(), *,
           escrow_vkey: str | None = None, escrow_witnesses: list[str] | None = None) -> dict[str, Any]:
    """Both exports verified, then every request joined across them, outcome counts and anomalies."""
    gateway_lines, escrow_lines = list(gateway_lines), list(escrow_lines or [])
    verified = {"gateway": audit.verify_export(gateway_lines).size}
    if escrow_lines:
        verified["escrow"] = audit.verify_export(escrow_lines, escrow_vkey, witness_vkeys=escrow_witnesses).size
    rows = audit_report.requests_report(audit_report.read_entries(gateway_lines),
                                        audit_report.read_entries(escrow_lines) if escrow_lines else None)
    return {"verified_entries": verified, "requests": [r.to_json() for r in rows], "outcomes": audit_report.counts(rows),
            "outcome_labels": audit_report.OUTCOMES, "anomalies": [a.to_json() for a in audit_report.anomalies(rows, rules)]}


def report_for(gw: Gateway, user: User, escrow_lines: Iterable[str] | None,
               rules: audit_report.AnomalyRules = audit_report.AnomalyRules()) -> dict[str, Any]:
    """The report over this gateway's log (and the escrow export an auditor brought); the view is logged."""
    gw.record(user.username, user.role, "audit.report", "viewed" + (" with escrow export" if escrow_lines else ""))
    escrow_lines = list(escrow_lines) if escrow_lines else None
    vkey, witnesses = _escrow_trust(gw, escrow_lines) if escrow_lines else (None, None)
    return report(export_lines(gw), escrow_lines, rules, escrow_vkey=vkey, escrow_witnesses=witnesses)
