"""The simulator's mechanics against hand-computed figures: network floor, batching, routing, arrivals."""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lepton_sim.metrics import build_metrics
from lepton_sim.scenario import parse_scenario
from lepton_sim.servicetime import batch_times
from lepton_sim.sim import simulate

BOX = {"kind": "cpu", "peak_tflops": {"fp32": 1.0}, "memory_bandwidth_gbps": 50, "memory_gb": 16,
       "power_w": 100, "idle_power_w": 40, "cost_per_hour": 0.5}
MLP = {"layers": [{"op": "dense", "in": 1024, "out": 1024}, {"op": "relu"}, {"op": "dense", "in": 1024, "out": 10}],
       "input_bytes": 125_000, "output_bytes": 1250}


def scenario(**over: Any) -> dict[str, Any]:
    """A two-site scenario: demand at `edge`, one pool at `dc`, one 1 Gbps link of 5 ms."""
    d: dict[str, Any] = {
        "name": "t", "seed": 1,
        "horizon": {"duration_s": 200, "warmup_s": 10},
        "hardware": {"box": copy.deepcopy(BOX)},
        "sites": {"dc": {"capacity": {"box": 8}}, "edge": {"kind": "edge", "capacity": {"box": 8}}},
        "links": [{"between": ["edge", "dc"], "bandwidth_gbps": 1, "latency_ms": 5, "cost_per_gb": 0.02}],
        "models": {"mlp": copy.deepcopy(MLP)},
        "services": {"svc": {"model": "mlp", "slo": {"percentile": 99, "latency_ms": 50},
                             "demand": [{"site": "edge", "rate_rps": 0.5, "arrival": {"kind": "constant"}}]}},
        "deployment": {"replicas": [{"service": "svc", "site": "dc", "hardware": "box", "variant": "fp32", "count": 1}]},
    }
    for k, v in over.items():
        d[k] = v
    return d


def run(d: dict[str, Any], seed: int | None = None) -> tuple[Any, dict[str, Any]]:
    s = parse_scenario(d)
    rec = simulate(s, seed)
    return rec, build_metrics(s, rec)


def test_network_floor_at_low_load() -> None:
    """Constant arrivals far apart: latency = 2 x propagation + serialisation both ways + compute."""
    d = scenario()
    s = parse_scenario(d)
    compute = batch_times(s.models["mlp"], s.models["mlp"].variants["fp32"], s.hardware["box"], 1).times_s[0]
    expected = 2 * 5e-3 + 125_000 * 8 / 1e9 + 1250 * 8 / 1e9 + compute
    rec, m = run(d)
    lat = rec.services["svc"].latency_s
    assert lat.count == m["services"]["svc"]["completed"] > 50
    lo, hi = lat.quantiles([0.0, 1.0])
    assert abs(lo - expected) / expected < 0.01 and abs(hi - expected) / expected < 0.01


def test_network_floor_over_two_hops_store_and_forward() -> None:
    """Through a metro site: each hop serialises the whole payload, then propagates."""
    d = scenario(
        sites={"dc": {"capacity": {"box": 1}}, "metro": {}, "edge": {"kind": "edge"}},
        links=[{"between": ["edge", "metro"], "bandwidth_gbps": 1, "latency_ms": 2},
               {"between": ["metro", "dc"], "bandwidth_gbps": 10, "latency_ms": 3}],
    )
    d["services"]["svc"]["service_time"] = {"dist": "deterministic", "ms": 4}
    rec, _ = run(d)
    ser = lambda nbytes: nbytes * 8 / 1e9 + nbytes * 8 / 10e9  # noqa: E731
    expected = 2 * (2e-3 + 3e-3) + ser(125_000) + ser(1250) + 4e-3
    lo, hi = rec.services["svc"].latency_s.quantiles([0.0, 1.0])
    assert math.isclose(lo, expected, rel_tol=1e-9) and math.isclose(hi, expected, rel_tol=1e-9)


def test_routing_follows_lowest_latency_path() -> None:
    """A direct slow link (20 ms) loses to a two-hop path of 2 + 3 ms."""
    d = scenario(
        sites={"dc": {"capacity": {"box": 1}}, "metro": {}, "edge": {"kind": "edge"}},
        links=[{"between": ["edge", "dc"], "bandwidth_gbps": 100, "latency_ms": 20},
               {"between": ["edge", "metro"], "bandwidth_gbps": 1, "latency_ms": 2},
               {"between": ["metro", "dc"], "bandwidth_gbps": 1, "latency_ms": 3}],
    )
    _, m = run(d)
    assert m["links"]["edge--dc"]["gb"] == 0
    assert m["links"]["edge--metro"]["gb"] > 0 and m["links"]["metro--dc"]["gb"] > 0


def _paired_trace(d: dict[str, Any], tmp_path: Path) -> Any:
    """Two demand lines replaying one trace: requests arrive in simultaneous pairs, 4 s apart."""
    (tmp_path / "t.csv").write_text("\n".join(str(0.5 + 4 * k) for k in range(50)))
    d["services"]["svc"]["demand"] = [{"site": "edge", "arrival": {"kind": "trace", "file": "t.csv"}}] * 2
    d["services"]["svc"]["service_time"] = {"dist": "deterministic", "ms": 1}
    d["deployment"]["replicas"][0]["count"] = 2
    return parse_scenario(d, base_dir=tmp_path)


def test_fifo_link_sends_one_transfer_at_a_time(tmp_path: Path) -> None:
    """A pair sent together on a FIFO link: the second waits for the first's serialisation."""
    d = scenario()
    d["links"][0]["bandwidth_gbps"] = 0.01  # 125 kB at 10 Mb/s = 100 ms on the wire
    rec = simulate(_paired_trace(d, tmp_path))
    floor = 2 * 5e-3 + 0.1 + 1250 * 8 / 0.01e9 + 1e-3
    lat = rec.services["svc"].latency_s
    # first of a pair: the floor; second: waits 100 ms for the wire, and its response then goes
    # out after the first's, so it is exactly one request-serialisation later
    assert lat.quantiles([0.0])[0] == pytest.approx(floor, rel=1e-9)
    assert lat.max == pytest.approx(floor + 0.1, rel=1e-9)
    assert lat.mean == pytest.approx(floor + 0.05, rel=1e-9)


def test_fifo_link_queue_is_md1() -> None:
    """Poisson requests of one size on a FIFO link form an M/D/1 queue at the link (Pollaczek-Khinchine)."""
    from lepton_sim import theory

    d = scenario()
    d["horizon"] = {"duration_s": 3000, "warmup_s": 100}
    d["links"][0]["bandwidth_gbps"] = 0.1  # 125 kB at 100 Mb/s: 10 ms on the wire
    d["models"]["mlp"]["output_bytes"] = 1  # responses take 80 ns: no queue on the way back
    d["services"]["svc"]["service_time"] = {"dist": "deterministic", "ms": 0.001}
    d["services"]["svc"]["demand"] = [{"site": "edge", "rate_rps": 70}]
    d["deployment"]["replicas"][0]["count"] = 8  # compute never queues
    rec, _ = run(d)
    ser = 125_000 * 8 / 0.1e9
    expected = theory.md1_mean_wait(70, ser) + ser + 2 * 5e-3 + 8 / 0.1e9 + 1e-6
    # ~200k requests at rho = 0.7: the mean's standard error is under 1 %
    assert rec.services["svc"].latency_s.mean == pytest.approx(expected, rel=0.03)


def test_fair_sharing_splits_bandwidth(tmp_path: Path) -> None:
    """A pair sent together on a fair link: both share 10 Mb/s, so each takes 2 x 100 ms."""
    d = scenario()
    d["links"][0].update(bandwidth_gbps=0.01, sharing="fair")
    rec = simulate(_paired_trace(d, tmp_path))
    lat = rec.services["svc"].latency_s
    # requests share the link both ways; responses (1250 bytes each) likewise
    expected = 2 * 5e-3 + 2 * 0.1 + 2 * 1250 * 8 / 0.01e9 + 1e-3
    lo, hi = lat.quantiles([0.0, 1.0])
    assert lo == pytest.approx(expected, rel=1e-6) and hi == pytest.approx(expected, rel=1e-6)


def _overloaded(max_batch: int) -> dict[str, Any]:
    """A memory-bound box (5 GB/s: ~1.4 ms a batch, nearly flat in batch size) offered 10k requests/s."""
    d = scenario(links=[], sites={"dc": {"capacity": {"box": 1}}})
    d["hardware"]["box"]["memory_bandwidth_gbps"] = 5
    d["horizon"] = {"duration_s": 10, "warmup_s": 2, "drain_s": 0}
    d["services"]["svc"].update(batching={"max_batch": max_batch}, max_queue=1000,
                                demand=[{"site": "dc", "rate_rps": 10000}])
    return d


def test_batching_raises_batch_size_and_throughput_as_the_model_says() -> None:
    """Saturated replica: throughput per replica = b / t(b) with b = max_batch."""
    results = {}
    for b in (1, 8):
        d = _overloaded(b)
        s = parse_scenario(d)
        t = batch_times(s.models["mlp"], s.models["mlp"].variants["fp32"], s.hardware["box"], b).times_s
        _, m = run(d)
        pool = next(iter(m["pools"].values()))
        assert pool["mean_batch"] == pytest.approx(b, rel=1e-3)
        assert pool["throughput_rps"] == pytest.approx(b / t[b - 1], rel=0.01)
        assert pool["utilization"] == pytest.approx(1.0, abs=1e-3)
        assert m["services"]["svc"]["dropped"] > 0
        results[b] = pool["throughput_rps"]
    assert results[8] > 1.5 * results[1]


def test_batching_waits_at_most_max_wait() -> None:
    """At low load with max_wait, a lone request waits exactly max_wait_ms before it is served."""
    d = scenario()
    d["services"]["svc"]["batching"] = {"max_batch": 8, "max_wait_ms": 7}
    d["services"]["svc"]["service_time"] = {"dist": "deterministic", "ms": 2}
    rec, m = run(d)
    expected = 2 * 5e-3 + 125_000 * 8 / 1e9 + 1250 * 8 / 1e9 + 7e-3 + 2e-3
    lo, hi = rec.services["svc"].latency_s.quantiles([0.0, 1.0])
    assert lo == pytest.approx(expected, rel=1e-9) and hi == pytest.approx(expected, rel=1e-9)
    assert next(iter(m["pools"].values()))["mean_batch"] == 1


def test_batch_fills_before_max_wait_under_load() -> None:
    d = scenario(links=[], sites={"dc": {"capacity": {"box": 1}}})
    d["services"]["svc"].update(batching={"max_batch": 4, "max_wait_ms": 1000},
                                service_time={"dist": "deterministic", "ms": 1},
                                demand=[{"site": "dc", "rate_rps": 100}])
    rec, m = run(d)
    pool = next(iter(m["pools"].values()))
    assert pool["mean_batch"] == pytest.approx(4, rel=0.01)
    # the first of four waits for three more Poisson(100/s) arrivals: 30 ms on average, plus 1 ms compute
    assert rec.services["svc"].latency_s.mean == pytest.approx(0.0015 + 0.015 + 0.001, rel=0.1)


def test_determinism_same_seed_same_metrics() -> None:
    d = scenario()
    d["services"]["svc"]["demand"] = [{"site": "edge", "rate_rps": 80},
                                      {"site": "dc", "rate_rps": 30, "arrival": {"kind": "mmpp", "rates_rps": [10, 90], "mean_dwell_s": [5, 2]}}]
    d["deployment"]["replicas"][0]["count"] = 2
    a = run(d, seed=3)[1]
    b = run(d, seed=3)[1]
    c = run(d, seed=4)[1]
    for m in (a, b, c):
        m.pop("wall_s")
    assert json.dumps(a) == json.dumps(b)
    assert json.dumps(a) != json.dumps(c)


def test_least_loaded_balances_and_nearest_stays_local() -> None:
    d = scenario(sites={"dc": {"capacity": {"box": 2}}, "edge": {"kind": "edge", "capacity": {"box": 1}}})
    d["services"]["svc"]["demand"] = [{"site": "edge", "rate_rps": 150}]
    d["services"]["svc"]["service_time"] = {"dist": "exponential", "mean_ms": 10}
    d["deployment"]["replicas"] = [
        {"service": "svc", "site": "edge", "hardware": "box", "variant": "fp32", "count": 1},
        {"service": "svc", "site": "dc", "hardware": "box", "variant": "fp32", "count": 2},
    ]
    d["deployment"]["routing"] = "nearest"
    _, near = run(d)
    assert near["links"]["edge--dc"]["gb"] == 0  # everything served at the edge (and overloaded)
    d["deployment"]["routing"] = "least-loaded"
    _, ll = run(d)
    pools = ll["pools"]
    assert pools["svc@dc/box/fp32"]["throughput_rps"] > 50
    assert ll["services"]["svc"]["latency_ms"]["p99"] < near["services"]["svc"]["latency_ms"]["p99"]


def test_weighted_routing_follows_the_weights() -> None:
    d = scenario(sites={"dc": {"capacity": {"box": 4}}, "edge": {"kind": "edge", "capacity": {"box": 1}}})
    d["services"]["svc"]["demand"] = [{"site": "edge", "rate_rps": 100}]
    d["services"]["svc"]["service_time"] = {"dist": "exponential", "mean_ms": 5}
    d["deployment"] = {"routing": "weighted", "replicas": [
        {"service": "svc", "site": "edge", "hardware": "box", "variant": "fp32", "count": 1, "weights": {"edge": 0.25}},
        {"service": "svc", "site": "dc", "hardware": "box", "variant": "fp32", "count": 4, "weights": {"edge": 0.75}},
    ]}
    _, m = run(d)
    edge = m["pools"]["svc@edge/box/fp32"]["throughput_rps"]
    dc = m["pools"]["svc@dc/box/fp32"]["throughput_rps"]
    n = (edge + dc) * 190
    # binomial: the edge share's standard error is sqrt(p(1-p)/n)
    assert abs(edge / (edge + dc) - 0.25) < 5 * math.sqrt(0.25 * 0.75 / n)


@pytest.mark.parametrize("arrival,rate", [
    ({"kind": "poisson"}, 40.0),
    ({"kind": "constant"}, 40.0),
    ({"kind": "mmpp", "rates_rps": [10, 100], "mean_dwell_s": [3, 1]}, 40.0),
    ({"kind": "mmpp", "rates_rps": [10, 100], "mean_dwell_s": [3, 1]}, None),
    ({"kind": "diurnal", "period_s": 50, "amplitude": 0.8}, 40.0),
])
def test_arrival_kinds_have_their_mean_rate(arrival: dict[str, Any], rate: float | None) -> None:
    d = scenario(links=[], sites={"dc": {"capacity": {"box": 8}}})
    d["horizon"] = {"duration_s": 2000, "warmup_s": 0}
    demand: dict[str, Any] = {"site": "dc", "arrival": arrival}
    if rate is not None:
        demand["rate_rps"] = rate
    d["services"]["svc"].update(demand=[demand], service_time={"dist": "deterministic", "ms": 1})
    d["deployment"]["replicas"][0]["count"] = 4
    rec, _ = run(d)
    expected = rate if rate is not None else (10 * 3 + 100 * 1) / 4
    got = rec.services["svc"].arrived / 2000
    # MMPP counts are over-dispersed: its index of dispersion here is below 20, so 5 sigma is ample
    sigma = math.sqrt(20 * expected * 2000) / 2000
    assert abs(got - expected) < 5 * sigma


def test_poisson_interarrival_times_are_exponential() -> None:
    from lepton_sim.scenario.schema import Demand
    from lepton_sim.sim.arrivals import arrival_times
    from lepton_sim.sim.streams import stream

    it = arrival_times(Demand(site="x", rate_rps=50.0), stream(1, "x"))
    t = np.fromiter((next(it) for _ in range(200_000)), float)
    gaps = np.diff(t)
    assert gaps.mean() == pytest.approx(1 / 50, rel=0.01)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.01)  # cv of the exponential


def test_cost_and_energy_hand_computed() -> None:
    d = scenario()
    d["services"]["svc"]["service_time"] = {"dist": "deterministic", "ms": 100}
    d["services"]["svc"]["demand"] = [{"site": "edge", "rate_rps": 2, "arrival": {"kind": "constant"}}]
    _, m = run(d)
    hours = 190 / 3600
    gb = m["links"]["edge--dc"]["gb"]
    assert gb == pytest.approx(380 * (125_000 + 1250) / 1e9, rel=0.01)
    assert m["cost"]["usd_per_hour"] == pytest.approx(0.5 + gb * 0.02 / hours, rel=1e-4)
    # busy 0.2 of the time at 100 W, idle 0.8 at 40 W
    assert m["energy_kwh"] == pytest.approx((0.2 * 100 + 0.8 * 40) * 190 / 3.6e6, rel=0.01)
    assert m["nodes"]["dc/box/0"]["utilization"] == pytest.approx(0.2, rel=0.01)


def test_payload_codec_shrinks_transfers_and_adds_codec_time() -> None:
    """At low load: latency = floor with input_bytes / ratio on the wire + compress + decompress time."""
    d = scenario()
    d["services"]["svc"]["service_time"] = {"dist": "deterministic", "ms": 1}
    d["services"]["svc"]["payload"] = {"codec": "zstd", "level": 3, "data": "uint8-images"}
    s = parse_scenario(d)
    codec = s.services["svc"].payload.model
    assert codec.ratio > 1 and codec.source.startswith("measured")
    rec, m = run(d)
    n = 125_000
    expected = (2 * 5e-3 + n / codec.ratio * 8 / 1e9 + 1250 * 8 / 1e9 + 1e-3
                + n * codec.compress_s_per_byte + n * codec.decompress_s_per_byte)
    lo, hi = rec.services["svc"].latency_s.quantiles([0.0, 1.0])
    assert lo == pytest.approx(expected, rel=1e-9) and hi == pytest.approx(expected, rel=1e-9)
    gb = m["links"]["edge--dc"]["directions"]["edge->dc"]["gb"]
    assert gb == pytest.approx(m["services"]["svc"]["arrived"] * n / codec.ratio / 1e9, rel=0.02)
    assert m["services"]["svc"]["payload"]["ratio"] == pytest.approx(codec.ratio, rel=1e-5)


def test_two_lines_of_the_same_pool_key_are_two_pools() -> None:
    """Two deployment lines of one service, site, hardware and variant are two pools in metrics.json
    (the second named with #2), with their own failure streams: neither is folded into the other."""
    doc = {
        "name": "twice", "seed": 4, "horizon": {"duration_s": 20, "warmup_s": 2},
        "hardware": {"g": {"from": "nvidia-l4"}},
        "sites": {"a": {"capacity": {"g": 4}}},
        "models": {"r": {"from": "resnet50"}},
        "services": {"s": {"model": "r", "slo": {"percentile": 99, "latency_ms": 50},
                           "demand": [{"site": "a", "rate_rps": 400}]}},
        "deployment": {"replicas": [{"service": "s", "site": "a", "hardware": "g", "variant": "int8", "count": 1},
                                    {"service": "s", "site": "a", "hardware": "g", "variant": "int8", "count": 2}],
                       "routing": "least-loaded"},
        "failures": {"g": {"mtbf_h": 0.002, "mttr_h": 0.0005}},
    }
    s = parse_scenario(doc)
    m = build_metrics(s, simulate(s))
    assert set(m["pools"]) == {"s@a/g/int8", "s@a/g/int8#2"}
    one, two = m["pools"]["s@a/g/int8"], m["pools"]["s@a/g/int8#2"]
    assert (one["replicas"], two["replicas"]) == (1, 2)
    total = m["services"]["s"]["throughput_rps"]
    assert one["throughput_rps"] + two["throughput_rps"] == pytest.approx(total, rel=0.02)
    assert one["throughput_rps"] > 0 and two["throughput_rps"] > 0
    assert one["availability"] != two["availability"]  # failures drawn from streams of their own
