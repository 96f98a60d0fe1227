"""The LLM half of `validate`: serve `kind: llm` pools for real, then simulate them two ways.

1. One `llm_server` process per LLM pool builds the transformer of `kernels.transformer` and times
   its four decoder GEMMs (QKV, attention output, SwiGLU gate+up, down) at the row counts the
   simulator's iteration-time model reads, one BLAS thread, just before serving.
2. The load generator replays the simulator's own arrivals and token counts (`spec.run_spec`:
   the same seed streams), sends each request's prompt token ids, and records when its first
   token and its last come back. TTFT = first back - creation; TPOT = (last back - first back) /
   (output - 1); end-to-end latency = last back - creation.
3. The forecast: the scenario simulated with an iteration-time model fitted to the engine's own
   iterations, timed in the server on a designed grid of batches just before the load starts
   (`llm_server.profile_iterations`); then with lepton_sim.servicetime.llm's model and the kernel
   profile whose GEMM table is those timings
   (`profile_doc`), everything else (attention, norms, the LM head) as `lepton_sim.servicetime.llm`
   models it on `this-machine`.
4. As served: the scenario simulated with an iteration-time model fitted to the iterations the
   server ran (`FittedIterationModel`: least squares, non-negative, of each iteration's seconds on
   1, tokens, samples, attention pairs and KV tokens read), which leaves the scheduler model (and
   the harness) alone to blame.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from lepton_sim.validation import cores, wire
from lepton_sim.validation.spec import LLMPoolSpec, RunSpec, StreamSpec

FIT_TERMS = ("1", "G(tokens)", "tokens", "samples", "attn_pairs", "kv_tokens")


def gemm_rows(pool: LLMPoolSpec) -> list[int]:
    """The row counts `servicetime.llm._measured_gemm` evaluates the profile at: powers of two and the top."""
    top = pool.max_tokens
    return sorted({2 ** i for i in range(top.bit_length()) if 2 ** i <= top} | {1, top})


def server_config(pool: LLMPoolSpec, seed: int, where: dict[str, Any] | None = None) -> dict[str, Any]:
    """The LLM server process's configuration; `where`: its cores (`cores.CorePlan.config`)."""
    return {**(where or {}), "model": pool.model, "seed": seed, "count": pool.count, "max_num_seqs": pool.max_num_seqs,
            "max_batched_tokens": pool.max_batched_tokens, "chunked_prefill": pool.chunked_prefill,
            "block_tokens": pool.block_tokens, "replica_routing": pool.replica_routing,
            "kv_tokens": pool.kv_tokens, "gemm_rows": gemm_rows(pool),
            "longest_prompt": pool.longest_prompt or pool.max_batched_tokens}


def hardware_overrides(ready: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """`this-machine` as one server's BLAS thread measured it just before the run (the slowest server's figures).

    The reference profile's ceilings are the whole machine's (every core); a replica runs on one.
    Its best fp32 GEMM rate and copy bandwidth are achieved rates, so efficiency 1, and its kernel
    overhead a tiny numpy call: what `lepton_sim.servicetime.llm` rooflines attention, norms,
    activations, the embedding and the LM head with.
    """
    ceil = [r["ceilings"] for r in ready.values()]
    gflops = min(c["gemm_gflops_fp32"] for c in ceil)
    gbps = min(c["memory_bandwidth_gbps"] for c in ceil)
    call = max(c["call_overhead_s"] for c in ceil)
    how = "measured by `lepton-sim validate` in the LLM server process just before the run, one BLAS thread"
    return {"peak_tflops": {"fp32": round(gflops / 1e3, 6)}, "memory_bandwidth_gbps": round(gbps, 4),
            "compute_efficiency": 1.0, "memory_efficiency": 1.0, "kernel_overhead_us": round(call * 1e6, 4),
            "sources": {"peak_tflops": f"{how}: a 1024 x 1024 x 1024 fp32 GEMM, best of 5",
                        "memory_bandwidth_gbps": f"{how}: a 64 MiB copy, bytes read plus written, median of 7",
                        "compute_efficiency": "1: the peak is an achieved rate",
                        "memory_efficiency": "1: the bandwidth is an achieved rate",
                        "kernel_overhead_us": f"{how}: a one-element numpy call"}}


def profile_doc(base: dict[str, Any], spec: RunSpec, ready: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The reference profile with its GEMM table replaced by the LLM servers' timings of their model's GEMMs.

    Only those shapes at those row counts: exactly what the iteration-time model looks up, timed
    in the serving process (one BLAS thread) just before the run.
    """
    doc = copy.deepcopy(base)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    doc["created_utc"] = now
    peak = float(doc["ceilings"]["gemm_gflops"]["fp32"])
    rows = []
    for pool in spec.pools:
        if not isinstance(pool, LLMPoolSpec):
            continue
        for g in ready[pool.index]["gemm"]:
            gflops = 2.0 * g["m"] * g["k"] * g["n"] / g["timing"]["median_s"] / 1e9
            rows.append({"precision": "fp32", "m": g["m"], "k": g["k"], "n": g["n"], "timing": g["timing"],
                         "gflops": gflops, "fraction_of_peak": gflops / peak})
    doc["gemm"] = rows
    hw = hardware_overrides(ready)
    doc["ceilings"]["gemm_gflops"]["fp32"] = hw["peak_tflops"]["fp32"] * 1e3
    doc["ceilings"]["memory_bandwidth_gbps"] = hw["memory_bandwidth_gbps"]
    doc["ceilings"]["call_overhead_s"] = hw["kernel_overhead_us"] / 1e6
    doc["notes"] = [f"GEMM table and the fp32 GEMM, copy and call ceilings re-measured by `lepton-sim validate` at "
                    f"{now}: the LLM model's decoder GEMMs as an iteration runs them (every layer's weights in turn), "
                    f"one BLAS thread, in the server process just before serving; the rest is the reference profile "
                    f"of {base['created_utc']}"]
    return doc


# --- the load ------------------------------------------------------------------------------------


@dataclass
class LLMStreamRun:
    spec: StreamSpec
    sock: Any
    vocab: int
    seed: int
    base: int = 0
    created: np.ndarray = field(init=False)
    first: np.ndarray = field(init=False)
    last: np.ndarray = field(init=False)
    lag: np.ndarray = field(init=False)
    dropped: np.ndarray = field(init=False)
    got: int = 0
    done: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        n = len(self.spec.times)
        self.created, self.first, self.last, self.lag = (np.full(n, np.nan) for _ in range(4))
        self.dropped = np.zeros(n, bool)
        if not n:
            self.done.set()

    def send(self, t0: float) -> None:
        from lepton_sim.validation.llm_server import pack_request
        from lepton_sim.validation.run import paced

        rng = np.random.default_rng(self.seed)
        frames = [pack_request(self.base | k, rng.integers(0, self.vocab, p), o)
                  for k, (p, o) in enumerate(self.spec.tokens)]  # built before the clock starts
        sock = self.sock
        try:
            for k in paced(self.spec.times, t0, self.lag, self.created):
                sock.sendall(frames[k])
        except OSError:
            return

    def receive(self) -> None:
        total = len(self.spec.times)
        outputs = [o for _, o in self.spec.tokens]
        try:
            while self.got < total:
                frame = wire.recv_frame(self.sock)
                if frame is None:
                    break
                now = time.perf_counter()
                k = frame[0] & wire.SEQ
                if not frame[1]:  # dropped: it could never fit the KV cache
                    self.dropped[k] = True
                    self.got += 1
                elif math.isnan(self.first[k]):
                    self.first[k] = now
                    if outputs[k] == 1:
                        self.last[k] = now
                        self.got += 1
                else:
                    self.last[k] = now
                    self.got += 1
        except OSError:
            pass
        self.done.set()


# --- metrics -------------------------------------------------------------------------------------


def _summary(values: np.ndarray, thresholds: list[float]) -> Any:
    from lepton_sim.sketch import LatencySummary

    s = LatencySummary(thresholds=thresholds)
    if len(values):
        s.add_many(np.asarray(values, float))
    return s


def measured_metrics(spec: RunSpec, scenario: Any, runs: list[LLMStreamRun], t0: float,
                     stats: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The real run as a metrics object shaped like the simulator's LLM entries (`metrics._llm_entry`)."""
    from lepton_sim.metrics import _llm_entry, _round, _summary_ms
    from lepton_sim.sim.record import LLMServiceTally, ServiceTally

    window = spec.duration_s - spec.warmup_s
    preempt_of: dict[int, int] = {}
    for s in stats.values():
        for rid, *_, pre in s["requests"]:
            preempt_of[int(rid)] = int(pre)
    services: dict[str, Any] = {}
    for name in sorted({r.spec.service for r in runs}):
        svc = scenario.services[name]
        slo = svc.slo
        e2e_thr = [] if slo.latency_ms is None else [slo.latency_ms / 1e3]

        def tally(mine: list[LLMStreamRun]) -> ServiceTally:
            lat, ttft, tpot = [], [], []
            arrived = completed = dropped = met = prompt_tok = out_tok = preempted = 0
            for r in mine:
                counted = np.asarray(r.spec.times) >= spec.warmup_s
                for k in np.flatnonzero(counted):
                    p, o = r.spec.tokens[k]
                    arrived += 1
                    preempted += preempt_of.get(r.base | int(k), 0)
                    if r.dropped[k]:
                        dropped += 1
                        continue
                    if not math.isnan(r.first[k]):
                        ttft.append(r.first[k] - r.created[k])
                    if math.isnan(r.last[k]):
                        continue
                    completed += 1
                    lat.append(r.last[k] - r.created[k])
                    t_pot = (r.last[k] - r.first[k]) / (o - 1) if o > 1 else 0.0
                    if o > 1:
                        tpot.append(t_pot)
                    if r.first[k] - r.created[k] <= slo.ttft.latency_ms / 1e3 and t_pot <= slo.tpot.latency_ms / 1e3:
                        met += 1
                    prompt_tok += p
                    out_tok += o
            llm = LLMServiceTally(_summary(np.asarray(ttft), [slo.ttft.latency_ms / 1e3]),
                                  _summary(np.asarray(tpot), [slo.tpot.latency_ms / 1e3]), met, prompt_tok, out_tok,
                                  preempted)
            return ServiceTally(arrived, completed, dropped, 0, arrived - completed - dropped,
                                _summary(np.asarray(lat), e2e_thr), llm=llm)

        mine = [r for r in runs if r.spec.service == name]
        entry = _llm_entry(tally(mine), slo, window)
        entry["by_site"] = {site: _llm_entry(tally([r for r in mine if r.spec.site == site]), slo, window)
                            for site in sorted({r.spec.site for r in mine})}
        services[name] = entry
    pools = {}
    for pool in spec.pools:
        if not isinstance(pool, LLMPoolSpec):
            continue
        it = iterations(stats[pool.index])
        lo, hi = spec.warmup_s + t0, spec.duration_s + t0
        start, sent = it["sched"], it["sent"]
        busy = float(np.clip(np.minimum(sent, hi) - np.maximum(start, lo), 0, None).sum())
        fwd = float(np.clip(np.minimum(it["end"], hi) - np.maximum(it["start"], lo), 0, None).sum())
        inside = (start >= lo) & (start < hi)
        n_it = int(inside.sum())
        w = np.clip(np.minimum(sent, hi) - np.maximum(start, lo), 0, None)
        pools[pool.id] = {
            "service": pool.service, "replicas": pool.count, "iterations": n_it,
            "utilization": busy / (window * pool.count),
            "utilization_forward": fwd / (window * pool.count),
            "mean_batch": float(it["seqs"][inside].mean()) if n_it else None,
            "batch_tokens_mean": float(it["tokens"][inside].mean()) if n_it else None,
            "running_mean": float((it["running"] * w).sum() / (window * pool.count)),
            "kv_cache_utilization": float((it["kv_blocks"] * w).sum() / (window * pool.count * ready_blocks(pool)))
            if ready_blocks(pool) else None,
            "output_tokens_per_s": float(it["samples"][inside].sum() / window),
            "preempted": int(stats[pool.index]["preempted"]),
            "dropped": int(stats[pool.index]["dropped"]),
            "iteration_ms": _summary_ms(_summary((sent - start)[inside], [])),
        }
    return _round({"services": services, "pools": pools})  # 6 significant digits, as the simulator's metrics


def ready_blocks(pool: LLMPoolSpec) -> int:
    return pool.kv_tokens // pool.block_tokens


def iterations(stats: dict[str, Any]) -> dict[str, np.ndarray]:
    from lepton_sim.validation.llm_server import ITERATION_FIELDS

    rows = np.asarray(stats["iterations"], float).reshape(-1, len(ITERATION_FIELDS))
    return {f: rows[:, i] for i, f in enumerate(ITERATION_FIELDS)}


# --- the iteration-time model as served ---------------------------------------------------------


@dataclass(frozen=True)
class FittedIterationModel:
    """Seconds per iteration fitted to the iterations a real replica ran (non-negative least squares, unweighted).

    seconds = c0 + c1 G(tokens) + c2 tokens + c3 samples + c4 attn_pairs + c5 kv_tokens, where
    G(T) is the decoder GEMMs' time at T rows from the server's own timings (all layers, log-log
    interpolated between the row counts timed: it carries the GEMMs' shape in T, a matrix-vector
    product at T = 1 and packed GEMMs above, which no straight line in T has). Each iteration's
    seconds run from the start of its scheduling to the last response it sent: the replica's whole
    cycle, as the simulator's back-to-back iterations spend it.
    """

    coef: tuple[float, ...]
    gemm_s: tuple[float, ...]  # G(T) for T = 0..max_tokens (index 0 unused)
    rms_rel: float  # root mean square of the relative residuals
    n: int
    source: str = "fitted to the real run"
    basis: str = "the iterations the real server ran on this machine (least squares)"
    fitted_to: str = "served iterations"

    def seconds(self, tokens: int, samples: int, attn_pairs: float, kv_tokens: float) -> float:
        c = self.coef
        return (c[0] + c[1] * self.gemm_s[tokens] + c[2] * tokens + c[3] * samples + c[4] * attn_pairs
                + c[5] * kv_tokens)

    @property
    def detail(self) -> str:
        terms = " + ".join(f"{c:.4g} x G(tokens)" if t == "G(tokens)" else
                           (f"{c * 1e6:.4g} us" if t == "1" else f"{c * 1e6:.4g} us x {t}")
                           for c, t in zip(self.coef, FIT_TERMS))
        return (f"iteration seconds = {terms}, G = the decoder GEMMs as timed before the run (non-negative least "
                f"squares over {self.n} {self.fitted_to}, rms relative residual {self.rms_rel:.1%})")

    def as_dict(self) -> dict[str, Any]:
        return {"terms": list(FIT_TERMS), "coef": list(self.coef), "n": self.n, "rms_relative_residual": self.rms_rel,
                "detail": self.detail}


def gemm_curve(gemm: list[dict[str, Any]], layers: int, top: int) -> np.ndarray:
    """G(T), T = 0..top: the sum of the decoder GEMMs' timed medians at T rows, times layers, log-log interpolated."""
    by_m: dict[int, float] = {}
    for g in gemm:
        by_m[int(g["m"])] = by_m.get(int(g["m"]), 0.0) + float(g["timing"]["median_s"])
    ms = np.array(sorted(by_m), float)
    ts = np.array([by_m[int(m)] for m in ms])
    t = np.arange(0, top + 1, dtype=float)
    out = np.exp(np.interp(np.log(np.maximum(t, 1.0)), np.log(ms), np.log(ts))) * layers
    return np.asarray(np.maximum.accumulate(out))


def profiled_model(ready: dict[str, Any], pool: LLMPoolSpec) -> FittedIterationModel:
    """The forecast's iteration-time model: fitted to the iterations the server timed before serving
    (`llm_server.profile_iterations`), nothing of the run itself."""
    m = fit_iterations({"iterations": ready["iteration_profile"]}, ready["gemm"], pool)
    return dataclasses.replace(m, source="measured before the run",
                               basis="the engine's iterations timed on this machine just before the run (least squares)",
                               fitted_to="iterations timed before the run (a designed grid)")


def fit_iterations(stats: dict[str, Any], gemm: list[dict[str, Any]], pool: LLMPoolSpec) -> FittedIterationModel:
    from scipy.optimize import nnls

    it = iterations(stats)
    y = it["sent"] - it["sched"]
    g = gemm_curve(gemm, pool.model["layers"], pool.max_tokens)
    x = np.column_stack([np.ones_like(y), g[it["tokens"].astype(int)], it["tokens"], it["samples"],
                         it["attn_pairs"], it["kv_tokens"]])
    if len(y) < 2 * x.shape[1]:  # too few iterations to fit: the GEMMs as timed alone
        return FittedIterationModel((0.0, 1.0, 0.0, 0.0, 0.0, 0.0), tuple(float(v) for v in g), float("nan"), len(y))
    # Ordinary (absolute) least squares: it keeps the iterations' total time, which queueing and
    # TPOT (a sum of decode iterations) turn into latency; weighting rows by 1 / seconds would fit
    # the short steps relatively better but bias every sum low when the times are noisy.
    scale = np.maximum(np.abs(x).max(axis=0), 1e-12)
    coef, _ = nnls(x / scale, y)
    coef = coef / scale
    rel = (x @ coef - y) / y
    return FittedIterationModel(tuple(float(c) for c in coef), tuple(float(v) for v in g),
                                float(np.sqrt(np.mean(rel ** 2))), len(y))


def simulation_with(scenario: Any, seed: int, models: dict[int, Any]) -> Any:
    """A `Simulation` of `scenario` whose LLM pools take their iteration times from `models` (by pool index).

    Only the iteration-time model changes: each pool is built by the simulator's public
    `LLMPool(sim, index, line, svc, model, kv_tokens, window)` with the KV capacity the simulator
    itself gives it (`llm_replica_model(...).kv_capacity_tokens`).
    """
    from lepton_sim.servicetime.llm import llm_replica_model
    from lepton_sim.sim import Simulation
    from lepton_sim.sim.llm import LLMPool

    class Served(Simulation):
        def _make_pool(self, i: int, line: Any, batch_times_fn: Any) -> Any:
            if i not in models:
                return super()._make_pool(i, line, batch_times_fn)
            svc = self.scenario.services[line.service]
            model = self.scenario.models[svc.model]
            sched = svc.scheduler_or_default
            hw = self.scenario.hardware[line.hardware]
            m = llm_replica_model(model, model.variants[line.variant], hw, line.tensor_parallel,
                                  sched.max_batched_tokens + sched.max_num_seqs, max_seqs=sched.max_num_seqs)
            kv = m.kv_capacity_tokens(hw.memory_gb, sched.gpu_memory_utilization)
            return LLMPool(self, i, line, svc, models[i], kv, model.sliding_window)

    return Served(scenario, seed)


# --- the comparison ------------------------------------------------------------------------------

FIGURES = ("ttft_ms", "tpot_ms", "latency_ms")
KEYS = ("mean", "p50", "p90", "p99")


def errors(m: dict[str, Any], s: dict[str, Any], figure: str) -> dict[str, float | None]:
    out = {}
    for k in KEYS:
        a, b = m[figure][k], s[figure][k]
        out[k] = b / a - 1 if a and b is not None else None
    return out


def side(e: dict[str, Any]) -> dict[str, Any]:
    return {"completed": e["completed"], "arrived": e["arrived"], "slo_attainment": e["slo_attainment"],
            "throughput_rps": e["throughput_rps"], "output_tokens_per_s": e["output_tokens_per_s"],
            "preempted": e["preempted"], **{f: {k: e[f][k] for k in KEYS} for f in FIGURES}}


def compare_service(name: str, measured: dict[str, Any], simulated: dict[str, Any],
                    served: dict[str, Any] | None, fits: dict[str, Any], ttft_ms: Any = None,
                    others: dict[str, Any] | None = None) -> dict[str, Any]:
    """validation.json's entry of an LLM service: `error` is the end-to-end latency's (as for every
    service), `error_ttft` / `error_tpot` the token figures'; the same with `_as_served`, and with
    `_NAME` for each of `others` (``llm_model``: lepton_sim.servicetime.llm's iteration model with
    the GEMM timings). `ttft_ms`: the measured TTFTs (for their minimum)."""
    m, s = measured["services"][name], simulated["services"][name]
    pools_m = {pid: p for pid, p in measured["pools"].items() if p["service"] == name}
    out: dict[str, Any] = {
        "kind": "llm", "measured": side(m), "simulated": side(s),
        "error": errors(m, s, "latency_ms"), "error_ttft": errors(m, s, "ttft_ms"), "error_tpot": errors(m, s, "tpot_ms"),
        "utilization": {pid: {"measured": p["utilization"], "simulated": simulated["pools"][pid]["utilization"]}
                        for pid, p in pools_m.items() if pid in simulated["pools"]},
        "iterations": {pid: {"measured": p["iterations"], "simulated": simulated["pools"][pid]["iterations"],
                             "mean_batch_measured": p["mean_batch"],
                             "mean_batch_simulated": simulated["pools"][pid]["mean_batch"]}
                       for pid, p in pools_m.items() if pid in simulated["pools"]},
        "forward_pass": {},
        "iteration_fit": {pid: fits[pid] for pid in pools_m if pid in fits},
        "measured_ttft_min_ms": float(np.min(ttft_ms)) if ttft_ms is not None and len(ttft_ms) else None,
    }
    for sfx, doc in (("as_served", served), *((k, v) for k, v in (others or {}).items())):
        if doc is None:
            continue
        e = doc["services"][name]
        out[f"simulated_{sfx}"] = side(e)
        out[f"error_{sfx}"] = errors(m, e, "latency_ms")
        out[f"error_ttft_{sfx}"] = errors(m, e, "ttft_ms")
        out[f"error_tpot_{sfx}"] = errors(m, e, "tpot_ms")
    return out


def is_llm_spec(spec: RunSpec) -> bool:
    return any(isinstance(p, LLMPoolSpec) for p in spec.pools)


# --- the whole LLM validation --------------------------------------------------------------------


def serve(spec: RunSpec, scenario: Any, progress: Any, shared: bool = False) -> tuple[dict[str, Any], dict[int, dict[str, Any]],
                                                                dict[int, dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """The real half: the LLM servers, the load, stop; measured metrics, ready lines, final stats, overheads."""
    from lepton_sim.validation.run import Child, _stats_ms, drive, loopback_rtt_ms

    children: list[Any] = []
    runs: list[LLMStreamRun] = []
    plan = cores.plan([p.count for p in spec.pools], shared=shared)
    progress(plan.describe())
    try:
        servers: dict[int, Any] = {}
        for i, pool in enumerate(spec.pools):
            assert isinstance(pool, LLMPoolSpec)
            progress(f"starting {pool.id}: building the transformer, timing its GEMMs at {len(gemm_rows(pool))} "
                     f"row counts")
            servers[pool.index] = Child("lepton_sim.validation.llm_server", server_config(pool, spec.seed, plan.config(i)),
                                        f"LLM server {pool.id}")
            children.append(servers[pool.index])
        ready = {i: c.ready for i, c in servers.items()}
        ports = {i: int(c.ready["port"]) for i, c in servers.items()}
        with cores.harness(plan):  # pings and generator threads on the harness's cores
            rtt = [x for port in ports.values() for x in loopback_rtt_ms(port)]
            pools = {p.index: p for p in spec.pools}
            for n, s in enumerate(spec.streams):
                p = pools[s.pool]
                assert isinstance(p, LLMPoolSpec)
                runs.append(LLMStreamRun(s, wire.connect(ports[s.pool]), p.model["vocab"], spec.seed * 1000 + n,
                                         base=(n + 1) << wire.STREAM_SHIFT))
            t0 = drive(runs, spec, progress, "LLM requests")
            stats = {i: c.finish() for i, c in servers.items()}
    finally:
        for r in runs:
            r.sock.close()
        for c in children:
            c.kill()
    measured = measured_metrics(spec, scenario, runs, t0, stats)
    ttft: dict[str, list[float]] = {}
    for r in runs:
        counted = np.asarray(r.spec.times) >= spec.warmup_s
        got = counted & ~np.isnan(r.first)
        ttft.setdefault(r.spec.service, []).extend(((r.first - r.created)[got] * 1e3).tolist())
    measured["_ttft_ms"] = {k: np.asarray(v) for k, v in ttft.items()}
    measured["_t0"] = t0
    lag = np.concatenate([r.lag[~np.isnan(r.lag)] for r in runs]) if runs else np.zeros(0)
    up = []
    by_base = {r.base >> wire.STREAM_SHIFT: r for r in runs}
    for s in stats.values():
        for rid, t_enq, *_ in s["requests"]:
            r = by_base.get(int(rid) >> wire.STREAM_SHIFT)
            if r is not None and not np.isnan(r.created[int(rid) & wire.SEQ]):
                up.append(t_enq - r.created[int(rid) & wire.SEQ])
    handling = []
    for s in stats.values():
        it = iterations(s)
        handling += list((it["sent"] - it["sched"]) - (it["end"] - it["start"]))
    overhead = {"loopback_round_trip": _stats_ms(np.asarray(rtt) / 1e3), "send_lateness": _stats_ms(lag),
                "direct_path_to_queue": _stats_ms(up), "server_iteration_handling": _stats_ms(handling)}
    placement = {**plan.as_dict(), "describe": plan.describe(),
                 "worker_cores_seen": {p.id: stats[p.index].get("worker_cores") for p in spec.pools}}
    return measured, ready, stats, overhead, placement


def validate(scenario: Any, raw: dict[str, Any], file: str, base_dir: Any, spec: RunSpec, horizon: dict[str, float],
             progress: Any, shared: bool = False) -> Any:
    """Serve the LLM pools for real, simulate with the GEMMs just timed, then with the iterations as served."""
    import json

    from lepton_sim.profiles import reference_profile_path
    from lepton_sim.validation.run import Outcome, simulate

    t_start = time.perf_counter()
    measured, ready, stats, overhead, placement = serve(spec, scenario, progress, shared)
    ttft = measured.pop("_ttft_ms")
    t0 = measured.pop("_t0")
    base = json.loads(reference_profile_path().read_text(encoding="utf-8"))
    profile = profile_doc(base, spec, ready)
    hw = hardware_overrides(ready)
    llm_pools = [p for p in spec.pools if isinstance(p, LLMPoolSpec)]
    profiled = {p.index: profiled_model(ready[p.index], p) for p in llm_pools}
    progress("simulating the same scenario with the iterations timed before the run")
    simulated, _ = simulate(raw, file, base_dir, spec, profile, horizon, models=profiled, hardware=hw)
    progress("simulating it with the LLM iteration model of lepton_sim.servicetime.llm and the GEMM timings")
    gemm_model, _ = simulate(raw, file, base_dir, spec, profile, horizon, hardware=hw)
    fitted = {p.index: fit_iterations(stats[p.index], ready[p.index]["gemm"], p) for p in llm_pools}
    progress("simulating it again with an iteration-time model fitted to the iterations as served")
    served, _ = simulate(raw, file, base_dir, spec, profile, horizon, models=fitted, hardware=hw)
    fits = {p.id: {**fitted[p.index].as_dict(), "before_run": profiled[p.index].as_dict()} for p in spec.pools}
    from lepton_sim.validation.llm_server import ITERATION_FIELDS

    files = {"iterations.json": {
        "fields": list(ITERATION_FIELDS),
        "clock": "time.perf_counter seconds, from the start of the arrivals",
        "pools": {p.id: [[round(v - t0, 7) if i < 4 else v for i, v in enumerate(row)]
                         for row in stats[p.index]["iterations"]] for p in spec.pools},
        "request_fields": ["stream", "index", "enqueued", "first_sent", "last_sent", "preemptions"],
        "requests": {p.id: [[int(r[0]) >> wire.STREAM_SHIFT, int(r[0]) & wire.SEQ,
                             *(round(x - t0, 7) for x in r[1:4]), r[4]] for r in stats[p.index]["requests"]]
                     for p in spec.pools}}}
    return Outcome(spec, measured, simulated, profile, served, overhead, ttft, {}, time.perf_counter() - t_start,
                   fits=fits, files=files, simulated_other={"llm_model": gemm_model}, cores=placement)
