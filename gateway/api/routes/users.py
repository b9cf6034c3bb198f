"""Users and their roles (administrators)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from gateway.api.deps import GatewayDep, require
from gateway.identity import User, add_user, list_users

router = APIRouter(prefix="/users", tags=["users"])
Admin = Annotated[User, Depends(require("users.manage"))]


class NewUser(BaseModel):
    """A user to create; the password is hashed (Argon2id) and never stored or logged."""

    username: str = Field(max_length=64)
    role: str = Field(max_length=32)
    password: str = Field(max_length=1024)


@router.get("")
def get_users(gw: GatewayDep, _user: Admin) -> list[dict[str, Any]]:
    """Every user with role and state."""
    return list_users(gw)


@router.post("", status_code=201)
def post_user(gw: GatewayDep, user: Admin, body: NewUser) -> dict[str, Any]:
    """Create a user with a role of the policy."""
    created = add_user(gw, body.username, body.role, body.password, actor=user.username)
    return {"username": created.username, "role": created.role}
