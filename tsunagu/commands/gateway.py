"""`tsunagu gateway …`: set up and serve the gateway, manage users and agents, import submissions, run linkage.

Passwords come from a hidden prompt or from standard input (``--password-stdin``),
never from the command line. Every command takes ``--home`` (or ``TSUNAGU_HOME``).
"""

from __future__ import annotations

import json
import shutil
import time
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from tsunagu.commands.common import OutLinesOption, PasswordChangeStdinOption, PasswordLineOption, RevokedAgentOption, read_password_change, read_secret, run
from tsunagu.commands.service import Accounts, add_account_commands, add_serve_command
from tsunagu.errors import CommandError

if TYPE_CHECKING:  # the gateway is imported lazily so that `tsunagu --help` stays fast
    from gateway.core import Gateway

gateway_app = typer.Typer(help="ゲートウェイの設定・起動・利用者とエージェントの管理・取込・名寄せ（情報政策課向け）", no_args_is_help=True)
user_app = typer.Typer(help="利用者の管理", no_args_is_help=True)
agent_app = typer.Typer(help="エージェントの登録・失効", no_args_is_help=True)
gateway_app.add_typer(user_app, name="user")
gateway_app.add_typer(agent_app, name="agent")

HomeOption = Annotated[Path, typer.Option("--home", envvar="TSUNAGU_HOME", help="ゲートウェイのデータフォルダ（既定: 環境変数 TSUNAGU_HOME）")]


def register(app: typer.Typer) -> None:
    """Add the `gateway` command group to the root app."""
    app.add_typer(gateway_app, name="gateway")


def _open(home: Path) -> "Gateway":
    from gateway.core import Gateway

    return run(Gateway.open, home)


@gateway_app.command("init")
def init(
    home: HomeOption,
    linkage_key_id: Annotated[str, typer.Option("--linkage-key-id", help="現在の連携鍵の鍵 ID（lk_…）。鍵そのものはゲートウェイに置きません")],
    database_url: Annotated[Optional[str], typer.Option("--database-url", help="PostgreSQL の URL（省略時は <home>/gateway.db の SQLite）。パスワードは環境変数 TSUNAGU_DATABASE_URL で渡してください")] = None,
    policy: Annotated[Optional[Path], typer.Option("--policy", help="自治体のポリシーファイル（<home>/policy.toml に写します）")] = None,
    drop_folder: Annotated[Optional[Path], typer.Option("--drop-folder", help="提出ファイルの受け取りフォルダ")] = None,
) -> None:
    """ゲートウェイのデータフォルダを作り、設定・データベース・監査ログ署名鍵を用意します。"""
    import tomli_w

    from policy import PolicyError, load_policy

    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    config = home / "gateway.toml"
    if config.exists():
        raise CommandError(f"{config} はすでにあります。設定を変えるときはこのファイルを編集してください。")
    if policy is not None:
        try:
            load_policy(policy)
        except PolicyError as exc:
            raise CommandError(str(exc)) from None
        shutil.copyfile(policy, home / "policy.toml")
    if database_url and _has_password(database_url):
        raise CommandError("データベースのパスワードを引数に書かないでください。環境変数 TSUNAGU_DATABASE_URL か ~/.pgpass で渡してください。")
    values: dict[str, object] = {"linkage_key_id": linkage_key_id}
    if database_url:
        values["database_url"] = database_url
    if drop_folder:
        values["drop_folder"] = str(drop_folder)
    config.write_text(tomli_w.dumps(values), encoding="utf-8")
    gw = _open(home)
    typer.echo(f"ゲートウェイを {gw.settings.home} に用意しました（データベース: {'SQLite' if gw.settings.is_sqlite else 'PostgreSQL'}）。")
    typer.echo(f"監査ログの検証鍵: {gw.signer.verifier.vkey()}")
    typer.echo("次に管理者を作ってください: tsunagu gateway user add --home … --username … --role admin")


def _has_password(url: str) -> bool:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).password is not None
    except ArgumentError:
        raise CommandError("--database-url の形式が正しくありません（例: postgresql+psycopg://user@host/dbname）。") from None


def _start(home: Path) -> tuple[object, str]:
    from gateway.api.main import create_app

    return create_app(_open(home)), "ゲートウェイを {url} で起動します。"


add_serve_command(gateway_app, HomeOption, 8443, "API を起動します（名寄せ・保存期間の削除・受け取りフォルダの取込も定期実行します）。", _start)


UsernameOption = Annotated[str, typer.Option("--username", help="利用者名")]


@user_app.command("add")
def user_add(
    home: HomeOption,
    username: UsernameOption,
    role: Annotated[str, typer.Option("--role", help="ロール（ポリシーの roles のどれか）")],
    password_stdin: PasswordLineOption = False,
) -> None:
    """利用者を作ります。パスワードは入力を求めるか標準入力から読みます（引数には書けません）。"""
    from gateway.identity import add_user

    gw = _open(home)
    user = run(add_user, gw, username, role, read_secret("パスワード", password_stdin, confirm=True))
    typer.echo(f"利用者「{user.username}」（{role}）を作りました。")


add_account_commands(
    user_app, Accounts("gateway.identity", lambda home: nullcontext(_open(home))), HomeOption, UsernameOption,
    roles_of=lambda u: u["role"],
    role_option=Annotated[str, typer.Option("--role", help="新しいロール（ポリシーの roles のどれか）")], set_role="set_role",
    role_text=str, delete_keeps="監査ログ")


@user_app.command("passwd")
def user_passwd(home: HomeOption, username: UsernameOption,
                password_stdin: PasswordChangeStdinOption = False) -> None:
    """自分のパスワードを変えます（現在のパスワードが必要です）。"""
    from gateway.identity import User, change_password, list_users

    gw = _open(home)
    current, new = read_password_change(password_stdin)
    row = next((u for u in list_users(gw) if u["username"] == username), None)
    if row is None:
        raise CommandError(f"利用者「{username}」はいません。")
    run(change_password, gw, User(0, username, row["role"]), current, new)
    typer.echo("パスワードを変更しました。")


@agent_app.command("register")
def agent_register(
    home: HomeOption,
    agent_public: Annotated[Path, typer.Option("--agent-public", help="エージェントの公開鍵ファイル（agent-public.json）")],
    network: Annotated[str, typer.Option("--network", help="エージェントのネットワーク（edu, mynumber, internet）")],
    source: Annotated[list[str], typer.Option("--source", help="提出を認めるデータ元（複数可）")],
) -> None:
    """エージェントの公開鍵を登録し、提出できるネットワークとデータ元を決めます。"""
    from gateway.agents import register_agent
    from keys.enrolment import read_agent_public

    gw = _open(home)
    public = read_agent_public(agent_public)
    agent = run(register_agent, gw, public, network, source)
    typer.echo(f"エージェント {agent.agent_id}（{agent.signing_key_id}）を {agent.network} / {', '.join(agent.sources)} で登録しました。")


@agent_app.command("revoke")
def agent_revoke(
    home: HomeOption,
    agent_id: RevokedAgentOption,
    reason: Annotated[str, typer.Option("--reason", help="失効の理由（監査ログに残ります）")],
) -> None:
    """エージェントを失効させます。以後の提出はすべて拒否されます。"""
    from gateway.agents import revoke_agent

    run(revoke_agent, _open(home), agent_id, reason)
    typer.echo(f"エージェント {agent_id} を失効させました。")


@agent_app.command("handover")
def agent_handover(
    home: HomeOption,
    source: Annotated[str, typer.Option("--source", help="引き継ぐデータ元")],
    to: Annotated[str, typer.Option("--to", help="新しく担当するエージェント ID（登録済みであること）")],
    reason: Annotated[str, typer.Option("--reason", help="引き継ぎの理由（ログに残ります）")],
    agent_public: Annotated[Optional[Path], typer.Option("--agent-public", help="新しいエージェントが未登録なら、その公開鍵ファイル（同時に登録します）")] = None,
) -> None:
    """データ元の担当を別のエージェントに引き継ぎます。以後はそのエージェントの提出だけを受け付けます（監査ログに残ります）。"""
    from gateway.agents import handover_source
    from keys.enrolment import read_agent_public

    public = read_agent_public(agent_public) if agent_public is not None else None
    done = run(handover_source, _open(home), source, to, reason, public=public)
    typer.echo(f"データ元「{done['source']}」の担当を {done['from'] or '（なし）'} から {done['to']} に引き継ぎました。"
               "以前のエージェントからのこのデータ元の提出は、今後受け付けません。")


@agent_app.command("list")
def agent_list(home: HomeOption) -> None:
    """登録済みのエージェントを表示します。"""
    from gateway.agents import list_agents

    for a in list_agents(_open(home)):
        typer.echo(f"{a['agent_id']}\t{a['status']}\t{a['network']}\t{','.join(a['sources'])}\t{a['signing_key_id']}")


@gateway_app.command("import")
def import_file(home: HomeOption, file: Annotated[Path, typer.Argument(help="提出データのファイル（JSON Lines）")]) -> None:
    """提出データのファイルを 1 つ取り込みます（可搬媒体で運んだもの）。"""
    from gateway.frontdoor import check_signed_head
    from gateway.ingest import ingest

    gw = _open(home)
    if file.stat().st_size > gw.settings.max_submission_bytes:
        raise CommandError(f"{file} は上限 {gw.settings.max_submission_bytes} バイトを超えています。")
    data = file.read_bytes()
    run(check_signed_head, gw, data)
    result = run(ingest, gw, data, "import", path=file.name)
    typer.echo(json.dumps(result.to_json(), ensure_ascii=False))


@gateway_app.command("watch")
def watch(
    home: HomeOption,
    drop: Annotated[Path, typer.Option("--drop", help="監視するフォルダ")],
    interval: Annotated[float, typer.Option("--interval", help="確認の間隔（秒）")] = 10.0,
    once: Annotated[bool, typer.Option("--once", help="1 回だけ取り込んで終わります")] = False,
) -> None:
    """フォルダに置かれた提出データを取り込み、imported/ か rejected/ に移します。"""
    from gateway.db import checkpoint
    from gateway.dropfolder import process_folder
    from gateway.errors import GatewayError

    gw = _open(home)
    drop.mkdir(parents=True, exist_ok=True)
    while True:
        for name, outcome in process_folder(gw, drop, settle=0.0 if once else 2.0):
            if isinstance(outcome, GatewayError):
                typer.echo(f"拒否: {name}: {outcome.detail}", err=True)
            else:
                typer.echo(f"取込: {name}: {json.dumps(outcome.to_json(), ensure_ascii=False)}")
        checkpoint(gw.engine)
        if once:
            return
        time.sleep(interval)


@gateway_app.command("link")
def link(
    home: HomeOption,
    full: Annotated[bool, typer.Option("--full", help="全件を名寄せし直し、重み（モデル）を推定し直します（既定は差分だけの名寄せ）")] = False,
) -> None:
    """今すぐ名寄せを実行し、統計を表示します。"""
    from gateway.link import run_linkage

    stats = run(run_linkage, _open(home), trigger="cli", progress=lambda stage: typer.echo(f"… {stage}", err=True),
                 full=True if full else None)
    typer.echo(json.dumps(stats, ensure_ascii=False))


@gateway_app.command("audit-export")
def audit_export(
    home: HomeOption,
    out: OutLinesOption,
) -> None:
    """ゲートウェイの監査ログを、証人の連署とともに書き出します（tsunagu audit verify で検証できます）。"""
    from gateway.audit_tools import export_lines, sync_witnesses

    gw = _open(home)
    for name, result in sync_witnesses(gw).items():
        typer.echo(f"証人 {name}: {'連署を得ました' if result.startswith('cosigned') else result}", err=True)
    lines = export_lines(gw)
    vkey = gw.signer.verifier.vkey()
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    typer.echo(f"{len(lines) and json.loads(lines[0])['size']} 件の記録を {out} に書き出しました。")
    typer.echo(f"検証鍵: {vkey}")


@gateway_app.command("purge")
def purge(home: HomeOption) -> None:
    """保存期間を過ぎた記録を今すぐ削除し、削除した件数を表示します。"""
    from gateway.retention import purge as _purge

    report = run(_purge, _open(home), actor="cli")
    for entry in report:
        typer.echo(f"{entry['source']}: 記録 {entry['records_removed']} 件、履歴 {entry['history_removed']} 件を削除（保存期間 {entry['retention_days']} 日）")
    if not report:
        typer.echo("保存期間を過ぎた記録はありませんでした。")
