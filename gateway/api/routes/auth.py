"""Sessions: log in for a bearer token, log out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field

from gateway.api.deps import CurrentUser, GatewayDep, get_token
from gateway.identity import login, logout

router = APIRouter(prefix="/auth", tags=["auth"])


class LoginRequest(BaseModel):
    """Credentials."""

    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class LoginAnswer(BaseModel):
    """A session token, shown once."""

    access_token: str
    token_type: str = "bearer"
    expires_at: datetime
    username: str
    role: str


@router.post("/login")
def post_login(gw: GatewayDep, body: LoginRequest) -> LoginAnswer:
    """Check the password (Argon2id) and open a session."""
    token, user, expires = login(gw, body.username, body.password)
    return LoginAnswer(access_token=token, expires_at=expires, username=user.username, role=user.role)


@router.post("/logout", status_code=204)
def post_logout(gw: GatewayDep, _user: CurrentUser, token: Annotated[str, Depends(get_token)]) -> Response:
    """End this session (any signed-in user)."""
    logout(gw, token)
    return Response(status_code=204)
