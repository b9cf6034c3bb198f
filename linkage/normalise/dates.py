"""Birth dates: Western (ISO, Y/M/D, YYYYMMDD, 年月日) and wareki (和暦) forms, full or year-month."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from linkage.errors import FieldError
from linkage.normalise.text import CACHE_SIZE, clean_text

FIELD = "birth_date"

#: Years outside this range are typing errors, not children's birth dates.
MIN_YEAR = 1900
MAX_YEAR = 2100

_FORMS = (
    "西暦（2015-04-01、2015/4/1、2015.4.1、20150401、2015年4月1日）"
    "または和暦（R06.04.01、H27.4.1、平成27年4月1日、令和元年5月1日）で入力してください。"
    "年月だけ（2015-04、201504、平成27年4月）も使えます"
)
_UNREADABLE = "生年月日を読み取れません。" + _FORMS
_NO_SUCH_DATE = "生年月日が存在しない日付です（月は1〜12、日はその月の日数まで）。" + _FORMS
_OUT_OF_RANGE = f"生年月日の年が範囲外です。{MIN_YEAR}年から{MAX_YEAR}年までの日付を入力してください"


@dataclass(frozen=True)
class _Era:
    """One era: its first day and the last year a date may still be written in it."""

    name: str
    first_day: date
    last_year: int | None = None
    next_name: str | None = None


# An era's last year is accepted whole (平成31年5月1日 = 2019-05-01, 昭和64年1月8日 =
# 1989-01-08): systems kept printing the old era name for months after a change
# and the Western year is unambiguous. A later year (平成32年) is refused.
_SHOWA = _Era("昭和", date(1926, 12, 25), 64, "平成")
_HEISEI = _Era("平成", date(1989, 1, 8), 31, "令和")
_REIWA = _Era("令和", date(2019, 5, 1))
_ERAS = {
    "昭和": _SHOWA, "S": _SHOWA, "昭": _SHOWA,
    "平成": _HEISEI, "H": _HEISEI, "平": _HEISEI,
    "令和": _REIWA, "R": _REIWA, "令": _REIWA,
}
#: Era codes of the 7-digit numeric form some resident-record systems export
#: (e.g. 4270401 = 平成27年4月1日).
_ERA_CODES = {"3": _SHOWA, "4": _HEISEI, "5": _REIWA}

#: A time of day after the date, as spreadsheets export dates (2015/04/01 0:00:00).
_TIME = re.compile(r"[ T]\d{1,2}:\d{2}(?::\d{2})?$")
_WESTERN = (
    re.compile(r"(\d{4})[-/.](\d{1,2})(?:[-/.](\d{1,2}))?"),
    re.compile(r"(\d{4})(\d{2})(\d{2})?"),
    re.compile(r"(\d{4})年(?:(\d{1,2})月(?:(\d{1,2})日)?)?"),
    re.compile(r"(\d{4})()()"),
)
_WAREKI = (
    re.compile(r"(昭和|平成|令和|[SHR昭平令])(\d{1,2}|元)[-/.](\d{1,2})(?:[-/.](\d{1,2}))?", re.IGNORECASE),
    re.compile(r"(昭和|平成|令和|[SHR昭平令])(\d{1,2}|元)年(?:(\d{1,2})月(?:(\d{1,2})日)?)?", re.IGNORECASE),
)
_ERA_CODED = re.compile(r"([345])(\d{2})(\d{2})(\d{2})")


def _field_error(reason: str, value: str) -> FieldError:
    return FieldError(FIELD, reason, value)


def _checked(year: int, month: int | None, day: int | None, value: str) -> tuple[int, int | None, int | None]:
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise _field_error(_OUT_OF_RANGE, value)
    if month is not None and not 1 <= month <= 12:
        raise _field_error(_NO_SUCH_DATE, value)
    if day is not None and not 1 <= day <= calendar.monthrange(year, month)[1]:
        raise _field_error(_NO_SUCH_DATE, value)
    return year, month, day


def _from_era(era: _Era, era_year: int, month: int | None, day: int | None, value: str) -> tuple[int, int | None, int | None]:
    if era_year < 1:
        raise _field_error(f"{era.name}0年はありません。元年は「{era.name}元年」または「{era.name}1年」と入力してください", value)
    if era.last_year is not None and era_year > era.last_year:
        raise _field_error(
            f"{era.name}{era_year}年はありません（{era.name}は{era.last_year}年まで）。"
            f"{era.next_name}または西暦で入力してください",
            value,
        )
    year, month, day = _checked(era.first_day.year - 1 + era_year, month, day, value)
    first = era.first_day
    # Compare the latest day the value can mean: 平成元年1月 is fine, 平成元年1月7日 is not.
    latest_month = month or 12
    latest_day = day or calendar.monthrange(year, latest_month)[1]
    if (year, latest_month, latest_day) < (first.year, first.month, first.day):
        raise _field_error(
            f"{era.name}は{first.year}年{first.month}月{first.day}日に始まります。"
            "それより前の日付は前の元号か西暦で入力してください",
            value,
        )
    return year, month, day


def _int(text: str | None) -> int | None:
    return int(text) if text else None


@lru_cache(maxsize=CACHE_SIZE)
def parse_birth_date(value: str) -> tuple[int | None, int | None, int | None]:
    """Return (year, month, day) from any accepted form; month and day may be None.

    Empty gives (None, None, None). Full-width digits and letters are
    accepted (NFKC). Garbage, impossible dates (2月30日, 13月), years outside
    1900-2100 and dates outside their era raise FieldError("birth_date", ...)
    with a reason in Japanese that lists the accepted forms.
    """
    text = _TIME.sub("", clean_text(value)).replace(" ", "")
    if not text:
        return None, None, None
    for pattern in _WESTERN:
        match = pattern.fullmatch(text)
        if match:
            year, month, day = match.groups()
            return _checked(int(year), _int(month), _int(day), value)
    for pattern in _WAREKI:
        match = pattern.fullmatch(text)
        if match:
            era, era_year, month, day = match.groups()
            era_number = 1 if era_year == "元" else int(era_year)
            return _from_era(_ERAS[era.upper()], era_number, _int(month), _int(day), value)
    match = _ERA_CODED.fullmatch(text)
    if match:
        code, era_year, month, day = match.groups()
        return _from_era(_ERA_CODES[code], int(era_year), int(month), int(day), value)
    raise _field_error(_UNREADABLE, value)


def to_wareki(year: int, month: int | None = None, day: int | None = None) -> str:
    """A Western date written in 和暦 (令和6年4月1日, 令和元年5月1日, 平成31年4月30日), for display to staff."""
    on = date(year, month or 1, day or 1)
    era = next(e for e in (_REIWA, _HEISEI, _SHOWA) if on >= e.first_day) if on >= _SHOWA.first_day else None
    if era is None:
        return f"{year}年" + (f"{month}月" if month else "") + (f"{day}日" if day else "")
    number = year - era.first_day.year + 1
    text = f"{era.name}{'元' if number == 1 else number}年"
    return text + (f"{month}月" if month else "") + (f"{day}日" if month and day else "")
