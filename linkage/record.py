"""The canonical record (DESIGN.md's columns) and its normalised form."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Canonical identity columns, in DESIGN.md's order. Any other column is an attribute.
IDENTITY_COLUMNS: tuple[str, ...] = (
    "record_id",
    "family_name",
    "given_name",
    "family_name_kana",
    "given_name_kana",
    "full_name",
    "full_name_kana",
    "birth_date",
    "sex",
    "postal_code",
    "address",
)

#: Character that stands for an unknown character (〓 geta, unmapped 外字):
#: it never agrees or disagrees with anything.
UNKNOWN_CHAR = "\ufffd"


@dataclass(slots=True)
class CanonicalRecord:
    """One department record in canonical columns, values as the department holds them."""

    record_id: str
    family_name: str = ""
    given_name: str = ""
    family_name_kana: str = ""
    given_name_kana: str = ""
    full_name: str = ""
    full_name_kana: str = ""
    birth_date: str = ""
    sex: str = ""
    postal_code: str = ""
    address: str = ""
    attributes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, row: dict[str, str]) -> "CanonicalRecord":
        """Build from a dict of canonical column -> text; other keys become attributes."""
        known = {c: (row.get(c) or "") for c in IDENTITY_COLUMNS}
        attrs = {k: (v or "") for k, v in row.items() if k not in IDENTITY_COLUMNS}
        return cls(**known, attributes=attrs)


@dataclass(slots=True, frozen=True)
class NormalisedRecord:
    """A record in the one comparable form the encoder consumes.

    Every text field is ``None`` when missing. Unknown characters are
    ``UNKNOWN_CHAR``. ``name_script`` says whether the name parts are kanji/kana
    ("kanji") or alphabet ("latin"); ``name_split_inferred`` is true when the
    family/given split came from a one-field name rather than from the source.
    """

    family_name: str | None = None
    given_name: str | None = None
    name_script: str | None = None
    name_split_inferred: bool = False
    family_kana: str | None = None
    given_kana: str | None = None
    kana_split_inferred: bool = False
    birth_year: int | None = None
    birth_month: int | None = None
    birth_day: int | None = None
    sex: str | None = None
    postal_code: str | None = None
    address: str | None = None
