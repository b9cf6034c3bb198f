"""Postal codes: 7 digits or a 3-digit prefix."""

import pytest

from linkage.errors import FieldError
from linkage.normalise.postal import normalise_postal_code


@pytest.mark.parametrize(
    "value", ["305-0001", "〒305-0001", "３０５－０００１", "3050001", " 〒 305 0001 ", "305ー0001", "305‐0001", "305−0001"]
)
def test_seven_digits(value):
    assert normalise_postal_code(value) == "3050001"


def test_three_digit_prefix_is_kept():
    assert normalise_postal_code("305") == "305"
    assert normalise_postal_code("〒３０５") == "305"


@pytest.mark.parametrize("value", ["", " ", "〒", "-"])
def test_blank_is_none(value):
    assert normalise_postal_code(value) is None


@pytest.mark.parametrize("value", ["12345", "123456", "12345678", "abc-defg", "305-000A"])
def test_anything_else_raises(value):
    with pytest.raises(FieldError) as error:
        normalise_postal_code(value)
    assert error.value.field == "postal_code"
    assert error.value.value == value
    assert "7桁" in error.value.reason
