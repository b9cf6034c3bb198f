"""Kana key: one katakana spelling for every way a reading is written.

Hiragana and half-width forms become full-width katakana; spellings that
hand-entered or older systems write differently (small kana, ヂ/ジ, ヅ/ズ,
ヲ/オ, ヴ, long vowels) become one form. Two readings that sound different
keep different keys (ユキ and ユウキ stay apart: a long vowel is unified,
never deleted).
"""

from __future__ import annotations

import re
from functools import lru_cache

import jaconv

from linkage.normalise.text import CACHE_SIZE, clean_text
from linkage.record import UNKNOWN_CHAR

#: The long-vowel mark every lengthening becomes.
LONG_MARK = "ー"

#: Kana that are not comparable as typed: voiced/semi-voiced marks left alone
#: after NFKC (ｱﾞ), small kana written large by systems without them, and
#: kana that sound the same as a commoner one (ヂ ジ, ヅ ズ, ヲ オ, ヰ イ, ヱ エ).
_FOLD = str.maketrans(
    {
        "\u3099": None,
        "\u309a": None,
        "ァ": "ア", "ィ": "イ", "ゥ": "ウ", "ェ": "エ", "ォ": "オ",
        "ッ": "ツ", "ャ": "ヤ", "ュ": "ユ", "ョ": "ヨ", "ヮ": "ワ", "ヵ": "カ", "ヶ": "ケ",
        "ヂ": "ジ", "ヅ": "ズ", "ヲ": "オ", "ヰ": "イ", "ヱ": "エ",
        "ヷ": "バ", "ヸ": "ビ", "ヹ": "ベ", "ヺ": "ボ",
    }
)

#: ヴ with a following small vowel is the b-row mora it is read as.
_VU = re.compile("ヴ([ァィゥェォ]?)")
_VU_ROW = {"ァ": "バ", "ィ": "ビ", "ゥ": "ブ", "ェ": "ベ", "ォ": "ボ", "": "ブ"}

#: Iteration marks repeat the previous kana (いすゞ -> イスズ); ヾ voices it.
_ITERATION = re.compile("(.)([ヽヾ])")
_VOICED = str.maketrans(
    "カキクケコサシスセソタチツテトハヒフヘホウ",
    "ガギグゲゴザジズゼゾダヂヅデドバビブベボヴ",
)

#: Everything that is not a full-width katakana letter, an iteration mark, the
#: long mark or UNKNOWN_CHAR.
_NOT_KANA = re.compile(f"[^\u30a1-\u30fa\u30fd\u30fe{LONG_MARK}{UNKNOWN_CHAR}]")

#: Vowel of each katakana mora after folding (ン, ツ-as-ッ etc. keep theirs).
_VOWEL: dict[str, str] = {}
for _vowel, _row in (
    ("a", "アカガサザタダナハバパマヤラワ"),
    ("i", "イキギシジチニヒビピミリ"),
    ("u", "ウクグスズツヌフブプムユル"),
    ("e", "エケゲセゼテデネヘベペメレ"),
    ("o", "オコゴソゾトドノホボポモヨロ"),
):
    _VOWEL.update(dict.fromkeys(_row, _vowel))

#: Kana that lengthen a mora of the given vowel (トウ, トオ, ケイ, ケエ, ユウ, ミイ, マア).
_LENGTHENS = {"a": "アー", "i": "イー", "u": "ウー", "e": "イエー", "o": "オウー"}


def _repeat(match: re.Match[str]) -> str:
    previous, mark = match.groups()
    repeated = previous.translate(_VOICED) if mark == "ヾ" else previous
    return previous + repeated


def _unify_long_vowels(kana: str) -> str:
    """Write every lengthening of a mora as LONG_MARK.

    A mora is lengthened at most once: after a long mark the next vowel kana
    is a mora of its own (ケイイチ -> ケーイチ, not ケーーチ). This is what
    makes the rule idempotent.
    """
    out = []
    vowel = None
    for char in kana:
        if vowel is not None and char in _LENGTHENS[vowel]:
            out.append(LONG_MARK)
            vowel = None
        else:
            out.append(char)
            vowel = _VOWEL.get(char)
    return "".join(out)


@lru_cache(maxsize=CACHE_SIZE)
def kana_key(value: str) -> str | None:
    """Return the comparable katakana key of a reading, or None if there is none.

    Steps: clean_text (NFKC composes half-width ｶﾞ into ガ), hiragana to
    katakana (jaconv), iteration marks expanded, ヴ+vowel to the b-row,
    small kana enlarged, ヂ/ヅ/ヲ/ヰ/ヱ to ジ/ズ/オ/イ/エ, lengthening vowels
    and ー to one long mark, then anything that is not kana (kanji, digits,
    spaces, ・) dropped. A field in the Latin alphabet with no kana gives None,
    as does a field with nothing left. Idempotent.
    """
    text = jaconv.hira2kata(clean_text(value))
    kana = _NOT_KANA.sub("", text)
    if not kana:
        return None
    if "ヽ" in kana or "ヾ" in kana:
        kana = _ITERATION.sub(_repeat, kana).replace("ヽ", "").replace("ヾ", "")
    if "ヴ" in kana:
        kana = _VU.sub(lambda m: _VU_ROW[m.group(1)], kana)
    return _unify_long_vowels(kana.translate(_FOLD)) or None
