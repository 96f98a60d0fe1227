"""LLM pools that serve prompt-length ranges (`deployment.replicas[].prompt_tokens`): the simulator routes
each request by its prompt, and the loader refuses ranges that leave requests without a pool."""
from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from lepton_sim.errors import ScenarioError
from lepton_sim.metrics import build_metrics
from lepton_sim.scenario import parse_scenario
from lepton_sim.scenario.schema import Replicas, prompt_intervals
from lepton_sim.sim import simulate
from lepton_sim.sim.llm import LLMPool

GPU = {"kind": "gpu", "memory_gb": 16}
BASE: dict[str, Any] = {
    "name": "prompt-routing", "seed": 5, "horizon": {"duration_s": 30, "warmup_s": 0},
    "hardware": {"big": {**GPU, "peak_tflops": {"fp16": 200}, "memory_bandwidth_gbps": 2000, "cost_per_hour": 4.0,
                         "power_w": 500, "idle_power_w": 100},
                 "small": {**GPU, "peak_tflops": {"fp16": 60}, "memory_bandwidth_gbps": 300, "cost_per_hour": 0.8,
                           "power_w": 70, "idle_power_w": 20}},
    "sites": {"dc": {"capacity": {"big": 2, "small": 4}}, "edge": {"kind": "edge", "capacity": {"small": 2}}},
    "links": [{"between": ["edge", "dc"], "bandwidth_gbps": 10, "latency_ms": 3}],
    "models": {"lm": {"kind": "llm", "layers": 8, "hidden": 1024, "heads": 8, "kv_heads": 4, "ffn": 4096,
                      "vocab": 32000, "variants": {"fp16": {"precision": "fp16"}}}},
    "services": {"chat": {
        "model": "lm", "slo": {"ttft": {"percentile": 90, "latency_ms": 500}, "tpot": {"percentile": 90, "latency_ms": 50}},
        "tokens": {"prompt": {"dist": "uniform", "low": 1, "high": 1000}, "output": {"dist": "fixed", "n": 8}},
        "demand": [{"site": "dc", "rate_rps": 20}, {"site": "edge", "rate_rps": 10}]}},
    "deployment": {"routing": "least-loaded", "replicas": [
        {"service": "chat", "site": "dc", "hardware": "big", "variant": "fp16", "count": 1, "prompt_tokens": [401, None]},
        {"service": "chat", "site": "dc", "hardware": "small", "variant": "fp16", "count": 2, "prompt_tokens": [1, 400]},
        {"service": "chat", "site": "edge", "hardware": "small", "variant": "fp16", "count": 1, "prompt_tokens": [1, 200]}]},
}


def _scenario(**deployment: Any) -> Any:
    raw = copy.deepcopy(BASE)
    raw["deployment"].update(deployment)
    return parse_scenario(raw, file="<prompt-routing>")


def test_each_pool_gets_only_the_prompts_of_its_range(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, list[int]] = {}
    enqueue = LLMPool.enqueue

    def record(self: LLMPool, req: Any) -> None:
        seen.setdefault(f"{self.line.site}/{self.line.hardware}", []).append(req.llm.prompt)
        enqueue(self, req)

    monkeypatch.setattr(LLMPool, "enqueue", record)
    s = _scenario()
    m = build_metrics(s, simulate(s))
    chat = m["services"]["chat"]
    assert chat["dropped"] == 0 and chat["completed"] == chat["arrived"] > 600
    big, small, edge = (np.array(seen[k]) for k in ("dc/big", "dc/small", "edge/small"))
    assert big.min() >= 401 and small.max() <= 400 and edge.max() <= 200
    # the big pool serves every prompt above 400 from both sites: 60 % of the uniform 1-1000 draws
    assert len(big) / (len(big) + len(small) + len(edge)) == pytest.approx(0.6, abs=0.05)
    # prompts of 1-200 may go to either small pool (least-loaded); 201-400 only to the datacenter's
    assert small.min() <= 200 and (small > 200).any()


def test_the_same_scenario_and_seed_give_the_same_metrics() -> None:
    s = _scenario()
    a, b = build_metrics(s, simulate(s)), build_metrics(s, simulate(s))
    a.pop("wall_s", None), b.pop("wall_s", None)
    assert a == b


def test_weighted_routing_splits_each_interval_by_its_own_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, int] = {}
    enqueue = LLMPool.enqueue

    def count(self: LLMPool, req: Any) -> None:
        key = f"{self.line.hardware}:{'short' if req.llm.prompt <= 500 else 'long'}"
        seen[key] = seen.get(key, 0) + 1
        enqueue(self, req)

    monkeypatch.setattr(LLMPool, "enqueue", count)
    raw = copy.deepcopy(BASE)
    raw["services"]["chat"]["demand"] = [{"site": "dc", "rate_rps": 40}]
    raw["deployment"] = {"routing": "weighted", "replicas": [  # short prompts 3:1 small:big; long ones all big
        {"service": "chat", "site": "dc", "hardware": "big", "variant": "fp16", "count": 1, "weights": {"dc": 1.0}},
        {"service": "chat", "site": "dc", "hardware": "small", "variant": "fp16", "count": 2, "prompt_tokens": [1, 500],
         "weights": {"dc": 0.0}}]}
    with pytest.raises(ScenarioError) as exc:  # over prompts of 1-500 the weights add up to 1 + 0... then fix them
        parse_scenario(copy.deepcopy({**raw, "deployment": {**raw["deployment"], "replicas": [
            {**raw["deployment"]["replicas"][0]}, {**raw["deployment"]["replicas"][1], "weights": {"dc": 0.5}}]}}),
            file="<w>")
    assert "serving prompts of 1-500 tokens add up to 1.5" in str(exc.value)
    s = parse_scenario(raw, file="<w>")
    simulate(s)
    assert seen.get("small:short", 0) == 0 and seen["big:short"] > 0 and seen["big:long"] > 0


def test_ranges_that_leave_prompts_without_a_pool_are_refused_all_at_once() -> None:
    raw = copy.deepcopy(BASE)
    raw["deployment"]["replicas"][0]["prompt_tokens"] = [501, 900]  # 401-500 and 901-1000: no pool
    raw["deployment"]["replicas"][2]["prompt_tokens"] = [300, 200]  # lo > hi
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(raw, file="<gap>")
    text = str(exc.value)
    assert "deployment.replicas[2].prompt_tokens" in text and "lo <= hi" in text
    raw["deployment"]["replicas"][2]["prompt_tokens"] = [1, 200]
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(raw, file="<gap>")
    text = str(exc.value)
    assert "prompts of 401-500 tokens have no pool" in text and "prompts of 901-1000 tokens have no pool" in text
    assert "prompts of 1001" not in text  # the uniform draws stop at 1000


def test_a_demand_site_that_reaches_no_pool_for_its_prompts_is_named() -> None:
    raw = copy.deepcopy(BASE)
    raw["links"] = []
    raw["services"]["chat"]["demand"] = [{"site": "edge", "rate_rps": 5}]
    raw["deployment"]["replicas"][2]["prompt_tokens"] = None  # the edge's pool serves every prompt: fine
    parse_scenario(copy.deepcopy(raw), file="<reach>")
    raw["deployment"]["replicas"][2]["prompt_tokens"] = [1, 200]
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(raw, file="<reach>")
    text = str(exc.value)
    assert "services.chat.demand[0].site" in text and "no network path to a pool serving prompts of 201-400" in text


def test_prompt_ranges_and_buckets_are_for_llm_services_only() -> None:
    raw = {"name": "x", "horizon": {"duration_s": 1},
           "hardware": {"cpu": {"kind": "cpu", "peak_tflops": {"fp32": 1}, "memory_bandwidth_gbps": 50,
                                "memory_gb": 8, "power_w": 10, "idle_power_w": 5, "cost_per_hour": 0.1}},
           "sites": {"a": {"capacity": {"cpu": 1}}},
           "models": {"m": {"layers": [{"op": "dense", "in": 8, "out": 8}], "input_bytes": 32, "output_bytes": 32,
                            "variants": {"fp32": {"precision": "fp32"}}}},
           "services": {"s": {"model": "m", "slo": {"latency_ms": 10}, "demand": [{"site": "a", "rate_rps": 1}],
                              "buckets": [10]}},
           "deployment": {"replicas": [{"service": "s", "site": "a", "hardware": "cpu", "variant": "fp32", "count": 1,
                                        "prompt_tokens": [1, 10]}]}}
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(raw, file="<plain>")
    text = str(exc.value)
    assert "services.s.buckets" in text and "deployment.replicas[0].prompt_tokens" in text
    raw["services"]["s"]["buckets"] = [10, 10]
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(raw, file="<plain>")
    assert "bucket bounds must increase" in str(exc.value)


def test_prompt_intervals_cut_at_every_range_end() -> None:
    lines = [Replicas(service="c", site="a", hardware="h", variant="v", count=1, prompt_tokens=r)
             for r in ((1, 100), (50, None), (101, 300))]
    assert prompt_intervals(lines) == [(1, 49), (50, 100), (101, 300), (301, None)]
    assert [r.serves_prompt(101, 300) for r in lines] == [False, True, True]
    assert prompt_intervals([Replicas(service="c", site="a", hardware="h", variant="v", count=1)]) == [(1, None)]


def test_buckets_need_rates_to_split_and_names_of_their_own() -> None:
    raw = copy.deepcopy(BASE)
    raw["services"]["chat"]["buckets"] = [300]
    raw["services"]["chat"]["demand"][1] = {"site": "edge", "arrival": {"kind": "mmpp", "rates_rps": [1, 5],
                                                                         "mean_dwell_s": [2, 2]}}
    raw["services"]["chat.p301+"] = copy.deepcopy(raw["services"]["chat"])
    raw["services"]["chat.p301+"].pop("buckets")
    raw["services"]["chat.p301+"]["demand"] = [{"site": "dc", "rate_rps": 1}]
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(raw, file="<buckets>")
    text = str(exc.value)
    assert "services.chat.demand[1].rate_rps" in text and "services.chat.p301+" in text and "rename" in text
