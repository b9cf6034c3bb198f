"""normalise_record: which columns win, flags, and field errors."""

import pytest

from linkage.errors import FieldError
from linkage.normalise import normalise_record
from linkage.record import CanonicalRecord, NormalisedRecord


def test_a_full_record():
    record = CanonicalRecord(
        "1",
        family_name="髙橋",
        given_name="一郎",
        family_name_kana="ﾀｶﾊｼ",
        given_name_kana="いちろう",
        birth_date="H27.4.1",
        sex="1",
        postal_code="〒305-0001",
        address="つくば市東町三丁目五番地二号",
    )
    assert normalise_record(record) == NormalisedRecord(
        family_name="高橋",
        given_name="一郎",
        name_script="kanji",
        name_split_inferred=False,
        family_kana="タカハシ",
        given_kana="イチロー",
        kana_split_inferred=False,
        birth_year=2015,
        birth_month=4,
        birth_day=1,
        sex="M",
        postal_code="3050001",
        address="つくば市東町3-5-2",
    )


def test_name_columns_win_over_full_name():
    record = CanonicalRecord("1", family_name="山田", given_name="花子", full_name="田中 一郎")
    result = normalise_record(record)
    assert (result.family_name, result.given_name, result.name_split_inferred) == ("山田", "花子", False)


def test_family_name_alone_still_wins():
    result = normalise_record(CanonicalRecord("1", family_name="山田", full_name="田中 一郎"))
    assert (result.family_name, result.given_name) == ("山田", None)


def test_full_name_is_split_when_name_columns_are_empty():
    spaced = normalise_record(CanonicalRecord("1", full_name="山田　太郎"))
    assert (spaced.family_name, spaced.given_name, spaced.name_split_inferred) == ("山田", "太郎", False)
    joined = normalise_record(CanonicalRecord("1", full_name="佐佐木健太"))
    assert (joined.family_name, joined.given_name, joined.name_split_inferred) == ("佐々木", "健太", True)


def test_kana_columns_win_over_full_name_kana():
    record = CanonicalRecord("1", family_name_kana="やまだ", given_name_kana="はなこ", full_name_kana="タナカ イチロウ")
    result = normalise_record(record)
    assert (result.family_kana, result.given_kana, result.kana_split_inferred) == ("ヤマダ", "ハナコ", False)


def test_full_name_kana_is_split_on_a_space_or_kept_whole():
    spaced = normalise_record(CanonicalRecord("1", full_name_kana="ﾔﾏﾀﾞ ﾀﾛｳ"))
    assert (spaced.family_kana, spaced.given_kana, spaced.kana_split_inferred) == ("ヤマダ", "タロー", False)
    joined = normalise_record(CanonicalRecord("1", full_name_kana="やまだたろう"))
    assert (joined.family_kana, joined.given_kana, joined.kana_split_inferred) == ("ヤマダタロー", None, True)


def test_latin_name_sets_script():
    result = normalise_record(CanonicalRecord("1", full_name="Smith John", full_name_kana="スミス ジョン"))
    assert result.name_script == "latin"
    assert (result.family_name, result.given_name) == ("SMITH", "JOHN")
    assert result.name_split_inferred is True


def test_empty_record_is_all_none():
    result = normalise_record(CanonicalRecord("1"))
    assert result == NormalisedRecord()
    assert result.name_script is None


@pytest.mark.parametrize(
    ("column", "value"),
    [("birth_date", "2015/2/30"), ("sex", "X"), ("postal_code", "12345")],
)
def test_bad_values_raise_field_error_naming_the_column(column, value):
    with pytest.raises(FieldError) as error:
        normalise_record(CanonicalRecord("1", **{column: value}))
    assert error.value.field == column
    assert error.value.value == value
