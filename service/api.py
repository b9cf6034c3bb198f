"""The request and answer models both services' APIs share: sign-in, one's own password, locks, the answer base.

Every JSON operation of both APIs declares its answer with a model, so the
OpenAPI document says what each one returns (tests/integration/gateway/test_gateway_openapi.py,
tests/unit/escrow/test_escrow_openapi.py). An answer model names the fields that
are always there; an answer may carry more (``extra="allow"``), which are
passed through, so a model documents a route without changing what it returns.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

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


class Answer(BaseModel):
    """The base of every JSON answer: the named fields are always there; any further field is passed through unchanged."""

    model_config = ConfigDict(extra="allow")


class Lockout(Answer):
    """An account or client address that is locked or must wait after failed sign-ins (times in ISO 8601, UTC)."""

    kind: Literal["account", "address"]
    key: str
    failures: int
    locked: bool
    wait_until: str | None
    last_failure_at: str


class Unlocked(Answer):
    """The lock asked to lift, and whether there was one."""

    kind: Literal["account", "address"]
    key: str
    lifted: bool


class PasswordReset(Answer):
    """A temporary password, shown once; the user must change it at the next sign-in."""

    username: str
    temporary_password: str
    must_change_password: bool


#: The body of a download that is a file, for ``responses=``: a media type's schema in the OpenAPI document.
FILE_SCHEMA: dict[str, str] = {"type": "string", "format": "binary"}


def file_answer(*media_types: str) -> dict[int | str, dict]:
    """``responses=`` of a route that answers with a file of one of ``media_types``."""
    return {200: {"content": {media: {"schema": FILE_SCHEMA} for media in media_types}}}
