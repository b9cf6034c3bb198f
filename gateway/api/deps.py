"""Dependencies of every route: the opened gateway, the authenticated user, and the permission check."""

from __future__ import annotations

from typing import Annotated, Awaitable, Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.core import Gateway
from gateway.errors import NotAuthenticated
from gateway.identity import User, authorize, user_for_token

_bearer = HTTPBearer(auto_error=False, description="POST /api/v1/auth/login で得たトークン")


# Dependencies that neither block nor touch the database are coroutines: FastAPI
# runs them on the event loop instead of handing each to the thread pool.


async def get_gateway(request: Request) -> Gateway:
    """The gateway this app serves."""
    return request.app.state.gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


async def get_token(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    """The bearer token of the request; 401 if there is none."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise NotAuthenticated("認証が必要です。ログインしてトークンを Authorization: Bearer で送ってください。")
    return credentials.credentials


async def get_current_user(gw: GatewayDep, token: Annotated[str, Depends(get_token)]) -> User:
    """The user of a live session; 401 otherwise (one indexed read, run on the event loop)."""
    return user_for_token(gw, token)


CurrentUser = Annotated[User, Depends(get_current_user)]


def require(permission: str) -> Callable[..., Awaitable[User]]:
    """A dependency that lets the request through only if the policy gives the user's role ``permission``."""

    async def _check(gw: GatewayDep, user: CurrentUser) -> User:
        authorize(gw, user, permission)
        return user

    _check.__name__ = f"require_{permission.replace('.', '_')}"
    return _check
