"""Rendering pages in both UIs: one Jinja environment over the service's templates and the shared ones, times in JST.

A service's ``templates/`` folder is searched first, then this package's
(``_layout.html``, the page skeleton; ``_login.html``, the sign-in form), so
each service's ``base.html`` only fills the skeleton's blocks.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, FileSystemLoader

from service.web.session import CSRF_FIELD, WebSession

JST = timezone(timedelta(hours=9), "JST")
_SHARED = Path(__file__).with_name("templates")


def jst(value: datetime | str | None) -> str:
    """A database time (naive UTC) or ISO string as ``YYYY-MM-DD HH:MM`` in Japan time."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(JST).strftime("%Y-%m-%d %H:%M")


def make_templates(directory: Path) -> Jinja2Templates:
    """The templates of a service's UI: ``directory`` first, then the shared skeleton; with the ``jst`` filter."""
    templates = Jinja2Templates(directory=str(directory))
    templates.env.loader = ChoiceLoader([FileSystemLoader(str(directory)), FileSystemLoader(str(_SHARED))])
    templates.env.filters["jst"] = jst
    return templates


def page(templates: Jinja2Templates, request: Request, name: str, session: WebSession | None, status_code: int,
         context: dict[str, Any]) -> HTMLResponse:
    """Render ``name`` with ``context`` and what every page has (the session, its CSRF token); never cached."""
    base: dict[str, Any] = {"session": session, "csrf_field": CSRF_FIELD, "current_path": request.url.path}
    if session is not None:
        base.update(user=session.user, csrf=session.csrf)
    response = templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response
