"""Sex codes to "M"/"F"/None."""

import pytest

from linkage.errors import FieldError
from linkage.normalise.sex import normalise_sex


@pytest.mark.parametrize("value", ["1", "１", "M", "m", "男", "男性", "male", "Male", "MALE", " M "])
def test_male(value):
    assert normalise_sex(value) == "M"


@pytest.mark.parametrize("value", ["2", "２", "F", "f", "女", "女性", "female", "Female", "ＦＥＭＡＬＥ"])
def test_female(value):
    assert normalise_sex(value) == "F"


@pytest.mark.parametrize("value", ["", " ", "0", "9", "不明"])
def test_unknown_is_none(value):
    assert normalise_sex(value) is None


@pytest.mark.parametrize("value", ["3", "X", "男女", "man", "12"])
def test_anything_else_raises(value):
    with pytest.raises(FieldError) as error:
        normalise_sex(value)
    assert error.value.field == "sex"
    assert error.value.value == value
    assert "1（男）" in error.value.reason and "空欄" in error.value.reason
