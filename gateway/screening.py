"""Screening: the declared rules (``policy.screening``) over the current run's persons and their latest attributes.

The list is pseudonymous — person ids, source names, attribute names and
values — and only holds attributes the reader's role may see, so screening
shows nothing the persons screens would not. Every view is in the audit log.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from sqlalchemy import and_, select

from gateway import models
from gateway.core import Gateway
from gateway.errors import CatalogInvalid, GatewayError, NoRun, ScreeningInvalid
from gateway.identity import User
from gateway.link import current_run_id
from gateway.support import ensure_snapshot
from policy.attributes import AttributeCatalog, CatalogError, default_catalog, load_catalog
from policy.screening import (Screening, ScreeningError, ScreeningList, check_against_data, check_rules, default_screening,
                              load_screening)

SCREENING_FILE = "screening.toml"
CATALOG_FILE = "attributes.toml"
log = logging.getLogger("tsunagu.gateway")
#: Problems already logged, so that loading the same rules again does not repeat the warning.
_warned: set[tuple[str, str]] = set()


def attribute_catalog(gw: Gateway) -> AttributeCatalog:
    """``<home>/attributes.toml`` if the municipality wrote one, else the shipped catalog (policy/attributes.toml)."""
    path = gw.settings.home / CATALOG_FILE
    try:
        return load_catalog(path) if path.exists() else default_catalog()
    except CatalogError as exc:
        raise CatalogInvalid(str(exc)) from None


def screening_rules(gw: Gateway) -> Screening:
    """``<home>/screening.toml`` if the municipality wrote one, else the shipped example rules."""
    path = gw.settings.home / SCREENING_FILE
    try:
        rules = load_screening(path) if path.exists() else default_screening()
    except ScreeningError as exc:
        raise ScreeningInvalid(str(exc)) from None
    for problem in check_rules(rules, attribute_catalog(gw)):
        if (problem.rule_id, problem.message) not in _warned:
            _warned.add((problem.rule_id, problem.message))
            log.warning("screening rule %s: %s", problem.rule_id, problem.message)
    return rules


def person_attributes(gw: Gateway, role: str | None) -> tuple[int, dict[str, dict[str, dict[str, str]]]]:
    """The current run and ``{person_id: {source: {attribute: value}}}`` of its persons' current records.

    Only the attributes ``role`` may see; ``role=None`` is the gateway's own check of the rules
    (:func:`rule_report`), which shows counts of values, never a person.
    """
    a, r = models.assignments, models.records
    with gw.engine.connect() as conn:
        run_id = current_run_id(conn)
        if run_id is None:
            raise NoRun("まだ名寄せが実行されていません。提出を受け付けた後、名寄せの完了を待ってください。")
        rows = conn.execute(select(a.c.person_id, a.c.source, r.c.attributes)
                            .join(r, and_(r.c.source == a.c.source, r.c.token == a.c.token))
                            .where(a.c.run_id == run_id)).all()
    visible: dict[str, bool] = {}
    persons: dict[str, dict[str, dict[str, str]]] = {}
    for row in rows:
        attributes = json.loads(row.attributes)
        if not attributes:
            persons.setdefault(row.person_id, {}).setdefault(row.source, {})
            continue
        shown = {}
        for name, value in attributes.items():
            if name not in visible:
                visible[name] = role is None or gw.policy.may_see(role, name).allowed
            if visible[name]:
                shown[name] = value
        persons.setdefault(row.person_id, {}).setdefault(row.source, {}).update(shown)
    return run_id, persons


def screen(gw: Gateway, user: User, *, beyond_capacity: bool = False, action: str = "screening.view") -> dict[str, Any]:
    """The screening list for ``user``: flagged persons sorted by score, capped, with each fired rule's data items; logged.

    ``beyond_capacity``: every flagged person, past the capacity — the user's explicit choice, logged as such.
    ``action`` names the audit entry (``screening.export`` for a download).
    """
    rules = screening_rules(gw)
    run_id, persons = person_attributes(gw, user.role)
    result = rules.screen(persons, beyond_capacity=beyond_capacity)
    # The list a person sees is frozen once per run, so the evaluation can later compare it with what staff decided.
    ensure_snapshot(gw, user.username)
    gw.record(user.username, user.role, action,
              f"flagged={result.flagged} shown={len(result.entries)} left_out={result.left_out}"
              + (" beyond_capacity" if beyond_capacity else ""), target=f"run#{run_id}")
    return as_json(run_id, result, attribute_catalog(gw))


#: Rule reports already made: (database, run, rules file, catalog file) -> problems. The data check reads every
#: attribute of the run (seconds at 50,000 children), so the dashboard makes it once per published run and per
#: version of the rules and the catalog; a new run or an edited file makes a new key.
_reports: dict[tuple, list[dict[str, str]]] = {}
_reports_lock = threading.Lock()


def _stamp(path: Any) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size


def rule_report(gw: Gateway) -> list[dict[str, str]]:
    """Problems of the rules in force: against the catalog, and (once a run exists) against the data they screen.

    Cached per published run and per version of ``screening.toml`` / ``attributes.toml`` (see :data:`_reports`).
    """
    with gw.engine.connect() as conn:
        run_id = current_run_id(conn)
    key = (str(gw.engine.url), run_id, _stamp(gw.settings.home / SCREENING_FILE), _stamp(gw.settings.home / CATALOG_FILE))
    with _reports_lock:
        found = _reports.get(key)
        if found is not None:
            return found
        rules, catalog = screening_rules(gw), attribute_catalog(gw)
        problems = check_rules(rules, catalog)
        try:
            _run_id, persons = person_attributes(gw, None)
        except GatewayError:
            persons = {}
        if persons:
            problems += check_against_data(rules, persons, catalog)
        report = [{"rule_id": p.rule_id, "rule_label": p.rule_label, "kind": p.kind, "message": p.message} for p in problems]
        for old in [k for k in _reports if k[0] == key[0]]:
            del _reports[old]  # only the current run and rules are asked for
        _reports[key] = report
        return report


def as_json(run_id: int, result: ScreeningList, catalog: AttributeCatalog | None = None) -> dict[str, Any]:
    """A screening list as JSON; each item also carries the catalog's labels (``attribute_label``, ``value_label``)."""
    catalog = catalog or default_catalog()
    return {
        "run_id": run_id, "capacity": result.capacity, "flagged": result.flagged, "left_out": result.left_out,
        "entries": [{
            "rank": rank, "person_id": e.person_id, "score": e.score,
            "flags": [{"rule_id": f.rule_id, "label": f.label, "weight": f.weight,
                       "items": [{"source": i.source, "attribute": i.attribute, "value": i.value, "condition": i.condition,
                                  "attribute_label": catalog.label(i.attribute),
                                  "value_label": catalog.value_label(i.attribute, i.value)}
                                 for i in f.items]} for f in e.flags],
        } for rank, e in enumerate(result.entries, start=1)],
    }
