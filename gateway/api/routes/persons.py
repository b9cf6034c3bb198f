"""Casework: pseudonymous persons, their linked records and their history (経年変化)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from gateway import casework
from gateway.api.deps import GatewayDep, require
from gateway.db import MAX_OFFSET
from gateway.identity import User
from service.api import Answer

router = APIRouter(prefix="/persons", tags=["persons"])
Reader = Annotated[User, Depends(require("persons.read"))]


class PersonCount(Answer):
    """A person of the current run: how many records, from how many sources."""

    person_id: str
    records: int
    sources: int


class PersonList(Answer):
    """One page of the current run's persons (``run_id`` None before the first run)."""

    run_id: int | None
    total: int
    persons: list[PersonCount]


class PersonOut(Answer):
    """A person's linked records per source: record tokens and the attributes the role may see."""

    person_id: str
    run_id: int | None
    sources: list[str]
    records: list[dict[str, Any]]


class Timeline(Answer):
    """Every submitted version of a person's records, oldest first."""

    person_id: str
    run_id: int | None
    events: list[dict[str, Any]]


@router.get("", response_model=PersonList)
def get_persons(gw: GatewayDep, _user: Reader, source: str | None = None,
                min_sources: Annotated[int, Query(ge=1, le=32)] = 1,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0, sort: Annotated[str, Query(pattern="^(person|records|sources)$")] = "person",
                q: Annotated[str, Query(max_length=17, pattern="^[P0-9a-f]*$")] = "") -> dict[str, Any]:
    """Persons of the current run (optionally: having a record of ``source``, records from ``min_sources`` sources,
    an id starting with ``q``), sorted by ``sort``."""
    return casework.list_persons(gw, source=source, min_sources=min_sources, limit=limit, offset=offset, sort=sort, prefix=q)


# A person's page and records are logged for the auditor, like the screening
# list: who looked at which pseudonymous person, and when. The append signs a
# checkpoint, so these routes run in the thread pool, not on the event loop.
@router.get("/{person_id}", response_model=PersonOut)
def get_person(gw: GatewayDep, user: Reader, person_id: str) -> dict[str, Any]:
    """A person's linked records per source: record tokens and the attributes the role may see (the view is logged)."""
    found = casework.person(gw, person_id, user.role)
    gw.record(user.username, user.role, "persons.view", f"viewed: records={len(found['records'])}", target=person_id)
    return found


@router.get("/{person_id}/timeline", response_model=Timeline)
def get_timeline(gw: GatewayDep, user: Reader, person_id: str) -> dict[str, Any]:
    """Every submitted version of the person's records, oldest first (the view is logged)."""
    found = casework.timeline(gw, person_id, user.role)
    gw.record(user.username, user.role, "persons.timeline", f"viewed: events={len(found['events'])}", target=person_id)
    return found
