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

Rules are written against the canonical values of the attribute catalog
(``policy.attributes``). :func:`check_rules` reports a rule naming an
undeclared attribute or value; :func:`check_against_data` reports a rule that
matches no one while the data holds values it does not cover (a department's
raw words that no mapping turned into codes, for example). Both are meant to be
shown where the rules are loaded and on the administrator's dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from policy.attributes import AttributeCatalog, default_catalog
from policy._toml import first_problem, read_toml

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


_OP_TEXT = {"==": "が", "!=": "が次以外:", ">=": "が", ">": "が", "<=": "が", "<": "が", "in": "が次のどれか:", "not_in": "が次のどれでもない:"}
_OP_SUFFIX = {">=": "以上", ">": "より大きい", "<=": "以下", "<": "未満"}


def describe_condition(c: Condition, catalog: AttributeCatalog | None = None) -> str:
    """A condition in Japanese with the catalog's labels (「乳幼児健診が未受診」, 「年間欠席日数が30日以上」)."""
    catalog = catalog or default_catalog()
    label = catalog.label(c.attribute)
    if c.op in ("missing", "present"):
        return f"{label}が{'未登録' if c.op == 'missing' else '登録あり'}"
    values = c.value if isinstance(c.value, tuple) else (c.value,)
    shown = "、".join(catalog.value_label(c.attribute, str(v)) for v in values)
    return f"{label}{_OP_TEXT[c.op]}{shown}{_OP_SUFFIX.get(c.op, '')}"


def _describe(c: Condition) -> str:
    return describe_condition(c)


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

    def screen(self, persons: Mapping[str, Mapping[str, Mapping[str, str]]], *, beyond_capacity: bool = False) -> ScreeningList:
        """The list for many persons (``persons[person_id][source][attribute]``), best first, capped.

        ``beyond_capacity`` lists every flagged person (an explicit choice the caller logs).
        """
        entries = []
        for person_id, attributes in persons.items():
            flags = self.evaluate(attributes)
            if flags:
                entries.append(ScreeningEntry(person_id, sum(f.weight for f in flags), flags))
        entries.sort(key=lambda e: (-e.score, e.person_id))
        return ScreeningList(tuple(entries if beyond_capacity else entries[: self.capacity]), len(entries), self.capacity)


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """Something wrong with a rule, in Japanese for the administrator (``kind``: unknown_attribute, unknown_value, …)."""

    rule_id: str
    rule_label: str
    kind: str
    message: str


_VALUE_OPS = {"==", "!=", "in", "not_in"}


def check_rules(screening: Screening, catalog: AttributeCatalog | None = None) -> list[RuleProblem]:
    """Rules that name an attribute or a value the catalog does not declare, or compare a code as a number."""
    catalog = catalog or default_catalog()
    problems = []
    for rule in screening.rules:
        for c in rule.all:
            spec = catalog.get(c.attribute)
            if spec is None:
                problems.append(RuleProblem(rule.id, rule.label, "unknown_attribute",
                                            f"属性「{c.attribute}」は属性の定義にありません（綴りを確かめるか、定義に加えてください）。"))
                continue
            if c.op in _NUMERIC and spec.type != "number":
                problems.append(RuleProblem(rule.id, rule.label, "not_a_number",
                                            f"「{spec.label}」は数値ではないので「{c.op}」では比べられません。"))
            if c.op in _VALUE_OPS and spec.type == "code":
                values = c.value if isinstance(c.value, tuple) else (str(c.value),)
                for value in values:
                    if value not in spec.values:
                        allowed = "、".join(f"{code}（{label}）" for code, label in spec.values.items())
                        problems.append(RuleProblem(rule.id, rule.label, "unknown_value",
                                                    f"「{spec.label}」に値「{value}」はありません（正規の値: {allowed}）。"))
    return problems


def observed_values(persons: Mapping[str, Mapping[str, Mapping[str, str]]]) -> dict[tuple[str, str], dict[str, int]]:
    """How often each non-blank value occurs, per (source, attribute), over ``persons[person_id][source][attribute]``."""
    seen: dict[tuple[str, str], dict[str, int]] = {}
    for attributes in persons.values():
        for source, values in attributes.items():
            for name, value in values.items():
                if value is not None and str(value).strip():
                    counts = seen.setdefault((source, name), {})
                    counts[str(value)] = counts.get(str(value), 0) + 1
    return seen


def check_against_data(screening: Screening, persons: Mapping[str, Mapping[str, Mapping[str, str]]],
                       catalog: AttributeCatalog | None = None) -> list[RuleProblem]:
    """Rules that flag no one while the data holds values they do not cover (neither the rule's nor a declared code)."""
    catalog = catalog or default_catalog()
    seen = observed_values(persons)
    hits = {rule.id: 0 for rule in screening.rules}
    for attributes in persons.values():
        for flag in screening.evaluate(attributes):
            hits[flag.rule_id] += 1
    problems = []
    for rule in screening.rules:
        if hits[rule.id]:
            continue
        for c in rule.all:
            if c.op in ("missing", "present"):
                continue
            spec = catalog.get(c.attribute)
            counts: dict[str, int] = {}
            for (source, name), values in seen.items():
                if name == c.attribute and (c.source in ("*", source)):
                    for value, n in values.items():
                        counts[value] = counts.get(value, 0) + n
            if c.op in _NUMERIC:
                stray = {v: n for v, n in counts.items() if _number(v) is None}
            else:
                named = set(c.value) if isinstance(c.value, tuple) else {str(c.value)}
                declared = set(spec.values) if spec is not None and spec.type == "code" else set()
                stray = {v: n for v, n in counts.items() if v not in named and v not in declared}
            if stray:
                shown = "、".join(f"「{v}」{n} 件" for v, n in sorted(stray.items(), key=lambda kv: -kv[1])[:5])
                problems.append(RuleProblem(rule.id, rule.label, "uncovered_values",
                                            f"誰にも該当しません。データの「{catalog.label(c.attribute)}」に規則が扱えない値があります: {shown}。"
                                            "エージェントの対応表の [values] で正規の値に対応付けてください。"))
    return problems


def parse_screening(data: Mapping[str, Any], origin: str = "screening") -> Screening:
    """Validate a screening document already read from TOML."""
    try:
        return Screening(ScreeningDocument.model_validate(data))
    except ValidationError as exc:
        raise ScreeningError(f"{first_problem(origin, exc)}。スクリーニング定義を確認してください") from None


def load_screening(path: Path | str) -> Screening:
    """Read and validate a screening file."""
    path = Path(path)
    return parse_screening(read_toml(path, ScreeningError, "スクリーニング定義"), str(path))


def default_screening() -> Screening:
    """The shipped example rules (policy/default_screening.toml)."""
    return load_screening(Path(__file__).with_name("default_screening.toml"))


__all__: Sequence[str] = (
    "Condition",
    "FiredItem",
    "Flag",
    "Rule",
    "RuleProblem",
    "Screening",
    "ScreeningEntry",
    "ScreeningError",
    "ScreeningList",
    "check_against_data",
    "check_rules",
    "default_screening",
    "describe_condition",
    "load_screening",
    "observed_values",
    "parse_screening",
)
