"""Invariants over randomly generated scenarios (hypothesis), failures included: conservation,
bounded utilisation and availability, latency never below the network floor."""
from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lepton_sim.metrics import build_metrics
from lepton_sim.network import Topology
from lepton_sim.scenario import parse_scenario
from lepton_sim.sim import simulate

BOX = {"kind": "gpu", "peak_tflops": {"fp32": 10.0, "fp16": 40.0}, "memory_bandwidth_gbps": 300, "memory_gb": 16,
       "power_w": 100, "idle_power_w": 20, "cost_per_hour": 1.0}

arrivals = st.one_of(
    st.just({"kind": "poisson"}),
    st.just({"kind": "constant"}),
    st.builds(lambda r1, r2, d1, d2: {"kind": "mmpp", "rates_rps": [r1, r2], "mean_dwell_s": [d1, d2]},
              st.floats(0, 50), st.floats(1, 300), st.floats(0.2, 5), st.floats(0.2, 5)),
    st.builds(lambda a, p: {"kind": "diurnal", "amplitude": a, "period_s": p}, st.floats(0, 1), st.floats(1, 30)),
)
service_times = st.one_of(
    st.none(),
    st.builds(lambda m: {"dist": "exponential", "mean_ms": m}, st.floats(0.1, 20)),
    st.builds(lambda m: {"dist": "deterministic", "ms": m}, st.floats(0.1, 20)),
    st.builds(lambda m, cv: {"dist": "lognormal", "mean_ms": m, "cv": cv}, st.floats(0.1, 20), st.floats(0.1, 3)),
)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    n_edge = draw(st.integers(1, 3))
    edges = [f"e{i}" for i in range(n_edge)]
    links = [{"between": [e, "dc"], "bandwidth_gbps": draw(st.floats(0.05, 10)), "latency_ms": draw(st.floats(0, 20)),
              "sharing": draw(st.sampled_from(["fifo", "fair"]))} for e in edges]
    max_batch = draw(st.integers(1, 8))
    service: dict[str, Any] = {
        "model": "m",
        "variants": ["fp32", "fp16"],
        "slo": {"percentile": 99, "latency_ms": draw(st.floats(1, 200))},
        "batching": {"max_batch": max_batch, "max_wait_ms": draw(st.floats(0, 5)) if max_batch > 1 else 0},
        "demand": [{"site": e, "rate_rps": draw(st.floats(1, 300)), "arrival": draw(arrivals)} for e in edges],
    }
    st_dist = draw(service_times)
    if st_dist is not None:
        service["service_time"] = st_dist
    if draw(st.booleans()):
        service["max_queue"] = draw(st.integers(1, 50))
    replicas = [{"service": "s", "site": "dc", "hardware": "box", "variant": draw(st.sampled_from(["fp32", "fp16"])),
                 "count": draw(st.integers(1, 3))}]
    if draw(st.booleans()):
        replicas.append({"service": "s", "site": "e0", "hardware": "box", "variant": "fp16", "count": 1})
    failures: dict[str, Any] = {}
    if draw(st.booleans()):
        failures["box"] = {"mtbf_h": draw(st.floats(0.0005, 0.01)), "mttr_h": draw(st.floats(0.0001, 0.005))}
    if draw(st.booleans()):
        failures["e0--dc"] = {"mtbf_h": draw(st.floats(0.0005, 0.01)), "mttr_h": draw(st.floats(0.0001, 0.005))}
    return {
        "name": "prop", "seed": draw(st.integers(0, 2**32)),
        "failures": failures,
        "horizon": {"duration_s": draw(st.floats(2, 15)), "warmup_s": draw(st.floats(0, 1.5)),
                    "drain_s": draw(st.sampled_from([0.0, 0.05, 10.0]))},
        "hardware": {"box": dict(BOX)},
        "sites": {"dc": {"capacity": {"box": 3}}, **{e: {"kind": "edge", "capacity": {"box": 1}} for e in edges}},
        "links": links,
        "models": {"m": {"layers": [{"op": "dense", "in": 512, "out": 512}, {"op": "gelu"},
                                    {"op": "dense", "in": 512, "out": 16}],
                         "input_bytes": draw(st.integers(1, 200_000)), "output_bytes": draw(st.integers(1, 20_000)),
                         "variants": {"fp32": {"precision": "fp32"}, "fp16": {"precision": "fp16"}}}},
        "services": {"s": service},
        "deployment": {"replicas": replicas,
                       "routing": draw(st.sampled_from(["nearest", "least-loaded", "least-latency"]))},
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_invariants(d: dict[str, Any]) -> None:
    s = parse_scenario(d)
    rec = simulate(s)
    m = build_metrics(s, rec)

    # conservation: every request created after the warm-up is completed, dropped or still in flight
    for svc in rec.services.values():
        assert svc.arrived == svc.completed + svc.dropped + svc.failed + svc.in_flight
        assert svc.in_flight >= 0 and svc.latency_s.count == svc.completed
        for site in svc.by_site.values():
            assert site.arrived == site.completed + site.dropped + site.failed + site.in_flight

    # utilisation of every replica, pool, link direction and time bin lies in [0, 1]
    eps = 1e-9
    values = [n["utilization"] for n in m["nodes"].values()]
    values += [n["availability"] for n in m["nodes"].values()]
    values += [n["utilization"] + 1 - n["availability"] for n in m["nodes"].values()]  # busy + down <= window
    values += [p["utilization"] for p in m["pools"].values()]
    values += [v["utilization"] for link in m["links"].values() for v in link["directions"].values()]
    values += [u for series in m["timeseries"]["pools"].values() for u in series]
    values += [u for series in m["timeseries"]["links"].values() for u in series]
    assert all(-eps <= u <= 1 + eps for u in values), max(values)

    # no request is faster than propagation both ways plus serialisation both ways on its route
    topo = Topology(s)
    model = s.models["m"]
    for site, tally in rec.services["s"].by_site.items():
        if not tally.completed:
            continue
        floors = []
        for r in s.deployment.replicas:
            route = topo.route(site, r.site)
            ser = sum((model.input_bytes + model.output_bytes) * 8 / (s.links[h.link_index].bandwidth_gbps * 1e9)
                      for h in route.hops)
            floors.append(2 * route.latency_s + ser)
        assert tally.latency_s.min >= min(floors) * (1 - 1e-9)
