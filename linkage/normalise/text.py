"""Text cleaning shared by every field: NFKC, unknown characters, control characters, spaces."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from linkage.record import UNKNOWN_CHAR

#: Per-string caches hold this many entries; a city's distinct values fit.
CACHE_SIZE = 1 << 17

#: 〓 (geta) is what a system writes for a character it cannot hold; private-use
#: code points are municipality-specific 外字 (gaiji, e.g. CP932 0xF040-0xF9FC
#: decodes to U+E000-U+E757). Both stand for a character we cannot know, never
#: for a real one. Lone surrogates come from broken decoding and mean the same.
_UNKNOWN = re.compile("[\u3013\ue000-\uf8ff\U000f0000-\U0010ffff\ud800-\udfff]")

#: Control characters (Cc) other than whitespace, format characters (Cf: zero-width
#: space, BOM, bidi marks) and variation selectors (IVS pick a glyph of the same
#: character, e.g. 葛 vs 葛󠄀, and must not make two spellings differ).
_DROP = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f"
    "\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff"
    "\ufe00-\ufe0f\U000e0100-\U000e01ef]"
)

#: Any run of white space after NFKC (NFKC already turns U+3000 and NBSP into U+0020).
_SPACES = re.compile(r"\s+")


@lru_cache(maxsize=CACHE_SIZE)
def clean_text(value: str) -> str:
    """Return ``value`` in NFKC with unknown characters as UNKNOWN_CHAR.

    Control and format characters and variation selectors are removed, every
    run of white space (ASCII, U+3000, tab, NBSP, newline) becomes one ASCII
    space, and the result is trimmed. Idempotent.
    """
    text = _UNKNOWN.sub(UNKNOWN_CHAR, value)
    text = _DROP.sub("", text)
    text = unicodedata.normalize("NFKC", text)
    return _SPACES.sub(" ", text).strip()


def remove_spaces(value: str) -> str:
    """Return ``value`` with every white-space character removed.

    NFC afterwards: NFKC writes some marks as space + combining mark (´ ->
    " \u0301"); without the space the mark composes with the character
    before it, and a second pass must not find anything left to compose.
    """
    return unicodedata.normalize("NFC", _SPACES.sub("", value))
