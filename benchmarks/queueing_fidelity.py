"""Simulator against queueing theory: mean latency (and M/M/c p99) of the shipped queueing scenarios.

Each scenario runs with several seeds; the table gives the grand mean, its standard error across
seeds, the closed form, and the relative error. Run: python benchmarks/queueing_fidelity.py [--seeds 8]
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from lepton_sim import theory
from lepton_sim.scenario import load_scenario
from lepton_sim.scenario.schema import Deterministic, Lognormal
from lepton_sim.sim import simulate

QUEUEING = Path(__file__).resolve().parents[1] / "scenarios" / "queueing"


def expected(name: str) -> tuple[float, float | None]:
    """(mean sojourn, exact p99 or None) in seconds for a queueing scenario, from the closed forms."""
    s = load_scenario(QUEUEING / f"{name}.yaml")
    svc = s.services["q"]
    lam = float(svc.demand[0].rate_rps)
    st = svc.service_time
    c = s.deployment.replicas[0].count
    if isinstance(st, Deterministic):
        d = st.ms / 1e3
        return theory.md1_mean_wait(lam, d) + d, None
    if isinstance(st, Lognormal):
        m = st.mean_ms / 1e3
        return theory.mg1_mean_wait(lam, m, st.cv**2) + m, None
    mu = 1e3 / st.mean_ms
    return theory.mmc_mean_sojourn(lam, mu, c), theory.mmc_sojourn_quantile(0.99, lam, mu, c)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=8)
    args = ap.parse_args()
    print(f"{'scenario':<15} {'requests':>10} {'sim mean ms':>12} {'SE ms':>7} {'theory ms':>10} {'error':>8}"
          f" {'sim p99 ms':>11} {'exact p99':>10} {'error':>8}")
    for name in ("mm1", "mmc-2", "mmc-8", "md1", "mg1-lognormal"):
        s = load_scenario(QUEUEING / f"{name}.yaml")
        recs = [simulate(s, seed) for seed in range(1, args.seeds + 1)]
        means = np.array([r.services["q"].latency_s.mean for r in recs])
        se = means.std(ddof=1) / math.sqrt(len(means))
        mean_t, p99_t = expected(name)
        n = sum(r.services["q"].completed for r in recs)
        line = (f"{name:<15} {n:>10,} {means.mean() * 1e3:>12.3f} {se * 1e3:>7.3f} {mean_t * 1e3:>10.3f}"
                f" {(means.mean() - mean_t) / mean_t:>+8.2%}")
        if p99_t is not None:
            merged = recs[0].services["q"].latency_s
            for r in recs[1:]:
                merged.merge(r.services["q"].latency_s)
            p99 = merged.quantiles([0.99])[0]
            line += f" {p99 * 1e3:>11.3f} {p99_t * 1e3:>10.3f} {(p99 - p99_t) / p99_t:>+8.2%}"
        print(line)


if __name__ == "__main__":
    main()
