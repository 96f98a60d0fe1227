"""Latency figures: the CDF of every service (and of each demand site) with its SLO marked.

The same figure draws any latency measure of report-data.json: end to end (``latency_cdf``), or an
LLM service's time to first token and time per output token (``ttft_cdf``, ``tpot_cdf``), each with
its own target. Nothing is drawn inside the plotting areas but the curves and the target's lines:
the target is named in each panel's title and one legend for the whole figure sits below the
panels, so that no label hides a curve. Demand sites have the report's colours
(`style.site_colours`); all requests of a service are the solid dark line.
"""
from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from lepton_sim.report.style import INK, NEUTRAL, SLO_RED, drawing, fmt, png_bytes, row_major, site_colours

MAX_SITES = 6
ALL_LABEL = "all requests of the service"
TARGET_LABEL = "latency target and percentile"


def cdf_png(cdf: Mapping[str, Any], slos: Mapping[str, Mapping[str, Any] | None],
            colours: Mapping[str, str] | None = None, *, xlabel: str = "end-to-end latency (ms)",
            target: str = "SLO", only: Collection[str] | None = None) -> bytes:
    """One column per service: the CDF on top, the tail (1 - CDF, log scale) below, SLO lines on both.

    `slos` maps a service to its target (``percentile``, ``latency_ms``); one without, or whose
    ``latency_ms`` is None, is drawn unmarked. `target` names it in the panels' titles ("SLO",
    "TTFT target"), `xlabel` the measure. `only` keeps those services (default: every one with
    values). `colours` maps demand sites to their colours in this report (default: in the order met
    here).
    """
    qs = cdf["quantiles"]
    names = [n for n, s in cdf["services"].items() if s.get("latency_ms") and (only is None or n in only)]
    slos = {n: slo for n, slo in slos.items() if slo and slo.get("latency_ms") is not None}
    colours = dict(colours) if colours is not None else site_colours(
        site for n in names for site in cdf["services"][n].get("by_site", {}))
    cols = max(1, len(names))
    drawn: dict[str, str] = {}  # demand sites drawn in any panel -> colour, for the legend
    any_slo = False
    with drawing(min(max(3.4 * cols, 7.0), 10.0), 6.6) as fig:
        axes = fig.subplots(2, cols, squeeze=False)
        for c, name in enumerate(names):
            series = cdf["services"][name]
            slo = slos.get(name)
            top, tail = axes[0][c], axes[1][c]
            by_site = series.get("by_site", {})
            _plot_series(top, tail, qs, series["latency_ms"], INK, 2.2, "-")  # under the sites' dashes
            sites = _slowest(by_site, qs) if len(by_site) > 1 else {}
            for site, s in sites.items():
                col = colours.get(site, NEUTRAL)
                drawn[site] = col
                _plot_series(top, tail, qs, s["latency_ms"], col, 1.2, (0, (4, 2)))
            every = [v for s in (series, *by_site.values()) for v in (s.get("latency_ms") or [])]
            _latency_axis((top, tail), min(every), max([*every, slo["latency_ms"] if slo else 0.0]))
            if slo:
                any_slo = True
                _mark_slo(top, tail, slo)
            title = name + (f": {target} p{fmt(slo['percentile'])} ≤ {fmt(slo['latency_ms'])} ms" if slo else "")
            if len(by_site) > MAX_SITES:
                title += f"\nthe {len(sites)} slowest of {len(by_site)} demand sites"
            top.set_title(title, fontsize=9)
            top.set_ylabel("fraction of requests within")
            top.set_ylim(0, 1.02)
            tail.set_ylabel("fraction slower (log)")
            tail.set_xlabel(xlabel + ("" if series["exact"] else "\nquantiles from the sketch (error ≤ 0.5 %)"))
            tail.set_yscale("log")
            tail.set_ylim(max(1e-4, 0.5 / max(series["count"], 1)), 1.0)
        if not names:
            axes[0][0].text(0.5, 0.5, "no completed requests", ha="center", transform=axes[0][0].transAxes)
        else:
            entries = [(Line2D([], [], color=INK, lw=2.2), ALL_LABEL)]
            if any_slo:
                entries.append((Line2D([], [], color=SLO_RED, lw=1.2, ls=":"), f"{target}: {TARGET_LABEL}"))
            entries += [(Line2D([], [], color=drawn[site], lw=1.2, ls=(0, (4, 2))), f"from {site}")
                        for site in [*[s for s in colours if s in drawn], *[s for s in drawn if s not in colours]]]
            ncol = max(1, min(len(entries), int(fig.get_figwidth() / 2.3)))
            entries = row_major(entries, ncol)
            fig.legend([h for h, _ in entries], [t for _, t in entries], loc="outside lower center", ncol=ncol,
                       fontsize=8)
        return png_bytes(fig)


def _slowest(by_site: Mapping[str, Any], qs: list[float]) -> dict[str, Any]:
    """The demand sites with values, at most `MAX_SITES` of them: those slowest at the 99th percentile."""
    k = qs.index(0.99) if 0.99 in qs else len(qs) - 1
    have = {site: s for site, s in by_site.items() if s.get("latency_ms")}
    keep = sorted(have, key=lambda site: -have[site]["latency_ms"][k])[:MAX_SITES]
    return {site: s for site, s in have.items() if site in keep}


def _plot_series(top: Axes, tail: Axes, qs: list[float], lat: list[float], col: str, lw: float, ls: Any) -> None:
    top.plot(lat, qs, color=col, lw=lw, ls=ls, drawstyle="steps-post")
    pairs = [(x, 1 - q) for x, q in zip(lat, qs) if 1 - q > 0]
    tail.plot([x for x, _ in pairs], [y for _, y in pairs], color=col, lw=lw, ls=ls, drawstyle="steps-post")


def _latency_axis(axes: tuple[Axes, Axes], lo: float, hi: float) -> None:
    """A log latency axis with plain 1-2-5 labels when the latencies span more than a factor of 10."""
    if lo <= 0 or hi / lo <= 10:
        return
    for ax in axes:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())


def _mark_slo(top: Axes, tail: Axes, slo: Mapping[str, float]) -> None:
    target, pct = slo["latency_ms"], slo["percentile"] / 100
    for ax in (top, tail):
        ax.axvline(target, color=SLO_RED, lw=1.2, ls=":", zorder=1)
    top.axhline(pct, color=SLO_RED, lw=0.8, ls=":", zorder=1)
    tail.axhline(1 - pct, color=SLO_RED, lw=0.8, ls=":", zorder=1)
    if math.isfinite(target):
        tail.plot([target], [1 - pct], marker="o", color=SLO_RED, ms=4, zorder=1)
