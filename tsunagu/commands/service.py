"""The commands `tsunagu gateway …` and `tsunagu escrow …` share: serve, and the user accounts (list, disable, enable, delete, role, reset a password, unlock, locks).

Both services keep their users behind an ``identity`` module with the same
functions (``list_users``, ``set_disabled``, ``delete_user``, ``reset_password``,
``unlock``; the role setter is each service's own), so one set of commands
serves both; each group passes its ``--home`` and ``--username`` options, how
to open its service, and the few words that differ.
"""

# No ``from __future__ import annotations``: typer reads these commands' annotations,
# which name the options each group passes in.

import importlib
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Annotated, Any, Callable

import typer

from tsunagu.commands.common import (HostOption, PortOption, TlsCertOption, TlsKeyOption, UnlockAddressOption, UnlockUsernameOption, check_listen, run, serve, show_lockouts, show_unlock, unlock_target)
from tsunagu.errors import CommandError

ActorOption = Annotated[str, typer.Option("--actor", help="監査ログに記録する操作者の名前（既定: cli）")]


def add_serve_command(group: typer.Typer, home_option: Any, default_port: int, help_text: str,
                      start: Callable[[Path], tuple[Any, str]]) -> None:
    """Add ``serve`` to ``group``: ``start(home)`` opens the service and gives its ASGI app and the banner (with ``{url}``)."""

    @group.command("serve", help=help_text)
    def serve_command(
        home: home_option,
        host: HostOption = "127.0.0.1",
        port: PortOption = default_port,
        tls_cert: TlsCertOption = None,
        tls_key: TlsKeyOption = None,
    ) -> None:
        check_listen(host, tls_cert, tls_key)
        app, banner = start(home)
        serve(app, host, port, tls_cert, tls_key, banner)


class Accounts:
    """How one service's account commands reach its users: its ``identity`` module, opened on ``--home``."""

    def __init__(self, identity: str, open_service: Callable[[Path], AbstractContextManager[Any]]) -> None:
        self.identity = identity
        self.open_service = open_service

    def call(self, home: Path, fn_name: str, *args: Any) -> Any:
        """Open the service at ``home``, run ``<identity>.<fn_name>(service, *args)`` (refusals as the command's error), close it."""
        fn = getattr(importlib.import_module(self.identity), fn_name)
        with self.open_service(home) as service:
            return run(fn, service, *args)

    def lockouts(self, home: Path) -> list[dict[str, Any]]:
        """The locked and waiting accounts and addresses of the service's login throttle."""
        with self.open_service(home) as service:
            return service.throttle.lockouts()


def add_account_commands(users: typer.Typer, accounts: Accounts, home_option: Any, username_option: Any, *,
                         roles_of: Callable[[dict[str, Any]], str], role_option: Any, set_role: str,
                         role_text: Callable[[Any], str], delete_keeps: str, whose: str = "") -> None:
    """Add ``list``, ``disable``, ``enable``, ``delete``, ``role``, ``reset-password``, ``unlock`` and ``lockouts`` to ``users``.

    ``roles_of`` shows a user's roles in ``list``; ``role_option``, ``set_role``
    (the identity function) and ``role_text`` are the ``role`` command's;
    ``delete_keeps`` says what deleting a user keeps; ``whose`` names the service in ``list``'s help.
    """

    @users.command("list", help=f"{whose}利用者の一覧（ロール・状態・ロック）を表示します。")
    def user_list(home: home_option) -> None:
        for u in accounts.call(home, "list_users"):
            state = [s for s, on in (("無効", u["disabled"]), ("ロック中", u["locked"]), ("待機中", bool(u["wait_until"]) and not u["locked"]),
                                     ("仮パスワード", u["must_change_password"])) if on]
            typer.echo(f"{u['username']}\t{roles_of(u)}\t{'、'.join(state) or '有効'}")

    @users.command("disable")
    def user_disable(home: home_option, username: username_option, actor: ActorOption = "cli") -> None:
        """利用者を無効にします（ログイン中のセッションも終わります）。"""
        accounts.call(home, "set_disabled", actor, username, True)
        typer.echo(f"利用者「{username}」を無効にしました。")

    @users.command("enable")
    def user_enable(home: home_option, username: username_option, actor: ActorOption = "cli") -> None:
        """無効にした利用者を有効に戻します。"""
        accounts.call(home, "set_disabled", actor, username, False)
        typer.echo(f"利用者「{username}」を有効に戻しました。")

    @users.command("delete", help=f"利用者を削除します（{delete_keeps}の記録は残ります）。")
    def user_delete(home: home_option, username: username_option, actor: ActorOption = "cli",
                    yes: Annotated[bool, typer.Option("--yes", help="確認せずに削除します")] = False) -> None:
        if not yes and not typer.confirm(f"利用者「{username}」を削除しますか？"):
            raise CommandError("削除を取りやめました。")
        accounts.call(home, "delete_user", actor, username)
        typer.echo(f"利用者「{username}」を削除しました。")

    @users.command("role")
    def user_role(home: home_option, username: username_option, role: role_option, actor: ActorOption = "cli") -> None:
        """利用者のロールを変えます。"""
        accounts.call(home, set_role, actor, username, role)
        typer.echo(f"利用者「{username}」のロールを {role_text(role)} にしました。")

    @users.command("reset-password")
    def user_reset_password(home: home_option, username: username_option, actor: ActorOption = "cli") -> None:
        """仮パスワードを発行します（1 回だけ表示。本人は次のログインで自分のパスワードに変えます）。"""
        temporary = accounts.call(home, "reset_password", actor, username)
        typer.echo(f"利用者「{username}」の仮パスワード（この表示限り。本人に直接伝えてください）:", err=True)
        typer.echo(temporary)

    @users.command("unlock")
    def user_unlock(home: home_option, username: UnlockUsernameOption = None, address: UnlockAddressOption = None,
                    actor: ActorOption = "cli") -> None:
        """ログインのロック（パスワードの誤りが続いたもの）を解除します。"""
        kind, key = unlock_target(username, address)
        show_unlock(accounts.call(home, "unlock", actor, kind, key))

    @users.command("lockouts")
    def user_lockouts(home: home_option) -> None:
        """ロック中・待機中の利用者と接続元アドレスを表示します。"""
        show_lockouts(accounts.lockouts(home))
