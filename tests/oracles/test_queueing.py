"""The simulator against queueing theory: the shipped queueing scenarios over several seeds.

Each test runs the scenario with `n_seeds` independent seeds, takes each run's mean latency over the
measured window, and checks the grand mean against the closed form with a two-sided t-test at a
false-alarm rate of about 1e-3 (|mean - theory| <= T_CRIT * standard error across seeds). Seeds are
independent replications, so the standard error is honest even though latencies within a run are
correlated. To keep the test able to fail, each also checks the standard error is small (a few per
cent of the theoretical value): a noisy run cannot pass by luck.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from lepton_sim import theory
from lepton_sim.scenario import load_scenario
from lepton_sim.scenario.schema import Scenario
from lepton_sim.sim import simulate

QUEUEING = Path(__file__).resolve().parents[2] / "scenarios" / "queueing"
N_SEEDS = 8
T_CRIT = 5.41  # Student t, 7 degrees of freedom, two-sided 0.001


def _runs(name: str, seeds: int = N_SEEDS) -> tuple[Scenario, list]:
    s = load_scenario(QUEUEING / f"{name}.yaml")
    return s, [simulate(s, seed) for seed in range(1, seeds + 1)]


def _check_mean(records: list, expected_s: float, max_rel_se: float = 0.03) -> None:
    means = np.array([r.services["q"].latency_s.mean for r in records])
    grand = means.mean()
    se = means.std(ddof=1) / math.sqrt(len(means))
    assert se / expected_s < max_rel_se, f"too noisy to judge: SE {se:.3g} s against {expected_s:.3g} s"
    assert abs(grand - expected_s) <= T_CRIT * se, (
        f"mean latency {grand * 1e3:.3f} ms, theory {expected_s * 1e3:.3f} ms, SE {se * 1e3:.3f} ms"
    )
    # and, whatever the noise, the bias must stay small in absolute terms
    assert abs(grand - expected_s) / expected_s < 0.03


def _lam_mu(s: Scenario) -> tuple[float, float, int]:
    svc = s.services["q"]
    lam = float(svc.demand[0].rate_rps)
    st = svc.service_time
    mean_ms = st.ms if hasattr(st, "ms") else st.mean_ms
    return lam, 1e3 / mean_ms, s.deployment.replicas[0].count


def test_mm1_mean_latency() -> None:
    s, recs = _runs("mm1")
    lam, mu, _ = _lam_mu(s)
    _check_mean(recs, theory.mm1_mean_sojourn(lam, mu))


@pytest.mark.parametrize("name", ["mmc-2", "mmc-8"])
def test_mmc_mean_latency_erlang_c(name: str) -> None:
    s, recs = _runs(name)
    lam, mu, c = _lam_mu(s)
    _check_mean(recs, theory.mmc_mean_sojourn(lam, mu, c))


@pytest.mark.parametrize("name", ["mmc-2", "mmc-8"])
def test_mmc_p99_against_exact_distribution(name: str) -> None:
    """The p99 of all seeds' latencies against the exact FIFO M/M/c sojourn quantile.

    With n ~ 10^5 pooled values, the sample p99 has a relative standard error of roughly
    sqrt(p(1-p)/n) / (f(q) q) ~ 1-2 % for these tails (and more, from autocorrelation): a 5 %
    tolerance is about 3 such errors.
    """
    s, recs = _runs(name, seeds=4)
    lam, mu, c = _lam_mu(s)
    expected = theory.mmc_sojourn_quantile(0.99, lam, mu, c)
    merged = recs[0].services["q"].latency_s
    for r in recs[1:]:
        merged.merge(r.services["q"].latency_s)
    got = merged.quantiles([0.99])[0]
    assert abs(got - expected) / expected < 0.05, f"p99 {got * 1e3:.2f} ms, exact {expected * 1e3:.2f} ms"
    # the whole distribution, not just one point: CDF at a few multiples of the mean service time
    for t_ms in (5, 10, 20, 40):
        frac = merged.fraction_at_most(t_ms / 1e3)
        exact = theory.mmc_sojourn_cdf(t_ms / 1e3, lam, mu, c)
        assert abs(frac - exact) < 0.02, f"P(T <= {t_ms} ms): simulated {frac:.4f}, exact {exact:.4f}"


def test_md1_mean_latency() -> None:
    s, recs = _runs("md1")
    lam, mu, _ = _lam_mu(s)
    d = 1 / mu
    _check_mean(recs, theory.md1_mean_wait(lam, d) + d)


def test_mg1_lognormal_pollaczek_khinchine() -> None:
    s, recs = _runs("mg1-lognormal")
    lam, mu, _ = _lam_mu(s)
    cv = s.services["q"].service_time.cv
    # heavy-tailed service makes the mean wait noisy: allow a little more relative SE
    _check_mean(recs, theory.mg1_mean_wait(lam, 1 / mu, cv**2) + 1 / mu, max_rel_se=0.05)
