"""`tsunagu escrow …`: set up and serve the escrow, manage its users, and unseal it after a restart.

Passwords and passphrases come from a hidden prompt or from standard input
(``--password-stdin``, ``--passphrase-stdin``), never from the command line.
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Annotated, Any, Optional

import httpx
import typer

from tsunagu.commands.common import PasswordChangeStdinOption, PasswordLineOption, call, read_password_change, read_secret, read_text_file, run, signed_in
from tsunagu.commands.service import Accounts, add_account_commands, add_serve_command
from tsunagu.errors import CommandError

escrow_app = typer.Typer(help="エスクロー（封緘された本人情報の開封）の設定・起動・開封（鍵管理者・情報政策課向け）", no_args_is_help=True)
user_app = typer.Typer(help="エスクローの利用者の管理", no_args_is_help=True)
escrow_app.add_typer(user_app, name="user")

HomeOption = Annotated[Path, typer.Option("--home", envvar="TSUNAGU_HOME", help="エスクローのデータフォルダ（既定: 環境変数 TSUNAGU_HOME）")]
UrlOption = Annotated[str, typer.Option("--url", help="エスクローの URL（例: http://127.0.0.1:8600）")]
UsernameOption = Annotated[str, typer.Option("--username", help="エスクローの利用者名")]
_ESCROW = "エスクロー"


def register(app: typer.Typer) -> None:
    """Add the `escrow` command group to the root app."""
    app.add_typer(escrow_app, name="escrow")


@escrow_app.command("init")
def init(
    home: HomeOption,
    from_keys: Annotated[Path, typer.Option("--from-keys", help="鍵の生成式を行った管理者のデータフォルダ（封緘されたエスクロー鍵だけを写します）")],
    gateway_verifier: Annotated[Path, typer.Option("--gateway-verifier", help="ゲートウェイの監査ログの検証鍵を書いたファイル")],
    policy_file: Annotated[Optional[Path], typer.Option(
        "--policy", help="自治体のポリシー（ゲートウェイと同じもの）。指定すると、利用目的ごとの承認数と記録数の上限をエスクロー自身が確かめます")] = None,
) -> None:
    """エスクローのデータフォルダを作ります（封緘されたエスクロー鍵と持分の照合値を写します。持分やパスフレーズは写しません）。"""
    from escrow.service import AUDIT_VERIFIER, POLICY, init_home
    from policy import PolicyError, load_policy

    vkey = read_text_file(gateway_verifier).strip()
    policy_text = None
    if policy_file is not None:
        try:
            load_policy(policy_file)
            policy_text = policy_file.read_text(encoding="utf-8")
        except (PolicyError, FileNotFoundError) as exc:
            raise CommandError(f"ポリシー {policy_file} を使えません: {exc}") from None
    escrow = run(init_home, home, from_keys, vkey)
    if policy_text is not None:
        (escrow.settings.home / POLICY).write_text(policy_text, encoding="utf-8")
        typer.echo(f"ポリシーを {escrow.settings.home / POLICY} に置きました（利用目的ごとの承認数と上限はエスクローが確かめます）。")
    status = escrow.vault.status()
    escrow.record("cli", "admin", "escrow.init", "initialised", target=status.escrow_key_id)
    escrow.close()
    typer.echo(f"エスクローを {escrow.settings.home} に用意しました（エスクロー鍵 {status.escrow_key_id}、"
               f"開封に {status.threshold}/{status.custodians} 人の鍵管理者が必要）。")
    typer.echo(f"エスクローの監査ログの検証鍵: {escrow.audit_vkey}（{escrow.settings.home / AUDIT_VERIFIER}）")
    typer.echo("次に利用者を作ってください: tsunagu escrow user add --home … --username … --role custodian|approver|caseworker|auditor|admin")


def _start(home: Path) -> tuple[Any, str]:
    from escrow.api.app import create_app
    from escrow.service import Escrow

    escrow = run(Escrow.open, home)
    status = escrow.vault.status()
    return create_app(escrow), f"エスクローを {{url}} で起動します。封印されています（開封には {status.threshold} 人の鍵管理者が必要）。"


add_serve_command(escrow_app, HomeOption, 8600, "エスクローを起動します。起動直後は封印されていて、k 人の鍵管理者が開封するまで開示できません。", _start)


@user_app.command("add")
def user_add(
    home: HomeOption,
    username: UsernameOption,
    role: Annotated[list[str], typer.Option("--role", help="caseworker, approver, custodian, auditor, admin のどれか（兼務なら繰り返し指定）")],
    password_stdin: PasswordLineOption = False,
) -> None:
    """エスクローの利用者を作ります（ゲートウェイの利用者とは別です）。パスワードは引数には書けません。"""
    from escrow.identity import add_user
    from escrow.service import Escrow

    escrow = run(Escrow.open, home)
    user = run(add_user, escrow.engine, username, role, read_secret("パスワード", password_stdin, confirm=True), escrow)
    escrow.close()
    typer.echo(f"利用者「{user.username}」（{user.label}）を作りました。")


def _open(home: Path) -> "closing[Any]":
    from escrow.service import Escrow

    return closing(run(Escrow.open, home))


add_account_commands(
    user_app, Accounts("escrow.identity", _open), HomeOption, UsernameOption,
    roles_of=lambda u: ",".join(u["roles"]),
    role_option=Annotated[list[str], typer.Option("--role", help="新しいロール（兼務なら繰り返し指定）")], set_role="set_roles",
    role_text=lambda role: ",".join(sorted(set(role))), delete_keeps="申請・判断・監査ログ", whose="エスクローの")


@escrow_app.command("passwd")
def passwd(url: UrlOption, username: UsernameOption,
           password_stdin: PasswordChangeStdinOption = False) -> None:
    """自分のパスワードを変えます（エスクローにログインして変更します。仮パスワードからの変更にも使います）。"""
    current, new = read_password_change(password_stdin)
    with signed_in(url, _ESCROW, username, current, timeout=60) as client:
        call(client, _ESCROW, "POST", "/api/v1/auth/password", {"current_password": current, "new_password": new})
    typer.echo("パスワードを変更しました。")


@escrow_app.command("status")
def status(url: UrlOption) -> None:
    """封印されているか、開封が何人分進んだかを表示します。"""
    with httpx.Client(base_url=url, timeout=30) as client:
        typer.echo(_progress(call(client, _ESCROW, "GET", "/api/v1/status")))


@escrow_app.command("unseal")
def unseal(
    url: UrlOption,
    share: Annotated[Path, typer.Option("--share", help="自分の持分ファイル（custodian-<番号>.json）")],
    username: UsernameOption,
    passphrase_stdin: Annotated[bool, typer.Option("--passphrase-stdin", help="パスワードと持分のパスフレーズを標準入力から 1 行ずつ読みます（自動化用）")] = False,
) -> None:
    """再起動後のエスクローを開封します。鍵管理者が 1 人ずつ自分の持分とパスフレーズで実行します。"""
    content = read_text_file(share, "持分ファイル")
    password = _password(username, passphrase_stdin)
    passphrase = read_secret(f"持分 {share.name} のパスフレーズ", passphrase_stdin)
    typer.echo(_progress(_signed_in_call(url, username, password, "/api/v1/unseal", {"share": content, "passphrase": passphrase})))


@escrow_app.command("seal")
def seal(url: UrlOption, username: UsernameOption, password_stdin: PasswordLineOption = False) -> None:
    """エスクローを封印し直します（鍵をメモリから消します）。鍵管理者または管理者が実行します。"""
    typer.echo(_progress(_signed_in_call(url, username, _password(username, password_stdin), "/api/v1/seal")))


def _password(username: str, from_stdin: bool) -> str:
    return read_secret(f"エスクローの利用者 {username} のパスワード", from_stdin)


def _signed_in_call(url: str, username: str, password: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """Sign in, POST ``body`` to ``path``, sign out."""
    with signed_in(url, _ESCROW, username, password, timeout=60) as client:
        return call(client, _ESCROW, "POST", path, body)


def _progress(status: dict[str, Any]) -> str:
    if not status["sealed"]:
        return f"エスクローは開封されています（{status['threshold']}/{status['custodians']} 人の鍵管理者が開封しました）。"
    if status["progress"]:
        return (f"{status['progress']}/{status['threshold']} 人の鍵管理者が開封しました。"
                f"あと {status['threshold'] - status['progress']} 人の鍵管理者の開封が必要です。")
    return f"エスクローは封印されています（開封には {status['threshold']} 人の鍵管理者が必要です）。"
