"""Batch times drawn from measured samples (`BatchTimes.samples_s`, `pools.DrawnTimes`).

Closed forms on one replica: arrivals far apart make every batch follow an idle spell, so every
latency is one of the after-idle samples; arrivals faster than service keep the replica busy, so
after the first batch every batch is back to back and the throughput is one over their mean. Such a
pool runs on the event engine, which says why.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from lepton_sim.metrics import build_metrics
from lepton_sim.scenario import parse_scenario
from lepton_sim.servicetime.roofline import BatchTimes
from lepton_sim.sim import Simulation


def _scenario(rate: float, duration: float = 40.0) -> Any:
    return parse_scenario({
        "name": "drawn", "seed": 3, "horizon": {"duration_s": duration, "warmup_s": 2, "drain_s": 0},
        "hardware": {"cpu": {"from": "generic-server-cpu"}}, "sites": {"here": {"capacity": {"cpu": 1}}},
        "models": {"m": {"layers": [{"op": "dense", "in": 64, "out": 64}], "input_bytes": 256, "output_bytes": 40}},
        "services": {"s": {"model": "m", "slo": {"percentile": 99, "latency_ms": 50},
                           "demand": [{"site": "here", "rate_rps": rate, "arrival": {"kind": "constant"}}]}},
        "deployment": {"replicas": [{"service": "s", "site": "here", "hardware": "cpu", "variant": "fp32", "count": 1}]}})


def _times(hot: tuple[float, ...], idle: tuple[float, ...] | None) -> Any:
    def fn(model: Any, variant: Any, hw: Any, max_batch: int) -> BatchTimes:
        return BatchTimes(times_s=(1e-3,) * max_batch, source="measured", detail="test",
                          samples_s=(hot,) * max_batch, idle_samples_s=None if idle is None else (idle,) * max_batch)
    return fn


def _run(rate: float, hot: tuple[float, ...], idle: tuple[float, ...] | None) -> tuple[Any, Any]:
    s = _scenario(rate)
    sim = Simulation(s, batch_times_fn=_times(hot, idle))
    rec = sim.run()
    return rec, build_metrics(s, rec)


def test_far_apart_every_batch_draws_an_after_idle_sample() -> None:
    rec, m = _run(10, hot=(1e-3,), idle=(3e-3,))
    assert m["services"]["s"]["latency_ms"]["mean"] == pytest.approx(3.0, rel=1e-9)
    # two after-idle samples: each latency is one of them, about half each (one block of two, drawn
    # without replacement once, then with: 380 fair coins between 2 and 4 ms, 3 +- 0.05)
    rec, m = _run(10, hot=(1e-3,), idle=(2e-3, 4e-3))
    lat = m["services"]["s"]["latency_ms"]
    assert lat["p50"] == pytest.approx(2.0, rel=0.02) or lat["p50"] == pytest.approx(4.0, rel=0.02)
    assert 2.8 < lat["mean"] < 3.2
    pool = rec.pools[0]
    assert sum(pool.busy_s) == pytest.approx(lat["mean"] / 1e3 * pool.batches, rel=1e-5)  # metrics round to 6 digits
    # without after-idle samples an idle start draws from the back-to-back ones
    _, m = _run(10, hot=(5e-3,), idle=None)
    assert m["services"]["s"]["latency_ms"]["mean"] == pytest.approx(5.0, rel=1e-9)


def test_kept_busy_every_batch_after_the_first_draws_a_back_to_back_sample() -> None:
    # 1,000/s against 1.5 ms batches (2 and 1 ms equally): the replica never idles after its first batch
    rec, m = _run(1000, hot=(1e-3, 2e-3), idle=(50e-3,))
    pool = rec.pools[0]
    window = rec.duration_s - rec.warmup_s
    assert pool.batches / window == pytest.approx(1 / 1.5e-3, rel=0.02)
    assert sum(pool.busy_s) == pytest.approx(window, rel=1e-3)


def test_drawn_times_are_deterministic_and_run_on_the_event_engine() -> None:
    a, ma = _run(300, hot=(1e-3, 2e-3, 4e-3), idle=(3e-3, 6e-3))
    b, mb = _run(300, hot=(1e-3, 2e-3, 4e-3), idle=(3e-3, 6e-3))
    assert ma["services"] == mb["services"] and ma["pools"] == mb["pools"]
    assert a.engines["s"].startswith("event: pool s@here/cpu/fp32 draws its batch times from measured samples")


def test_samples_with_times_are_drawn_from_those_taken_around_the_batch() -> None:
    # 4,000 after-idle samples, 100 a second (200 span 2 s): 5 ms while the host was slow (the
    # run's first 20 s), 2 ms after
    n = 4000
    at = tuple(40.0 * (i + 0.5) / n for i in range(n))
    idle = tuple(5e-3 if t < 20.0 else 2e-3 for t in at)

    def fn(model: Any, variant: Any, hw: Any, max_batch: int) -> BatchTimes:
        return BatchTimes(times_s=(1e-3,), source="measured", detail="test", samples_s=((1e-3,),),
                          samples_at_s=((0.0,),), idle_samples_s=(idle,), idle_samples_at_s=(at,))

    s = _scenario(10)
    rec = Simulation(s, batch_times_fn=fn).run()
    bins = rec.pools[0].bins_busy_s  # 120 bins of 1/3 s; 10 batches a second, each after idle
    slow, fast = sum(bins[6:50]), sum(bins[70:114])  # 2-16.7 s and 23.3-38 s: 3 s or more from 20 s
    assert slow == pytest.approx(44 / 3 * 10 * 5e-3, rel=0.03) and fast == pytest.approx(44 / 3 * 10 * 2e-3, rel=0.03)
    # without the times, every batch draws from the whole run: the two halves alike
    def whole(model: Any, variant: Any, hw: Any, max_batch: int) -> BatchTimes:
        return BatchTimes(times_s=(1e-3,), source="measured", detail="test", samples_s=((1e-3,),),
                          idle_samples_s=(idle,))

    bins = Simulation(s, batch_times_fn=whole).run().pools[0].bins_busy_s
    assert sum(bins[6:50]) == pytest.approx(sum(bins[70:114]), rel=0.15)


def test_each_block_is_drawn_without_replacement_until_it_is_used_up() -> None:
    from lepton_sim.sim.pools import DrawnTimes
    from lepton_sim.sim.streams import Uniforms, stream

    values = tuple(float(i) for i in range(1, 11))
    drawn = DrawnTimes(BatchTimes(times_s=(1.0,), source="measured", detail="test", samples_s=(values,)),
                       Uniforms(stream(1, "test")))
    first = [drawn(1, False, 0.0) for _ in range(10)]
    assert sorted(first) == list(values) and first != list(values)  # each once, shuffled
    assert all(drawn(1, False, 0.0) in values for _ in range(30))  # then with replacement
    # with times, blocks of LOCAL_SAMPLES in time order: a draw at t comes from the block spanning t
    from lepton_sim.servicetime.roofline import LOCAL_SAMPLES

    n = 3 * LOCAL_SAMPLES
    at = tuple(float(i) for i in range(n))  # one sample a second, its value its time + 1
    timed = DrawnTimes(BatchTimes(times_s=(1.0,), source="measured", detail="test",
                                  samples_s=(tuple(t + 1 for t in at),), samples_at_s=(at,)), Uniforms(stream(1, "test")))
    got = [timed(1, False, LOCAL_SAMPLES + 0.5) for _ in range(LOCAL_SAMPLES)]
    assert sorted(got) == [float(i + 1) for i in range(LOCAL_SAMPLES, 2 * LOCAL_SAMPLES)]
    assert LOCAL_SAMPLES * 2 < timed(1, False, 1e9) <= n and timed(1, False, -5.0) <= LOCAL_SAMPLES


def test_sample_lists_must_cover_every_batch_size() -> None:
    base = BatchTimes(times_s=(1e-3, 2e-3), source="measured", detail="test")
    with pytest.raises(ValueError, match="one list of positive seconds per batch size 1..2, none empty"):
        dataclasses.replace(base, samples_s=((1e-3,),))
    with pytest.raises(ValueError, match="none empty"):
        dataclasses.replace(base, samples_s=((1e-3,), ()))
    with pytest.raises(ValueError, match="idle_samples_s"):
        dataclasses.replace(base, samples_s=((1e-3,), (2e-3,)), idle_samples_s=((0.0,), ()))
    ok = dataclasses.replace(base, samples_s=((1e-3,), (2e-3,)), idle_samples_s=((3e-3,), ()))
    assert ok.idle_samples_s == ((3e-3,), ())
    with pytest.raises(ValueError, match="samples_at_s must give, increasing, the time of each of samples_s"):
        dataclasses.replace(ok, samples_at_s=((1.0,), ()), idle_samples_at_s=((1.0,), ()))
    with pytest.raises(ValueError, match="increasing"):
        dataclasses.replace(base, samples_s=((1e-3, 2e-3), (2e-3,)), samples_at_s=((2.0, 1.0), (0.0,)))
    with pytest.raises(ValueError, match="idle_samples_at_s must be given"):
        dataclasses.replace(ok, samples_at_s=((1.0,), (1.0,)))
