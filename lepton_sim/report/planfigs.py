"""Plan figures: the plan's cost against its baselines, and predicted against simulated latency.

Drawn in greys (and the SLO's red), since in a report colours stand for sites.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lepton_sim.report.style import INK, MUTED, NEUTRAL, SLO_RED, drawing, fmt, png_bytes

ROUNDS = (NEUTRAL, "#b5c0cb", "#d5dde6")  # simulated latency of verification rounds 1, 2, 3...


def baselines_png(usd_per_hour: float, baselines: Sequence[Mapping[str, Any]]) -> bytes:
    """US$ per hour of the plan and of every baseline; baselines with no plan are marked as such."""
    rows = [("this plan", usd_per_hour, "")] + [
        (b["name"], b.get("usd_per_hour"), "" if b.get("usd_per_hour") is not None else "no feasible plan")
        for b in baselines]
    top = max((v for _, v, _ in rows if v is not None), default=1.0) or 1.0
    with drawing(8.0, 0.9 + 0.42 * len(rows)) as fig:
        ax = fig.add_subplot()
        for i, (name, value, note) in enumerate(rows):
            if value is None:
                ax.text(top * 0.01, i, note, va="center", fontsize=8, color=MUTED, style="italic")
                continue
            ax.barh(i, value, height=0.6, color=INK if i == 0 else NEUTRAL)
            ratio = f"  (×{value / usd_per_hour:.2f})" if i and usd_per_hour > 0 else ""
            ax.text(value + top * 0.01, i, f"${fmt(value)}{ratio}", va="center", fontsize=8)
        ax.set_yticks(range(len(rows)), [r[0] for r in rows])
        ax.invert_yaxis()
        ax.set_xlim(0, top * 1.35)
        ax.set_xlabel("US$ per hour")
        ax.set_title("The plan against its baselines", loc="left")
        return png_bytes(fig)


def latency_check_png(predicted: Mapping[str, Mapping[str, Any]], verify: Mapping[str, Any] | None) -> bytes:
    """Per service: the planner's predicted latency at the SLO percentile, each verification round's
    simulated one, and the target."""
    services = list(predicted)
    rounds = list((verify or {}).get("rounds", []))
    with drawing(max(6.0, 1.6 + 1.5 * len(services) * (1 + len(rounds)) / 2), 3.8) as fig:
        ax = fig.add_subplot()
        width = 0.8 / (1 + len(rounds))
        for i, name in enumerate(services):
            p = predicted[name]
            bars = [("predicted (plan)", p.get("latency_ms"), MUTED)]
            bars += [(f"simulated, round {r['round']}", r["services"].get(name, {}).get("simulated_ms"),
                      ROUNDS[min(k, len(ROUNDS) - 1)]) for k, r in enumerate(rounds)]
            for j, (label, value, col) in enumerate(bars):
                x = i - 0.4 + width * (j + 0.5)
                if value is not None:
                    ax.bar(x, value, width * 0.9, color=col, label=label if i == 0 else "_nolegend_")
                    ax.text(x, value, fmt(value), ha="center", va="bottom", fontsize=7)
            ax.hlines(p["slo_ms"], i - 0.45, i + 0.45, color=SLO_RED, lw=1.5, ls=":",
                      label="SLO target" if i == 0 else "_nolegend_")
        ax.set_xticks(range(len(services)), [f"{n}\n(p{fmt(predicted[n]['percentile'])})" for n in services])
        ax.set_ylabel("latency at the SLO percentile (ms)")
        ax.set_title("Predicted against simulated latency", loc="left")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return png_bytes(fig)
