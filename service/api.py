"""The request and answer models both services' APIs share: sign-in, one's own password, the lock to lift."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import Path
from pydantic import BaseModel, Field

#: A user name in a URL path.
Username = Annotated[str, Path(min_length=1, max_length=64)]


class LoginRequest(BaseModel):
    """Credentials of a user of this service (the escrow's users are not the gateway's)."""

    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class SessionAnswer(BaseModel):
    """A session token, shown once; ``must_change_password``: only ``POST /auth/password`` works until it is done."""

    access_token: str
    token_type: str = "bearer"
    expires_at: datetime
    username: str
    must_change_password: bool = False


class PasswordChange(BaseModel):
    """One's own password: the current one, and the new one (checked against the password rule)."""

    current_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


class Unlock(BaseModel):
    """The lock to lift: an account (user name) or a client address."""

    kind: Literal["account", "address"]
    key: str = Field(min_length=1, max_length=64)
