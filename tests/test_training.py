"""Training jobs against closed forms written here: ring and tree all-reduce, the parameter server
over the fabric and over a link, the overlap bound, a one-device job, stragglers; bad jobs refused."""
from __future__ import annotations

import copy
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lepton_sim.errors import ScenarioError
from lepton_sim.metrics import build_metrics
from lepton_sim.scenario import load_scenario, parse_scenario
from lepton_sim.servicetime import batch_times
from lepton_sim.sim import simulate

ROOT = Path(__file__).resolve().parents[1]
GPU = {"kind": "gpu", "peak_tflops": {"fp32": 20.0, "fp16": 80.0}, "memory_bandwidth_gbps": 1000, "memory_gb": 40,
       "power_w": 400, "idle_power_w": 80, "cost_per_hour": 2.0, "interconnect_gbps": 100}
CPU = {"kind": "cpu", "peak_tflops": {"fp32": 1.0}, "memory_bandwidth_gbps": 100, "memory_gb": 256,
       "power_w": 300, "idle_power_w": 100, "cost_per_hour": 0.5}
LAYERS = [{"op": "dense", "in": 2048, "out": 2048}, {"op": "gelu"}, {"op": "dense", "in": 2048, "out": 2048},
          {"op": "dense", "in": 2048, "out": 10}]
PARAMS = 2 * (2048 * 2048 + 2048) + 2048 * 10 + 10


def _doc(count: int = 8, per_node: int = 8, sync: dict | None = None, **job: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "name": "train", "seed": 3, "horizon": {"duration_s": 30, "warmup_s": 1},
        "hardware": {"gpu": dict(GPU), "cpu": dict(CPU)},
        "sites": {"dc": {"capacity": {"gpu": 64, "cpu": 8}, "fabric_gbps": 100, "fabric_latency_us": 4},
                  "far": {"capacity": {"cpu": 8}, "fabric_gbps": 400}},
        "links": [{"between": ["dc", "far"], "bandwidth_gbps": 10, "latency_ms": 3}],
        "models": {"m": {"layers": LAYERS, "input_bytes": 8192, "output_bytes": 40,
                         "variants": {"fp16": {"precision": "fp16"}, "fp32": {"precision": "fp32"}}}},
        "jobs": {"j": {"model": "m", "variant": "fp16", "global_batch": 64 * count, "samples": 10**9,
                       "placement": {"site": "dc", "hardware": "gpu", "count": count, "per_node": per_node},
                       "sync": sync or {"kind": "ring-allreduce", "bucket_mb": 4, "overlap": False}, **job}},
    }
    return d


def _run(d: dict[str, Any]) -> dict[str, Any]:
    s = parse_scenario(d)
    return build_metrics(s, simulate(s))["jobs"]["j"]


def _compute_s(d: dict[str, Any]) -> float:
    s = parse_scenario(d)
    job = s.jobs["j"]
    b = job.global_batch // job.placement.count
    model = s.models["m"]
    return 3.0 * batch_times(model, model.variants[job.variant], s.hardware["gpu"], b).times_s[b - 1]


def _buckets(bucket_mb: float, bytes_per_param: int = 2) -> list[float]:
    grad = PARAMS * bytes_per_param
    size = bucket_mb * 1e6
    k = math.ceil(grad / size)
    return [size] * (k - 1) + [grad - size * (k - 1)]


def _ring(s: float, n: int, bps: float, alpha: float) -> float:
    return 2 * (n - 1) / n * s / bps + 2 * (n - 1) * alpha


def test_ring_in_one_node_is_the_closed_form() -> None:
    d = _doc(8, 8)
    j = _run(d)
    comm = sum(_ring(s, 8, 100e9, 1e-6) for s in _buckets(4))
    compute = _compute_s(d)
    assert j["compute_ms"] == pytest.approx(compute * 1e3, rel=1e-5)
    assert j["communication_ms"] == pytest.approx(comm * 1e3, rel=1e-5)
    assert j["iteration_ms"]["mean"] == pytest.approx((compute + comm) * 1e3, rel=1e-5)  # no overlap
    assert j["exposed_communication_ms"] == pytest.approx(comm * 1e3, rel=1e-5)
    assert j["samples_per_s"] == pytest.approx(512 / (compute + comm), rel=1e-5)
    assert j["scaling_efficiency"] == pytest.approx(compute / (compute + comm), rel=1e-5)
    assert j["buckets"] == len(_buckets(4)) and j["gradient_mb"] == pytest.approx(PARAMS * 2 / 1e6, rel=1e-5)


def test_ring_across_nodes_is_bound_by_the_fabric() -> None:
    d = _doc(32, 8)
    j = _run(d)
    comm = sum(_ring(s, 32, 100e9 / 8, 4e-6) for s in _buckets(4))  # 100 Gb/s per node, 4 us per step
    assert j["communication_ms"] == pytest.approx(comm * 1e3, rel=1e-5)
    assert j["nodes"] == 4


def test_tree_and_parameter_server_closed_forms() -> None:
    d = _doc(16, 8, {"kind": "tree-allreduce", "bucket_mb": 4, "overlap": False})
    tree = sum(2 * s / (100e9 / 8) + 2 * math.ceil(math.log2(16)) * 4e-6 for s in _buckets(4))
    assert _run(d)["communication_ms"] == pytest.approx(tree * 1e3, rel=1e-5)
    d = _doc(16, 8, {"kind": "parameter-server", "servers": 2, "hardware": "cpu", "bucket_mb": 4, "overlap": False})
    port = 100e9 / 8
    ps = sum(2 * max(s / (port / 8), 16 * s / (2 * port)) + 2 * 4e-6 for s in _buckets(4))
    j = _run(d)
    assert j["communication_ms"] == pytest.approx(ps * 1e3, rel=1e-5)
    assert j["usd_per_hour"] == pytest.approx(16 * 2.0 + 2 * 0.5)


def test_parameter_server_over_a_link() -> None:
    """Push every device's bucket over the 10 Gb/s link, the servers' intake, pull it back: one
    bucket at a time, the link idle otherwise."""
    d = _doc(4, 4, {"kind": "parameter-server", "servers": 2, "site": "far", "hardware": "cpu", "bucket_mb": 4,
                    "overlap": False})
    j = _run(d)
    per = [2 * (4 * s * 8 / 10e9 + 3e-3) + 4 * s / (2 * 400e9 / 8) for s in _buckets(4)]
    compute = _compute_s(d)
    assert j["iteration_ms"]["mean"] == pytest.approx((compute + sum(per)) * 1e3, rel=1e-5)
    assert j["communication_ms"] == pytest.approx(sum(per) * 1e3, rel=1e-5)


def test_overlap_bound_and_one_device() -> None:
    base = _doc(8, 8, {"kind": "ring-allreduce", "bucket_mb": 1, "overlap": False})
    no = _run(base)
    over = copy.deepcopy(base)
    over["jobs"]["j"]["sync"]["overlap"] = True
    yes = _run(over)
    c, m = no["compute_ms"], no["communication_ms"]
    assert yes["communication_ms"] == pytest.approx(m, rel=1e-5)
    assert max(c, m) * (1 - 1e-5) <= yes["iteration_ms"]["mean"] <= (c + m) * (1 + 1e-5)
    assert yes["iteration_ms"]["mean"] < no["iteration_ms"]["mean"]
    # the last bucket is ready when the backward pass ends, so at least it is exposed
    assert yes["iteration_ms"]["mean"] >= (c + _ring(_buckets(1)[-1], 8, 100e9, 1e-6) * 1e3) * (1 - 1e-5)
    one = _run(_doc(1, 1))
    assert one["iteration_ms"]["mean"] == pytest.approx(one["compute_ms"], rel=1e-5)
    assert one["communication_ms"] == 0 and one["scaling_efficiency"] == pytest.approx(1.0, rel=1e-5)


def test_stragglers_slow_the_iteration_and_are_deterministic() -> None:
    d = _doc(16, 8, straggler_cv=0.1)
    a, b = _run(d), _run(d)
    assert a == b
    calm = _run(_doc(16, 8))
    assert a["compute_ms"] > calm["compute_ms"] * 1.05  # the slowest of 16 lognormal factors of cv 0.1
    assert a["iteration_ms"]["p99"] > a["iteration_ms"]["mean"]


def test_time_to_complete_cost_and_energy() -> None:
    d = _doc(8, 8, samples=512 * 20000)
    j = _run(d)
    it = j["iteration_ms"]["mean"] / 1e3
    assert j["time_to_complete_basis"] == "simulated"
    assert j["time_to_complete_h"] == pytest.approx(20000 * it / 3600, rel=1e-5)
    assert j["usd_total"] == pytest.approx(8 * 2.0 * j["time_to_complete_h"], rel=1e-5)
    frac = j["compute_ms"] / j["iteration_ms"]["mean"]
    assert j["energy_kwh"] == pytest.approx(8 * (400 * frac + 80 * (1 - frac)) * j["time_to_complete_h"] / 1e3, rel=1e-5)
    long = _run(_doc(8, 8))  # 10^9 samples: far past the horizon
    assert long["time_to_complete_basis"].startswith("extrapolated")


@pytest.mark.parametrize("change, path, words", [
    (lambda d: d["jobs"]["j"].update(global_batch=100), "jobs.j.global_batch", "does not split over 16 devices"),
    (lambda d: d["hardware"]["gpu"].pop("interconnect_gbps"), "jobs.j.placement.per_node", "interconnect_gbps"),
    (lambda d: d["sites"]["dc"].pop("fabric_gbps"), "jobs.j.placement.count", "fabric_gbps"),
    (lambda d: d["jobs"]["j"]["placement"].update(count=100), "jobs.j.placement.count", "holds 64 of 'gpu'"),
    (lambda d: d["jobs"]["j"].update(model="mm"), "jobs.j.model", "unknown model 'mm'"),
    (lambda d: d["jobs"]["j"].update(variant="int3"), "jobs.j.variant", "has no variant 'int3'"),
    (lambda d: d["jobs"]["j"].update(sync={"kind": "parameter-server"}), "jobs.j.sync", "needs `servers`"),
])
def test_bad_jobs_are_named(change: Any, path: str, words: str) -> None:
    d = _doc(16, 8)
    change(d)
    with pytest.raises(ScenarioError) as err:
        parse_scenario(d)
    assert path in str(err.value) and words in str(err.value)


def test_shipped_training_scenarios_run(tmp_path: Path) -> None:
    for name in ("resnet50-ring", "resnet50-ps", "bert-large-wan", "bert-large-two-sites", "two-sites-failures"):
        out = subprocess.run([sys.executable, "-m", "lepton_sim", "simulate", str(ROOT / "scenarios" / "training" /
                              f"{name}.yaml"), "--out", str(tmp_path / name), "--report"], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert "Training jobs" in out.stdout
        assert (tmp_path / name / "report.html").is_file()
    s = load_scenario(ROOT / "scenarios" / "training" / "bert-large-wan.yaml")
    m = build_metrics(s, simulate(s))
    assert "training job finetune's gradients" in m["engine"]["detect"]
    # the gradients share the WAN with the service's requests: without the job the service is faster
    alone = s.model_copy(update={"jobs": {}})
    quiet = build_metrics(alone, simulate(alone))
    assert quiet["services"]["detect"]["latency_ms"]["p99"] < m["services"]["detect"]["latency_ms"]["p99"]


# --- planning ------------------------------------------------------------------------------


def _plan(tmp_path: Path, d: dict[str, Any], *extra: str) -> subprocess.CompletedProcess:
    import yaml

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(d))
    return subprocess.run([sys.executable, "-m", "lepton_sim", "plan", str(path), "--out", str(tmp_path / "out"),
                           *extra], capture_output=True, text=True)


def test_job_plan_is_the_cheapest_that_simulates_within_the_deadline(tmp_path: Path) -> None:
    import json

    from lepton_sim.planner.training import plan_jobs

    d = _doc(16, 8, samples=512 * 4000, deadline_h=0.0007)  # one device takes 0.00086 h, eight 0.00056 h
    d["jobs"]["j"]["global_batch"] = 512
    s = parse_scenario(d)
    (p,) = plan_jobs(s)
    assert p.chosen is not None
    # brute force here, by simulation: every count and sync the planner may choose, cheapest first
    found = []
    for n in range(1, 65):
        for kind in ("ring-allreduce", "tree-allreduce"):
            dd = _doc(n, min(8, n), {"kind": kind, "bucket_mb": 4, "overlap": False}, samples=512 * 4000,
                      deadline_h=0.0007)
            dd["jobs"]["j"]["global_batch"] = 512
            try:
                j = _run(dd)
            except ScenarioError:
                continue  # the batch does not split, or the nodes do not fill
            if j["time_to_complete_h"] <= 0.0007:
                found.append((round(j["usd_total"], 9), n, kind))
    cheapest = min(found)
    assert p.chosen.usd_total == pytest.approx(cheapest[0], rel=1e-5)
    assert p.chosen.count == cheapest[1]
    out = _plan(tmp_path, d)
    assert out.returncode == 0, out.stderr
    doc = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert doc["jobs"]["j"]["chosen"]["count"] == p.chosen.count
    planned = load_scenario(tmp_path / "out" / "scenario.planned.yaml")
    assert planned.jobs["j"].placement.count == p.chosen.count


def test_job_plan_that_cannot_meet_its_deadline_exits_1(tmp_path: Path) -> None:
    out = _plan(tmp_path, _doc(16, 8, deadline_h=0.001))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "finishes within 0.001 h" in out.stderr


def test_inference_plan_leaves_the_jobs_devices_alone() -> None:
    from lepton_sim.planner.plan import plan

    d = _doc(48, 8)
    d["services"] = {"s": {"model": "m", "variants": ["fp16"], "slo": {"percentile": 99, "latency_ms": 50},
                           "demand": [{"site": "dc", "rate_rps": 20000}]}}
    s = parse_scenario(d)
    result = plan(s)
    used = sum(line["count"] for line in result.deployment()["replicas"] if line["hardware"] == "gpu")
    assert 0 < used <= 64 - 48


def test_scaling_curve_is_the_iteration_model() -> None:
    d = _doc(32, 8)
    j = _run(d)
    pts = {p["devices"]: p for p in j["scaling"]}
    assert sorted(pts) == [1, 2, 4, 8, 16, 32]
    assert pts[1]["efficiency"] == pytest.approx(1.0, rel=1e-5)
    assert pts[32]["iteration_ms"] == pytest.approx(j["iteration_ms"]["mean"], rel=1e-5)  # no stragglers
    for n in (2, 4, 8):  # one node: NVLink; the per-device micro-batch stays 64
        comm = sum(_ring(s, n, 100e9, 1e-6) for s in _buckets(4))
        assert pts[n]["iteration_ms"] == pytest.approx((_compute_s(d) + comm) * 1e3, rel=1e-5)
        assert pts[n]["samples_per_s"] == pytest.approx(64 * n / (pts[n]["iteration_ms"] / 1e3), rel=1e-5)


def test_device_failures_stop_the_job_and_take_back_work() -> None:
    """Every second of the run is an iteration that stands, one run again after a failure, a part of
    one abandoned by a failure, or the job stopped (a device down, or restarting)."""
    d = _doc(8, 8, samples=512 * 200000, checkpoint_every=100, restart_s=0.5)
    d["failures"] = {"gpu": {"mtbf_h": 0.02, "mttr_h": 0.0005}}
    d["horizon"] = {"duration_s": 600, "warmup_s": 0}
    s = parse_scenario(d)
    rec = simulate(s)
    (t,) = rec.jobs
    j = build_metrics(s, rec)["jobs"]["j"]
    it = t.model_compute_s + t.model_communication_s  # no overlap, no stragglers
    assert t.end_s is not None and t.failures > 0 and t.lost_iterations > 0
    floor = (t.iterations_needed + t.lost_iterations) * it + t.stopped_s
    assert floor * (1 - 1e-9) <= t.end_s <= floor + t.failures * it + 1e-9
    expected = 8 * t.end_s / (0.02 * 3600)  # failures at n / mtbf while the job runs
    assert abs(t.failures - expected) < 4 * math.sqrt(expected) + 1
    assert 0 < j["availability"] < 1 and j["failures"] == t.failures
    calm = _run(_doc(8, 8, samples=512 * 200000))
    assert j["time_to_complete_h"] > calm["time_to_complete_h"]


def test_failures_in_the_extrapolation() -> None:
    d = _doc(8, 8)  # 10^9 samples: extrapolated
    d["failures"] = {"gpu": {"mtbf_h": 10, "mttr_h": 1}}
    j = _run(d)
    assert "expected failures" in j["time_to_complete_basis"]
    assert j["time_to_complete_h"] > _run(_doc(8, 8))["time_to_complete_h"]


def _stopped(d: dict[str, Any]) -> tuple[Any, Any]:
    s = parse_scenario(d)
    rec = simulate(s)
    (t,) = rec.jobs
    return t, rec


def test_a_cut_link_stops_the_job_until_it_is_back() -> None:
    """Parameter servers across the only link: each of its outages stops the job for the outage and
    then the restart, and gradients lost on the link end nothing else."""
    d = _doc(8, 8, {"kind": "parameter-server", "servers": 2, "site": "far", "hardware": "cpu", "bucket_mb": 4},
             restart_s=2.0, checkpoint_every=50)
    d["failures"] = {"dc--far": {"mtbf_h": 0.01, "mttr_h": 0.002}}  # 36 s up, 7.2 s down on average
    d["horizon"] = {"duration_s": 600, "warmup_s": 0}
    t, rec = _stopped(d)
    link = next(x for x in rec.links if x.link_index == 0)  # (a tally per direction, the same outages)
    down = link.down_s
    assert t.failures == link.failures > 5
    # stopped while the link is down, then restart_s more each time (outages may overlap a restart)
    assert down * (1 - 1e-9) <= t.stopped_s <= down + t.failures * 2.0 + 1e-6
    assert t.stopped_s >= down + 2.0  # at least one restart counted
    assert t.lost_iterations > 0
    calm = copy.deepcopy(d)
    calm.pop("failures")
    c, _ = _stopped(calm)
    assert t.completed < c.completed
    assert any("link dc--far" in w and r == pytest.approx(0.002 * 3600) for _, r, w in t.hazards)


def test_a_failed_link_with_a_way_round_costs_the_iteration_in_flight() -> None:
    """A job across two sites joined directly and through a third: when the direct link fails, the
    iteration in flight runs again on the way round; the job never stops nor waits for the repair."""
    d = _doc(8, 8, {"kind": "ring-allreduce", "bucket_mb": 4, "overlap": False}, restart_s=1.0)
    d["sites"]["far"]["capacity"]["gpu"] = 8
    d["sites"]["mid"] = {"capacity": {"cpu": 1}}
    d["links"] += [{"between": ["dc", "mid"], "bandwidth_gbps": 10, "latency_ms": 2},
                   {"between": ["mid", "far"], "bandwidth_gbps": 10, "latency_ms": 2}]
    d["jobs"]["j"].update(global_batch=64 * 16, also=[{"site": "far", "hardware": "gpu", "count": 8, "per_node": 8}])
    d["failures"] = {"dc--far": {"mtbf_h": 0.01, "mttr_h": 0.01}}
    d["horizon"] = {"duration_s": 300, "warmup_s": 0}
    t, rec = _stopped(d)
    direct = next(x for x in rec.links if x.link_index == 0)
    assert t.failures >= 1 and direct.down_s > 10  # outages the job would have waited out
    assert t.stopped_s == 0.0 and t.lost_iterations == 0  # never stopped, nothing taken back
    # each failure found it running and cost the iteration in flight (failures are counted inside the
    # window, iterations over the run, its drain too)
    assert t.rerouted >= t.failures
    assert t.started == t.completed + t.rerouted + (0 if t.end_s is not None else 1)
    round_ = next(x for x in rec.links if x.link_index == 1)
    assert round_.transfers > 0 and direct.transfers > 0  # both routes carried its gradients
    assert any("another route goes round it" in w and r is None for _, r, w in t.hazards)
    calm = copy.deepcopy(d)
    calm.pop("failures")
    c, _ = _stopped(calm)
    assert c.completed > t.completed  # the iterations run again, and the longer way round


def test_the_shipped_failure_scenario_routes_round_the_wan() -> None:
    s = load_scenario(ROOT / "scenarios" / "training" / "two-sites-failures.yaml")
    m = build_metrics(s, simulate(s))["jobs"]["finetune"]
    calm = build_metrics(s.model_copy(update={"failures": {}}), simulate(s.model_copy(update={"failures": {}})))
    c = calm["jobs"]["finetune"]
    assert m["failures"] >= 1 and m["rerouted_iterations"] >= 1 and m["lost_iterations"] == 0
    assert m["availability"] == 1.0 and m["time_to_complete_basis"] == "simulated"
    assert c["time_to_complete_h"] < m["time_to_complete_h"] < 2 * c["time_to_complete_h"]


def test_parameter_server_failures_stop_the_job() -> None:
    d = _doc(8, 8, {"kind": "parameter-server", "servers": 4, "hardware": "cpu", "bucket_mb": 4}, restart_s=1.0)
    d["failures"] = {"cpu": {"mtbf_h": 0.02, "mttr_h": 0.001}}
    d["horizon"] = {"duration_s": 600, "warmup_s": 0}
    t, _ = _stopped(d)
    expected = 4 * 600 / (0.02 * 3600)  # four servers, whatever the job is doing
    assert t.failures > 0 and abs(t.failures - expected) < 4 * math.sqrt(expected) + 1
    assert t.stopped_s >= t.failures * 1.0 * (1 - 1e-9)  # each costs its restart at least
    j = build_metrics(parse_scenario(d), simulate(parse_scenario(d)))["jobs"]["j"]
    assert j["failures"] == t.failures and j["availability"] < 1
    assert "4 parameter servers" in j["time_to_complete_basis"]


def test_validate_refuses_training_jobs() -> None:
    out = subprocess.run([sys.executable, "-m", "lepton_sim", "validate",
                          str(ROOT / "scenarios" / "training" / "bert-large-wan.yaml"), "--duration", "1"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "jobs: validate serves inference only" in out.stderr


@pytest.mark.parametrize("kind", ["ring-allreduce", "tree-allreduce"])
def test_a_job_across_sites_crosses_the_link(kind: str) -> None:
    """8 devices a site, one node each, 3 ms and 10 Gb/s apart: each bucket's bytes over the link in
    both directions at once, the sites' own part alongside, then every latency step at the link's 3 ms."""
    d = _doc(8, 8, {"kind": kind, "bucket_mb": 4, "overlap": False})
    d["sites"]["far"]["capacity"]["gpu"] = 8
    d["jobs"]["j"]["also"] = [{"site": "far", "hardware": "gpu", "count": 8, "per_node": 8}]
    d["jobs"]["j"]["global_batch"] = 64 * 16
    j = _run(d)
    n = 16
    share, steps = (2 * (n - 1) / n, 2 * (n - 1)) if kind == "ring-allreduce" else (1.0, 2 * math.ceil(math.log2(n)))
    comm = sum(max(share * s / 100e9, share * s * 8 / 10e9) + steps * 3e-3 for s in _buckets(4))
    assert j["communication_ms"] == pytest.approx(comm * 1e3, rel=1e-5)
    assert j["devices"] == 16 and j["sites"] == ["dc", "far"]
    assert j["iteration_ms"]["mean"] == pytest.approx(j["compute_ms"] + comm * 1e3, rel=1e-5)


@pytest.mark.parametrize("change, path, words", [
    (lambda d: d["jobs"]["j"]["also"][0].update(hardware="cpu"), "jobs.j.also[0].hardware", "one hardware type"),
    (lambda d: d["jobs"]["j"]["also"][0].update(site="nowhere"), "jobs.j.also[0].site", "unknown site 'nowhere'"),
    (lambda d: d["jobs"]["j"].update(sync={"kind": "parameter-server", "servers": 1, "hardware": "cpu"}),
     "jobs.j.also", "stays at one site"),
    (lambda d: d["jobs"]["j"]["also"][0].update(count=16), "jobs.j.also[0].count", "holds 8 of 'gpu'"),
])
def test_bad_jobs_across_sites_are_named(change: Any, path: str, words: str) -> None:
    d = _doc(8, 8)
    d["sites"]["far"]["capacity"]["gpu"] = 8
    d["jobs"]["j"]["also"] = [{"site": "far", "hardware": "gpu", "count": 8, "per_node": 8}]
    d["jobs"]["j"]["global_batch"] = 64 * 16
    change(d)
    with pytest.raises(ScenarioError) as err:
        parse_scenario(d)
    assert path in str(err.value) and words in str(err.value)
