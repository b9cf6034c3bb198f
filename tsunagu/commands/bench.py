"""`tsunagu bench quality|speed`: benchmark figures (printed, and written as tables and charts)."""

from __future__ import annotations

import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import typer

from bench import linkage as b

bench_app = typer.Typer(help="名寄せの精度と速度のベンチマーク", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the `bench` command group to the root app."""
    app.add_typer(bench_app, name="bench")


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _table(report: b.QualityReport) -> list[str]:
    lines = [
        f"### {report.dataset}（{report.records:,} 件、{report.seconds:.1f} 秒）",
        "",
        "| 部署の組 | tsunagu 適合率 | 再現率 | F1 | 完全一致結合 適合率 | 再現率 | F1 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    keys = sorted(set(report.tsunagu_by_pair) | set(report.baseline_by_pair))
    empty = b.Quality(0, 0, 0)
    for key in keys:
        q = report.tsunagu_by_pair.get(key, empty)
        z = report.baseline_by_pair.get(key, empty)
        lines.append(f"| {key[0]} × {key[1]} | {q.precision:.4f} | {q.recall:.4f} | {q.f1:.4f} | {z.precision:.4f} | {z.recall:.4f} | {z.f1:.4f} |")
    q, z = report.tsunagu, report.baseline
    lines.append(f"| **全体** | **{q.precision:.4f}** | **{q.recall:.4f}** | **{q.f1:.4f}** | {z.precision:.4f} | {z.recall:.4f} | {z.f1:.4f} |")
    lines.append("")
    lines.append(f"誤って 1 人にまとめられたクラスタ（双子・きょうだいを含む）: {report.twins_merged} 件")
    lines.append("")
    queue = len(report.result.review_queue())
    lines.append(f"要確認ペア: {queue:,} 組（記録 {report.records:,} 件の {queue / max(report.records, 1):.2%}）")
    lines.append("")
    return lines


@bench_app.command("quality")
def quality(
    out: Path = typer.Option(Path("bench-out"), "--out", help="表（quality.md）とグラフ（PNG）の出力先"),
    children: int = typer.Option(20_000, "--children", help="合成自治体の子どもの数"),
    seed: int = typer.Option(1, "--seed", help="合成自治体の乱数の種"),
    febrl: bool = typer.Option(True, "--febrl/--no-febrl", help="FEBRL4 でも測る"),
    schema_version: str = typer.Option("", "--schema", help="符号化スキーマ（例 tsunagu-jp/2、省略時は現行の既定）"),
) -> None:
    """合成自治体と FEBRL4 でペア単位の適合率・再現率・F1 を測り、完全一致結合と比べます。"""
    from linkage.schema import SchemaError, load_schema

    try:
        chosen = load_schema(schema_version or None)
    except SchemaError as exc:
        raise typer.BadParameter(str(exc)) from None
    out.mkdir(parents=True, exist_ok=True)
    datasets = [("town", b.town_dataset(children, seed))]
    if febrl:
        datasets.append(("febrl4", b.febrl4_dataset()))
    lines = ["# 名寄せ精度（ペア単位）", ""]
    for stem, data in datasets:
        report = b.run_quality(data, progress=_say, schema=chosen)
        table = [f"符号化スキーマ: {chosen.version}", "", *_table(report)] + ["ブロッキングの段階ごとの削減率とペア網羅率:", "", *b.pass_table(report, data), ""]
        typer.echo("\n".join(table))
        charts = b.write_charts(report, data, out, stem)
        lines.extend(table)
        lines.extend(f"![{p.stem}]({p.name})" for p in charts)
        lines.append("")
    (out / "quality.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    typer.echo(f"表とグラフ: {out}/quality.md")


@bench_app.command("scale")
def scale(
    sizes: str = typer.Option("50000,100000,200000,500000", "--sizes", help="子どもの数（カンマ区切り）"),
    dask: str = typer.Option("local", "--dask", help="Dask の scheduler のアドレス、この機械の LocalCluster なら local、使わないなら none"),
    out: Path = typer.Option(Path("bench-out"), "--out", help="表（scale.md）とグラフ（scale.png）の出力先"),
) -> None:
    """人口規模ごとに、名寄せの時間・最大メモリ・精度をこの機械と Dask で測り、グラフにします。"""
    try:
        children = [int(x) for x in sizes.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter("--sizes は 50000,100000 のように数をカンマで区切って指定してください") from None
    engines: list[str | None] = [None] + ([] if dask == "none" else [dask])
    points = []
    lines = ["| 子ども | 記録 | 方式 | 符号化 秒 | 名寄せ 秒 | 最大メモリ MiB | 候補ペア | 要確認ペア | 適合率 | 再現率 | F1 |",
             "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    typer.echo("\n".join(lines))
    for n in children:
        for engine in engines:
            p = b.scale_points([n], [engine])[0]
            points.append(p)
            row = (f"| {p['children']:,} | {p['records']:,} | {p['engine']} | {p['encode_seconds']:.1f} | {p['link_seconds']:.1f} | "
                   f"{p['peak_mib']:,} | {p['candidates']:,} | {p['review_pairs']:,} | {p['precision']:.4f} | {p['recall']:.4f} | {p['f1']:.4f} |")
            lines.append(row)
            typer.echo(row)
    chart = b.write_scale_chart(points, out)
    (out / "scale.md").write_text("# 規模と費用\n\n" + "\n".join(lines) + f"\n\n![scale]({chart.name})\n", encoding="utf-8")
    typer.echo(f"表とグラフ: {out}/scale.md")


@bench_app.command("schema")
def schema(
    children: int = typer.Option(20_000, "--children", help="合成自治体の子どもの数"),
    seed: int = typer.Option(1, "--seed", help="合成自治体の乱数の種"),
) -> None:
    """符号化スキーマのセグメント長とトークンあたりのビット数を変えて、精度を比べます。"""
    datasets = [b.town_dataset(children, seed), b.febrl4_dataset()]
    typer.echo("| name l | name k | kana l | kana k | address k | date k | town P | town R | town F1 | FEBRL4 F1 | bits |")
    typer.echo("|---|---|---|---|---|---|---|---|---|---|---|")
    for variant in b.SCHEMA_VARIANTS:
        sch = b.schema_variant(*variant)
        town, febrl = (b.run_quality(d, schema=sch) for d in datasets)
        q = town.tsunagu
        typer.echo(
            f"| {' | '.join(map(str, variant))} | {q.precision:.4f} | {q.recall:.4f} | {q.f1:.4f} | "
            f"{febrl.tsunagu.f1:.4f} | {sch.total_bits} |"
        )


@bench_app.command("speed")
def speed(
    children: int = typer.Option(50_000, "--children", help="合成自治体の子どもの数"),
    seed: int = typer.Option(1, "--seed", help="合成自治体の乱数の種"),
) -> None:
    """符号化の件数/秒、比較回数/秒、5 万人・4 部署の町の端から端までの時間と最大メモリを測ります。"""
    from linkage.encode import encode_sources
    from linkage.match import link
    from service.pools import ForkPool
    from synthetic import generate_town
    from tsunagu.csvinput import read_source

    with tempfile.TemporaryDirectory() as tmp:
        town = generate_town(n_children=children, seed=seed)
        paths = town.write(tmp, encodings={"school": "cp932"})
        sources_csv = [p for p in map(Path, paths) if p.stem != "truth"]
        started = time.perf_counter()
        sources = [read_source(p) for p in sources_csv]
        read_s = time.perf_counter() - started
        t = time.perf_counter()
        pool = ForkPool()
        encoded = encode_sources([s.records for s in sources], b.BENCH_SECRET, b.BENCH_KEY_ID, runner=pool)
        encode_s = time.perf_counter() - t
        n_records = sum(len(s.records) for s in sources)
        t = time.perf_counter()
        result = link([e for e, _, _ in encoded], engine=pool)
        link_s = time.perf_counter() - t
        t = time.perf_counter()
        with open(Path(tmp) / "clusters.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            for c, members in enumerate(result.clusters):
                for s, r in members:
                    writer.writerow([sources[s].name, sources[s].records[encoded[s][1][r]].record_id, c])
        write_s = time.perf_counter() - t
        total_s = time.perf_counter() - started
        residents = encoded[0][0].bits
        school = encoded[1][0].bits
        rate, comparisons, wall = b.comparisons_per_second(residents[:20_000], school, workers=b.cpu_count())
        rate_1, comparisons_1, wall_1 = b.comparisons_per_second(residents[:5_000], school, workers=1)
        # What candidate generation compares: the 512-bit written-name part.
        first = slice(0, 64)
        rate_p, comparisons_p, wall_p = b.comparisons_per_second(
            np.ascontiguousarray(residents[:, first]), np.ascontiguousarray(school[:, first]), workers=b.cpu_count()
        )
    typer.echo(f"コア数: {b.cpu_count()}")
    typer.echo(f"入力: {len(sources)} 部署 {n_records:,} 件（子ども {children:,} 人、school は CP932）")
    typer.echo(f"読込: {read_s:.2f} 秒")
    typer.echo(f"符号化（正規化込み）: {encode_s:.2f} 秒 = {n_records / encode_s:,.0f} 件/秒")
    typer.echo(f"名寄せ: {link_s:.2f} 秒（候補ペア {result.candidate_count:,} 組）")
    typer.echo(f"書出し: {write_s:.2f} 秒")
    typer.echo(f"端から端まで: {total_s:.2f} 秒")
    typer.echo(
        f"比較（anonlink Dice, {residents.shape[1] * 8} ビット）: {b.cpu_count()} コアで {rate / 1e6:,.0f} M 回/秒"
        f"（{comparisons / 1e6:,.0f} M 回を {wall:.2f} 秒）、1 コアで {rate_1 / 1e6:,.0f} M 回/秒"
    )
    typer.echo(
        f"比較（候補生成と同じ 512 ビットの氏名部分）: {b.cpu_count()} コアで {rate_p / 1e6:,.0f} M 回/秒"
        f"（{comparisons_p / 1e6:,.0f} M 回を {wall_p:.2f} 秒）"
    )
    typer.echo(f"最大メモリ: {b.peak_memory_mib():,.0f} MiB")
    sys.stdout.flush()


@bench_app.command("attack")
def attack(
    out: Path = typer.Option(Path("bench-out"), "--out", help="表（attack.md）とグラフ（PNG）の出力先"),
    children: int = typer.Option(20_000, "--children", help="合成自治体の子どもの数"),
    victim_seed: int = typer.Option(11, "--victim-seed", help="攻撃される自治体の乱数の種"),
    public_seed: int = typer.Option(12, "--public-seed", help="攻撃者の公開知識とする別の自治体の乱数の種"),
    known_dates: int = typer.Option(20, "--known-dates", help="攻撃者が生年月日を知っている子どもの数"),
    all_variants: bool = typer.Option(False, "--all-variants", help="比較用の変種（拡散なし・平衡なし）も測る"),
    with_quality: bool = typer.Option(False, "--quality", help="変種ごとに名寄せの F1 も測り、トレードオフ図を描く"),
) -> None:
    """好奇心のあるゲートウェイとして、保存された符号から氏名・読み・生年月日をどれだけ復元できるかを測ります。"""
    from bench import attack as ba

    victim = b.town_dataset(children, victim_seed).sources["residents"]
    public = b.town_dataset(children, public_seed).sources["residents"]
    chosen = ba.variants()
    if not all_variants:
        chosen = {k: v for k, v in chosen.items() if k.startswith("tsunagu-jp/")}
    reports, f1 = [], {}
    lines = ["# 好奇心のあるゲートウェイへの攻撃（復元された記録の割合と適合率）", ""]
    for name, (schema, sorted_order, padded) in chosen.items():
        report = ba.run_variant(name, schema, victim, public, sorted_order=sorted_order, padded=padded,
                                known_dates=known_dates, progress=_say)
        reports.append(report)
        if with_quality:
            _say(f"{name}: 名寄せ精度")
            f1[name] = b.run_quality(b.town_dataset(children, 1), schema=schema).tsunagu.f1
        table = [f"## {name}（住民記録 {report.records:,} 件、{report.seconds:.0f} 秒）", "",
                 "| 攻撃 | 項目 | 復元された記録 | 適合率 | 備考 |", "|---|---|---:|---:|---|"]
        table += [f"| {f.attack} | {f.field} | {100 * f.recovered:.2f} % | {f.precision:.3f} | {f.note} |" for f in report.findings]
        if name in f1:
            table += ["", f"名寄せ F1（合成自治体 seed 1）: {f1[name]:.4f}"]
        table.append("")
        typer.echo("\n".join(table))
        lines += table
    charts = ba.write_chart(reports, out / "attack.png", f1 or None)
    lines += [f"![{p.stem}]({p.name})" for p in charts]
    out.mkdir(parents=True, exist_ok=True)
    (out / "attack.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    typer.echo(f"表とグラフ: {out}/attack.md")


@bench_app.command("delivery")
def delivery(
    children: int = typer.Option(300, "--children", help="合成自治体の子どもの数（ファイルの大きさ）"),
    database: str = typer.Option("sqlite", "--database", help="ゲートウェイのデータベース: sqlite、postgresql（使い捨てのクラスタ）、both"),
) -> None:
    """提出が失われたり上書きされたりしないかを、実際のゲートウェイとエージェントで事例ごとに数えます（ソースの作業コピーで実行）。"""
    from bench import delivery as bd

    raise typer.Exit(bd.main(["--children", str(children), "--database", database]))
