"""GET /health: is the gateway able to work — its database, free disk and background jobs (the only route without authentication).

200 ``{"status": "ok", "checks": {...}}`` when all three are fine; otherwise
503 with the same body, ``status: "failed"``, the names of the failed checks
and a Japanese reason for each, so a monitor (and the person it pages) knows
which one to look at. No figures that would help an attacker are given.
"""

from __future__ import annotations

import logging
import shutil
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import text

from gateway.api.deps import GatewayDep
from gateway.core import Gateway
from service.api import Answer

router = APIRouter(tags=["health"])
log = logging.getLogger("tsunagu.gateway.health")

MiB = 1024 * 1024


def check_database(gw: Gateway) -> str:
    """"" if the database answers a query, else why not (in Japanese)."""
    try:
        with gw.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the database is the answer
        log.warning("health: database check failed: %s", type(exc).__name__)
        return "データベースに接続できません。データベース（PostgreSQL の場合はそのサービス）が動いているか確認してください。"
    return ""


def check_disk(gw: Gateway) -> str:
    """"" if the gateway's folder (and SQLite's) has at least ``min_free_disk_mb`` free, else why not."""
    need = gw.settings.min_free_disk_mb * MiB
    try:
        free = shutil.disk_usage(gw.settings.home).free
    except OSError:
        return f"ゲートウェイのフォルダ {gw.settings.home} の空き容量を確かめられません。"
    if free < need:
        return (f"ゲートウェイのフォルダのディスクの空きが {free // MiB} MiB しかありません（必要: {gw.settings.min_free_disk_mb} MiB 以上）。"
                "不要なファイルを消すか、ディスクを増やしてください。提出の受付や名寄せが失敗します。")
    return ""


def check_scheduler(request: Request) -> str:
    """"" if the background jobs run (or were not asked for), else why not."""
    jobs = getattr(request.app.state, "jobs", None)
    if jobs is None or jobs.alive:
        return ""
    return "名寄せ・保存期間・取込フォルダの定期処理が止まっています。ゲートウェイのログを確認し、ゲートウェイを再起動してください。"


class Check(Answer):
    """One check: ``ok``, and when not, the ``reason`` in Japanese."""

    ok: bool


class Health(Answer):
    """``ok`` or ``failed``, each check by name; when one failed, ``failed`` names them and ``detail`` says why."""

    status: str
    checks: dict[str, Check]


@router.get("/health", response_model=Health,
            responses={503: {"model": Health, "description": "a check failed; the body says which and why"}})
async def health(request: Request, gw: GatewayDep) -> Any:
    """The gateway answers, and its database, free disk and background jobs are fine."""
    checks = {
        "database": await run_in_threadpool(check_database, gw),
        "disk": await run_in_threadpool(check_disk, gw),
        "scheduler": check_scheduler(request),
    }
    failed = [name for name, why in checks.items() if why]
    body = {"status": "failed" if failed else "ok",
            "checks": {name: ({"ok": False, "reason": why} if why else {"ok": True}) for name, why in checks.items()}}
    if failed:
        body["failed"] = failed
        body["detail"] = " ".join(checks[name] for name in failed)
        return JSONResponse(body, status_code=503)
    return body
