"""LatencySketch (DDSketch) and LatencySummary against numpy on the same values."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lepton_sim.sketch import LatencySketch, LatencySummary, rank_index

ALPHA = 0.005
# the bound is alpha up to float rounding in log(x) / log(gamma) near bucket edges (~1e-14 relative)
BOUND = ALPHA * (1 + 1e-9)
QS = np.unique(np.concatenate([np.linspace(0, 1, 201), [1e-4, 1e-3, 0.5, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999]]))
N = 10**6


def _data(name: str) -> np.ndarray:
    rng = np.random.default_rng(sum(map(ord, name)))  # a fixed seed per distribution
    if name == "lognormal":
        return rng.lognormal(math.log(0.02), 1.0, N)  # seconds: median 20 ms
    if name == "exponential":
        return rng.exponential(0.01, N)
    if name == "pareto":
        return 1e-3 * (1 + rng.pareto(1.2, N))  # tail index 1.2: infinite variance
    if name == "bimodal":
        fast = rng.lognormal(math.log(0.005), 0.2, N)
        slow = rng.lognormal(math.log(0.3), 0.5, N)
        return np.where(rng.random(N) < 0.7, fast, slow)
    raise KeyError(name)


def _rel_err(est: np.ndarray, true: np.ndarray) -> np.ndarray:
    return np.abs(est - true) / true


@pytest.mark.parametrize("name", ["lognormal", "exponential", "pareto", "bimodal"])
def test_relative_error_bound_on_a_million_values(name: str) -> None:
    x = _data(name)
    s = LatencySketch(ALPHA)
    s.add_many(x)
    for method in ("inverted_cdf", "lower"):
        true = np.quantile(x, QS, method=method)
        err = _rel_err(np.array(s.quantiles(QS, method)), true)
        assert err.max() <= BOUND, f"{name} {method}: worst relative error {err.max():.5f} at q={QS[err.argmax()]}"
    # the bound is not vacuous: the estimates are not exact, and a coarser sketch errs more
    assert err.max() > ALPHA / 10
    coarse = LatencySketch(0.05)
    coarse.add_many(x)
    assert _rel_err(np.array(coarse.quantiles(QS, "lower")), true).max() > BOUND


def test_quantile_defaults_to_the_ddsketch_lower_rank() -> None:
    x = np.array([1.0, 100.0])
    s = LatencySketch()
    s.add_many(x)
    # q = 0.6: lower rank floor(0.6 * 1) = 0 -> 1.0; inverted CDF ceil(0.6 * 2) - 1 = 1 -> 100.0
    assert s.quantile(0.6) == 1.0
    assert s.quantile(0.6, "inverted_cdf") == 100.0


def test_rank_index_matches_numpy_on_awkward_products() -> None:
    x = np.arange(1000, dtype=np.float64)
    for n in (1, 2, 3, 7, 10, 100, 1000):
        for q in np.concatenate([np.linspace(0, 1, 1001), [0.29, 0.57, 0.58, 0.07, 0.14, 0.9999]]):
            for method in ("inverted_cdf", "lower"):
                assert rank_index(n, float(q), method) == np.quantile(x[:n], q, method=method)


def test_merge_equals_sketch_of_concatenation_bucket_for_bucket() -> None:
    rng = np.random.default_rng(3)
    parts = [rng.lognormal(-6, 0.5, 50_000), rng.lognormal(0, 2, 70_000), np.zeros(10), rng.exponential(1e-3, 30_000)]
    whole = LatencySketch()
    whole.add_many(np.concatenate(parts))
    merged = LatencySketch()
    for p in parts:
        s = LatencySketch()
        s.add_many(p)
        merged.merge(s)
    dm, dw = merged.to_dict(), whole.to_dict()
    assert dm.pop("sum") == pytest.approx(dw.pop("sum"), rel=1e-12)  # summation order differs
    assert dm == dw
    assert merged.quantiles(QS) == whole.quantiles(QS)


def test_many_small_adds_equal_one_large_add() -> None:
    x = np.random.default_rng(4).lognormal(-3, 1.5, 200_000)
    one, many = LatencySketch(), LatencySketch()
    one.add_many(x)
    for chunk in np.array_split(x, 997):
        many.add_many(chunk)
    assert one.bucket_counts()[0] == many.bucket_counts()[0]
    np.testing.assert_array_equal(one.bucket_counts()[1], many.bucket_counts()[1])


def test_merge_rejects_a_different_accuracy() -> None:
    with pytest.raises(ValueError):
        LatencySketch(0.005).merge(LatencySketch(0.01))


def test_exact_aggregates_and_serialisation_round_trip() -> None:
    x = np.random.default_rng(5).exponential(0.01, 123_457)
    s = LatencySketch()
    s.add_many(x[:1000])
    s.add_many(x[1000:])
    assert s.count == x.size
    assert s.min == x.min() and s.max == x.max()
    assert s.sum == pytest.approx(x.sum(), rel=1e-12)
    assert s.mean == pytest.approx(x.mean(), rel=1e-12)
    assert s.quantile(0.0) == x.min() and s.quantile(1.0) == x.max()
    back = LatencySketch.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back.to_dict() == s.to_dict()
    assert back.quantiles(QS) == s.quantiles(QS)
    assert s.nbytes < 8 * 5000  # bounded: a few thousand buckets, not 123,457 values
    bad = s.to_dict() | {"extra": 1}
    with pytest.raises(ValueError):
        LatencySketch.from_dict(bad)
    with pytest.raises(ValueError):
        LatencySketch.from_dict(s.to_dict() | {"count": s.count + 1})


def test_zero_and_tiny_values_have_absolute_error_below_min_positive() -> None:
    x = np.concatenate([np.zeros(300), np.full(200, 1e-12), np.full(100, 5e-10), np.linspace(1e-6, 1e-3, 400)])
    s = LatencySketch(ALPHA, min_positive=1e-9)
    s.add_many(x)
    for q in QS:
        true = np.quantile(x, q, method="inverted_cdf")
        est = s.quantile(float(q), "inverted_cdf")
        assert abs(est - true) <= max(ALPHA * true * (1 + 1e-9), 1e-9)
    assert s.quantile(0.0) == 0.0


@pytest.mark.parametrize("bad", [[1.0, -1e-9], [math.nan], [0.1, math.inf]])
def test_invalid_values_are_rejected(bad: list[float]) -> None:
    with pytest.raises(ValueError):
        LatencySketch().add_many(np.array(bad))
    with pytest.raises(ValueError):
        LatencySummary().add_many(np.array(bad))


def test_empty_and_out_of_range_queries_raise() -> None:
    s = LatencySketch()
    assert s.count == 0 and math.isnan(s.mean)
    with pytest.raises(ValueError):
        s.quantile(0.5)
    s.add_many(np.array([1.0]))
    with pytest.raises(ValueError):
        s.quantile(1.5)
    with pytest.raises(ValueError):
        LatencySummary().quantiles([0.5])


@settings(max_examples=300, deadline=None)
@given(
    x=hnp.arrays(np.float64, st.integers(1, 400), elements=st.floats(1e-9, 1e9, allow_nan=False)),
    q=st.floats(0.0, 1.0),
    method=st.sampled_from(["inverted_cdf", "lower"]),
)
def test_relative_error_bound_property(x: np.ndarray, q: float, method: str) -> None:
    s = LatencySketch(ALPHA)
    s.add_many(x)
    true = np.quantile(x, q, method=method)
    assert abs(s.quantile(q, method) - true) <= BOUND * true


@settings(max_examples=100, deadline=None)
@given(
    parts=st.lists(hnp.arrays(np.float64, st.integers(0, 100), elements=st.floats(0.0, 1e6)), min_size=1, max_size=5),
)
def test_merge_property(parts: list[np.ndarray]) -> None:
    whole, merged = LatencySketch(), LatencySketch()
    whole.add_many(np.concatenate(parts))
    for p in parts:
        s = LatencySketch()
        s.add_many(p)
        merged.merge(s)
    ow, cw = whole.bucket_counts()
    om, cm = merged.bucket_counts()
    assert (ow, cw.tolist(), whole.count) == (om, cm.tolist(), merged.count)


# --- LatencySummary ---------------------------------------------------------------------------------


def test_summary_exact_mode_equals_numpy_inverted_cdf() -> None:
    x = np.random.default_rng(6).lognormal(-4, 1, 150_000)
    s = LatencySummary()
    for chunk in np.array_split(x, 7):
        s.add_many(chunk)
    assert s.exact and s.relative_error == 0.0
    assert s.quantiles(QS) == np.quantile(x, QS, method="inverted_cdf").tolist()
    assert s.count == x.size and s.max == x.max()
    assert s.mean == pytest.approx(x.mean(), rel=1e-12)


@settings(max_examples=200, deadline=None)
@given(
    x=hnp.arrays(np.float64, st.integers(1, 300), elements=st.floats(0.0, 1e3)),
    qs=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=5),
)
def test_summary_exact_mode_property(x: np.ndarray, qs: list[float]) -> None:
    s = LatencySummary()
    s.add_many(x)
    assert s.quantiles(qs) == np.quantile(x, qs, method="inverted_cdf").tolist()


def test_summary_switch_over_keeps_aggregates_exact() -> None:
    rng = np.random.default_rng(8)
    chunks = [rng.lognormal(-4, 1, n) for n in (400, 500, 100, 1, 30_000)]  # 1000 is still exact, 1001 is not
    s = LatencySummary(exact_limit=1000)
    seen: list[np.ndarray] = []
    for c in chunks:
        s.add_many(c)
        seen.append(c)
        x = np.concatenate(seen)
        assert s.exact == (x.size <= 1000)
        assert s.count == x.size and s.max == x.max() and s.min == x.min()
        assert s.sum == pytest.approx(x.sum(), rel=1e-12)
    assert not s.exact and s.relative_error == ALPHA
    true = np.quantile(x, QS, method="inverted_cdf")
    assert _rel_err(np.array(s.quantiles(QS)), true).max() <= BOUND


def test_summary_stores_a_private_copy() -> None:
    buf = np.array([0.1, 0.2, 0.3])
    s = LatencySummary()
    s.add_many(buf)
    buf[:] = 9.0
    assert s.quantiles([1.0]) == [0.3]


def test_fraction_at_most_exact_in_both_modes() -> None:
    rng = np.random.default_rng(9)
    thresholds = [0.005, 0.02, 0.1]
    x = np.round(rng.lognormal(math.log(0.02), 1.0, 300_000), 3)  # ties exactly at the thresholds
    assert np.count_nonzero(x == 0.02) > 0
    s = LatencySummary(thresholds=thresholds, exact_limit=50_000)
    for chunk in np.array_split(x, 10):
        s.add_many(chunk)
        assert s.fraction_at_most(0.02) == np.count_nonzero(x[: s.count] <= 0.02) / s.count
    assert not s.exact
    for t in thresholds:
        assert s.fraction_at_most(t) == np.count_nonzero(x <= t) / x.size
    # an unregistered threshold in sketch mode is an estimate, bracketed by the alpha-scaled truths
    t = 0.0333
    assert np.mean(x <= t / (1 + ALPHA)) <= s.fraction_at_most(t) <= np.mean(x <= t / (1 - ALPHA))
    # and in exact mode any threshold is exact
    e = LatencySummary()
    e.add_many(x[:1000])
    assert e.fraction_at_most(t) == np.count_nonzero(x[:1000] <= t) / 1000


def test_summary_merge_modes_and_thresholds() -> None:
    rng = np.random.default_rng(10)
    a_x, b_x, c_x = rng.exponential(0.01, 600), rng.exponential(0.02, 300), rng.exponential(0.01, 5000)
    a = LatencySummary(thresholds=[0.01], exact_limit=1000)
    b = LatencySummary(thresholds=[0.01, 0.05], exact_limit=1000)
    a.add_many(a_x)
    b.add_many(b_x)
    a.merge(b)  # 900 values: still exact, and 0.05 is known exactly on both sides
    x = np.concatenate([a_x, b_x])
    assert a.exact and a.quantiles(QS) == np.quantile(x, QS, method="inverted_cdf").tolist()
    assert a.thresholds == (0.01, 0.05)
    c = LatencySummary(thresholds=[0.01], exact_limit=1000)
    c.add_many(c_x)  # sketch mode, no counter at 0.05
    a.merge(c)
    x = np.concatenate([x, c_x])
    assert not a.exact and a.count == x.size and a.max == x.max()
    assert a.thresholds == (0.01,)  # 0.05 is not known exactly on c's side any more
    assert a.fraction_at_most(0.01) == np.count_nonzero(x <= 0.01) / x.size
    assert _rel_err(np.array(a.quantiles(QS)), np.quantile(x, QS, method="inverted_cdf")).max() <= BOUND
    # merging the union into a fresh summary's sketch, exact+sketch the other way round
    d = LatencySummary(thresholds=[0.01], exact_limit=10)
    d.merge(a)
    assert d.count == x.size and d.fraction_at_most(0.01) == a.fraction_at_most(0.01)
    assert d.thresholds == (0.01,) and d.fraction_at_most(0.01) == np.count_nonzero(x <= 0.01) / x.size
    with pytest.raises(ValueError):
        a.merge(a)
    with pytest.raises(ValueError):
        a.merge(LatencySummary(alpha=0.01))


@settings(max_examples=200, deadline=None)
@given(
    x=hnp.arrays(np.float64, st.integers(1, 400), elements=st.floats(1e-9, 1e9, allow_nan=False)),
    q=st.floats(0.0, 1.0),
)
def test_summary_sketch_mode_bound_property(x: np.ndarray, q: float) -> None:
    s = LatencySummary(exact_limit=0)
    s.add_many(x)
    assert not s.exact
    true = np.quantile(x, q, method="inverted_cdf")
    assert abs(s.quantiles([q])[0] - true) <= s.relative_error * (1 + 1e-9) * true
