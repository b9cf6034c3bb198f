"""利用者の管理 and パスワードの変更: the account lifecycle in the browser (the same functions as the API and the CLI)."""

from __future__ import annotations

from typing import Annotated, Callable

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from gateway import identity
from gateway.errors import DeleteNotConfirmed, GatewayError, PasswordsDiffer
from gateway.web.render import landing, render
from gateway.web.session import GatewayDep, SessionDep, WebSession, form_action, page
from service.errors import WrongPassword

router = APIRouter()

Manager = Annotated[WebSession, Depends(page(identity.MANAGE))]
ManagerForm = Annotated[WebSession, Depends(form_action(identity.MANAGE))]

#: What the list page says after an action (keyed by the ``done`` query parameter).
DONE = {
    "created": "利用者を作りました。",
    "disabled": "利用者を無効にしました（ログイン中のセッションも終了しました）。",
    "enabled": "利用者を有効に戻しました。",
    "deleted": "利用者を削除しました。",
    "role": "ロールを変更しました。",
    "unlocked": "ロックを解除しました。",
}
_PASSWORD_REASONS = {"temporary": "仮パスワードでログインしました。続けるには、自分のパスワードを設定してください。"}


def _users_page(request: Request, gw: GatewayDep, session: WebSession, status: int = 200, **context: object) -> Response:
    roles = {name: role.label for name, role in gw.policy.document.roles.items()}
    return render(request, "users.html", session, status, users=identity.list_users(gw), lockouts=gw.throttle.lockouts(),
                  roles=roles, **{"errors": {}, "form": {}, "done": "", **context})


@router.get("/users")
def get_users(request: Request, gw: GatewayDep, session: Manager, done: str = "") -> Response:
    """Every user with their state, and the forms for each action."""
    return _users_page(request, gw, session, done=DONE.get(done, ""))


@router.post("/users")
def post_user(request: Request, gw: GatewayDep, session: ManagerForm, username: Annotated[str, Form(max_length=64)] = "",
              role: Annotated[str, Form(max_length=32)] = "", password: Annotated[str, Form(max_length=1024)] = "") -> Response:
    """Create a user (the password rule applies)."""
    try:
        identity.add_user(gw, username.strip(), role, password, actor=session.user.username)
    except GatewayError as exc:
        return _users_page(request, gw, session, exc.status, errors={"create": exc.detail}, form={"username": username, "role": role})
    return RedirectResponse("/ui/users?done=created", status_code=303)


def _act(request: Request, gw: GatewayDep, session: WebSession, done: str, action: Callable[..., object], *args: object) -> Response:
    try:
        action(gw, session.user, *args)
    except GatewayError as exc:
        return _users_page(request, gw, session, exc.status, errors={"action": exc.detail})
    return RedirectResponse(f"/ui/users?done={done}", status_code=303)


@router.post("/users/{username}/disable")
def post_disable(request: Request, gw: GatewayDep, session: ManagerForm, username: str) -> Response:
    """Disable a user (their sessions end at once)."""
    return _act(request, gw, session, "disabled", identity.set_disabled, username, True)


@router.post("/users/{username}/enable")
def post_enable(request: Request, gw: GatewayDep, session: ManagerForm, username: str) -> Response:
    """Re-enable a user."""
    return _act(request, gw, session, "enabled", identity.set_disabled, username, False)


@router.post("/users/{username}/delete")
def post_delete(request: Request, gw: GatewayDep, session: ManagerForm, username: str,
                confirm: Annotated[str, Form(max_length=64)] = "") -> Response:
    """Delete a user, once the administrator typed the user name to confirm."""
    if confirm != username:
        refused = DeleteNotConfirmed(f"削除するには、確認欄に利用者名「{username}」を入力してください。")
        return _users_page(request, gw, session, refused.status, errors={"action": refused.detail})
    return _act(request, gw, session, "deleted", identity.delete_user, username)


@router.post("/users/{username}/role")
def post_role(request: Request, gw: GatewayDep, session: ManagerForm, username: str,
              role: Annotated[str, Form(max_length=32)] = "") -> Response:
    """Change a user's role."""
    return _act(request, gw, session, "role", identity.set_role, username, role)


@router.post("/users/{username}/unlock")
def post_unlock(request: Request, gw: GatewayDep, session: ManagerForm, username: str) -> Response:
    """Lift the login lock of a user."""
    return _act(request, gw, session, "unlocked", identity.unlock, "account", username)


@router.post("/lockouts/unlock")
def post_unlock_address(request: Request, gw: GatewayDep, session: ManagerForm,
                        address: Annotated[str, Form(max_length=64)] = "") -> Response:
    """Lift the lock of a client address."""
    return _act(request, gw, session, "unlocked", identity.unlock, "address", address)


@router.post("/users/{username}/reset-password")
def post_reset(request: Request, gw: GatewayDep, session: ManagerForm, username: str) -> Response:
    """Issue a temporary password and show it once; the user must change it at the next sign-in."""
    try:
        temporary = identity.reset_password(gw, session.user, username)
    except GatewayError as exc:
        return _users_page(request, gw, session, exc.status, errors={"action": exc.detail})
    return render(request, "user_reset.html", session, target=username, temporary=temporary)


@router.get("/password")
def get_password(request: Request, session: SessionDep, reason: str = "") -> Response:
    """The form to change one's own password (the only page open with a temporary password)."""
    return render(request, "password.html", session, notice=_PASSWORD_REASONS.get(reason, ""), errors={})


@router.post("/password")
def post_password(request: Request, gw: GatewayDep, session: Annotated[WebSession, Depends(form_action(None))],
                  current_password: Annotated[str, Form(max_length=1024)] = "",
                  new_password: Annotated[str, Form(max_length=1024)] = "",
                  confirm_password: Annotated[str, Form(max_length=1024)] = "") -> Response:
    """Change one's own password; other sessions of the user end, this one goes on."""
    try:
        if new_password != confirm_password:
            raise PasswordsDiffer("確認のパスワードが一致しません。")
        identity.change_password(gw, session.user, current_password, new_password, session.token)
    except GatewayError as exc:
        field = {PasswordsDiffer: "confirm_password", WrongPassword: "current_password"}
        errors = {next((f for c, f in field.items() if isinstance(exc, c)), "new_password"): exc.detail}
        return render(request, "password.html", session, exc.status, notice="", errors=errors)
    start = landing(gw, session.user.role) or "/ui/"
    return render(request, "password.html", session, notice="パスワードを変更しました。", errors={}, done=True, start=start)
