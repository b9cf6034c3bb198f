"""Rendering the gateway's pages: its templates over the shared skeleton (:mod:`service.web.render`), and the navigation each role sees."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from gateway.core import Gateway
from gateway.screening import attribute_catalog
from service.web.render import JST, make_templates, page
from service.web.session import WebSession

__all__ = ["JST", "CHANNELS", "NAVIGATION", "NavItem", "landing", "navigation", "network_labels", "render", "templates"]

templates = make_templates(Path(__file__).with_name("templates"))


@dataclass(frozen=True, slots=True)
class NavItem:
    """A link of the navigation, shown to roles that hold ``permission``."""

    label: str
    path: str
    permission: str


#: Every screen, in the order the navigation lists them.
NAVIGATION: tuple[NavItem, ...] = (
    NavItem("管理者ダッシュボード", "/ui/admin", "submissions.read"),
    NavItem("スクリーニング", "/ui/screening", "persons.read"),
    NavItem("人物", "/ui/persons", "persons.read"),
    NavItem("支援記録", "/ui/support", "support.read"),
    NavItem("評価", "/ui/evaluation", "evaluation.read"),
    NavItem("部署への依頼", "/ui/returns", "returns.send"),
    NavItem("要確認ペア", "/ui/review", "review.read"),
    NavItem("再識別の申請", "/ui/reidentify", "reidentify.request"),
    NavItem("自治体間連携", "/ui/federation", "persons.read"),
    NavItem("承認待ち", "/ui/approvals", "reidentify.approve"),
    NavItem("エスクローの開封", "/ui/custodian", "escrow.unseal"),
    NavItem("監査", "/ui/audit", "audit.read"),
    NavItem("利用者の管理", "/ui/users", "users.manage"),
)


#: Where each role starts: the first screen whose permission it holds (an approver starts at the queue, not the
#: screening; an administrator, who may start runs, at the dashboard; an auditor at the audit screen).
LANDING: tuple[tuple[str, str], ...] = (
    ("/ui/approvals", "reidentify.approve"),
    ("/ui/custodian", "escrow.unseal"),
    ("/ui/screening", "persons.read"),
    ("/ui/admin", "runs.start"),
    ("/ui/audit", "audit.read"),
    ("/ui/admin", "submissions.read"),
    ("/ui/evaluation", "evaluation.read"),
)


def landing(gw: Gateway, role: str) -> str | None:
    """The start screen of ``role``, or None if it may open none."""
    return next((path for path, permission in LANDING if gw.policy.may(role, permission).allowed), None)


def navigation(gw: Gateway, role: str) -> list[NavItem]:
    """The screens ``role`` may open."""
    return [n for n in NAVIGATION if gw.policy.may(role, n.permission).allowed]


#: How submissions and refusals came in, as staff read it (never the internal channel name).
CHANNELS = {"http": "HTTPS", "import": "ファイル", "drop": "受け取りフォルダ", "cli": "コマンド", "web": "画面", "api": "API",
            "federation": "他自治体"}


def network_labels(gw: Gateway) -> dict[str, str]:
    """Each network of the policy with its label (校務系, マイナンバー利用事務系 …)."""
    return {name: spec.label for name, spec in gw.policy.document.networks.items()}


def render(request: Request, name: str, session: WebSession | None, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render template ``name`` for ``session``'s user (navigation, CSRF token) with ``context``."""
    gw: Gateway = request.app.state.gateway
    base: dict[str, Any] = {"municipality": gw.policy.document.municipality.name,
                            "catalog": attribute_catalog(gw), "networks": network_labels(gw), "channels": CHANNELS}
    if session is not None:
        role = gw.policy.document.roles.get(session.user.role)
        base.update(role_label=role.label if role else session.user.role, navigation=navigation(gw, session.user.role))
    return page(templates, request, name, session, status_code, {**base, **context})
