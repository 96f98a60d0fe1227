"""Failures: availability against mtbf / (mtbf + mttr), retries, failover, rerouting, lost transfers."""
from __future__ import annotations

import copy
from typing import Any

import pytest

from lepton_sim.metrics import build_metrics
from lepton_sim.scenario import parse_scenario
from lepton_sim.sim import simulate

BOX = {"kind": "cpu", "peak_tflops": {"fp32": 1.0}, "memory_bandwidth_gbps": 50, "memory_gb": 16,
       "power_w": 100, "idle_power_w": 40, "cost_per_hour": 0.5}


def base(**over: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "name": "f", "seed": 2,
        "horizon": {"duration_s": 4000, "warmup_s": 100, "drain_s": 600},
        "hardware": {"box": copy.deepcopy(BOX), "spare": copy.deepcopy(BOX)},
        "sites": {"dc": {"capacity": {"box": 4, "spare": 4}}, "edge": {"kind": "edge"}, "metro": {}},
        "links": [{"between": ["edge", "dc"], "bandwidth_gbps": 1, "latency_ms": 2}],
        "models": {"m": {"layers": [{"op": "dense", "in": 64, "out": 64}], "input_bytes": 10_000, "output_bytes": 100}},
        "services": {"s": {"model": "m", "slo": {"percentile": 99, "latency_ms": 100},
                           "service_time": {"dist": "exponential", "mean_ms": 5},
                           "demand": [{"site": "edge", "rate_rps": 20}]}},
        "deployment": {"replicas": [{"service": "s", "site": "dc", "hardware": "box", "variant": "fp32", "count": 4}],
                       "routing": "least-latency"},
    }
    d.update(over)
    return d


def run(d: dict[str, Any]) -> dict[str, Any]:
    s = parse_scenario(d)
    return build_metrics(s, simulate(s))


def test_replica_availability_matches_mtbf_mttr() -> None:
    """Each replica is up mtbf / (mtbf + mttr) of the time: 36 / 43.2 = 83.3 %.

    About 90 up/down cycles per replica, 4 replicas: the availability estimate's standard error is
    about 1.5 %; 5 % is over three of them.
    """
    d = base(failures={"box": {"mtbf_h": 0.01, "mttr_h": 0.002}})
    m = run(d)
    pool = m["pools"]["s@dc/box/fp32"]
    assert pool["availability"] == pytest.approx(36 / 43.2, abs=0.05)
    assert pool["failures"] > 4 * 3900 / 43.2 * 0.7
    for n in m["nodes"].values():
        assert 0.6 < n["availability"] < 1.0
    # a failed replica's batch is retried, never lost: with a drain, every request completes
    svc = m["services"]["s"]
    assert pool["retried"] > 0
    assert svc["failed"] == 0 and svc["dropped"] == 0 and svc["completed"] == svc["arrived"]


def test_energy_counts_failed_time_at_zero_power() -> None:
    d = base(failures={"box": {"mtbf_h": 0.01, "mttr_h": 0.002}})
    s = parse_scenario(d)
    rec = simulate(s)
    window = 3900
    expected = sum(b * 100 + (window - b - dn) * 40 for p in rec.pools for b, dn in zip(p.busy_s, p.down_s)) / 3.6e6
    m = build_metrics(s, rec)
    assert m["energy_kwh"] == pytest.approx(expected, rel=1e-5)  # metrics keep 6 significant digits
    never_down = sum(b * 100 + (window - b) * 40 for p in rec.pools for b in p.busy_s) / 3.6e6
    assert m["energy_kwh"] < 0.95 * never_down


def test_failover_to_another_pool() -> None:
    """While the only `box` replica is down, requests go to the `spare` pool; none is dropped."""
    d = base(failures={"box": {"mtbf_h": 0.02, "mttr_h": 0.02}})
    d["deployment"]["replicas"] = [
        {"service": "s", "site": "dc", "hardware": "box", "variant": "fp32", "count": 1},
        {"service": "s", "site": "dc", "hardware": "spare", "variant": "fp32", "count": 1},
    ]
    m = run(d)
    assert m["pools"]["s@dc/box/fp32"]["availability"] < 0.8
    assert m["pools"]["s@dc/spare/fp32"]["availability"] == 1.0
    svc = m["services"]["s"]
    assert svc["dropped"] == 0 and svc["failed"] == 0 and svc["completed"] == svc["arrived"]


def test_requests_are_dropped_while_every_replica_is_down() -> None:
    d = base(failures={"box": {"mtbf_h": 0.02, "mttr_h": 0.02}})
    d["deployment"]["replicas"][0]["count"] = 1
    m = run(d)
    svc = m["services"]["s"]
    down = 1 - m["pools"]["s@dc/box/fp32"]["availability"]
    # arrivals while the replica is down find no replica: about `down` of them are dropped
    assert svc["dropped"] / svc["arrived"] == pytest.approx(down, abs=0.03)
    assert svc["arrived"] == svc["completed"] + svc["dropped"] + svc["failed"] + svc["in_flight"]


def test_link_failure_reroutes_and_loses_transfers_in_flight() -> None:
    """A ring: the direct edge--dc link (2 ms) fails; traffic takes edge--metro--dc (10 ms) meanwhile.

    Transfers on the direct link when it fails are lost and counted as failed.
    """
    d = base(failures={"edge--dc": {"mtbf_h": 0.01, "mttr_h": 0.01}})
    d["links"] = [{"between": ["edge", "dc"], "bandwidth_gbps": 0.01, "latency_ms": 2},
                  {"between": ["edge", "metro"], "bandwidth_gbps": 1, "latency_ms": 5},
                  {"between": ["metro", "dc"], "bandwidth_gbps": 1, "latency_ms": 5}]
    m = run(d)
    svc = m["services"]["s"]
    direct = m["links"]["edge--dc"]
    assert direct["availability"] == pytest.approx(0.5, abs=0.1)
    assert direct["failures"] > 20
    assert m["links"]["edge--metro"]["gb"] > 0 and m["links"]["metro--dc"]["gb"] > 0
    assert svc["failed"] > 0 and svc["dropped"] == 0
    assert svc["arrived"] == svc["completed"] + svc["failed"] + svc["in_flight"]
    assert svc["in_flight"] == 0


def test_cut_off_site_drops_requests() -> None:
    d = base(failures={"edge--dc": {"mtbf_h": 0.02, "mttr_h": 0.02}})
    m = run(d)
    svc = m["services"]["s"]
    down = 1 - m["links"]["edge--dc"]["availability"]
    assert svc["dropped"] / svc["arrived"] == pytest.approx(down, abs=0.03)


def test_failures_are_deterministic() -> None:
    d = base(failures={"box": {"mtbf_h": 0.01, "mttr_h": 0.002}, "dc--edge": {"mtbf_h": 0.05, "mttr_h": 0.01}})
    a, b = run(d), run(d)
    a.pop("wall_s"), b.pop("wall_s")
    assert a == b


def test_unknown_failure_name_is_bad_input() -> None:
    from lepton_sim.errors import ScenarioError

    with pytest.raises(ScenarioError, match=r"failures\.gpu: not a hardware type or a link"):
        parse_scenario(base(failures={"gpu": {"mtbf_h": 1, "mttr_h": 1}}))


def test_lost_responses_do_not_leave_a_pool_owing_requests() -> None:
    """A response lost on its way back was already served: its pool's count of requests routed to it
    and not yet served (what least-loaded and least-latency routing read) must not drop for it."""
    from lepton_sim.sim import Simulation

    d = base(failures={"edge--dc": {"mtbf_h": 0.01, "mttr_h": 0.01}})
    d["links"] = [{"between": ["edge", "dc"], "bandwidth_gbps": 0.01, "latency_ms": 2},
                  {"between": ["edge", "metro"], "bandwidth_gbps": 1, "latency_ms": 5},
                  {"between": ["metro", "dc"], "bandwidth_gbps": 1, "latency_ms": 5}]
    d["models"]["m"]["output_bytes"] = 10_000  # responses long enough to be caught by a failure
    sim = Simulation(parse_scenario(d))
    rec = sim.run()
    assert rec.services["s"].failed > 0 and rec.services["s"].in_flight == 0
    assert [p.outstanding for p in sim.pools] == [0]  # everything routed was served or lost on the way there
