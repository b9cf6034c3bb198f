"""Sex: JIS X 0303 codes (1 male, 2 female), M/F, 男/女 and English words to "M"/"F"."""

from __future__ import annotations

from linkage.errors import FieldError
from linkage.normalise.text import clean_text

FIELD = "sex"

_CODES: dict[str, str | None] = {
    "1": "M", "M": "M", "MALE": "M", "男": "M", "男性": "M",
    "2": "F", "F": "F", "FEMALE": "F", "女": "F", "女性": "F",
    # JIS X 0303: 0 = not known, 9 = not applicable. Blank is "no data", not a third sex.
    "": None, "0": None, "9": None, "不明": None,
}

_REASON = (
    "性別を読み取れません。1（男）・2（女）、M・F、男・女、男性・女性のいずれかで入力してください。"
    "不明のときは空欄・0・9・不明のいずれかにしてください"
)


def normalise_sex(value: str) -> str | None:
    """Return "M", "F" or None (unknown or blank); raise FieldError("sex", ...) otherwise."""
    key = clean_text(value).upper()
    try:
        return _CODES[key]
    except KeyError:
        raise FieldError(FIELD, _REASON, value) from None
