"""Rendering the escrow's pages: its templates over the shared skeleton (:mod:`service.web.render`), the navigation each role sees, identities in Japanese."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from fastapi import Request
from fastapi.responses import HTMLResponse

from escrow.identity import ROLES
from policy import LEGAL_BASES
from service.web.render import make_templates, page
from service.web.session import WebSession

templates = make_templates(Path(__file__).with_name("templates"))


@dataclass(frozen=True, slots=True)
class NavItem:
    """A link of the navigation, for users holding one of ``roles``."""

    label: str
    path: str
    roles: tuple[str, ...]


NAVIGATION = (
    NavItem("承認待ちの申請", "/ui/requests", ("approver", "auditor", "admin")),
    NavItem("自分の申請と受け取り", "/ui/mine", ("caseworker",)),
    NavItem("開封（鍵管理者）", "/ui/unseal", ("custodian", "admin")),
    NavItem("監査ログ", "/ui/audit", ("auditor",)),
)

STATUS = {
    "pending": "承認待ち", "approved": "承認済み（未受取）", "rejected": "却下", "released": "開示済み",
    "expired": "期限切れ（未受取）", "not_filed": "エスクローに未提出",
}


templates.env.globals["STATUS"] = STATUS


def landing(roles: frozenset[str]) -> str:
    """Where a user starts: the first screen their roles may open."""
    return next((n.path for n in NAVIGATION if roles & set(n.roles)), "/ui/requests")


def render(request: Request, name: str, session: WebSession | None, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render ``name`` for ``session``'s user (navigation, CSRF token); never cached (identities pass here)."""
    policy = request.app.state.escrow.policy
    base: dict[str, Any] = {"legal_bases": LEGAL_BASES,
                            "purposes": {p.name: p.label for p in policy.purposes()} if policy is not None else {},
                            "sources": ({s: spec.label for n in policy.document.networks.values() for s, spec in n.sources.items()}
                                        if policy is not None else {})}
    if session is not None:
        base.update(role_label="、".join(ROLES[r].split("（")[0] for r in sorted(session.user.roles)),
                    navigation=[n for n in NAVIGATION if session.user.roles & set(n.roles)])
    return page(templates, request, name, session, status_code, {**base, **context})


_SEX = {"M": "男", "F": "女"}


def identity_view(identity: Mapping[str, str]) -> dict[str, str]:
    """An opened identity as the receipt shows it: 氏名, よみ, 生年月日 (和暦 and 西暦), 性別, 住所 — each as held, or 「記録なし」."""
    # Imported here: the normalisation package loads name dictionaries, which the escrow needs only for a receipt.
    from linkage.errors import FieldError
    from linkage.normalise.dates import parse_birth_date, to_wareki
    from linkage.normalise.sex import normalise_sex

    name = identity.get("full_name") or "　".join(p for p in (identity.get("family_name", ""), identity.get("given_name", "")) if p)
    kana = identity.get("full_name_kana") or "　".join(
        p for p in (identity.get("family_name_kana", ""), identity.get("given_name_kana", "")) if p)
    raw_birth = (identity.get("birth_date") or "").strip()
    birth, birth_western = "記録なし", ""
    if raw_birth:
        try:
            year, month, day = parse_birth_date(raw_birth)
        except FieldError:
            year = None
        if year is None:
            birth = f"{raw_birth}（読み取れない形式のため、記録のまま表示）"
        else:
            birth = to_wareki(year, month, day)
            birth_western = f"{year}年" + (f"{month}月" if month else "") + (f"{day}日" if month and day else "")
    try:
        sex = _SEX.get(normalise_sex(identity.get("sex") or "") or "", "記録なし")
    except FieldError:
        sex = f"{identity.get('sex')}（記録のまま）"
    postal = (identity.get("postal_code") or "").strip()
    address = (identity.get("address") or "").strip()
    return {"name": name or "記録なし", "kana": kana or "記録なし", "birth": birth, "birth_western": birth_western,
            "sex": sex, "postal": postal, "address": address or "（住所の記録なし）", "record_id": identity.get("record_id", "")}
