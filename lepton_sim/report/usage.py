"""Utilisation over simulated time (pools and link directions) and cost/energy breakdowns."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from lepton_sim.report.style import NEUTRAL, color, drawing, fmt, png_bytes, site_colours

MAX_SERIES = 10
WARMUP = "#e3e8ee"


def utilisation_png(timeseries: Mapping[str, Any], warmup_s: float, duration_s: float,
                    colours: Mapping[str, str] | None = None) -> bytes:
    """Two panels sharing the time axis: each pool's mean replica utilisation, each link direction's.

    A pool is drawn in the colour of the site it runs at, a link direction in that of the site it
    leaves (`colours`; by default a palette in order), the line style telling apart those of one site.
    """
    w = float(timeseries["bin_s"])
    panels = [_busiest("replica pools (mean over replicas)", timeseries.get("pools", {})),
              _busiest("link directions", timeseries.get("links", {}))]
    panels = [(t, series) for t, series in panels if series]
    with drawing(10.0, 2.6 * max(1, len(panels)) + 0.4) as fig:
        axes = fig.subplots(max(1, len(panels)), 1, squeeze=False, sharex=True)
        for ax, (title, series) in zip((row[0] for row in axes), panels):
            per_site: dict[str, int] = defaultdict(int)
            for i, (name, values) in enumerate(series.items()):
                site = _site_of(name)
                col = colours.get(site, NEUTRAL) if colours is not None else color(i)
                ls = _STYLES[per_site[site] % len(_STYLES)] if colours is not None else "-"
                per_site[site] += 1
                t = [(k + 0.5) * w for k in range(len(values))]
                ax.plot(t, [100 * v for v in values], color=col, ls=ls, lw=1.3, label=name)
            _warmup(ax, warmup_s, duration_s)
            ax.set_title(title, loc="left")
            ax.set_ylabel("utilisation (%)")
            ax.set_ylim(0, max(5.0, 105 * max((max(v, default=0) for v in series.values()), default=0)))
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the panel: it hides no line
        axes[-1][0].set_xlabel("simulated time (s)")
        if not panels:
            axes[0][0].text(0.5, 0.5, "no pools or links", ha="center", transform=axes[0][0].transAxes)
        return png_bytes(fig)


_STYLES = ("-", (0, (5, 2)), (0, (1, 1.5)), (0, (6, 2, 1, 2)))


def _site_of(series: str) -> str:
    """The site of a pool id (``service@site/hardware/variant``) or a link direction (``a->b``: a)."""
    if "@" in series:
        return series.split("@", 1)[1].split("/", 1)[0]
    return series.split("->", 1)[0]


def _busiest(title: str, series: Mapping[str, Sequence[float]]) -> tuple[str, dict[str, Sequence[float]]]:
    """At most `MAX_SERIES` series, the busiest on average, so that a large fleet's panel stays readable."""
    if len(series) <= MAX_SERIES:
        return title, dict(series)
    top = sorted(series, key=lambda k: -sum(series[k]) / max(len(series[k]), 1))[:MAX_SERIES]
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
