"""Addresses: one comparable form for 丁目・番地・号 written in words, digits or hyphens."""

from __future__ import annotations

import re
from functools import lru_cache

from linkage.normalise.kanji import fold_itaiji
from linkage.normalise.text import CACHE_SIZE, clean_text, remove_spaces

_KANJI_DIGITS = {"〇": 0, "零": 0, "一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_KANJI_UNITS = {"十": 10, "百": 100, "千": 1000}
_KANJI_NUMERAL = "[〇零一二三四五六七八九十百千]"

#: A kanji number written before a block unit (三丁目, 五番地, 二号) or after の (五番地の二).
_KANJI_BLOCK = re.compile(f"{_KANJI_NUMERAL}+(?=丁目|番地|番|号)|(?<=[0-9地番]の){_KANJI_NUMERAL}+")
_HAS_KANJI_NUMERAL = re.compile(_KANJI_NUMERAL)
#: Dashes typed between two numbers (ー, −, ―, ‐): all mean "-" there.
_DASH_CHARS = frozenset("ー―‐−–—")
_DASH = re.compile(f"(?<=[0-9])[{''.join(_DASH_CHARS)}](?=[0-9])")
#: 丁目 and 番地 after a number are always block units.
#: (Replacements below are literal strings: much faster than group templates.)
_ALWAYS = re.compile("(?<=[0-9])(?:丁目|番地)")
#: 5番地の2, 5の2: の between two numbers is a separator too.
_NO = re.compile("(?<=[0-9])-?の(?=[0-9])")
#: 番 and 号 are block units only inside a number chain (3-5番, 5番2号) or at
#: its end (2号, 2号グランドハイツ after a chain): 一番町 and 三番町 are town names.
#: (Rewrites run in order, so a unit before the number is already "-" here.)
_CHAINED_BEFORE = re.compile("(?<=[0-9])[番号](?=[0-9の-]|$)")
_CHAINED_AFTER = re.compile("(?:(?<=-[0-9])|(?<=-[0-9]{2})|(?<=-[0-9]{3})|(?<=-[0-9]{4}))[番号]")
#: A separator left at the end of the number chain (3丁目 -> 3-).
_TRAILING = re.compile("(?<=[0-9])-(?![0-9])")
#: Text with none of these has nothing left to rewrite.
_REWRITABLE = re.compile("[丁番号のー―‐−–—]|-(?![0-9])")


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


def _rewrite_blocks(text: str) -> str:
    if _HAS_KANJI_NUMERAL.search(text):
        text = _KANJI_BLOCK.sub(lambda m: str(kanji_number(m.group(0))), text)
    # Each pass only when its characters occur: a regex pass costs more than `in`.
    if _DASH_CHARS.intersection(text):
        text = _DASH.sub("-", text)
    if "丁目" in text or "番地" in text:
        text = _ALWAYS.sub("-", text)
    if "の" in text:
        text = _NO.sub("-", text)
    if "番" in text or "号" in text:
        text = _CHAINED_BEFORE.sub("-", text)
        text = _CHAINED_AFTER.sub("-", text)
    return _TRAILING.sub("", text) if "-" in text else text


@lru_cache(maxsize=CACHE_SIZE)
def normalise_address(value: str) -> str | None:
    """Return the comparable form of an address, None when blank. Idempotent.

    NFKC and no spaces; kanji numbers before 丁目/番地/番/号 as digits
    (一番町 becomes 1番町 too, as some systems write it); 丁目, 番地, 番,
    号, の and dashes between numbers as "-", none at the end
    (東町三丁目五番地二号 = 東町3丁目5番地2号 = 東町3-5-2); itaiji folded
    as in names (first, so that a folded 弌 is read as 一). Prefecture and
    building name are kept.
    """
    text = fold_itaiji(remove_spaces(clean_text(value)))
    if not text:
        return None
    # Each rewrite reads its neighbours, which an earlier rewrite may change
    # (番1番番): repeat to the fixpoint so that the result is idempotent.
    while _REWRITABLE.search(text):
        rewritten = _rewrite_blocks(text)
        if rewritten == text:
            break
        text = rewritten
    return text
