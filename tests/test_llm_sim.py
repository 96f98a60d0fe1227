"""LLM serving in the simulator: token-level timings against closed forms, the KV cache, the checks."""
from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from lepton_sim.cli import main
from lepton_sim.errors import ScenarioError
from lepton_sim.metrics import build_metrics
from lepton_sim.scenario.load import parse_scenario
from lepton_sim.sim import Simulation

GPU = {"kind": "gpu", "peak_tflops": {"fp16": 100.0, "fp8": 200.0}, "memory_bandwidth_gbps": 1000.0,
       "memory_gb": 16.0, "power_w": 300.0, "idle_power_w": 50.0, "cost_per_hour": 2.0, "interconnect_gbps": 100.0}
TINY = {"kind": "llm", "layers": 2, "hidden": 256, "heads": 8, "kv_heads": 2, "ffn": 512, "vocab": 1000}


def scenario(prompt: int = 100, output: int = 5, rate: float = 0.5, *, arrival: str = "constant",
             links: list[dict] | None = None, demand_site: str = "dc", sched: dict | None = None,
             tokens: dict | None = None, count: int = 1, tp: int = 1, gpu: dict | None = None,
             duration: float = 10.0, model: dict | None = None, variant: str = "fp16") -> dict[str, Any]:
    sites: dict[str, Any] = {"dc": {"capacity": {"g": 8}}}
    if demand_site != "dc":
        sites[demand_site] = {"kind": "edge"}
    return {
        "name": "llm-test", "seed": 7,
        "horizon": {"duration_s": duration, "warmup_s": 0.0, "drain_s": 600.0},
        "hardware": {"g": gpu or GPU},
        "sites": sites,
        "links": links or [],
        "models": {"lm": model or TINY},
        "services": {"chat": {
            "model": "lm",
            "slo": {"ttft": {"percentile": 99, "latency_ms": 500}, "tpot": {"percentile": 99, "latency_ms": 50}},
            "tokens": tokens or {"prompt": {"dist": "fixed", "n": prompt}, "output": {"dist": "fixed", "n": output}},
            "scheduler": sched or {},
            "demand": [{"site": demand_site, "rate_rps": rate, "arrival": arrival}],
        }},
        "deployment": {"replicas": [{"service": "chat", "site": "dc", "hardware": "g", "variant": variant,
                                     "count": count, "tensor_parallel": tp}]},
    }


def run(raw: dict[str, Any]) -> tuple[Simulation, Any]:
    sim = Simulation(parse_scenario(copy.deepcopy(raw)))
    return sim, sim.run()


def prefill_s(m: Any, chunks: list[int]) -> float:
    """Seconds of a prompt's prefill iterations, one chunk each, alone on the replica."""
    t, kv = 0.0, 0
    for i, n in enumerate(chunks):
        t += m.seconds(n, 1 if i == len(chunks) - 1 else 0, n * (kv + (n + 1) / 2), kv + n)
        kv += n
    return t


def decode_s(m: Any, prompt: int, output: int) -> list[float]:
    """Seconds of each decode iteration of one sequence alone: token g+1 reads P+g cached tokens."""
    return [m.seconds(1, 1, prompt + g, prompt + g) for g in range(1, output)]


def test_a_lone_request_takes_its_prefill_then_one_decode_iteration_per_token() -> None:
    sim, rec = run(scenario(prompt=100, output=5))
    m = sim.pools[0].model
    t = rec.services["chat"]
    assert t.completed == t.arrived == 5  # one every 2 s, each done long before the next
    ttft = prefill_s(m, [100])
    steps = decode_s(m, 100, 5)
    assert t.llm.ttft_s.mean == pytest.approx(ttft, rel=1e-9)
    assert t.llm.tpot_s.mean == pytest.approx(sum(steps) / 4, rel=1e-9)
    assert t.latency_s.mean == pytest.approx(ttft + sum(steps), rel=1e-9)
    assert t.llm.output_tokens == 25 and t.llm.prompt_tokens == 500
    assert rec.pools[0].llm.output_tokens == 25
    assert rec.pools[0].batches == 5 * 5  # one prefill and four decode iterations each


def test_the_network_counts_for_the_prompt_the_first_token_and_the_rest_of_the_output() -> None:
    gbps, ms = 0.001, 20.0  # 1 Mbit/s: a 100-token prompt (400 bytes) takes 3.2 ms to serialise
    raw = scenario(prompt=100, output=5, demand_site="edge",
                   links=[{"between": ["edge", "dc"], "bandwidth_gbps": gbps, "latency_ms": ms}])
    sim, rec = run(raw)
    m = sim.pools[0].model
    bps, prop = gbps * 1e9, ms / 1e3
    up = 100 * 4 * 8 / bps + prop
    first_back = 4 * 8 / bps + prop
    rest_back = 4 * 4 * 8 / bps + prop
    steps = sum(decode_s(m, 100, 5))
    t = rec.services["chat"]
    ttft = up + prefill_s(m, [100]) + first_back
    e2e = up + prefill_s(m, [100]) + steps + rest_back
    assert t.llm.ttft_s.mean == pytest.approx(ttft, rel=1e-9)
    assert t.latency_s.mean == pytest.approx(e2e, rel=1e-9)
    assert t.llm.tpot_s.mean == pytest.approx((e2e - ttft) / 4, rel=1e-9)
    link = next(x for x in rec.links if x.direction == "edge->dc")
    assert link.bytes == 5 * 100 * 4


def test_chunked_prefill_splits_a_long_prompt_by_the_token_budget() -> None:
    sim, rec = run(scenario(prompt=1000, output=2, sched={"max_batched_tokens": 256, "chunked_prefill": True}))
    m = sim.pools[0].model
    assert rec.services["chat"].llm.ttft_s.mean == pytest.approx(prefill_s(m, [256, 256, 256, 232]), rel=1e-9)
    assert rec.pools[0].llm.batch_tokens == 5 * (1000 + 1)


def test_without_chunking_a_prompt_longer_than_the_budget_is_refused() -> None:
    with pytest.raises(ScenarioError, match="max_batched_tokens.*chunked_prefill is off"):
        parse_scenario(scenario(prompt=1000, sched={"max_batched_tokens": 256, "chunked_prefill": False}))


def test_decoding_sequences_share_iterations() -> None:
    # Four requests arrive together (constant at a high rate is spaced 1 ms; prefill is longer):
    # once prefilled they decode together, one iteration per token for all of them.
    sim, rec = run(scenario(prompt=50, output=40, rate=1000.0, duration=0.004))
    t = rec.services["chat"]
    assert t.completed == 4
    p = rec.pools[0]
    assert p.batched / p.batches > 1.8  # one sequence an iteration if they did not share
    m = sim.pools[0].model
    alone = sum(decode_s(m, 50, 40)) / 39
    assert t.llm.tpot_s.mean > alone  # a batch of four decodes takes longer than one alone


SMALL = {**GPU, "memory_gb": 0.008}  # with SMALL_SCHED, room for a few thousand tokens of the tiny model's KV cache
SMALL_SCHED = {"max_batched_tokens": 512, "max_num_seqs": 16}
SMALL_GPU_TP = {**GPU, "memory_gb": 0.006}  # two of them, with SMALL_SCHED: the cache fills with long requests


def test_a_full_kv_cache_preempts_the_newest_sequence_and_everything_still_finishes(tmp_path: Path) -> None:
    probe, _ = run(scenario(duration=0.001, gpu=SMALL, sched=SMALL_SCHED))
    blocks = probe.pools[0].total_blocks
    tokens = blocks * 16
    prompt, output = int(tokens * 0.35), int(tokens * 0.25)  # one fits; two fit their prompts, not their outputs
    (tmp_path / "two.csv").write_text("0.0\n0.001\n")  # two requests, 1 ms apart, inside a long window
    raw = scenario(prompt=prompt, output=output, duration=100.0, gpu=SMALL, sched=SMALL_SCHED)
    raw["services"]["chat"]["demand"][0] = {"site": "dc", "arrival": {"kind": "trace", "file": "two.csv"}}
    rec = Simulation(parse_scenario(raw, base_dir=tmp_path)).run()
    t = rec.services["chat"]
    assert t.arrived == 2 and t.completed == 2
    assert 1 <= t.llm.preempted <= 2  # preempted, recomputed once its whole cache fits: no thrashing
    assert rec.pools[0].llm.preempted == t.llm.preempted
    # the preempted one is recomputed: more tokens processed than the two requests' own
    assert rec.pools[0].llm.batch_tokens > 2 * (prompt + output - 1)


def test_a_request_that_can_never_fit_the_cache_is_dropped() -> None:
    probe, _ = run(scenario(duration=0.001, gpu=SMALL, sched=SMALL_SCHED))
    tokens = probe.pools[0].total_blocks * 16
    raw = scenario(tokens={"prompt": {"dist": "lognormal", "mean": tokens * 0.6, "cv": 0.5},
                           "output": {"dist": "fixed", "n": 10}}, rate=20.0, duration=5.0, gpu=SMALL, sched=SMALL_SCHED)
    _, rec = run(raw)
    t = rec.services["chat"]
    assert t.dropped == rec.pools[0].llm.too_long > 0
    assert t.arrived == t.completed + t.dropped + t.in_flight


def test_same_seed_same_metrics_and_replicas_share_the_work() -> None:
    raw = scenario(tokens={"prompt": {"dist": "lognormal", "mean": 300, "cv": 1.0, "max": 2000},
                           "output": {"dist": "uniform", "low": 5, "high": 80}},
                   arrival="poisson", rate=30.0, count=2, duration=20.0)
    s = parse_scenario(copy.deepcopy(raw))
    a = build_metrics(s, Simulation(s).run())
    b = build_metrics(s, Simulation(s).run())
    a.pop("wall_s"), b.pop("wall_s")
    assert a == b
    pool = next(iter(a["pools"].values()))
    assert pool["iterations"] > 0 and pool["output_tokens_per_s"] == pytest.approx(
        a["services"]["chat"]["output_tokens_per_s"], rel=0.05)
    busy = Simulation(s).run().pools[0].busy_s
    assert min(busy) > 0.3 * max(busy)  # least-tokens routing uses both replicas


def test_metrics_contract_for_an_llm_service() -> None:
    s = parse_scenario(scenario(arrival="poisson", rate=5.0, duration=20.0, tp=2))
    m = build_metrics(s, Simulation(s).run())
    svc = m["services"]["chat"]
    for key in ("ttft_ms", "tpot_ms"):
        assert set(svc[key]) >= {"mean", "p50", "p90", "p99"}
    for key in ("output_tokens_per_s", "prompt_tokens_per_s", "goodput_rps", "preempted", "slo_attainment"):
        assert key in svc
    assert svc["goodput_rps"] <= svc["throughput_rps"] + 1e-9
    pool = m["pools"]["chat@dc/g/fp16"]
    for key in ("running_mean", "kv_cache_utilization", "batch_tokens_mean"):
        assert pool[key] is not None
    assert pool["devices"] == 2
    assert m["cost"]["usd_per_hour"] == pytest.approx(2 * GPU["cost_per_hour"])  # one replica of two devices
    assert len(m["timeseries"]["llm_pools"]["chat@dc/g/fp16"]["kv_cache_utilization"]) > 0


def test_token_trace_is_replayed_in_file_order(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("prompt_tokens,output_tokens\n10,3\n20,4\n30,5\n")
    raw = scenario(tokens={"trace": {"file": "t.csv"}}, rate=1.0, duration=6.0)
    sim = Simulation(parse_scenario(raw, base_dir=tmp_path))
    t = sim.run().services["chat"]
    assert t.completed == 6
    assert t.llm.prompt_tokens == 2 * 60 and t.llm.output_tokens == 2 * 12


def test_check_says_every_llm_problem_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = scenario()
    del raw["services"]["chat"]["tokens"]
    del raw["services"]["chat"]["slo"]["tpot"]
    raw["hardware"]["small"] = {**GPU, "memory_gb": 0.001}
    raw["sites"]["dc"]["capacity"]["small"] = 1
    raw["deployment"]["replicas"].append({"service": "chat", "site": "dc", "hardware": "small", "variant": "fp16",
                                          "count": 1})
    raw["models"]["mlp"] = {"layers": [{"op": "dense", "in": 8, "out": 8}], "input_bytes": 32, "output_bytes": 32}
    raw["services"]["vision"] = {"model": "mlp", "slo": {"latency_ms": 10}, "demand": [{"site": "dc", "rate_rps": 1}]}
    raw["deployment"]["replicas"].append({"service": "vision", "site": "dc", "hardware": "g", "variant": "fp32",
                                          "count": 1, "tensor_parallel": 2})
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(raw))
    assert main(["check", str(f)]) == 2
    err = capsys.readouterr().err
    for said in ("services.chat.tokens: required", "services.chat.slo.tpot: required",
                 "deployment.replicas[1].variant", "deployment.replicas[2].tensor_parallel: only for LLM services"):
        assert said in err, said
    assert "Traceback" not in err


def test_validate_refuses_what_it_cannot_serve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "chat.yaml"
    f.write_text(yaml.safe_dump(scenario()))
    # validate serves LLMs with its fp32 numpy transformer only: an fp16 variant on a GPU is refused, saying why
    assert main(["validate", str(f)]) == 2
    err = capsys.readouterr().err
    assert "fp32 only" in err and "Traceback" not in err


def test_shipped_llm_scenarios_simulate(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1] / "scenarios" / "llm"
    files = sorted(root.glob("*.yaml"))
    assert len(files) >= 2
    for f in files:
        s = parse_scenario(yaml.safe_load(f.read_text()), file=str(f), base_dir=root)
        s = s.model_copy(update={"horizon": s.horizon.model_copy(update={"duration_s": 30.0, "warmup_s": 5.0})})
        m = build_metrics(s, Simulation(s).run())
        for name, svc in m["services"].items():
            assert svc["completed"] > 0, (f.name, name)
            assert math.isfinite(svc["ttft_ms"]["p99"]) and svc["tpot_ms"]["p50"] > 0


def test_littles_law_running_sequences_equal_throughput_times_residence() -> None:
    # No links and a light load: a request runs from the moment it arrives until its last token, so
    # the time-averaged running sequences equal the completion rate times the mean latency.
    raw = scenario(tokens={"prompt": {"dist": "uniform", "low": 50, "high": 400},
                           "output": {"dist": "uniform", "low": 20, "high": 200}},
                   arrival="poisson", rate=200.0, count=2, duration=40.0)
    raw["horizon"]["warmup_s"] = 5.0
    s = parse_scenario(raw)
    m = build_metrics(s, Simulation(s).run())
    svc, pool = m["services"]["chat"], m["pools"]["chat@dc/g/fp16"]
    assert svc["in_flight"] == 0 and svc["dropped"] == 0
    running = pool["running_mean"] * pool["replicas"]
    assert running == pytest.approx(svc["throughput_rps"] * svc["latency_ms"]["mean"] / 1e3, rel=0.03)
    assert running > 1.0  # sequences overlap: the batching is exercised


def test_least_kv_routing_sends_work_to_the_emptier_cache() -> None:
    raw = scenario(tokens={"prompt": {"dist": "uniform", "low": 50, "high": 400},
                           "output": {"dist": "uniform", "low": 20, "high": 200}},
                   arrival="poisson", rate=40.0, count=2, duration=30.0, sched={"replica_routing": "least-kv"})
    rec = Simulation(parse_scenario(raw)).run()
    busy = rec.pools[0].busy_s
    assert min(busy) > 0.5 * max(busy)
    assert rec.services["chat"].completed == rec.services["chat"].arrived


def test_replica_and_link_failures_move_or_lose_llm_requests_and_conserve_them() -> None:
    raw = scenario(tokens={"prompt": {"dist": "uniform", "low": 50, "high": 400},
                           "output": {"dist": "uniform", "low": 20, "high": 200}},
                   arrival="poisson", rate=60.0, count=3, duration=60.0, demand_site="edge",
                   links=[{"between": ["edge", "dc"], "bandwidth_gbps": 1.0, "latency_ms": 5.0}])
    raw["failures"] = {"g": {"mtbf_h": 0.003, "mttr_h": 0.001}, "edge--dc": {"mtbf_h": 0.005, "mttr_h": 0.0002}}
    s = parse_scenario(raw)
    rec = Simulation(s).run()
    m = build_metrics(s, rec)
    svc, pool = m["services"]["chat"], m["pools"]["chat@dc/g/fp16"]
    assert svc["arrived"] == svc["completed"] + svc["dropped"] + svc["failed"] + svc["in_flight"]
    assert pool["failures"] > 0 and pool["retried"] > 0  # requests moved off failed replicas
    assert svc["failed"] > 0  # some lost on the failing link
    # each replica is up mtbf / (mtbf + mttr) of the time
    assert pool["availability"] == pytest.approx(0.003 / 0.004, abs=0.1)
    assert 0 < pool["utilization"] <= pool["availability"] + 1e-9
    b = build_metrics(s, Simulation(s).run())
    m.pop("wall_s"), b.pop("wall_s")
    assert m == b


def test_an_end_to_end_target_beside_ttft_and_tpot_keeps_its_own_attainment() -> None:
    raw = scenario(arrival="poisson", rate=5.0, duration=20.0)
    raw["services"]["chat"]["slo"]["latency_ms"] = 1e-3  # unreachable end to end; TTFT and TPOT easy
    s = parse_scenario(raw)
    svc = build_metrics(s, Simulation(s).run())["services"]["chat"]
    assert svc["e2e_slo"]["attainment"] == 0.0 and svc["e2e_slo"]["met"] is False
    assert svc["ttft_slo"]["met"] and svc["tpot_slo"]["met"]
    assert svc["slo"]["met"] is False  # every target must hold


def test_physics_floors_tokens_conserved_and_the_cache_never_overflows(tmp_path: Path) -> None:
    from lepton_sim.servicetime.llm import llm_params

    # 300 requests in the first 30 ms of a 100 s window: every iteration of theirs falls inside it
    times = [0.0001 * i for i in range(300)]
    (tmp_path / "t.csv").write_text("\n".join(f"{t:.4f}" for t in times) + "\n")
    raw = scenario(tokens={"prompt": {"dist": "uniform", "low": 100, "high": 1500},
                           "output": {"dist": "uniform", "low": 2, "high": 300}},
                   duration=100.0, count=2, tp=2, gpu=SMALL_GPU_TP, sched=SMALL_SCHED)
    raw["services"]["chat"]["demand"][0] = {"site": "dc", "arrival": {"kind": "trace", "file": "t.csv"}}
    s = parse_scenario(raw, base_dir=tmp_path)
    sim = Simulation(s)
    rec = sim.run()
    t, p = rec.services["chat"], rec.pools[0]
    assert t.completed == t.arrived == 300
    # tokens conserved: every output token sampled once; tokens processed = prompts + outputs - 1 each,
    # plus what preempted sequences recompute
    assert p.llm.output_tokens == t.llm.output_tokens
    if p.llm.preempted == 0:
        assert p.llm.batch_tokens == t.llm.prompt_tokens + t.llm.output_tokens - t.completed
    else:
        assert p.llm.batch_tokens > t.llm.prompt_tokens + t.llm.output_tokens - t.completed
    # the KV cache never holds more than its blocks, and these long requests fill it
    assert 0.9 * p.llm.kv_blocks <= p.llm.kv_blocks_peak <= p.llm.kv_blocks
    # physics: no decode step faster than reading a device's weights at the datasheet bandwidth, no
    # prefill faster than its FLOPs at the datasheet peak split over the TP devices
    bw = SMALL_GPU_TP["memory_bandwidth_gbps"] * 1e9
    assert t.llm.tpot_s.min >= sim.pools[0].model.weight_bytes_per_device / bw
    flops = 2 * llm_params(s.models["lm"])["layers"] * 100  # the shortest prompt's decoder GEMMs
    assert t.llm.ttft_s.min >= flops / (SMALL_GPU_TP["peak_tflops"]["fp16"] * 1e12 * 2)


def test_at_saturation_running_sequences_approach_max_num_seqs() -> None:
    raw = scenario(prompt=64, output=64, arrival="poisson", rate=5000.0, duration=5.0,
                   sched={"max_num_seqs": 8})
    m = build_metrics(parse_scenario(raw), Simulation(parse_scenario(raw)).run())
    pool = m["pools"]["chat@dc/g/fp16"]
    assert 7.5 <= pool["running_mean"] <= 8.0


@pytest.mark.parametrize("content, said", [
    (None, "trace file not found"),
    ("prompt_tokens,output_tokens\n10,3\nabc,4\n", "line 3: expected whole token counts"),
    ("prompt_tokens,output_tokens\n10,0\n", "line 2: token counts must be at least 1"),
    ("p,o\n10,3\n", "has no column 'prompt_tokens' in its header"),
    ("prompt_tokens,output_tokens\n", "holds no token counts"),
])
def test_a_bad_token_trace_is_refused_with_where(tmp_path: Path, content: str | None, said: str) -> None:
    if content is not None:
        (tmp_path / "t.csv").write_text(content)
    with pytest.raises(ScenarioError, match="services.chat.tokens.trace.file") as exc:
        parse_scenario(scenario(tokens={"trace": {"file": "t.csv"}}), base_dir=tmp_path)
    assert said in str(exc.value)


COHORT_CASES = {
    # a busy pool of decoding sequences with arrivals between iterations
    "busy": dict(tokens={"prompt": {"dist": "uniform", "low": 20, "high": 900},
                         "output": {"dist": "uniform", "low": 1, "high": 300}},
                 arrival="poisson", rate=80.0, count=2, duration=8.0),
    # a small cache: preemption by recompute, readmission, the cohort dissolving and re-forming
    "preempting": dict(tokens={"prompt": {"dist": "uniform", "low": 200, "high": 2000},
                               "output": {"dist": "uniform", "low": 50, "high": 600}},
                       arrival="poisson", rate=6.0, duration=30.0, gpu="small"),
    # fewer tokens per iteration than sequences, chunked prefill of long prompts
    "tight budget": dict(tokens={"prompt": {"dist": "uniform", "low": 10, "high": 3000},
                                 "output": {"dist": "uniform", "low": 2, "high": 100}},
                         arrival="poisson", rate=40.0, duration=15.0,
                         sched={"max_num_seqs": 64, "max_batched_tokens": 48, "block_tokens": 8}),
    # no chunked prefill: prompts get iterations of their own
    "unchunked": dict(tokens={"prompt": {"dist": "uniform", "low": 20, "high": 500},
                              "output": {"dist": "uniform", "low": 1, "high": 300}},
                      arrival="poisson", rate=40.0, count=2, duration=6.0,
                      sched={"chunked_prefill": False, "max_batched_tokens": 512}),
    # the run ends with sequences decoding (no drain), least-kv routing between replicas
    "cut off": dict(tokens={"prompt": {"dist": "uniform", "low": 20, "high": 500},
                            "output": {"dist": "uniform", "low": 100, "high": 900}},
                    arrival="poisson", rate=30.0, count=2, duration=6.0, drain=0.0),
    "least-kv": dict(tokens={"prompt": {"dist": "uniform", "low": 20, "high": 900},
                             "output": {"dist": "uniform", "low": 1, "high": 300}},
                     arrival="poisson", rate=60.0, count=3, duration=6.0, sched={"replica_routing": "least-kv"}),
    # replica failures mid-iteration and lossy links
    "failures": dict(tokens={"prompt": {"dist": "uniform", "low": 50, "high": 400},
                             "output": {"dist": "uniform", "low": 20, "high": 200}},
                     arrival="poisson", rate=60.0, count=3, duration=15.0, demand_site="edge",
                     links=[{"between": ["edge", "dc"], "bandwidth_gbps": 1.0, "latency_ms": 5.0}]),
}


@pytest.mark.parametrize("case", sorted(COHORT_CASES))
def test_the_decode_cohort_decides_exactly_as_scheduling_one_by_one(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The cohort (decoding sequences kept in aggregate, runs of cohort-only iterations planned and
    # carried out in one event) is a speed-up: every metric, to the last bit, equals scheduling each
    # running sequence one at a time, one event per iteration.
    from lepton_sim.sim.llm import LLMPool

    kw = dict(COHORT_CASES[case])
    if kw.get("gpu") == "small":
        kw["gpu"], kw["sched"] = SMALL, SMALL_SCHED
    drain = kw.pop("drain", None)
    raw = scenario(**kw)
    if drain is not None:
        raw["horizon"]["drain_s"] = drain
    if case == "failures":
        raw["failures"] = {"g": {"mtbf_h": 0.001, "mttr_h": 0.0005}, "edge--dc": {"mtbf_h": 0.002, "mttr_h": 0.0001}}
    s = parse_scenario(raw)
    fast = build_metrics(s, Simulation(s).run())
    monkeypatch.setattr(LLMPool, "COHORT", False)
    slow = build_metrics(s, Simulation(s).run())
    fast.pop("wall_s"), slow.pop("wall_s")
    assert fast == slow
    svc = fast["services"]["chat"]
    assert svc["completed"] > 50
    if case == "cut off":
        assert svc["in_flight"] > 0
    if case == "preempting":
        assert svc["preempted"] > 0
    if case == "failures":
        assert fast["pools"]["chat@dc/g/fp16"]["retried"] > 0


def test_without_chunked_prefill_a_whole_prompt_gets_an_iteration_of_its_own(tmp_path: Path) -> None:
    # vLLM's default scheduler: a prompt as long as the whole token budget is admitted at the next
    # iteration, alone, while a long decode is running; the decode skips that iteration.
    (tmp_path / "t.csv").write_text("prompt_tokens,output_tokens\n100,400\n1000,2\n")
    (tmp_path / "at.csv").write_text("0.0\n0.01\n")  # the first decodes for 40 ms
    raw = scenario(tokens={"trace": {"file": "t.csv"}}, duration=1.0,
                   sched={"max_batched_tokens": 1000, "chunked_prefill": False})
    raw["services"]["chat"]["demand"][0] = {"site": "dc", "arrival": {"kind": "trace", "file": "at.csv"}}
    sim = Simulation(parse_scenario(raw, base_dir=tmp_path))
    rec = sim.run()
    t = rec.services["chat"]
    assert t.completed == 2
    m = sim.pools[0].model
    step = m.seconds(1, 1, 101, 101)  # one of the long request's decode steps, at its shortest
    long_prefill = prefill_s(m, [1000])
    # the long prompt's TTFT: at most one decode step's wait, then its own prefill (not the 400-token decode)
    assert t.llm.ttft_s.max < 2 * step + long_prefill
    # iterations: the two prefills alone and the first's 399 decode steps, the second's one decode
    # step riding along with them (it would have run alone after them had the prompt waited)
    assert rec.pools[0].batches == 2 + 399
