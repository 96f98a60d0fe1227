"""Planning LLM services: replica capacity by search on the simulator, tensor-parallel choices, baselines, and the
verified plan against brute force over deployments simulated one by one."""
from __future__ import annotations

import copy
import itertools
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from lepton_sim.cli import main as lepton_main
from lepton_sim.errors import ScenarioError
from lepton_sim.planner import PlanOptions, plan
from lepton_sim.planner.greedy import greedy
from lepton_sim.planner.llm import REL_TOL, LLMShape, Search, requests_for
from lepton_sim.planner.measured import MemoryStore
from lepton_sim.planner.problem import build_problem
from lepton_sim.scenario import load_scenario, parse_scenario
from lepton_sim.scenario.schema import Scenario
from lepton_sim.verification.checks import check_lines
from lepton_sim.verification.cli import main
from lepton_sim.verification.deployment import Line, renumbered, shrunk
from lepton_sim.verification.llm_meter import SimulatedReplicas, replica_scenario
from lepton_sim.verification.loop import verify

GPU = {"kind": "gpu", "memory_gb": 16}
TINY: dict[str, Any] = {
    "name": "llm-plan-small", "seed": 3, "horizon": {"duration_s": 40, "warmup_s": 4},
    "hardware": {
        "big": {**GPU, "peak_tflops": {"fp16": 200, "int8": 400}, "memory_bandwidth_gbps": 2000, "cost_per_hour": 4.0,
                "power_w": 500, "idle_power_w": 100, "interconnect_gbps": 300},
        "small": {**GPU, "peak_tflops": {"fp16": 60, "int8": 120}, "memory_bandwidth_gbps": 300, "cost_per_hour": 0.8,
                  "power_w": 70, "idle_power_w": 20},
    },
    "sites": {"dc": {"capacity": {"big": 4, "small": 6}}},
    "models": {"lm": {"kind": "llm", "layers": 16, "hidden": 2048, "heads": 16, "kv_heads": 4, "ffn": 8192,
                      "vocab": 32000, "variants": {"fp16": {"precision": "fp16", "accuracy": 0.60},
                                                   "int8": {"precision": "int8", "accuracy": 0.59}}}},
    "services": {"chat": {
        "model": "lm",
        "slo": {"ttft": {"percentile": 90, "latency_ms": 150}, "tpot": {"percentile": 90, "latency_ms": 2}},
        "tokens": {"prompt": {"dist": "lognormal", "mean": 300, "cv": 0.8, "max": 2048},
                   "output": {"dist": "lognormal", "mean": 80, "cv": 1.0, "max": 512}},
        "scheduler": {"max_num_seqs": 64, "max_batched_tokens": 2048},
        "demand": [{"site": "dc", "rate_rps": 150}]}},
}


def tiny(**services: Any) -> Scenario:
    raw = copy.deepcopy(TINY)
    raw["services"]["chat"].update(services)
    return parse_scenario(raw, file="<test>")


class FakeMeter:
    """Quantiles that rise with the rate, crossing known rates: TTFT 0.1 s at `ttft_at`, TPOT 2 ms at `tpot_at`."""

    def __init__(self, ttft_at: float, tpot_at: float) -> None:
        self.ttft_at, self.tpot_at = ttft_at, tpot_at
        self.calls: list[tuple[float, int]] = []

    def measure(self, scenario: Scenario, service: str, hardware: str, variant: str, tensor_parallel: int,
                rate_rps: float, requests: int, seed: int, levels: Sequence[float]) -> dict[str, list[float]]:
        self.calls.append((rate_rps, requests))
        ttft = 0.1 * rate_rps / self.ttft_at if rate_rps < 2 * self.ttft_at else math.inf  # 0.1 s at ttft_at
        tpot = 0.002 * rate_rps / self.tpot_at  # 2 ms (the TPOT target) at tpot_at
        return {"ttft_s": [ttft] * len(levels), "tpot_s": [tpot] * len(levels)}


@pytest.mark.parametrize("ttft_at, tpot_at", [(37.0, 500.0), (900.0, 61.0), (3.3, 3.1)])
def test_the_capacity_search_lands_within_its_tolerance_below_the_crossing(ttft_at: float, tpot_at: float) -> None:
    meter = FakeMeter(ttft_at, tpot_at)
    s = tiny()
    levels = (0.9, 0.91)
    search = Search(s, LLMShape("chat", "small", "fp16", 1), meter, MemoryStore(), levels, lone_s=0.05)
    cap = search.capacity(0.1, 0.9, 0.002, 0.9)
    truth = min(ttft_at, tpot_at)
    assert truth / (1 + REL_TOL) <= cap <= truth * (1 + 1e-9)
    full = [r for r, n in meter.calls if n == requests_for(levels)]
    assert full and max(r for r in full if r <= truth * (1 + 1e-9)) == pytest.approx(cap)  # a rate measured to meet
    assert len(meter.calls) <= 24
    # a second search with the same store measures nothing again
    again = FakeMeter(ttft_at, tpot_at)
    store = search.store
    s2 = Search(s, LLMShape("chat", "small", "fp16", 1), again, store, levels, lone_s=0.05)
    assert s2.capacity(0.1, 0.9, 0.002, 0.9) == cap and again.calls == []


def test_a_budget_missed_at_every_rate_gives_no_capacity() -> None:
    class Slow(FakeMeter):
        def measure(self, *a: Any, **k: Any) -> dict[str, list[float]]:
            out = super().measure(*a, **k)
            return {"ttft_s": [1.0] * len(out["ttft_s"]), "tpot_s": out["tpot_s"]}

    search = Search(tiny(), LLMShape("chat", "small", "fp16", 1), Slow(10, 10), MemoryStore(), (0.9,), lone_s=0.05)
    assert search.capacity(0.5, 0.9, 0.002, 0.9) == 0.0


def test_the_meter_measures_one_replica_alone_and_counts_unfinished_requests_as_misses() -> None:
    s = tiny()
    one = replica_scenario(s, "chat", "big", "int8", 2, 50.0, 1000)
    assert one.links == [] and list(one.sites) == ["replica"] and one.sites["replica"].capacity == {"big": 2}
    assert [(r.hardware, r.variant, r.tensor_parallel, r.count) for r in one.deployment.replicas] == [("big", "int8", 2, 1)]
    assert one.horizon.duration_s == pytest.approx(1100 / 50.0) and one.horizon.warmup_s == pytest.approx(100 / 50.0)
    m = SimulatedReplicas()
    light = m.measure(s, "chat", "small", "int8", 1, 20.0, 1000, 1, (0.5, 0.9))
    heavy = m.measure(s, "chat", "small", "int8", 1, 5000.0, 1000, 1, (0.5, 0.9))
    assert 0 < light["ttft_s"][0] <= light["ttft_s"][1] < 1.0 and 0 < light["tpot_s"][1] < 0.05
    assert heavy["ttft_s"][1] == math.inf or heavy["ttft_s"][1] > 100 * light["ttft_s"][1]


def test_tensor_parallel_replicas_use_their_devices_and_cost_them() -> None:
    meter = FakeMeter(100.0, 100.0)
    s = tiny()
    p = build_problem(s, PlanOptions(llm_meter=meter, baselines=False))
    tps = {(c.key[2], c.tensor_parallel) for c in p.candidates}
    assert tps == {("big", 1), ("big", 2), ("big", 4), ("small", 1)}  # small has no interconnect
    for c in p.candidates:
        hw = s.hardware[c.key[2]]
        assert c.usd_per_hour == pytest.approx(c.tensor_parallel * hw.cost_per_hour)
        assert c.max_count <= s.sites["dc"].capacity[c.key[2]] // c.tensor_parallel
    res = [r for r in p.resources if r.id == "site:dc:big"]
    for r in res:
        for ci, coef in r.candidate_coef.items():
            assert coef == p.candidates[ci].tensor_parallel


@pytest.mark.parametrize("rate", [300.0, 570.0, 600.0])
def test_the_greedy_counts_a_tensor_parallel_replica_as_its_devices(rate: float) -> None:
    """The greedy (a baseline, and every solve's start) fills a site's slots in devices: once two TP-2 replicas
    take the four big slots, no TP-1 replica fits beside them. At most 2 x 222 + 6 x 22 = 576 rps fit."""
    class Shapes(FakeMeter):
        def measure(self, scenario: Scenario, service: str, hardware: str, variant: str, tensor_parallel: int,
                    rate_rps: float, *rest: Any) -> dict[str, list[float]]:
            self.ttft_at = self.tpot_at = {1: 60.0, 2: 200.0, 4: 330.0}[tensor_parallel] * (hardware == "big") + 22.0
            return super().measure(scenario, service, hardware, variant, tensor_parallel, rate_rps, *rest)

    p = build_problem(tiny(demand=[{"site": "dc", "rate_rps": rate}]), PlanOptions(llm_meter=Shapes(1, 1),
                                                                                   baselines=False))
    out = greedy(p)
    if rate > 576:
        assert isinstance(out, str) and "greedy found no pool" in out, out
        return
    assert not isinstance(out, str), out
    counts, flows = out
    devices: dict[str, int] = {}
    for ci, n in counts.items():
        c = p.candidates[ci]
        devices[c.key[2]] = devices.get(c.key[2], 0) + n * c.tensor_parallel
    assert all(n <= p.scenario.sites["dc"].capacity[hw] for hw, n in devices.items()), devices
    assert sum(flows.values()) == pytest.approx(rate)


def test_the_plan_is_the_cheapest_under_its_own_capacities() -> None:
    """With a meter whose capacities are known, the MILP's choice is the cheapest combination (enumerated)."""
    class PerShape(FakeMeter):
        caps = {("big", "fp16", 1): 60.0, ("big", "int8", 1): 90.0, ("big", "int8", 2): 200.0,
                ("big", "fp16", 2): 150.0, ("big", "fp16", 4): 300.0, ("big", "int8", 4): 380.0,
                ("small", "fp16", 1): 14.0, ("small", "int8", 1): 22.0}

        def measure(self, scenario: Scenario, service: str, hardware: str, variant: str, tensor_parallel: int,
                    rate_rps: float, *rest: Any) -> dict[str, list[float]]:
            self.ttft_at = self.tpot_at = self.caps[(hardware, variant, tensor_parallel)]
            return super().measure(scenario, service, hardware, variant, tensor_parallel, rate_rps, *rest)

    s = tiny()
    r = plan(s, PlanOptions(llm_meter=PerShape(1, 1)))
    demand = 150.0
    caps = PerShape.caps
    best = math.inf
    # every deployment: a count (0 or more) of each (hardware, variant, degree) line, within the slots (4 big, 6 small)
    keys = sorted(caps)

    def walk(i: int, used: dict[str, int], cap: float, cost: float) -> None:
        nonlocal best
        if i == len(keys):
            if cap >= demand * (1 - 1e-9):
                best = min(best, cost)
            return
        hw, v, tp = keys[i]
        price, n = s.hardware[hw].cost_per_hour, 0
        while used.get(hw, 0) + n * tp <= s.sites["dc"].capacity[hw]:
            # capacities were measured within 2 %: the plan may use slightly less than `c` per replica
            walk(i + 1, {**used, hw: used.get(hw, 0) + n * tp}, cap + n * caps[keys[i]] * (1 - REL_TOL),
                 cost + n * tp * price)
            n += 1

    walk(0, {}, 0.0, 0.0)
    assert r.usd_per_hour == pytest.approx(best)
    names = {b.name for b in r.baselines}
    assert {"greedy", "single:big", "single:small", "no-quantisation", "tp1-only"} <= names
    for b in r.baselines:
        assert b.usd_per_hour is None or b.usd_per_hour >= r.usd_per_hour - 1e-9
    for name, got in [("plan", r)] + [(b.name, b.plan) for b in r.baselines if b.plan is not None]:
        devices: dict[str, int] = {}
        for pool in got.pools:  # every plan, the greedy's too, within the slots in devices
            devices[pool.key[2]] = devices.get(pool.key[2], 0) + pool.count * pool.tensor_parallel
        assert all(n <= s.sites["dc"].capacity[hw] for hw, n in devices.items()), (name, devices)


def _shapes(s: Scenario) -> list[tuple[str, str, int]]:
    """Every (hardware, variant, degree) the site could run: degrees above 1 on hardware with an interconnect,
    within the site's slots."""
    cap = s.sites["dc"].capacity
    return [(hw, v, tp) for hw in sorted(cap) for v in ("fp16", "int8") for tp in (1, 2, 4)
            if tp <= cap[hw] and (tp == 1 or s.hardware[hw].interconnect_gbps is not None)]


def _brute_force(s: Scenario, limit: int) -> tuple[float, tuple[str, str, int, int]]:
    """The cheapest one-line deployment (hardware, variant, degree, count) that meets both targets when simulated,
    trying deployments in order of cost (at most `limit` simulations)."""
    tries = []
    for hw, v, tp in _shapes(s):
        for n in range(1, s.sites["dc"].capacity[hw] // tp + 1):
            tries.append((n * tp * s.hardware[hw].cost_per_hour, (hw, v, tp, n)))
    tries.sort()
    for cost, (hw, v, tp, n) in tries[:limit]:
        sim = check_lines(s, (Line(("chat", "dc", hw, v), n, {"dc": 1.0}, tp),), s.seed)
        if sim.met:
            return cost, (hw, v, tp, n)
    raise AssertionError("no deployment within the limit verifies")


def _cheaper_mix(s: Scenario, below: float) -> tuple[float, tuple[Line, ...]] | None:
    """The cheapest two-line deployment costing less than `below` that meets both targets when simulated: every
    pair of (hardware, variant, degree) shapes, every pair of counts within the slots, the second line's share of
    the traffic from 0.1 to 0.9 in steps of 0.1; None when none does.

    Skipped, as they cannot meet the TPOT target: a share `f` on a shape whose TPOT median alone, at 2 rps,
    is above the target (at least half of its requests miss even then, and load only lengthens an iteration),
    when `f` / 2 is more than the percentile's miss fraction."""
    shapes = _shapes(s)
    assert s.services["chat"].slo.tpot is not None
    tpot, miss = s.services["chat"].slo.tpot.latency_ms, 1 - s.services["chat"].slo.tpot.percentile / 100
    light = s.model_copy(update={"services": {"chat": s.services["chat"].model_copy(
        update={"demand": [s.services["chat"].demand[0].model_copy(update={"rate_rps": 2.0})]})}})
    slow = {shape for shape in shapes if check_lines(light, (Line(("chat", "dc", shape[0], shape[1]), 1, {"dc": 1.0},
                                                                  shape[2]),), s.seed).metrics[
        "services"]["chat"]["tpot_ms"]["p50"] > tpot}
    cap = s.sites["dc"].capacity
    tries = []
    for a, b in itertools.combinations(shapes, 2):
        for na in range(1, cap[a[0]] // a[2] + 1):
            for nb in range(1, cap[b[0]] // b[2] + 1):
                used: dict[str, int] = {}
                for (hw, _, tp), n in ((a, na), (b, nb)):
                    used[hw] = used.get(hw, 0) + n * tp
                cost = sum(n * tp * s.hardware[hw].cost_per_hour for (hw, _, tp), n in ((a, na), (b, nb)))
                if cost < below and all(used[h] <= cap[h] for h in used):
                    tries += [(cost, a, na, b, nb, k / 10) for k in range(1, 10)
                              if not (a in slow and (1 - k / 10) / 2 > miss) and not (b in slow and k / 20 > miss)]
    for cost, a, na, b, nb, f in sorted(tries):
        lines = (Line(("chat", "dc", a[0], a[1]), na, {"dc": 1 - f}, a[2]),
                 Line(("chat", "dc", b[0], b[1]), nb, {"dc": f}, b[2]), )
        if check_lines(s, renumbered(lines), s.seed).met:
            return cost, lines
    return None


# The cheapest verifying one-line deployments: 4, 2 and 1 big GPUs. At 2 ms a mix does better: an int8 TP-1 and an
# int8 TP-2 replica (two pools of one hardware type and variant) splitting the traffic about 25/75 verify at $12,
# each above the rate the planner holds it to (37 and 103 rps measured alone at p90): the verify loop finds it by
# relaxing the $16 plan's capacities. Mixes of two lines are searched below the plan's cost less 2 %.
@pytest.mark.parametrize("tpot_ms", [2, 3, 6])
def test_the_verified_plan_costs_at_most_2_percent_more_than_the_cheapest_deployment_that_verifies(
        tpot_ms: float) -> None:
    s = tiny(slo={"ttft": {"percentile": 90, "latency_ms": 150}, "tpot": {"percentile": 90, "latency_ms": tpot_ms}})
    v = verify(s, PlanOptions(tables=MemoryStore()), rounds=5)
    assert v.met and v.certificate.holds
    cost, what = _brute_force(s, limit=40)
    assert v.final.usd_per_hour <= 1.02 * cost + 1e-9, (v.final.lines, what)
    # the simulation agrees with the plan's own verdict on the final deployment
    assert all(c.met for c in v.final.services.values())
    # no mix of two pools (hardware, variant, degree, count, split) verifies 2 % or more below the plan
    assert _cheaper_mix(s, below=v.final.usd_per_hour / 1.02) is None
    if tpot_ms == 2:  # the mix: one hardware type and variant at two degrees, as two pools
        assert v.final.usd_per_hour == pytest.approx(12.0)
        assert sorted(line.tensor_parallel for line in v.final.lines) == [1, 2]
        assert [line.id for line in v.final.lines] == ["chat@dc/big/int8", "chat@dc/big/int8#2"]


def three_types(tpot_ms: float) -> Scenario:
    """The small instance with a third GPU type between the two (120 fp16 TFLOPS, 900 GB/s, $1.80/h, an
    interconnect): 2 big, 4 mid and 6 small slots."""
    raw = copy.deepcopy(TINY)
    raw["hardware"]["mid"] = {**GPU, "peak_tflops": {"fp16": 120, "int8": 240}, "memory_bandwidth_gbps": 900,
                              "cost_per_hour": 1.8, "power_w": 300, "idle_power_w": 60, "interconnect_gbps": 100}
    raw["sites"]["dc"]["capacity"] = {"big": 2, "mid": 4, "small": 6}
    raw["services"]["chat"]["slo"]["tpot"]["latency_ms"] = tpot_ms
    return parse_scenario(raw, file="<test>")


# Three GPU types: the verified plans mix two of them (TPOT 3 ms: a big int8 TP-1 and a mid int8 TP-2 replica,
# $7.60; 4 ms: a big and a mid int8 TP-1 replica, $5.80), cheaper than any one-line deployment that verifies.
@pytest.mark.parametrize("tpot_ms", [3.0, 4.0])
def test_with_three_gpu_types_no_deployment_of_one_or_two_pools_verifies_2_percent_below_the_plan(
        tpot_ms: float) -> None:
    s = three_types(tpot_ms)
    v = verify(s, PlanOptions(tables=MemoryStore()), rounds=5)
    assert v.met and v.certificate.holds
    cost, what = _brute_force(s, limit=60)
    assert v.final.usd_per_hour <= 1.02 * cost + 1e-9, (v.final.lines, what)
    assert _cheaper_mix(s, below=v.final.usd_per_hour / 1.02) is None
    assert len({line.key[2] for line in v.final.lines}) == 2  # a GPU mix


def test_plan_on_the_command_line_writes_tensor_parallel_and_a_scenario_that_simulates(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEPTON_SIM_CACHE", str(tmp_path / "cache"))
    raw = copy.deepcopy(TINY)  # at TPOT 2 ms, 150 rps need tensor parallelism under the planner's model
    f = tmp_path / "chat.yaml"
    f.write_text(yaml.safe_dump(raw))
    assert main(["plan", str(f), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "GPUs" in out and "chat TPOT" in out and "tp1-only" in out
    doc = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert doc["predicted"]["chat"]["metric"] == "ttft" and doc["predicted"]["chat"]["tpot"]["slo_ms"] == 2.0
    tps = [line.get("tensor_parallel", 1) for line in doc["deployment"]["replicas"]]
    assert max(tps) > 1
    for pid, pool in doc["pools"].items():
        assert pool["devices"] == pool["replicas"] * pool["tensor_parallel"]
    planned = load_scenario(tmp_path / "out" / "scenario.planned.yaml")
    assert [r.tensor_parallel for r in planned.deployment.replicas] == tps
    tp1 = next(b for b in doc["baselines"] if b["name"] == "tp1-only")
    assert tp1["usd_per_hour"] is None or tp1["usd_per_hour"] >= doc["usd_per_hour"]


def test_two_degrees_of_one_line_are_written_as_two_pools_that_simulate_as_planned(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """At TPOT 2 ms the verified plan is an int8 TP-1 and an int8 TP-2 replica at one site: plan.json names them
    as the simulator does, and the planned scenario simulates them as two pools with the planned routing."""
    monkeypatch.setenv("LEPTON_SIM_CACHE", str(tmp_path / "cache"))
    f = tmp_path / "chat.yaml"
    f.write_text(yaml.safe_dump(copy.deepcopy(TINY)))
    assert main(["plan", str(f), "--verify", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "chat@dc/big/int8#2" in out
    doc = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert set(doc["pools"]) == {"chat@dc/big/int8", "chat@dc/big/int8#2"}
    assert [p["tensor_parallel"] for p in doc["pools"].values()] == [1, 2]
    assert set(doc["routing"]["chat"]["dc"]) == set(doc["pools"])
    planned = load_scenario(tmp_path / "out" / "scenario.planned.yaml")
    assert [(r.variant, r.tensor_parallel) for r in planned.deployment.replicas] == [("int8", 1), ("int8", 2)]
    assert lepton_main(["simulate", str(tmp_path / "out" / "scenario.planned.yaml"), "--out", str(tmp_path / "sim")]) == 0
    m = json.loads((tmp_path / "sim" / "metrics.json").read_text())
    assert {pid: pool["devices"] for pid, pool in m["pools"].items()} == {"chat@dc/big/int8": 1,
                                                                           "chat@dc/big/int8#2": 2}
    share = m["pools"]["chat@dc/big/int8#2"]["throughput_rps"] / m["services"]["chat"]["throughput_rps"]
    assert share == pytest.approx(doc["routing"]["chat"]["dc"]["chat@dc/big/int8#2"], abs=0.03)


def test_removing_the_first_of_two_lines_of_one_key_renames_the_other_as_the_simulator_will() -> None:
    key = ("chat", "dc", "big", "int8")
    lines = renumbered((Line(key, 1, {"dc": 0.25}, 1), Line(key, 1, {"dc": 0.75}, 2)))
    assert [line.id for line in lines] == ["chat@dc/big/int8", "chat@dc/big/int8#2"]
    left = shrunk(lines, 0)
    assert not isinstance(left, str)
    assert [(line.id, line.tensor_parallel, dict(line.weights)) for line in left] == [("chat@dc/big/int8", 2,
                                                                                       {"dc": 1.0})]
    again = shrunk(lines, 1)
    assert not isinstance(again, str) and [line.id for line in again] == ["chat@dc/big/int8"]


def test_llm_services_the_planner_cannot_plan_are_refused_by_name(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = copy.deepcopy(TINY)
    raw["services"]["chat"]["slo"]["latency_ms"] = 5000
    f = tmp_path / "e2e.yaml"
    f.write_text(yaml.safe_dump(raw))
    assert main(["plan", str(f)]) == 2
    err = capsys.readouterr().err
    assert "services.chat.slo.latency_ms" in err and "Traceback" not in err
    with pytest.raises(ScenarioError, match="llm_meter"):
        plan(parse_scenario(TINY, file="<test>"), PlanOptions())


def test_a_ttft_target_below_any_prefill_is_infeasible_with_the_reason(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEPTON_SIM_CACHE", str(tmp_path / "cache"))
    raw = copy.deepcopy(TINY)
    raw["services"]["chat"]["slo"]["ttft"]["latency_ms"] = 0.5
    f = tmp_path / "fast.yaml"
    f.write_text(yaml.safe_dump(raw))
    assert main(["plan", str(f)]) == 1
    err = capsys.readouterr().err
    assert "TTFT" in err and "first token" in err and "Traceback" not in err
