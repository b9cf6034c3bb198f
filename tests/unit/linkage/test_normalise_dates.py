"""Birth dates: Western and wareki forms, full dates and year-month."""

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linkage.errors import FieldError
from linkage.normalise.dates import parse_birth_date


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2015-04-01", (2015, 4, 1)),
        ("2015/4/1", (2015, 4, 1)),
        ("2015.4.1", (2015, 4, 1)),
        ("20150401", (2015, 4, 1)),
        ("2015年4月1日", (2015, 4, 1)),
        ("２０１５年４月１日", (2015, 4, 1)),
        ("2015/04/01 0:00:00", (2015, 4, 1)),
        ("2015-04-01T00:00:00", (2015, 4, 1)),
        ("2015-04", (2015, 4, None)),
        ("2015/04", (2015, 4, None)),
        ("201504", (2015, 4, None)),
        ("2015年4月", (2015, 4, None)),
        ("2015", (2015, None, None)),
        ("令和元年5月1日", (2019, 5, 1)),
        ("令和元年５月１日", (2019, 5, 1)),
        ("令和６年４月１日", (2024, 4, 1)),
        ("R06.04.01", (2024, 4, 1)),
        ("H27.4.1", (2015, 4, 1)),
        ("S60.1.1", (1985, 1, 1)),
        ("R1.5.1", (2019, 5, 1)),
        ("r6/4/1", (2024, 4, 1)),
        ("Ｒ６．４．１", (2024, 4, 1)),
        ("H27年4月1日", (2015, 4, 1)),
        ("平成27年4月1日", (2015, 4, 1)),
        ("平成 27年 4月 1日", (2015, 4, 1)),
        ("平成27年4月", (2015, 4, None)),
        ("平成元年1月8日", (1989, 1, 8)),
        ("平成元年1月", (1989, 1, None)),
        ("昭和64年1月7日", (1989, 1, 7)),
        ("4270401", (2015, 4, 1)),
        ("5060401", (2024, 4, 1)),
        ("", (None, None, None)),
        ("\u3000", (None, None, None)),
    ],
)
def test_accepted_forms(value, expected):
    assert parse_birth_date(value) == expected


def test_last_year_of_an_era_is_accepted_whole():
    # Systems printed 平成31年 for months after 2019-05-01; the year is unambiguous.
    assert parse_birth_date("平成31年5月1日") == (2019, 5, 1)
    assert parse_birth_date("平成31年12月31日") == (2019, 12, 31)
    assert parse_birth_date("昭和64年1月8日") == (1989, 1, 8)


@pytest.mark.parametrize(
    ("value", "in_reason"),
    [
        ("2015/2/30", "存在しない日付"),
        ("2015-13-01", "存在しない日付"),
        ("2015-00-10", "存在しない日付"),
        ("2015/4/31", "存在しない日付"),
        ("令和5年2月29日", "存在しない日付"),
        ("1800-01-01", "範囲外"),
        ("2101-01-01", "範囲外"),
        ("令和元年4月30日", "2019年5月1日に始まります"),
        ("令和元年4月", "2019年5月1日に始まります"),
        ("平成元年1月7日", "1989年1月8日に始まります"),
        ("平成32年1月1日", "平成は31年まで"),
        ("R83.1.1", "範囲外"),
        ("R0.1.1", "令和元年"),
        ("abc", "読み取れません"),
        ("2015/4/1/2", "読み取れません"),
        ("15/4/1", "読み取れません"),
        ("大正5年1月1日", "読み取れません"),
        ("1234567", "読み取れません"),
    ],
)
def test_garbage_and_impossible_dates_raise_field_error(value, in_reason):
    with pytest.raises(FieldError) as error:
        parse_birth_date(value)
    assert error.value.field == "birth_date"
    assert error.value.value == value
    assert in_reason in error.value.reason


def test_reason_says_which_forms_are_accepted():
    with pytest.raises(FieldError) as error:
        parse_birth_date("2015/2/30")
    assert "2015-04-01" in error.value.reason
    assert "R06.04.01" in error.value.reason
    assert "平成27年4月1日" in error.value.reason


def test_reason_does_not_repeat_the_value():
    # The value travels in FieldError.value for local display only; the reason
    # may be reported further (e.g. an error summary) without identity data.
    with pytest.raises(FieldError) as error:
        parse_birth_date("2015/2/30")
    assert "2015/2/30" not in error.value.reason
    assert "2015/2/30" not in str(error.value)


_DATES = st.dates(min_value=date(1926, 12, 25), max_value=date(2100, 12, 31))


def _wareki(day: date) -> str:
    for name, first in (("令和", date(2019, 5, 1)), ("平成", date(1989, 1, 8)), ("昭和", date(1926, 12, 25))):
        if day >= first:
            return f"{name}{day.year - first.year + 1}年{day.month}月{day.day}日"
    raise AssertionError(day)


@given(_DATES)
def test_western_forms_round_trip(day):
    expected = (day.year, day.month, day.day)
    assert parse_birth_date(day.isoformat()) == expected
    assert parse_birth_date(day.strftime("%Y%m%d")) == expected
    assert parse_birth_date(f"{day.year}/{day.month}/{day.day}") == expected


@given(_DATES)
def test_wareki_round_trips(day):
    assert parse_birth_date(_wareki(day)) == (day.year, day.month, day.day)


@pytest.mark.parametrize("text, expected", [("平27.4.1", (2015, 4, 1)), ("令1.5.1", (2019, 5, 1)), ("昭60年1月1日", (1985, 1, 1))])
def test_one_kanji_era_abbreviations(text, expected):
    assert parse_birth_date(text) == expected
