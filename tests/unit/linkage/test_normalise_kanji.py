"""Itaiji folding through the MJ shrink map plus the documented supplement."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linkage.normalise.kanji import KEEP, SUPPLEMENT, fold_itaiji, fold_kanji, fold_repetition, is_jis_x_0208

#: Each group: every spelling must fold to the same character.
VARIANT_GROUPS = [
    "髙高",
    "齋齊斎斉",
    "邊邉辺",
    "﨑崎",
    "濱濵浜",
    "澤沢",
    "櫻桜",
    "廣広",
    "𠮷吉",
    "嶋島",
    "國国",
    "德徳",
    "曾曽",
    "栁柳",
    "渕淵",
    "眞真",
    "壽寿",
    "龍竜",
    "凜凛",
    "舘館",
]

#: Every JIS X 0208 level-1 kanji that folds, and to what: the reviewed list
#: (an update of jntajis that changes it must be reviewed again).
LEVEL_1_FOLDS = dict(
    pair
    for pair in (
        "冨富 埜野 峯峰 嶋島 斉斎 曾曽 柁舵 栢柏 楳梅 涌湧 瀧滝 燈灯 盃杯 砿鉱 "
        "祢禰 穐秋 篭籠 舘館 苅刈 薗園 薮藪 鋪舗 頴穎 駈駆 龍竜"
    ).split()
)


def _level_1_kanji():
    for lead in range(0xB0, 0xD0):
        for trail in range(0xA1, 0xFF):
            try:
                yield bytes((lead, trail)).decode("euc_jp")
            except UnicodeDecodeError:
                continue


@pytest.mark.parametrize("group", VARIANT_GROUPS)
def test_variants_fold_to_one_form(group):
    assert len({fold_kanji(c) for c in group}) == 1


@pytest.mark.parametrize("char", "田中太郎山本佐藤鈴木高斎辺崎浜沢桜広吉島国徳曽柳")
def test_common_kanji_are_unchanged(char):
    assert fold_kanji(char) == char


@pytest.mark.parametrize("char", sorted(KEEP))
def test_characters_mj_would_join_with_a_different_character_are_kept(char):
    assert fold_kanji(char) == char


def test_folded_form_prefers_jis_x_0208():
    assert fold_kanji("髙") == "高"
    assert fold_kanji("﨑") == "崎"
    assert fold_kanji("德") == "徳"


def test_ibm_and_nec_extensions_are_not_jis_x_0208():
    assert not is_jis_x_0208("髙")
    assert not is_jis_x_0208("﨑")
    assert not is_jis_x_0208("①")  # NEC row 13
    assert is_jis_x_0208("高")
    assert is_jis_x_0208("齋")
    assert is_jis_x_0208("ア")


def test_level_1_folds_are_the_reviewed_list():
    folds = {c: fold_kanji(c) for c in _level_1_kanji() if fold_kanji(c) != c}
    assert folds == LEVEL_1_FOLDS


def test_supplement_targets_are_fixpoints():
    for target in SUPPLEMENT.values():
        assert fold_kanji(target) == target


def test_small_ke_in_names_is_large_ke():
    assert fold_itaiji("一ヶ谷") == fold_itaiji("一ケ谷") == "一ケ谷"


def test_fold_itaiji_folds_each_character():
    assert fold_itaiji("髙橋") == "高橋"
    assert fold_itaiji("齋藤") == fold_itaiji("斉藤") == fold_itaiji("齊藤") == "斎藤"
    assert fold_itaiji("渡邉") == fold_itaiji("渡邊") == "渡辺"


def test_repeated_kanji_becomes_iteration_mark():
    assert fold_repetition("佐佐木") == "佐々木"
    assert fold_repetition("佐々木") == "佐々木"
    assert fold_repetition("野々村") == "野々村"


def test_repeated_kana_is_not_an_iteration():
    assert fold_repetition("ささき") == "ささき"


@given(st.text())
def test_fold_itaiji_is_idempotent(value):
    once = fold_itaiji(value)
    assert fold_itaiji(once) == once


@given(st.characters(min_codepoint=0x3400, max_codepoint=0x9FFF))
def test_fold_kanji_reaches_a_fixpoint(char):
    folded = fold_kanji(char)
    assert fold_kanji(folded) == folded
