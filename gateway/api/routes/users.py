"""Users and their roles (administrators): create, list, disable, re-enable, delete, change role, reset password, unlock."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field

from gateway.api.deps import GatewayDep, require
from gateway.identity import User, add_user, delete_user, list_users, reset_password, set_disabled, set_role, unlock
from service.api import Answer, Lockout, PasswordReset, Unlock, Unlocked, Username

router = APIRouter(prefix="/users", tags=["users"])
lockouts = APIRouter(prefix="/lockouts", tags=["users"])
Admin = Annotated[User, Depends(require("users.manage"))]


class NewUser(BaseModel):
    """A user to create; the password is hashed (Argon2id) and never stored or logged."""

    username: str = Field(max_length=64)
    role: str = Field(max_length=32)
    password: str = Field(max_length=1024)


class RoleChange(BaseModel):
    """The role to give (a role of the policy)."""

    role: str = Field(max_length=32)


class UserOut(Answer):
    """A user, the role, and the state: disabled, on a temporary password, locked (``wait_until``: ISO 8601, UTC)."""

    username: str
    role: str
    disabled: bool
    must_change_password: bool
    created_at: datetime
    locked: bool
    wait_until: str | None


class UserCreated(Answer):
    """The user created, with the role."""

    username: str
    role: str


@router.get("", response_model=list[UserOut])
def get_users(gw: GatewayDep, _user: Admin) -> list[dict[str, Any]]:
    """Every user with role and state (disabled, temporary password, locked)."""
    return list_users(gw)


@router.post("", status_code=201, response_model=UserCreated)
def post_user(gw: GatewayDep, user: Admin, body: NewUser) -> dict[str, Any]:
    """Create a user with a role of the policy (the password rule applies)."""
    created = add_user(gw, body.username, body.role, body.password, actor=user.username)
    return {"username": created.username, "role": created.role}


@router.post("/{username}/disable", status_code=204)
def post_disable(gw: GatewayDep, user: Admin, username: Username) -> Response:
    """Disable a user; their sessions end at once."""
    set_disabled(gw, user, username, True)
    return Response(status_code=204)


@router.post("/{username}/enable", status_code=204)
def post_enable(gw: GatewayDep, user: Admin, username: Username) -> Response:
    """Re-enable a disabled user."""
    set_disabled(gw, user, username, False)
    return Response(status_code=204)


@router.delete("/{username}", status_code=204)
def delete(gw: GatewayDep, user: Admin, username: Username) -> Response:
    """Delete a user (not oneself, not the last administrator)."""
    delete_user(gw, user, username)
    return Response(status_code=204)


@router.put("/{username}/role", status_code=204)
def put_role(gw: GatewayDep, user: Admin, username: Username, body: RoleChange) -> Response:
    """Change a user's role."""
    set_role(gw, user, username, body.role)
    return Response(status_code=204)


@router.post("/{username}/reset-password", response_model=PasswordReset)
def post_reset(gw: GatewayDep, user: Admin, username: Username) -> dict[str, Any]:
    """Issue a temporary password (shown once, here); the user must change it at the next sign-in."""
    return {"username": username, "temporary_password": reset_password(gw, user, username), "must_change_password": True}


@lockouts.get("", response_model=list[Lockout])
def get_lockouts(gw: GatewayDep, _user: Admin) -> list[dict[str, Any]]:
    """Accounts and client addresses that are locked or must wait after failed sign-ins."""
    return gw.throttle.lockouts()


@lockouts.post("/unlock", response_model=Unlocked)
def post_unlock(gw: GatewayDep, user: Admin, body: Unlock) -> dict[str, Any]:
    """Lift a login lock (logged in the audit log)."""
    return {"kind": body.kind, "key": body.key, "lifted": unlock(gw, user, body.kind, body.key)}
