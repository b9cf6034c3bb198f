"""The policy document: a municipality's roles, networks, sources, purposes and retention, as validated data."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from policy.support import SupportVocabulary

#: Every permission a role can hold, with what it lets a user do (shown to administrators).
PERMISSIONS: dict[str, str] = {
    "users.manage": "利用者とロールの管理",
    "agents.manage": "エージェントの登録・失効",
    "agents.read": "エージェントの一覧の閲覧",
    "submissions.read": "提出履歴・取込エラーの閲覧",
    "runs.read": "名寄せ実行の履歴・統計の閲覧",
    "runs.start": "名寄せの実行開始",
    "persons.read": "仮名化された人物と記録の閲覧",
    "persons.export": "仮名化データの書き出し（CSV・Parquet）",
    "review.read": "要確認ペアの閲覧",
    "review.decide": "要確認ペアの判定",
    "reidentify.request": "再識別の申請",
    "reidentify.approve": "再識別の承認",
    "escrow.unseal": "エスクロー鍵の封印解除（鍵管理者）",
    "audit.read": "監査ログの閲覧・検証",
    "retention.run": "保存期間を過ぎた記録の削除の実行",
    "support.read": "支援記録（判断・支援内容・対応状況）の閲覧",
    "support.record": "支援記録の登録・更新",
    "evaluation.read": "抽出方法の評価（集計・グラフ）の閲覧",
    "returns.send": "担当部署への対象者リスト（記録トークン）の送付",
    "pooled.share": "集計値（小さい数は秘匿）の都道府県への提供",
}

#: Network segments (三層分離 and the school network) an agent can sit on.
NETWORKS: dict[str, str] = {
    "edu": "校務系",
    "mynumber": "マイナンバー利用事務系",
    "internet": "インターネット接続系",
}

#: Legal bases of a purpose of use under 個人情報保護法.
LEGAL_BASES: dict[str, str] = {
    "61": "個人情報保護法第61条（所掌事務のための利用目的の特定）",
    "69-2-2": "個人情報保護法第69条第2項第2号（相当の理由のある臨時的な目的外利用）",
    "69-2-3": "個人情報保護法第69条第2項第3号（相当の理由のある臨時的な他機関への提供）",
}

#: Canonical identity columns (DESIGN.md); they travel only encoded or sealed, never as attributes.
IDENTITY_COLUMNS = frozenset({
    "record_id", "family_name", "given_name", "family_name_kana", "given_name_kana",
    "full_name", "full_name_kana", "birth_date", "sex", "postal_code", "address",
})

# 個人番号 never goes into a linkage (個人情報保護法, 番号法); matched after folding
# width, case and separators, anywhere in the attribute name.
_MY_NUMBER_PATTERNS = ("個人番号", "マイナンバー", "mynumber", "individualnumber")
_SEPARATORS = re.compile(r"[\s_\-・.]+")

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def is_my_number_like(attribute: str) -> bool:
    """True if ``attribute`` names a 個人番号 (My Number) in any usual spelling."""
    folded = _SEPARATORS.sub("", unicodedata.normalize("NFKC", attribute).casefold())
    return any(p in folded for p in _MY_NUMBER_PATTERNS)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Role(_Strict):
    """A role: what its users may do and which attributes they may see."""

    label: str
    permissions: tuple[str, ...] = ()
    #: attribute names this role sees in casework and exports; "*" means every attribute
    attributes: tuple[str, ...] = ()

    @field_validator("permissions")
    @classmethod
    def _known_permissions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [p for p in value if p not in PERMISSIONS]
        if unknown:
            raise ValueError(f"未知の権限 {', '.join(unknown)}（使える権限: {', '.join(PERMISSIONS)}）")
        return value


class Source(_Strict):
    """A department source system on one network: the attributes it may send and how long they are kept."""

    label: str
    attributes: tuple[str, ...] = ()
    #: days a record is kept after it was last submitted; absent = kept until removed from the source
    retention_days: int | None = Field(default=None, ge=1)

    @field_validator("attributes")
    @classmethod
    def _no_identity(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for a in value:
            if is_my_number_like(a):
                raise ValueError(f"属性「{a}」は個人番号にあたるため、どの経路でも送れません")
            if a in IDENTITY_COLUMNS:
                raise ValueError(f"「{a}」は本人特定項目で、暗号化（CLK）と封印でのみ送られます。属性には指定できません")
            if a == "*":
                raise ValueError("送信できる属性は名前で列挙してください（「*」は使えません）")
        return value


class Network(_Strict):
    """A network segment and the sources whose agents sit on it."""

    label: str
    sources: dict[str, Source] = {}


class Purpose(_Strict):
    """A purpose of use (利用目的) with its legal basis and the limits of a re-identification request."""

    name: str = ""
    label: str
    legal_basis: Literal["61", "69-2-2", "69-2-3"]
    description: str = ""
    #: approvals a re-identification request under this purpose needs before it is opened
    approvals_required: int = Field(ge=1)
    max_records_per_request: int = Field(ge=1)
    #: last day a temporary use (69条2項) may be relied on
    valid_until: dt.date | None = None

    @property
    def legal_basis_label(self) -> str:
        """The legal basis in words."""
        return LEGAL_BASES[self.legal_basis]

    @model_validator(mode="after")
    def _temporary_use_ends(self) -> "Purpose":
        if self.legal_basis.startswith("69") and self.valid_until is None:
            raise ValueError("第69条第2項による利用は臨時的なものに限られるため、valid_until（利用期限）が必要です")
        return self


#: The default format of a case reference (案件番号): an office prefix (kanji, kana or capitals) and one to four
#: hyphen-separated numbers of capitals and digits, with at least one digit, e.g. 要対協-2026-015 or R6-001.
#: A name (山田太郎) or free words are refused, so that no name ends up in a permanent log as a case number.
DEFAULT_CASE_REF_PATTERN = r"^(?=.*[0-9])[A-Z0-9\u3005\u3041-\u3096\u30A1-\u30FA\u30FC\u4E00-\u9FFF]{1,20}(?:-[A-Z0-9]{1,12}){1,4}$"


class Reidentification(_Strict):
    """Rules of a re-identification request that are the municipality's to set."""

    #: regular expression (Python ``re``, full match) a case reference must follow
    case_ref_pattern: str = DEFAULT_CASE_REF_PATTERN
    #: how the format is explained to a caseworker whose case reference does not follow it
    case_ref_example: str = "要対協-2026-015、R6-001（係の略称または英大文字に、ハイフンで区切った番号）"

    @field_validator("case_ref_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"案件番号の形式（正規表現）が正しくありません: {exc}") from None
        return value


class Municipality(_Strict):
    """Who the policy belongs to."""

    code: str = Field(pattern=r"^[0-9]{6}$")
    name: str


class PolicyDocument(_Strict):
    """The whole policy file."""

    version: Literal[1]
    municipality: Municipality
    roles: dict[str, Role]
    networks: dict[str, Network]
    purposes: dict[str, Purpose] = {}
    #: the vocabularies of support records (policy.support); the defaults serve when the file has no [support]
    support: SupportVocabulary = SupportVocabulary()
    reidentification: Reidentification = Reidentification()

    @model_validator(mode="after")
    def _consistent(self) -> "PolicyDocument":
        for kind, names in (("ロール", self.roles), ("利用目的", self.purposes)):
            bad = [n for n in names if not _NAME.match(n)]
            if bad:
                raise ValueError(f"{kind}名 {', '.join(bad)} は英小文字・数字・_ で書いてください")
        unknown = [n for n in self.networks if n not in NETWORKS]
        if unknown:
            raise ValueError(f"未知のネットワーク {', '.join(unknown)}（使えるもの: {', '.join(NETWORKS)}）")
        seen: dict[str, str] = {}
        for network, spec in self.networks.items():
            for source in spec.sources:
                if not _NAME.match(source):
                    raise ValueError(f"データ元名 {source} は英小文字・数字・_ で書いてください")
                if source in seen:
                    raise ValueError(f"データ元 {source} が {seen[source]} と {network} の両方にあります（一つの経路に限ります）")
                seen[source] = network
        return self
