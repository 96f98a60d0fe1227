"""The closed forms in lepton_sim.theory: hand-derived values, identities between them, and Monte Carlo."""
from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from fractions import Fraction

import numpy as np
import pytest

from lepton_sim import theory


def _erlang_c_exact(c: int, a: Fraction) -> Fraction:
    """Erlang C straight from its definition, in exact rationals: an oracle independent of the recursion.

    C = (a^c / c!) (c / (c - a)) / (sum_{k<c} a^k / k! + (a^c / c!) (c / (c - a))).
    """
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


# Hand-derived from the definition above:
#   c=1, a=0.5: C = a = 1/2 (M/M/1: P(wait) = rho)
#   c=2, a=1:   a^2/2! * 2/(2-1) = 1; sum = 1 + 1 = 2; C = 1/3
#   c=2, a=1.5: 1.125 * 2/0.5 = 4.5; sum = 1 + 1.5 = 2.5; C = 4.5/7 = 9/14
#   c=3, a=2:   (8/6) * 3/1 = 4; sum = 1 + 2 + 2 = 5; C = 4/9
#   c=4, a=2:   (16/24) * 4/2 = 4/3; sum = 1 + 2 + 2 + 4/3 = 19/3; C = (4/3)/(23/3) = 4/23
#   c=5, a=4:   (1024/120) * 5 = 128/3; sum = 1 + 4 + 8 + 32/3 + 32/3 = 103/3; C = 128/231
ERLANG_C_TABLE = [
    (1, 0.5, 1 / 2),
    (2, 1.0, 1 / 3),
    (2, 1.5, 9 / 14),
    (3, 2.0, 4 / 9),
    (4, 2.0, 4 / 23),
    (5, 4.0, 128 / 231),
]


@pytest.mark.parametrize(("c", "a", "expected"), ERLANG_C_TABLE)
def test_erlang_c_hand_values(c: int, a: float, expected: float) -> None:
    assert theory.erlang_c(c, a) == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("c", [1, 2, 3, 7, 16, 32, 48, 64])
@pytest.mark.parametrize("rho", [0.05, 0.5, 0.8, 0.95, 0.999])
def test_erlang_c_against_exact_rationals(c: int, rho: float) -> None:
    a = Fraction(rho) * c  # the exact binary value of rho, so both sides see the same load
    assert theory.erlang_c(c, float(a)) == pytest.approx(float(_erlang_c_exact(c, a)), rel=1e-12)


def test_erlang_c_large_c_stays_finite_and_monotone() -> None:
    # a^c and c! overflow floats near c = 170; the recursion must not care
    values = [theory.erlang_c(c, 0.9 * c) for c in (100, 200, 500, 1000)]
    assert all(0.0 < v < 1.0 for v in values)
    assert values == sorted(values, reverse=True)  # economies of scale: more servers, less waiting
    assert theory.erlang_c(8, 0.0) == 0.0


def test_c1_reduces_to_mm1() -> None:
    lam, mu = 80.0, 100.0
    assert theory.erlang_c(1, lam / mu) == pytest.approx(lam / mu, rel=1e-15)
    assert theory.mmc_mean_sojourn(lam, mu, 1) == pytest.approx(theory.mm1_mean_sojourn(lam, mu), rel=1e-14)
    assert theory.mm1_mean_sojourn(lam, mu) == pytest.approx(0.05, rel=1e-15)  # 1 / (100 - 80)
    for t in (0.001, 0.01, 0.05, 0.2):
        # M/M/1 FIFO sojourn is Exp(mu - lambda)
        assert theory.mmc_sojourn_cdf(t, lam, mu, 1) == pytest.approx(-math.expm1(-(mu - lam) * t), rel=1e-12)
    for p in (0.5, 0.9, 0.99, 0.999999):
        assert theory.mmc_sojourn_quantile(p, lam, mu, 1) == pytest.approx(-math.log1p(-p) / (mu - lam), rel=1e-11)


def test_mmc_mean_wait_hand_value() -> None:
    # c=2, lam=1.5, mu=1: C = 9/14 (table above); Wq = C / (2 - 1.5) = 9/7 s; T = 9/7 + 1 = 16/7 s
    assert theory.mmc_mean_wait(1.5, 1.0, 2) == pytest.approx(9 / 7, rel=1e-14)
    assert theory.mmc_mean_sojourn(1.5, 1.0, 2) == pytest.approx(16 / 7, rel=1e-14)


def test_md1_is_pk_with_scv_zero_and_half_mm1() -> None:
    # lam = 0.5/s, d = 1 s: rho = 0.5, Wq = 0.5 * 1 / (2 * 0.5) = 0.5 s; M/M/1 wait rho / (mu - lam) = 1 s
    assert theory.md1_mean_wait(0.5, 1.0) == pytest.approx(0.5, rel=1e-15)
    for lam, d in [(0.5, 1.0), (90.0, 0.01), (3.0, 0.3)]:
        md1 = theory.md1_mean_wait(lam, d)
        assert md1 == pytest.approx(theory.mg1_mean_wait(lam, d, 0.0), rel=1e-14)
        mm1_wait = theory.mm1_mean_sojourn(lam, 1 / d) - d
        assert md1 == pytest.approx(0.5 * mm1_wait, rel=1e-12)
        # scv = 1 is exponential service: P-K gives the M/M/1 wait
        assert theory.mg1_mean_wait(lam, d, 1.0) == pytest.approx(mm1_wait, rel=1e-12)


def test_lognormal_params_match_moments() -> None:
    for mean, cv in [(0.01, 0.5), (2.0, 1.0), (1e-3, 3.0), (5.0, 0.0)]:
        mu, sigma = theory.lognormal_params(mean, cv)
        assert math.exp(mu + sigma**2 / 2) == pytest.approx(mean, rel=1e-14)
        assert math.sqrt(math.expm1(sigma**2)) == pytest.approx(cv, rel=1e-12, abs=1e-15)
    # and a sampler with those parameters has those moments: SE of the mean is cv/sqrt(n) = 0.1 %
    rng = np.random.default_rng(7)
    mu, sigma = theory.lognormal_params(0.02, 0.5)
    x = rng.lognormal(mu, sigma, 250_000)
    assert abs(x.mean() - 0.02) < 5 * 0.02 * 0.5 / math.sqrt(x.size)


def test_sojourn_cdf_erlang2_branch_is_continuous() -> None:
    # c=2, lam=mu: theta = c mu - lam = mu exactly, so S + W is Erlang-2
    mu = 100.0
    c_wait = theory.erlang_c(2, 1.0)
    for t in (0.001, 0.01, 0.03, 0.1):
        erlang2 = 1 - ((1 - c_wait) * math.exp(-mu * t) + c_wait * math.exp(-mu * t) * (1 + mu * t))
        assert theory.mmc_sojourn_cdf(t, mu, mu, 2) == pytest.approx(erlang2, rel=1e-13)
        for eps in (1e-12, 1e-9, 1e-6):
            for lam in (mu * (1 - eps), mu * (1 + eps)):
                assert theory.mmc_sojourn_cdf(t, lam, mu, 2) == pytest.approx(erlang2, rel=100 * eps + 1e-12)


def test_sojourn_cdf_against_the_textbook_form_away_from_the_special_case() -> None:
    lam, mu, c = 640.0, 100.0, 8
    theta, pw = c * mu - lam, theory.erlang_c(c, lam / mu)
    for t in (0.001, 0.01, 0.05):
        sf = (1 - pw) * math.exp(-mu * t) + pw * (theta * math.exp(-mu * t) - mu * math.exp(-theta * t)) / (theta - mu)
        assert theory.mmc_sojourn_cdf(t, lam, mu, c) == pytest.approx(1 - sf, rel=1e-12)
    assert theory.mmc_sojourn_cdf(0.0, lam, mu, c) == 0.0
    assert theory.mmc_sojourn_cdf(-1.0, lam, mu, c) == 0.0
    assert theory.mmc_sojourn_cdf(math.inf, lam, mu, c) == 1.0


@pytest.mark.parametrize(("lam", "mu", "c"), [(80.0, 100.0, 1), (100.0, 100.0, 2), (640.0, 100.0, 8), (63.0, 1.0, 64)])
def test_sojourn_quantile_inverts_cdf(lam: float, mu: float, c: int) -> None:
    for p in (1e-6, 0.1, 0.5, 0.9, 0.99, 0.999, 1 - 1e-9):
        t = theory.mmc_sojourn_quantile(p, lam, mu, c)
        # bisection to 1e-12 relative in t moves the CDF by at most f(t) * 1e-12 t
        assert theory.mmc_sojourn_cdf(t, lam, mu, c) == pytest.approx(p, rel=1e-9, abs=1e-12)
    assert theory.mmc_sojourn_quantile(0.0, lam, mu, c) == 0.0
    assert theory.mmc_sojourn_quantile(1.0, lam, mu, c) == math.inf


@pytest.mark.parametrize(
    "call",
    [
        lambda: theory.erlang_c(2, 2.0),  # rho = 1
        lambda: theory.erlang_c(0, 0.5),
        lambda: theory.erlang_c(2.5, 1.0),  # type: ignore[arg-type]
        lambda: theory.erlang_c(True, 0.5),  # type: ignore[arg-type]
        lambda: theory.erlang_c(2, -0.1),
        lambda: theory.erlang_c(2, math.nan),
        lambda: theory.mm1_mean_sojourn(1.0, 1.0),
        lambda: theory.mm1_mean_sojourn(-1.0, 1.0),
        lambda: theory.mm1_mean_sojourn(0.5, 0.0),
        lambda: theory.mmc_mean_wait(8.0, 1.0, 8),
        lambda: theory.mmc_mean_sojourn(9.0, 1.0, 8),
        lambda: theory.mmc_sojourn_cdf(1.0, 3.0, 1.0, 2),
        lambda: theory.mmc_sojourn_cdf(math.nan, 1.0, 1.0, 2),
        lambda: theory.mmc_sojourn_quantile(1.5, 1.0, 1.0, 2),
        lambda: theory.mmc_sojourn_quantile(0.5, 2.0, 1.0, 2),
        lambda: theory.md1_mean_wait(1.0, 1.0),
        lambda: theory.md1_mean_wait(1.0, 0.0),
        lambda: theory.mg1_mean_wait(2.0, 0.6, 1.0),
        lambda: theory.mg1_mean_wait(1.0, 0.5, -1.0),
        lambda: theory.lognormal_params(0.0, 1.0),
        lambda: theory.lognormal_params(1.0, -0.5),
        lambda: theory.lognormal_params(math.inf, 0.5),
    ],
)
def test_invalid_or_unstable_inputs_raise(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        call()


# --- Monte Carlo of the exact FIFO M/M/c recursion -------------------------------------------------

WARMUP = 10_000  # customers dropped: the queue starts empty
N_BATCHES = 40
BATCH = 25_000  # customers per batch; relaxation times here are < 100 customers
Z = 5.0  # tolerance in standard errors (see _batch_cdf)


def _mmc_fifo_sojourns(lam: float, mu: float, c: int, n: int, seed: int) -> np.ndarray:
    """Sojourn times of n customers of a FIFO M/M/c queue that starts empty (Kiefer-Wolfowitz recursion)."""
    rng = np.random.default_rng(seed)
    arrive = np.cumsum(rng.exponential(1 / lam, n))
    service = rng.exponential(1 / mu, n)
    if c == 1:
        # Lindley: W_i = max(0, W_{i-1} + S_{i-1} - A_i) = P_i - min_{k<=i} P_k with P the partial sums
        u = np.empty(n)
        u[0] = 0.0
        u[1:] = service[:-1] - np.diff(arrive)
        p = np.cumsum(u)
        return p - np.minimum.accumulate(p) + service
    # c > 1: the next customer in arrival order takes the server that frees first
    free = [0.0] * c
    out = np.empty(n)
    for i, (a, s) in enumerate(zip(arrive.tolist(), service.tolist())):
        finish = max(a, free[0]) + s
        heapq.heapreplace(free, finish)
        out[i] = finish - a
    return out


def _batch_cdf(sojourns: np.ndarray, t: float) -> tuple[float, float]:
    """Estimate of P(T <= t) and its standard error by batch means.

    Consecutive sojourns are correlated, so sqrt(F (1 - F) / n) (<= 0.5 / sqrt(10^6) = 5e-4 here)
    would understate the error. Batches of 25,000 customers, far longer than the queue's relaxation
    time, have nearly independent means; their spread gives SE = sd(batch means) / sqrt(40). With
    40 batches |estimate - F| / SE is close to Student t with 39 degrees of freedom, for which 5
    SE is exceeded with probability about 1.3e-5 per point (about 5e-4 over every point below).
    """
    b = (sojourns[WARMUP:WARMUP + N_BATCHES * BATCH].reshape(N_BATCHES, BATCH) <= t).mean(axis=1)
    return float(b.mean()), float(b.std(ddof=1) / math.sqrt(N_BATCHES))


@pytest.mark.parametrize(
    ("lam", "mu", "c"),
    [
        (80.0, 100.0, 1),  # M/M/1, rho 0.8
        (100.0, 100.0, 2),  # c mu - lam == mu: the Erlang-2 branch
        (640.0, 100.0, 8),  # rho 0.8
    ],
)
def test_sojourn_cdf_against_monte_carlo(lam: float, mu: float, c: int) -> None:
    t_all = _mmc_fifo_sojourns(lam, mu, c, WARMUP + N_BATCHES * BATCH, seed=20240611 + c)
    ps = (0.05, 0.25, 0.5, 0.75, 0.9, 0.99)
    rejects_wrong_load = False
    for p in ps:
        t = theory.mmc_sojourn_quantile(p, lam, mu, c)
        est, se = _batch_cdf(t_all, t)
        assert se < 0.004, f"too noisy to judge at p={p}: SE {se:.4f}"
        exact = theory.mmc_sojourn_cdf(t, lam, mu, c)
        assert abs(est - exact) <= Z * se, f"P(T <= {t:.4g} s): Monte Carlo {est:.4f} +- {se:.4f}, exact {exact:.4f}"
        # the same check must reject a formula that is off by 10 % in load
        wrong = theory.mmc_sojourn_cdf(t, lam * 1.1, mu, c)
        rejects_wrong_load |= abs(est - wrong) > Z * se
    assert rejects_wrong_load
    # and the mean sojourn, same batch-means standard error
    means = t_all[WARMUP:WARMUP + N_BATCHES * BATCH].reshape(N_BATCHES, BATCH).mean(axis=1)
    se = means.std(ddof=1) / math.sqrt(N_BATCHES)
    assert abs(means.mean() - theory.mmc_mean_sojourn(lam, mu, c)) <= Z * se
