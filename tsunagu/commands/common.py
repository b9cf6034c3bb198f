"""The plumbing every `tsunagu …` command group shares: secrets from a prompt or stdin, refusals as one-line errors, serving, signed-in HTTP calls.

Secrets (passwords, passphrases) come from a hidden prompt or one per line
from standard input (``--password-stdin``, ``--passphrase-stdin``), never from
the command line, the environment or a log. A refusal of the gateway, the
escrow or a library becomes a :class:`~tsunagu.errors.CommandError`, which the
root app prints as one Japanese line.
"""

from __future__ import annotations

import getpass
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Iterator, Optional, TypeVar

import typer

from tsunagu.errors import CommandError

if TYPE_CHECKING:  # httpx and the services are imported lazily so that `tsunagu --help` stays fast
    import httpx

T = TypeVar("T")

HostOption = Annotated[str, typer.Option("--host", help="待ち受けるアドレス")]
TlsCertOption = Annotated[Optional[Path], typer.Option("--tls-cert", help="TLS サーバ証明書（PEM）")]
TlsKeyOption = Annotated[Optional[Path], typer.Option("--tls-key", help="TLS 秘密鍵（PEM）")]
UnlockUsernameOption = Annotated[Optional[str], typer.Option("--username", help="ロックを解除する利用者")]
UnlockAddressOption = Annotated[Optional[str], typer.Option("--address", help="ロックを解除する接続元 IP アドレス")]
PasswordChangeStdinOption = Annotated[bool, typer.Option("--password-stdin", help="現在と新しいパスワードを標準入力の 1 行目と 2 行目から読みます")]
PortOption = Annotated[int, typer.Option("--port", help="待ち受けるポート")]
OutLinesOption = Annotated[Path, typer.Option("--out", help="書き出し先（JSON Lines）")]
AgentPublicOption = Annotated[Path, typer.Option("--agent-public", help="エージェントの公開鍵ファイル")]
RevokedAgentOption = Annotated[str, typer.Option("--agent-id", help="失効させるエージェント ID")]
PasswordLineOption = Annotated[bool, typer.Option("--password-stdin", help="パスワードを標準入力の 1 行目から読みます（自動化用）")]
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def read_secret(prompt: str, from_stdin: bool, confirm: bool = False) -> str:
    """One secret named ``prompt``: the next line of stdin, or a hidden prompt (asked twice with ``confirm``); never empty."""
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise CommandError(f"標準入力に{prompt}がありません。")
        value = line.rstrip("\r\n")
    else:
        value = getpass.getpass(f"{prompt}: ")
        if confirm and getpass.getpass(f"{prompt}（確認のためもう一度）: ") != value:
            raise CommandError(f"確認の{prompt}が一致しません。")
    if not value:
        raise CommandError(f"{prompt}が空です。")
    return value


def read_text_file(path: Path, what: str = "ファイル") -> str:
    """The UTF-8 text of ``path``; a missing or unreadable file is the command's one-line error naming ``what``."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CommandError(f"{what} {path} がありません。") from None
    except (OSError, UnicodeDecodeError):
        raise CommandError(f"{what} {path} を UTF-8 のテキストとして読めません。") from None


def read_password_change(from_stdin: bool) -> tuple[str, str]:
    """The current and the new password (stdin: line 1 and 2; prompt: the new one asked twice)."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n"), sys.stdin.readline().rstrip("\r\n")
    current = getpass.getpass("現在のパスワード: ")
    new = getpass.getpass("新しいパスワード: ")
    if getpass.getpass("新しいパスワード（確認）: ") != new:
        raise CommandError("確認のパスワードが一致しません。")
    return current, new


def unlock_target(username: str | None, address: str | None) -> tuple[str, str]:
    """What ``user unlock`` lifts: ``("account", username)`` or ``("address", address)``; exactly one must be given."""
    if username is None and address is not None:
        return "address", address
    if username is not None and address is None:
        return "account", username
    raise CommandError("--username か --address のどちらか一方を指定してください。")


def show_unlock(lifted: bool) -> None:
    """Say whether ``user unlock`` lifted a lock."""
    typer.echo("ロックを解除しました。" if lifted else "ロックはかかっていませんでした。")


def show_lockouts(entries: list[dict[str, Any]]) -> None:
    """The locked and waiting accounts and addresses of a service's login throttle, one a line."""
    for e in entries:
        typer.echo(f"{'利用者' if e['kind'] == 'account' else '接続元'}\t{e['key']}\t失敗 {e['failures']} 回\t"
                   f"{'ロック中' if e['locked'] else '待機中'}\t{e['wait_until'] or ''}")
    if not entries:
        typer.echo("ロック中の利用者・接続元はありません。")


@contextmanager
def refused_as_error(*kinds: type[Exception]) -> Iterator[None]:
    """Inside, an exception of ``kinds`` (default: a service's refusal) becomes the command's one-line error.

    A service's refusal speaks through its ``detail``; a library error through its message.
    """
    if not kinds:
        from service.errors import Refusal

        kinds = (Refusal,)
    try:
        yield
    except kinds as exc:
        raise CommandError(getattr(exc, "detail", None) or str(exc)) from None


def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``fn``; a refusal of the gateway or the escrow becomes the command's one-line error."""
    with refused_as_error():
        return fn(*args, **kwargs)


def serve(app: Any, host: str, port: int, tls_cert: Path | None, tls_key: Path | None, banner: str) -> None:
    """Serve ``app`` with uvicorn; TLS is required off the loopback. ``banner`` (with ``{url}``) goes to stderr first."""
    import uvicorn

    check_listen(host, tls_cert, tls_key)
    typer.echo(banner.format(url=f"{'https' if tls_cert else 'http'}://{host}:{port}/"), err=True)
    uvicorn.run(app, host=host, port=port, ssl_certfile=tls_cert, ssl_keyfile=tls_key,
                log_level="warning", access_log=False, timeout_graceful_shutdown=10)


def check_listen(host: str, tls_cert: Path | None, tls_key: Path | None) -> None:
    """Refuse half a TLS pair, and plain HTTP off the loopback (before anything is opened)."""
    if (tls_cert is None) != (tls_key is None):
        raise CommandError("--tls-cert と --tls-key は両方指定してください。")
    if tls_cert is None and host not in _LOOPBACK:
        raise CommandError("ループバック以外で待ち受けるときは TLS（--tls-cert と --tls-key）が必要です。")


@contextmanager
def signed_in(url: str, service: str, username: str, password: str, timeout: float = 120) -> Iterator["httpx.Client"]:
    """A client signed in to ``url`` (the gateway or the escrow, named ``service`` in errors); signed out afterwards."""
    import httpx

    with httpx.Client(base_url=url, timeout=timeout) as client:
        token = call(client, service, "POST", "/api/v1/auth/login", {"username": username, "password": password})["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        try:
            yield client
        finally:
            try:
                client.post("/api/v1/auth/logout")
            except httpx.TransportError:
                pass


def call(client: "httpx.Client", service: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One request; its JSON answer, or a refusal as the command's one-line Japanese message."""
    import httpx

    try:
        response = client.request(method, path, json=body)
    except httpx.TransportError as exc:
        raise CommandError(f"{service} {client.base_url} に接続できません（{type(exc).__name__}）。URL と起動状態を確認してください。") from None
    if response.is_success:
        # 204 No Content (a password change, for one) has no JSON to read
        return response.json() if response.content else None
    try:
        detail = response.json()["detail"]
    except (ValueError, KeyError, TypeError):
        detail = f"HTTP {response.status_code}"
    raise CommandError(f"{service}: {detail}")
