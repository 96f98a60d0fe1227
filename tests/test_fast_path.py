"""The exact fast path (lepton_sim/sim/fast.py) against the event engine: identical metrics, to the
last bit and the event count, wherever it runs; the event engine where it cannot, and saying why."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lepton_sim.errors import InputError
from lepton_sim.metrics import build_metrics
from lepton_sim.scenario import load_scenario, parse_scenario
from lepton_sim.scenario.schema import Demand
from lepton_sim.servicetime import batch_times
from lepton_sim.sim import Simulation, fast
from lepton_sim.sim.arrivals import arrival_blocks, arrival_times
from lepton_sim.sim.engine import ENGINES
from lepton_sim.sim.streams import Sampler, Uniforms, stream

ROOT = Path(__file__).resolve().parents[1]
BOX = {"kind": "gpu", "peak_tflops": {"fp32": 10.0, "fp16": 40.0}, "memory_bandwidth_gbps": 300, "memory_gb": 16,
       "power_w": 100, "idle_power_w": 20, "cost_per_hour": 1.0}


def _metrics(scenario: Any, seed: int | None, engine: str, fn: Any = batch_times) -> tuple[dict, dict]:
    sim = Simulation(scenario, seed, fn, engine=engine)
    m = build_metrics(scenario, sim.run())
    m.pop("wall_s")
    return m, m.pop("engine")


def _same(scenario: Any, seed: int | None = None, fn: Any = batch_times) -> dict:
    """Run the event engine and auto; assert identical metrics; return auto's engine per service."""
    slow, slow_eng = _metrics(scenario, seed, "event", fn)
    fast, fast_eng = _metrics(scenario, seed, "auto", fn)
    assert set(slow_eng.values()) == {"event"}
    assert fast == slow
    return fast_eng


FAST_SHIPPED = ["queueing/mm1.yaml", "queueing/mmc-8.yaml", "queueing/md1.yaml", "queueing/mg1-lognormal.yaml",
                "validation/batching-16.yaml", "validation/payload-zstd.yaml", "validation/two-replicas-link.yaml"]


@pytest.mark.parametrize("name", FAST_SHIPPED)
def test_shipped_scenarios_identical(name: str) -> None:
    s = load_scenario(ROOT / "scenarios" / name)
    for seed in (1, 7):
        eng = _same(s, seed)
        assert set(eng.values()) == {"fast"}, eng


@pytest.mark.parametrize("name", ["queueing/mmc-8.yaml", "validation/batching-16.yaml",
                                  "validation/payload-zstd.yaml", "validation/two-replicas-link.yaml"])
def test_chunks_change_nothing(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Small chunks of simulated time (a few requests each): batches, queues, fill timers and
    transfers carried from chunk to chunk, latencies folded across chunk ends."""
    monkeypatch.setattr(fast, "CHUNK_REQUESTS", 37)
    s = load_scenario(ROOT / "scenarios" / name)
    s = s.model_copy(update={"horizon": s.horizon.model_copy(update={"duration_s": min(s.horizon.duration_s, 60.0),
                                                                      "warmup_s": min(s.horizon.warmup_s, 5.0)})})
    assert set(_same(s, 2).values()) == {"fast"}


def test_mixed_scenario_runs_each_part_on_its_engine() -> None:
    s = load_scenario(ROOT / "scenarios" / "planner-small.yaml")
    eng = _same(s, 3)
    assert eng["vision"] == "fast"
    assert eng["text"].startswith("event: ") and "least-loaded routing of text" in eng["text"]


def test_ineligible_scenarios_say_why() -> None:
    s = load_scenario(ROOT / "scenarios" / "edge-vision.yaml")
    eng = _metrics(s, None, "auto")[1]
    assert eng == {"detect": "event: least-loaded routing of detect reads the pools' state"}
    with pytest.raises(InputError, match="--engine fast cannot run this scenario exactly: least-loaded routing"):
        Simulation(s, None, engine="fast")
    with pytest.raises(InputError, match="unknown engine 'quick'"):
        Simulation(s, None, engine="quick")


def _base(**over: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "name": "fast", "seed": 5,
        "horizon": {"duration_s": 20, "warmup_s": 2, "drain_s": 5},
        "hardware": {"box": dict(BOX)},
        "sites": {"dc": {"capacity": {"box": 8}}, "e0": {"kind": "edge", "capacity": {"box": 2}}},
        "links": [{"between": ["e0", "dc"], "bandwidth_gbps": 1, "latency_ms": 2}],
        "models": {"m": {"layers": [{"op": "dense", "in": 256, "out": 256}], "input_bytes": 20000,
                         "output_bytes": 100, "variants": {"fp32": {"precision": "fp32"}}}},
        "services": {"s": {"model": "m", "variants": ["fp32"], "slo": {"percentile": 99, "latency_ms": 50},
                           "demand": [{"site": "e0", "rate_rps": 200}]}},
        "deployment": {"replicas": [{"service": "s", "site": "dc", "hardware": "box", "variant": "fp32",
                                     "count": 2}]},
    }
    d.update(over)
    return d


def test_failures_fair_links_and_llm_go_to_the_event_engine() -> None:
    d = _base(failures={"box": {"mtbf_h": 0.01, "mttr_h": 0.001}})
    assert "the scenario has failures" in _same(parse_scenario(d))["s"]
    d = _base()
    d["links"][0]["sharing"] = "fair"
    assert "shares its bandwidth fairly" in _same(parse_scenario(d))["s"]
    s = load_scenario(ROOT / "scenarios" / "llm" / "chat-h100.yaml")
    assert "is an LLM service" in _metrics(s, None, "auto")[1]["chat"]


def test_a_cycle_of_stations_goes_to_the_event_engine() -> None:
    # requests of `up` go e0 -> dc, responses of `down` (at e0, for dc's demand) come back dc -> e0,
    # and requests of `down` ride dc -> e0 on the direction that carries `up`'s responses
    d = _base()
    d["services"]["t"] = {"model": "m", "variants": ["fp32"], "slo": {"percentile": 99, "latency_ms": 50},
                          "demand": [{"site": "dc", "rate_rps": 100}]}
    d["deployment"]["replicas"].append({"service": "t", "site": "e0", "hardware": "box", "variant": "fp32",
                                        "count": 1})
    eng = _same(parse_scenario(d))
    assert eng["s"] == eng["t"] and "form a cycle" in eng["s"]


def _trace(tmp_path: Path, stamps: list[float]) -> str:
    p = tmp_path / "stamps.csv"
    p.write_text("t\n" + "\n".join(f"{t!r}" for t in stamps) + "\n")
    return str(p)


def test_same_instant_ties_fall_back_and_stay_identical(tmp_path: Path) -> None:
    # whole-second stamps and a one-second service: a batch ends at the instant the next request arrives
    d = _base(horizon={"duration_s": 30, "warmup_s": 0, "drain_s": 5}, links=[])
    d["sites"] = {"dc": {"capacity": {"box": 8}}}
    d["services"]["s"]["service_time"] = {"dist": "deterministic", "ms": 1000}
    d["services"]["s"]["demand"] = [{"site": "dc", "arrival": {"kind": "trace", "file": _trace(tmp_path, list(range(25)))}}]
    d["deployment"]["replicas"][0]["count"] = 1
    path = tmp_path / "tie.yaml"
    path.write_text(yaml.safe_dump(d))
    s = load_scenario(path)
    eng = _same(s)
    assert "at the instant of one of its own events" in eng["s"]
    with pytest.raises(InputError, match="--engine fast cannot run this scenario exactly: a request reaches pool"):
        Simulation(s, None, engine="fast").run()
    # two demand lines whose requests meet at the pool at one instant
    d["services"]["s"]["service_time"] = {"dist": "deterministic", "ms": 1}
    d["services"]["s"]["demand"].append(dict(d["services"]["s"]["demand"][0]))
    path.write_text(yaml.safe_dump(d))
    eng = _same(load_scenario(path))
    assert "from different places" in eng["s"]


def _idle_times(model: Any, variant: Any, hardware: Any, max_batch: int) -> Any:
    """Roofline times with after-idle factors, as a measured profile gives them."""
    bt = batch_times(model, variant, hardware, max_batch)
    factors = tuple((1.1 + 0.01 * b, 1.4 + 0.02 * b) for b in range(1, max_batch + 1))
    return dataclasses.replace(bt, after_idle=((1e-3, 2e-2), factors))


service_times = st.one_of(
    st.none(),
    st.builds(lambda m: {"dist": "exponential", "mean_ms": m}, st.floats(0.1, 10)),
    st.builds(lambda m: {"dist": "deterministic", "ms": m}, st.floats(0.1, 10)),
    st.builds(lambda m, cv: {"dist": "lognormal", "mean_ms": m, "cv": cv}, st.floats(0.1, 10), st.floats(0.1, 3)),
)
arrivals = st.one_of(
    st.just({"kind": "poisson"}),
    st.just({"kind": "constant"}),
    st.builds(lambda r1, r2: {"kind": "mmpp", "rates_rps": [r1, r2], "mean_dwell_s": [1, 0.5]},
              st.floats(1, 100), st.floats(100, 600)),
    st.builds(lambda a: {"kind": "diurnal", "amplitude": a, "period_s": 5}, st.floats(0, 1)),
)


@st.composite
def fast_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """Scenarios the fast path may run: FIFO links, no failures, weighted routing or one candidate
    each, one or two services over shared links, a chain of sites (edge -> aggregation -> dc)."""
    n_edge = draw(st.integers(1, 3))
    edges = [f"e{i}" for i in range(n_edge)]
    links = [{"between": ["agg", "dc"], "bandwidth_gbps": draw(st.floats(0.05, 10)), "latency_ms": draw(st.floats(0, 5))}]
    links += [{"between": [e, "agg"], "bandwidth_gbps": draw(st.floats(0.05, 10)),
               "latency_ms": draw(st.floats(0, 5))} for e in edges]
    services: dict[str, Any] = {}
    replicas: list[dict[str, Any]] = []
    weighted = draw(st.booleans())
    for name in ["a", "b"][: draw(st.integers(1, 2))]:
        max_batch = draw(st.integers(1, 8))
        svc: dict[str, Any] = {
            "model": "m", "variants": ["fp32", "fp16"], "slo": {"percentile": 99, "latency_ms": 30},
            "batching": {"max_batch": max_batch, "max_wait_ms": draw(st.floats(0, 5)) if max_batch > 1 else 0},
            "demand": [{"site": e, "rate_rps": draw(st.floats(1, 400)), "arrival": draw(arrivals)}
                       for e in draw(st.lists(st.sampled_from(edges), min_size=1, max_size=3))],
        }
        t = draw(service_times)
        if t is not None:
            svc["service_time"] = t
        if draw(st.booleans()):
            svc["max_queue"] = draw(st.integers(1, 30))
        if draw(st.booleans()):
            svc["payload"] = {"codec": draw(st.sampled_from(["zstd", "lz4"]))}
        services[name] = svc
        sites = ["dc", *draw(st.lists(st.sampled_from(["agg", *edges]), max_size=2, unique=True))] if weighted else ["dc"]
        raw = {e: [draw(st.sampled_from([0.0, 0.1, 0.5, 1.0])) for _ in sites] for e in edges}
        for site_i, site in enumerate(sites):
            line = {"service": name, "site": site, "hardware": "box",
                    "variant": draw(st.sampled_from(["fp32", "fp16"])), "count": draw(st.integers(1, 3))}
            if weighted:  # each demand site's weights over the pools add up to 1 (the first takes all of none)
                line["weights"] = {e: (w[site_i] / sum(w) if sum(w) else float(site_i == 0)) for e, w in raw.items()}
            replicas.append(line)
    return {
        "name": "fastprop", "seed": draw(st.integers(0, 2**32)),
        "horizon": {"duration_s": draw(st.floats(2, 10)), "warmup_s": draw(st.floats(0, 1.5)),
                    "drain_s": draw(st.sampled_from([0.0, 0.05, 10.0]))},
        "hardware": {"box": dict(BOX)},
        "sites": {"dc": {"capacity": {"box": 8}}, "agg": {"capacity": {"box": 8}},
                  **{e: {"kind": "edge", "capacity": {"box": 8}} for e in edges}},
        "links": links,
        "models": {"m": {"layers": [{"op": "dense", "in": 512, "out": 512}, {"op": "gelu"},
                                    {"op": "dense", "in": 512, "out": 16}],
                         "input_bytes": draw(st.integers(1, 200_000)), "output_bytes": draw(st.integers(1, 20_000)),
                         "variants": {"fp32": {"precision": "fp32"}, "fp16": {"precision": "fp16"}}}},
        "services": services,
        "deployment": {"replicas": replicas, "routing": "weighted" if weighted else "least-loaded"},
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fast_scenarios(), st.booleans(), st.sampled_from([fast.CHUNK_REQUESTS, 50, 333]))
def test_generated_scenarios_identical(d: dict[str, Any], idle: bool, chunk: int) -> None:
    s = parse_scenario(d)
    old, fast.CHUNK_REQUESTS = fast.CHUNK_REQUESTS, chunk
    try:
        eng = _same(s, None, _idle_times if idle else batch_times)
    finally:
        fast.CHUNK_REQUESTS = old
    for name, e in eng.items():  # the fast path ran, or the event engine for a reason these scenarios can have
        assert e == "fast" or "cycle" in e or "same instant" in e or "its own events" in e, (name, e)


def test_the_fast_path_runs_where_it_should() -> None:
    """Generated-like scenarios where nothing can tie: the fast path must run them, not only agree."""
    d = _base()
    d["services"]["s"]["batching"] = {"max_batch": 4, "max_wait_ms": 1}
    d["services"]["s"]["payload"] = {"codec": "zstd"}
    d["services"]["s"]["max_queue"] = 5
    assert _same(parse_scenario(d), 3) == {"s": "fast"}
    assert _same(parse_scenario(d), 4, _idle_times) == {"s": "fast"}


def test_streams_take_gives_what_single_calls_give() -> None:
    for make in (lambda: Uniforms(stream(3, "u")),
                 lambda: Sampler(lambda n, g=stream(3, "s"): g.exponential(0.01, n))):
        a, b = make(), make()
        singles = [a() for _ in range(20000)]
        got = []
        for n in (0, 1, 7, 300, 5000, 1, 14691):  # across chunks and blocks, then single calls again
            got.extend(b.take(n).tolist())
        got.extend(b() for _ in range(20000 - len(got)))
        assert got == singles


def test_arrival_blocks_are_arrival_times() -> None:
    for arrival in ({"kind": "poisson"}, {"kind": "constant"},
                    {"kind": "mmpp", "rates_rps": [10, 300], "mean_dwell_s": [1, 0.2]},
                    {"kind": "diurnal", "amplitude": 0.7, "period_s": 3}):
        demand = Demand.model_validate({"site": "x", "rate_rps": 50, "arrival": arrival})
        it = arrival_times(demand, stream(9, "a"))
        one = [next(it) for _ in range(10000)]
        blocks = []
        for b in arrival_blocks(demand, stream(9, "a")):
            blocks.extend(b.tolist())
            if len(blocks) >= 10000:
                break
        assert blocks[:10000] == one, arrival


def test_cli_engine_flag(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "lepton_sim", "simulate", *args], capture_output=True, text=True,
                              cwd=tmp_path)

    mm1 = str(ROOT / "scenarios" / "queueing" / "mm1.yaml")
    out = run(mm1, "--engine", "fast")
    assert out.returncode == 0, out.stderr
    assert "engine: fast path (exact): q" in out.stdout
    out = run(str(ROOT / "scenarios" / "edge-vision.yaml"), "--engine", "fast", "--out", "res")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "least-loaded routing of detect reads the pools' state" in out.stderr
    assert not (tmp_path / "res").exists()
    out = run(mm1, "--engine", "quick")
    assert out.returncode == 2 and "invalid choice: 'quick'" in out.stderr
    j = [run(mm1, "--engine", e, "--json") for e in ("event", "fast")]
    m = [yaml.safe_load(o.stdout) for o in j]
    assert m[0].pop("engine") == {"q": "event"} and m[1].pop("engine") == {"q": "fast"}
    for x in m:
        x.pop("wall_s")
    assert m[0] == m[1]
    assert tuple(ENGINES) == ("auto", "event", "fast")
