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
from tsunagu.errors import CommandError

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
