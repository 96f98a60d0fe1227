"""Planning rates: the mean rate of each (service, demand site) and the rate capacity is planned for.

Burst allowance. Pools and links are sized for the **peak** rate of a demand line, not its mean:

- `poisson`, `constant`: the rate (Poisson variability is inside the queueing bound; constant
  arrivals are smoother than Poisson, so the bound is conservative for them).
- `mmpp`: the highest state's rate (scaled like the simulator scales the pattern). Its states last
  seconds (`mean_dwell_s`) while a pool's queue settles in milliseconds, so within a state the pool
  sees a stationary Poisson stream at that state's rate: if the busy state missed its target, the
  requests arriving then (most of them, at 8x the quiet rate) would miss it too, and planning for
  the mean would miss the percentile. Planning for the peak holds in every state.
- `diurnal`: the crest, rate x (1 + amplitude), for the same reason (periods are long).
- `trace`: the largest count of arrivals in any 1 s window, scaled by the simulator's factor.

Egress is charged on the mean rate (it is what the simulation bills); several demand lines of one
service at one site add up (their peaks are added, which is conservative).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from lepton_sim.scenario.rates import mean_rate
from lepton_sim.scenario.schema import MMPP, Constant, Demand, Diurnal, Poisson, Scenario, Trace

TRACE_WINDOW_S = 1.0

DemandKey = tuple[str, str]  # (service, demand site)


@dataclass(frozen=True)
class DemandRate:
    """One (service, demand site): its long-run mean and the peak rate pools and links are sized for."""

    service: str
    site: str
    mean_rps: float
    peak_rps: float
    basis: str  # how the peak was chosen, for plan.json

    @property
    def key(self) -> DemandKey:
        return (self.service, self.site)


def peak_rate(demand: Demand) -> tuple[float, str]:
    """(peak rate in requests per second, the reason) of one demand line."""
    a = demand.arrival
    mean = mean_rate(demand)
    if isinstance(a, (Poisson, Constant)):
        return mean, f"{a.kind} rate"
    if isinstance(a, MMPP):
        pattern_mean = sum(r * d for r, d in zip(a.rates_rps, a.mean_dwell_s)) / sum(a.mean_dwell_s)
        peak = max(a.rates_rps) * mean / pattern_mean
        return peak, f"mmpp busiest state ({peak:.6g} rps, {peak / mean:.3g}x the mean)"
    if isinstance(a, Diurnal):
        return mean * (1.0 + a.amplitude), f"diurnal crest (1 + amplitude {a.amplitude:g}) x the rate"
    if isinstance(a, Trace):
        times = np.asarray(a.times_s, dtype=float)
        ends = np.searchsorted(times, times + TRACE_WINDOW_S, side="left")
        busiest = float(np.max(ends - np.arange(len(times)))) / TRACE_WINDOW_S
        span_mean = (len(times) - 1) / (times[-1] - times[0]) if times[-1] > times[0] else busiest
        peak = max(busiest * mean / span_mean, mean)
        return peak, f"trace: busiest {TRACE_WINDOW_S:g} s window ({peak / mean:.3g}x the mean)"
    raise TypeError(f"unknown arrival kind {a!r}")


def demand_rates(scenario: Scenario) -> dict[DemandKey, DemandRate]:
    """The planning rates of every (service, demand site), in scenario order."""
    mean: dict[DemandKey, float] = defaultdict(float)
    peak: dict[DemandKey, float] = defaultdict(float)
    basis: dict[DemandKey, list[str]] = defaultdict(list)
    for name, svc in scenario.services.items():
        for d in svc.demand:
            key = (name, d.site)
            p, why = peak_rate(d)
            mean[key] += mean_rate(d)
            peak[key] += p
            basis[key].append(why)
    return {k: DemandRate(k[0], k[1], mean[k], peak[k], "; ".join(basis[k])) for k in mean}
