"""Loading a policy file and deciding, with a reason, what it allows."""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from policy._model import (
    IDENTITY_COLUMNS,
    NETWORKS,
    PERMISSIONS,
    Purpose,
    PolicyDocument,
    is_my_number_like,
)


class PolicyError(Exception):
    """A policy file cannot be read or is invalid, or a name is not in it; the message says which and where."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer of the policy: allowed or not, and why (Japanese, safe to show and log)."""

    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


class Policy:
    """A municipality's validated policy; every question is answered by a :class:`Decision`."""

    def __init__(self, document: PolicyDocument, origin: str) -> None:
        """Wrap a validated document; ``origin`` names where it came from (for messages)."""
        self.document = document
        self.origin = origin
        self._source_network = {s: n for n, spec in document.networks.items() for s in spec.sources}

    @property
    def municipality_code(self) -> str:
        """The municipality's 6-digit local government code (全国地方公共団体コード)."""
        return self.document.municipality.code

    @property
    def roles(self) -> tuple[str, ...]:
        """Role names in the file's order."""
        return tuple(self.document.roles)

    def may_send(self, network: str, source: str, attribute: str) -> Decision:
        """May an agent on ``network`` send ``attribute`` of ``source`` records to the gateway?"""
        if is_my_number_like(attribute):
            return Decision(False, f"属性「{attribute}」は個人番号にあたるため、送信できません（ポリシーの設定にかかわらず禁止）。")
        if attribute in IDENTITY_COLUMNS:
            return Decision(False, f"「{attribute}」は本人特定項目です。暗号化（CLK）と封印でのみ送られ、属性としては送信できません。")
        spec = self.document.networks.get(network)
        if spec is None:
            return Decision(False, f"ネットワーク「{network}」はポリシー（{self.origin}）にありません。")
        src = spec.sources.get(source)
        if src is None:
            return Decision(False, f"データ元「{source}」は{_network_label(network)}からの送信を認められていません。")
        if attribute not in src.attributes:
            return Decision(False, f"属性「{attribute}」は{_network_label(network)}のデータ元「{source}」から送信できません（ポリシーで許可されていません）。")
        return Decision(True, f"属性「{attribute}」は{_network_label(network)}のデータ元「{source}」から送信できます。")

    def allowed_attributes(self, network: str, source: str) -> tuple[str, ...]:
        """The attributes ``source`` on ``network`` may send (empty if the source is not allowed there)."""
        spec = self.document.networks.get(network)
        src = spec.sources.get(source) if spec else None
        if src is None:
            return ()
        return tuple(a for a in src.attributes if self.may_send(network, source, a).allowed)

    def network_of(self, source: str) -> str | None:
        """The network a source sits on, or None if the policy does not know it."""
        return self._source_network.get(source)

    def may(self, role: str, permission: str) -> Decision:
        """May a user holding ``role`` do what ``permission`` names?"""
        if permission not in PERMISSIONS:
            return Decision(False, f"権限「{permission}」は定義されていません。")
        spec = self.document.roles.get(role)
        if spec is None:
            return Decision(False, f"ロール「{role}」はポリシーにありません。")
        if permission not in spec.permissions:
            return Decision(False, f"ロール「{spec.label}」には「{PERMISSIONS[permission]}」の権限がありません。")
        return Decision(True, f"ロール「{spec.label}」は「{PERMISSIONS[permission]}」ができます。")

    def may_see(self, role: str, attribute: str) -> Decision:
        """May a user holding ``role`` see ``attribute`` values (casework screens and exports)?"""
        spec = self.document.roles.get(role)
        if spec is None:
            return Decision(False, f"ロール「{role}」はポリシーにありません。")
        if "*" in spec.attributes or attribute in spec.attributes:
            return Decision(True, f"ロール「{spec.label}」は属性「{attribute}」を閲覧できます。")
        return Decision(False, f"ロール「{spec.label}」は属性「{attribute}」を閲覧できません。")

    def purpose(self, name: str) -> Purpose:
        """The purpose of use called ``name``; raises :class:`PolicyError` if there is none."""
        spec = self.document.purposes.get(name)
        if spec is None:
            known = ", ".join(self.document.purposes) or "なし"
            raise PolicyError(f"利用目的「{name}」はポリシーにありません（定義済み: {known}）。")
        return spec.model_copy(update={"name": name})

    def purposes(self) -> tuple[Purpose, ...]:
        """Every purpose of use, in the file's order."""
        return tuple(self.purpose(n) for n in self.document.purposes)

    def may_use_purpose(self, name: str, on: dt.date) -> Decision:
        """May ``name`` be relied on ``on`` that day (a temporary use ends at its ``valid_until``)?"""
        try:
            spec = self.purpose(name)
        except PolicyError as exc:
            return Decision(False, str(exc))
        if spec.valid_until is not None and on > spec.valid_until:
            return Decision(False, f"利用目的「{spec.label}」（{spec.legal_basis_label}）の利用期限 {spec.valid_until} を過ぎています。")
        return Decision(True, f"利用目的「{spec.label}」（{spec.legal_basis_label}）により利用できます。")

    def check_case_ref(self, case_ref: str) -> Decision:
        """Does ``case_ref`` follow the case-reference format the policy declares (``[reidentification] case_ref_pattern``)?"""
        rules = self.document.reidentification
        if re.fullmatch(rules.case_ref_pattern, case_ref) is None:
            # The value is not repeated: a reason is shown and logged, and the value may be a name.
            return Decision(False, f"案件番号がポリシーで決められた形式ではありません（例: {rules.case_ref_example}）。"
                                   "氏名などの個人情報は案件番号に入力できません。")
        return Decision(True, "案件番号はポリシーの形式に合っています。")

    def retention_days(self, source: str) -> int | None:
        """Days ``source`` records are kept after their last submission; None if the policy sets no limit."""
        network = self._source_network.get(source)
        if network is None:
            return None
        return self.document.networks[network].sources[source].retention_days


def _network_label(network: str) -> str:
    return f"{NETWORKS.get(network, network)}（{network}）"


def load_policy(path: Path | str) -> Policy:
    """Read and validate a policy TOML file; raises :class:`PolicyError` saying what is wrong where."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(f"ポリシーファイル {path} がありません。") from None
    except UnicodeDecodeError:
        raise PolicyError(f"ポリシーファイル {path} が UTF-8 ではありません。") from None
    return _parse(text, str(path))


def default_policy() -> Policy:
    """The policy shipped with tsunagu (``policy/default_policy.toml``)."""
    text = resources.files("policy").joinpath("default_policy.toml").read_text(encoding="utf-8")
    return _parse(text, "default_policy.toml")


def _parse(text: str, origin: str) -> Policy:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"ポリシーファイル {origin} の TOML が読めません: {exc}") from None
    try:
        document = PolicyDocument.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(全体)'}: {_message(e)}" for e in exc.errors())
        raise PolicyError(f"ポリシーファイル {origin} に誤りがあります — {problems}") from None
    return Policy(document, origin)


_PYDANTIC_MESSAGES = {
    "missing": "必須の項目がありません",
    "extra_forbidden": "未知の項目です（綴りを確認してください）",
    "literal_error": "使えない値です",
    "greater_than_equal": "値が小さすぎます",
    "string_pattern_mismatch": "形式が違います",
}


def _message(error: dict) -> str:
    # Our validators raise ValueError with a Japanese message; pydantic prefixes it.
    if error.get("type") in _PYDANTIC_MESSAGES:
        return f"{_PYDANTIC_MESSAGES[error['type']]}（{error.get('msg', '')}）"
    return str(error.get("msg", "")).removeprefix("Value error, ")
