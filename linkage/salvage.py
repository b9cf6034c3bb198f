"""Keep records whose birth date is impossible: link them on the date's usable parts.

A birth date such as 19151131 (there is no 31 November) or 2015-13-01 is a
typing error in one part, not a reason to lose a child from linkage. Before
encoding, each record whose birth date the strict parser refuses is given
the parts that still make sense (year and month when only the day is
impossible; the year alone when the month is; nothing when even the year is
unreadable), and the row is reported so the department can correct it. The
record then links on its names, address and what is left of the date, and
multi-pass blocking (``linkage.blocking``) gives it candidates even when its
date blocks are gone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Sequence

from linkage.errors import FieldError
from linkage.normalise.dates import MAX_YEAR, MIN_YEAR, parse_birth_date
from linkage.normalise.text import clean_text
from linkage.record import CanonicalRecord

_NUMERIC = (
    re.compile(r"(\d{4})[-/.](\d{1,2})(?:[-/.](\d{1,2}))?"),
    re.compile(r"(\d{4})(\d{2})(\d{2})?"),
    re.compile(r"(\d{4})年(?:(\d{1,2})月(?:(\d{1,2})日)?)?"),
)


@dataclass(slots=True)
class DateSalvage:
    """One record kept with fewer birth-date parts: its position, the column and what was used."""

    index: int
    field: str
    reason: str


def usable_parts(value: str) -> str:
    """The usable parts of a refused birth date, as a date the strict parser accepts ("" = none).

    Only the Western numeric forms are split into parts: with a wareki date
    that names a year its era never had, the year itself is in doubt.
    """
    text = clean_text(value).replace(" ", "")
    for pattern in _NUMERIC:
        match = pattern.fullmatch(text)
        if not match:
            continue
        year, month = int(match.group(1)), match.group(2)
        if not MIN_YEAR <= year <= MAX_YEAR:
            return ""
        if month and 1 <= int(month) <= 12:
            return f"{year:04d}-{int(month):02d}"
        return f"{year:04d}"
    return ""


def _describe(kept: str) -> str:
    if len(kept) == 7:
        return f"生年月日が存在しない日付のため、年月（{kept[:4]}年{int(kept[5:])}月）だけを使って連携しました。正しい日付に直してください"
    if kept:
        return f"生年月日が存在しない日付のため、年（{kept}年）だけを使って連携しました。正しい日付に直してください"
    return "生年月日を読み取れないため、生年月日なしで（氏名・住所などで）連携しました。正しい日付に直してください"


def salvage_birth_dates(records: Sequence[CanonicalRecord]) -> tuple[list[CanonicalRecord], list[DateSalvage]]:
    """``records`` with every refused birth date replaced by its usable parts, and one note per changed row."""
    out: list[CanonicalRecord] = []
    notes: list[DateSalvage] = []
    for i, rec in enumerate(records):
        try:
            parse_birth_date(rec.birth_date)
        except FieldError:
            kept = usable_parts(rec.birth_date)
            out.append(replace(rec, birth_date=kept))
            notes.append(DateSalvage(i, "birth_date", _describe(kept)))
            continue
        out.append(rec)
    return out, notes
