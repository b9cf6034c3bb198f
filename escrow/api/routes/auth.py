"""Sessions: sign in for a bearer token that expires (throttled per account and address), sign out, change one's own password."""

from __future__ import annotations

from datetime import timezone
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool

from escrow.api.deps import CurrentUser, EscrowDep, get_token
from escrow.identity import change_password, logout, sign_in
from service.api import LoginRequest, PasswordChange, SessionAnswer

router = APIRouter(prefix="/auth", tags=["auth"])


class LoginAnswer(SessionAnswer):
    """The session, and the signed-in user's roles."""

    roles: list[str]


@router.post("/login", name="auth.login")
def post_login(request: Request, escrow: EscrowDep, body: LoginRequest) -> LoginAnswer:
    """Check the password (Argon2id) and open a session of ``session_minutes``; failures back off, then lock."""
    address = request.client.host if request.client else None
    token, user, expires = sign_in(escrow, body.username, body.password, address)
    return LoginAnswer(access_token=token, expires_at=expires.replace(tzinfo=timezone.utc), username=user.username,
                       roles=sorted(user.roles), must_change_password=user.must_change_password)


@router.post("/logout", status_code=204, name="auth.logout")
def post_logout(escrow: EscrowDep, _user: CurrentUser, token: Annotated[str, Depends(get_token)]) -> Response:
    """End this session."""
    logout(escrow.engine, token)
    return Response(status_code=204)


@router.post("/password", status_code=204, name="user.change_password")
async def post_password(escrow: EscrowDep, user: CurrentUser, body: PasswordChange, token: Annotated[str, Depends(get_token)]) -> Response:
    """Change one's own password (also the way out of a temporary one); the user's other sessions end."""
    await run_in_threadpool(change_password, escrow, user, body.current_password, body.new_password, token)
    return Response(status_code=204)
