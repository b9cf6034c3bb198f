"""Sessions: log in for a bearer token (throttled per account and address), log out, change one's own password."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from gateway.api.deps import CurrentUser, GatewayDep, get_token
from gateway.identity import change_password, login, logout
from service.api import LoginRequest, PasswordChange, SessionAnswer

router = APIRouter(prefix="/auth", tags=["auth"])


class LoginAnswer(SessionAnswer):
    """The session, and the signed-in user's role."""

    role: str


@router.post("/login")
def post_login(request: Request, gw: GatewayDep, body: LoginRequest) -> LoginAnswer:
    """Check the password (Argon2id) and open a session; repeated failures back off, then lock (429 / 403)."""
    token, user, expires = login(gw, body.username, body.password, address=client_address(request))
    return LoginAnswer(access_token=token, expires_at=expires, username=user.username, role=user.role,
                       must_change_password=user.must_change_password)


@router.post("/logout", status_code=204)
def post_logout(gw: GatewayDep, _user: CurrentUser, token: Annotated[str, Depends(get_token)]) -> Response:
    """End this session (any signed-in user)."""
    logout(gw, token)
    return Response(status_code=204)


@router.post("/password", status_code=204)
def post_password(gw: GatewayDep, user: CurrentUser, body: PasswordChange, token: Annotated[str, Depends(get_token)]) -> Response:
    """Change one's own password (also the way out of a temporary one); other sessions of the user end."""
    change_password(gw, user, body.current_password, body.new_password, token)
    return Response(status_code=204)


def client_address(request: Request) -> str | None:
    """The client's IP address as the server saw it (a reverse proxy's own, unless uvicorn is told to trust it)."""
    return request.client.host if request.client else None
