"""`tsunagu evaluate …` (the screening's evaluation report, pooled counts) and `tsunagu returns …` (the return path).

``evaluate report`` writes the report (CSV tables, PNG charts, report.json,
summary.txt) of one gateway; ``evaluate share`` sends the town's suppressed
counts to the prefecture; ``evaluate pooled`` writes the prefecture's pooled
figures. ``returns key`` prints the gateway's return-path verifier key;
``returns resolve`` runs at a department's agent and turns a signed list of
its own record tokens into a file of its own record ids.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from tsunagu.commands.common import refused_as_error
from tsunagu.errors import CommandError

evaluate_app = typer.Typer(help="抽出方法の評価（評価担当者向け）: 評価レポート・集計値の提供・都道府県での合算", no_args_is_help=True)
returns_app = typer.Typer(help="担当部署への対象者リスト（記録トークン）: 検証鍵の表示と、部署のエージェントでの照合", no_args_is_help=True)

HomeOption = Annotated[Path, typer.Option("--home", envvar="TSUNAGU_HOME", help="ゲートウェイのデータフォルダ")]
PeriodOption = Annotated[str, typer.Option("--period", help="期間の区切り: snapshot（一覧ごと）/ month / quarter / fiscal_year")]


def register(app: typer.Typer) -> None:
    """Add the `evaluate` and `returns` command groups to the root app."""
    app.add_typer(evaluate_app, name="evaluate")
    app.add_typer(returns_app, name="returns")


def _open(home: Path):  # type: ignore[no-untyped-def]
    from tsunagu.commands.gateway import _open as open_gateway

    return open_gateway(home)


def _period(value: str) -> str:
    from gateway.evaluation.data import PERIOD_KINDS

    if value not in PERIOD_KINDS:
        raise CommandError(f"--period は {', '.join(PERIOD_KINDS)} のいずれかです（指定: {value}）。")
    return value


@evaluate_app.command("report")
def report_command(home: HomeOption, out: Annotated[Path, typer.Option("--out", help="レポートを書き出すフォルダ")],
                   period: PeriodOption = "month") -> None:
    """評価レポート（ファネル・規則ごとの適合率・上限人数の曲線・データ項目と困難の関連・人による確認・リスク指数）を書き出します。"""
    from gateway.errors import GatewayError
    from gateway.evaluation import report

    gw = _open(home)
    try:
        result = report.evaluation(gw, _period(period))  # type: ignore[arg-type]
        files = report.write(result, out)
        gw.record("cli", "analyst", "evaluation.report", f"period={period} files={len(files)}")
    except (GatewayError, report.ReportError) as exc:
        raise CommandError(str(getattr(exc, "detail", exc))) from None
    finally:
        gw.close()
    typer.echo(report.summary(result))
    typer.echo(f"\nレポート: {out}（{len(files)} ファイル: CSV・PNG・report.json・summary.txt）")


@evaluate_app.command("share")
def share_command(home: HomeOption, prefecture: Annotated[str, typer.Option("--prefecture", help="都道府県のゲートウェイの自治体コード（連携先に設定済み）")],
                  period: PeriodOption = "fiscal_year", only: Annotated[Optional[str], typer.Option("--only", help="この期間だけを送る（例: 2026年度）")] = None,
                  bundle_out: Annotated[Optional[Path], typer.Option("--bundle-out", help="送れないときに持ち出しファイルを書く場所")] = None) -> None:
    """この町の集計値（5 未満は秘匿）を都道府県へ送ります。子どもの行データは送りません。"""
    from gateway.evaluation import pooled
    from gateway.identity import User

    gw = _open(home)
    try:
        with refused_as_error():
            result = pooled.share(gw, User(0, "cli", "analyst"), prefecture, _period(period), only)  # type: ignore[arg-type]
    finally:
        gw.close()
    if result["delivered"]:
        typer.echo(f"集計値を {prefecture} へ送りました（5 未満は秘匿）。")
    elif bundle_out:
        bundle_out.write_text(json.dumps(result["bundle"], ensure_ascii=False), encoding="utf-8")
        typer.echo(f"{result['reason']} 持ち出しファイル: {bundle_out}")
    else:
        raise CommandError(f"{result['reason']} --bundle-out で持ち出しファイルを書けます。")


@evaluate_app.command("receive")
def receive_command(home: HomeOption, file: Annotated[Path, typer.Argument(help="町から運ばれた集計値のファイル")]) -> None:
    """（都道府県）持ち出しファイルで届いた町の集計値を検証して取り込みます。"""
    from gateway.evaluation import pooled

    gw = _open(home)
    try:
        with refused_as_error():
            result = pooled.receive(gw, file.read_bytes(), "import")
    finally:
        gw.close()
    typer.echo(f"自治体 {result['from']} の集計値を取り込みました。")


@evaluate_app.command("pooled")
def pooled_command(home: HomeOption, out: Annotated[Optional[Path], typer.Option("--out", help="合算結果（JSON・CSV）を書き出すフォルダ")] = None) -> None:
    """（都道府県）各町の集計値を合算して表示します（秘匿されたセルの数も示します）。"""
    from gateway.evaluation import pooled

    gw = _open(home)
    try:
        result = pooled.pooled(gw)
        gw.record("cli", "analyst", "pooled.view", "ok")
    finally:
        gw.close()
    typer.echo(f"合算した町: {', '.join(result['towns']) or 'なし'}")
    for rule, row in result["rules"].items():
        label = result["rule_labels"].get(rule, rule)
        cells = "・".join(f"{name} {row[key]['sum']}{'（秘匿 ' + str(row[key]['suppressed']) + ' 町）' if row[key]['suppressed'] else ''}"
                         for key, name in (("flagged", "抽出"), ("checked", "確認"), ("needs_support", "支援が必要"), ("supported", "支援実施")))
        precision = "—" if row["precision"] is None else f"{100 * row['precision']:.1f}%"
        typer.echo(f"  {label}: {cells}  適合率 {precision}")
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "pooled.json").write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
        typer.echo(f"合算結果: {out / 'pooled.json'}")


@returns_app.command("key")
def key_command(home: HomeOption) -> None:
    """ゲートウェイの対象者リストの検証鍵を表示します（各部署のエージェントに渡します）。"""
    from gateway.returnpath import verifier_key

    gw = _open(home)
    try:
        typer.echo(verifier_key(gw))
    finally:
        gw.close()


@returns_app.command("resolve")
def resolve_command(
    home: Annotated[Path, typer.Option("--home", envvar="TSUNAGU_HOME", help="エージェントの配置フォルダ（agent.toml のある所）")],
    list_file: Annotated[Path, typer.Option("--list", help="ゲートウェイから運ばれた対象者リスト（.jsonl）")],
    gateway_key: Annotated[Path, typer.Option("--gateway-key", help="ゲートウェイの対象者リストの検証鍵を書いたファイル")],
    out: Annotated[Optional[Path], typer.Option("--out", help="書き出すフォルダ（既定: <home>/returns）")] = None,
) -> None:
    """（部署のエージェント）対象者リストの署名を検証し、自分の記録に照合して、自部署のシステム用のファイルを書き出します。"""
    from agents.core.config import ConfigError
    from agents.core.read import SourceError
    from agents.core.returns import resolve
    from keys.errors import KeysError
    from tsunagu.commands.agent import _config, _passphrase

    config = _config(home, None)
    try:
        result = resolve(config, _passphrase(config), list_file.read_bytes(), gateway_key.read_text(encoding="utf-8").strip(), out)
    except (ConfigError, SourceError, KeysError, OSError) as exc:
        raise CommandError(str(exc)) from None
    typer.echo(f"対象者リスト {result.list_id}（{result.source}）: {result.matched} 件を照合しました → {result.out}")
    if result.unknown:
        typer.echo(f"  この部署の記録に見つからないトークン: {len(result.unknown)} 件（記録が削除された可能性があります）")
