"""Charts people look at: lift per rule, action effectiveness over time, the threshold sweep.

Each function writes PNG files (matplotlib, Agg backend: no display needed) and
an HTML page showing them beside the numbers, into the folder of the table it
illustrates (``<home>/backtest``, ``<home>/outcomes``, ``<home>/rule_lab``).
Every chart says what is measured, its unit, and shows the uncertainty.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from agents.learning.outcomes import AIM_WORDS, effectiveness  # noqa: E402

BLUE, GREY, RED = "#2563eb", "#9ca3af", "#dc2626"


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _page(path: Path, title: str, images: Sequence[Path], header: Sequence[str], rows: Iterable[Sequence[Any]],
          notes: Sequence[str] = ()) -> Path:
    e = html.escape
    body = [f"<h1>{e(title)}</h1>"]
    body += [f"<p>{e(n)}</p>" for n in notes]
    body += [f'<img src="{e(p.name)}" alt="{e(p.stem)}" style="max-width:100%">' for p in images]
    body.append("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr></thead><tbody>")
    body += ["<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows]
    body.append("</tbody></table>")
    style = ("body{font-family:system-ui,sans-serif;margin:2em;color:#111}table{border-collapse:collapse;margin-top:1em}"
             "td,th{border:1px solid #ddd;padding:4px 8px;text-align:right}th{background:#f3f4f6}"
             "td:first-child,th:first-child{text-align:left}")
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>"
                    f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n", encoding="utf-8")
    return path


def _ci(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


# ------------------------------------------------------------------ backtest: lift per rule


def backtest_charts(report: Any, folder: Path | str, *, floor: float | None = None) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rules = [r for r in report.rules]
    ests = [r.estimate for r in rules]
    fig, ax = plt.subplots(figsize=(8, 0.45 * max(len(rules), 3) + 1.2))
    ys = list(range(len(rules)))[::-1]
    for y, r, est in zip(ys, rules, ests):
        if est.lift is None:
            ax.text(1.0, y, "  no lift measured (not enough data)", va="center", fontsize=8, color=GREY)
            continue
        color = BLUE if est.verdict == "lift" else (RED if est.verdict == "no lift" else GREY)
        ax.barh(y, est.lift, color=color, alpha=0.8)
        if est.low is not None:
            ax.errorbar(est.lift, y, xerr=[[est.lift - est.low], [est.high - est.lift]], fmt="none", ecolor="#111",
                        capsize=3)
        ax.text(max(est.high or est.lift, est.lift) + 0.05, y, f"{est.lift:.2f} ({est.verdict})", va="center", fontsize=8)
    ax.axvline(1.0, color="#111", lw=1)
    if floor:
        ax.axvline(floor, color=RED, lw=1, ls="--", label=f"lift floor {floor:g}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_yticks(ys, [r.rule_id for r in rules])
    ax.set_xlabel("lift = flagged bad% / unflagged bad% (bars: 95% bootstrap interval)")
    ax.set_title(f"Backtest lift per rule, {report.start} to {report.end}")
    png = _save(fig, folder / "lift_per_rule.png")
    rows = [(r.rule_id, r.flagged_deals, f"{r.flagged_bad_rate:.0%}" if r.flagged_bad_rate is not None else "-",
             r.unflagged_deals, f"{r.unflagged_bad_rate:.0%}" if r.unflagged_bad_rate is not None else "-",
             _ci(e.lift), f"{_ci(e.low)}-{_ci(e.high)}", e.verdict) for r, e in zip(rules, ests)]
    page = _page(folder / "backtest.html", f"Backtest {report.start} to {report.end}", [png],
                 ["rule", "flagged", "bad%", "unflagged", "bad%", "lift", "95% CI", "verdict"], rows,
                 ["bad = later lost, or slipped more than 30 days past the close date shown when first judged."])
    return [png, page]


# ------------------------------------------------------------------ outcomes: effectiveness


def effectiveness_charts(outcomes: Sequence[Any], folder: Path | str) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    by_rule = effectiveness(outcomes, by="rule")
    by_week = effectiveness(outcomes, by="week")
    out: list[Path] = []

    fig, ax = plt.subplots(figsize=(8, 0.5 * max(len(by_rule), 3) + 1.4))
    ys = list(range(len(by_rule)))[::-1]
    for y, e in zip(ys, by_rule):
        if e.rate is not None:
            ax.barh(y + 0.18, 100 * e.rate, height=0.36, color=BLUE, label="approved" if y == ys[0] else None)
            ax.errorbar(100 * e.rate, y + 0.18, xerr=[[100 * (e.rate - e.low)], [100 * (e.high - e.rate)]],
                        fmt="none", ecolor="#111", capsize=3)
            ax.text(100 * e.high + 1, y + 0.18, f"{e.rate:.0%} of {e.approved}", va="center", fontsize=8)
        if e.compared_rate is not None:
            ax.barh(y - 0.18, 100 * e.compared_rate, height=0.36, color=GREY,
                    label="dismissed / undecided" if y == ys[0] else None)
            ax.text(100 * e.compared_rate + 1, y - 0.18, f"{e.compared_rate:.0%} of {e.compared}", va="center", fontsize=8)
    aims = {}
    for o in outcomes:
        aims.setdefault(o.rule_id, AIM_WORDS.get(o.aimed_change, o.aimed_change))
    ax.set_yticks(ys, [f"{e.key}\n({aims.get(e.key, '')})" for e in by_rule], fontsize=8)
    ax.set_xlim(0, 115)
    ax.set_xlabel("% where the aimed change happened in the check window\n(black bars: 95% Wilson interval)")
    ax.set_title("Action effectiveness per rule")
    ax.legend(loc="lower right", fontsize=8)
    out.append(_save(fig, folder / "effectiveness_per_rule.png"))

    fig, ax = plt.subplots(figsize=(8, 3.6))
    weeks = [dt.date.fromisoformat(e.key) for e in by_week]
    rate = [100 * e.rate if e.rate is not None else float("nan") for e in by_week]
    low = [100 * e.low if e.low is not None else float("nan") for e in by_week]
    high = [100 * e.high if e.high is not None else float("nan") for e in by_week]
    comp = [100 * e.compared_rate if e.compared_rate is not None else float("nan") for e in by_week]
    ax.fill_between(weeks, low, high, color=BLUE, alpha=0.15, label="95% interval")
    ax.plot(weeks, rate, "o-", color=BLUE, label="approved actions")
    ax.plot(weeks, comp, "s--", color=GREY, label="dismissed / undecided")
    for w, r, e in zip(weeks, rate, by_week):
        ax.annotate(f"n={e.approved}", (w, r), textcoords="offset points", xytext=(0, 6), fontsize=7, ha="center")
    ax.set_ylim(0, 100)
    ax.set_ylabel("% where the aimed change happened")
    ax.set_xticks(weeks, [w.strftime("%d %b") for w in weeks])
    ax.set_xlabel("week of the flag (Monday)")
    ax.set_title("Action effectiveness over time (all rules)")
    ax.legend(fontsize=8, loc="lower left")
    out.append(_save(fig, folder / "effectiveness_over_time.png"))

    def pct(x):
        return "-" if x is None else f"{x:.0%}"

    rows = [(e.key, aims.get(e.key, ""), e.approved, e.worked, pct(e.rate), f"{pct(e.low)}-{pct(e.high)}", e.compared,
             pct(e.compared_rate), "-" if e.difference_points is None else f"{e.difference_points:+.0f} pts")
            for e in by_rule]
    out.append(_page(folder / "outcomes.html", "Action effectiveness", out,
                     ["rule", "aim", "approved", "worked", "rate", "95% CI", "dismissed/undecided", "their rate",
                      "difference"], rows,
                     ["rate = approved items whose aim happened within the check window / approved items checked. "
                      "An association, not an experiment: managers choose what to approve."]))
    return out


# ------------------------------------------------------------------ rule lab: threshold sweep


def rule_lab_charts(report: Any, folder: Path | str) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images: list[Path] = []
    if report.sweep:
        fig, ax = plt.subplots(figsize=(8, 4))
        t = [s.threshold for s in report.sweep]
        lift = [s.estimate.lift if s.estimate.lift is not None else float("nan") for s in report.sweep]
        low = [s.estimate.low if s.estimate.low is not None else float("nan") for s in report.sweep]
        high = [s.estimate.high if s.estimate.high is not None else float("nan") for s in report.sweep]
        ax.fill_between(t, low, high, color=BLUE, alpha=0.15, label="95% bootstrap interval")
        ax.plot(t, lift, "o-", color=BLUE, label="lift")
        for s, x, y in zip(report.sweep, t, lift):
            ax.annotate(f"p{s.percentile}", (x, y), textcoords="offset points", xytext=(0, 7), fontsize=7, ha="center")
        if report.best is not None:
            ax.plot([report.best.threshold], [report.best.estimate.lift], "*", ms=14, color=RED,
                    label=f"best: {report.best.expression}")
        ax.axhline(1.0, color="#111", lw=1)
        ax.set_xlabel(f"threshold on {report.sweep_feature} ({report.sweep_operator} t; t = percentiles of won deals)")
        ax.set_ylabel("lift (loss rate flagged / unflagged)")
        ax2 = ax.twinx()
        ax2.bar(t, [100 * s.share_flagged for s in report.sweep], width=(max(t) - min(t) or 1) / 40, color=GREY,
                alpha=0.5, label="% flagged")
        ax2.set_ylabel("% of deals flagged")
        ax2.set_ylim(0, 100)
        ax.set_zorder(ax2.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.legend(loc="upper left", fontsize=8)
        ax.set_title(f"Threshold sweep: {report.expression}")
        images.append(_save(fig, folder / "threshold_sweep.png"))
    e = report.estimate
    rows = [(s.expression, f"p{s.percentile}", s.estimate.flagged, f"{s.share_flagged:.1%}", _ci(s.estimate.lift),
             f"{_ci(s.estimate.low)}-{_ci(s.estimate.high)}", s.estimate.verdict) for s in report.sweep]
    page = _page(folder / "rule_lab.html", f"Rule lab: {report.expression}", images,
                 ["rule", "won-deal percentile", "flagged", "share", "lift", "95% CI", "verdict"], rows,
                 [f"{report.rows} closed deals, {report.lost_rows} lost. The rule flags {e.flagged} "
                  f"({report.share_flagged:.1%}); lift {_ci(e.lift)} (95% CI {_ci(e.low)}-{_ci(e.high)}): {e.verdict}."])
    return [*images, page]
