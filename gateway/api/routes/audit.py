"""Auditors: the gateway's audit log as an export, and the re-identification report (with the escrow's export if given)."""

from __future__ import annotations

from datetime import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field, field_validator

from gateway import audit_tools
from gateway.api.deps import GatewayDep, require
from gateway.errors import ExportInvalid
from gateway.identity import User
from keys.audit import AuditVerificationError, split_export
from keys.audit_report import AnomalyRules, ReportInputError
from service.api import Answer

router = APIRouter(prefix="/audit", tags=["audit"])
Auditor = Annotated[User, Depends(require("audit.read"))]


class ReportIn(BaseModel):
    """The escrow's export (from ``GET /api/v1/audit/export`` at the escrow) and the anomaly thresholds."""

    escrow_export: str | None = Field(default=None, max_length=256 * 1024 * 1024)
    office_start: time = AnomalyRules.office_start
    office_end: time = AnomalyRules.office_end
    max_requests: int = Field(default=AnomalyRules.max_requests, ge=1)
    window_days: int = Field(default=AnomalyRules.window_days, ge=1)
    pair_repeats: int = Field(default=AnomalyRules.pair_repeats, ge=2)

    @field_validator("office_start", "office_end")
    @classmethod
    def _local_time(cls, value: time) -> time:
        # Office hours are wall-clock times in JST; an offset ("08:30+09:00") cannot be compared with them.
        if value.tzinfo is not None:
            raise ValueError("勤務時間はタイムゾーンなしの時刻（例: 08:30）で指定してください（日本時間として扱います）。")
        return value


class AuditReport(Answer):
    """The auditor's report: entries verified, each re-identification request with its outcome, the counts, the anomalies."""

    #: entries verified per log: ``gateway``, and ``escrow`` when its export was given
    verified_entries: dict[str, int]
    requests: list[dict[str, Any]]
    outcomes: dict[str, int]
    outcome_labels: dict[str, str]
    anomalies: list[dict[str, Any]]


@router.get("/export", response_class=PlainTextResponse)
def get_export(gw: GatewayDep, user: Auditor) -> PlainTextResponse:
    """Every entry, every signed checkpoint and the verifier key (JSON lines for ``tsunagu audit verify``)."""
    gw.record(user.username, user.role, "audit.export", "exported")
    return PlainTextResponse("\n".join(audit_tools.witnessed_export_lines(gw)) + "\n", media_type="application/jsonl; charset=utf-8")


@router.post("/report", response_model=AuditReport)
def post_report(gw: GatewayDep, user: Auditor, body: ReportIn) -> dict[str, Any]:
    """Every re-identification request joined across both logs, outcomes and anomalies."""
    rules = AnomalyRules(body.office_start, body.office_end, body.max_requests, body.window_days, body.pair_repeats)
    try:
        return audit_tools.report_for(gw, user, split_export(body.escrow_export) if body.escrow_export else None, rules)
    except (AuditVerificationError, ReportInputError) as exc:
        raise ExportInvalid(f"エスクローの書き出しを検証できません: {exc}") from None
