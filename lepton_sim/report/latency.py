"""Latency figures: the CDF of every service (and of each demand site) with its SLO marked."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from lepton_sim.report.style import MUTED, color, drawing, png_bytes

MAX_SITES = 6


def cdf_png(cdf: Mapping[str, Any], slos: Mapping[str, Mapping[str, float]]) -> bytes:
    """One column per service: the CDF on top, the tail (1 - CDF, log scale) below, SLO lines on both."""
    qs = cdf["quantiles"]
    names = [n for n, s in cdf["services"].items() if s.get("latency_ms")]
    cols = max(1, len(names))
    with drawing(min(max(4.2 * cols, 7.0), 13.0), 6.0) as fig:
        axes = fig.subplots(2, cols, squeeze=False)
        for c, name in enumerate(names):
            series = cdf["services"][name]
            slo = slos.get(name)
            top, tail = axes[0][c], axes[1][c]
            _plot_series(top, tail, qs, series["latency_ms"], f"all ({series['count']:,})", color(c), 2.0, "-")
            sites = _slowest(series.get("by_site", {}), qs) if len(series.get("by_site", {})) > 1 else {}
            for i, (site, s) in enumerate(sites.items()):
                _plot_series(top, tail, qs, s["latency_ms"], f"from {site} ({s['count']:,})", color(c + 1 + i), 1.1,
                             "--")
            if len(series.get("by_site", {})) > MAX_SITES:
                top.text(0.02, 0.97, f"dashed: the {len(sites)} slowest of {len(series['by_site'])} demand sites",
                         fontsize=7, color=MUTED, va="top", transform=top.transAxes)
            every = [v for s in (series, *series.get("by_site", {}).values()) for v in (s.get("latency_ms") or [])]
            _latency_axis((top, tail), min(every), max([*every, slo["latency_ms"] if slo else 0.0]))
            if slo:
                _mark_slo(top, tail, slo)
            top.set_title(name)
            top.set_ylabel("fraction of requests within")
            top.set_ylim(0, 1.02)
            tail.set_ylabel("fraction slower (log)")
            tail.set_xlabel("end-to-end latency (ms)")
            tail.set_yscale("log")
            tail.set_ylim(max(1e-4, 0.5 / max(series["count"], 1)), 1.0)
            top.legend(loc="lower right", frameon=True, framealpha=0.92, edgecolor="none")
            if not series["exact"]:
                tail.text(0.02, 0.04, "quantiles from the sketch (relative error ≤ 0.5 %)", fontsize=7,
                          color=MUTED, transform=tail.transAxes)
        if not names:
            axes[0][0].text(0.5, 0.5, "no completed requests", ha="center", transform=axes[0][0].transAxes)
        return png_bytes(fig)


def _slowest(by_site: Mapping[str, Any], qs: list[float]) -> dict[str, Any]:
    """The demand sites with values, at most `MAX_SITES` of them: those slowest at the 99th percentile."""
    k = qs.index(0.99) if 0.99 in qs else len(qs) - 1
    have = {site: s for site, s in by_site.items() if s.get("latency_ms")}
    keep = sorted(have, key=lambda site: -have[site]["latency_ms"][k])[:MAX_SITES]
    return {site: s for site, s in have.items() if site in keep}


def _plot_series(top: Axes, tail: Axes, qs: list[float], lat: list[float], label: str, col: str, lw: float,
                 ls: str) -> None:
    top.plot(lat, qs, color=col, lw=lw, ls=ls, label=label, drawstyle="steps-post")
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
        ax.axvline(target, color="#c2414b", lw=1.2, ls=":")
    top.axhline(pct, color="#c2414b", lw=0.8, ls=":")
    tail.axhline(1 - pct, color="#c2414b", lw=0.8, ls=":")
    label = f"SLO p{slo['percentile']:g} ≤ {target:g} ms"
    top.text(target, 0.45, f"{label} ", color="#c2414b", fontsize=7.5, rotation=90, va="bottom", ha="right")
    if math.isfinite(target):
        tail.plot([target], [1 - pct], marker="o", color="#c2414b", ms=4)
