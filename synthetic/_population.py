"""The town's true population: households and children, before any department writes them down."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from ._tables import ForeignName, Municipality, Name, Tables, cohort_of

#: The synthetic town itself (a fictional city; its districts are in data/districts.csv).
TOWN_PREFECTURE = "茨城県"
TOWN_CITY = "つなぐ市"

#: Children per household (of those under 18).
_HOUSEHOLD_SIZES = ((1, 0.40), (2, 0.42), (3, 0.15), (4, 0.03))
#: A birth is a twin birth (Japan: about 1 % of deliveries).
_TWIN_BIRTH = 0.01
#: Twins often get names that share a character (陽翔 and 陽菜).
_TWIN_SHARED_CHAR = 0.4
#: Twins are of the same sex (monozygotic, plus half of the dizygotic).
_TWIN_SAME_SEX = 0.65
#: A household is foreign (about 3 % of children), and its nationality.
_FOREIGN = 0.03
_NATIONALITIES = (("CN", 0.30), ("VN", 0.25), ("BR", 0.15), ("PH", 0.15), ("NP", 0.15))
#: A Japanese household's surname changed after a divorce (about 2 % of children).
_DIVORCE = 0.02
#: A household moved in (転入) from another municipality.
_MOVED_IN = 0.05
#: Relative poverty among households with children; higher for single parents.
_LOW_INCOME = 0.12
_LOW_INCOME_SINGLE_PARENT = 0.50
#: A household lives in a flat (an address with a building name and room).
_FLAT = 0.30
#: Growth a year of the weight of a household's youngest child's birth year (see _youngest_child_weights).
_YOUNGEST_TILT = 1.02

_BUILDING_PREFIXES = ("コーポ", "ハイツ", "メゾン", "レジデンス", "グリーンヒル", "パークサイド")
_BUILDING_STEMS = ("さくら", "ひまわり", "緑", "中央", "富士見", "泉", "栄", "フォレスト", "サンライズ", "第二")


@dataclass(frozen=True, slots=True)
class Address:
    """An address in parts; departments render it in their own formats."""

    prefecture: str
    city: str
    district: str
    chome: int
    banchi: int
    go: int
    building: str
    room: int
    postal_code: str


@dataclass(slots=True)
class Household:
    """Children who share a surname, its reading and an address."""

    family: Name
    address: Address
    low_income: bool
    nationality: str = ""
    #: alphabet surname and its layout in 住民記録 ("split", "full", "swapped") for foreign households
    foreign_family: ForeignName | None = None
    foreign_layout: str = ""
    #: the surname a school knows a foreign child by (a Japanese 通称), if any
    alias_family: Name | None = None
    #: the surname before a divorce; schools keep it
    former_family: Name | None = None
    moved_in_from: Municipality | None = None
    former_address: Address | None = None


@dataclass(slots=True)
class Child:
    """One child: the person every record of every department is about."""

    person_id: str
    household: Household
    given: Name
    birth_date: date
    sex: str
    twin: bool = False
    foreign_given: ForeignName | None = None

    def age(self, on: date) -> int:
        """Age in completed years on a date."""
        years = on.year - self.birth_date.year
        if (on.month, on.day) < (self.birth_date.month, self.birth_date.day):
            years -= 1
        return years


def _draw_address(rng: random.Random, tables: Tables) -> Address:
    district = tables.districts[rng.randrange(len(tables.districts))]
    if district.chome:
        chome, banchi, go = rng.randint(1, district.chome), rng.randint(1, 30), rng.randint(1, 25)
    else:
        chome, banchi, go = 0, rng.randint(1, 2500), 0
    building, room = "", 0
    if rng.random() < _FLAT:
        building = rng.choice(_BUILDING_PREFIXES) + rng.choice(_BUILDING_STEMS)
        room = rng.randint(1, 5) * 100 + rng.randint(1, 8)
    return Address(TOWN_PREFECTURE, TOWN_CITY, district.name, chome, banchi, go, building, room, district.postal_code)


def _draw_former_address(rng: random.Random, tables: Tables, municipality: Municipality) -> Address:
    local = _draw_address(rng, tables)
    postal = municipality.postal_prefix + f"{rng.randrange(10_000):04d}"
    return Address(
        municipality.prefecture, municipality.city, local.district, local.chome, local.banchi, local.go,
        local.building, local.room, postal,
    )


def _with_itaiji(rng: random.Random, tables: Tables, name: Name) -> Name:
    """The surname as registered: each character with a 異体字 is registered in that form for a share of families."""
    chars = []
    for ch in name.kanji:
        for variant, share in tables.itaiji.get(ch, ()):
            if rng.random() < share:
                ch = variant
                break
        chars.append(ch)
    return Name("".join(chars), name.kana)


def _draw_surname(rng: random.Random, tables: Tables, unlike: Name | None = None) -> Name:
    while True:
        name = tables.surnames.draw(rng)
        if unlike is None or name.kanji != unlike.kanji:
            return _with_itaiji(rng, tables, name)


def _draw_household(rng: random.Random, tables: Tables) -> Household:
    address = _draw_address(rng, tables)
    household = Household(family=_draw_surname(rng, tables), address=address, low_income=False)
    if rng.random() < _FOREIGN:
        nationality = rng.choices([n for n, _ in _NATIONALITIES], [w for _, w in _NATIONALITIES])[0]
        family = rng.choice(tables.foreign[nationality]["family"])
        household.nationality = nationality
        household.foreign_family = family
        household.family = Name(family.latin, family.kana)
        household.foreign_layout = rng.choices(("split", "full", "swapped"), (0.60, 0.25, 0.15))[0]
        if nationality != "CN" and rng.random() < 0.5:
            household.alias_family = _draw_surname(rng, tables)
    elif rng.random() < _DIVORCE:
        household.former_family = _draw_surname(rng, tables, unlike=household.family)
    if rng.random() < _MOVED_IN:
        household.moved_in_from = rng.choice(tables.municipalities)
        household.former_address = _draw_former_address(rng, tables, household.moved_in_from)
    single_parent = household.former_family is not None
    household.low_income = rng.random() < (_LOW_INCOME_SINGLE_PARENT if single_parent else _LOW_INCOME)
    return household


def _draw_foreign_given(rng: random.Random, tables: Tables, household: Household, sex: str, taken: list[Name]) -> ForeignName:
    names = tables.foreign[household.nationality][f"given{sex}"]
    free = [n for n in names if all(n.latin != t.kanji for t in taken)]
    return rng.choice(free)


def _draw_given(rng: random.Random, tables: Tables, sex: str, birth: date, taken: list[Name], like: Name | None) -> Name:
    """A given name unlike its siblings'; a twin's often shares a first character with the other twin's."""
    names = tables.given_names[(sex, cohort_of(birth.year))]
    share_char = like is not None and rng.random() < _TWIN_SHARED_CHAR
    for attempt in range(40):
        name = names.draw(rng)
        if any(name.kanji == t.kanji or name.kana == t.kana for t in taken):
            continue
        if share_char and attempt < 30 and name.kanji[0] != like.kanji[0]:
            continue
        return name
    raise AssertionError("given-name table too small to keep siblings apart")


def _birth_date(rng: random.Random, first: date, last: date, weights: list[float]) -> date:
    """A date in [first, last], each year's days weighted by that year's weight."""
    year = rng.choices(range(first.year, last.year + 1), weights)[0]
    start = max(first, date(year, 1, 1))
    end = min(last, date(year, 12, 31))
    return start + timedelta(days=rng.randrange((end - start).days + 1))


def _youngest_child_weights(first: date, last: date) -> list[float]:
    """Weights by birth year for a household's youngest child.

    Elder siblings are born before the youngest, so the youngest is tilted
    towards recent years until ages come out as births fell (about 2 % a
    year); each year is weighted by its days inside the window.
    """
    weights = []
    for year in range(first.year, last.year + 1):
        days = (min(last, date(year, 12, 31)) - max(first, date(year, 1, 1))).days + 1
        weights.append(days * _YOUNGEST_TILT ** (year - first.year))
    return weights


def generate_population(n_children: int, as_of: date, rng: random.Random, tables: Tables) -> list[Child]:
    """Draw households until exactly ``n_children`` children aged 0–17 on ``as_of`` live in the town.

    The youngest child of a household is drawn first; elder siblings are born
    1–6 years apart before it, and siblings born before the 18-year window are
    adults the town's children's records do not hold.
    """
    first = date(as_of.year - 18, as_of.month, as_of.day) + timedelta(days=1)
    weights = _youngest_child_weights(first, as_of)
    sizes = [k for k, _ in _HOUSEHOLD_SIZES]
    size_weights = [w for _, w in _HOUSEHOLD_SIZES]

    children: list[Child] = []
    while len(children) < n_children:
        household = _draw_household(rng, tables)
        size = rng.choices(sizes, size_weights)[0]
        birth = _birth_date(rng, first, as_of, weights)
        taken: list[Name] = []
        members: list[Child] = []
        while len(members) < size and birth >= first and len(children) + len(members) < n_children:
            twins = rng.random() < _TWIN_BIRTH and len(children) + len(members) + 2 <= n_children
            sex = "1" if rng.random() < 0.512 else "2"
            births = [sex]
            if twins:
                births.append(sex if rng.random() < _TWIN_SAME_SEX else ("2" if sex == "1" else "1"))
            like = None
            for s in births:
                child = Child("", household, Name("", ""), birth, s, twin=twins)
                if household.foreign_family is None:
                    child.given = _draw_given(rng, tables, s, birth, taken, like)
                else:
                    child.foreign_given = _draw_foreign_given(rng, tables, household, s, taken)
                    child.given = Name(child.foreign_given.latin, child.foreign_given.kana)
                taken.append(child.given)
                like = child.given
                members.append(child)
            birth -= timedelta(days=rng.randint(400, 6 * 365))
        children.extend(members)
    for i, child in enumerate(children, start=1):
        child.person_id = f"P{i:07d}"
    return children
