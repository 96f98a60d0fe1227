"""The simulator's short ways give the long ways' results to the last bit.

- `common.after` and `common.run_until` order events as `simpy.Timeout` and `Environment.run` do;
- `LLMReplicaModel.decode_seconds` is `seconds` step by step whichever attention term is larger,
  including runs where that changes and ties;
- the time-bin and window tallies taken the short way (below `BIN_SURE` of a bin's edge, without
  the division) equal those taken the long way, for links and LLM pools, across bins, the
  window's start and end, and failures;
- the decode cohort equals scheduling one by one in those conditions too.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest
import simpy
from simpy.events import NORMAL

from lepton_sim.metrics import build_metrics
from lepton_sim.scenario.load import parse_scenario
from lepton_sim.sim import Simulation
from lepton_sim.sim import common as common_mod
from lepton_sim.sim import llm as llm_mod
from lepton_sim.sim.common import Request, after, run_until

GPU = {"kind": "gpu", "peak_tflops": {"fp16": 100.0}, "memory_bandwidth_gbps": 1000.0, "memory_gb": 16.0,
       "power_w": 300.0, "idle_power_w": 50.0, "cost_per_hour": 2.0, "interconnect_gbps": 100.0}
TINY = {"kind": "llm", "layers": 2, "hidden": 256, "heads": 8, "kv_heads": 2, "ffn": 512, "vocab": 1000}


def scenario(*, duration: float = 12.0, warmup: float = 2.5, rate: float = 60.0, drain: float = 0.0,
             failures: dict | None = None, count: int = 2) -> dict[str, Any]:
    """Busy replicas behind a link, bins of 0.1 s, a warm-up and a run that ends mid-decode."""
    raw: dict[str, Any] = {
        "name": "short-ways", "seed": 3,
        "horizon": {"duration_s": duration, "warmup_s": warmup, "drain_s": drain},
        "hardware": {"g": GPU},
        "sites": {"dc": {"capacity": {"g": 8}}, "edge": {"kind": "edge"}},
        "links": [{"between": ["edge", "dc"], "bandwidth_gbps": 0.05, "latency_ms": 3.0}],
        "models": {"lm": TINY},
        "services": {"chat": {
            "model": "lm",
            "slo": {"ttft": {"percentile": 99, "latency_ms": 500}, "tpot": {"percentile": 99, "latency_ms": 50}},
            "tokens": {"prompt": {"dist": "uniform", "low": 20, "high": 700},
                       "output": {"dist": "uniform", "low": 1, "high": 400}},
            "demand": [{"site": "edge", "rate_rps": rate, "arrival": "poisson"}],
        }},
        "deployment": {"replicas": [{"service": "chat", "site": "dc", "hardware": "g", "variant": "fp16",
                                     "count": count}]},
    }
    if failures:
        raw["failures"] = failures
    return raw


def record_fields(rec: Any) -> dict[str, Any]:
    """Every raw tally of a record (not its latency summaries, which metrics cover)."""
    out: dict[str, Any] = {"events": rec.events, "created": rec.created, "end": rec.end_s}
    for p in rec.pools:
        out[p.id] = (p.busy_s, p.down_s, p.bins_busy_s, p.batches, p.batched, p.failures, p.retried,
                     dataclasses.astuple(p.llm))
    for link in rec.links:
        out[link.direction] = (link.busy_s, link.bytes, link.transfers, link.bins_busy_s, link.down_s)
    return out


def run_both(raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    s = parse_scenario(copy.deepcopy(raw))
    rec = Simulation(s).run()
    m = build_metrics(s, rec)
    m.pop("wall_s")
    return m, record_fields(rec)


def test_after_and_run_until_order_events_as_simpy_does() -> None:
    delays = [0.5, 0.25, 0.5, 0.0, 1.0, 0.25, 2.0, 0.75, 1.0]  # ties, zero, one at `until` exactly

    def schedule(env: simpy.Environment, seen: list[Any], mine: bool) -> None:
        for i, d in enumerate(delays):
            if mine and i % 2:
                after(env, d, lambda ev: seen.append((env.now, ev._value)), i)
            else:
                ev = env.timeout(d, i)
                ev.callbacks.append(lambda ev: seen.append((env.now, ev._value)))

    ref_env, ref = simpy.Environment(), []
    schedule(ref_env, ref, mine=False)
    ref_env.run(until=1.0)
    for runner in (lambda env: env.run(until=1.0), lambda env: run_until(env, 1.0)):
        env, seen = simpy.Environment(), []
        schedule(env, seen, mine=True)
        runner(env)
        assert seen == ref and env.now == ref_env.now == 1.0

        def waiting(env: simpy.Environment) -> list[tuple[float, int]]:
            return sorted((t, eid) for t, prio, eid, _ in env._queue if prio == NORMAL)

        assert waiting(env) == waiting(ref_env)  # what is due at or after `until` waits


def test_decode_seconds_is_seconds_step_by_step_in_every_attention_regime() -> None:
    from lepton_sim.calibration import datasheet_hardware
    from lepton_sim.catalogue import zoo_model
    from lepton_sim.scenario.schema import LLMModelSpec
    from lepton_sim.servicetime.llm import llm_replica_model

    spec = LLMModelSpec.model_validate(zoo_model("llama-3-8b"))
    base = llm_replica_model(spec, spec.variants["fp16"], datasheet_hardware("nvidia-h100-sxm"), 1, 512, max_seqs=64)
    c_math, c_kv, c_act, overhead = base._attn
    n = 8
    act = c_act * n
    # math terms steeper than memory's, crossing at kv = act / (slope - c_kv) = 10,000
    slope = c_kv + act / 10_000
    for attn in ((slope, c_kv, c_act, overhead), (c_kv, c_kv, c_act, overhead), (c_math, c_kv, c_act, overhead),
                 (3 * c_kv, c_kv, 0.0, overhead)):
        m = dataclasses.replace(base, _attn=attn)
        for first in (8, 9_000, 9_992, 10_000, 10_008, 20_000):
            for steps in (1, 2, 40, 300):
                got = m.decode_seconds(n, first, steps)
                assert got == [m.seconds(n, n, float(first + n * j), float(first + n * j)) for j in range(steps)]
    assert base.decode_seconds(n, 100, 0) == []


@pytest.mark.parametrize("case", ["plain", "failures", "drained"])
def test_the_short_ways_of_tallying_equal_the_long_ways(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    failures = {"g": {"mtbf_h": 0.0008, "mttr_h": 0.0002}, "edge--dc": {"mtbf_h": 0.001, "mttr_h": 0.0001}}
    raw = scenario(failures=failures if case == "failures" else None, drain=600.0 if case == "drained" else 0.0)
    fast = run_both(raw)
    # with no time sure to lie inside a bin every tally divides, as the engine did before the short ways
    monkeypatch.setattr(common_mod, "BIN_SURE", 0.0)  # `Window.sure_below`, for links and LLM pools
    monkeypatch.setattr(llm_mod, "BIN_SURE", 0.0)  # planned runs' own bins
    slow = run_both(raw)
    assert fast == slow
    m = fast[0]
    assert m["services"]["chat"]["completed"] > 200
    if case == "failures":
        assert m["pools"]["chat@dc/g/fp16"]["failures"] > 0 and m["links"]["edge--dc"]["failures"] > 0


@pytest.mark.parametrize("case", ["plain", "failures"])
def test_the_cohort_equals_one_by_one_across_many_bins_and_the_window_edges(case: str,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    failures = {"g": {"mtbf_h": 0.0008, "mttr_h": 0.0002}} if case == "failures" else None
    # one replica: with more, a planned run's tallies are added to the pool's sums when it is
    # carried out, after other replicas' iterations, and the sums may differ in their last bit
    # (metrics, to 6 significant digits, do not)
    raw = scenario(failures=failures, count=1, rate=30.0)
    fast = run_both(raw)
    monkeypatch.setattr(llm_mod.LLMPool, "COHORT", False)
    slow = run_both(raw)
    assert fast[0] == slow[0]
    # events differ (a planned run is one event); every other raw tally is the same to the bit
    fast[1].pop("events"), slow[1].pop("events")
    assert fast[1] == slow[1]
    assert fast[0]["services"]["chat"]["completed"] > 100


def test_a_link_tallies_each_transfer_as_the_window_adds_it() -> None:
    """Transfers straddling bins, the window's start and end, back to back and with gaps: the link's
    busy seconds, bytes and bins are those of `Window.overlap` and `Window.add_bins` transfer by transfer."""
    s = parse_scenario(scenario(duration=1.2, warmup=0.3))
    sim = Simulation(s)
    d = sim.linkdirs[(0, "edge")]
    win = sim.window
    busy, nbytes, transfers, bins = 0.0, 0.0, 0, [0.0] * len(d.bins)
    free_at = 0.0
    t = 0.0
    for k in range(400):
        t += (k % 7) * 0.0011  # arrivals while the link is busy (queued) and after it went idle
        bits = 8.0 * (1 + (k * 7919) % 5000)
        sim.env._now = t
        req = Request(t, None, True)  # type: ignore[arg-type]
        req.bits = bits
        d.transmit(req)
        start = free_at if free_at > t else t
        end = free_at = start + bits / d.bps
        if win.start <= start < win.end:
            nbytes += bits / 8
            transfers += 1
        busy += win.overlap(start, end)
        win.add_bins(bins, start, end)
        assert (d.busy, d.bytes, d.transfers, d.bins) == (busy, nbytes, transfers, bins)
    assert t > win.end and transfers > 100
