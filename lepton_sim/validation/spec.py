"""What `validate` will run: the scenario's pools, arrival streams and link directions, or why it cannot run here.

Everything the harness needs is read from the loaded scenario (the same objects the simulator
reads), so that both halves run the same thing: the arrival streams come from
`lepton_sim.sim.arrivals.arrival_times` with the simulator's own seed streams, and the routes from
`lepton_sim.network.Topology`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from lepton_sim.catalogue import THIS_MACHINE
from lepton_sim.errors import ScenarioError
from lepton_sim.network import Route, Topology
from lepton_sim.scenario.schema import Scenario, is_llm
from lepton_sim.sim.arrivals import arrival_times
from lepton_sim.sim.streams import stream
from lepton_sim.sim.tokens import TokenSource

RUNNABLE_PRECISIONS = ("fp32", "fp16", "int8", "int4")  # the kernels runner's paths (kernels.forward)


@dataclass(frozen=True)
class PoolSpec:
    """One replica pool: what its server process runs."""

    index: int
    service: str
    site: str
    hardware: str
    variant: str
    layers: list[dict[str, Any]]
    precision: str
    count: int
    max_batch: int
    max_wait_ms: float
    features: int
    input_bytes: int
    output_bytes: int
    codec: str | None
    level: int
    data: str

    @property
    def id(self) -> str:
        """The pool's name in metrics.json."""
        return f"{self.service}@{self.site}/{self.hardware}/{self.variant}"


@dataclass(frozen=True)
class LLMPoolSpec:
    """One LLM replica pool (`kind: llm`): what its server process (`llm_server`) runs."""

    index: int
    service: str
    site: str
    hardware: str
    variant: str
    count: int
    model: dict[str, int]  # kernels.transformer.Config keys
    max_num_seqs: int
    max_batched_tokens: int
    chunked_prefill: bool
    block_tokens: int
    replica_routing: str
    kv_tokens: int  # per replica, as the simulator sizes it (llm_replica_model.kv_capacity_tokens)
    token_bytes: int
    longest_prompt: int = 0  # the service's longest prompt (its distribution's max or its trace's), 0: unbounded

    @property
    def id(self) -> str:
        return f"{self.service}@{self.site}/{self.hardware}/{self.variant}"

    @property
    def max_tokens(self) -> int:
        """The largest iteration the simulator's iteration-time model tables (as `Simulation._make_pool` sizes it)."""
        return self.max_batched_tokens + self.max_num_seqs


LLM_RUNNABLE = "validate serves LLM models with the numpy transformer of kernels/transformer.py"


def _llm_pool(i: int, line: Any, svc: Any, model: Any, hw: Any, fail: Any) -> LLMPoolSpec | None:
    """The LLM pool's plan, or None after `fail` said why it cannot run here."""
    from lepton_sim.servicetime.llm import llm_replica_model

    where = f"models.{svc.model}"
    variant = model.variants[line.variant]
    ok = True
    if variant.precision != "fp32" or getattr(variant, "weight_only", False) or \
            getattr(variant, "kv_precision", None) not in (None, "fp32"):
        fail(f"{where}.variants.{line.variant}.precision", f"{LLM_RUNNABLE}, in fp32 only (weights, math and "
                                                          f"KV cache); got {variant.precision}")
        ok = False
    for key, bad, what in (("ffn_kind", "gelu", "a SwiGLU FFN"), ("qkv_bias", True, "no QKV bias"),
                           ("tied_embeddings", True, "an untied LM head")):
        if getattr(model, key) == bad:
            fail(f"{where}.{key}", f"{LLM_RUNNABLE}: {what}")
            ok = False
    if model.sliding_window is not None:
        fail(f"{where}.sliding_window", f"{LLM_RUNNABLE}: full causal attention, no sliding window")
        ok = False
    if line.tensor_parallel != 1:
        fail(f"deployment.replicas[{i}].tensor_parallel", "validate serves one device (one core) per LLM replica: "
                                                            "tensor_parallel 1")
        ok = False
    if not ok:
        return None
    sched = svc.scheduler_or_default
    heads = int(model.heads)
    dims = {"layers": int(model.layers), "hidden": int(model.hidden), "heads": heads,
            "kv_heads": int(model.kv_heads or heads), "head_dim": int(model.head_dim or model.hidden // heads),
            "ffn": int(model.ffn), "vocab": int(model.vocab)}
    m = llm_replica_model(model, variant, hw, 1, sched.max_batched_tokens + sched.max_num_seqs,
                          max_seqs=sched.max_num_seqs)
    return LLMPoolSpec(
        index=i, service=line.service, site=line.site, hardware=line.hardware, variant=line.variant,
        count=line.count, model=dims, max_num_seqs=sched.max_num_seqs, max_batched_tokens=sched.max_batched_tokens,
        chunked_prefill=sched.chunked_prefill, block_tokens=sched.block_tokens,
        replica_routing=sched.replica_routing,
        kv_tokens=m.kv_capacity_tokens(hw.memory_gb, sched.gpu_memory_utilization), token_bytes=model.token_bytes,
        longest_prompt=int(svc.tokens.max_tokens()[0] or 0) if svc.tokens is not None else 0)


@dataclass(frozen=True)
class StreamSpec:
    """One demand line: its arrival times (from 0 to the end of the horizon) and its route to the pool."""

    service: str
    index: int  # position in the service's demand list
    site: str
    pool: int
    there: tuple[str, ...]  # link directions crossed to the pool
    back: tuple[str, ...]
    times: tuple[float, ...]
    tokens: tuple[tuple[int, int], ...] = ()  # an LLM service's (prompt, output) tokens per arrival

    @property
    def name(self) -> str:
        return f"{self.service}/{self.index}"


@dataclass(frozen=True)
class RunSpec:
    pools: tuple[PoolSpec | LLMPoolSpec, ...]
    streams: tuple[StreamSpec, ...]
    directions: dict[str, dict[str, float]]  # key -> bandwidth_bps, latency_s
    seed: int
    duration_s: float
    warmup_s: float
    drain_s: float


def direction_key(link_index: int, src: str, dst: str) -> str:
    return f"{link_index}:{src}>{dst}"


def _keys(route: Route) -> tuple[str, ...]:
    return tuple(direction_key(h.link_index, h.src, h.dst) for h in route.hops)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def run_spec(scenario: Scenario, raw: dict[str, Any], file: str, seed: int | None = None,
             cores: int | None = None) -> RunSpec:
    """The harness's plan for `scenario` (its horizon as given); ScenarioError listing every reason it cannot run here."""
    problems: list[ScenarioError] = []

    def fail(path: str, msg: str) -> None:
        if not any(p.path == path and p.detail == msg for p in problems):  # a service with two lines says it once
            problems.append(ScenarioError(msg, file=file, path=path))

    dep = scenario.deployment
    if dep is None:
        raise ScenarioError("required by `validate` (the replica pools to serve)", file=file, path="deployment")
    if scenario.failures:
        fail("failures", "validate serves without failures: remove `failures` (a real run cannot schedule them)")
    if scenario.jobs:
        fail("jobs", "validate serves inference only: remove `jobs` (a real data-parallel step is measured by "
                     "benchmarks/training_real.py)")
    raw_hw = raw.get("hardware") or {}
    cores = usable_cores() if cores is None else cores
    total = sum(line.count for line in dep.replicas)
    if total > cores:
        fail("deployment.replicas", f"{total} replicas in all, and this machine has {cores} usable cores: each "
                                    f"replica needs a core of its own; lower the counts to {cores} in all")
    lines_of: dict[str, list[int]] = {}
    pools: list[PoolSpec] = []
    from kernels.forward import check_executable, layer_dicts

    for i, line in enumerate(dep.replicas):
        where = f"deployment.replicas[{i}]"
        lines_of.setdefault(line.service, []).append(i)
        entry = raw_hw.get(line.hardware)
        origin = entry.get("from") if isinstance(entry, dict) else None
        if origin != THIS_MACHINE:
            fail(f"hardware.{line.hardware}", f"validate serves on this machine only, and {line.hardware!r} is "
                 f"{'from ' + repr(origin) if origin else 'defined inline'}; use `{{from: {THIS_MACHINE}}}`")
        svc = scenario.services[line.service]
        model = scenario.models[svc.model]
        if is_llm(model):
            llm = _llm_pool(i, line, svc, model, scenario.hardware[line.hardware], fail)
            if llm is not None:
                pools.append(llm)
            continue
        if svc.service_time is not None:
            fail(f"services.{line.service}.service_time",
                 "validate runs the model's real forward pass; remove the `service_time` override")
        variant = model.variants[line.variant]
        layers = layer_dicts(variant.layers or model.layers)
        try:
            check_executable(layers)
        except ValueError as exc:
            fail(f"models.{svc.model}", f"validate cannot run this model here: {exc}")
            continue
        if variant.precision not in RUNNABLE_PRECISIONS:
            fail(f"models.{svc.model}.variants.{line.variant}.precision",
                 f"the kernels runner has {', '.join(RUNNABLE_PRECISIONS)} paths, not {variant.precision}")
        dense = [layer for layer in layers if layer["op"] == "dense"]
        if not dense:
            fail(f"models.{svc.model}.layers", "validate needs at least one dense layer (the input size)")
            continue
        pay = svc.payload
        codec = pay.codec if pay is not None and pay.codec != "none" else None
        pools.append(PoolSpec(
            index=i, service=line.service, site=line.site, hardware=line.hardware, variant=line.variant,
            layers=layers, precision=variant.precision, count=line.count, max_batch=svc.batching.max_batch,
            max_wait_ms=svc.batching.max_wait_ms, features=int(dense[0]["in"]), input_bytes=model.input_bytes,
            output_bytes=model.output_bytes, codec=codec, level=pay.level if pay is not None else 0,
            data=pay.data if pay is not None else "float32-rows"))
    kinds = {isinstance(p, LLMPoolSpec) for p in pools}
    if len(kinds) > 1:
        fail("deployment.replicas", "validate serves LLM services (kind: llm) and other services in separate "
                                    "runs: validate them one scenario at a time")
    for name, idx in lines_of.items():
        if len(idx) > 1:
            fail(f"deployment.replicas[{idx[1]}]", f"validate serves one pool per service, and {name!r} has "
                 f"{len(idx)} (lines {', '.join(map(str, idx))}); merge them or validate them one at a time")
    seed = scenario.seed if seed is None else seed
    h = scenario.horizon
    topo = Topology(scenario)
    streams: list[StreamSpec] = []
    directions: dict[str, dict[str, float]] = {}
    by_service = {p.service: p for p in pools}
    for name, svc in scenario.services.items():
        pool = by_service.get(name)
        for d_i, demand in enumerate(svc.demand):
            if pool is None:
                continue
            route = topo.route(demand.site, pool.site)
            if route is None:
                fail(f"services.{name}.demand[{d_i}]", f"no route from {demand.site} to {pool.site}")
                continue
            if isinstance(pool, LLMPoolSpec) and route.hops:
                fail(f"services.{name}.demand[{d_i}]", f"validate serves LLM services from their pool's own site "
                     f"for now ({demand.site} reaches {pool.site} over links)")
                continue
            for hop in route.hops:
                link = scenario.links[hop.link_index]
                if link.sharing != "fifo":
                    fail(f"links[{hop.link_index}].sharing", "validate emulates FIFO links only")
                for a, b in ((hop.src, hop.dst), (hop.dst, hop.src)):
                    directions[direction_key(hop.link_index, a, b)] = {
                        "bandwidth_bps": link.bandwidth_gbps * 1e9, "latency_s": link.latency_ms / 1e3}
            times = []
            for t in arrival_times(demand, stream(seed, f"arrivals/{name}/{d_i}")):
                if t >= h.duration_s:
                    break
                times.append(t)
            streams.append(StreamSpec(name, d_i, demand.site, pool.index, _keys(route), _keys(route.reverse()),
                                      tuple(times)))
    if problems:
        raise ScenarioError.of(problems)
    streams = _with_tokens(scenario, streams, seed)
    return RunSpec(tuple(pools), tuple(streams), directions, seed, h.duration_s, h.warmup_s, h.drain_s)


def _with_tokens(scenario: Scenario, streams: list[StreamSpec], seed: int) -> list[StreamSpec]:
    """LLM streams with each arrival's (prompt, output) tokens as the simulator draws them.

    The simulator keeps one token source per (service, demand site), seeded from the stream
    `tokens/{service}/{d}` of the site's first demand line d, and draws from it as requests arrive
    there: the lines of one site in their merged time order.
    """
    out = list(streams)
    groups: dict[tuple[str, str], list[int]] = {}
    for j, s in enumerate(streams):
        if is_llm(scenario.models[scenario.services[s.service].model]):
            groups.setdefault((s.service, s.site), []).append(j)
    for (name, site), idx in groups.items():
        svc = scenario.services[name]
        first = next(d for d, dem in enumerate(svc.demand) if dem.site == site)
        assert svc.tokens is not None
        source = TokenSource(svc.tokens, stream(seed, f"tokens/{name}/{first}"))
        order = sorted((t, streams[j].index, j, k) for j in idx for k, t in enumerate(streams[j].times))
        drawn: dict[int, list[tuple[int, int]]] = {j: [] for j in idx}
        for _, _, j, _ in order:
            drawn[j].append(source())
        for j in idx:
            out[j] = StreamSpec(**{**streams[j].__dict__, "tokens": tuple(drawn[j])})
    return out
