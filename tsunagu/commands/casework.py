"""`tsunagu casework …`: a caseworker's client for re-identification — the gateway logs the request, the escrow decides and releases.

The client signs in to the gateway and to the escrow separately (two user
stores, two passwords, read from a hidden prompt or standard input, never
from the command line). The gateway returns the signed filing; this client
files it with the escrow itself, so the gateway never holds an escrow token
and never sees an identity.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from tsunagu.commands.common import call, read_secret, signed_in
from tsunagu.errors import jst

casework_app = typer.Typer(help="再識別の申請・状況確認・受け取り（ケースワーカー向け）", no_args_is_help=True)

GatewayOption = Annotated[str, typer.Option("--gateway", help="ゲートウェイの URL（例: https://gateway.example.lg.jp:8443）")]
EscrowOption = Annotated[str, typer.Option("--escrow", help="エスクローの URL（例: https://escrow.example.lg.jp:8600）")]
UsernameOption = Annotated[str, typer.Option("--username", help="利用者名（ゲートウェイとエスクローで同じ名前）")]
PasswordStdinOption = Annotated[bool, typer.Option("--password-stdin", help="パスワードを標準入力から 1 行ずつ読みます（自動化用）")]
RequestOption = Annotated[str, typer.Option("--request", help="申請 ID（reid-…）")]
STATUS_LABELS = {"pending": "承認待ち", "approved": "承認済み（受け取りできます）", "rejected": "却下", "released": "開示済み",
                 "expired": "受け取り期限切れ"}


def register(app: typer.Typer) -> None:
    """Add the `casework` command group to the root app."""
    app.add_typer(casework_app, name="casework")


def file_request(gateway: str, escrow: str, username: str, gateway_password: str, escrow_password: str,
                 person: str, purpose: str, case_ref: str, justification: str) -> dict[str, Any]:
    """Ask the gateway for the signed filing, then file it with the escrow; returns the escrow's view of the request."""
    with signed_in(gateway, "ゲートウェイ", username, gateway_password) as g:
        package = call(g, "ゲートウェイ", "POST", "/api/v1/reidentification",
                       {"person_id": person, "purpose": purpose, "case_ref": case_ref, "justification": justification})
    with signed_in(escrow, "エスクロー", username, escrow_password) as e:
        return call(e, "エスクロー", "POST", "/api/v1/requests", package["filing"])


def _at_escrow(escrow: str, username: str, password_stdin: bool, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One request to the escrow as ``username`` (password from the prompt or stdin), signed out afterwards."""
    with signed_in(escrow, "エスクロー", username, read_secret(f"エスクローの利用者 {username} のパスワード", password_stdin)) as e:
        return call(e, "エスクロー", method, path, body)


@casework_app.command("request")
def request(
    gateway: GatewayOption,
    escrow: EscrowOption,
    username: UsernameOption,
    person: Annotated[str, typer.Option("--person", help="人物 ID（スクリーニング・人物一覧の P…）")],
    purpose: Annotated[str, typer.Option("--purpose", help="利用目的（ポリシーの名前: early_support, child_protection など）")],
    case_ref: Annotated[str, typer.Option("--case-ref", help="案件番号（要対協の番号など。必須）")],
    justification: Annotated[str, typer.Option("--justification", help="再識別が必要な理由（承認者と監査担当が読みます。氏名は書かないでください）")],
    password_stdin: PasswordStdinOption = False,
) -> None:
    """再識別を申請します。ゲートウェイが申請を監査ログに記録し、この端末からエスクローに提出します。"""
    gateway_password = read_secret(f"ゲートウェイの利用者 {username} のパスワード", password_stdin)
    escrow_password = read_secret(f"エスクローの利用者 {username} のパスワード", password_stdin)
    filed = file_request(gateway, escrow, username, gateway_password, escrow_password, person, purpose, case_ref, justification)
    typer.echo(f"申請 {filed['request_id']} をエスクローに提出しました（記録 {len(filed['records'])} 件、"
               f"必要な承認 {filed['approvals_required']} 人）。承認者がエスクローで承認すると受け取れます。")
    typer.echo(filed["request_id"])


@casework_app.command("status")
def status(
    escrow: EscrowOption,
    username: UsernameOption,
    request_id: RequestOption,
    password_stdin: PasswordStdinOption = False,
) -> None:
    """申請の状況（承認の数、受け取り期限）を表示します。"""
    found = _at_escrow(escrow, username, password_stdin, "GET", f"/api/v1/requests/{request_id}")
    typer.echo(f"申請 {found['request_id']}: {STATUS_LABELS.get(found['status'], found['status'])}"
               f"（承認 {found['approvals']}/{found['approvals_required']}、案件 {found['case_ref']}）")
    if found.get("release_expires_at"):
        typer.echo(f"受け取り期限: {jst(found['release_expires_at'])}")


@casework_app.command("release")
def release(
    escrow: EscrowOption,
    username: UsernameOption,
    request_id: Annotated[str, typer.Option("--request", help="承認済みの申請 ID（reid-…）")],
    password_stdin: PasswordStdinOption = False,
) -> None:
    """承認済みの申請の本人情報を 1 度だけ受け取って表示します（申請したケースワーカー本人のみ。ゲートウェイを経由しません。保存しないでください）。"""
    released = _at_escrow(escrow, username, password_stdin, "POST", f"/api/v1/requests/{request_id}/release")
    for record in released["records"]:
        typer.echo(json.dumps(record, ensure_ascii=False))
    typer.echo(f"申請 {request_id} の {len(released['records'])} 件を開示しました。この申請ではもう開示できません。", err=True)


@casework_app.command("list")
def list_requests(
    escrow: EscrowOption,
    username: UsernameOption,
    password_stdin: PasswordStdinOption = False,
) -> None:
    """エスクローの申請を一覧にします（承認者はすべて、ケースワーカーは自分の申請）。"""
    found = _at_escrow(escrow, username, password_stdin, "GET", "/api/v1/requests")
    for r in found:
        typer.echo(f"{r['request_id']}  {jst(r['created_at'])}  申請者 {r['requester']}  目的 {r['purpose']}（{r['legal_basis']}）"
                   f"  案件 {r['case_ref']}  記録 {len(r['records'])} 件  承認 {r['approvals']}/{r['approvals_required']}"
                   f"  {STATUS_LABELS.get(r['status'], r['status'])}")
        typer.echo(f"    理由: {r['justification']}")
    if not found:
        typer.echo("申請はありません。")


def _decide(escrow: str, username: str, request_id: str, reason: str, password_stdin: bool, verb: str) -> None:
    decided = _at_escrow(escrow, username, password_stdin, "POST", f"/api/v1/requests/{request_id}/{verb}", {"reason": reason})
    typer.echo(f"申請 {request_id}: {STATUS_LABELS.get(decided['status'], decided['status'])}"
               f"（承認 {decided['approvals']}/{decided['approvals_required']}）")


ReasonOption = Annotated[str, typer.Option("--reason", help="判断の理由（エスクローに保存されます。氏名は書かないでください）")]


def _decision_command(verb: str, help_text: str) -> None:
    """Register ``casework <verb>``: approve and reject differ only in the escrow route they call."""

    def command(escrow: EscrowOption, username: UsernameOption, request_id: RequestOption, reason: ReasonOption = "",
                password_stdin: PasswordStdinOption = False) -> None:
        _decide(escrow, username, request_id, reason, password_stdin, verb)

    command.__doc__ = help_text
    casework_app.command(verb)(command)


_decision_command("approve", "申請を承認します（承認者。自分の申請は承認できません）。")
_decision_command("reject", "申請を却下します（承認者）。却下された申請は開示されません。")
