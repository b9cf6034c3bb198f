"""Support records as data: the vocabularies a municipality codes its judgements in, and the check on short notes.

Staff record what they decided and did about a child in coded, structured
fields only — assessment, difficulty types, support given, department, case
status, coded reasons — so that nothing that could name a child reaches the
gateway. A short note is allowed, but :func:`note_problem` refuses one that
looks like a name, an address or a phone number.

The assessments and case statuses are fixed here, because the evaluation
(``gateway.evaluation``) depends on what they mean; the other vocabularies
live in the policy file's ``[support]`` table (defaults below) so that a
municipality can name its own difficulty types, kinds of support and
departments.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from importlib import resources

from pydantic import BaseModel, ConfigDict, Field, field_validator

from policy.screening import Condition

#: Staff judgement of a case. ``needs_support`` is the positive class of every precision figure.
ASSESSMENTS: dict[str, str] = {
    "needs_support": "支援が必要",
    "watch": "見守り",
    "not_needed": "対応不要",
    "pending": "判断保留",
}
#: Assessments that mean a person looked at the child and decided (判断保留 does not count as checked).
DECIDED = ("needs_support", "watch", "not_needed")

#: Where a case stands, in order.
CASE_STATUSES: dict[str, str] = {
    "open": "未着手",
    "checking": "確認中",
    "supporting": "支援中",
    "closed": "終結",
}

_CODE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class FairnessGroup(BaseModel):
    """A group the risk index must not rank lower for lack of data (e.g. 転入して学校データ空欄)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str
    all: tuple[Condition, ...] = Field(min_length=1)


def _default_groups() -> dict[str, FairnessGroup]:
    return {
        "transferred_in_blank": FairnessGroup(label="転入児童（学校のデータが空欄）", all=(
            Condition(source="residents", attribute="moved_in_from", op="present"),
            Condition(source="school", attribute="absence_days", op="missing"))),
        "foreign": FairnessGroup(label="外国籍の児童", all=(
            Condition(source="residents", attribute="foreign_national", op="==", value="1"),)),
    }


class SupportVocabulary(BaseModel):
    """The ``[support]`` table of the policy: codes and their labels (codes: lower-case ASCII)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    difficulties: dict[str, str] = {
        "abuse": "虐待", "poverty": "貧困", "school_refusal": "不登校", "young_carer": "ヤングケアラー",
        "postnatal_depression": "産後うつ", "disability": "障害・発達", "other": "その他",
    }
    supports: dict[str, str] = {
        "financial": "経済的支援", "childcare_education": "保育・教育", "health": "保健", "counselling": "相談",
        "referral": "他機関へのつなぎ",
    }
    departments: dict[str, str] = {
        "kodomo_center": "こども家庭センター", "education": "教育委員会", "health_center": "保健センター",
        "welfare": "福祉課", "residents_division": "市民課",
    }
    #: why a flagged child was judged not to need support (what the human check changed)
    not_needed_reasons: dict[str, str] = {
        "already_supported": "既に支援を受けている", "data_error": "データが古い・誤り", "resolved": "一時的な事情で解消済み",
        "no_concern": "面談等で懸念なしと確認", "moved_out": "転出した",
    }
    #: what a department can be asked to do with a returned list of its own records
    actions: dict[str, str] = {
        "line_notice": "公式 LINE による案内", "home_visit": "家庭訪問", "letter": "郵送による案内", "phone_call": "電話連絡",
    }
    #: groups the risk index is checked against (conditions as in the screening rules)
    fairness_groups: dict[str, FairnessGroup] = Field(default_factory=_default_groups)
    #: characters a note may hold at most
    note_max: int = Field(default=100, ge=0, le=400)

    @field_validator("difficulties", "supports", "departments", "not_needed_reasons", "actions")
    @classmethod
    def _codes(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if not _CODE.match(k)]
        if bad:
            raise ValueError(f"コード {', '.join(bad)} は英小文字・数字・_ で書いてください")
        if not value:
            raise ValueError("少なくとも 1 つのコードが必要です")
        return value


# ---- notes: short, and refused when they look like they carry an identity --------------------------------

_PHONE = re.compile(r"(?:\d[\s\-‐－ー()（）]*){9,}")
_POSTAL = re.compile(r"〒|\b\d{3}-\d{4}\b")
_DIGITS = re.compile(r"\d{4,}")
_ADDRESS = re.compile(r"(?:都|道|府|県|市|区|町|村|丁目|番地|番|号|条)\s*\d|\d+\s*(?:丁目|番地|番|号(?!室)|条)|[一二三四五六七八九十]+丁目|方$|様方")
_HONORIFIC = re.compile(r"(?:さん|様|さま|くん|君|ちゃん|氏|殿)(?:$|[、。\s,.（(が]|の|は|に|と|へ|を)")
_LATIN_NAME = re.compile(r"\b[A-Z][a-z]+\s+[A-Z][a-z]+\b")


#: The list of common surnames a note may not contain (package data of ``policy``, declared in pyproject.toml).
SURNAMES_FILE = "common_surnames.txt"


@lru_cache(maxsize=1)
def _surnames() -> tuple[str, ...]:
    """Common surnames of two or more characters: the policy's own list, shipped with this package (``common_surnames.txt``)."""
    text = resources.files("policy").joinpath(SURNAMES_FILE).read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def note_problem(note: str, limit: int = 100) -> str | None:
    """Why ``note`` may not be stored (Japanese, safe to show), or None when it may.

    The check is deliberately strict: a note that merely looks like a phone
    number, a postal code or address, an honorific after a name, or a common
    surname is refused, and staff are asked to use the coded fields instead.
    """
    text = unicodedata.normalize("NFKC", note).strip()
    if len(text) > limit:
        return f"メモは {limit} 文字以内にしてください（{len(text)} 文字）。"
    if _PHONE.search(text) or _DIGITS.search(text):
        return "メモに電話番号や番号のような数字の並びがあります。番号は書かず、項目の選択で記録してください。"
    if _POSTAL.search(text) or _ADDRESS.search(text):
        return "メモに住所のような記載があります。住所はゲートウェイに記録できません。"
    if _HONORIFIC.search(text) or _LATIN_NAME.search(text):
        return "メモに人名のような記載（敬称など）があります。氏名はゲートウェイに記録できません。"
    hit = next((s for s in _surnames() if s in text), None)
    if hit:
        return f"メモに人名と思われる語（{hit}）があります。氏名はゲートウェイに記録できません。"
    return None
