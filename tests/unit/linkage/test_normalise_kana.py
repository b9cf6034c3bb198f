"""Kana keys: one katakana spelling per reading."""

import jaconv
import pytest
from hypothesis import given
from hypothesis import strategies as st

from linkage.normalise.kana import kana_key
from linkage.record import UNKNOWN_CHAR

SAME_READING = [
    ("さいとう", "サイトウ", "ｻｲﾄｳ", "サイトー"),
    ("こうじ", "コージ", "コウジ"),
    ("ゆうき", "ユーキ", "ユウキ"),
    ("ちづる", "チズル"),
    ("かをる", "カオル"),
    ("ヴィクトル", "ビクトル", "ゔぃくとる"),
    ("しょうた", "ショウタ", "ｼｮｳﾀ", "ショータ"),
    ("きょうこ", "キョーコ", "キョウコ"),
    ("おおの", "オーノ", "オウノ", "オオノ"),
    ("とうま", "トウマ", "トオマ", "トーマ"),
    ("けいこ", "ケイコ", "ケーコ", "ケエコ"),
    ("みいな", "ミーナ"),
    ("まあや", "マーヤ"),
    ("ゆうな", "ユーナ"),
    ("いすゞ", "イスズ"),
    ("ヂ", "ジ"),
]

DIFFERENT_READINGS = [
    ("ユキ", "ユウキ"),
    ("ショウ", "ショ"),
    ("オノ", "オオノ"),
    ("ケイチ", "ケイイチ"),
    ("アオイ", "アイ"),
    ("サトウ", "サイトウ"),
]


@pytest.mark.parametrize("spellings", SAME_READING)
def test_spellings_of_one_reading_share_a_key(spellings):
    keys = {kana_key(s) for s in spellings}
    assert len(keys) == 1
    assert None not in keys


@pytest.mark.parametrize("pair", DIFFERENT_READINGS)
def test_different_readings_keep_different_keys(pair):
    first, second = pair
    assert kana_key(first) != kana_key(second)


def test_half_width_voiced_marks_compose():
    assert kana_key("ｶﾞｯｺｳ") == kana_key("ガッコウ") == "ガツコー"
    assert kana_key("ﾊﾟﾝ") == "パン"


@pytest.mark.parametrize(
    ("small", "large"),
    [("ァ", "ア"), ("ッ", "ツ"), ("ャ", "ヤ"), ("ュ", "ユ"), ("ョ", "ヨ"), ("ヮ", "ワ"), ("ヵ", "カ"), ("ヶ", "ケ")],
)
def test_small_kana_become_large(small, large):
    assert kana_key("ン" + small) == "ン" + large


@pytest.mark.parametrize(
    ("vu", "b_row"),
    [("ヴァ", "バ"), ("ヴィ", "ビ"), ("ヴェ", "ベ"), ("ヴォ", "ボ"), ("ヴ", "ブ"), ("ヷ", "バ")],
)
def test_vu_is_the_b_row(vu, b_row):
    assert kana_key(vu) == b_row


def test_ji_zu_wo_are_folded():
    assert kana_key("ヂヅヲ") == "ジズオ"


def test_long_vowel_is_unified_not_deleted():
    assert kana_key("ユウキ") == "ユーキ"
    assert kana_key("ユキ") == "ユキ"


def test_a_mora_is_lengthened_once():
    assert kana_key("ケイイチ") == "ケーイチ"


def test_non_kana_characters_are_dropped():
    assert kana_key("山田 たろう") == "タロー"
    assert kana_key("ジョン・スミス") == "ジヨンスミス"


def test_latin_field_has_no_kana_key():
    assert kana_key("John Smith") is None
    assert kana_key("SATO") is None


def test_empty_or_kanji_only_has_no_kana_key():
    assert kana_key("") is None
    assert kana_key("   ") is None
    assert kana_key("山田") is None


def test_unknown_character_is_kept():
    assert kana_key("ヤマ〓") == "ヤマ" + UNKNOWN_CHAR


_HIRAGANA = st.text(alphabet=st.characters(min_codepoint=0x3041, max_codepoint=0x3094), min_size=1, max_size=12)
_KANA_TEXT = st.text(alphabet=st.characters(min_codepoint=0x3041, max_codepoint=0x30FE), max_size=12)


@given(_HIRAGANA)
def test_hiragana_katakana_and_half_width_give_the_same_key(hiragana):
    katakana = jaconv.hira2kata(hiragana)
    half_width = jaconv.z2h(katakana, kana=True, ascii=False, digit=False)
    assert kana_key(hiragana) == kana_key(katakana) == kana_key(half_width)


@given(_KANA_TEXT)
def test_kana_key_is_idempotent(value):
    key = kana_key(value)
    if key is not None:
        assert kana_key(key) == key


@given(st.text())
def test_kana_key_holds_only_katakana_long_mark_or_unknown(value):
    key = kana_key(value)
    if key is not None:
        assert all(0x30A2 <= ord(c) <= 0x30F3 or c in ("ー", UNKNOWN_CHAR) for c in key)
        assert not set(key) & set("ァィゥェォッャュョヮヵヶヂヅヲヴ")
