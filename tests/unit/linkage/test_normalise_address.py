"""Addresses: block numbers, separators, spaces and itaiji."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linkage.normalise.address import kanji_number, normalise_address


@pytest.mark.parametrize(
    ("value", "number"),
    [("23", 23), ("三", 3), ("十", 10), ("二十三", 23), ("二三", 23), ("百五", 105), ("一〇五", 105), ("千二百三十四", 1234)],
)
def test_kanji_number(value, number):
    assert kanji_number(value) == number


@pytest.mark.parametrize(
    "value",
    [
        "東町3丁目5番地2号",
        "東町3-5-2",
        "東町三丁目五番地二号",
        "東町３－５－２",
        "東町3丁目5-2",
        "東町3丁目5番2号",
        "東町３丁目５番地の２",
        "東町 3 - 5 - 2",
        "東町3ー5ー2",
        "東町3−5−2",
        "東町3丁目5番の2",
        "東町3-5の2",
        "東町三丁目五番地の二",
    ],
)
def test_block_address_spellings_are_identical(value):
    assert normalise_address(value) == "東町3-5-2"


def test_town_names_with_numbers_keep_their_unit():
    assert normalise_address("千代田区一番町1-2") == normalise_address("千代田区1番町1-2") == "千代田区1番町1-2"
    assert normalise_address("千代田区三番町5番地") == "千代田区3番町5"


def test_prefecture_and_building_are_kept():
    assert normalise_address("茨城県つくば市東町3丁目5番2号 グランドハイツ101") == "茨城県つくば市東町3-5-2グランドハイツ101"


def test_itaiji_and_small_ke_are_folded():
    assert normalise_address("髙田町1-2") == normalise_address("高田町1-2")
    assert normalise_address("霞ヶ関1丁目1番1号") == normalise_address("霞ケ関1-1-1") == "霞ケ関1-1-1"


def test_number_chain_ends_before_the_building():
    assert normalise_address("東町3丁目5番2号グランドハイツ101") == "東町3-5-2グランドハイツ101"


def test_blank_is_none():
    assert normalise_address("") is None
    assert normalise_address("\u3000") is None


_ADDRESS_PIECES = st.text(alphabet="東町区一二三十百〇丁目番地号の-ー 123弌ハイツ", max_size=16)


@given(_ADDRESS_PIECES)
def test_normalise_address_is_idempotent_on_address_like_text(value):
    once = normalise_address(value)
    if once is not None:
        assert normalise_address(once) == once


@given(st.text())
def test_normalise_address_is_idempotent(value):
    once = normalise_address(value)
    if once is not None:
        assert normalise_address(once) == once
