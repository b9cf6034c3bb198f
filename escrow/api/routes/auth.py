"""Sessions: sign in for a bearer token that expires, sign out."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field

from escrow.api.deps import CurrentUser, EscrowDep, get_token
from escrow.errors import EscrowError
from escrow.identity import login, logout

router = APIRouter(prefix="/auth", tags=["auth"])


class LoginRequest(BaseModel):
    """Credentials of an escrow user (not a gateway user: the escrow keeps its own)."""

    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class LoginAnswer(BaseModel):
    """A session token, shown once."""

    access_token: str
    token_type: str = "bearer"
    expires_at: datetime
    username: str
    roles: list[str]


@router.post("/login", name="auth.login")
def post_login(escrow: EscrowDep, body: LoginRequest) -> LoginAnswer:
    """Check the password (Argon2id) and open a session of ``session_minutes``."""
    try:
        token, user, expires = login(escrow.engine, body.username, body.password, escrow.settings.session_minutes)
    except EscrowError as exc:
        # The name typed is not logged: it may be a mistyped password.
        raise escrow.refuse("(未認証)", "-", "auth.login", exc) from None
    escrow.record(user.username, user.label, "auth.login", "signed in")
    return LoginAnswer(access_token=token, expires_at=expires.replace(tzinfo=timezone.utc), username=user.username,
                       roles=sorted(user.roles))


@router.post("/logout", status_code=204, name="auth.logout")
def post_logout(escrow: EscrowDep, _user: CurrentUser, token: Annotated[str, Depends(get_token)]) -> Response:
    """End this session."""
    logout(escrow.engine, token)
    return Response(status_code=204)
