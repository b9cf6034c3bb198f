"""How departments write the same fact differently: kana, kanji, date, address and postal-code variation."""

from __future__ import annotations

import random
from datetime import date

import jaconv

from ._population import Address
from ._tables import Tables

#: 〓 (geta): what a system without a 外字 writes for a character it cannot hold.
GETA = "\u3013"


def cp932_text(text: str, gaiji: dict[str, str] | None = None) -> str:
    """``text`` as a CP932 system writes it: a character CP932 cannot hold (𠮷, 𡈽 …) becomes 〓, or with ``gaiji``
    (character → code point, extended as new ones appear) a code point in the 外字 area (U+E000 = 0xF040 …)."""
    try:
        text.encode("cp932")
        return text
    except UnicodeEncodeError:
        pass
    out = []
    for ch in text:
        try:
            ch.encode("cp932")
            out.append(ch)
        except UnicodeEncodeError:
            out.append(GETA if gaiji is None else gaiji.setdefault(ch, chr(0xE000 + len(gaiji))))
    return "".join(out)

_O_ROW = set("オコゴソゾトドノホボポモヨロョ")
_U_ROW = set("ウクグスズツヅヌフブプムユルュ")
_E_ROW = set("エケゲセゼテデネヘベペメレ")
_SMALL_TO_LARGE = str.maketrans("ャュョッァィゥェォ", "ヤユヨツアイウエオ")
_KANA_ROWS = (
    "アイウエオ", "カキクケコ", "ガギグゲゴ", "サシスセソ", "ザジズゼゾ", "タチツテト", "ダヂヅデド",
    "ナニヌネノ", "ハヒフヘホ", "バビブベボ", "パピプペポ", "マミムメモ", "ヤユヨ", "ラリルレロ", "ワヲン",
)
_ROW_OF = {ch: row for row in _KANA_ROWS for ch in row}
_KANJI_NUMERALS = "〇一二三四五六七八九"
_FULLWIDTH_DIGITS = str.maketrans("0123456789-", "０１２３４５６７８９－")
_ERAS = ((date(2019, 5, 1), "令和", "R"), (date(1989, 1, 8), "平成", "H"))


def _hand_entry_edits(kana: str) -> list[str]:
    """Every spelling a clerk may type for a katakana reading, one edit away."""
    edits = []
    for i in range(1, len(kana)):
        prev, ch = kana[i - 1], kana[i]
        long_vowel = (
            (ch == "ウ" and (prev in _O_ROW or prev in _U_ROW))
            or (ch == "オ" and prev in _O_ROW)
            or (ch == "イ" and prev in _E_ROW)
        )
        if long_vowel:
            edits.append(kana[:i] + "ー" + kana[i + 1:])
        elif ch == "ー":
            vowel = "ウ" if prev in _O_ROW or prev in _U_ROW else "ア"
            edits.append(kana[:i] + vowel + kana[i + 1:])
    for a, b in (("ヂ", "ジ"), ("ヅ", "ズ"), ("ヲ", "オ")):
        if a in kana:
            edits.append(kana.replace(a, b))
    return edits


def hand_entry_variant(rng: random.Random, kana: str) -> str:
    """A variant spelling a person would type (long vowel ウ/ー/オ, ヂ/ジ, ヅ/ズ, ヲ/オ); unchanged if none applies."""
    edits = _hand_entry_edits(kana)
    return rng.choice(edits) if edits else kana


def without_small_kana(kana: str) -> str:
    """Small kana written full size, as systems without small kana do (ショウタ -> シヨウタ)."""
    return kana.translate(_SMALL_TO_LARGE)


def kana_typo(rng: random.Random, kana: str) -> str:
    """One katakana replaced by another of its row (a slip of the finger)."""
    positions = [i for i, ch in enumerate(kana) if ch in _ROW_OF and len(_ROW_OF[ch]) > 1]
    if not positions:
        return kana
    i = rng.choice(positions)
    row = _ROW_OF[kana[i]]
    return kana[:i] + rng.choice([c for c in row if c != kana[i]]) + kana[i + 1:]


def kanji_typo(rng: random.Random, tables: Tables, name: str) -> str:
    """One character replaced by a similar-looking one; unchanged if no character has a look-alike."""
    positions = [i for i, ch in enumerate(name) if ch in tables.similar_kanji]
    if not positions:
        return name
    i = rng.choice(positions)
    return name[:i] + rng.choice(tables.similar_kanji[name[i]]) + name[i + 1:]


def without_itaiji(rng: random.Random, tables: Tables, name: str, geta_rate: float) -> str:
    """The name as a system without 外字 holds it: each 異体字 as its common form, or 〓 at ``geta_rate``."""
    out = []
    for ch in name:
        common = tables.common_form.get(ch)
        if common is not None:
            ch = GETA if rng.random() < geta_rate else common
        out.append(ch)
    return "".join(out)


def hiragana(kana: str) -> str:
    """Katakana -> hiragana (ふりがな); ヴ becomes ぶ, as forms write it (ゔ is missing from CP932)."""
    return jaconv.kata2hira(kana.replace("ヴ", "ブ"))


def halfwidth(kana: str) -> str:
    """Full-width -> half-width katakana, voiced marks separate (ｻｲﾄｳ, ｶﾞ), as older systems hold it."""
    return jaconv.z2h(kana, kana=True, digit=False, ascii=False)


def swap_day_month(d: date) -> date:
    """Day and month transposed (12 May for 5 December); unchanged where that is no valid, different date."""
    if d.day <= 12 and d.day != d.month:
        return d.replace(month=d.day, day=d.month)
    return d


def digit_typo(rng: random.Random, d: date) -> date:
    """One digit of YYYYMMDD mistyped, keeping a valid date; unchanged if ten tries find none."""
    digits = d.strftime("%Y%m%d")
    for _ in range(10):
        i = rng.choice((3, 5, 6, 7))
        typed = digits[:i] + str(rng.randrange(10)) + digits[i + 1:]
        if typed == digits:
            continue
        try:
            return date(int(typed[:4]), int(typed[4:6]), int(typed[6:]))
        except ValueError:
            continue
    return d


def wareki(d: date, style: str) -> str:
    """A date in the Japanese calendar: "letter" (H27.4.1), "letter0" (R06.04.01) or "kanji" (令和元年5月1日)."""
    for start, era, letter in _ERAS:
        if d >= start:
            year = d.year - start.year + 1
            break
    else:
        raise ValueError(f"{d} is before 平成; the synthetic town has no such children")
    if style == "letter":
        return f"{letter}{year}.{d.month}.{d.day}"
    if style == "letter0":
        return f"{letter}{year:02d}.{d.month:02d}.{d.day:02d}"
    return f"{era}{'元' if year == 1 else year}年{d.month}月{d.day}日"


def kanji_number(n: int) -> str:
    """1-99 in kanji numerals as addresses write them (三, 十二, 二十五)."""
    tens, ones = divmod(n, 10)
    text = ("" if tens < 2 else _KANJI_NUMERALS[tens]) + ("十" if tens else "")
    return text + (_KANJI_NUMERALS[ones] if ones else "")


def address_text(a: Address, style: str, prefix: str, building: bool) -> str:
    """An address in one department's format.

    ``style``: "jukyo" (3丁目5番2号), "banchi" (3丁目5番地2), "hyphen" (3-5-2),
    "kanji" (三丁目5番2号), "fullwidth" (３－５－２). ``prefix``: "full"
    (prefecture and city), "city", or "none". A district without 丁目 reads
    新田1234番地 (or 新田1234 in the hyphen styles).
    """
    if a.chome:
        if style == "jukyo":
            number = f"{a.chome}丁目{a.banchi}番{a.go}号"
        elif style == "banchi":
            number = f"{a.chome}丁目{a.banchi}番地{a.go}"
        elif style == "kanji":
            number = f"{kanji_number(a.chome)}丁目{a.banchi}番{a.go}号"
        else:
            number = f"{a.chome}-{a.banchi}-{a.go}"
    else:
        number = f"{a.banchi}" if style in ("hyphen", "fullwidth") else f"{a.banchi}番地"
    if style == "fullwidth":
        number = number.translate(_FULLWIDTH_DIGITS)
    district = a.district
    if style in ("hyphen", "fullwidth") and district.startswith("大字"):
        district = district[2:]
    head = {"full": a.prefecture + a.city, "city": a.city, "none": ""}[prefix]
    text = head + district + number
    if building and a.building:
        if style == "fullwidth":
            text += f"　{a.building}{str(a.room).translate(_FULLWIDTH_DIGITS)}"
        elif style == "hyphen":
            text += f" {a.building}{a.room}"
        else:
            text += f" {a.building}{a.room}号室"
    return text


def postal_text(code: str, style: str) -> str:
    """A 7-digit postal code as "hyphen" (300-1201), "plain" (3001201), "fullwidth" (３００－１２０１) or "mark" (〒300-1201)."""
    hyphenated = f"{code[:3]}-{code[3:]}"
    if style == "plain":
        return code
    if style == "fullwidth":
        return hyphenated.translate(_FULLWIDTH_DIGITS)
    if style == "mark":
        return "〒" + hyphenated
    return hyphenated
