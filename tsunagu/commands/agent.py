"""`tsunagu agent …`: check a segment's department files, and run the agent once or on a schedule.

The agent's key passphrase comes from the file named by ``passphrase_file`` in
agent.toml (readable by its owner only) or from a hidden prompt; never from
the command line or the environment, and it is never printed or logged.
"""

from __future__ import annotations

import getpass
import os
import json
import stat
import sys
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Callable, Iterator, Optional

import typer
from tqdm import tqdm

from agents.core.config import AgentConfig, ConfigError, load_config
from agents.core.deliver import DeliveryConfigError
from agents.core.pipeline import RunError, RunResult, SourceResult, check, run, write_failure_status
from agents.core.read import SourceError
from agents.core.submission import StateError
from keys.errors import KeysError
from policy import PolicyError
from tsunagu.errors import CommandError

agent_app = typer.Typer(help="エージェント: 各ネットワークのデータを検証・暗号化・封緘してゲートウェイへ提出します", no_args_is_help=True)

HomeOption = Annotated[Optional[Path], typer.Option("--home", envvar="TSUNAGU_HOME", help="エージェントの配置フォルダ（agent.toml のある所）")]
ConfigOption = Annotated[Optional[Path], typer.Option("--config", help="設定ファイル（既定: <home>/agent.toml）")]
_OWN_ERRORS = (ConfigError, SourceError, RunError, DeliveryConfigError, StateError, PolicyError)


def register(app: typer.Typer) -> None:
    """Add the `agent` command group to the root app."""
    app.add_typer(agent_app, name="agent")


@contextmanager
def _as_command_errors() -> Iterator[None]:
    try:
        yield
    except _OWN_ERRORS as exc:
        raise CommandError(str(exc)) from None


def _config(home: Path | None, config: Path | None) -> AgentConfig:
    if config is None:
        if home is None:
            raise CommandError("--config（agent.toml）か --home（配置フォルダ）を指定してください。")
        config = home / "agent.toml"
    with _as_command_errors():
        return load_config(config)


def _passphrase(config: AgentConfig) -> str:
    path = config.agent.passphrase_file
    if path is None:
        if not sys.stdin.isatty():
            raise CommandError("パスフレーズを入力できません（端末がありません）。agent.toml の passphrase_file を設定してください。")
        value = getpass.getpass(f"エージェント {config.agent.id} のパスフレーズ: ")
    else:
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise CommandError(f"パスフレーズファイル {path} がありません。") from None
        # POSIX modes only: on Windows st_mode does not describe the ACL (docs/agent-windows.md sets it with icacls).
        if os.name != "nt" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise CommandError(f"パスフレーズファイル {path} を所有者以外も読めます。chmod 600 {path} としてから実行してください。")
        value = path.read_text(encoding="utf-8").rstrip("\r\n")
    if not value:
        raise CommandError("パスフレーズが空です。")
    return value


def _print_source(s: SourceResult, dry_run: bool) -> None:
    label = {"sent": "提出", "checked": "確認", "unchanged": "変更なし", "failed": "失敗"}[s.status]
    typer.echo(f"[{label}] データ元 {s.source}（{s.file}）")
    if s.status == "failed" and not s.rows:
        typer.echo(f"  {s.message}")
        return
    verb = "送る予定" if dry_run else "送信"
    typer.echo(f"  行数 {s.rows} ／ {verb} {s.encoded} ／ 送らない行 {s.problems}" + (f"（一覧: {s.report}）" if s.report else ""))
    for line in s.sample_problems:
        typer.echo(f"    {line}")
    if s.problems > len(s.sample_problems):
        typer.echo(f"    … ほか {s.problems - len(s.sample_problems)} 行")
    typer.echo(f"  送る属性: {'、'.join(s.attributes_sent) or 'なし'}")
    for name, reason in s.attributes_refused.items():
        typer.echo(f"  送らない属性 {name}: {reason}")
    if s.ignored_columns:
        typer.echo(f"  読まない列（送りません）: {'、'.join(s.ignored_columns)}")
    if s.unmapped_gaiji:
        typer.echo(f"  外字表にない外字 {s.unmapped_gaiji} 文字を〓（不明な字）として扱いました。外字表に追加してください。")
    if s.sequence is not None:
        typer.echo(f"  連番 {s.sequence}")
    if s.message:
        typer.echo(f"  {s.message}")


def _print_result(result: RunResult) -> None:
    for note in result.notes:
        typer.echo(f"[注意] {note}")
    for s in result.sources:
        _print_source(s, dry_run=False)
    for d in result.deliveries:
        mark = {"delivered": "送信済み", "bundled": "書き出し済み", "refused": "拒否", "pending": "送信待ち", "stale": "作り直し"}[d.status]
        typer.echo(f"[{mark}] 連番 {d.sequence}（{d.source}）: {d.message}")
        refused = d.response.get("refused") if isinstance(d.response, dict) else None
        if refused:
            typer.echo(f"  ゲートウェイが受け付けなかった項目: {refused}")
    typer.echo(f"送信待ち: {result.outbox} 件。結果: {'正常' if result.ok else '異常あり'}")


@agent_app.command("check")
def check_command(home: HomeOption = None, config: ConfigOption = None) -> None:
    """試行（送信しません）: 対応表とファイルを検証し、送る予定のものと送らないものを表示します。"""
    cfg = _config(home, config)
    with _as_command_errors():
        result = check(cfg)
    for s in result.sources:
        _print_source(s, dry_run=True)
    typer.echo(f"送信待ち（前回までに送れなかった提出）: {result.outbox} 件")
    _print_keys(cfg)
    if cfg.gateway is None:
        typer.echo("送り先: [gateway] の設定がないため、--bundle-out で持ち出し用ファイルを作ります。")
    else:
        typer.echo(f"送り先: {cfg.gateway.url}")
    if any(s.status == "failed" for s in result.sources):
        raise typer.Exit(1)


def _print_keys(cfg: AgentConfig) -> None:
    keys_dir = cfg.home / "keys"
    if not (keys_dir / "agent-identity.json").is_file():
        typer.echo(f"エージェントの鍵: なし — tsunagu keys agent-init --home {cfg.home} で作ってください。")
        return
    typer.echo("エージェントの鍵: あり")
    try:
        key_id = json.loads((keys_dir / "agent-state.json").read_text(encoding="utf-8"))["current_linkage_key_id"]
    except (OSError, ValueError, KeyError):
        typer.echo("連携鍵: 未導入 — 管理者から受け取ったファイルを tsunagu keys agent-install で導入してください。")
        return
    typer.echo(f"連携鍵: {key_id}（導入済み）")


class _ProgressBars:
    """Makes the encoding progress bar of a run (on a terminal only) and closes it afterwards."""

    def __init__(self) -> None:
        self._bars: list[tqdm] = []

    def __call__(self, total: int) -> Callable[[int], None]:
        bar = tqdm(total=total, desc="符号化・封緘", unit="件", file=sys.stderr, disable=None, leave=False)
        self._bars.append(bar)
        return bar.update

    def close(self) -> None:
        for bar in self._bars:
            bar.close()


def _run_once(cfg: AgentConfig, passphrase: str, bundle_out: Path | None, force: bool) -> RunResult:
    bars = _ProgressBars()
    try:
        with _as_command_errors():
            return run(cfg, passphrase, bundle_out=bundle_out, force=force, progress=bars)
    finally:
        bars.close()


@agent_app.command("run")
def run_command(
    home: HomeOption = None,
    config: ConfigOption = None,
    bundle_out: Annotated[Optional[Path], typer.Option("--bundle-out", help="ゲートウェイへ送らず、このフォルダに提出ファイル（.jsonl）を書きます（可搬媒体・中継サーバ用）")] = None,
    schedule: Annotated[Optional[str], typer.Option("--schedule", help="cron 形式の実行予定（例: \"0 2 * * *\" は毎日 2 時）。指定すると常駐します")] = None,
    force: Annotated[bool, typer.Option("--force", help="入力が前回と同じでも新しい提出を作ります")] = False,
) -> None:
    """エージェントを 1 回実行します（--schedule で定期実行）。送れなかった提出は次回送り直します。"""
    cfg = _config(home, config)
    passphrase = _passphrase(cfg)
    if schedule is None:
        try:
            result = _run_once(cfg, passphrase, bundle_out, force)
        except (CommandError, KeysError) as exc:
            write_failure_status(cfg.home, str(exc))
            raise
        _print_result(result)
        if not result.ok:
            raise typer.Exit(1)
        return
    _schedule(cfg, passphrase, bundle_out, schedule)


@agent_app.command("resync")
def resync_command(home: HomeOption = None, config: ConfigOption = None) -> None:
    """この場所のエージェントを、ゲートウェイが受け付ける側にします（機械を移したとき・もう一方を止めたとき）。次の実行ですべて送り直します。"""
    from agents.core.pipeline import resync

    cfg = _config(home, config)
    passphrase = _passphrase(cfg)
    with _as_command_errors():
        notes = resync(cfg, passphrase)
    for note in notes:
        typer.echo(note)
    typer.echo("ゲートウェイの記録と突き合わせました。tsunagu agent run で、すべてのデータ元の最新の提出を送ってください。")


def _schedule(cfg: AgentConfig, passphrase: str, bundle_out: Path | None, expression: str) -> None:
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.cron import CronTrigger

    try:
        trigger = CronTrigger.from_crontab(expression)
    except ValueError as exc:
        raise CommandError(f"実行予定「{expression}」を cron 形式として読めません（{exc}）。例: \"0 2 * * *\"") from None

    def job() -> None:
        try:
            _print_result(_run_once(cfg, passphrase, bundle_out, force=False))
        except (CommandError, KeysError) as exc:
            write_failure_status(cfg.home, str(exc))
            typer.echo(f"エラー: {exc}", err=True)

    scheduler = BlockingScheduler(timezone=trigger.timezone)
    scheduler.add_job(job, trigger, max_instances=1, coalesce=True, misfire_grace_time=3600)
    first = trigger.get_next_fire_time(None, datetime.now(trigger.timezone))
    typer.echo(f"定期実行を始めます（{expression}、次回 {first:%Y-%m-%d %H:%M}）。止めるには Ctrl+C を押してください。")
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        typer.echo("定期実行を止めました。")
