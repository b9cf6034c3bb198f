"""Screening: declared rules over a person's linked attributes, explainable item by item.

A screening file (TOML) names rules; each rule is a conjunction of conditions
on attributes of one source ("school", …) or of any source ("*"). A person is
flagged by every rule whose conditions all hold, and each flag lists the data
items that fired it — no opaque score: the score is the sum of the fired
rules' declared weights. The list is sorted by score and capped at the
declared capacity (上限人数), because staff time is the real limit.

Blank is not zero: a numeric condition on an attribute that is blank or absent
does not hold (a child who transferred in has "no data yet", not "0 days").
Use ``op = "missing"`` to screen for absent data on purpose.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Op = Literal["==", "!=", ">=", ">", "<=", "<", "in", "not_in", "missing", "present"]

_NUMERIC = {">=", ">", "<=", "<"}


class ScreeningError(Exception):
    """A screening file is missing or invalid; the message says where and how to fix it."""


class Condition(BaseModel):
    """One test on one attribute of one source ("*" = any source that has it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = "*"
    attribute: str
    op: Op
    value: Any = None

    @field_validator("value")
    @classmethod
    def _value_shape(cls, value: Any) -> Any:
        if isinstance(value, list):
            return tuple(str(v) for v in value)
        return value


class Rule(BaseModel):
    """A named conjunction of conditions with a weight staff can read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9_]+$")
    label: str
    weight: float = Field(gt=0)
    all: tuple[Condition, ...] = Field(min_length=1)


class ScreeningDocument(BaseModel):
    """A whole screening file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    capacity: int = Field(gt=0)
    rules: tuple[Rule, ...] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class FiredItem:
    """A data item that made a condition hold (pseudonymous: source, attribute, value)."""

    source: str
    attribute: str
    value: str | None
    condition: str


@dataclass(frozen=True, slots=True)
class Flag:
    """One fired rule and the items that fired it."""

    rule_id: str
    label: str
    weight: float
    items: tuple[FiredItem, ...]


@dataclass(frozen=True, slots=True)
class ScreeningEntry:
    """A flagged person: score, flags, and their rank on the list."""

    person_id: str
    score: float
    flags: tuple[Flag, ...]


@dataclass(frozen=True, slots=True)
class ScreeningList:
    """The capped list, and how many flagged persons the capacity left out."""

    entries: tuple[ScreeningEntry, ...]
    flagged: int
    capacity: int

    @property
    def left_out(self) -> int:
        """Flagged persons beyond the capacity."""
        return max(0, self.flagged - self.capacity)


def _describe(c: Condition) -> str:
    if c.op in ("missing", "present"):
        return f"{c.attribute} が{'未登録' if c.op == 'missing' else '登録あり'}"
    value = "、".join(c.value) if isinstance(c.value, tuple) else c.value
    return f"{c.attribute} {c.op} {value}"


def _number(text: str | None) -> float | None:
    if text is None or not str(text).strip():
        return None
    try:
        return float(str(text).strip())
    except ValueError:
        return None


def _holds(c: Condition, value: str | None) -> bool:
    if c.op == "missing":
        return value is None or not str(value).strip()
    if c.op == "present":
        return value is not None and bool(str(value).strip())
    if value is None or not str(value).strip():
        return False  # blank is not zero
    if c.op in _NUMERIC:
        left, right = _number(value), _number(str(c.value))
        if left is None or right is None:
            return False
        return {">=": left >= right, ">": left > right, "<=": left <= right, "<": left < right}[c.op]
    if c.op == "in":
        return str(value) in c.value
    if c.op == "not_in":
        return str(value) not in c.value
    if c.op == "==":
        return str(value) == str(c.value)
    return str(value) != str(c.value)


class Screening:
    """A validated screening file, ready to evaluate persons."""

    def __init__(self, document: ScreeningDocument):
        self.document = document

    @property
    def capacity(self) -> int:
        """上限人数: how many persons the list shows at most."""
        return self.document.capacity

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The declared rules."""
        return self.document.rules

    def evaluate(self, attributes: Mapping[str, Mapping[str, str]]) -> tuple[Flag, ...]:
        """Flags for one person, given ``attributes[source][attribute] = value``."""
        flags = []
        for rule in self.document.rules:
            items = []
            for c in rule.all:
                sources = attributes.keys() if c.source == "*" else [c.source]
                hit = None
                for source in sources:
                    value = attributes.get(source, {}).get(c.attribute)
                    if _holds(c, value):
                        hit = FiredItem(source, c.attribute, value, _describe(c))
                        break
                if hit is None and c.op == "missing" and c.source == "*" and not any(
                    c.attribute in attrs for attrs in attributes.values()
                ):
                    hit = FiredItem("*", c.attribute, None, _describe(c))
                if hit is None:
                    break
                items.append(hit)
            else:
                flags.append(Flag(rule.id, rule.label, rule.weight, tuple(items)))
        return tuple(flags)

    def screen(self, persons: Mapping[str, Mapping[str, Mapping[str, str]]]) -> ScreeningList:
        """The list for many persons (``persons[person_id][source][attribute]``), best first, capped."""
        entries = []
        for person_id, attributes in persons.items():
            flags = self.evaluate(attributes)
            if flags:
                entries.append(ScreeningEntry(person_id, sum(f.weight for f in flags), flags))
        entries.sort(key=lambda e: (-e.score, e.person_id))
        return ScreeningList(tuple(entries[: self.capacity]), len(entries), self.capacity)


def parse_screening(data: Mapping[str, Any], origin: str = "screening") -> Screening:
    """Validate a screening document already read from TOML."""
    try:
        return Screening(ScreeningDocument.model_validate(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ScreeningError(f"{origin}: 「{where}」が不正です（{first['msg']}）。スクリーニング定義を確認してください") from None


def load_screening(path: Path | str) -> Screening:
    """Read and validate a screening file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScreeningError(f"スクリーニング定義 {path} が見つかりません") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScreeningError(f"{path}: TOML として読めません（{exc}）") from None
    return parse_screening(data, str(path))


def default_screening() -> Screening:
    """The shipped example rules (policy/default_screening.toml)."""
    return load_screening(Path(__file__).with_name("default_screening.toml"))


__all__: Sequence[str] = (
    "Condition",
    "FiredItem",
    "Flag",
    "Rule",
    "Screening",
    "ScreeningEntry",
    "ScreeningError",
    "ScreeningList",
    "default_screening",
    "load_screening",
    "parse_screening",
)
