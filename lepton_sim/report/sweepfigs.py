"""Sweep figures: each metric against the varied parameters (lines for one, heat maps for two), and the
cost-against-latency-target frontier.

Every metric axis (or colour bar) names its unit (`units.unit`); a service's latency is drawn with
its SLO target (a red dotted line; on a heat map, a red frame round each cell over the target).
Yes/no metrics (a met SLO) are drawn as the fraction of seeds that say yes: a line from 0 to 1, or
cells coloured yes / no / some seeds, never on a continuous colour scale.
"""
from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from lepton_sim.report.placement import Label, place_labels
from lepton_sim.report.style import MUTED, SLO_RED, color, drawing, fmt, png_bytes
from lepton_sim.report.units import axis_label, latency_service, unit, wrap_path

Row = Mapping[str, Any]
# the SLO (percentile, latency target in ms) of a service at a grid point given as {parameter: value}
SloOf = Callable[[str, Mapping[str, Any]], "tuple[float, float] | None"]
MAX_LINES = 8
MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*")
YES, NO, SOME = "#3a9a5b", "#c2414b", "#f2b134"


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def numeric_metrics(rows: Sequence[Row], metrics: Sequence[str]) -> list[str]:
    """The collected metrics with at least one finite number among the ok rows (bools count as 0/1)."""
    return [m for m in metrics if any(is_number(_num(r.get(m))) for r in rows if r["status"] == "ok")]


def is_boolean(rows: Sequence[Row], metric: str) -> bool:
    """Whether every value of `metric` among the ok rows is a yes/no (and there is one)."""
    values = [r.get(metric) for r in rows if r["status"] == "ok" and r.get(metric) is not None]
    return bool(values) and all(isinstance(v, bool) for v in values)


def _num(v: Any) -> Any:
    return float(v) if isinstance(v, bool) else v


def _values(rows: Sequence[Row], param: str) -> list[Any]:
    return list(dict.fromkeys(r[param] for r in rows))


def _axis(values: list[Any]) -> tuple[list[float], list[str] | None]:
    """Positions for parameter values: the numbers themselves, or 0..n-1 with labels for other values."""
    if all(is_number(v) for v in values):
        return [float(v) for v in values], None
    return list(range(len(values))), [str(v) for v in values]


def _tick(v: Any) -> str:
    return fmt(v) if is_number(v) else str(v)


def seed_stats(rows: Sequence[Row], keys: Sequence[str], metric: str) -> dict[tuple[Any, ...], list[float]]:
    """The metric's values over seeds for every combination of `keys`, ok rows only (a yes is 1, a no 0)."""
    out: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    for r in rows:
        v = _num(r.get(metric))
        if r["status"] == "ok" and is_number(v):
            out[tuple(r[k] for k in keys)].append(float(v))
    return out


def _slo_at(slo_of: SloOf | None, metric: str, point: Mapping[str, Any]) -> tuple[float, float] | None:
    service = latency_service(metric)
    return slo_of(service, point) if slo_of is not None and service is not None else None


def lines_png(rows: Sequence[Row], params: Sequence[str], metrics: Sequence[str],
              slo_of: SloOf | None = None) -> bytes:
    """One panel per metric against the first parameter; one line per combination of the others.

    Lines are means over seeds, the band spans the seeds' minimum to maximum, dots are the seeds; a
    yes/no metric is the fraction of seeds saying yes. Latency panels carry their SLO target.
    """
    x_param, others = params[0], list(params[1:])
    xs_vals = _values(rows, x_param)
    pos, labels = _axis(xs_vals)
    groups = list(dict.fromkeys(tuple(r[k] for k in others) for r in rows))[:MAX_LINES]
    cols = min(3, len(metrics))
    nrows = math.ceil(len(metrics) / cols)
    slo_pct: set[float] = set()
    with drawing(10.0, 2.9 * nrows + 0.7) as fig:
        axes = fig.subplots(nrows, cols, squeeze=False)
        for i, metric in enumerate(metrics):
            ax = axes[i // cols][i % cols]
            stats = seed_stats(rows, [x_param, *others], metric)
            boolean = is_boolean(rows, metric)
            for g, group in enumerate(groups):
                _line(ax, stats, xs_vals, pos, group, g, _group_label(others, group), boolean)
                point = dict(zip(others, group))
                targets = [(p, _slo_at(slo_of, metric, {**point, x_param: x})) for x, p in zip(xs_vals, pos)]
                drawn = [(p, t) for p, t in targets if t is not None]
                if drawn:
                    slo_pct.update(pct for _, (pct, _) in drawn)
                    ax.plot([p for p, _ in drawn], [ms for _, (_, ms) in drawn], color=SLO_RED, lw=1.2, ls=":",
                            zorder=1)
            ax.set_title(wrap_path(metric), fontsize=8.5, loc="left")
            if boolean:
                ax.set_ylim(-0.05, 1.05)
                ax.set_yticks([0, 0.5, 1], ["0 (no)", "0.5", "1 (yes)"])
                ax.set_ylabel("fraction of seeds: yes", fontsize=8)
            else:
                ax.ticklabel_format(axis="y", useOffset=False)
                ax.set_ylabel(unit(metric), fontsize=8)
            if labels:
                ax.set_xticks(pos, labels)
        spare = [axes[j // cols][j % cols] for j in range(len(metrics), nrows * cols)]
        for ax in spare:
            ax.axis("off")
        fig.supxlabel(f"every panel against {axis_label(x_param)}", fontsize=8.5)
        entries: list[tuple[Any, str]] = []
        if others:
            entries += [(Line2D([], [], color=color(g), lw=1.6, **_marker(g)), _group_label(others, group))
                        for g, group in enumerate(groups)]
        if slo_pct:
            which = f"p{fmt(next(iter(slo_pct)))} " if len(slo_pct) == 1 else ""
            entries.append((Line2D([], [], color=SLO_RED, lw=1.2, ls=":"), f"SLO: {which}latency target"))
        if entries:  # in the first empty panel's place, else beside the panels: never over a line
            title = "\n".join(others) or None
            handles, texts = [h for h, _ in entries], [t for _, t in entries]
            if spare:
                spare[0].legend(handles, texts, loc="center", fontsize=8, title=title, title_fontsize=8)
            else:
                fig.legend(handles, texts, loc="outside right upper", fontsize=8, title=title, title_fontsize=8)
        return png_bytes(fig)


def _marker(g: int) -> dict[str, Any]:
    """Group `g`'s marker: its own shape, filled for the first line, open (and larger) for the others, so
    that lines through the same point all show."""
    return {"marker": MARKERS[g % len(MARKERS)], "ms": 3.5 if g == 0 else 5.5, "mfc": None if g == 0 else "white"}


def _line(ax: Axes, stats: Mapping[tuple[Any, ...], list[float]], xs_vals: list[Any], pos: list[float],
          group: tuple[Any, ...], g: int, label: str, boolean: bool) -> None:
    pts = [(p, stats[(x, *group)]) for x, p in zip(xs_vals, pos) if stats.get((x, *group))]
    if not pts:
        return
    xs = [p for p, _ in pts]
    col = color(g)
    ax.plot(xs, [statistics.fmean(v) for _, v in pts], color=col, lw=1.6, label=label, zorder=3 + g % 2,
            **_marker(g))
    if not boolean and any(len(v) > 1 for _, v in pts):
        ax.fill_between(xs, [min(v) for _, v in pts], [max(v) for _, v in pts], color=col, alpha=0.15, lw=0)
        for p, v in pts:
            ax.plot([p] * len(v), v, ls="none", marker=".", ms=3, color=col, alpha=0.5, zorder=5)


def _group_label(keys: Sequence[str], group: tuple[Any, ...]) -> str:
    return ", ".join(_tick(v) for v in group) if keys else "mean over seeds"


def heatmaps_png(rows: Sequence[Row], params: Sequence[str], metrics: Sequence[str],
                 slo_of: SloOf | None = None) -> bytes:
    """One heat map per metric over the two parameters, cells the mean over seeds, annotated.

    Yes/no metrics are cells coloured yes, no or "k of n" seeds; latency cells over their SLO target
    are framed in red (and a fixed target is marked on the colour bar).
    """
    p_y, p_x = params[0], params[1]
    ys, xs = _values(rows, p_y), _values(rows, p_x)
    cols = min(2, len(metrics))
    nrows = math.ceil(len(metrics) / cols)
    with drawing(10.0 if cols > 1 else 5.6, (0.3 * len(ys) + 1.7) * nrows + 0.3) as fig:
        axes = fig.subplots(nrows, cols, squeeze=False)
        for i, metric in enumerate(metrics):
            ax = axes[i // cols][i % cols]
            stats = seed_stats(rows, [p_y, p_x], metric)
            if is_boolean(rows, metric):
                _yes_no_map(fig, ax, stats, ys, xs)
            else:
                _number_map(fig, ax, stats, ys, xs, metric, lambda y, x: _slo_at(slo_of, metric, {p_y: y, p_x: x}))
            ax.set_xticks(range(len(xs)), [_tick(v) for v in xs])
            ax.set_yticks(range(len(ys)), [_tick(v) for v in ys])
            ax.set_xlabel(axis_label(p_x), fontsize=8)
            ax.set_ylabel(axis_label(p_y), fontsize=8)
            ax.set_title(wrap_path(metric, 44), fontsize=8.5, loc="left")
            ax.grid(False)
        for j in range(len(metrics), nrows * cols):
            axes[j // cols][j % cols].set_visible(False)
        return png_bytes(fig)


def _number_map(fig: Figure, ax: Axes, stats: Mapping[tuple[Any, ...], list[float]], ys: list[Any], xs: list[Any],
                metric: str, slo: Callable[[Any, Any], tuple[float, float] | None]) -> None:
    grid = [[statistics.fmean(stats[(y, x)]) if stats.get((y, x)) else math.nan for x in xs] for y in ys]
    finite = [v for row in grid for v in row if not math.isnan(v)]
    targets = {t[1] for t in (slo(y, x) for y in ys for x in xs) if t is not None}
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    fixed = next(iter(targets)) if len(targets) == 1 else None
    if fixed is not None and hi < fixed * 1.04 <= 2 * hi:
        hi = fixed * 1.04  # the colour scale reaches past a fixed SLO target near the values: the bar marks it
    image = ax.imshow(grid, aspect="auto", cmap="viridis", origin="lower", vmin=lo, vmax=hi)
    bar = fig.colorbar(image, ax=ax, shrink=0.9)
    label = unit(metric)
    if fixed is not None:
        on_scale = lo <= fixed <= hi
        if on_scale:
            bar.ax.axhline(fixed, color=SLO_RED, lw=2.5)
        label += f"; SLO target {fmt(fixed)} ms" + ("" if on_scale else " (off the scale)")
    bar.set_label(label, fontsize=8)
    mid = (lo + hi) / 2
    for yi, (y, row) in enumerate(zip(ys, grid)):
        for xi, (x, v) in enumerate(zip(xs, row)):
            ax.text(xi, yi, "–" if math.isnan(v) else fmt(v), ha="center", va="center", fontsize=7.5,
                    color="white" if not math.isnan(v) and v < mid else "black")
            target = slo(y, x)
            if target is not None and not math.isnan(v) and v > target[1]:
                ax.add_patch(Rectangle((xi - 0.47, yi - 0.47), 0.94, 0.94, fill=False, ec=SLO_RED, lw=2.2))


def yes_no_cells(stats: Mapping[tuple[Any, ...], list[float]], ys: Sequence[Any],
                 xs: Sequence[Any]) -> tuple[list[list[float]], list[list[str]]]:
    """Per cell of a yes/no map, its category (2 every seed yes, 1 some, 0 none, nan nothing ran) and text."""
    codes, texts = [], []
    for y in ys:
        row_codes, row_texts = [], []
        for x in xs:
            v = stats.get((y, x))
            if not v:
                row_codes.append(math.nan)
                row_texts.append("–")
                continue
            k = sum(1 for b in v if b >= 0.5)
            row_codes.append(2.0 if k == len(v) else 0.0 if k == 0 else 1.0)
            row_texts.append("yes" if k == len(v) else "no" if k == 0 else f"{k} of {len(v)}")
        codes.append(row_codes)
        texts.append(row_texts)
    return codes, texts


def _yes_no_map(fig: Figure, ax: Axes, stats: Mapping[tuple[Any, ...], list[float]], ys: list[Any],
                xs: list[Any]) -> None:
    """Cells: yes where every seed says yes, no where none does, "k of n" between; – where nothing ran."""
    codes, texts = yes_no_cells(stats, ys, xs)
    image = ax.imshow(codes, aspect="auto", cmap=ListedColormap([NO, SOME, YES]), vmin=-0.5, vmax=2.5,
                      origin="lower")
    bar = fig.colorbar(image, ax=ax, shrink=0.9, ticks=[0, 1, 2])  # three categories, not a scale
    bar.ax.set_yticklabels(["no", "some\nseeds", "yes\n(every\nseed)"], fontsize=7.5)
    bar.ax.tick_params(length=0)
    for yi, row in enumerate(texts):
        for xi, t in enumerate(row):
            ax.text(xi, yi, t, ha="center", va="center", fontsize=7.5, color="black" if t in ("–", "") or
                    " of " in t else "white")


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


def step_labels(front: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points of a frontier where its cost changes (and its first): the ones worth a price label."""
    return [(t, c) for i, (t, c) in enumerate(front) if i == 0 or not math.isclose(c, front[i - 1][1], rel_tol=1e-9)]


def frontier_png(rows: Sequence[Row], target: str, cost: str, checks: Sequence[str],
                 conditions: Sequence[str]) -> bytes:
    """Cheapest feasible cost against the latency target, one line (and marker shape) per condition.

    Every run is a small grey mark drawn over the lines' open markers, so that none hides another;
    prices label the points where a line's cost changes, placed clear of one another and of the lines;
    targets nothing meets are crosses in a strip of their own below, one row per line.
    """
    lines = list(frontier_points(rows, target, cost, checks, conditions).items())[:MAX_LINES]
    every = [(float(r[target]), float(_num(r[cost])), feasible(r, checks)) for r in rows
             if r["status"] == "ok" and is_number(_num(r.get(cost))) and is_number(r[target])]
    failing = [(i, failed) for i, (_, (_, failed)) in enumerate(lines) if failed]
    names = [_group_label(conditions, g) if conditions else "cheapest that meets it" for g, _ in lines]
    with drawing(8.6 if conditions else 7.6, 4.4 + (0.3 + 0.22 * len(failing) if failing else 0.0)) as fig:
        if failing:
            ax, strip = fig.subplots(2, 1, sharex=True, height_ratios=[4.0, 0.35 + 0.22 * len(failing)])
        else:
            ax, strip = fig.add_subplot(), None
        labels: list[Label] = []
        for i, (front, _) in enumerate(line for _, line in lines):
            if front:
                ax.plot([t for t, _ in front], [c for _, c in front], color=color(i), lw=2, marker=MARKERS[i % 8],
                        ms=8 - min(i, 3), mfc="white", mew=1.6, zorder=3, label=names[i])
                labels += [Label(t, c, f"${fmt(c)}", color(i)) for t, c in step_labels(front)]
        for ok, marker, label in ((True, "o", "a run that meets its SLO"), (False, "v", "misses its SLO / not solved")):
            pts = [(t, c) for t, c, f in every if f == ok]
            if pts:
                ax.plot([t for t, _ in pts], [c for _, c in pts], ls="none", marker=marker, ms=3.5, color=MUTED,
                        zorder=4, label=label)
        ax.set_ylabel(f"{cost} ({unit(cost) or 'US$ per hour'})")
        ax.set_title("Cost against the latency target", loc="left")
        if not every and not lines:
            ax.text(0.5, 0.5, "no results", ha="center", color=MUTED, transform=ax.transAxes)
        bottom = ax
        if strip is not None:
            bottom = strip
            for row, (i, failed) in enumerate(failing):
                strip.plot(failed, [row] * len(failed), ls="none", marker="x", ms=7, mew=1.8, color=color(i))
            strip.set_yticks(range(len(failing)), [names[i] for i, _ in failing], fontsize=7.5)
            strip.set_ylim(len(failing) - 0.5, -0.5)
            strip.set_title("× nothing meets this target" + (f" (by {', '.join(conditions)})" if conditions else ""),
                            loc="left", fontsize=8, color=MUTED)
            strip.grid(axis="y", visible=False)
            strip.set_xmargin(0.05)
        bottom.set_xlabel(f"{target} (latency target, ms)")
        handles, texts = ax.get_legend_handles_labels()
        if handles:
            fig.legend(handles, texts, loc="outside right upper", title=", ".join(conditions) or None, fontsize=7.5)
        if labels:
            place_labels(fig, ax, labels)
        return png_bytes(fig)
