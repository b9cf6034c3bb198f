"""Names: script detection, kanji and Latin name forms, splitting one-field names.

A foreign child may be registered in the alphabet (住民記録, as on the 在留カード)
and known at school by a kanji 通称 (tsuushou, an everyday name). The two are
different names, not two spellings of one: normalisation only records the
script in ``name_script`` so that the matcher compares like with like and
leans on the reading, birth date and address when the scripts differ.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from namedivider import BasicNameDivider, BasicNameDividerConfig

from linkage.normalise.kana import kana_key
from linkage.normalise.kanji import fold_itaiji, fold_repetition
from linkage.normalise.text import CACHE_SIZE, clean_text, remove_spaces

KANJI = "kanji"
LATIN = "latin"

#: Kanji, kana and the marks 々 〆 〇: any of them makes a name a Japanese-script name.
_JAPANESE = re.compile(
    "[\u3005-\u3007\u3041-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]"
)
_KANJI = re.compile("[\u3005\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_LATIN_LETTER = re.compile("[^\\W\\d_]", re.ASCII)
#: Punctuation a Latin name is written with or without (O'Brien, Jean-Luc, Jr.).
_LATIN_PUNCTUATION = re.compile("[.,\\-'\u2018\u2019\u2010\u2011]")


@lru_cache(maxsize=CACHE_SIZE)
def detect_script(value: str) -> str | None:
    """Return "kanji" for a name with any kanji or kana, "latin" for an alphabet name, else None."""
    text = clean_text(value)
    if _JAPANESE.search(text):
        return KANJI
    if _LATIN_LETTER.search(_strip_accents(text)):
        return LATIN
    return None


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@lru_cache(maxsize=CACHE_SIZE)
def normalise_kanji_name(value: str) -> str | None:
    """Kanji/kana name part: clean, no spaces, itaiji folded, 佐佐木 -> 佐々木. Idempotent."""
    text = fold_repetition(fold_itaiji(remove_spaces(clean_text(value))))
    return text or None


@lru_cache(maxsize=CACHE_SIZE)
def normalise_latin_name(value: str) -> str | None:
    """Latin name: NFKC, accents removed, upper case, no . , - ' and single spaces. Idempotent."""
    text = _LATIN_PUNCTUATION.sub("", _strip_accents(clean_text(value)).upper())
    text = " ".join(text.split())
    return text or None


@lru_cache(maxsize=CACHE_SIZE)
def normalise_name(value: str) -> str | None:
    """Normalise one name part by its script (kanji/kana or Latin); None when empty."""
    script = detect_script(value)
    if script == KANJI:
        return normalise_kanji_name(value)
    if script == LATIN:
        return normalise_latin_name(value)
    return normalise_kanji_name(value)


def latin_tokens_sorted(*parts: str | None) -> tuple[str, ...]:
    """All tokens of the given Latin name parts, sorted.

    The order of a Latin name differs between systems (SMITH JOHN in 住民記録,
    John Smith at school); a matcher compares these tuples to survive a swap.
    """
    tokens: list[str] = []
    for part in parts:
        if part:
            tokens.extend((normalise_latin_name(part) or "").split())
    return tuple(sorted(tokens))


@lru_cache(maxsize=1)
def _divider() -> BasicNameDivider:
    """The name divider, built once on first use (it loads its statistics).

    cache_mask keeps its per-length masks between calls: about 20 % faster,
    same results.
    """
    return BasicNameDivider(BasicNameDividerConfig(cache_mask=True))


@lru_cache(maxsize=CACHE_SIZE)
def split_full_name(full: str) -> tuple[str | None, str | None, bool]:
    """Split a one-field name into normalised (family, given, inferred).

    - With a space (half or full width): split on the first space, not inferred.
    - Latin without a space: the whole name as family, inferred.
    - Kanji: namedivider-python decides the split (on the itaiji-folded name,
      which its statistics know better), inferred. A name it cannot divide
      (one character) is the family name alone.
    - Kana only (no kanji): no rule splits a reading reliably, so the whole
      reading is the family part with no given part, inferred; a matcher
      compares family+given concatenated when either side is inferred.

    For a Latin name the first token is called "family" only positionally:
    the order is unknown, hence ``inferred`` is always true for Latin names
    and ``latin_tokens_sorted`` exists.
    """
    text = _SEPARATORS.sub(" ", clean_text(full)).strip()
    if not text:
        return None, None, False
    script = detect_script(text)
    if " " in text:
        family, given = text.split(" ", 1)
        return normalise_name(family), normalise_name(given), script == LATIN
    if script == LATIN:
        return normalise_latin_name(text), None, True
    name = normalise_kanji_name(text)
    if name is None or not _KANJI.search(name) or len(name) < 2:
        return name, None, True
    divided = _divider().divide_name(name)
    return divided.family or None, divided.given or None, True


#: Written between name parts in place of a space: 中黒 (・, half-width ･) and commas.
_SEPARATORS = re.compile(r"\s*[・･,、]\s*")


def split_full_kana(full: str) -> tuple[str | None, str | None, bool]:
    """Split a one-field reading into kana keys (family, given, inferred).

    With a space: split on the first space, not inferred. Without one the
    whole key is the family part and given is None, inferred (see
    ``split_full_name`` for why kana is not divided by rule).
    """
    text = _SEPARATORS.sub(" ", clean_text(full)).strip()
    if " " in text:
        family, given = text.split(" ", 1)
        return kana_key(family), kana_key(given), False
    key = kana_key(text)
    return key, None, key is not None
