"""Figures over simulated time (pool and link utilisation, LLM pools' tokens, KV cache and running
sequences) and cost/energy breakdowns."""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from lepton_sim.report.style import NEUTRAL, color, drawing, fmt, png_bytes, site_colours

MAX_SERIES = 10
WARMUP = "#e3e8ee"


@dataclass(frozen=True)
class Panel:
    """One panel over simulated time: a line per series (a pool or link direction id -> its value per bin)."""

    title: str
    ylabel: str
    series: Mapping[str, Sequence[float | None]]
    percent: bool = False  # the values are fractions, drawn as per cent


def utilisation_png(timeseries: Mapping[str, Any], warmup_s: float, duration_s: float,
                    colours: Mapping[str, str] | None = None) -> bytes:
    """Two panels sharing the time axis: each pool's mean replica utilisation, each link direction's."""
    return timeseries_png((Panel("replica pools (mean over replicas)", "utilisation (%)",
                                 timeseries.get("pools", {}), percent=True),
                           Panel("link directions", "utilisation (%)", timeseries.get("links", {}), percent=True)),
                          timeseries["bin_s"], warmup_s, duration_s, colours, empty="no pools or links")


def llm_pools_png(timeseries: Mapping[str, Any], warmup_s: float, duration_s: float,
                  colours: Mapping[str, str] | None = None) -> bytes:
    """Three panels sharing the time axis, from ``timeseries.llm_pools``: each LLM pool's output tokens
    per second, the share of its KV cache in use and its running sequences (both per replica)."""
    pools = timeseries.get("llm_pools", {})

    def of(key: str) -> dict[str, Sequence[float | None]]:
        return {pid: p[key] for pid, p in pools.items() if key in p}

    return timeseries_png((Panel("output tokens per second (all replicas)", "tokens/s", of("output_tokens_per_s")),
                           Panel("KV cache in use (mean over replicas)", "KV cache used (%)",
                                 of("kv_cache_utilization"), percent=True),
                           Panel("running sequences (mean per replica)", "sequences", of("running"))),
                          timeseries["bin_s"], warmup_s, duration_s, colours, empty="no LLM pools")


def timeseries_png(panels: Sequence[Panel], bin_s: float, warmup_s: float, duration_s: float,
                   colours: Mapping[str, str] | None = None, *, empty: str = "nothing to draw") -> bytes:
    """Panels sharing the time axis, one value per `bin_s` bin drawn at the bin's middle; a panel without
    series is left out (`empty` is said when none is left).

    A pool is drawn in the colour of the site it runs at, a link direction in that of the site it
    leaves (`colours`; by default a palette in order), the line style telling apart those of one site.
    A bin without a value (None) is a gap in its line.
    """
    w = float(bin_s)
    shown = [(p, *_busiest(p.title, p.series)) for p in panels if p.series]
    with drawing(10.0, 2.6 * max(1, len(shown)) + 0.4) as fig:
        axes = fig.subplots(max(1, len(shown)), 1, squeeze=False, sharex=True)
        for ax, (panel, title, series) in zip((row[0] for row in axes), shown):
            scale = 100.0 if panel.percent else 1.0
            per_site: dict[str, int] = defaultdict(int)
            top = 0.0
            for i, (name, values) in enumerate(series.items()):
                site = _site_of(name)
                col = colours.get(site, NEUTRAL) if colours is not None else color(i)
                ls = _STYLES[per_site[site] % len(_STYLES)] if colours is not None else "-"
                per_site[site] += 1
                t = [(k + 0.5) * w for k in range(len(values))]
                ys = [math.nan if v is None else scale * v for v in values]
                top = max([top, *(y for y in ys if not math.isnan(y))])
                ax.plot(t, ys, color=col, ls=ls, lw=1.3, label=name)
            _warmup(ax, warmup_s, duration_s)
            ax.set_title(title, loc="left")
            ax.set_ylabel(panel.ylabel)
            ax.set_ylim(0, max(5.0, 1.05 * top) if panel.percent else (1.05 * top or 1.0))
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the panel: it hides no line
        axes[-1][0].set_xlabel("simulated time (s)")
        if not shown:
            axes[0][0].text(0.5, 0.5, empty, ha="center", transform=axes[0][0].transAxes)
        return png_bytes(fig)


_STYLES = ("-", (0, (5, 2)), (0, (1, 1.5)), (0, (6, 2, 1, 2)))


def _site_of(series: str) -> str:
    """The site of a pool id (``service@site/hardware/variant``) or a link direction (``a->b``: a)."""
    if "@" in series:
        return series.split("@", 1)[1].split("/", 1)[0]
    return series.split("->", 1)[0]


def _busiest(title: str, series: Mapping[str, Sequence[float | None]]) -> tuple[str, dict[str, Sequence[float | None]]]:
    """At most `MAX_SERIES` series, the busiest on average, so that a large fleet's panel stays readable."""
    if len(series) <= MAX_SERIES:
        return title, dict(series)

    def mean(k: str) -> float:
        values = [v for v in series[k] if v is not None]
        return sum(values) / max(len(values), 1)

    top = sorted(series, key=lambda k: -mean(k))[:MAX_SERIES]
    return f"{title}: the {MAX_SERIES} busiest of {len(series)}", {k: series[k] for k in series if k in top}


def _warmup(ax: Axes, warmup_s: float, duration_s: float) -> None:
    """The warm-up shaded, named in the legend (a label in the panel would cover the lines)."""
    if warmup_s > 0:
        ax.axvspan(0, warmup_s, color=WARMUP, zorder=0, label="warm-up (not measured)")
    ax.set_xlim(0, duration_s)


def breakdown_png(cost: Mapping[str, Any], energy_by: Mapping[str, Mapping[str, float]],
                  colours: Mapping[str, str] | None = None) -> bytes:
    """Cost ($/h) and energy by site, hardware type and service, as labelled horizontal bars.

    Sites have their colours in the report (`colours`, default: in the order met here); hardware
    types, services and egress are grey, so that a colour always means a site. Energy is in Wh when
    every figure is under 1 kWh. Bars are equally thick in every panel.
    """
    egress = float(cost.get("egress_usd_per_hour") or 0.0)
    by_site = dict(cost.get("by_site_usd_per_hour", {}))
    if egress:
        by_site["egress (links)"] = egress
    cost_groups = [by_site, cost.get("by_hardware_usd_per_hour", {}), cost.get("by_service_usd_per_hour", {})]
    energy_groups = [energy_by.get(k, {}) for k in ("site", "hardware", "service")]
    small = max((v for g in energy_groups for v in g.values()), default=0.0) < 1.0
    scale, unit = (1e3, "Wh") if small else (1.0, "kWh")
    rows = max(len(g) for g in cost_groups + energy_groups)
    sites = site_colours([*cost_groups[0], *energy_groups[0]]) if colours is None else colours
    with drawing(10.0, 2.0 * (0.9 + 0.28 * rows) + 0.6) as fig:
        axes = fig.subplots(2, 3, squeeze=False)
        for c, title in enumerate(("site", "hardware type", "service")):
            names = list(dict.fromkeys([*cost_groups[c], *energy_groups[c]]))
            col = {n: sites.get(n, NEUTRAL) if c == 0 else NEUTRAL for n in names}
            _bars(axes[0][c], cost_groups[c], col, f"cost by {title}", "US$ per hour", "$", "", rows)
            energy = {k: v * scale for k, v in energy_groups[c].items()}
            _bars(axes[1][c], energy, col, f"energy by {title}", f"{unit} over the measured window", "",
                  f" {unit}", rows)
        return png_bytes(fig)


def _bars(ax: Axes, values: Mapping[str, float], colours: Mapping[str, str], title: str, xlabel: str,
          prefix: str, suffix: str, rows: int) -> None:
    """Horizontal bars from the top, `rows` bar slots tall whatever their number, each labelled."""
    names: Sequence[str] = list(values)
    nums = [float(values[n]) for n in names]
    ax.barh(range(len(names)), nums, color=[colours[n] for n in names], height=0.6)
    ax.set_yticks(range(len(names)), names)
    ax.set_ylim(max(rows, 1) - 0.5, -0.5)
    ax.set_title(title, loc="left")
    ax.set_xlabel(xlabel)
    ax.xaxis.set_major_locator(MaxNLocator(4))
    top = max(nums, default=0.0) or 1.0
    ax.set_xlim(0, top * 1.35)
    for i, v in enumerate(nums):
        ax.text(v + top * 0.02, i, f"{prefix}{fmt(v)}{suffix}", va="center", fontsize=7.5)
