"""Dependencies of every route: the opened escrow, the authenticated user, and the role check."""

from __future__ import annotations

from typing import Annotated, Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from escrow.errors import ForbiddenRole, NotAuthenticated, PasswordChangeRequired
from escrow.identity import ROLES, User, user_for_token
from escrow.service import Escrow

_bearer = HTTPBearer(auto_error=False, description="POST /api/v1/auth/login で得たトークン")


def get_escrow(request: Request) -> Escrow:
    """The escrow this app serves."""
    return request.app.state.escrow


EscrowDep = Annotated[Escrow, Depends(get_escrow)]


def get_token(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    """The bearer token of the request; 401 if there is none."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise NotAuthenticated("認証が必要です。ログインしてトークンを Authorization: Bearer で送ってください。")
    return credentials.credentials


def get_current_user(request: Request, escrow: EscrowDep, token: Annotated[str, Depends(get_token)]) -> User:
    """The user of a live session (remembered on the request, so a refusal is logged under their name); 401 otherwise."""
    user = user_for_token(escrow.engine, token)
    request.state.user = user
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def require(*roles: str) -> Callable[..., User]:
    """A dependency that lets the request through only for a user holding one of ``roles``."""

    def _check(user: CurrentUser) -> User:
        if user.must_change_password:
            raise PasswordChangeRequired("仮パスワードでログインしています。先に自分のパスワードを設定してください（POST /api/v1/auth/password）。")
        if not user.roles & set(roles):
            allowed = "、".join(ROLES[r] for r in roles)
            raise ForbiddenRole(f"この操作はロール「{user.label}」ではできません（できるのは: {allowed}）。")
        return user

    _check.__name__ = f"require_{'_or_'.join(roles)}"
    return _check
