"""Addresses: one comparable form for 丁目・番地・号 written in words, digits or hyphens."""

from __future__ import annotations

import re
from functools import lru_cache

from linkage.normalise.kanji import fold_itaiji
from linkage.normalise.text import CACHE_SIZE, clean_text, remove_spaces

_KANJI_DIGITS = {"〇": 0, "零": 0, "一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_KANJI_UNITS = {"十": 10, "百": 100, "千": 1000}
_NUMBER = "[0-9〇零一二三四五六七八九十百千]+"

#: A number with the unit that follows it in a block address.
_BLOCK = re.compile(f"({_NUMBER})(丁目|番地|番|号)")
#: Dashes typed between two numbers (ー, −, ―, ‐): all mean "-" there.
_DASH = re.compile("(?<=[0-9])[ー―‐−–—](?=[0-9])")
#: 5番地の2, 5の2: の between two numbers is a separator too.
_NO = re.compile(f"(?<=[0-9])-?の({_NUMBER})")
#: A separator left at the end of the number chain (3丁目 -> 3-).
_TRAILING = re.compile("(?<=[0-9])-(?![0-9])")


def kanji_number(text: str) -> int:
    """Value of a number in Arabic or kanji digits: 23, 二十三, 二三, 百五, 一〇五."""
    if text.isdigit():
        return int(text)
    if not any(c in _KANJI_UNITS for c in text):
        return int("".join(str(_KANJI_DIGITS.get(c, c)) for c in text))
    total = 0
    digit = None
    for char in text:
        if char in _KANJI_UNITS:
            total += (1 if digit is None else digit) * _KANJI_UNITS[char]
            digit = None
        else:
            digit = _KANJI_DIGITS[char] if char in _KANJI_DIGITS else int(char)
    return total + (digit or 0)


def _block(match: re.Match[str]) -> str:
    """Rewrite "<number><unit>" as "<digits>-" when it is part of a block address.

    丁目 and 番地 always are. 番 and 号 are only when a number chain goes on
    around them (5番2号, 3丁目5番) or the address ends there: 一番町 and
    三番町 are town names, not block numbers.
    """
    number, unit = match.groups()
    if unit in ("番", "号"):
        before = match.string[match.start() - 1] if match.start() else ""
        after = match.string[match.end()] if match.end() < len(match.string) else ""
        chained = before in ("目", "地", "番", "-") or after == "" or after.isdigit() or after in _KANJI_DIGITS or after == "-"
        if not chained:
            return match.group(0)
    return f"{kanji_number(number)}-"


@lru_cache(maxsize=CACHE_SIZE)
def normalise_address(value: str) -> str | None:
    """Return the comparable form of an address, None when blank. Idempotent.

    NFKC and no spaces; kanji numbers before 丁目/番地/番/号 as digits; 丁目,
    番地, 番, 号, の and dashes between numbers as "-", none at the end
    (東町三丁目五番地二号 = 東町3丁目5番地2号 = 東町3-5-2); itaiji folded
    as in names (first, so that a folded 弌 is read as 一). Prefecture and
    building name are kept.
    """
    text = fold_itaiji(remove_spaces(clean_text(value)))
    if not text:
        return None
    # Each rewrite reads its neighbours, which an earlier rewrite may change
    # (番1番番): repeat to the fixpoint so that the result is idempotent.
    while True:
        rewritten = _rewrite_blocks(text)
        if rewritten == text:
            return text
        text = rewritten


def _rewrite_blocks(text: str) -> str:
    text = _DASH.sub("-", text)
    text = _BLOCK.sub(_block, text)
    text = _NO.sub(lambda m: f"-{kanji_number(m.group(1))}", text)
    return _TRAILING.sub("", text)
