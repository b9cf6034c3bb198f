"""Text cleaning: NFKC, white space, unknown characters, control characters."""

from hypothesis import given
from hypothesis import strategies as st

from linkage.normalise.text import clean_text, remove_spaces
from linkage.record import UNKNOWN_CHAR


def test_nfkc_turns_full_width_and_half_width_forms_into_one():
    assert clean_text("ＡＢＣ１２３") == "ABC123"
    assert clean_text("ｶﾞｯｺｳ") == "ガッコウ"


def test_every_white_space_run_becomes_one_space_and_ends_are_trimmed():
    assert clean_text(" 山田\u3000\u3000太郎\t\u00a0 ") == "山田 太郎"
    assert clean_text("山田\r\n太郎") == "山田 太郎"


def test_remove_spaces_removes_ascii_full_width_tab_and_nbsp():
    assert remove_spaces("山 田\u3000太\t郎\u00a0") == "山田太郎"


def test_geta_is_an_unknown_character():
    assert clean_text("山〓太郎") == "山" + UNKNOWN_CHAR + "太郎"


def test_private_use_code_points_are_unknown_characters():
    # CP932 gaiji 0xF040 decodes to U+E000; planes 15 and 16 are private use too.
    gaiji = b"\xf0\x40".decode("cp932")
    assert gaiji == "\ue000"
    assert clean_text(f"{gaiji}田\uf8ff\U000f0000\U0010fffd") == UNKNOWN_CHAR + "田" + UNKNOWN_CHAR * 3


def test_control_format_characters_and_variation_selectors_are_removed():
    assert clean_text("山\x00田\x07\u200b太\ufeff郎\x7f") == "山田太郎"
    # 葛 with an ideographic variation selector is the same character as 葛.
    assert clean_text("葛\U000e0100城") == "葛城"


@given(st.text())
def test_clean_text_is_idempotent(value):
    once = clean_text(value)
    assert clean_text(once) == once


@given(st.text())
def test_clean_text_leaves_no_private_use_geta_or_control_character(value):
    for char in clean_text(value):
        assert char != "\u3013"
        assert not 0xE000 <= ord(char) <= 0xF8FF
        assert ord(char) < 0xF0000
        assert ord(char) >= 0x20 and not 0x7F <= ord(char) <= 0x9F


def test_remove_spaces_composes_a_mark_it_brings_next_to_its_base():
    # NFKC writes U+00B4 as space + U+0301; once the space is gone they compose.
    assert remove_spaces(clean_text("A\u00b4")) == "\u00c1"


@given(st.text())
def test_remove_spaces_of_clean_text_is_idempotent(value):
    once = remove_spaces(clean_text(value))
    assert remove_spaces(clean_text(once)) == once
