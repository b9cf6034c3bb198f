"""`tsunagu link`: encode and link canonical-column CSV files in one process (pilots, evaluation)."""

from __future__ import annotations

import csv
import os
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from tqdm import tqdm

from linkage.encode import encode_sources
from linkage.evaluate import pairwise_quality
from linkage.match import MATCH_THRESHOLD, link
from linkage.salvage import salvage_birth_dates
from service.pools import ForkPool
from tsunagu.csvinput import RowProblem, SourceFile, read_source
from tsunagu.errors import fail


def register(app: typer.Typer) -> None:
    """Add the `link` command to the root app."""
    app.command(name="link")(link_command)


def _load_secret(path: Optional[Path]):
    from keys.linkage_secret import LinkageSecret, generate_linkage_secret

    if path is None:
        typer.echo(
            "注意: --secret-file が指定されていないため、この実行限りの乱数の連携鍵を使います"
            "（今回の結果の符号化は他の実行と比較できません）。",
            err=True,
        )
        return generate_linkage_secret()
    try:
        raw = path.read_bytes().strip()
    except FileNotFoundError:
        fail(f"連携鍵ファイル {path} が見つかりません")
    if len(raw) < 32:
        fail(f"連携鍵ファイル {path} が短すぎます（32 バイト以上の乱数を入れてください）")
    return LinkageSecret.from_secret(raw)


def _load_gaiji(path: Optional[Path]):
    from agents.core.config import ConfigError
    from agents.core.read import GaijiTable

    if path is None:
        return None
    try:
        return GaijiTable.load(path)
    except ConfigError as exc:
        fail(str(exc))


def link_command(
    files: list[Path] = typer.Argument(..., help="正規列（record_id, family_name, …）の CSV ファイル（2 つ以上）"),
    out: Path = typer.Option(..., "--out", help="結果の出力先 CSV（source,record_id,cluster_id）"),
    secret_file: Optional[Path] = typer.Option(None, "--secret-file", help="連携鍵のファイル（省略時はこの実行限りの乱数）"),
    threshold: float = typer.Option(MATCH_THRESHOLD, "--threshold", help="一致と判定する重みの下限"),
    encoding: Optional[str] = typer.Option(None, "--encoding", help="入力の文字コード（省略時は UTF-8 / CP932 を自動判定）"),
    gaiji: Optional[Path] = typer.Option(None, "--gaiji", help="外字表（エージェントと同じ TOML か CSV）。省略時は外字を〓（不明）として扱います"),
    report: Optional[Path] = typer.Option(None, "--report", help="連携できなかった行の一覧（省略時は OUT と同じ場所に *.report.csv）"),
    truth: Optional[Path] = typer.Option(None, "--truth", help="正解（source,record_id,person_id）があれば精度を表示"),
    workers: int = typer.Option(min(2, os.cpu_count() or 1), "--workers", help="符号化に使うプロセス数"),
    dask: Optional[str] = typer.Option(
        None, "--dask", help="Dask の scheduler のアドレス（例 tcp://10.0.0.5:8786）。指定するとブロックの比較と採点をそのクラスタで行います"
    ),
) -> None:
    """CSV ファイルを符号化（CLK）して名寄せし、同一人物のクラスタを出力します。"""
    if len(files) < 2:
        fail("連携するには 2 つ以上のファイルを指定してください")
    names = [f.stem for f in files]
    if len(set(names)) != len(names):
        fail("ファイル名（拡張子を除く）が重複しています。source 名として使うため、別の名前にしてください")
    started = time.perf_counter()
    secret = _load_secret(secret_file)
    table = _load_gaiji(gaiji)
    sources: list[SourceFile] = [read_source(f, encoding, table) for f in files]
    problems: list[RowProblem] = [p for s in sources for p in s.problems]
    # A date typo is not a reason to lose a child: such rows link on the date's usable parts and are reported.
    kept_notes: list[RowProblem] = []
    for s in sources:
        s.records, notes = salvage_birth_dates(s.records)
        kept_notes.extend(RowProblem(str(s.path), s.rows[n.index], n.field, n.reason) for n in notes)

    total = sum(len(s.records) for s in sources)
    with tqdm(total=total, desc="符号化", unit="件", file=sys.stderr, disable=total < 5000) as bar:
        encoded = encode_sources(
            [s.records for s in sources], secret.secret, secret.key_id, runner=ForkPool(workers), progress=bar.update
        )
    encodings = []
    kept_rows: list[list[int]] = []
    for s, (enc, index, errors) in zip(sources, encoded):
        for e in errors:
            problems.append(RowProblem(str(s.path), s.rows[e.index], e.field, e.reason))
        encodings.append(enc)
        kept_rows.append(index.tolist())
    # The Dask cluster, if named, runs the matching; else this machine's processes.
    result = link(encodings, match_threshold=threshold, progress=lambda m: typer.echo(m, err=True), dask_address=dask,
                  engine=None if dask else ForkPool())

    cluster_of: dict[tuple[str, str], str] = {}
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["source", "record_id", "cluster_id"])
        for n, members in enumerate(sorted(result.clusters), start=1):
            cid = f"C{n:07d}"
            for s_idx, r_idx in members:
                src = sources[s_idx]
                rid = src.records[kept_rows[s_idx][r_idx]].record_id
                writer.writerow([src.name, rid, cid])
                cluster_of[(src.name, rid)] = cid

    report_path = report or out.with_suffix(".report.csv")
    with report_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "row", "column", "reason", "status"])
        rows = [(p, "除外") for p in problems] + [(p, "連携済み") for p in kept_notes]
        for p, status in sorted(rows, key=lambda x: (x[0].file, x[0].row)):
            writer.writerow([p.file, p.row, p.column, p.reason, status])

    elapsed = time.perf_counter() - started
    linked = sum(1 for c in result.clusters if len(c) > 1)
    typer.echo(f"入力 {total + sum(len(s.problems) for s in sources):,} 件 / 連携対象 {len(cluster_of):,} 件 / "
               f"複数の部署にまたがる人 {linked:,} 人 / 要確認ペア {len(result.review_queue()):,} 組 / {elapsed:.1f} 秒")
    typer.echo(f"結果: {out}")
    if problems:
        typer.echo(f"連携できなかった行: {len(problems):,} 件（理由は {report_path} を参照）", err=True)
        for p in problems[:5]:
            typer.echo(f"  {p.file} {p.row} 行目 {p.column}: {p.reason}", err=True)
    if kept_notes:
        typer.echo(f"生年月日が存在しない日付で、使える部分だけで連携した行: {len(kept_notes):,} 件（{report_path} を参照）", err=True)
        for p in kept_notes[:5]:
            typer.echo(f"  {p.file} {p.row} 行目 {p.column}: {p.reason}", err=True)
    if truth is not None:
        _print_quality(cluster_of, truth)


def _print_quality(cluster_of: dict[tuple[str, str], str], truth_path: Path) -> None:
    truth: dict[tuple[str, str], str] = {}
    with truth_path.open(encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            truth[(row["source"], row["record_id"])] = row["person_id"]
    common = {k: v for k, v in cluster_of.items() if k in truth}
    overall, by_pair = pairwise_quality(common, {k: truth[k] for k in common})
    typer.echo("\n精度（ペア単位）")
    typer.echo(f"{'部署の組':<28}{'適合率':>8}{'再現率':>8}{'F1':>8}")
    for (a, b), q in by_pair.items():
        typer.echo(f"{a + ' × ' + b:<30}{q.precision:>9.4f}{q.recall:>9.4f}{q.f1:>9.4f}")
    typer.echo(f"{'全体':<29}{overall.precision:>9.4f}{overall.recall:>9.4f}{overall.f1:>9.4f}")
