"""The generated town: each source's rows, the truth, and writing them out as department files."""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from linkage.record import IDENTITY_COLUMNS
from ._population import generate_population
from ._sources import ATTRIBUTES, SOURCES, render_sources
from ._tables import load_tables
from ._variation import cp932_text

#: Encodings a department file may be written in.
ENCODINGS: tuple[str, ...] = ("utf-8", "utf-8-sig", "cp932")

#: The default reference date: the first day of school year 令和7年度.
DEFAULT_AS_OF = date(2025, 4, 1)


@dataclass(frozen=True)
class Town:
    """A synthetic town: every source's rows (canonical columns, strings) and who each row is about.

    ``sources`` maps a source name to its rows; ``truth`` holds
    ``(source, record_id, person_id)`` for every row of every source.
    """

    seed: int
    n_children: int
    as_of: date
    sources: dict[str, list[dict[str, str]]]
    truth: list[tuple[str, str, str]]

    def columns(self, source: str) -> tuple[str, ...]:
        """The columns of a source's file: the identity columns, then its attributes."""
        return IDENTITY_COLUMNS + ATTRIBUTES[source]

    def write(self, out_dir: str | Path, encodings: dict[str, str] | None = None) -> list[Path]:
        """Write ``<source>.csv`` for every source and ``truth.csv``; return the paths written.

        ``encodings`` maps a source to "utf-8" (the default), "utf-8-sig" or
        "cp932". A CP932 file holds 〓 for each character outside CP932, as
        the systems that write CP932 do; the in-memory rows keep the character.
        """
        encodings = dict(encodings or {})
        unknown = sorted(set(encodings) - set(self.sources))
        if unknown:
            raise ValueError(f"encodings: unknown source(s) {unknown}; sources are {list(self.sources)}")
        for source, encoding in encodings.items():
            if encoding not in ENCODINGS:
                raise ValueError(f"encodings[{source!r}]: {encoding!r} is not one of {list(ENCODINGS)}")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for source, rows in self.sources.items():
            encoding = encodings.get(source, "utf-8")
            columns = self.columns(source)
            path = out / f"{source}.csv"
            with open(path, "w", encoding=encoding, newline="") as f:
                writer = csv.writer(f)
                writer.writerow(columns)
                if encoding == "cp932":
                    writer.writerows([cp932_text(row[c]) for c in columns] for row in rows)
                else:
                    writer.writerows([row[c] for c in columns] for row in rows)
            paths.append(path)
        path = out / "truth.csv"
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(("source", "record_id", "person_id"))
            writer.writerows(self.truth)
        paths.append(path)
        return paths


def generate_town(n_children: int = 50_000, seed: int = 0, as_of: date = DEFAULT_AS_OF) -> Town:
    """Generate a town of ``n_children`` children aged 0–17 on ``as_of``; the same seed gives the same town."""
    if n_children < 1:
        raise ValueError(f"n_children must be at least 1, not {n_children}")
    rng = random.Random(seed)
    tables = load_tables()
    children = generate_population(n_children, as_of, rng, tables)
    rendered = render_sources(children, as_of, rng, tables)
    sources = {source: [row for _, row in rendered[source]] for source in SOURCES}
    truth = [(source, row["record_id"], person) for source in SOURCES for person, row in rendered[source]]
    return Town(seed=seed, n_children=n_children, as_of=as_of, sources=sources, truth=truth)
