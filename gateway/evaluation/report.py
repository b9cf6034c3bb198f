"""The evaluation report: every figure as JSON, CSV tables, PNG charts (Japanese labels) and a summary in Japanese.

Charts use the IPA Gothic font (``make chromium`` installs fonts-ipafont-gothic)
so that Japanese labels render; without it matplotlib would draw empty boxes,
so the report refuses to draw rather than write unreadable charts.
"""

from __future__ import annotations

import csv
import json
import threading
from pathlib import Path
from typing import Any, Sequence

from gateway import support
from gateway.core import Gateway
from gateway.errors import IndexUnavailable, PersonNotFound
from gateway.evaluation import figures, risk
from gateway.evaluation.data import Dataset, PeriodKind, load
from gateway.link import current_run_id
from policy.screening import Condition, Rule, Screening, ScreeningDocument
from policy.support import ASSESSMENTS, SupportVocabulary

FONT_FILES = (Path("/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf"), Path("/usr/share/fonts/truetype/fonts-japanese-gothic.ttf"))
_PYPLOT_LOCK = threading.Lock()
CHARTS = ("funnel", "precision_by_rule", "capacity_curve", "items_by_difficulty", "human_check", "risk_index")


class ReportError(Exception):
    """The report cannot be written (no font, no folder); the message says what to do."""


def _ratio(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _funnel_json(row: figures.FunnelRow, label: str | None = None) -> dict[str, Any]:
    return {"key": row.key, "label": label or row.key, "flagged": row.flagged, "checked": row.checked,
            "needs_support": row.needs_support, "supported": row.supported, "not_needed": row.not_needed,
            "precision": _ratio(row.precision)}


def _unflatten(features: dict[str, str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for key, value in features.items():
        source, _, attribute = key.partition(".")
        out.setdefault(source, {})[attribute] = value
    return out


def in_group(conditions: Sequence[Condition], features: dict[str, str]) -> bool:
    """Whether a case's features meet every condition of a fairness group (the screening rules' semantics)."""
    probe = Screening(ScreeningDocument(version=1, capacity=1, rules=(Rule(id="group", label="group", weight=1, all=tuple(conditions)),)))
    return bool(probe.evaluate(_unflatten(features)))


def build(data: Dataset, vocabulary: SupportVocabulary) -> dict[str, Any]:
    """Every figure of the evaluation, as JSON-ready data."""
    flags, cases = data.flags, data.cases
    reach = figures.reach(flags, cases)
    check = figures.human_check(flags, cases)
    positives = {c.person_id for c in cases if c.needs_support}
    latest = max(data.capacity) if data.capacity else None
    out: dict[str, Any] = {
        "period_kind": data.kind, "periods": data.periods,
        "lists": len(data.capacity), "cases": len(cases),
        "total": _funnel_json(figures.funnel_total(flags, cases)),
        "by_period": [_funnel_json(r) for r in figures.funnel_by_period(flags, cases)],
        "by_rule": [_funnel_json(r, data.rules.get(r.key)) for r in figures.funnel_by_rule(flags, cases, list(data.rules))],
        "reach": {"supported": reach.supported, "supported_flagged": reach.supported_flagged,
                  "supported_other_route": reach.supported_other_route, "needing": reach.needing,
                  "needing_flagged": reach.needing_flagged, "recall_proxy": _ratio(reach.recall_proxy)},
        "human_check": {"checked": check.checked, "not_needed": check.not_needed, "watch": check.watch,
                        "needs_support": check.needs_support,
                        "reasons": [{"code": k, "label": vocabulary.not_needed_reasons.get(k, k), "count": v} for k, v in check.reasons.items()],
                        "by_rule": [{"rule": k, "label": data.rules.get(k, k), "count": v} for k, v in check.by_rule.items()]},
        "capacity": {"snapshot_id": latest, "capacity": data.capacity.get(latest) if latest else None, "positives": len(positives),
                     "by_rules": figures.capacity_curve(flags, positives, latest) if latest else []},
        "items": [{"item": i, "present": p, "checked": n} for i, (p, n) in figures.item_presence(cases).items()],
        "associations": [{"item": a.item, "difficulty": a.difficulty, "label": vocabulary.difficulties.get(a.difficulty, a.difficulty),
                          "checked": a.n, "with_item": a.with_item, "with_type": a.with_type, "both": a.both,
                          "share_with_type": _ratio(a.share_with_type), "share_without_type": _ratio(a.share_without_type),
                          "phi": _ratio(a.phi)} for a in figures.items_by_difficulty(cases, list(vocabulary.difficulties))],
        "risk": _risk(data, vocabulary, positives, latest),
    }
    return out


def _risk(data: Dataset, vocabulary: SupportVocabulary, positives: set[str], latest: int | None) -> dict[str, Any]:
    """Fit on every period but the last, evaluate on the last; the groups' check on the last."""
    periods = sorted({c.period for c in data.cases if c.checked})
    if len(periods) < 2:
        return {"available": False, "reason": f"リスク指数は、当てはめる期間と評価する後の期間が必要です（確認済みの判断がある期間: {len(periods)}）。"}
    fit_periods, test_period = periods[:-1], periods[-1]
    try:
        index = risk.fit(data.cases, fit_periods)
    except risk.RiskIndexError as exc:
        return {"available": False, "reason": str(exc)}
    rule_score = {}
    score_of = {(f.snapshot_id, f.person_id): f.score for f in data.flags}
    for c in data.cases:
        rule_score[c.case_id] = score_of.get((c.snapshot_id, c.person_id), 0.0) if c.snapshot_id else 0.0
    ev = risk.evaluate(index, data.cases, test_period, rule_score)
    test = [c for c in data.cases if c.checked and c.period == test_period]
    groups = []
    for name, group in vocabulary.fairness_groups.items():
        g = risk.group_check(index, data.cases, test_period, name, group.label, [in_group(group.all, dict(c.features)) for c in test])
        groups.append({"group": name, "label": g.label, "members": g.members, "positives": g.positives,
                       "mean_percentile_group": _ratio(g.mean_percentile_group), "mean_percentile_others": _ratio(g.mean_percentile_others),
                       "gap": _ratio(g.gap), "verdict": g.verdict})
    by_index = {f.person_id: index.index(f.features) for f in data.flags if f.snapshot_id == latest}
    return {"available": True, "fitted_on": list(index.fitted_on), "fit_cases": index.cases, "evaluated_on": test_period,
            "intercept": round(index.intercept, 4),
            "weights": sorted(({"item": i, "weight": round(w, 4)} for i, w in zip(index.items, index.weights)), key=lambda x: -abs(x["weight"])),
            "evaluation": {"cases": ev.cases, "positives": ev.positives, "auc": _ratio(ev.auc), "k": ev.k,
                           "precision_rules": _ratio(ev.precision_rules), "precision_index": _ratio(ev.precision_index)},
            "groups": groups,
            "capacity_by_index": figures.capacity_curve(data.flags, positives, latest, by_index) if latest else []}


def person_index(gw: Gateway, features: dict[str, str], kind: PeriodKind = "month") -> dict[str, Any] | None:
    """One child's index with its contributing items, fitted on every period with judgements (None: too few)."""
    data = load(gw, kind)
    periods = sorted({c.period for c in data.cases if c.checked})
    try:
        index = risk.fit(data.cases, periods)
    except risk.RiskIndexError:
        return None
    return {"index": round(index.index(features), 1), "intercept": round(index.intercept, 3), "fitted_on": list(index.fitted_on),
            "contributions": [{"item": i, "weight": round(w, 3)} for i, w in index.contributions(features)]}


def evaluation(gw: Gateway, kind: PeriodKind = "month") -> dict[str, Any]:
    """The whole evaluation of this gateway's lists and cases."""
    return build(load(gw, kind), gw.policy.document.support)


# ---- summary, tables and charts ---------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def summary(report: dict[str, Any]) -> str:
    """The evaluation in a few Japanese lines (printed by `tsunagu evaluate` and `make demo`)."""
    t, r, h = report["total"], report["reach"], report["human_check"]
    lines = [
        f"抽出 {t['flagged']} 人 → 確認 {t['checked']} 人 → 支援が必要 {t['needs_support']} 人 → 支援実施 {t['supported']} 人"
        f"（一覧 {report['lists']} 回、支援記録 {report['cases']} 件）",
        f"一覧全体の適合率（支援が必要 ÷ 確認）: {_pct(t['precision'])}",
        f"支援を実施した {r['supported']} 人のうち、一覧が抽出していたのは {r['supported_flagged']} 人（再現率の目安 {_pct(r['recall_proxy'])}）、"
        f"一覧以外の経路で見つかったのは {r['supported_other_route']} 人",
        f"人による確認で変わったこと: 抽出して確認した {h['checked']} 人のうち 対応不要 {h['not_needed']} 人、見守り {h['watch']} 人",
    ]
    for reason in h["reasons"]:
        lines.append(f"  対応不要の理由: {reason['label']} {reason['count']} 人")
    lines.append("規則ごとの適合率:")
    for row in report["by_rule"]:
        lines.append(f"  {row['label']}: 抽出 {row['flagged']} 人・確認 {row['checked']} 人・支援が必要 {row['needs_support']} 人（{_pct(row['precision'])}）")
    risk_part = report["risk"]
    if risk_part["available"]:
        e = risk_part["evaluation"]
        lines.append(f"リスク指数（{'・'.join(risk_part['fitted_on'])} で当てはめ、{risk_part['evaluated_on']} で評価）: AUC {e['auc'] if e['auc'] is not None else '—'}、"
                     f"確認した {e['cases']} 人の上位 {e['k']} 人の適合率 規則の点数順 {_pct(e['precision_rules'])} / 指数順 {_pct(e['precision_index'])}")
        for g in risk_part["groups"]:
            lines.append(f"  {g['label']}（{g['members']} 人）: {g['verdict']}")
        lines.append("  リスク指数は一覧の中の並べ替えの参考です。支援の要否は必ず人が判断します。")
    else:
        lines.append(f"リスク指数: {risk_part['reason']}")
    return "\n".join(lines)


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as fh:  # with a BOM so that Excel reads it as UTF-8
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def write(report: dict[str, Any], out: Path) -> list[Path]:
    """Write ``report.json``, ``summary.txt``, the CSV tables and the PNG charts into ``out``; returns the files."""
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "report.json", out / "summary.txt"]
    files[0].write_text(json.dumps(report, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    files[1].write_text(summary(report) + "\n", encoding="utf-8")
    head = ["区分", "抽出", "確認", "支援が必要", "支援実施", "対応不要", "適合率"]
    for name, rows in (("funnel_by_period", report["by_period"]), ("funnel_by_rule", report["by_rule"]), ("funnel_total", [report["total"]])):
        path = out / f"{name}.csv"
        _write_csv(path, head, [[r["label"], r["flagged"], r["checked"], r["needs_support"], r["supported"], r["not_needed"],
                                 "" if r["precision"] is None else r["precision"]] for r in rows])
        files.append(path)
    path = out / "capacity_curve.csv"
    by_index = dict(report["risk"].get("capacity_by_index", []))
    _write_csv(path, ["上限人数", "支援が必要な子ども（規則の点数順）", "支援が必要な子ども（リスク指数順）"],
               [[k, n, by_index.get(k, "")] for k, n in report["capacity"]["by_rules"]])
    files.append(path)
    path = out / "items_by_difficulty.csv"
    _write_csv(path, ["データ項目", "困難の種類", "確認済み", "項目あり", "その種類", "両方", "その種類での項目ありの割合", "それ以外での割合", "phi 係数"],
               [[a["item"], a["label"], a["checked"], a["with_item"], a["with_type"], a["both"], a["share_with_type"], a["share_without_type"], a["phi"]]
                for a in report["associations"]])
    files.append(path)
    path = out / "human_check.csv"
    _write_csv(path, ["対応不要の理由", "人数"], [[r["label"], r["count"]] for r in report["human_check"]["reasons"]])
    files.append(path)
    if report["risk"]["available"]:
        path = out / "risk_index_weights.csv"
        _write_csv(path, ["データ項目", "重み（対数オッズ）"], [[w["item"], w["weight"]] for w in report["risk"]["weights"]])
        files.append(path)
    files += charts(report, out)
    return files


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import font_manager
    import matplotlib.pyplot as plt

    font = next((f for f in FONT_FILES if f.exists()), None)
    if font is None:
        raise ReportError("グラフに使う日本語フォント（IPA ゴシック）がありません。make chromium で fonts-ipafont-gothic を入れてください。")
    font_manager.fontManager.addfont(str(font))
    plt.rcParams["font.family"] = font_manager.FontProperties(fname=str(font)).get_name()
    plt.rcParams["axes.unicode_minus"] = False
    return plt


def charts(report: dict[str, Any], out: Path, only: str | None = None) -> list[Path]:
    """The PNG charts (one per figure, or just ``only``); a figure without data gets a chart that says so."""
    written: list[Path] = []
    with _PYPLOT_LOCK:  # pyplot keeps global state; the web UI draws from several threads
        plt = _pyplot()
        for name in CHARTS:
            if only in (None, name):
                _DRAW[name](plt, report, out, written)
    return written


def _save(plt: Any, fig: Any, out: Path, name: str, written: list[Path]) -> None:
    path = out / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)


def _draw_funnel(plt: Any, report: dict[str, Any], out: Path, written: list[Path]) -> None:
    """Chart: funnel per period."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    rows = report["by_period"] or [report["total"]]
    stages = (("flagged", "抽出"), ("checked", "確認"), ("needs_support", "支援が必要"), ("supported", "支援実施"))
    width = 0.8 / len(stages)
    for j, (key, label) in enumerate(stages):
        ax.bar([i + j * width for i in range(len(rows))], [r[key] for r in rows], width, label=label)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(rows))], [r["label"] for r in rows])
    ax.set_ylabel("人数")
    ax.set_title("抽出から支援までの流れ（期間ごと）")
    ax.legend()
    _save(plt, fig, out, "funnel", written)


def _draw_precision_by_rule(plt: Any, report: dict[str, Any], out: Path, written: list[Path]) -> None:
    """Chart: precision per rule."""
    fig, ax = plt.subplots(figsize=(8, 0.6 * max(3, len(report["by_rule"])) + 1))
    rules = report["by_rule"]
    ax.barh([r["label"] for r in rules], [100 * (r["precision"] or 0) for r in rules], color="#4a7ab5")
    for i, r in enumerate(rules):
        ax.text(100 * (r["precision"] or 0) + 1, i, f"{_pct(r['precision'])}（確認 {r['checked']} 人）", va="center")
    total = report["total"]["precision"]
    if total is not None:
        ax.axvline(100 * total, color="#c44", linestyle="--", label=f"一覧全体 {_pct(total)}")
        ax.legend(loc="lower right")
    ax.set_xlim(0, 130)
    ax.set_xlabel("適合率（支援が必要 ÷ 確認, %）")
    ax.set_title("規則ごとの適合率")
    ax.invert_yaxis()
    _save(plt, fig, out, "precision_by_rule", written)


def _draw_capacity_curve(plt: Any, report: dict[str, Any], out: Path, written: list[Path]) -> None:
    """Chart: capacity curve."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    curve = report["capacity"]["by_rules"]
    if curve:
        ax.plot([k for k, _ in curve], [n for _, n in curve], label="規則の点数順")
        by_index = report["risk"].get("capacity_by_index") or []
        if by_index:
            ax.plot([k for k, _ in by_index], [n for _, n in by_index], label="リスク指数順（参考）", linestyle="--")
        ax.axhline(report["capacity"]["positives"], color="#888", linestyle=":", label="支援が必要とされた子ども（全経路）")
        if report["capacity"]["capacity"]:
            ax.axvline(report["capacity"]["capacity"], color="#c44", linestyle="--", label=f"上限人数 {report['capacity']['capacity']}")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "凍結した一覧がまだありません", ha="center", transform=ax.transAxes)
    ax.set_xlabel("上限人数（一覧に載せる人数）")
    ax.set_ylabel("含まれる支援が必要な子ども")
    ax.set_title("上限人数と、一覧に入る支援が必要な子ども")
    _save(plt, fig, out, "capacity_curve", written)


def _draw_items_by_difficulty(plt: Any, report: dict[str, Any], out: Path, written: list[Path]) -> None:
    """Chart: items × difficulty types (phi)."""
    assoc = report["associations"]
    items = sorted({a["item"] for a in assoc})
    kinds = list(dict.fromkeys(a["label"] for a in assoc))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(kinds) + 3), 0.45 * max(4, len(items)) + 1.5))
    if items and kinds:
        grid = [[next((a["phi"] for a in assoc if a["item"] == i and a["label"] == k), None) or 0.0 for k in kinds] for i in items]
        image = ax.imshow(grid, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
        ax.set_xticks(range(len(kinds)), kinds, rotation=30, ha="right")
        ax.set_yticks(range(len(items)), items)
        for y, row in enumerate(grid):
            for x, v in enumerate(row):
                ax.text(x, y, f"{v:.2f}", ha="center", va="center", fontsize=8)
        fig.colorbar(image, ax=ax, label="phi 係数（関連の強さ）")
    else:
        ax.text(0.5, 0.5, "確認済みの支援記録がまだありません", ha="center", transform=ax.transAxes)
    ax.set_title("データ項目と困難の種類の関連")
    _save(plt, fig, out, "items_by_difficulty", written)


def _draw_human_check(plt: Any, report: dict[str, Any], out: Path, written: list[Path]) -> None:
    """Chart: what the human check changed."""
    fig, ax = plt.subplots(figsize=(8, 4))
    h = report["human_check"]
    labels = [ASSESSMENTS["needs_support"], ASSESSMENTS["watch"]] + [f"対応不要: {r['label']}" for r in h["reasons"]]
    values = [h["needs_support"], h["watch"]] + [r["count"] for r in h["reasons"]]
    ax.barh(labels, values, color=["#3a8a3a", "#d9a400"] + ["#888"] * len(h["reasons"]))
    ax.invert_yaxis()
    ax.set_xlabel("人数（抽出して確認した子ども）")
    ax.set_title(f"人による確認の結果（確認 {h['checked']} 人）")
    _save(plt, fig, out, "human_check", written)


def _draw_risk_index(plt: Any, report: dict[str, Any], out: Path, written: list[Path]) -> None:
    """Chart: the risk index's weights."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    r = report["risk"]
    if r["available"]:
        weights = r["weights"][:15]
        ax.barh([w["item"] for w in weights], [w["weight"] for w in weights],
                color=["#c44" if w["weight"] > 0 else "#4a7ab5" for w in weights])
        ax.invert_yaxis()
        ax.axvline(0, color="#333")
        ax.set_xlabel("重み（対数オッズ。正: 支援が必要の方向）")
        ax.set_title(f"リスク指数の項目ごとの重み（{'・'.join(r['fitted_on'])} で当てはめ）")
    else:
        ax.text(0.5, 0.5, "リスク指数はまだ当てはめられません", ha="center", transform=ax.transAxes)
        ax.set_title("リスク指数")
    _save(plt, fig, out, "risk_index", written)


_DRAW = {"funnel": _draw_funnel, "precision_by_rule": _draw_precision_by_rule, "capacity_curve": _draw_capacity_curve,
         "items_by_difficulty": _draw_items_by_difficulty, "human_check": _draw_human_check, "risk_index": _draw_risk_index}


def person_risk_index(gw: Gateway, person_id: str) -> dict[str, Any]:
    """The risk index of a person of the current run (:func:`person_index` on the person's attributes), with ``person_id``.

    Refused with :class:`~gateway.errors.PersonNotFound` if the current run
    has no such person, :class:`~gateway.errors.IndexUnavailable` if too few
    past decisions exist to fit the index.
    """
    with gw.engine.connect() as conn:
        run_id = current_run_id(conn)
        persons = support.all_attributes(conn, run_id, [person_id]) if run_id else {}
    if person_id not in persons:
        raise PersonNotFound(f"人物 {person_id} は現在の名寄せ結果にありません。")
    found = person_index(gw, support.flatten(persons[person_id]))
    if found is None:
        raise IndexUnavailable("過去の判断が少なく、リスク指数はまだ当てはめられません。")
    return {"person_id": person_id, **found}
