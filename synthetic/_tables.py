"""The reference tables behind the synthetic town, read once from ``data/*.csv``."""

from __future__ import annotations

import csv
import functools
import random
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Generic, Sequence, TypeVar

_DATA = Path(__file__).with_name("data")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Weighted(Generic[T]):
    """Values with cumulative weights, for fast repeated weighted draws."""

    values: tuple[T, ...]
    cum_weights: tuple[float, ...]

    @classmethod
    def of(cls, pairs: Sequence[tuple[T, float]]) -> "Weighted[T]":
        """Build from (value, weight) pairs; weights need not sum to one."""
        return cls(tuple(v for v, _ in pairs), tuple(accumulate(w for _, w in pairs)))

    def draw(self, rng: random.Random) -> T:
        """One value, drawn with probability proportional to its weight."""
        return rng.choices(self.values, cum_weights=self.cum_weights)[0]


@dataclass(frozen=True, slots=True)
class Name:
    """A name part with its reading (katakana)."""

    kanji: str
    kana: str


@dataclass(frozen=True, slots=True)
class ForeignName:
    """A foreign name part: alphabet form, katakana reading, and a kanji form where one exists."""

    latin: str
    kana: str
    kanji: str
    kanji_kana: str


@dataclass(frozen=True, slots=True)
class Municipality:
    """A municipality children move in from: 全国地方公共団体コード (6 digits with check digit)."""

    code: str
    prefecture: str
    city: str
    postal_prefix: str


@dataclass(frozen=True, slots=True)
class District:
    """A district (町名 or 大字) of the synthetic town; ``chome`` is 0 where it has no 丁目."""

    name: str
    postal_code: str
    chome: int


#: Birth cohorts of ``given_names.csv`` (its weight columns), by first birth year.
GIVEN_NAME_COHORTS: tuple[int, ...] = (2008, 2014, 2020)


@dataclass(frozen=True, slots=True)
class Tables:
    """Every table the generator draws from."""

    surnames: Weighted[Name]
    #: (sex "1"/"2", cohort index) -> given names with readings
    given_names: dict[tuple[str, int], Weighted[Name]]
    #: nationality -> part ("family", "given1", "given2") -> names
    foreign: dict[str, dict[str, tuple[ForeignName, ...]]]
    #: common character -> ((itaiji, share of families that register it), ...)
    itaiji: dict[str, tuple[tuple[str, float], ...]]
    #: itaiji -> its common form
    common_form: dict[str, str]
    #: kanji -> visually similar kanji a clerk may type instead
    similar_kanji: dict[str, tuple[str, ...]]
    districts: tuple[District, ...]
    municipalities: tuple[Municipality, ...]


def _rows(name: str) -> list[dict[str, str]]:
    with open(_DATA / name, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def cohort_of(birth_year: int) -> int:
    """Index into ``GIVEN_NAME_COHORTS`` of the cohort a birth year belongs to."""
    index = 0
    for i, first_year in enumerate(GIVEN_NAME_COHORTS):
        if birth_year >= first_year:
            index = i
    return index


@functools.cache
def load_tables() -> Tables:
    """Read and index the data files (cached: the files are part of the package)."""
    surnames = Weighted.of([(Name(r["family_name"], r["kana"]), float(r["count"])) for r in _rows("surnames.csv")])

    given_rows = _rows("given_names.csv")
    given_names = {}
    for sex in ("1", "2"):
        for i, first_year in enumerate(GIVEN_NAME_COHORTS):
            column = f"w{first_year}"
            pairs = [(Name(r["given_name"], r["kana"]), float(r[column])) for r in given_rows if r["sex"] == sex]
            given_names[(sex, i)] = Weighted.of([(n, w) for n, w in pairs if w > 0])

    foreign: dict[str, dict[str, list[ForeignName]]] = {}
    for r in _rows("foreign_names.csv"):
        part = r["part"] if r["part"] == "family" else f"given{r['sex']}"
        name = ForeignName(r["latin"], r["kana"], r["kanji"], r["kanji_kana"])
        foreign.setdefault(r["nationality"], {}).setdefault(part, []).append(name)

    itaiji: dict[str, list[tuple[str, float]]] = {}
    common_form = {}
    for r in _rows("itaiji.csv"):
        itaiji.setdefault(r["common"], []).append((r["itaiji"], float(r["share"])))
        common_form[r["itaiji"]] = r["common"]

    similar: dict[str, list[str]] = {}
    for r in _rows("similar_kanji.csv"):
        similar.setdefault(r["kanji"], []).append(r["similar"])

    return Tables(
        surnames=surnames,
        given_names=given_names,
        foreign={nat: {part: tuple(v) for part, v in parts.items()} for nat, parts in foreign.items()},
        itaiji={c: tuple(v) for c, v in itaiji.items()},
        common_form=common_form,
        similar_kanji={k: tuple(v) for k, v in similar.items()},
        districts=tuple(District(r["district"], r["postal_code"], int(r["chome"])) for r in _rows("districts.csv")),
        municipalities=tuple(
            Municipality(r["code"], r["prefecture"], r["city"], r["postal_prefix"]) for r in _rows("municipalities.csv")
        ),
    )
