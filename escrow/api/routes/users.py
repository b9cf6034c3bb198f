"""The escrow's users (its administrators): create, list, disable, re-enable, delete, change roles, reset password, unlock."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field

from escrow import identity
from escrow.api.deps import EscrowDep, require
from escrow.identity import User
from service.api import Answer, Lockout, PasswordReset, Unlock, Unlocked, Username

router = APIRouter(prefix="/users", tags=["users"])
lockouts = APIRouter(prefix="/lockouts", tags=["users"])
Admin = Annotated[User, Depends(require("admin"))]


class NewUser(BaseModel):
    """A user to create with one or more roles; the password is hashed (Argon2id), never stored or logged."""

    username: str = Field(max_length=64)
    roles: list[str] = Field(min_length=1, max_length=5)
    password: str = Field(max_length=1024)


class RolesChange(BaseModel):
    """The roles to give."""

    roles: list[str] = Field(min_length=1, max_length=5)


class UserOut(Answer):
    """A user, the roles, and the state: disabled, on a temporary password, locked (times ISO 8601, UTC)."""

    username: str
    roles: list[str]
    disabled: bool
    must_change_password: bool
    created_at: str | None
    locked: bool
    wait_until: str | None


class UserCreated(Answer):
    """The user created, with the roles."""

    username: str
    roles: list[str]


@router.get("", name="user.list", response_model=list[UserOut])
def get_users(escrow: EscrowDep, _user: Admin) -> list[dict[str, Any]]:
    """Every user with roles and state."""
    return identity.list_users(escrow)


@router.post("", status_code=201, name="user.add", response_model=UserCreated)
def post_user(escrow: EscrowDep, user: Admin, body: NewUser) -> dict[str, Any]:
    """Create a user (the password rule applies)."""
    created = identity.add_user(escrow.engine, body.username, [r[:32] for r in body.roles], body.password, escrow=escrow,
                                actor=user.username)
    return {"username": created.username, "roles": sorted(created.roles)}


@router.post("/{username}/disable", status_code=204, name="user.disable")
def post_disable(escrow: EscrowDep, user: Admin, username: Username) -> Response:
    """Disable a user; their sessions end at once."""
    identity.set_disabled(escrow, user, username, True)
    return Response(status_code=204)


@router.post("/{username}/enable", status_code=204, name="user.enable")
def post_enable(escrow: EscrowDep, user: Admin, username: Username) -> Response:
    """Re-enable a disabled user."""
    identity.set_disabled(escrow, user, username, False)
    return Response(status_code=204)


@router.delete("/{username}", status_code=204, name="user.delete")
def delete(escrow: EscrowDep, user: Admin, username: Username) -> Response:
    """Delete a user (not oneself, not the last administrator)."""
    identity.delete_user(escrow, user, username)
    return Response(status_code=204)


@router.put("/{username}/roles", status_code=204, name="user.role")
def put_roles(escrow: EscrowDep, user: Admin, username: Username, body: RolesChange) -> Response:
    """Change a user's roles."""
    identity.set_roles(escrow, user, username, [r[:32] for r in body.roles])
    return Response(status_code=204)


@router.post("/{username}/reset-password", name="user.reset_password", response_model=PasswordReset)
def post_reset(escrow: EscrowDep, user: Admin, username: Username) -> dict[str, Any]:
    """Issue a temporary password (shown once, here); the user must change it at the next sign-in."""
    return {"username": username, "temporary_password": identity.reset_password(escrow, user, username), "must_change_password": True}


@lockouts.get("", name="auth.lockouts", response_model=list[Lockout])
def get_lockouts(escrow: EscrowDep, _user: Admin) -> list[dict[str, Any]]:
    """Accounts and client addresses that are locked or must wait after failed sign-ins."""
    return escrow.throttle.lockouts()


@lockouts.post("/unlock", name="auth.unlock", response_model=Unlocked)
def post_unlock(escrow: EscrowDep, user: Admin, body: Unlock) -> dict[str, Any]:
    """Lift a login lock (logged)."""
    return {"kind": body.kind, "key": body.key, "lifted": identity.unlock(escrow, user, body.kind, body.key)}
