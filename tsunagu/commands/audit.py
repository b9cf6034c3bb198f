"""`tsunagu audit …`: export the audit log, verify an export offline (trusted log key and witness keys), check a single proof, run a witness."""

from __future__ import annotations

import base64
import binascii
import functools
import inspect
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from keys import audit
from transparency import rfc9162 as merkle
from transparency import tlog_witness as _witness
from keys.documents import write_atomic
from keys.keyring import Keyring
from service.audit_store import keyring_log
from service.witness_client import http_post
from tsunagu.commands.common import OutLinesOption, PortOption, read_text_file, refused_as_error
from tsunagu.errors import CommandError, jst

audit_app = typer.Typer(help="監査ログの書き出しと検証（監査担当者向け）", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the `audit` command group to the root app."""
    app.add_typer(audit_app, name="audit")


@audit_app.command("export")
def export(
    home: Annotated[Path, typer.Option("--home", envvar="TSUNAGU_HOME", help="配置先のデータフォルダ")],
    out: OutLinesOption,
) -> None:
    """監査ログの全記録・署名付きチェックポイント・公開鍵を書き出します。"""
    ring = Keyring(home)
    store = keyring_log(ring, None)
    lines = store.export(ring.checkpoint_vkey)
    write_atomic(out, ("\n".join(lines) + "\n").encode("utf-8"), mode=0o644)
    typer.echo(f"{json.loads(lines[0])['size']} 件の記録を {out} に書き出しました。")
    typer.echo(f"検証鍵: {ring.checkpoint_vkey}")


@audit_app.command("verify")
def verify(
    file: Annotated[Path, typer.Argument(help="tsunagu audit export の書き出しファイル")],
    public_key: Annotated[Optional[Path], typer.Option("--public-key", help="信頼するログの検証鍵を書いたファイル（必須）")] = None,
    witness_key: Annotated[Optional[list[Path]], typer.Option("--witness-key", help="信頼する証人の検証鍵のファイル（必須、複数可）")] = None,
    witness_quorum: Annotated[int, typer.Option("--witness-quorum", min=1, help="連署が必要な証人の数")] = 1,
    previous_checkpoint: Annotated[Optional[Path], typer.Option("--previous-checkpoint", help="以前に保存したチェックポイント（tsunagu audit witness latest の出力も可）")] = None,
    witness_url: Annotated[Optional[str], typer.Option("--witness-url", help="証人に最新の連署済みチェックポイントを問い合わせ、切り詰めを確かめます（例: http://127.0.0.1:8471/api/v1/witness）")] = None,
    save_checkpoint: Annotated[Optional[Path], typer.Option("--save-checkpoint", help="検証できた最新のチェックポイントの保存先")] = None,
) -> None:
    """書き出しファイルを、信頼するログの鍵と証人の鍵で検証します。改ざん・書き換え・分岐があれば理由と位置を示し、終了コード 1 で終わります。"""
    if public_key is None:
        raise CommandError("--public-key でログの検証鍵のファイルを指定してください。書き出しファイルに書かれた鍵は信頼できません"
                           "（運用者が書き換えて自分の鍵で署名し直せるため）。鍵は設置時に受け取ったもの（例: audit-verifier.txt）を使います。")
    if not witness_key:
        raise CommandError("--witness-key で証人の検証鍵のファイルを指定してください（1 つ以上）。証人の連署がないと、"
                           "運用者がログの鍵で署名し直した履歴の書き換えを見抜けません。鍵は各証人の witness-verifier.txt です。")
    text = read_text_file(file)
    pinned = read_text_file(public_key).strip()
    witnesses = [read_text_file(k).strip() for k in witness_key]
    previous = read_text_file(previous_checkpoint) if previous_checkpoint else None
    if witness_url:
        if previous is not None:
            raise CommandError("--previous-checkpoint と --witness-url はどちらか一方を指定してください（証人の最新のものは以前のものより新しいはずです）。")
        previous = _witness_latest(witness_url, text, witnesses)
    try:
        report = audit.verify_export(audit.split_export(text), pinned, previous, witness_vkeys=witnesses, quorum=witness_quorum)
    except audit.AuditVerificationError as exc:
        where = f"（位置 {exc.position}）" if exc.position is not None else ""
        typer.echo(f"検証失敗{where}: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"検証成功: {report.size} 件、署名付きチェックポイント {report.checkpoints} 個、根ハッシュ {base64.b64encode(report.root).decode()}")
    for c in report.cosignatures:
        when = datetime.fromtimestamp(c.timestamp, timezone(timedelta(hours=9))).strftime("%Y-%m-%d %H:%M:%S JST")
        typer.echo(f"証人 {c.witness} が {report.witnessed_size} 件のチェックポイントに連署しています（{when}）。")
    if report.previous_size is not None:
        typer.echo(f"以前のチェックポイント（{report.previous_size} 件）は現在のログの先頭部分です（一貫性証明を確認）。")
    if save_checkpoint:
        latest = [item["note"] for item in map(json.loads, filter(str.strip, audit.split_export(text))) if item.get("type") == "checkpoint"]
        write_atomic(save_checkpoint, latest[-1].encode("utf-8"), mode=0o644)
        typer.echo(f"最新のチェックポイントを {save_checkpoint} に保存しました。次回 --previous-checkpoint に指定してください。")


def _witness_latest(url: str, text: str, witnesses: list[str]) -> str:
    """The latest checkpoint the witness at ``url`` cosigned for the export's log, its cosignature checked against a trusted key."""
    import httpx

    try:
        origin = json.loads(audit.split_export(text)[0])["origin"]
        r = httpx.get(f"{url.rstrip('/')}/latest", params={"origin": origin}, timeout=30)
    except (ValueError, KeyError, TypeError) as exc:
        raise CommandError("書き出しファイルの 1 行目（見出し）が読めません。") from exc
    except httpx.HTTPError as exc:
        raise CommandError(f"証人 {url} に接続できません: {type(exc).__name__}") from exc
    if r.status_code != 200:
        raise CommandError(f"証人 {url} から最新のチェックポイントを得られません（{r.status_code}）: {r.text.strip()[:200]}")
    try:
        if not any(_witness.CosignerKey.from_vkey(w).verify(r.text) for w in witnesses):
            raise CommandError(f"{url} の応答には、信頼する証人の連署がありません。")
    except _witness.WitnessError as exc:
        raise CommandError(f"{url} の応答の連署を確認できません: {exc}") from exc
    return r.text


@audit_app.command("verify-proof")
def verify_proof(file: Annotated[Path, typer.Argument(help="包含証明または一貫性証明の JSON")]) -> None:
    """包含証明・一貫性証明を 1 件検証します（成功 0、失敗 1）。"""
    try:
        case = json.loads(read_text_file(file))
        if not isinstance(case, dict):
            raise ValueError
        if "leafIdx" in case:
            merkle.verify_inclusion(_b64(case["leafHash"]), int(case["leafIdx"]), int(case["treeSize"]),
                                    [_b64(p) for p in case.get("proof") or []], _b64(case["root"]))
            kind = "包含証明"
        elif "size1" in case:
            merkle.verify_consistency(int(case["size1"]), int(case["size2"]), _b64(case["root1"]), _b64(case["root2"]),
                                      [_b64(p) for p in case.get("proof") or []])
            kind = "一貫性証明"
        else:
            raise ValueError
    except merkle.ProofError as exc:
        typer.echo(f"無効: {exc}", err=True)
        raise typer.Exit(1) from exc
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        typer.echo(f"無効: {file} は包含証明（leafIdx…）または一貫性証明（size1…）の JSON ではありません。", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"有効: {kind}を確認しました。")


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value or "", validate=True)


def _load_exports(gateway_export: Optional[Path], escrow_export: Optional[Path], gateway: Optional[str], escrow: Optional[str],
                  username: Optional[str], password_stdin: bool, gateway_key: Optional[Path], escrow_key: Optional[Path],
                  gateway_witness: Optional[list[Path]] = None, escrow_witness: Optional[list[Path]] = None) -> tuple[list, list]:
    """Both logs' entries, each export verified first (with the pinned verifier key if given)."""
    from keys.audit_report import ReportInputError, read_entries

    texts: dict[str, str] = {}
    for name, path in (("ゲートウェイ", gateway_export), ("エスクロー", escrow_export)):
        if path is not None:
            texts[name] = read_text_file(path)
    urls = {name: url for name, url in (("ゲートウェイ", gateway), ("エスクロー", escrow)) if url}
    if urls:
        from tsunagu.commands.common import read_secret, signed_in

        if not username:
            raise CommandError("--gateway / --escrow で取得するときは --username（監査担当の利用者名）を指定してください。")
        for name, url in urls.items():
            with signed_in(url, name, username, read_secret(f"{name}の利用者 {username} のパスワード", password_stdin)) as client:
                response = client.get("/api/v1/audit/export")
                if not response.is_success:
                    raise CommandError(f"{name}: {response.json().get('detail', response.status_code)}")
                texts[name] = response.text
    if "ゲートウェイ" not in texts or "エスクロー" not in texts:
        raise CommandError("ゲートウェイとエスクローの両方の監査ログを指定してください（--gateway-export と --escrow-export、または --gateway と --escrow）。")
    entries = []
    for name, key, witnesses in (("ゲートウェイ", gateway_key, gateway_witness), ("エスクロー", escrow_key, escrow_witness)):
        lines = audit.split_export(texts[name])
        try:
            audit.verify_export(lines, read_text_file(key).strip() if key else None,
                                witness_vkeys=[read_text_file(w).strip() for w in witnesses] if witnesses else None)
            entries.append(read_entries(lines))
        except audit.AuditVerificationError as exc:
            where = f"（位置 {exc.position}）" if exc.position is not None else ""
            raise CommandError(f"{name}の監査ログを検証できません{where}: {exc}") from None
        except ReportInputError as exc:
            raise CommandError(f"{name}の監査ログ: {exc}") from None
        if key is None:
            typer.echo(f"注意: {name}の検証鍵は書き出しファイルのものを使いました（--{'gateway' if name == 'ゲートウェイ' else 'escrow'}-key で指定できます）。", err=True)
    return entries[0], entries[1]


#: The options that name both logs, in the order the commands show them: a file or a service each, keys, witnesses.
_LOG_OPTIONS: tuple[tuple[str, object], ...] = (
    ("gateway_export", Annotated[Optional[Path], typer.Option("--gateway-export", help="ゲートウェイの監査ログの書き出し（tsunagu gateway audit-export）")]),
    ("escrow_export", Annotated[Optional[Path], typer.Option("--escrow-export", help="エスクローの監査ログの書き出し（GET /api/v1/audit/export）")]),
    ("gateway", Annotated[Optional[str], typer.Option("--gateway", help="書き出しの代わりにゲートウェイから取得（監査担当でログイン）")]),
    ("escrow", Annotated[Optional[str], typer.Option("--escrow", help="書き出しの代わりにエスクローから取得（監査担当でログイン）")]),
    ("username", Annotated[Optional[str], typer.Option("--username", help="監査担当の利用者名（--gateway / --escrow のとき）")]),
    ("password_stdin", Annotated[bool, typer.Option("--password-stdin", help="パスワードを標準入力から 1 行ずつ読みます（ゲートウェイ、エスクローの順）")]),
    ("gateway_key", Annotated[Optional[Path], typer.Option("--gateway-key", help="ゲートウェイの監査ログの検証鍵を書いたファイル")]),
    ("escrow_key", Annotated[Optional[Path], typer.Option("--escrow-key", help="エスクローの監査ログの検証鍵を書いたファイル")]),
    ("gateway_witness", Annotated[Optional[list[Path]], typer.Option("--gateway-witness-key", help="ゲートウェイのログに連署する証人の検証鍵（複数可）")]),
    ("escrow_witness", Annotated[Optional[list[Path]], typer.Option("--escrow-witness-key", help="エスクローのログに連署する証人の検証鍵（複数可）")]),
)


def reads_both_logs(command: Callable[..., None]) -> Callable[..., None]:
    """``command`` (which takes ``rows``: every request, from both logs verified) with the options of :data:`_LOG_OPTIONS`
    declared once for every such command, in front of its own; the logs are read by :func:`_load_exports`."""
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "rows"]
    names = [name for name, _ in _LOG_OPTIONS]

    @functools.wraps(command)
    def with_logs(**given: Any) -> None:
        from keys.audit_report import requests_report

        logs = {name: given.pop(name) for name in names}
        command(rows=requests_report(*_load_exports(**logs)), **given)

    del with_logs.__wrapped__  # typer reads the signature below, not the command's
    with_logs.__annotations__ = {}
    with_logs.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                           default=False if name == "password_stdin" else None) for name, annotation in _LOG_OPTIONS]
        + [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own], return_annotation=None)
    return with_logs


JsonOption = Annotated[bool, typer.Option("--json", help="JSON で出力します")]


@audit_app.command("requests")
@reads_both_logs
def requests(rows: list[Any], as_json: JsonOption = False) -> None:
    """すべての再識別申請を、だれが・いつ・なぜ（目的・法的根拠・案件番号）・承認・結果とともに一覧にします（両方のログを照合）。"""
    from keys.audit_report import OUTCOMES, counts

    if as_json:
        typer.echo(json.dumps([r.to_json() for r in rows], ensure_ascii=False, indent=1))
        return
    for r in rows:
        approvers = "、".join(a["approver"] for a in r.approvals) or "なし"
        typer.echo(f"{r.request_id}  {jst(r.requested_at)}  申請者 {r.requester or '不明'}  目的 {r.purpose}（{r.legal_basis}）"
                   f"  案件 {r.case_ref or '（なし）'}  承認 {approvers}  結果 {OUTCOMES.get(r.outcome, r.outcome)}")
        for refusal in r.refusals:
            typer.echo(f"    拒否 {jst(refusal['time'])} {refusal['actor']} {refusal['action']}: {refusal['outcome']}")
    summary = "、".join(f"{OUTCOMES.get(k, k)} {v} 件" for k, v in sorted(counts(rows).items()))
    typer.echo(f"申請 {len(rows)} 件（{summary or 'なし'}）。両方の監査ログの署名を検証済みです。")


@audit_app.command("anomalies")
@reads_both_logs
def anomalies(
    rows: list[Any],
    office_start: Annotated[str, typer.Option("--office-start", help="勤務開始（JST、HH:MM）")] = "08:30",
    office_end: Annotated[str, typer.Option("--office-end", help="勤務終了（JST、HH:MM）")] = "18:15",
    max_requests: Annotated[int, typer.Option("--max-requests", min=1, help="1 人がこの件数を超えて申請したら指摘")] = 5,
    window_days: Annotated[int, typer.Option("--window-days", min=1, help="--max-requests を数える期間（日）")] = 7,
    pair_repeats: Annotated[int, typer.Option("--pair-repeats", min=2, help="同じ申請者と承認者の組がこの回数以上なら指摘")] = 3,
    as_json: JsonOption = False,
) -> None:
    """注意が必要な申請を示します: 案件番号なし、1 人の多数申請、勤務時間外、同じ申請者・承認者の組の繰り返し。見つかれば終了コード 1。"""
    from datetime import time as _time

    from keys.audit_report import AnomalyRules
    from keys.audit_report import anomalies as _anomalies

    try:
        start, end = _time.fromisoformat(office_start), _time.fromisoformat(office_end)
    except ValueError:
        raise CommandError("--office-start と --office-end は HH:MM で指定してください（例: 08:30）。") from None
    found = _anomalies(rows, AnomalyRules(start, end, max_requests, window_days, pair_repeats))
    if as_json:
        typer.echo(json.dumps([a.to_json() for a in found], ensure_ascii=False, indent=1))
    else:
        for a in found:
            typer.echo(f"[{a.kind}] {a.actor or '不明'}: {a.reason}（申請 {', '.join(a.request_ids)}）")
        typer.echo(f"申請 {len(rows)} 件を調べ、注意点 {len(found)} 件。")
    if found:
        raise typer.Exit(1)


witness_app = typer.Typer(help="監査ログの証人（C2SP tlog-witness）: 運用者から独立して、ログのチェックポイントに連署します", no_args_is_help=True)
audit_app.add_typer(witness_app, name="witness")
WitnessHome = Annotated[Path, typer.Option("--home", help="証人の状態を置くフォルダ（<home>/witness/）。ゲートウェイ・エスクローのデータフォルダも可")]


def _open_witness(home: Path) -> _witness.Witness:
    with refused_as_error(_witness.WitnessError):
        return _witness.Witness.open(home / "witness")


@witness_app.command("init")
def witness_init(home: WitnessHome, name: Annotated[str, typer.Option("--name", help="証人の名前（例: kansa.example.jp/witness）")]) -> None:
    """証人の鍵（Ed25519）を作り、<home>/witness/ に置きます。表示される検証鍵を、ログを検証する人に渡してください。"""
    with refused_as_error(_witness.WitnessError):
        w = _witness.Witness.init(home / "witness", name)
    typer.echo(f"証人 {w.name} を {home / 'witness'} に作りました。")
    typer.echo(f"証人の検証鍵: {w.vkey}")


@witness_app.command("trust")
def witness_trust(
    home: WitnessHome,
    origin: Annotated[str, typer.Option("--origin", help="証明するログの origin（例: tsunagu.gateway/131016）")],
    log_key: Annotated[Path, typer.Option("--log-key", help="そのログの検証鍵のファイル（この鍵の署名があるチェックポイントだけに連署します）")],
) -> None:
    """証人が連署するログを登録します。"""
    w = _open_witness(home)
    with refused_as_error(_witness.WitnessError):
        w.trust(origin, read_text_file(log_key).strip())
    typer.echo(f"証人 {w.name} はログ {origin} のチェックポイントに連署します（一貫性を確認したうえで）。")


@witness_app.command("use")
def witness_use(
    home: Annotated[Path, typer.Option("--home", help="ログを持つゲートウェイ・エスクローのデータフォルダ")],
    url: Annotated[str, typer.Option("--url", help="証人の add-checkpoint の URL の前半（例: http://127.0.0.1:8470/api/v1/witness）")],
    witness_key: Annotated[Path, typer.Option("--witness-key", help="証人の検証鍵のファイル")],
) -> None:
    """このデータフォルダのログが、チェックポイントをこの証人に送って連署を受けるようにします。"""
    with refused_as_error(_witness.WitnessError):
        peer = _witness.add_peer(home / "witness", url, read_text_file(witness_key).strip())
    typer.echo(f"{home} の監査ログは証人 {peer.key.name}（{peer.url}）に連署を求めます。")


@witness_app.command("sync")
def witness_sync(home: Annotated[Path, typer.Option("--home", help="ゲートウェイまたはエスクローのデータフォルダ")]) -> None:
    """ログの最新のチェックポイントを、今すぐ各証人に送って連署を受けます（失敗した証人があれば終了コード 1）。"""
    if (home / "escrow.toml").exists():
        from escrow.service import Escrow

        service = Escrow.open(home)
    else:
        from gateway.core import Gateway

        service = Gateway.open(home)
    try:
        results = _witness.submit_all(service.audit, service.witness_folder, http_post())
    finally:
        service.close()
    if not results:
        raise CommandError(f"{home} には証人が設定されていません（tsunagu audit witness use で設定します）。")
    for name, result in results.items():
        typer.echo(f"証人 {name}: {'連署を得ました（' + result.split()[1] + ' 件）' if result.startswith('cosigned') else result}")
    if any(not r.startswith("cosigned") for r in results.values()):
        raise typer.Exit(1)


@witness_app.command("cosign")
def witness_cosign(
    home: WitnessHome,
    file: Annotated[Path, typer.Argument(help="連署する書き出しファイル（tsunagu audit export など）")],
    out: Annotated[Optional[Path], typer.Option("--out", help="連署を加えた書き出しの保存先（既定: 元のファイルを置き換え）")] = None,
) -> None:
    """書き出しファイルを手元で検証し、前回連署した状態から一貫していれば最新のチェックポイントに連署します（監査担当者の証人）。"""
    w = _open_witness(home)
    try:
        lines = w.cosign_export(audit.split_export(read_text_file(file).rstrip("\n")))
    except (_witness.WitnessError, audit.AuditVerificationError) as exc:
        typer.echo(f"連署しません: {exc}", err=True)
        raise typer.Exit(1) from exc
    target = out or file
    write_atomic(target, ("\n".join(lines) + "\n").encode("utf-8"), mode=0o644)
    typer.echo(f"証人 {w.name} が連署し、{target} に保存しました。")


@witness_app.command("serve")
def witness_serve(
    home: WitnessHome,
    host: Annotated[str, typer.Option("--host", help="待ち受けるアドレス")] = "127.0.0.1",
    port: PortOption = 8470,
) -> None:
    """証人を HTTP サービスとして動かします（POST /witness/add-checkpoint、C2SP tlog-witness）。"""
    import uvicorn

    from service.witness_http import witness_app

    w = _open_witness(home)
    app = witness_app(home / "witness")
    typer.echo(f"証人 {w.name} が http://{host}:{port}/witness/add-checkpoint で待ち受けます。", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


@witness_app.command("latest")
def witness_latest(
    home: WitnessHome,
    origin: Annotated[str, typer.Option("--origin", help="ログの origin")],
    out: Annotated[Path, typer.Option("--out", help="保存先（tsunagu audit verify --previous-checkpoint に指定できます）")],
) -> None:
    """証人が最後に連署したチェックポイントを保存します。これより短い書き出しは切り詰められています。"""
    note = _open_witness(home).latest_note(origin)
    if note is None:
        raise CommandError(f"証人はログ {origin} にまだ連署していません。")
    write_atomic(out, note.encode("utf-8"), mode=0o644)
    typer.echo(f"証人が最後に連署したチェックポイント（{note.split(chr(10))[1]} 件）を {out} に保存しました。")


@witness_app.command("show")
def witness_show(home: WitnessHome) -> None:
    """証人の名前・検証鍵・連署するログと、各ログで最後に連署した大きさを表示します。"""
    w = _open_witness(home)
    typer.echo(f"証人 {w.name}")
    typer.echo(f"証人の検証鍵: {w.vkey}")
    for origin in sorted(w.logs):
        latest = w.latest(origin)
        typer.echo(f"  {origin}: {'連署済み ' + str(latest[0]) + ' 件' if latest else 'まだ連署していません'}")
