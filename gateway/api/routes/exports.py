"""Pseudonymous exports for analysts: one row per record with its person id and the attributes the role may see,
columns named by their Japanese labels (``gateway.casework.export_frame``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from gateway import casework
from gateway.api.deps import GatewayDep, require
from gateway.identity import User
from service.api import file_answer

router = APIRouter(prefix="/exports", tags=["exports"])
Exporter = Annotated[User, Depends(require("persons.export"))]


@router.get("/persons.csv", response_class=Response, responses=file_answer("text/csv"))
def get_csv(gw: GatewayDep, user: Exporter) -> Response:
    """CSV (UTF-8 with BOM), Japanese column names."""
    gw.record(user.username, user.role, "export.csv", "ok")
    return Response(casework.export_csv(gw, user.role), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="persons.csv"'})


@router.get("/persons.xlsx", response_class=Response,
            responses=file_answer("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))
def get_xlsx(gw: GatewayDep, user: Exporter) -> Response:
    """Excel (.xlsx), one sheet."""
    gw.record(user.username, user.role, "export.xlsx", "ok")
    return Response(casework.export_xlsx(gw, user.role), media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": 'attachment; filename="persons.xlsx"'})


@router.get("/persons.parquet", response_class=Response, responses=file_answer("application/vnd.apache.parquet"))
def get_parquet(gw: GatewayDep, user: Exporter) -> Response:
    """Parquet."""
    gw.record(user.username, user.role, "export.parquet", "ok")
    return Response(casework.export_parquet(gw, user.role), media_type="application/vnd.apache.parquet",
                    headers={"Content-Disposition": 'attachment; filename="persons.parquet"'})
