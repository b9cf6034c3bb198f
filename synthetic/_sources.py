"""Each department's records of the town's children, in canonical columns and the department's own formats."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date

from linkage.record import IDENTITY_COLUMNS
from . import _variation as v
from ._population import Address, Child
from ._tables import Name, Tables

#: Source names, in the order they are generated and written.
SOURCES: tuple[str, ...] = ("residents", "school", "maternal", "npo")

#: Attribute columns each source carries after the identity columns.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "residents": ("moved_in_from",),
    "school": ("absence_days", "school_aid"),
    "maternal": ("checkup_missed",),
    "npo": (),
}


@dataclass(frozen=True, slots=True)
class Noise:
    """Error rates of one source: kana and kanji rates apply to each name part, the others to each record."""

    kana_variant: float = 0.0
    small_kana: float = 0.0
    kana_typo: float = 0.0
    kana_missing: float = 0.0
    kanji_typo: float = 0.0
    date_swap: float = 0.0
    date_digit: float = 0.0


NOISE: dict[str, Noise] = {
    "residents": Noise(kana_variant=0.005, kana_typo=0.001),
    "school": Noise(kana_variant=0.04, small_kana=0.01, kana_typo=0.01, kana_missing=0.01,
                    kanji_typo=0.005, date_swap=0.003, date_digit=0.003),
    "maternal": Noise(kana_variant=0.03, small_kana=0.03, kana_typo=0.01, kana_missing=0.03,
                      kanji_typo=0.005, date_swap=0.003, date_digit=0.003),
    "npo": Noise(kana_variant=0.08, small_kana=0.02, kana_typo=0.02),
}

#: School: enrolment in the town's public schools (the rest attend private,
#: national or special-needs schools, or — for some foreign children — none).
_ENROLLED_ELEMENTARY = 0.98
_ENROLLED_JUNIOR_HIGH = 0.92
_ENROLLED_FOREIGN = 0.88
_SCHOOL_NAME_SEPARATOR = (("\u3000", 0.75), (" ", 0.05), ("", 0.20))
_SCHOOL_KANA_SEPARATOR = (("\u3000", 0.80), ("", 0.20))
_SCHOOL_GETA = 0.01
_SCHOOL_DATE_STYLE = (("letter0", 0.35), ("letter", 0.30), ("kanji", 0.35))
_SCHOOL_ADDRESS_PREFIX = (("none", 0.45), ("city", 0.15), ("full", 0.15), ("blank", 0.25))
_SCHOOL_ADDRESS_STYLE = (("jukyo", 0.30), ("banchi", 0.15), ("hyphen", 0.35), ("kanji", 0.10), ("fullwidth", 0.10))
_SCHOOL_POSTAL = (("hyphen", 0.45), ("plain", 0.15), ("fullwidth", 0.05), ("blank", 0.35))
_FORMER_ADDRESS = 0.40
_CN_JAPANESE_READING = 0.60
_FUTOKO_ELEMENTARY = 0.017
_FUTOKO_JUNIOR_HIGH = 0.067
_SCHOOL_AID_LOW_INCOME = 0.85
_SCHOOL_AID_OTHER = 0.02
_ABSENCE_UNKNOWN_MOVED_IN = 0.50

#: Maternal and child health: records of children 0–5.
_MATERNAL_COVERAGE = 0.99
_MATERNAL_COVERAGE_MOVED_IN = 0.90
_MATERNAL_COMMON_FORM = 0.15
_MATERNAL_FORMER_NAME = 0.50
_MATERNAL_ADDRESS_PREFIX = (("city", 0.50), ("full", 0.30), ("none", 0.20))
_MATERNAL_ADDRESS_STYLE = (("banchi", 0.40), ("jukyo", 0.40), ("hyphen", 0.20))
_MATERNAL_POSTAL = (("plain", 0.60), ("hyphen", 0.40))
_CHECKUP_MISSED_LOW_INCOME = 0.15
_CHECKUP_MISSED_OTHER = 0.05

#: NPO / こども食堂 participants (ages 2–15), over-representing poor households.
_NPO_AGES = (2, 15)
_NPO_LOW_INCOME = 0.22
_NPO_OTHER = 0.026
_NPO_HIRAGANA = 0.40
_NPO_KANA_LAYOUT = (("split", 0.60), ("\u3000", 0.20), (" ", 0.10), ("", 0.10))
_NPO_BIRTH = (("iso_month", 0.45), ("kanji_month", 0.35), ("blank", 0.20))
_NPO_SEX = 0.50
_NPO_ADDRESS = (("postal_only", 0.30), ("street", 0.40), ("blank", 0.30))
_NPO_POSTAL = (("hyphen", 0.60), ("plain", 0.30), ("fullwidth", 0.10))


def _pick(rng: random.Random, options: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([o for o, _ in options], [w for _, w in options])[0]


def _empty_row(source: str) -> dict[str, str]:
    return dict.fromkeys(IDENTITY_COLUMNS + ATTRIBUTES[source], "")


def school_grade(birth: date, as_of: date) -> int:
    """School grade (1–9 for 小1–中3) in the school year of ``as_of``; children born on 1 April join the earlier year."""
    school_year = as_of.year if (as_of.month, as_of.day) >= (4, 1) else as_of.year - 1
    birth_year = birth.year if (birth.month, birth.day) >= (4, 2) else birth.year - 1
    return school_year - birth_year - 6


class _Clerk:
    """Writes children down the way one department does, with that department's errors."""

    def __init__(self, rng: random.Random, tables: Tables, source: str):
        self.rng = rng
        self.tables = tables
        self.noise = NOISE[source]

    def kana(self, kana: str) -> str:
        rng, noise = self.rng, self.noise
        if rng.random() < noise.kana_variant:
            kana = v.hand_entry_variant(rng, kana)
        if rng.random() < noise.small_kana:
            kana = v.without_small_kana(kana)
        if rng.random() < noise.kana_typo:
            kana = v.kana_typo(rng, kana)
        return kana

    def kanji(self, name: str) -> str:
        if self.rng.random() < self.noise.kanji_typo:
            return v.kanji_typo(self.rng, self.tables, name)
        return name

    def birth_date(self, d: date) -> date:
        if self.rng.random() < self.noise.date_swap:
            d = v.swap_day_month(d)
        if self.rng.random() < self.noise.date_digit:
            d = v.digit_typo(self.rng, d)
        return d

    def address(self, child: Child) -> Address:
        household = child.household
        if household.former_address is not None and self.rng.random() < _FORMER_ADDRESS:
            return household.former_address
        return household.address


def residents_row(clerk: _Clerk, child: Child) -> dict[str, str]:
    """住民記録: registered names (異体字 kept), katakana, ISO dates, sex 1/2, full address."""
    household = child.household
    row = _empty_row("residents")
    if household.foreign_family is not None:
        family, given = household.foreign_family.latin, child.given.kanji
        if household.foreign_layout == "split":
            row["family_name"], row["given_name"] = family, given
        elif household.foreign_layout == "full":
            row["full_name"] = f"{family} {given}"
        else:
            row["full_name"] = f"{given} {family}"
    else:
        row["family_name"], row["given_name"] = household.family.kanji, child.given.kanji
    row["family_name_kana"] = clerk.kana(household.family.kana)
    row["given_name_kana"] = clerk.kana(child.given.kana)
    row["birth_date"] = child.birth_date.isoformat()
    row["sex"] = child.sex
    row["postal_code"] = v.postal_text(household.address.postal_code, "hyphen")
    row["address"] = v.address_text(household.address, "jukyo", "full", building=True)
    row["moved_in_from"] = household.moved_in_from.code if household.moved_in_from else ""
    return row


def _school_name(clerk: _Clerk, child: Child) -> tuple[Name, Name]:
    """The (family, given) name and katakana reading a school knows the child by."""
    household, rng = child.household, clerk.rng
    if household.nationality == "CN":
        family, given = household.foreign_family, child.foreign_given
        if rng.random() < _CN_JAPANESE_READING:
            return Name(family.kanji, family.kanji_kana), Name(given.kanji, given.kanji_kana)
        return Name(family.kanji, family.kana), Name(given.kanji, given.kana)
    if household.foreign_family is not None:
        parts = child.given.kana.split("\u3000")
        call_name = parts[-1] if household.nationality == "VN" else parts[0]
        family = household.alias_family or Name(household.family.kana, household.family.kana)
        return family, Name(call_name, call_name)
    family = household.former_family or household.family
    return family, child.given


def school_row(clerk: _Clerk, child: Child, as_of: date) -> dict[str, str]:
    """校務支援: one-field name (外字 as common form or 〓), hiragana ふりがな, 和暦, 男/女, abbreviated address."""
    rng, tables, household = clerk.rng, clerk.tables, child.household
    row = _empty_row("school")
    family, given = _school_name(clerk, child)
    family_kanji = clerk.kanji(v.without_itaiji(rng, tables, family.kanji, _SCHOOL_GETA))
    given_kanji = clerk.kanji(v.without_itaiji(rng, tables, given.kanji, _SCHOOL_GETA))
    row["full_name"] = family_kanji + _pick(rng, _SCHOOL_NAME_SEPARATOR) + given_kanji
    if rng.random() >= clerk.noise.kana_missing:
        reading = clerk.kana(family.kana) + _pick(rng, _SCHOOL_KANA_SEPARATOR) + clerk.kana(given.kana)
        row["full_name_kana"] = v.hiragana(reading)
    row["birth_date"] = v.wareki(clerk.birth_date(child.birth_date), _pick(rng, _SCHOOL_DATE_STYLE))
    row["sex"] = "男" if child.sex == "1" else "女"
    address = clerk.address(child)
    prefix = _pick(rng, _SCHOOL_ADDRESS_PREFIX)
    if prefix != "blank":
        row["address"] = v.address_text(address, _pick(rng, _SCHOOL_ADDRESS_STYLE), prefix, building=rng.random() < 0.7)
    postal = _pick(rng, _SCHOOL_POSTAL)
    if postal != "blank":
        row["postal_code"] = v.postal_text(address.postal_code, postal)
    grade = school_grade(child.birth_date, as_of)
    futoko = _FUTOKO_ELEMENTARY if grade <= 6 else _FUTOKO_JUNIOR_HIGH
    if household.low_income:
        futoko *= 2
    if household.moved_in_from is not None and rng.random() < _ABSENCE_UNKNOWN_MOVED_IN:
        row["absence_days"] = ""
    elif rng.random() < futoko:
        row["absence_days"] = str(rng.randint(30, 180))
    else:
        row["absence_days"] = str(min(29, int(rng.expovariate(1 / 4))))
    aid = _SCHOOL_AID_LOW_INCOME if household.low_income else _SCHOOL_AID_OTHER
    row["school_aid"] = "receiving" if rng.random() < aid else "none"  # canonical codes (policy/attributes.toml)
    return row


def maternal_row(clerk: _Clerk, child: Child) -> dict[str, str]:
    """母子保健: kanji in two columns, half-width katakana, YYYYMMDD, sex M/F."""
    rng, tables, household = clerk.rng, clerk.tables, child.household
    row = _empty_row("maternal")
    family = household.family
    if household.former_family is not None and rng.random() < _MATERNAL_FORMER_NAME:
        family = household.former_family
    family_kanji, given_kanji = family.kanji, child.given.kanji
    if household.foreign_family is None:
        if rng.random() < _MATERNAL_COMMON_FORM:
            family_kanji = v.without_itaiji(rng, tables, family_kanji, 0.0)
        family_kanji, given_kanji = clerk.kanji(family_kanji), clerk.kanji(given_kanji)
    row["family_name"], row["given_name"] = family_kanji, given_kanji
    if rng.random() >= clerk.noise.kana_missing:
        row["family_name_kana"] = v.halfwidth(clerk.kana(family.kana))
        row["given_name_kana"] = v.halfwidth(clerk.kana(child.given.kana))
    row["birth_date"] = clerk.birth_date(child.birth_date).strftime("%Y%m%d")
    row["sex"] = "M" if child.sex == "1" else "F"
    row["postal_code"] = v.postal_text(household.address.postal_code, _pick(rng, _MATERNAL_POSTAL))
    row["address"] = v.address_text(
        household.address, _pick(rng, _MATERNAL_ADDRESS_STYLE), _pick(rng, _MATERNAL_ADDRESS_PREFIX), building=True
    )
    missed = _CHECKUP_MISSED_LOW_INCOME if household.low_income else _CHECKUP_MISSED_OTHER
    row["checkup_missed"] = "missed" if rng.random() < missed else "attended"
    return row


def npo_row(clerk: _Clerk, child: Child) -> dict[str, str]:
    """NPO / こども食堂 list: kana only, birth year-month or blank, partial addresses."""
    rng, household = clerk.rng, child.household
    row = _empty_row("npo")
    family_kana, given_kana = clerk.kana(household.family.kana), clerk.kana(child.given.kana)
    if rng.random() < _NPO_HIRAGANA:
        family_kana, given_kana = v.hiragana(family_kana), v.hiragana(given_kana)
    layout = _pick(rng, _NPO_KANA_LAYOUT)
    if layout == "split":
        row["family_name_kana"], row["given_name_kana"] = family_kana, given_kana
    else:
        row["full_name_kana"] = family_kana + layout + given_kana
    birth = _pick(rng, _NPO_BIRTH)
    if birth == "iso_month":
        row["birth_date"] = f"{child.birth_date.year}-{child.birth_date.month:02d}"
    elif birth == "kanji_month":
        row["birth_date"] = f"{child.birth_date.year}年{child.birth_date.month}月"
    if rng.random() < _NPO_SEX:
        row["sex"] = "男" if child.sex == "1" else "女"
    address = clerk.address(child)
    shape = _pick(rng, _NPO_ADDRESS)
    if shape != "blank":
        row["postal_code"] = v.postal_text(address.postal_code, _pick(rng, _NPO_POSTAL))
    if shape == "street":
        row["address"] = v.address_text(address, "hyphen", "none", building=False)
    return row


def _in_school(rng: random.Random, child: Child, as_of: date) -> bool:
    grade = school_grade(child.birth_date, as_of)
    if not 1 <= grade <= 9:
        return False
    enrolled = _ENROLLED_ELEMENTARY if grade <= 6 else _ENROLLED_JUNIOR_HIGH
    if child.household.foreign_family is not None:
        enrolled *= _ENROLLED_FOREIGN
    return rng.random() < enrolled


def _in_maternal(rng: random.Random, child: Child, as_of: date) -> bool:
    if child.age(as_of) > 5:
        return False
    coverage = _MATERNAL_COVERAGE_MOVED_IN if child.household.moved_in_from else _MATERNAL_COVERAGE
    return rng.random() < coverage


def _in_npo(rng: random.Random, child: Child, as_of: date) -> bool:
    if not _NPO_AGES[0] <= child.age(as_of) <= _NPO_AGES[1]:
        return False
    return rng.random() < (_NPO_LOW_INCOME if child.household.low_income else _NPO_OTHER)


def render_sources(
    children: list[Child], as_of: date, rng: random.Random, tables: Tables
) -> dict[str, list[tuple[str, dict[str, str]]]]:
    """Every source's rows, each paired with the person it is about, record IDs assigned, ordered by record ID."""
    rendered: dict[str, list[tuple[str, dict[str, str]]]] = {}
    clerks = {source: _Clerk(rng, tables, source) for source in SOURCES}
    rendered["residents"] = [(c.person_id, residents_row(clerks["residents"], c)) for c in children]
    rendered["school"] = [
        (c.person_id, school_row(clerks["school"], c, as_of)) for c in children if _in_school(rng, c, as_of)
    ]
    rendered["maternal"] = [
        (c.person_id, maternal_row(clerks["maternal"], c)) for c in children if _in_maternal(rng, c, as_of)
    ]
    npo = [(c.person_id, npo_row(clerks["npo"], c)) for c in children if _in_npo(rng, c, as_of)]
    rng.shuffle(npo)
    rendered["npo"] = npo

    id_formats = {
        "residents": (10**10, "{:010d}"),
        "school": (10**7, "S{:07d}"),
        "maternal": (10**8, "{:08d}"),
    }
    for source, (space, fmt) in id_formats.items():
        rows = rendered[source]
        rng.shuffle(rows)
        for (_, row), number in zip(rows, sorted(rng.sample(range(space), len(rows)))):
            row["record_id"] = fmt.format(number)
    for i, (_, row) in enumerate(rendered["npo"], start=1):
        row["record_id"] = f"N{i:05d}"
    return rendered
