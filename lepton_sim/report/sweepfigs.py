"""Sweep figures: each metric against the varied parameters (lines for one, heat maps for two), and the
cost-against-latency-target frontier."""
from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.axes import Axes

from lepton_sim.report.style import MUTED, color, drawing, fmt, png_bytes

Row = Mapping[str, Any]
MAX_LINES = 8


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def numeric_metrics(rows: Sequence[Row], metrics: Sequence[str]) -> list[str]:
    """The collected metrics with at least one finite number among the ok rows (bools count as 0/1)."""
    return [m for m in metrics if any(is_number(_num(r.get(m))) for r in rows if r["status"] == "ok")]


def _num(v: Any) -> Any:
    return float(v) if isinstance(v, bool) else v


def _values(rows: Sequence[Row], param: str) -> list[Any]:
    return list(dict.fromkeys(r[param] for r in rows))


def _axis(values: list[Any]) -> tuple[list[float], list[str] | None]:
    """Positions for parameter values: the numbers themselves, or 0..n-1 with labels for other values."""
    if all(is_number(v) for v in values):
        return [float(v) for v in values], None
    return list(range(len(values))), [str(v) for v in values]


def seed_stats(rows: Sequence[Row], keys: Sequence[str], metric: str) -> dict[tuple[Any, ...], list[float]]:
    """The metric's values over seeds for every combination of `keys`, ok rows only."""
    out: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    for r in rows:
        v = _num(r.get(metric))
        if r["status"] == "ok" and is_number(v):
            out[tuple(r[k] for k in keys)].append(float(v))
    return out


def lines_png(rows: Sequence[Row], params: Sequence[str], metrics: Sequence[str]) -> bytes:
    """One panel per metric against the first parameter; one line per combination of the others.

    Lines are means over seeds, the band spans the seeds' minimum to maximum, dots are the seeds.
    """
    x_param, others = params[0], list(params[1:])
    xs_vals = _values(rows, x_param)
    pos, labels = _axis(xs_vals)
    groups = list(dict.fromkeys(tuple(r[k] for k in others) for r in rows))[:MAX_LINES]
    cols = min(3, len(metrics))
    nrows = math.ceil(len(metrics) / cols)
    with drawing(3.9 * cols + (2.2 if others else 0), 2.9 * nrows + 0.3) as fig:
        axes = fig.subplots(nrows, cols, squeeze=False)
        for i, metric in enumerate(metrics):
            ax = axes[i // cols][i % cols]
            stats = seed_stats(rows, [x_param, *others], metric)
            for g, group in enumerate(groups):
                _line(ax, stats, xs_vals, pos, group, color(g), _group_label(others, group))
            ax.set_title(metric, fontsize=8.5, loc="left")
            ax.set_xlabel(x_param, fontsize=8)
            ax.ticklabel_format(axis="y", useOffset=False)
            if labels:
                ax.set_xticks(pos, labels)
        for j in range(len(metrics), nrows * cols):
            axes[j // cols][j % cols].set_visible(False)
        if others:
            handles, names = axes[0][0].get_legend_handles_labels()
            fig.legend(handles, names, loc="outside right upper", title=", ".join(others), fontsize=7.5)
        return png_bytes(fig)


def _line(ax: Axes, stats: Mapping[tuple[Any, ...], list[float]], xs_vals: list[Any], pos: list[float],
          group: tuple[Any, ...], col: str, label: str) -> None:
    pts = [(p, stats[(x, *group)]) for x, p in zip(xs_vals, pos) if stats.get((x, *group))]
    if not pts:
        return
    xs = [p for p, _ in pts]
    ax.plot(xs, [statistics.fmean(v) for _, v in pts], color=col, lw=1.6, marker="o", ms=3.5, label=label)
    if any(len(v) > 1 for _, v in pts):
        ax.fill_between(xs, [min(v) for _, v in pts], [max(v) for _, v in pts], color=col, alpha=0.15, lw=0)
        for p, v in pts:
            ax.plot([p] * len(v), v, ls="none", marker=".", ms=3, color=col, alpha=0.5)


def _group_label(keys: Sequence[str], group: tuple[Any, ...]) -> str:
    return ", ".join(fmt(v) if is_number(v) else str(v) for v in group) if keys else "mean over seeds"


def heatmaps_png(rows: Sequence[Row], params: Sequence[str], metrics: Sequence[str]) -> bytes:
    """One heat map per metric over the two parameters, cells the mean over seeds, annotated."""
    p_y, p_x = params[0], params[1]
    ys, xs = _values(rows, p_y), _values(rows, p_x)
    cols = min(2, len(metrics))
    nrows = math.ceil(len(metrics) / cols)
    with drawing(5.4 * cols, (0.45 * len(ys) + 1.6) * nrows + 0.3) as fig:
        axes = fig.subplots(nrows, cols, squeeze=False)
        for i, metric in enumerate(metrics):
            ax = axes[i // cols][i % cols]
            stats = seed_stats(rows, [p_y, p_x], metric)
            grid = [[statistics.fmean(stats[(y, x)]) if stats.get((y, x)) else math.nan for x in xs] for y in ys]
            image = ax.imshow(grid, aspect="auto", cmap="viridis", origin="lower")
            fig.colorbar(image, ax=ax, shrink=0.85)
            finite = [v for row in grid for v in row if not math.isnan(v)]
            mid = (min(finite) + max(finite)) / 2 if finite else 0.0
            for yi, row in enumerate(grid):
                for xi, v in enumerate(row):
                    ax.text(xi, yi, "–" if math.isnan(v) else fmt(v), ha="center", va="center", fontsize=7,
                            color="white" if not math.isnan(v) and v < mid else "black")
            ax.set_xticks(range(len(xs)), [fmt(v) if is_number(v) else str(v) for v in xs])
            ax.set_yticks(range(len(ys)), [fmt(v) if is_number(v) else str(v) for v in ys])
            ax.set_xlabel(p_x, fontsize=8)
            ax.set_ylabel(p_y, fontsize=8)
            ax.set_title(metric, fontsize=8.5, loc="left")
            ax.grid(False)
        for j in range(len(metrics), nrows * cols):
            axes[j // cols][j % cols].set_visible(False)
        return png_bytes(fig)


def feasible(row: Row, checks: Sequence[str]) -> bool:
    """A row counts on the frontier when it ran, its plan was solved and every collected SLO was met."""
    if row["status"] != "ok":
        return False
    for col in checks:
        v = row.get(col)
        if col.endswith("slo.met") and v is not True:
            return False
        if col.endswith("plan.status") and v not in ("optimal", "feasible"):
            return False
    return True


def frontier_points(rows: Sequence[Row], target: str, cost: str, checks: Sequence[str],
                    conditions: Sequence[str]) -> dict[tuple[Any, ...], tuple[list[tuple[float, float]], list[float]]]:
    """Per combination of the `conditions` (e.g. load): the cheapest feasible mean cost per latency target,
    and the targets with no feasible grid point. Other parameters (deployment choices) are minimised over.

    A grid point counts for a target only if every one of its seeds is feasible.
    """
    per_point: dict[tuple[tuple[Any, ...], float, int], list[float | None]] = defaultdict(list)
    for r in rows:
        if not is_number(r[target]):
            continue
        v = _num(r.get(cost))
        ok = feasible(r, checks) and is_number(v)
        per_point[(tuple(r[c] for c in conditions), float(r[target]), r["point"])].append(float(v) if ok else None)
    out: dict[tuple[Any, ...], tuple[list[tuple[float, float]], list[float]]] = {}
    for group in dict.fromkeys(g for g, _, _ in per_point):
        by_target: dict[float, list[float]] = defaultdict(list)
        targets = set()
        for (g, t, _), values in per_point.items():
            if g != group:
                continue
            targets.add(t)
            if all(v is not None for v in values):
                by_target[t].append(statistics.fmean(v for v in values if v is not None))
        out[group] = (sorted((t, min(c)) for t, c in by_target.items()), sorted(targets - set(by_target)))
    return out


def frontier_png(rows: Sequence[Row], target: str, cost: str, checks: Sequence[str],
                 conditions: Sequence[str]) -> bytes:
    """Cheapest feasible cost against the latency target, one line per condition; x where nothing is feasible."""
    lines = frontier_points(rows, target, cost, checks, conditions)
    every = [(float(r[target]), float(_num(r[cost])), feasible(r, checks)) for r in rows
             if r["status"] == "ok" and is_number(_num(r.get(cost))) and is_number(r[target])]
    low = min((c for _, c, _ in every), default=0.0)
    with drawing(8.5 if conditions else 7.5, 4.4) as fig:
        ax = fig.add_subplot()
        for ok, marker, label in ((True, "o", "a run that meets its SLO"), (False, "v", "misses its SLO / not solved")):
            pts = [(t, c) for t, c, f in every if f == ok]
            if pts:
                ax.plot([t for t, _ in pts], [c for _, c in pts], ls="none", marker=marker, ms=4, color="#9aa7b4",
                        alpha=0.7, label=label)
        for i, (group, (front, failed)) in enumerate(list(lines.items())[:MAX_LINES]):
            name = _group_label(conditions, group) if conditions else "cheapest that meets it"
            if front:
                ax.plot([t for t, _ in front], [c for _, c in front], color=color(i), lw=2, marker="o", ms=5,
                        label=name)
                for t, c in front:
                    ax.annotate(f"${fmt(c)}", (t, c), textcoords="offset points", xytext=(0, 7), ha="center",
                                fontsize=7, color=color(i))
            if failed:
                ax.plot(failed, [low] * len(failed), ls="none", marker="x", ms=8, color=color(i),
                        label=f"{name}: nothing meets it" if conditions else "nothing meets this target")
        ax.set_xlabel(f"{target} (latency target, ms)")
        ax.set_ylabel(f"{cost} (US$ per hour)")
        ax.set_title("Cost against the latency target", loc="left")
        if conditions:
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), title=", ".join(conditions), fontsize=7)
        else:
            ax.legend(loc="best")
        if not every and not lines:
            ax.text(0.5, 0.5, "no results", ha="center", color=MUTED, transform=ax.transAxes)
        return png_bytes(fig)
