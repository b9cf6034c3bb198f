"""Itaiji (異体字) folding: every variant of a kanji becomes one comparable form.

The folding follows the MJ縮退マップ (Moji Joho Kiban degeneration map, as
implemented by jntajis) with the schemes the 法務省 family-register notices
use, then a small supplement for variants that are used interchangeably in
names although MJ keeps them apart. The choice is explained in README.md (Itaiji folding).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import jntajis

_SCHEME = (
    jntajis.MJShrinkSchemeCombo.JIS_INCORPORATION_UCS_UNIFICATION_RULE
    | jntajis.MJShrinkSchemeCombo.INFERENCE_BY_READING_AND_GLYPH
    | jntajis.MJShrinkSchemeCombo.MOJ_NOTICE_582
    | jntajis.MJShrinkSchemeCombo.MOJ_FAMILY_REGISTER_ACT_RELATED_NOTICE
)

#: Name-equivalent variants that MJ does not unify, applied after MJ folding.
#: Each entry folds two characters a family or a school writes for the same
#: name; the reading and the birth date keep true namesakes apart.
SUPPLEMENT: dict[str, str] = {
    # 斉 (齊) and 斎 (齋) are different characters, but 斉藤/斎藤 (and 齊藤/齋藤)
    # are one surname written both ways in practice, read さいとう alike.
    "斉": "斎",
    # 凜 and 凛 are both 人名用漢字 read りん and look alike; a registered 凜
    # is often typed 凛 elsewhere (and the other way round).
    "凜": "凛",
    # 薮 is the abbreviated form (略字) of 藪; 藪田/薮田 name the same family.
    "薮": "藪",
    # 篭 is the abbreviated form (略字) of 籠; 籠谷/篭谷 name the same family.
    "篭": "籠",
    # The small ヶ/ヵ in names and place names (一ヶ谷, 霞ヶ関) stand for the
    # counter 箇 and are written with a large ケ/カ just as often.
    "ヶ": "ケ",
    "ヵ": "カ",
}

#: Characters whose MJ candidates are ignored. The family-register notice
#: scheme lists, for some common characters, the target of an erroneous
#: glyph (誤字) that shares the code point, joining characters with different
#: readings and meanings. Found by reviewing every JIS X 0208 kanji that
#: folds (the level-1 list in full); a test pins the level-1 result.
KEEP: frozenset[str] = frozenset(
    "功切"  # 功 (こう, いさお) <-> 切 (せつ, きる)
    "師"  # 師 (し) -> 帥 (すい)
    "書"  # 書 (しょ) -> 昼/晝 (ちゅう)
    "舛"  # 舛 (せん, 舛添) -> 升 (しょう, ます)
    "傅"  # 傅 (ふ) -> 伝/傳 (でん)
    "孩"  # 孩 (がい) -> 咳 (せき)
    "夂"  # 夂 (ち) -> 終 (しゅう)
    "昜"  # 昜 (よう) -> 易 (えき)
    "慟"  # 慟 (どう) -> 恫 (どう, a different word)
    "耒"  # 耒 (らい, すき) -> 来
    "糢"  # 糢 (も, 糢糊) -> 模
    "玉"  # 玉 (ぎょく, たま) -> 王 (おう)
    "着"  # 着 (ちゃく, きる) -> 著 (ちょ): distinct in modern use
    "宍"  # 宍 (しし, 宍戸) -> 肉: 宍戸 is never written 肉戸
    "吊"  # 吊 (ちょう, つる) -> 弔 (とむらう): distinct in modern use
    "擱誥逑碚"  # 擱->閣, 誥->詰, 逑->述, 碚->培: look-alikes, not variants
)

#: A CJK ideograph repeated directly: 佐佐木 is written 佐々木.
_REPEAT = re.compile(
    "([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f])\\1"
)


def is_jis_x_0208(char: str) -> bool:
    """True when ``char`` is in JIS X 0208 proper (not the NEC/IBM extensions).

    EUC-JP holds JIS X 0208 row r at lead byte 0xA0 + r: rows 1-8 are symbols
    and kana, 16-84 kanji. Row 13 (NEC special characters) and rows 89-92
    (NEC-selected IBM extensions, e.g. 髙 and 﨑) are vendor additions.
    """
    try:
        encoded = char.encode("euc_jp")
    except UnicodeEncodeError:
        return False
    if len(encoded) != 2:
        return False
    row = encoded[0] - 0xA0
    return 1 <= row <= 8 or 16 <= row <= 84


def _candidates(char: str) -> set[str]:
    """MJ shrink candidates of ``char`` as single NFKC characters (no compatibility ideographs)."""
    if char in KEEP:
        return {char}
    found = {unicodedata.normalize("NFKC", c) for c in jntajis.mj_shrink_candidates(char, _SCHEME)}
    return {c for c in found if len(c) == 1}


def _preference(char: str) -> tuple[int, int, int]:
    """Sort key for picking the canonical member of a variant group.

    JIS X 0208 level 1 kanji (rows 16-47, the common forms) first, then
    level 2 (rows 48-84), then anything else; then a character MJ folds to
    nothing else (舘 -> 館: 館 is such a sink); ties by code point so the
    choice never depends on the order jntajis lists candidates in.
    """
    if is_jis_x_0208(char):
        row = char.encode("euc_jp")[0] - 0xA0
        rank = 0 if row <= 47 else 1
    else:
        rank = 2
    not_sink = int(bool(_candidates(char) - {char}))
    return rank, not_sink, ord(char)


def _variant_group(char: str) -> set[str]:
    """``char`` and every character reachable through MJ shrink candidates."""
    group = {char}
    todo = [char]
    while todo:
        for candidate in _candidates(todo.pop()):
            if candidate not in group:
                group.add(candidate)
                todo.append(candidate)
    return group


@lru_cache(maxsize=None)  # bounded by the characters that exist
def fold_kanji(char: str) -> str:
    """Return the canonical form of one character (itself when it has no variant).

    Why a group and not "the first JIS X 0208 candidate": MJ lists both
    directions for some pairs (渕 -> [淵, 渕], 淵 -> [渕, 淵]; 真/眞, 寿/壽),
    so that rule would never reach a fixpoint. Choosing the preferred member of the
    whole group gives every member the same answer. The supplement is applied
    to the result, and folding repeats until nothing changes.
    """
    seen = {char}
    current = char
    while True:
        best = min(_variant_group(current), key=_preference)
        best = SUPPLEMENT.get(best, best)
        if best in seen:
            return best
        seen.add(best)
        current = best


class _FoldTable(dict):
    """str.translate table from code point to folded character, filled on first sight."""

    def __missing__(self, codepoint: int) -> str:
        folded = self[codepoint] = fold_kanji(chr(codepoint))
        return folded


_FOLD_TABLE = _FoldTable()


def fold_itaiji(text: str) -> str:
    """Fold every character of ``text`` to its canonical form. Idempotent."""
    return text.translate(_FOLD_TABLE)


def fold_repetition(text: str) -> str:
    """Write a kanji repeated directly with 々 (佐佐木 -> 佐々木); 々 is kept as is."""
    return _REPEAT.sub("\\1々", text)
