"""`tsunagu federation …`: the federation secret (coordinator, members, agents), a gateway's federation settings and peers, and bundles.

Passphrases come from a hidden prompt or ``--passphrase-stdin``, never from the command line.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from tsunagu.commands.common import AgentPublicOption, read_text_file, run
from tsunagu.commands.keys import KdfOption, StdinOption, _params, _Passphrases
from tsunagu.errors import CommandError

federation_app = typer.Typer(help="自治体をまたぐ連携（転入・転出したこどもの照会と引継ぎ）", no_args_is_help=True)
peer_app = typer.Typer(help="連携先ゲートウェイの管理", no_args_is_help=True)
federation_app.add_typer(peer_app, name="peer")

OutFileOption = Annotated[Path, typer.Option("--out", help="書き出すファイル")]
OutFolderOption = Annotated[Path, typer.Option("--out", help="書き出し先フォルダ")]
AnswerFileOption = Annotated[Path, typer.Option("--file", help="届いた回答ファイル")]
HomeOption = Annotated[Path, typer.Option("--home", envvar="TSUNAGU_HOME", help="データフォルダ（既定: 環境変数 TSUNAGU_HOME）")]


def register(app: typer.Typer) -> None:
    """Add the `federation` command group to the root app."""
    app.add_typer(federation_app, name="federation")


def _gateway(home: Path) -> Any:
    from gateway.core import Gateway

    return run(Gateway.open, home)


def _cli_user() -> Any:
    from gateway.identity import User

    return User(0, f"cli:{getpass.getuser()}", "admin")


def _staff(gw: Any, username: str) -> Any:
    """The gateway user ``username``, who must hold the permission to file and answer handovers."""
    from sqlalchemy import select

    from gateway import models
    from gateway.federation.api import ASK
    from gateway.identity import User, authorize

    with gw.engine.connect() as conn:
        row = conn.execute(select(models.users).where(models.users.c.username == username)).first()
    if row is None or row.disabled:
        raise CommandError(f"利用者「{username}」はこのゲートウェイにいません（または無効です）。")
    user = User(row.id, row.username, row.role)
    run(authorize, gw, user, ASK)
    return user


def _text_file(path: Path) -> str:
    return read_text_file(path).strip()


# ---- the federation secret -------------------------------------------------------------------------


@federation_app.command("coordinator-init")
def coordinator_init(home: HomeOption,
                     federation: Annotated[str, typer.Option("--federation", help="連携圏の名前（例: ibaraki-2026）")],
                     passphrase_stdin: StdinOption = False, kdf_memory_kib: KdfOption = 65536) -> None:
    """（都道府県）連携圏の鍵と調整者の署名鍵を作ります。"""
    from keys import federation as f

    passphrase = _Passphrases(passphrase_stdin).ask("調整者のパスフレーズ", confirm=True)
    result = f.init_coordinator(home, federation, passphrase, _params(kdf_memory_kib))
    typer.echo(f"連携圏 {result.federation} を作りました。鍵 ID: {result.key_id}")
    typer.echo(f"調整者の検証鍵（参加自治体に別経路で渡してください）: {result.coordinator_vkey}")


@federation_app.command("member-identity")
def member_identity(home: HomeOption, passphrase_stdin: StdinOption = False, kdf_memory_kib: KdfOption = 65536) -> None:
    """（自治体の鍵管理者）連携圏の受信鍵を用意し、都道府県に渡す参加申請ファイルを書きます。"""
    from keys import federation as f

    path = f.member_identity(home, _Passphrases(passphrase_stdin).ask("運用者のパスフレーズ"), _params(kdf_memory_kib))
    typer.echo(f"参加申請ファイル: {path}（秘密の情報は含みません。都道府県の調整者に渡してください）")


@federation_app.command("issue")
def issue(home: HomeOption,
          member_identity_file: Annotated[Path, typer.Option("--member-identity", help="自治体の参加申請ファイル")],
          out: OutFolderOption = Path("."),
          passphrase_stdin: StdinOption = False) -> None:
    """（都道府県）連携圏の鍵を 1 つの自治体宛てに暗号化し、署名したファイルを書きます。"""
    from keys import federation as f

    path = f.issue(home, _Passphrases(passphrase_stdin).ask("調整者のパスフレーズ"), member_identity_file, out)
    typer.echo(f"配布ファイル: {path}（この自治体だけが開けます）")


@federation_app.command("install")
def install(home: HomeOption, file: Annotated[Path, typer.Option("--file", help="都道府県から届いた配布ファイル")],
            coordinator_key: Annotated[Optional[str], typer.Option("--coordinator-key", help="調整者の検証鍵（初回に固定します）")] = None,
            passphrase_stdin: StdinOption = False, kdf_memory_kib: KdfOption = 65536) -> None:
    """（自治体の鍵管理者）連携圏の鍵を導入します。"""
    from keys import federation as f

    name, key_id = f.install(home, file, _Passphrases(passphrase_stdin).ask("運用者のパスフレーズ"), coordinator_key,
                             _params(kdf_memory_kib))
    typer.echo(f"連携圏 {name} の鍵（鍵 ID {key_id}）を導入しました。ゲートウェイには鍵 ID だけを設定してください。")


@federation_app.command("enrol-agent")
def enrol_agent(home: HomeOption, agent_public: AgentPublicOption,
                out: OutFolderOption = Path("."),
                passphrase_stdin: StdinOption = False) -> None:
    """（自治体の鍵管理者）連携圏の鍵をマイナンバー利用事務系エージェント宛てに暗号化して書きます。"""
    from keys import enrolment
    from keys import federation as f

    path = f.enrol_agent(home, _Passphrases(passphrase_stdin).ask("運用者のパスフレーズ"), enrolment.read_agent_public(agent_public), out)
    typer.echo(f"エージェント用の配布ファイル: {path}")


@federation_app.command("agent-install")
def agent_install(home: HomeOption, file: Annotated[Path, typer.Option("--file", help="鍵管理者から届いた配布ファイル")],
                  passphrase_stdin: StdinOption = False, kdf_memory_kib: KdfOption = 65536) -> None:
    """（エージェント）連携圏の鍵を導入します。以後、転入・転出のあるこどもの連携圏用の符号も提出します。"""
    from keys import federation as f

    key_id = f.install_agent(home, file, _Passphrases(passphrase_stdin).ask("エージェントのパスフレーズ"), _params(kdf_memory_kib))
    typer.echo(f"連携圏の鍵（鍵 ID {key_id}）を導入しました。")


# ---- a gateway's federation settings and peers ----------------------------------------------------------


@federation_app.command("init")
def init(home: HomeOption,
         code: Annotated[str, typer.Option("--code", help="この自治体の団体コード（6 桁）")],
         name: Annotated[str, typer.Option("--name", help="自治体名")],
         contact: Annotated[str, typer.Option("--contact", help="照会の連絡先（部署名・電話）")],
         federation_key_id: Annotated[str, typer.Option("--federation-key-id", help="連携圏の鍵 ID（鍵そのものは置きません）")],
         purpose: Annotated[str, typer.Option("--purpose", help="連携の利用目的（ポリシーの purposes の名前）")],
         share: Annotated[Optional[list[str]], typer.Option("--share", help="引継ぎで提供してよい属性（繰り返し可）")] = None) -> None:
    """ゲートウェイの連携圏の設定（federation.toml）と署名鍵を作ります。"""
    from gateway.federation import config as c

    gw = _gateway(home)
    try:
        gw.policy.purpose(purpose)
    except Exception as exc:  # noqa: BLE001 - the policy's own message
        raise CommandError(f"利用目的「{purpose}」がポリシーにありません（{exc}）。") from None
    if c.config_path(home).exists():
        raise CommandError(f"{c.config_path(home)} はすでにあります。変えるときはこのファイルを編集してください。")
    try:
        settings = c.FederationConfig(code=code, name=name, contact=contact, federation_key_id=federation_key_id, purpose=purpose,
                                      shareable_attributes=share or [])
    except ValueError as exc:
        raise CommandError(f"設定に誤りがあります: {exc}") from None
    c.save(home, settings)
    signer = c.signer(home, code)
    c.audit(gw, _cli_user().username, "admin", "federation.init", "ok", target=code, purpose=purpose)
    typer.echo(f"連携圏の設定を書きました: {c.config_path(home)}")
    typer.echo(f"このゲートウェイの連携用検証鍵: {signer.verifier.vkey()}")


@federation_app.command("identity")
def identity(home: HomeOption, out: OutFileOption,
             url: Annotated[str, typer.Option("--url", help="連携先から見たこのゲートウェイの URL")] = "") -> None:
    """連携先に渡す、このゲートウェイの識別ファイル（団体コード・名前・URL・検証鍵）を書きます。"""
    from gateway.federation import config as c

    settings = run(c.load, home)
    doc = {"format": "tsunagu/federation-gateway", "version": 1, "code": settings.code, "name": settings.name, "url": url,
           "vkey": c.signer(home, settings.code).verifier.vkey()}
    out.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    typer.echo(f"識別ファイル: {out}（秘密の情報は含みません）")


@peer_app.command("add")
def peer_add(home: HomeOption, code: Annotated[str, typer.Option("--code", help="連携先の団体コード")],
             identity_file: Annotated[Path, typer.Option("--identity", help="連携先の識別ファイル")],
             url: Annotated[Optional[str], typer.Option("--url", help="連携先の URL（省略: 識別ファイルの URL。持ち出しファイルだけなら空）")] = None,
             ca_file: Annotated[Optional[Path], typer.Option("--ca-file", help="連携先の TLS 証明書またはその発行元（PEM）。省略時はシステムの信頼ストア")] = None) -> None:
    """連携先ゲートウェイを登録します（その検証鍵を固定します）。"""
    from gateway.federation import config as c

    settings = run(c.load, home)
    try:
        doc = json.loads(identity_file.read_text(encoding="utf-8"))
        if doc.get("format") != "tsunagu/federation-gateway":
            raise ValueError
    except (OSError, ValueError):
        raise CommandError(f"{identity_file} は連携先ゲートウェイの識別ファイルではありません。") from None
    if ca_file is not None and not ca_file.is_file():
        raise CommandError(f"証明書ファイル {ca_file} がありません。")
    if doc.get("code") != code:
        raise CommandError(f"識別ファイルの団体コード {doc.get('code')} が --code {code} と違います。")
    try:
        peer = c.Peer(code=code, name=str(doc.get("name", "")), url=url if url is not None else str(doc.get("url", "")),
                      vkey=str(doc.get("vkey")), ca_file=str(ca_file.resolve()) if ca_file else "")
    except ValueError as exc:
        raise CommandError(f"識別ファイルに誤りがあります: {exc}") from None
    settings.peers = [p for p in settings.peers if p.code != code] + [peer]
    c.save(home, settings)
    c.audit(_gateway(home), _cli_user().username, "admin", "federation.peer.add", "ok", target=code)
    typer.echo(f"連携先 {code}（{peer.name}）を登録しました。")


@federation_app.command("ingest")
def ingest(home: HomeOption, file: Annotated[Path, typer.Argument(help="エージェントの連携圏用の提出ファイル")]) -> None:
    """マイナンバー利用事務系エージェントの連携圏用の提出ファイルを取り込みます。"""
    from gateway.federation import ingest as i

    result = run(i.ingest, _gateway(home), file.read_bytes(), "import")
    if result["status"] == "duplicate":
        typer.echo(f"受付済みでした（同じ提出の再送）: {result['records']} 件（連番 {result['sequence']}）。二重には取り込みません。")
        return
    typer.echo(f"受け付けました: {result['records']} 件（連番 {result['sequence']}）")


# ---- bundles: the same exchanges as carried files ------------------------------------------------------


@federation_app.command("export-query")
def export_query(home: HomeOption, peer: Annotated[str, typer.Option("--peer", help="照会先の団体コード")],
                 out: OutFileOption) -> None:
    """連携先から転入したこどもの照会を、署名付きファイルに書きます（可搬媒体で運ぶとき）。"""
    from gateway.federation import service

    exchange, data = run(service.start_query, _gateway(home), _cli_user(), peer, None, bundle=True)
    out.write_bytes(data)
    typer.echo(f"照会 {exchange} を {out} に書きました。")


@federation_app.command("import-query")
def import_query(home: HomeOption, file: Annotated[Path, typer.Option("--file", help="届いた照会ファイル")],
                 out: Annotated[Optional[Path], typer.Option("--out", help="回答ファイルもすぐ書くとき")] = None) -> None:
    """連携先の照会ファイルを検証して照合し、回答を用意します。"""
    from gateway.federation import service

    gw = _gateway(home)
    answer = run(service.answer_query, gw, file.read_bytes(), "import", bundle=True)
    exchange = _latest_in(gw)
    if out is not None:
        out.write_bytes(answer)
    typer.echo(f"照会に回答しました（回答 {exchange}）。" + (f" 回答ファイル: {out}" if out else " export-answer で書き出してください。"))


def _latest_in(gw: Any) -> str:
    from sqlalchemy import select

    from gateway import models

    x = models.federation_exchanges
    with gw.engine.connect() as conn:
        return conn.execute(select(x.c.id).where(x.c.direction == "in").order_by(x.c.created_at.desc()).limit(1)).scalar_one()


@federation_app.command("export-answer")
def export_answer(home: HomeOption, exchange: Annotated[str, typer.Option("--exchange", help="回答の番号（import-query が表示）")],
                  out: OutFileOption) -> None:
    """連携先の照会への署名付き回答をファイルに書きます。"""
    from gateway.federation import service

    out.write_bytes(run(service.stored_answer, _gateway(home), exchange))
    typer.echo(f"回答を {out} に書きました。")


@federation_app.command("import-answer")
def import_answer(home: HomeOption, file: AnswerFileOption) -> None:
    """連携先からの回答ファイルを検証して取り込み、結果を表示します。"""
    from gateway.federation import service

    gw = _gateway(home)
    exchange = run(service.accept_answer, gw, file.read_bytes(), "import")
    result = service.results(gw, exchange)
    matches = [i for i in result["items"] if i["match"]]
    typer.echo(f"照会 {exchange}: {len(result['items'])} 件中 {len(matches)} 件が一致しました。")
    for item in matches:
        typer.echo(f"  記録 {item['token']}: 類似度 {item['band']}  ハンドル {item['handle']}  連絡先 {item['contact']}")


@federation_app.command("export-handover")
def export_handover(home: HomeOption, username: Annotated[str, typer.Option("--username", help="依頼する担当者（ゲートウェイの利用者名）")],
                    handle: Annotated[str, typer.Option("--handle", help="照会の回答にあったハンドル")],
                    case_ref: Annotated[str, typer.Option("--case-ref", help="こちらの案件番号")],
                    message_file: Annotated[Path, typer.Option("--message-file", help="依頼の内容を書いたテキストファイル（UTF-8）")],
                    out: OutFileOption) -> None:
    """引継ぎの依頼を署名付きファイルに書きます（依頼の内容は画面やコマンドラインに出さないようファイルで渡します）。"""
    from gateway.federation import service

    gw = _gateway(home)
    rid, peer, data = run(service.request_handover, gw, _staff(gw, username), handle, case_ref, _text_file(message_file), bundle=True)
    out.write_bytes(data)
    typer.echo(f"引継ぎの依頼 {rid}（自治体 {peer} 宛て）を {out} に書きました。")


@federation_app.command("import-handover")
def import_handover(home: HomeOption, file: Annotated[Path, typer.Option("--file", help="届いた引継ぎ依頼のファイル")]) -> None:
    """連携先からの引継ぎ依頼ファイルを検証して受け付けます。"""
    result = _receive(home, "receive_handover", file)
    typer.echo(f"引継ぎの依頼 {result['id']} を受け付けました。担当者が回答してください（answer-handover）。")


@federation_app.command("answer-handover")
def answer_handover(home: HomeOption, username: Annotated[str, typer.Option("--username", help="回答する担当者（ゲートウェイの利用者名）")],
                    handover_id: Annotated[str, typer.Option("--id", help="引継ぎ依頼の番号")],
                    message_file: Annotated[Path, typer.Option("--message-file", help="回答を書いたテキストファイル（UTF-8）")],
                    out: OutFileOption,
                    share: Annotated[Optional[list[str]], typer.Option("--share", help="提供する属性（繰り返し可）")] = None) -> None:
    """引継ぎ依頼への回答を署名付きファイルに書きます。"""
    from gateway.federation import service

    gw = _gateway(home)
    peer, data = run(service.answer_handover, gw, _staff(gw, username), handover_id, _text_file(message_file), share or [], bundle=True)
    out.write_bytes(data)
    typer.echo(f"回答（自治体 {peer} 宛て）を {out} に書きました。")


@federation_app.command("import-handover-answer")
def import_handover_answer(home: HomeOption, file: AnswerFileOption) -> None:
    """連携先からの引継ぎの回答ファイルを検証して取り込みます。"""
    result = _receive(home, "receive_handover_answer", file)
    typer.echo(f"引継ぎの依頼 {result['id']} への回答を受け取りました。")


def _receive(home: Path, receiver: str, file: Path) -> dict[str, Any]:
    """Verify and take in a peer's message carried as ``file``: ``gateway.federation.service.<receiver>`` on the ``import`` channel."""
    from gateway.federation import service

    return run(getattr(service, receiver), _gateway(home), file.read_bytes(), "import")
