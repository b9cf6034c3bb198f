"""Support records: open and update a person's case (coded fields only), list them, and read the vocabularies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from gateway import support
from gateway.api.deps import GatewayDep, require
from gateway.identity import User
from service.api import Answer

router = APIRouter(prefix="/support", tags=["support"])
Reader = Annotated[User, Depends(require("support.read"))]
Recorder = Annotated[User, Depends(require("support.record"))]

Assessment = Literal["needs_support", "watch", "not_needed", "pending"]
Status = Literal["open", "checking", "supporting", "closed"]
Code = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Day = Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")]


class CaseFields(BaseModel):
    """The coded fields of a case; a field left out keeps its value (or its default when opening)."""

    status: Status | None = None
    assignee: str | None = Field(default=None, max_length=64)
    department: Code | None = None
    assessment: Assessment | None = None
    difficulties: list[Code] | None = Field(default=None, max_length=20)
    supports: list[Code] | None = Field(default=None, max_length=20)
    not_needed_reason: Code | None = None
    note: str | None = Field(default=None, max_length=400)
    checked_on: Day | None = None
    supported_on: Day | None = None


class CaseIn(CaseFields):
    """Open a case for a person of the current run."""

    person_id: str = Field(pattern=r"^P[0-9a-f]{16}$")
    opened_on: Day | None = None


class CaseUpdate(CaseFields):
    """Change a case; ``version`` (optional) refuses the change if someone else changed the case first."""

    version: int | None = None


class HistoryEntry(BaseModel):
    """One version of a case."""

    version: int
    at: datetime
    by: str
    status: str
    assessment: str
    difficulties: list[str]
    supports: list[str]
    not_needed_reason: str | None
    department: str | None
    assignee: str | None
    note: str
    checked_on: str | None
    supported_on: str | None


class CaseOut(BaseModel):
    """A case: the person, the list and rules that led there (origin ``other``: found by another route), its coded state."""

    id: int
    person_id: str
    snapshot_id: int | None
    run_id: int | None
    origin: Literal["screening", "other"]
    rules: list[str]
    rank: int | None
    status: str
    assignee: str | None
    department: str | None
    assessment: str
    difficulties: list[str]
    supports: list[str]
    not_needed_reason: str | None
    note: str
    opened_on: str
    checked_on: str | None
    supported_on: str | None
    opened_by: str
    opened_at: datetime
    updated_at: datetime
    version: int
    history: list[HistoryEntry] = []


class CaseList(BaseModel):
    """A page of cases, newest first."""

    total: int
    cases: list[CaseOut]


class Vocabulary(Answer):
    """The codes a case may use (code → Japanese label) and the note's length limit."""

    assessments: dict[str, str]
    statuses: dict[str, str]
    difficulties: dict[str, str]
    supports: dict[str, str]
    departments: dict[str, str]
    not_needed_reasons: dict[str, str]
    actions: Any
    note_max: int


class Snapshot(Answer):
    """The frozen screening list of the current run that cases refer to (``None`` before the first linkage run)."""

    snapshot_id: int | None


@router.get("/vocabulary", response_model=Vocabulary)
def get_vocabulary(gw: GatewayDep, _user: Reader) -> dict[str, Any]:
    """Every code of the support records with its label (from the policy)."""
    return support.vocabulary_json(gw)


@router.post("/cases", response_model=CaseOut)
def post_case(gw: GatewayDep, user: Recorder, body: CaseIn) -> dict[str, Any]:
    """Open a case; linked to the newest frozen list that showed the person (or none: another route); logged."""
    return support.open_case(gw, user, body.person_id, opened_on=body.opened_on, **body.model_dump(exclude={"person_id", "opened_on"}))


@router.get("/cases", response_model=CaseList)
def get_cases(gw: GatewayDep, _user: Reader, status: Status | None = None,
              person: Annotated[str | None, Query(pattern=r"^P[0-9a-f]{16}$")] = None, assignee: str | None = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:
    """Cases, newest first."""
    return support.list_cases(gw, status=status, person_id=person, assignee=assignee, limit=limit, offset=offset)


@router.get("/cases/{case_id}", response_model=CaseOut)
def get_case(gw: GatewayDep, _user: Reader, case_id: int) -> dict[str, Any]:
    """One case with every version."""
    return support.get_case(gw, case_id)


@router.patch("/cases/{case_id}", response_model=CaseOut)
def patch_case(gw: GatewayDep, user: Recorder, case_id: int, body: CaseUpdate) -> dict[str, Any]:
    """Change a case's coded fields; logged."""
    return support.update_case(gw, user, case_id, expected_version=body.version, **body.model_dump(exclude={"version"}))


@router.post("/snapshot", response_model=Snapshot)
def post_snapshot(gw: GatewayDep, user: Recorder) -> dict[str, Any]:
    """Freeze the current run's screening list now (it is also frozen when the list is first viewed)."""
    return {"snapshot_id": support.ensure_snapshot(gw, user.username)}
