"""The whole path over HTTP on loopback: signed submissions → ingest → linkage run → persons → casework API, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io

import pyarrow.parquet as pq
from openpyxl import load_workbook
from synthetic import Town

from tests.support.gateway import Server, wait_for_run
from synthetic.agents import SyntheticAgent

NDJSON = {"Content-Type": "application/x-ndjson"}


def test_submissions_become_stable_persons(server: Server, town: Town, agents: dict[str, SyntheticAgent]) -> None:
    with server.client() as c:
        for source, agent in agents.items():
            r = c.post("/api/v1/submissions", content=agent.submit(source, town.sources[source]), headers=NDJSON)
            assert r.status_code == 200, r.text
            answer = r.json()
            assert answer["status"] == "accepted" and answer["refused"] == []
            assert answer["accepted"] == len(town.sources[source]) and answer["sequence"] == agent.sequence
    first = wait_for_run(server)
    assert first["records"] == sum(len(rows) for rows in town.sources.values())
    assert first["persons"] < first["records"]

    with server.client("caseworker") as c:
        listing = c.get("/api/v1/persons", params={"min_sources": 3, "limit": 5}).json()
        assert listing["total"] > 0
        person_id = listing["persons"][0]["person_id"]
        person = c.get(f"/api/v1/persons/{person_id}").json()
        assert len(person["sources"]) >= 3
        school = [rec for rec in person["records"] if rec["source"] == "school"]
        token = school[0]["token"] if school else person["records"][0]["token"]
        source = school[0]["source"] if school else person["records"][0]["source"]
        assert c.get(f"/api/v1/records/{source}/{token}").json()["person_id"] == person_id
        assert len(c.get(f"/api/v1/persons/{person_id}/timeline").json()["events"]) == len(person["records"])
        assert c.get("/api/v1/review-pairs").status_code == 200

    # A new school snapshot: one child left, one changed an attribute; every person keeps its id.
    rows = [dict(r) for r in town.sources["school"]]
    left = rows.pop()
    rows[0]["absence_days"] = "99"
    with server.client() as c:
        r = c.post("/api/v1/submissions", content=agents["school"].submit("school", rows), headers=NDJSON)
        assert r.json()["accepted"] == len(rows)
    second = wait_for_run(server, first["id"])
    assert second["records"] == first["records"] - 1
    with server.client("caseworker") as c:
        again = c.get(f"/api/v1/persons/{person_id}").json()
        assert again["person_id"] == person_id
        assert {r["token"] for r in again["records"]} >= {r["token"] for r in person["records"] if r["source"] != "school"}
        timeline = c.get(f"/api/v1/persons/{person_id}/timeline").json()["events"]
        assert [e["submission_id"] for e in timeline] == sorted(e["submission_id"] for e in timeline)
        everyone = c.get("/api/v1/persons", params={"limit": 1000}).json()
    assert everyone["total"] >= second["persons"] - 1

    with server.client("analyst") as c:
        text = c.get("/api/v1/exports/persons.csv").content.decode("utf-8-sig")
        table = list(csv.DictReader(io.StringIO(text)))
        assert len(table) == second["records"]
        # Japanese labels from policy/attributes.toml as column names, never keys; sources by their labels.
        assert list(table[0]) == ["人物ID", "データ元", "記録トークン", "年間欠席日数", "就学援助", "乳幼児健診", "転入元の市区町村コード"]
        assert "住民記録" in {r["データ元"] for r in table} and not {r["データ元"] for r in table} & {"residents", "school", "maternal"}
        parquet = pq.read_table(io.BytesIO(c.get("/api/v1/exports/persons.parquet").content))
        assert parquet.num_rows == second["records"] and parquet.column_names == list(table[0])
        sheet = load_workbook(io.BytesIO(c.get("/api/v1/exports/persons.xlsx").content)).active
        assert [x.value for x in sheet[1]] == list(table[0]) and sheet.max_row == second["records"] + 1
    with server.client("caseworker") as c:
        assert c.get("/api/v1/exports/persons.csv").status_code == 403
