"""Names: scripts, kanji and Latin forms, one-field splitting."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linkage.normalise.names import (
    KANJI,
    LATIN,
    detect_script,
    latin_tokens_sorted,
    normalise_kanji_name,
    normalise_latin_name,
    normalise_name,
    split_full_kana,
    split_full_name,
)
from linkage.record import UNKNOWN_CHAR


@pytest.mark.parametrize(
    ("value", "script"),
    [("山田", KANJI), ("やまだ", KANJI), ("ヤマダ", KANJI), ("Smith", LATIN), ("ＳＭＩＴＨ", LATIN), ("José", LATIN), ("", None), ("123", None)],
)
def test_detect_script(value, script):
    assert detect_script(value) == script


def test_kanji_name_loses_spaces_and_folds_itaiji_and_repetition():
    assert normalise_kanji_name(" 髙 橋\u3000") == "高橋"
    assert normalise_kanji_name("佐佐木") == normalise_kanji_name("佐々木") == "佐々木"
    assert normalise_kanji_name("齋藤") == normalise_kanji_name("斉藤")


def test_kanji_name_keeps_unknown_character():
    assert normalise_kanji_name("山〓") == "山" + UNKNOWN_CHAR


def test_latin_name_is_upper_case_without_punctuation_or_accents():
    assert normalise_latin_name("  O'Brien-Kelly,  Jr. ") == "OBRIENKELLY JR"
    assert normalise_latin_name("José") == "JOSE"
    assert normalise_latin_name("ｓｍｉｔｈ") == "SMITH"


def test_normalise_name_dispatches_on_script():
    assert normalise_name("smith") == "SMITH"
    assert normalise_name("髙田") == "高田"
    assert normalise_name("") is None


def test_split_on_first_space_is_not_inferred():
    assert split_full_name("山田 太郎") == ("山田", "太郎", False)
    assert split_full_name("山田\u3000太郎") == ("山田", "太郎", False)
    assert split_full_name("髙橋　一郎") == ("高橋", "一郎", False)


def test_kanji_without_space_is_divided_by_namedivider_and_inferred():
    assert split_full_name("山田太郎") == ("山田", "太郎", True)
    assert split_full_name("佐佐木健太") == ("佐々木", "健太", True)
    assert split_full_name("髙橋一郎") == ("高橋", "一郎", True)


def test_one_character_name_is_family_only():
    assert split_full_name("中") == ("中", None, True)


def test_kana_only_full_name_without_space_is_not_split():
    assert split_full_name("やまだたろう") == ("やまだたろう", None, True)


def test_latin_full_name_keeps_token_order_and_is_inferred():
    assert split_full_name("SMITH JOHN") == ("SMITH", "JOHN", True)
    assert split_full_name("John Smith") == ("JOHN", "SMITH", True)
    assert split_full_name("Madonna") == ("MADONNA", None, True)


def test_latin_tokens_sorted_survives_swapped_order():
    family, given, _ = split_full_name("SMITH JOHN")
    other_family, other_given, _ = split_full_name("John Smith")
    assert latin_tokens_sorted(family, given) == latin_tokens_sorted(other_family, other_given) == ("JOHN", "SMITH")
    assert latin_tokens_sorted("Mary Ann", None, "Lee") == ("ANN", "LEE", "MARY")


def test_empty_full_name():
    assert split_full_name("") == (None, None, False)
    assert split_full_name("\u3000") == (None, None, False)


def test_split_full_kana():
    assert split_full_kana("やまだ たろう") == ("ヤマダ", "タロー", False)
    assert split_full_kana("ﾔﾏﾀﾞ ﾀﾛｳ") == ("ヤマダ", "タロー", False)
    assert split_full_kana("ヤマダタロウ") == ("ヤマダタロー", None, True)
    assert split_full_kana("") == (None, None, False)


@given(st.text())
def test_normalise_name_is_idempotent(value):
    once = normalise_name(value)
    if once is not None:
        assert normalise_name(once) == once


@pytest.mark.parametrize("full", ["たかはし・はると", "ﾀｶﾊｼ･ﾊﾙﾄ", "タカハシ、ハルト"])
def test_middle_dot_and_comma_separate_kana_parts(full):
    assert split_full_kana(full) == ("タカハシ", "ハルト", False)
