"""Trust boundary 1 (DESIGN.md): after a full run, nothing the gateway wrote holds a plaintext identity.

Every name, reading, birth date (in the usual formats), address, postal code
and department record id of the town is searched for, byte for byte, in
every file under the gateway's home (database, WAL, logs, keys, exports) and,
on PostgreSQL, in every row of every table.
"""

from __future__ import annotations

import re
from datetime import date

import pytest
from linkage.normalise.dates import parse_birth_date
from synthetic import Town
from sqlalchemy import MetaData, create_engine, select

from tests.support.gateway import Server, stop_server, wait_for_run
from synthetic.agents import SyntheticAgent

NDJSON = {"Content-Type": "application/x-ndjson"}
_NAME_COLUMNS = ("family_name", "given_name", "full_name", "family_name_kana", "given_name_kana", "full_name_kana")
_HEX_RUN = re.compile(rb"[0-9a-f]{32,}")


def _wareki(d: date) -> list[str]:
    era, letter, start = ("令和", "R", 2018) if d >= date(2019, 5, 1) else ("平成", "H", 1988)
    y = d.year - start
    return [f"{era}{'元' if y == 1 else y}年{d.month}月{d.day}日", f"{letter}{y:02d}.{d.month:02d}.{d.day:02d}", f"{letter}{y}.{d.month}.{d.day}"]


def identity_needles(town: Town) -> set[str]:
    """Every identity string of the town, as held and in other common spellings."""
    needles: set[str] = set()
    for rows in town.sources.values():
        for row in rows:
            needles.add(row["record_id"])
            for column in _NAME_COLUMNS:
                value = (row.get(column) or "").strip()
                if len(value) >= 2:
                    needles.add(value)
                    needles.update(part for part in re.split(r"[\s　]+", value) if len(part) >= 2)
            for column in ("address", "postal_code"):
                if len(row.get(column) or "") >= 5:
                    needles.add(row[column])
            raw = row.get("birth_date") or ""
            if raw:
                needles.add(raw)
                y, m, d = parse_birth_date(raw)
                if y and m and d:
                    born = date(y, m, d)
                    needles.update({born.isoformat(), born.strftime("%Y%m%d"), born.strftime("%Y/%m/%d"),
                                    f"{y}/{m}/{d}", f"{y}年{m}月{d}日", *_wareki(born)})
    return needles


#: An ASCII needle shorter than this is not searched: a few bytes such as ``HUY`` (one part of an alphabet name) turn
#: up by chance in the megabytes of ciphertext a gateway holds (3 bytes: one chance hit per 16 MB of random bytes;
#: 4 bytes: per 4 GB; 5 bytes: per 1 TB), while the whole name it belongs to (``NGUYEN HUY``) is still searched.
#: Japanese needles are 6 bytes or more in UTF-8.
MIN_ASCII_NEEDLE = 5


def find_hits(blob: bytes, needles: set[str]) -> set[str]:
    """Needles found in ``blob``; a digits-only needle inside a long hex string (a token or a hash) is not a hit,
    and an ASCII needle shorter than :data:`MIN_ASCII_NEEDLE` bytes is not searched (chance hits in binary data)."""
    hits = set()
    hex_spans = [m.span() for m in _HEX_RUN.finditer(blob)]
    for needle in needles:
        raw = needle.encode("utf-8")
        if needle.isascii() and len(raw) < MIN_ASCII_NEEDLE:
            continue
        start = blob.find(raw)
        while start != -1:
            if not (needle.isdigit() and any(a <= start and start + len(raw) <= b for a, b in hex_spans)):
                hits.add(needle)
                break
            start = blob.find(raw, start + 1)
    return hits


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_nothing_the_gateway_wrote_names_a_child(server: Server, town: Town, agents: dict[str, SyntheticAgent]) -> None:
    with server.client() as c:
        for source, agent in agents.items():
            assert c.post("/api/v1/submissions", content=agent.submit(source, town.sources[source]), headers=NDJSON).status_code == 200
        # Refusals take the error paths too (messages, events, logs).
        r = c.post("/api/v1/submissions", headers=NDJSON,
                   content=agents["school"].submit("school", town.sources["school"][:20], attributes={"個人番号": "1"}))
        assert r.status_code == 403
        assert c.post("/api/v1/submissions", headers=NDJSON, content=agents["npo"].submit("npo", town.sources["npo"])[:-100]).status_code == 400
    run = wait_for_run(server)
    assert run["persons"] > 0
    exports = server.home.path / "exports"
    exports.mkdir()
    with server.client("caseworker") as c:
        listing = c.get("/api/v1/persons", params={"limit": 50}).json()
        for p in listing["persons"]:
            c.get(f"/api/v1/persons/{p['person_id']}")
            c.get(f"/api/v1/persons/{p['person_id']}/timeline")
        (exports / "review.json").write_bytes(c.get("/api/v1/review-pairs").content)
    with server.client("analyst") as c:
        (exports / "persons.csv").write_bytes(c.get("/api/v1/exports/persons.csv").content)
        (exports / "persons.parquet").write_bytes(c.get("/api/v1/exports/persons.parquet").content)
    with server.client("admin") as c:
        c.post("/api/v1/retention/purge")
    stop_server(server)

    needles = identity_needles(town)
    assert len(needles) > 2000
    files = [p for p in server.home.path.rglob("*") if p.is_file()]
    assert {"gateway.log", "persons.csv", "persons.parquet"} <= {p.name for p in files}
    # SQLite may remove its -shm/-wal files just after the server stops: read what is still there.
    hits = {str(p.relative_to(server.home.path)): find_hits(p.read_bytes(), needles) for p in files if p.exists()}
    url = server.home.env.get("TSUNAGU_DATABASE_URL")
    if url:
        hits["postgresql"] = find_hits(_dump(url), needles)
    else:
        assert "gateway.db" in hits
    assert {where: found for where, found in hits.items() if found} == {}


def _dump(url: str) -> bytes:
    """Every row of every table, values as bytes."""
    engine = create_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    out = bytearray()
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            for row in conn.execute(select(table)):
                for value in row:
                    out += value if isinstance(value, bytes) else str(value).encode("utf-8")
                    out += b"\n"
    engine.dispose()
    assert len(out) > 100_000
    return bytes(out)


def test_the_search_finds_what_it_looks_for(town: Town) -> None:
    needles = identity_needles(town)
    row = town.sources["school"][0]
    assert find_hits(f"x{row['full_name']}y".encode(), needles)
    assert find_hits(b"record " + row["record_id"].encode(), needles) == {row["record_id"]}
    digits = next(n for n in needles if n.isdigit() and len(n) == 8)
    assert not find_hits(b"ab" * 10 + digits.encode() + b"cd" * 10, {digits})
