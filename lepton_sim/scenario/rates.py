"""Mean arrival rates of demand lines, from the scenario alone.

The simulator draws arrivals at these rates (`lepton_sim.sim.arrivals`) and the planner sizes pools
for them (`lepton_sim.planner.demand`); both read them here, so that neither imports the other.
`rate_rps`, when given, is the long-run mean; without it an mmpp pattern's time-weighted mean rate
or a trace's stamps per second over its span are used.
"""
from __future__ import annotations

from lepton_sim.scenario.schema import MMPP, Demand, Trace


def mean_rate(demand: Demand) -> float:
    """The long-run mean arrival rate (requests per second) of a demand line."""
    if demand.rate_rps is not None:
        return float(demand.rate_rps)
    a = demand.arrival
    if isinstance(a, MMPP):
        return mmpp_mean(a)
    if isinstance(a, Trace):
        return trace_mean(a.times_s)
    raise ValueError("rate_rps missing")


def mmpp_mean(a: MMPP) -> float:
    """The pattern's own mean rate: each state's rate weighted by its mean dwell."""
    return sum(r * d for r, d in zip(a.rates_rps, a.mean_dwell_s)) / sum(a.mean_dwell_s)


def trace_mean(times: tuple[float, ...]) -> float:
    """Arrivals per second over a trace's span (infinite for a trace all at one instant)."""
    return (len(times) - 1) / (times[-1] - times[0]) if times[-1] > times[0] else float("inf")
