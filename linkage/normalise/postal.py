"""Postal codes: 〒, hyphens and full-width digits removed; 7 digits, or a 3-digit prefix."""

from __future__ import annotations

import re
from functools import lru_cache

from linkage.errors import FieldError
from linkage.normalise.text import CACHE_SIZE, clean_text

FIELD = "postal_code"

#: 〒 (and its circled form), white space and every dash a postal code is typed with.
_DECORATION = re.compile("[〒〶\\s\\-\u2010-\u2015\u2212\u30fc\ufe63]")
_DIGITS = re.compile("[0-9]{3}(?:[0-9]{4})?", re.ASCII)

_REASON = (
    "郵便番号を読み取れません。7桁の数字（123-4567、〒1234567）で入力してください。"
    "上3桁だけ（123）も使えます。わからないときは空欄にしてください"
)


@lru_cache(maxsize=CACHE_SIZE)
def normalise_postal_code(value: str) -> str | None:
    """Return the 7 digits (or a 3-digit prefix) of a postal code, None when blank.

    Anything else (wrong length, letters) raises FieldError("postal_code", ...).
    """
    digits = _DECORATION.sub("", clean_text(value))
    if not digits:
        return None
    if _DIGITS.fullmatch(digits):
        return digits
    raise FieldError(FIELD, _REASON, value)
