"""`tsunagu audit …`: export the audit log, verify an export offline, check a single proof."""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from keys import audit, merkle
from keys._files import write_atomic
from keys.keyring import Keyring
from tsunagu.errors import CommandError, jst

audit_app = typer.Typer(help="監査ログの書き出しと検証（監査担当者向け）", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the `audit` command group to the root app."""
    app.add_typer(audit_app, name="audit")


@audit_app.command("export")
def export(
    home: Annotated[Path, typer.Option("--home", envvar="TSUNAGU_HOME", help="配置先のデータフォルダ")],
    out: Annotated[Path, typer.Option("--out", help="書き出し先（JSON Lines）")],
) -> None:
    """監査ログの全記録・署名付きチェックポイント・公開鍵を書き出します。"""
    ring = Keyring(home)
    store = ring.audit_store(None)
    size = store.size()
    lines = audit.export_lines(store.origin, ring.checkpoint_vkey, store.entries(), store.checkpoints(), size)
    write_atomic(out, ("\n".join(lines) + "\n").encode("utf-8"), mode=0o644)
    typer.echo(f"{size} 件の記録を {out} に書き出しました。")
    typer.echo(f"検証鍵: {ring.checkpoint_vkey}")


@audit_app.command("verify")
def verify(
    file: Annotated[Path, typer.Argument(help="tsunagu audit export の書き出しファイル")],
    previous_checkpoint: Annotated[Optional[Path], typer.Option("--previous-checkpoint", help="以前に保存したチェックポイント")] = None,
    public_key: Annotated[Optional[Path], typer.Option("--public-key", help="信頼する検証鍵を書いたファイル")] = None,
    save_checkpoint: Annotated[Optional[Path], typer.Option("--save-checkpoint", help="検証できた最新のチェックポイントの保存先")] = None,
) -> None:
    """書き出しファイルを検証します。改ざんがあれば最初の不正な位置を示し、終了コード 1 で終わります。"""
    text = _read(file)
    pinned = _read(public_key).strip() if public_key else None
    previous = _read(previous_checkpoint) if previous_checkpoint else None
    try:
        report = audit.verify_export(text.splitlines(), pinned, previous)
    except audit.AuditVerificationError as exc:
        where = f"（位置 {exc.position}）" if exc.position is not None else ""
        typer.echo(f"検証失敗{where}: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"検証成功: {report.size} 件、署名付きチェックポイント {report.checkpoints} 個、根ハッシュ {base64.b64encode(report.root).decode()}")
    if report.previous_size is not None:
        typer.echo(f"以前のチェックポイント（{report.previous_size} 件）は現在のログの先頭部分です（一貫性証明を確認）。")
    if not pinned:
        typer.echo("注意: 公開鍵は書き出しファイルのものを使いました。--public-key で信頼できる鍵を指定してください。")
    if save_checkpoint:
        latest = [json.loads(line)["note"] for line in text.splitlines() if line.strip() and json.loads(line).get("type") == "checkpoint"]
        write_atomic(save_checkpoint, latest[-1].encode("utf-8"), mode=0o644)
        typer.echo(f"最新のチェックポイントを {save_checkpoint} に保存しました。次回 --previous-checkpoint に指定してください。")


@audit_app.command("verify-proof")
def verify_proof(file: Annotated[Path, typer.Argument(help="包含証明または一貫性証明の JSON")]) -> None:
    """包含証明・一貫性証明を 1 件検証します（成功 0、失敗 1）。"""
    try:
        case = json.loads(_read(file))
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


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise CommandError(f"ファイル {path} がありません。") from exc
    except UnicodeDecodeError as exc:
        raise CommandError(f"{path} を UTF-8 のテキストとして読めません。") from exc


def _load_exports(gateway_export: Optional[Path], escrow_export: Optional[Path], gateway: Optional[str], escrow: Optional[str],
                  username: Optional[str], password_stdin: bool, gateway_key: Optional[Path], escrow_key: Optional[Path]) -> tuple[list, list]:
    """Both logs' entries, each export verified first (with the pinned verifier key if given)."""
    from keys.audit_report import ReportInputError, read_entries

    texts: dict[str, str] = {}
    for name, path in (("ゲートウェイ", gateway_export), ("エスクロー", escrow_export)):
        if path is not None:
            texts[name] = _read(path)
    urls = {name: url for name, url in (("ゲートウェイ", gateway), ("エスクロー", escrow)) if url}
    if urls:
        from tsunagu.commands.casework import _secret, signed_in

        if not username:
            raise CommandError("--gateway / --escrow で取得するときは --username（監査担当の利用者名）を指定してください。")
        for name, url in urls.items():
            with signed_in(url, name, username, _secret(f"{name}の利用者 {username} のパスワード", password_stdin)) as client:
                response = client.get("/api/v1/audit/export")
                if not response.is_success:
                    raise CommandError(f"{name}: {response.json().get('detail', response.status_code)}")
                texts[name] = response.text
    if "ゲートウェイ" not in texts or "エスクロー" not in texts:
        raise CommandError("ゲートウェイとエスクローの両方の監査ログを指定してください（--gateway-export と --escrow-export、または --gateway と --escrow）。")
    entries = []
    for name, key in (("ゲートウェイ", gateway_key), ("エスクロー", escrow_key)):
        lines = texts[name].splitlines()
        try:
            audit.verify_export(lines, _read(key).strip() if key else None)
            entries.append(read_entries(lines))
        except audit.AuditVerificationError as exc:
            where = f"（位置 {exc.position}）" if exc.position is not None else ""
            raise CommandError(f"{name}の監査ログを検証できません{where}: {exc}") from None
        except ReportInputError as exc:
            raise CommandError(f"{name}の監査ログ: {exc}") from None
        if key is None:
            typer.echo(f"注意: {name}の検証鍵は書き出しファイルのものを使いました（--{'gateway' if name == 'ゲートウェイ' else 'escrow'}-key で指定できます）。", err=True)
    return entries[0], entries[1]


GatewayExportOption = Annotated[Optional[Path], typer.Option("--gateway-export", help="ゲートウェイの監査ログの書き出し（tsunagu gateway audit-export）")]
EscrowExportOption = Annotated[Optional[Path], typer.Option("--escrow-export", help="エスクローの監査ログの書き出し（GET /api/v1/audit/export）")]
GatewayUrlOption = Annotated[Optional[str], typer.Option("--gateway", help="書き出しの代わりにゲートウェイから取得（監査担当でログイン）")]
EscrowUrlOption = Annotated[Optional[str], typer.Option("--escrow", help="書き出しの代わりにエスクローから取得（監査担当でログイン）")]
UsernameOption = Annotated[Optional[str], typer.Option("--username", help="監査担当の利用者名（--gateway / --escrow のとき）")]
PasswordStdinOption = Annotated[bool, typer.Option("--password-stdin", help="パスワードを標準入力から 1 行ずつ読みます（ゲートウェイ、エスクローの順）")]
GatewayKeyOption = Annotated[Optional[Path], typer.Option("--gateway-key", help="ゲートウェイの監査ログの検証鍵を書いたファイル")]
EscrowKeyOption = Annotated[Optional[Path], typer.Option("--escrow-key", help="エスクローの監査ログの検証鍵を書いたファイル")]
JsonOption = Annotated[bool, typer.Option("--json", help="JSON で出力します")]


@audit_app.command("requests")
def requests(
    gateway_export: GatewayExportOption = None, escrow_export: EscrowExportOption = None,
    gateway: GatewayUrlOption = None, escrow: EscrowUrlOption = None, username: UsernameOption = None,
    password_stdin: PasswordStdinOption = False, gateway_key: GatewayKeyOption = None, escrow_key: EscrowKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """すべての再識別申請を、だれが・いつ・なぜ（目的・法的根拠・案件番号）・承認・結果とともに一覧にします（両方のログを照合）。"""
    from keys.audit_report import OUTCOMES, counts, requests_report

    rows = requests_report(*_load_exports(gateway_export, escrow_export, gateway, escrow, username, password_stdin, gateway_key, escrow_key))
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
def anomalies(
    gateway_export: GatewayExportOption = None, escrow_export: EscrowExportOption = None,
    gateway: GatewayUrlOption = None, escrow: EscrowUrlOption = None, username: UsernameOption = None,
    password_stdin: PasswordStdinOption = False, gateway_key: GatewayKeyOption = None, escrow_key: EscrowKeyOption = None,
    office_start: Annotated[str, typer.Option("--office-start", help="勤務開始（JST、HH:MM）")] = "08:30",
    office_end: Annotated[str, typer.Option("--office-end", help="勤務終了（JST、HH:MM）")] = "18:15",
    max_requests: Annotated[int, typer.Option("--max-requests", min=1, help="1 人がこの件数を超えて申請したら指摘")] = 5,
    window_days: Annotated[int, typer.Option("--window-days", min=1, help="--max-requests を数える期間（日）")] = 7,
    pair_repeats: Annotated[int, typer.Option("--pair-repeats", min=2, help="同じ申請者と承認者の組がこの回数以上なら指摘")] = 3,
    as_json: JsonOption = False,
) -> None:
    """注意が必要な申請を示します: 案件番号なし、1 人の多数申請、勤務時間外、同じ申請者・承認者の組の繰り返し。見つかれば終了コード 1。"""
    from datetime import time as _time

    from keys.audit_report import AnomalyRules, requests_report
    from keys.audit_report import anomalies as _anomalies

    try:
        start, end = _time.fromisoformat(office_start), _time.fromisoformat(office_end)
    except ValueError:
        raise CommandError("--office-start と --office-end は HH:MM で指定してください（例: 08:30）。") from None
    rows = requests_report(*_load_exports(gateway_export, escrow_export, gateway, escrow, username, password_stdin, gateway_key, escrow_key))
    found = _anomalies(rows, AnomalyRules(start, end, max_requests, window_days, pair_repeats))
    if as_json:
        typer.echo(json.dumps([a.to_json() for a in found], ensure_ascii=False, indent=1))
    else:
        for a in found:
            typer.echo(f"[{a.kind}] {a.actor or '不明'}: {a.reason}（申請 {', '.join(a.request_ids)}）")
        typer.echo(f"申請 {len(rows)} 件を調べ、注意点 {len(found)} 件。")
    if found:
        raise typer.Exit(1)
