"""`tsunagu keys …`: the key ceremony, agent enrolment, rotation, rewrapping the escrow key and revocation.

Passphrases are asked with a hidden prompt, or read one per line from
standard input with ``--passphrase-stdin`` (for automation); never from the
command line, the environment or a log.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated, Optional

import typer

from keys import custody, enrolment
from keys.keyring import Keyring, init_municipality
from keys.passphrase import KdfParams
from service.audit_store import record_key_operation
from tsunagu.commands.common import AgentPublicOption, RevokedAgentOption, read_secret
from tsunagu.errors import CommandError

keys_app = typer.Typer(help="鍵の生成・配布・エスクロー管理（鍵管理者向け）", no_args_is_help=True)

HomeOption = Annotated[Path, typer.Option("--home", envvar="TSUNAGU_HOME", help="配置先のデータフォルダ（既定: 環境変数 TSUNAGU_HOME）")]
StdinOption = Annotated[bool, typer.Option("--passphrase-stdin", help="パスフレーズを標準入力から 1 行ずつ読みます（自動化用）")]
KdfOption = Annotated[int, typer.Option("--kdf-memory-kib", help="Argon2id のメモリ量（KiB）。本番は既定の 65536 を使ってください")]
ActorOption = Annotated[Optional[str], typer.Option("--actor", help="監査ログに記録する操作者名（既定: ログイン名）")]


def register(app: typer.Typer) -> None:
    """Add the `keys` command group to the root app."""
    app.add_typer(keys_app, name="keys")


class _Passphrases:
    """Reads passphrases from a hidden prompt, or line by line from stdin."""

    def __init__(self, from_stdin: bool) -> None:
        self._stdin = from_stdin

    def ask(self, prompt: str, confirm: bool = False) -> str:
        """The passphrase named ``prompt``; a new one (``confirm``) is asked twice and must have 12 characters."""
        value = read_secret(prompt, self._stdin, confirm=confirm)
        if confirm and len(value) < 12:
            raise CommandError(f"パスフレーズは 12 文字以上にしてください（{prompt}）。")
        return value


def _params(memory_kib: int) -> KdfParams:
    return KdfParams(memory_kib=memory_kib)


def _actor(actor: str | None) -> str:
    return actor or getpass.getuser()


@keys_app.command("init")
def init(
    home: HomeOption,
    municipality: Annotated[str, typer.Option("--municipality", help="自治体コード（例: 131016）")],
    custodian: Annotated[list[str], typer.Option("--custodian", help="鍵管理者の名前（人数分くり返し指定）")],
    threshold: Annotated[int, typer.Option("--threshold", help="復元に必要な鍵管理者の人数 k")],
    passphrase_stdin: StdinOption = False,
    kdf_memory_kib: KdfOption = 65536,
) -> None:
    """鍵の生成式: 連携鍵・エスクロー鍵（k-of-n 分割）・監査署名鍵・自治体識別鍵を作ります。"""
    typer.echo(f"自治体 {municipality} の鍵を {home} に作ります。鍵管理者 {len(custodian)} 人、復元に {threshold} 人が必要です。")
    ask = _Passphrases(passphrase_stdin)
    operator = ask.ask("運用者（情報政策課）のパスフレーズ", confirm=True)
    custodians = []
    for number, name in enumerate(custodian, start=1):
        if not passphrase_stdin:
            typer.echo(f"--- 鍵管理者 {number}: {name} さんに交代してください。他の人は画面から離れてください。")
        custodians.append(custody.Custodian(name, ask.ask(f"鍵管理者 {name} さんのパスフレーズ", confirm=True)))
    result = init_municipality(home, municipality, custodians, threshold, operator, _params(kdf_memory_kib))
    typer.echo(f"連携鍵 ID: {result.linkage_key_id}")
    typer.echo(f"エスクロー鍵 ID: {result.escrow_key_id}（分割 {result.share_set_id}）")
    typer.echo(f"監査署名の検証鍵: {result.checkpoint_key}")
    typer.echo(f"自治体識別の検証鍵: {result.federation_key}")
    for path, c in zip(result.share_files, custodians):
        typer.echo(f"持分: {c.name} さん → {path}")
    typer.echo("各鍵管理者は自分の持分ファイルを自分の媒体に移し、このフォルダからは削除してください。")
    ring = Keyring(home)
    record_key_operation(ring, ring.checkpoint_signer(operator), actor=_actor(None), role="key-administrator",
                         action="keys.init", outcome="succeeded", target=result.escrow_key_id)


@keys_app.command("agent-init")
def agent_init(
    home: HomeOption,
    agent_id: Annotated[str, typer.Option("--agent-id", help="エージェント ID（例: edu-1）")],
    passphrase_stdin: StdinOption = False,
    kdf_memory_kib: KdfOption = 65536,
) -> None:
    """エージェントの署名鍵と受信鍵を作り、管理者に渡す公開鍵ファイルを書きます。"""
    passphrase = _Passphrases(passphrase_stdin).ask(f"エージェント {agent_id} のパスフレーズ", confirm=True)
    path = enrolment.init_agent(home, agent_id, passphrase, _params(kdf_memory_kib))
    typer.echo(f"公開鍵ファイル: {path}（これを管理者に渡してください。秘密の情報は含みません）")


@keys_app.command("enrol")
def enrol(
    home: HomeOption,
    agent_public: AgentPublicOption,
    passphrase_stdin: StdinOption = False,
    actor: ActorOption = None,
) -> None:
    """エージェントを登録し、そのエージェントだけが開ける連携鍵ファイルを作ります。"""
    ring = Keyring(home)
    agent = enrolment.read_agent_public(agent_public)
    registry = enrolment.AgentRegistry(home)
    registry.check_enrollable(agent)
    operator = _Passphrases(passphrase_stdin).ask("運用者のパスフレーズ")
    linkage = ring.linkage_secret(operator)
    record_key_operation(ring, ring.checkpoint_signer(operator), actor=_actor(actor), role="key-administrator", action="agent.enrol",
                outcome="approved", target=f"{agent.agent_id}/{linkage.key_id}")
    path = registry.enrol(agent, linkage, ring.federation_signer(operator), home / "enrolments")
    typer.echo(f"エージェント {agent.agent_id} を登録しました（連携鍵 {linkage.key_id}）。")
    typer.echo(f"配布ファイル: {path}（エージェント {agent.agent_id} だけが開けます）")
    typer.echo(f"発行者の検証鍵: {ring.federation_vkey}")


@keys_app.command("agent-install")
def agent_install(
    home: HomeOption,
    wrapped: Annotated[Path, typer.Option("--wrapped", help="管理者から受け取った連携鍵ファイル")],
    issuer_key: Annotated[Optional[Path], typer.Option("--issuer-key", help="発行者の検証鍵を書いたファイル（初回の確認用）")] = None,
    passphrase_stdin: StdinOption = False,
    kdf_memory_kib: KdfOption = 65536,
) -> None:
    """管理者から受け取った連携鍵をエージェントに導入します。"""
    pinned = issuer_key.read_text(encoding="utf-8").strip() if issuer_key else None
    passphrase = _Passphrases(passphrase_stdin).ask("エージェントのパスフレーズ")
    key_id = enrolment.install_linkage_secret(home, wrapped, passphrase, pinned, _params(kdf_memory_kib))
    typer.echo(f"連携鍵 {key_id} を導入しました。")


@keys_app.command("rotate-linkage")
def rotate_linkage(
    home: HomeOption, passphrase_stdin: StdinOption = False, kdf_memory_kib: KdfOption = 65536, actor: ActorOption = None
) -> None:
    """新しい連携鍵（新しい鍵 ID）を作ります。旧い鍵は読み取り専用で残ります。"""
    ring = Keyring(home)
    operator = _Passphrases(passphrase_stdin).ask("運用者のパスフレーズ")
    ring.linkage_secret(operator)
    old = ring.current_linkage_key_id
    record_key_operation(ring, ring.checkpoint_signer(operator), actor=_actor(actor), role="key-administrator",
                action="linkage.rotate", outcome="approved", target=old)
    new = ring.rotate_linkage(operator, _params(kdf_memory_kib))
    typer.echo(f"連携鍵を {old} から {new.key_id} に替えました。各エージェントを enrol し直してください。")
    typer.echo("鍵 ID の異なる符号化は比較できません。旧い鍵の符号化は作り直しが必要です。")


@keys_app.command("rewrap-escrow")
def rewrap_escrow(
    home: HomeOption,
    share: Annotated[list[Path], typer.Option("--share", help="現在の持分ファイル（k 人分くり返し指定）")],
    custodian: Annotated[list[str], typer.Option("--custodian", help="新しい鍵管理者の名前（人数分くり返し指定）")],
    threshold: Annotated[int, typer.Option("--threshold", help="新しい必要人数 k")],
    passphrase_stdin: StdinOption = False,
    kdf_memory_kib: KdfOption = 65536,
    actor: ActorOption = None,
) -> None:
    """エスクロー鍵を新しい鍵管理者・新しい k-of-n で分割し直します（旧い持分は使えなくなります）。"""
    ring = Keyring(home)
    ask = _Passphrases(passphrase_stdin)
    operator = ask.ask("運用者のパスフレーズ")
    signer = ring.checkpoint_signer(operator)
    old = [custody.ShareInput(path, ask.ask(f"持分 {path.name} の鍵管理者のパスフレーズ")) for path in share]
    custody.unseal(ring.escrow_sealed_path, old)  # refuse early, before anyone types new passphrases
    new = [custody.Custodian(name, ask.ask(f"新しい鍵管理者 {name} さんのパスフレーズ", confirm=True)) for name in custodian]
    record_key_operation(ring, signer, actor=_actor(actor), role="key-administrator", action="escrow.rewrap", outcome="approved",
                target=custody.sealed_info(ring.escrow_sealed_path)["share_set_id"])
    share_set, paths = custody.rewrap(ring.escrow_sealed_path, old, ring.shares_dir, new, threshold, _params(kdf_memory_kib))
    typer.echo(f"エスクロー鍵を分割し直しました（新しい分割 {share_set}、{threshold}/{len(new)}）。旧い持分は使えません。")
    for path, c in zip(paths, new):
        typer.echo(f"持分: {c.name} さん → {path}")


@keys_app.command("revoke-agent")
def revoke_agent(
    home: HomeOption,
    agent_id: RevokedAgentOption,
    reason: Annotated[str, typer.Option("--reason", help="失効の理由（例: 端末紛失）")],
    passphrase_stdin: StdinOption = False,
    actor: ActorOption = None,
) -> None:
    """エージェントを失効させます（再登録できず、ゲートウェイは提出を拒否します）。"""
    ring = Keyring(home)
    registry = enrolment.AgentRegistry(home)
    registry.get(agent_id)
    operator = _Passphrases(passphrase_stdin).ask("運用者のパスフレーズ")
    record_key_operation(ring, ring.checkpoint_signer(operator), actor=_actor(actor), role="key-administrator",
                action="agent.revoke", outcome="approved", target=agent_id, purpose=reason)
    registry.revoke(agent_id, reason)
    typer.echo(f"エージェント {agent_id} を失効させました。")
