"""Run a scenario for real on this machine, then simulate it with what the run's servers measured.

`validate(scenario, raw, file)` is the whole comparison:

1. `spec.run_spec` plans the harness, or says why the scenario cannot run here.
2. One server process per pool starts and times its forward pass at every batch size the pool can
   form (one BLAS thread, just before serving: the profile the simulation reads is this machine now),
   on the core its first worker will serve on (`cores.plan`: when a core is left for the harness,
   each worker has one of its own and the harness's threads run on the rest).
3. Payloads are built from the service's data kind; with a codec, its ratio and speeds are
   measured on exactly those payloads.
4. A shaper process carries every route that crosses links. A rehearsal of null requests through
   each server's queue and a worker (`rehearse`) times the harness's own hop; then the load
   generator sends each stream's arrivals at their real times and records each response's arrival.
5. The scenario is simulated with a profile holding those timings and codec figures (`profile`),
   same seed, same horizon, the harness's hop as a link from each demand site's client
   (`with_client_path`); both sides become metrics objects of the same shape, compared.
6. It is simulated again as served: each batch's time drawn from what the run's own batches of
   its size cost, from the worker's previous response sent (or, after idle, from when the batch
   was due: its wake-up too) to its last response sent (`served_samples`), taken around the same
   time of the run; the codec's times, the harness's hop and the shaper's lateness as the run
   measured them. That isolates the simulator's queueing, batching and network model from the
   kernel profile's error and from the host's drift during the run.

Nothing is subtracted from the measured latencies: the harness's own costs (the generator's send
lateness, the shaper's sleep overshoot, the server's per-batch handling besides the forward pass,
an idle worker's wake-up, a loopback round trip) are measured and reported beside them in
`overhead_ms`.
"""
from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lepton_sim.errors import RunError
from lepton_sim.validation import cores, wire
from lepton_sim.validation.spec import PoolSpec, RunSpec, StreamSpec

N_PAYLOADS = 64  # distinct payloads per pool, used in turn
PINGS = 200
REHEARSALS = 200  # null requests per server before the load, one every REHEARSAL_GAP_S
REHEARSAL_GAP_S = 0.004
SIZING_S = 60.0  # simulated seconds at least of each `--utilisation` sizing run
Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


# --- processes ------------------------------------------------------------------------------


class Child:
    """A harness process: configuration on stdin, a ready line and a final line on stdout."""

    def __init__(self, module: str, cfg: dict[str, Any], what: str) -> None:
        self.what = what
        self.proc = subprocess.Popen([sys.executable, "-m", module], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cfg) + "\n")
        self.proc.stdin.flush()
        self.ready = self._line()

    def _line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr is not None else ""
            self.proc.kill()
            tail = err.strip().splitlines()[-1] if err.strip() else f"exit code {self.proc.wait()}"
            raise RunError(f"the {self.what} process stopped: {tail}")
        out: dict[str, Any] = json.loads(line)
        return out

    def finish(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            return self._line()
        finally:
            self.proc.wait(timeout=30)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def time_batches(pool: PoolSpec) -> list[int]:
    """Batch sizes the server times: every one up to 16, then doubling, and the largest."""
    sizes = list(range(1, min(pool.max_batch, 16) + 1))
    b = 32
    while b < pool.max_batch:
        sizes.append(b)
        b *= 2
    if pool.max_batch not in sizes:
        sizes.append(pool.max_batch)
    return sizes


def server_config(pool: PoolSpec, seed: int, where: dict[str, Any] | None = None) -> dict[str, Any]:
    """The server process's configuration; `where`: its cores (`cores.CorePlan.config`)."""
    return {**(where or {}), "layers": pool.layers, "precision": pool.precision, "seed": seed, "features": pool.features,
            "input_bytes": pool.input_bytes, "output_bytes": pool.output_bytes, "max_batch": pool.max_batch,
            "max_wait_ms": pool.max_wait_ms, "count": pool.count, "codec": pool.codec,
            "time_batches": time_batches(pool)}


# --- payloads ---------------------------------------------------------------------------------


def _sample(kind: str, rng: np.random.Generator) -> bytes:
    """Bytes of one data kind (the ones `kernels measure` measures codecs on)."""
    from kernels import codecs, digits

    if kind == "text":
        return codecs.source_text(1 << 20)
    images = digits.load_data().images_uint8
    if kind == "uint8-images":
        return images.tobytes()
    if kind == "float32-activations":
        flat = images.reshape(len(images), -1).astype(np.float32) / 16.0
        w = (rng.standard_normal((flat.shape[1], 128)) * math.sqrt(2.0 / flat.shape[1])).astype(np.float32)
        return np.maximum(flat @ w, 0).astype(np.float32).tobytes()
    return rng.standard_normal(1 << 16).astype(np.float32).tobytes()  # float32 rows: the model's input


def payloads(pool: PoolSpec, seed: int) -> list[bytes]:
    """N_PAYLOADS request bodies of `input_bytes` each, cut in turn from the data kind (tiled as needed)."""
    rng = np.random.default_rng(seed)
    sample = _sample(pool.data, rng)
    n = pool.input_bytes
    tiled = sample * (-(-(len(sample) + n) // len(sample)))  # every offset below len(sample) has n bytes after it
    return [tiled[(k * n) % len(sample):][:n] for k in range(N_PAYLOADS)]


def codec_run(pool: PoolSpec, bodies: list[bytes]) -> dict[str, Any]:
    """The codec's ratio and per-payload compress and decompress times on these payloads (a profile codec run)."""
    from kernels.codecs import compress, decompress
    from kernels.timing import TimingPolicy, time_call

    assert pool.codec is not None
    policy = TimingPolicy(warmup=2, repeats=5, min_sample_s=1e-3, budget_s=0.2, min_repeats=3)
    packed = [compress(pool.codec, pool.level, b) for b in bodies]
    tc = [time_call(lambda b=b: compress(pool.codec, pool.level, b), policy).median_s for b in bodies]  # type: ignore[arg-type]
    td = [time_call(lambda p=p: decompress(pool.codec, p), policy).median_s for p in packed]  # type: ignore[arg-type]
    total_in, total_out = sum(map(len, bodies)), sum(map(len, packed))

    def timing(xs: list[float]) -> dict[str, Any]:
        q1, med, q3 = np.quantile(xs, [0.25, 0.5, 0.75])
        return {"median_s": float(np.mean(xs)), "q1_s": float(min(q1, np.mean(xs))),
                "q3_s": float(max(q3, np.mean(xs))), "repeats": len(xs), "inner": 1}

    c, d = timing(tc), timing(td)
    return {"codec": pool.codec, "level": pool.level, "data_kind": pool.data, "input_bytes": pool.input_bytes,
            "compressed_bytes": max(1, round(pool.input_bytes * total_out / total_in)),
            "ratio": total_in / total_out, "compress": c, "decompress": d,
            "compress_mb_s": pool.input_bytes / c["median_s"] / 1e6,
            "decompress_mb_s": pool.input_bytes / d["median_s"] / 1e6}


# --- the load ------------------------------------------------------------------------------


@dataclass
class StreamRun:
    spec: StreamSpec
    sock: Any
    bodies: list[bytes]
    codec: str | None
    level: int
    recv: np.ndarray = field(init=False)
    lag: np.ndarray = field(init=False)
    created: np.ndarray = field(init=False)
    compress_s: np.ndarray = field(init=False)  # each request's compression in the generator, with a codec
    base: int = 0  # the stream's number in the high bits of its request ids
    got: int = 0
    done: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.recv = np.full(len(self.spec.times), np.nan)
        self.lag = np.full(len(self.spec.times), np.nan)
        self.created = np.full(len(self.spec.times), np.nan)
        self.compress_s = np.full(len(self.spec.times), np.nan)
        if not self.spec.times:
            self.done.set()

    def send(self, t0: float) -> None:
        from kernels.codecs import compress

        sock, bodies, n = self.sock, self.bodies, len(self.bodies)
        try:
            for k in paced(self.spec.times, t0, self.lag, self.created):
                body = bodies[k % n]
                if self.codec is not None:
                    tc = time.perf_counter()
                    body = compress(self.codec, self.level, body)
                    self.compress_s[k] = time.perf_counter() - tc
                sock.sendall(wire.pack(self.base | k, body))
        except OSError:
            return

    def receive(self) -> None:
        total = len(self.spec.times)
        try:
            while self.got < total:
                frame = wire.recv_frame(self.sock)
                if frame is None:
                    break
                self.recv[frame[0] & wire.SEQ] = time.perf_counter()
                self.got += 1
        except OSError:
            pass
        self.done.set()


def _open(stream: StreamSpec, ports: dict[int, int], shaper_port: int | None) -> Any:
    if stream.there:
        assert shaper_port is not None
        sock = wire.connect(shaper_port)
        sock.sendall(wire.pack(0, stream.name.encode()))
        return sock
    return wire.connect(ports[stream.pool])


def rehearse(port: int, n: int = REHEARSALS, gap_s: float = REHEARSAL_GAP_S) -> tuple[np.ndarray, np.ndarray]:
    """Send n null requests (stream `wire.REHEARSAL`) one every gap_s from a sender thread, receive
    them in this one, as a stream's two threads do: each one's creation and arrival-back times."""
    sock = wire.connect(port)
    created, back = np.full(n, np.nan), np.full(n, np.nan)

    def send() -> None:
        t0 = time.perf_counter() + 0.02
        for k in range(n):
            left = t0 + k * gap_s - time.perf_counter()
            if left > 0:
                time.sleep(left)
            created[k] = time.perf_counter()
            sock.sendall(wire.pack(k, b""))

    th = threading.Thread(target=send, daemon=True)
    th.start()
    try:
        for _ in range(n):
            frame = wire.recv_frame(sock)
            if frame is None:
                break
            back[frame[0] & wire.SEQ] = time.perf_counter()
    finally:
        th.join()
        sock.close()
    return created, back


def client_path(rehearsals: dict[int, tuple[np.ndarray, np.ndarray]], stats: dict[int, dict[str, Any]]
                ) -> dict[str, Any] | None:
    """The harness's own hop between the load generator and a server, from the rehearsal before the load:
    creation to the server's queue and response sent to its arrival back, per null request; the
    simulations model it as a link of one-way latency (median up + median down) / 2 from every
    demand site's client (`with_client_path`)."""
    up, down = [], []
    for i, (created, back) in rehearsals.items():
        for rid, t_enq, _, t_sent in stats[i].get("rehearsal", []):
            k = int(rid) & wire.SEQ
            up.append(t_enq - created[k])
            down.append(back[k] - t_sent)
    up_a, down_a = np.asarray(up), np.asarray(down)
    up_a, down_a = up_a[~np.isnan(up_a)], down_a[~np.isnan(down_a)]
    if not len(up_a) or not len(down_a):
        return None
    one_way = (float(np.median(up_a)) + float(np.median(down_a))) / 2
    handled = [(done - take) / size for i in rehearsals for take, done, size in stats[i].get("rehearsal_batches", [])]
    handling = {"handling_ms": round(float(np.median(handled)) * 1e3, 6), "handling": _stats_ms(handled)} if handled else {}
    return {"one_way_ms": round(one_way * 1e3, 6), "to_queue": _stats_ms(up_a), "back": _stats_ms(down_a), **handling,
            "basis": f"the forecast: {len(up_a)} null requests before the load, one every {REHEARSAL_GAP_S * 1e3:g} ms "
                     "per server, through the queue and a worker without a forward pass, (median to the queue + "
                     "median back) / 2; as served: the same medians of the run's own requests on routes without "
                     "links, where it has any; simulated as a link from each demand site's client to the site; "
                     "the forecast's batches also take handling_ms per request, the median time a worker took "
                     "from a null batch to its response sent (the server's handling around the forward pass)"}


def loopback_rtt_ms(port: int, n: int = PINGS) -> list[float]:
    """Round trips of an empty frame to a server and back (no queue, no model): the harness's floor."""
    sock = wire.connect(port)
    out = []
    try:
        for i in range(n):
            t = time.perf_counter()
            sock.sendall(wire.pack(wire.PING | (i + 2), b""))
            wire.recv_frame(sock)
            out.append((time.perf_counter() - t) * 1e3)
    finally:
        sock.close()
    return out


# --- the comparison -----------------------------------------------------------------------------


@dataclass
class Outcome:
    """Everything `validate` found; the CLI prints it and writes it."""

    spec: RunSpec
    measured: dict[str, Any]
    simulated: dict[str, Any]
    profile: dict[str, Any]
    simulated_as_served: dict[str, Any]
    overhead_ms: dict[str, Any]
    latencies_ms: dict[str, np.ndarray]  # measured, per service, counted requests that completed
    simulated_cdf: dict[str, tuple[list[float], list[float]]]  # per service: latency ms, probability
    wall_s: float
    fits: dict[str, Any] = field(default_factory=dict)  # LLM pools: the iteration-time model fitted as served
    files: dict[str, Any] = field(default_factory=dict)  # further JSON files for --out (name -> document)
    simulated_other: dict[str, Any] = field(default_factory=dict)  # LLM: further simulations, by name
    cores: dict[str, Any] = field(default_factory=dict)  # where the run's threads ran (`cores.CorePlan`)
    client_path: dict[str, Any] = field(default_factory=dict)  # the harness's hop as simulated (`client_path`)
    after_run: dict[str, Any] = field(default_factory=dict)  # per pool id: forward timings after the load
    forward_profile: dict[str, Any] = field(default_factory=dict)  # `profile` without the server's handling


def profile_doc(base: dict[str, Any], spec: RunSpec, timings: dict[int, dict[str, Any]],
                codecs: list[dict[str, Any]]) -> dict[str, Any]:
    """The reference profile with its whole-model runs and codec runs replaced by what this run measured."""
    doc = copy.deepcopy(base)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    doc["created_utc"] = now
    models = []
    for pool in spec.pools:
        t = timings[pool.index]
        models.append({
            "model": pool.service, "variant": pool.variant, "precision": pool.precision, "layers": pool.layers,
            "weight_bytes": int(t["weight_bytes"]),
            "batches": [{"batch": int(b), "timing": v} for b, v in sorted(t["timings"].items(), key=lambda kv: int(kv[0]))],
            "after_idle": t.get("after_idle", [])})
    doc["models"] = models
    if codecs:
        doc["codecs"] = codecs
        kinds = {c["data_kind"] for c in codecs}
        doc["data_kinds"] = [k for k in doc.get("data_kinds", []) if k["name"] in kinds]
    doc["notes"] = [f"models and codecs re-measured by `lepton-sim validate` at {now}, one BLAS thread per replica, "
                    f"in the server processes just before serving; the rest is the reference profile of "
                    f"{base['created_utc']}"]
    return doc


def with_handling(timings: dict[int, dict[str, Any]], handling_s: float) -> dict[int, dict[str, Any]]:
    """The timings with `handling_s` per request added to every batch's time, back to back and after
    idle: the server's own handling around the forward pass (its responses sent), which the
    simulation charges to the batch as the real worker spends it."""
    out = copy.deepcopy(timings)
    for t in out.values():
        for b, v in t["timings"].items():
            for k in ("median_s", "q1_s", "q3_s"):
                v[k] += int(b) * handling_s
        for run in t.get("after_idle") or []:
            for k in ("median_s", "q1_s", "q3_s"):
                run["timing"][k] += int(run["batch"]) * handling_s
    return out


def profile_servers(spec: RunSpec, progress: Progress = _quiet, shared: bool = False) -> dict[int, dict[str, Any]]:
    """Start each pool's server, keep the timings it takes before serving, and stop it (no load)."""
    plan = cores.plan([p.count for p in spec.pools], shared=shared)
    children: list[Child] = []
    try:
        servers = start_servers(spec, plan, children, progress)
        timings = ready_timings(servers)
        for c in children:
            c.finish()
    finally:
        for c in children:
            c.kill()
    return timings


def start_servers(spec: RunSpec, plan: cores.CorePlan, children: list[Child], progress: Progress) -> dict[int, Child]:
    """One server process per pool, each timing its forward pass before it answers (added to `children`)."""
    servers: dict[int, Child] = {}
    for i, pool in enumerate(spec.pools):
        progress(f"starting {pool.id}: timing its forward pass at {len(time_batches(pool))} batch sizes")
        servers[pool.index] = Child("lepton_sim.validation.server", server_config(pool, spec.seed, plan.config(i)),
                                    f"server {pool.id}")
        children.append(servers[pool.index])
    return servers


def ready_timings(servers: dict[int, Child]) -> dict[int, dict[str, Any]]:
    """What each server timed before serving, by pool index."""
    return {i: {"timings": c.ready["timings"], "after_idle": c.ready["after_idle"],
                "weight_bytes": c.ready["weight_bytes"]} for i, c in servers.items()}


def scaled_rates(doc: dict[str, Any], factor: float) -> dict[str, Any]:
    """The scenario document with every demand's `rate_rps` multiplied by `factor`."""
    out = copy.deepcopy(doc)
    for svc in (out.get("services") or {}).values():
        for d in svc.get("demand") or []:
            d["rate_rps"] = round(float(d["rate_rps"]) * factor, 6)
    return out


def scale_to_utilisation(raw: dict[str, Any], file: str, base_dir: Path, spec: RunSpec, horizon: dict[str, float],
                         target: float, progress: Progress = _quiet, shared: bool = False
                         ) -> tuple[dict[str, Any], float, float]:
    """The scenario document with its demand rates scaled by one factor so that its busiest pool's
    simulated utilisation is `target`, with the forward pass timed by the servers on this machine now
    (a first start of them, before the run's own): (document, factor, simulated utilisation).
    Utilisation grows about linearly with the rate; the factor is refined until within 0.005 (the
    closest of eight tries otherwise), each try simulating at least SIZING_S seconds."""
    from lepton_sim.profiles import reference_profile_path

    timings = profile_servers(spec, progress, shared)
    base = json.loads(reference_profile_path().read_text(encoding="utf-8"))
    profile = profile_doc(base, spec, timings, [])
    # at least a minute simulated, so that the utilisation is the rate's, not one short sample path's
    sizing = {**horizon, "duration_s": max(float(horizon["duration_s"]), SIZING_S)}
    sizing["warmup_s"] = float(horizon["warmup_s"]) * sizing["duration_s"] / float(horizon["duration_s"])
    factor, best = 1.0, (math.inf, 1.0, 0.0)
    for _ in range(8):
        metrics, _ = simulate(scaled_rates(raw, factor), file, base_dir, spec, profile, sizing)
        u = max(float(p["utilization"]) for p in metrics["pools"].values())
        best = min(best, (abs(u - target), factor, u))
        if abs(u - target) <= 0.005 or u <= 0:
            break
        factor *= target / u
    _, factor, u = best
    return scaled_rates(raw, factor), factor, u


def as_served(timings: dict[int, dict[str, Any]], measured: dict[str, Any], spec: RunSpec) -> dict[int, dict[str, Any]]:
    """The timings with each batch size's time as the real run's replicas spent on it while serving.

    That is from taking the batch off the queue to the last response sent: the forward pass as it
    ran amid the load, and the server's own handling around it.
    Batch sizes the run never formed keep their profiled time scaled by the nearest served size's
    ratio of served to profiled. Simulating with these isolates the simulator's queueing, batching
    and network model from the kernel profile's error.
    """
    out = {}
    for pool in spec.pools:
        prof = {int(b): v for b, v in timings[pool.index]["timings"].items()}
        served = {int(b): ms / 1e3 for b, ms in measured["pools"][pool.id]["batch_ms_by_batch"].items()}
        ratio = {b: served[b] / prof[b]["median_s"] for b in served if b in prof}
        new = {}
        for b, v in prof.items():
            if b in served:
                s = served[b]
            elif ratio:
                near = min(ratio, key=lambda x: (abs(math.log(x / b)), x))
                s = v["median_s"] * ratio[near]
            else:
                s = v["median_s"]
            new[str(b)] = _flat_timing(s, 1)
        out[pool.index] = {"timings": new, "weight_bytes": timings[pool.index]["weight_bytes"]}
    return out


def served_samples(pool: PoolSpec, stat: dict[str, Any], t0: float, warmup_s: float, duration_s: float
                   ) -> dict[str, dict[int, list[float]]]:
    """What each batch the run's pool took inside the measured window cost its requests, by batch
    size, split by whether its worker sat idle before it ("idle") or took it as it finished the
    last ("hot", `Server.take`). Back to back, from the worker's last response sent for the batch
    before to this one's: the forward pass amid the load, the server's handling, and the worker's
    own time to take the next batch (9 us on average at 80 % utilisation, 1 % of the batch, which
    at that load is what separates the waits of a FIFO queue fed the run's own enqueue times from
    the real ones). After idle, from the moment the batch was due (its first request's enqueue;
    with `max_wait_ms`, that plus the wait, or the enqueue that filled it) to its last response
    sent: the worker's wake-up, then the rest. Seconds; under "hot_at" and "idle_at", when each
    batch was taken (seconds since the run's start, the simulation's clock)."""
    rows = np.asarray(stat.get("batches", []), float).reshape(-1, 5)
    waited = list(stat.get("waited") or [False] * len(rows))
    workers = list(stat.get("workers") or [0] * len(rows))
    last_sent: dict[int, float] = {}  # per worker, its previous batch's last response sent
    prev_sent = []
    for (take, _, _, sent, _), w in zip(rows, workers):  # each worker appends its batches in order
        prev_sent.append(last_sent.get(w, take))
        last_sent[w] = sent
    enq_of: dict[float, list[float]] = {}
    for _, t_enq, t_take, _ in stat.get("requests", []):
        enq_of.setdefault(float(t_take), []).append(float(t_enq))
    out: dict[str, dict[int, list[float]]] = {"hot": {}, "idle": {}, "hot_at": {}, "idle_at": {}}
    wait = pool.max_wait_ms / 1e3
    for (take, _, _, sent, size), idle, before in zip(rows, waited, prev_sent):
        if not warmup_s <= take - t0 < duration_s:
            continue
        cost = sent - take if idle else sent - min(before, take)
        enqs = sorted(enq_of.get(float(take), []))
        if idle and enqs:
            due = enqs[0] if wait <= 0 else min(enqs[0] + wait, enqs[-1] if len(enqs) >= pool.max_batch else math.inf)
            cost += max(0.0, take - due)
        kind = "idle" if idle else "hot"
        out[kind].setdefault(int(size), []).append(float(cost))
        out[kind + "_at"].setdefault(int(size), []).append(float(take - t0))
    return out


def served_codec(run: dict[str, Any], compress_s: Any, decompress_s: Any) -> dict[str, Any]:
    """A codec run (`codec_run`) with its compress and decompress times as the real run spent them:
    the mean over its requests (the generator's compressions, the server's decompressions), where
    it has any; the ratio stays the one measured on the payloads."""
    out = copy.deepcopy(run)
    for key, xs in (("compress", compress_s), ("decompress", decompress_s)):
        xs = np.asarray(list(xs), float)
        if len(xs):
            m = float(xs.mean())
            out[key] = _flat_timing(m, int(len(xs)))
            out[f"{key}_mb_s"] = run["input_bytes"] / m / 1e6
    return out


def with_link_lateness(doc: dict[str, Any], extra_ms: float) -> dict[str, Any]:
    """The scenario document with `extra_ms` more propagation on every link: the shaper's own
    lateness per hop (its serialisation sleep's overshoot and its delivery timer's lateness)."""
    doc = copy.deepcopy(doc)
    for link in doc.get("links") or []:
        if isinstance(link, dict) and isinstance(link.get("latency_ms"), (int, float)):
            link["latency_ms"] = round(float(link["latency_ms"]) + extra_ms, 6)
    return doc


def _flat_timing(s: float, repeats: int) -> dict[str, Any]:
    """A profile timing of `s` seconds per call with no spread (a mean taken as the median)."""
    return {"median_s": s, "q1_s": s, "q3_s": s, "repeats": repeats, "inner": 1}


def _stats_ms(xs: Any) -> dict[str, float] | None:
    a = np.asarray(list(xs), float) * 1e3
    if not len(a):
        return None
    return {"mean": float(a.mean()), "p50": float(np.quantile(a, 0.5)), "p99": float(np.quantile(a, 0.99)),
            "max": float(a.max()), "n": int(len(a))}


def paced(times: Any, t0: float, lag: np.ndarray, created: np.ndarray) -> Any:
    """Each arrival's index at its time (t0 + its offset, slept until), its lateness against that
    time and its creation (the request exists from then: its latency counts from it) noted."""
    for k, t in enumerate(times):
        due = t0 + t
        left = due - time.perf_counter()
        if left > 0:
            time.sleep(left)
        now = time.perf_counter()
        lag[k] = now - due
        created[k] = now
        yield k


def drive(runs: list[Any], spec: RunSpec, progress: Progress, what: str) -> float:
    """Start every stream's sender and receiver half a second from now, serve the run's duration and
    its drain (or until every response is back), close the streams; the start time (t0)."""
    t0 = time.perf_counter() + 0.5
    threads = [threading.Thread(target=r.send, args=(t0,), daemon=True) for r in runs]
    threads += [threading.Thread(target=r.receive, daemon=True) for r in runs]
    for th in threads:
        th.start()
    total = sum(len(s.times) for s in spec.streams)
    progress(f"serving {total} {what} over {spec.duration_s:g} s in real time")
    end = t0 + spec.duration_s + spec.drain_s
    while time.perf_counter() < end and not all(r.done.is_set() for r in runs):
        time.sleep(0.05)
    for r in runs:
        r.sock.close()
    return t0


def measured_metrics(spec: RunSpec, scenario: Any, runs: list[StreamRun], t0: float,
                     batches: dict[int, list[list[float]]]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The real run as a metrics object shaped like the simulator's (services and pools)."""
    window = spec.duration_s - spec.warmup_s
    services: dict[str, Any] = {}
    lat_all: dict[str, np.ndarray] = {}
    for name in {r.spec.service for r in runs}:
        slo = scenario.services[name].slo
        mine = [r for r in runs if r.spec.service == name]
        lats, by_site = [], {}
        for site in sorted({r.spec.site for r in mine}):
            lat_site = []
            arrived = 0
            for r in (r for r in mine if r.spec.site == site):
                created = np.asarray(r.spec.times)
                counted = created >= spec.warmup_s
                arrived += int(counted.sum())
                back = r.recv[counted] - r.created[counted]
                lat_site.append(back[~np.isnan(back)])
            lat = np.concatenate(lat_site) if lat_site else np.zeros(0)
            by_site[site] = _entry(lat, arrived, slo, window)
            lats.append((lat, arrived))
        lat = np.concatenate([x for x, _ in lats]) if lats else np.zeros(0)
        entry = _entry(lat, sum(a for _, a in lats), slo, window)
        entry["by_site"] = by_site
        services[name] = entry
        lat_all[name] = lat * 1e3
    pools = {}
    for pool in spec.pools:
        rows = np.asarray(batches.get(pool.index, []), float).reshape(-1, 5)
        take, f0, f1, sent, size = (rows[:, i] - (t0 if i < 4 else 0) for i in range(5))
        lo, hi = spec.warmup_s, spec.duration_s
        fwd = np.clip(np.minimum(f1, hi) - np.maximum(f0, lo), 0, None).sum()
        held = np.clip(np.minimum(sent, hi) - np.maximum(take, lo), 0, None).sum()
        inside = (take >= lo) & (take < hi)
        sizes = sorted(set(size[inside].astype(int).tolist()))
        served = {b: float((f1 - f0)[inside & (size == b)].mean() * 1e3) for b in sizes}
        held_by_b = {b: float((sent - take)[inside & (size == b)].mean() * 1e3) for b in sizes}
        pools[pool.id] = {"service": pool.service, "replicas": pool.count,
                          "utilization": float(fwd / (window * pool.count)),
                          "utilization_with_handling": float(held / (window * pool.count)),
                          "batches": int(inside.sum()),
                          "mean_batch": float(size[inside].mean()) if inside.any() else None,
                          "forward_ms_by_batch": served, "batch_ms_by_batch": held_by_b}
    return {"services": services, "pools": pools}, lat_all


def _entry(lat_s: np.ndarray, arrived: int, slo: Any, window: float) -> dict[str, Any]:
    n = len(lat_s)
    within = int((lat_s <= slo.latency_ms / 1e3).sum())
    if n:
        qs = np.quantile(lat_s, [0.5, 0.9, 0.95, 0.99, slo.percentile / 100])
        latency = {"mean": float(lat_s.mean() * 1e3), "p50": float(qs[0] * 1e3), "p90": float(qs[1] * 1e3),
                   "p95": float(qs[2] * 1e3), "p99": float(qs[3] * 1e3), "max": float(lat_s.max() * 1e3)}
    else:
        latency = {k: None for k in ("mean", "p50", "p90", "p95", "p99", "max")}
    attainment = within / arrived if arrived else None
    return {"arrived": arrived, "completed": n, "in_flight": arrived - n, "throughput_rps": n / window,
            "latency_ms": latency, "slo_attainment": attainment,
            "slo": {"percentile": slo.percentile, "latency_ms": slo.latency_ms,
                    "latency_at_percentile_ms": float(qs[4] * 1e3) if n else None,
                    "met": attainment is not None and attainment >= slo.percentile / 100}}


def serve(spec: RunSpec, scenario: Any, progress: Progress = _quiet, shared: bool = False) -> tuple[
        dict[str, Any], dict[str, np.ndarray], dict[int, dict[str, Any]], list[dict[str, Any]], dict[str, Any],
        dict[str, Any]]:
    """The real half: start the processes, run the load, stop; measured metrics, timings, codec runs,
    overheads, and where the threads ran (`cores.plan`: replica workers on cores of their own when the
    machine has one to spare for the harness)."""
    children: list[Child] = []
    runs: list[StreamRun] = []
    plan = cores.plan([p.count for p in spec.pools], shared=shared)
    progress(plan.describe())
    try:
        servers = start_servers(spec, plan, children, progress)
        ports = {i: int(c.ready["port"]) for i, c in servers.items()}
        timings = ready_timings(servers)
        # From here on the harness (codec runs, shaper, pings, generator threads) runs on its own cores.
        with cores.harness(plan):
            bodies = {p.index: payloads(p, spec.seed) for p in spec.pools}
            codecs = []
            for p in spec.pools:
                if p.codec is not None:
                    progress(f"measuring {p.codec} level {p.level} on {p.id}'s payloads")
                    codecs.append(codec_run(p, bodies[p.index]))
            shaper = None
            linked = [s for s in spec.streams if s.there]
            if linked:
                routes = {s.name: {"there": list(s.there), "back": list(s.back), "port": ports[s.pool]} for s in linked}
                shaper = Child("lepton_sim.validation.shaper", {"directions": spec.directions, "routes": routes}, "shaper")
                children.append(shaper)
            rtt = [x for port in ports.values() for x in loopback_rtt_ms(port)]
            progress(f"rehearsing the harness's own path: {REHEARSALS} null requests per server")
            rehearsals = {i: rehearse(port) for i, port in ports.items()}
            pools = {p.index: p for p in spec.pools}
            for n, s in enumerate(spec.streams):
                p = pools[s.pool]
                runs.append(StreamRun(s, _open(s, ports, shaper.ready["port"] if shaper else None), bodies[p.index],
                                      p.codec, p.level, base=(n + 1) << wire.STREAM_SHIFT))
            t0 = drive(runs, spec, progress, "requests")
            stats = {i: c.finish() for i, c in servers.items()}
            shaped = shaper.finish() if shaper is not None else None
    finally:
        for r in runs:
            r.sock.close()
        for c in children:
            c.kill()
    measured, lat = measured_metrics(spec, scenario, runs, t0, {i: s["batches"] for i, s in stats.items()})
    overhead: dict[str, Any] = {
        "loopback_round_trip": _stats_ms(np.asarray(rtt) / 1e3),
        "send_lateness": _stats_ms(np.concatenate([r.lag[~np.isnan(r.lag)] for r in runs]) if runs else []),
    }
    handling = []
    for s in stats.values():
        rows = np.asarray(s["batches"], float).reshape(-1, 5)
        handling += list((rows[:, 3] - rows[:, 0]) - (rows[:, 2] - rows[:, 1]))
    overhead["server_batch_handling"] = _stats_ms(handling)
    decode = [x for s in stats.values() for x in s["decode_s"]]
    if decode:
        overhead["server_decompress"] = _stats_ms(decode)
    up, down = _path_delays(runs, stats)
    overhead["direct_path_to_queue"] = _stats_ms(up)
    overhead["direct_path_back"] = _stats_ms(down)
    overhead["idle_worker_wake"] = _stats_ms(_idle_wakes(spec, stats))
    if shaped is not None:
        overhead["shaper_serialise_overshoot"] = _stats_ms([x for v in shaped["serialise_late_s"].values() for x in v])
        overhead["shaper_deliver_lateness"] = _stats_ms(shaped["deliver_late_s"])
    placement = {**plan.as_dict(), "describe": plan.describe(),
                 "worker_cores_seen": {p.id: stats[p.index].get("worker_cores") for p in spec.pools}}
    for i, st in stats.items():
        timings[i]["after_run"] = st.get("timings_after") or {}
    for p in spec.pools:
        timings[p.index]["served_samples"] = served_samples(p, stats[p.index], t0, spec.warmup_s, spec.duration_s)
    runs_of = {p.index: [r for r in runs if r.spec.pool == p.index] for p in spec.pools}
    for p, run in zip((p for p in spec.pools if p.codec is not None), codecs):
        comp = np.concatenate([r.compress_s for r in runs_of[p.index]]) if runs_of[p.index] else np.zeros(0)
        timings[p.index]["served_codec"] = served_codec(run, comp[~np.isnan(comp)], stats[p.index]["decode_s"])
    comp_all = [r.compress_s[~np.isnan(r.compress_s)] for r in runs if r.codec is not None]
    if comp_all:
        overhead["client_compress"] = _stats_ms(np.concatenate(comp_all))
    path = client_path(rehearsals, stats)
    if path is not None:
        overhead["rehearsal_path_to_queue"] = path["to_queue"]
        overhead["rehearsal_path_back"] = path["back"]
    return measured, lat, timings, codecs, overhead, placement, path


def _path_delays(runs: list[StreamRun], stats: dict[int, dict[str, Any]]) -> tuple[list[float], list[float]]:
    """For requests of streams without links: creation to the server's queue, and response sent to received.

    Neither is in the simulation (a route without links takes no time there): they are the
    loopback TCP stack, the reader and receiver threads' wake-ups and the interpreter around them.
    """
    by_base = {r.base >> wire.STREAM_SHIFT: r for r in runs if not r.spec.there}
    up, down = [], []
    for s in stats.values():
        for rid, t_enq, _, t_sent in s["requests"]:
            r = by_base.get(int(rid) >> wire.STREAM_SHIFT)
            if r is None:
                continue
            k = int(rid) & wire.SEQ
            if not np.isnan(r.created[k]):
                up.append(t_enq - r.created[k])
            if not np.isnan(r.recv[k]):
                down.append(r.recv[k] - t_sent)
    return up, down


def _idle_wakes(spec: RunSpec, stats: dict[int, dict[str, Any]]) -> list[float]:
    """Queue to batch taken, for requests that arrived while a worker of their pool sat idle.

    The simulation starts such a request at once; the real worker first wakes from its condition
    wait. Pools with `max_wait_ms` wait on purpose and are left out. A request found a worker
    idle when fewer than `count` of the pool's batches were between taken and sent at its enqueue
    time (and no request was queued before it).
    """
    out: list[float] = []
    for pool in spec.pools:
        if pool.max_wait_ms > 0 or pool.index not in stats:
            continue
        rows = np.asarray(stats[pool.index]["batches"], float).reshape(-1, 5)
        reqs = np.asarray([(r[1], r[2]) for r in stats[pool.index]["requests"]], float).reshape(-1, 2)
        if not len(rows) or not len(reqs):
            continue
        take, sent = np.sort(rows[:, 0]), np.sort(rows[:, 3])
        enq = reqs[:, 0]
        busy = np.searchsorted(take, enq, side="right") - np.searchsorted(sent, enq, side="right")
        order = np.argsort(enq, kind="stable")
        taken_sorted = reqs[order, 1]
        # queued before it and not yet taken: an earlier-enqueued request taken after this one's enqueue
        later_max = np.maximum.accumulate(np.concatenate([[-np.inf], taken_sorted[:-1]]))
        alone = np.empty(len(enq), bool)
        alone[order] = later_max <= enq[order]
        idle = (busy < pool.count) & alone
        out += list(reqs[idle, 1] - reqs[idle, 0])
    return out


CLIENT_GBPS = 1e4  # the client link's bandwidth: loopback, which no payload here notices (4 kB: 3 ns)


def with_client_path(doc: dict[str, Any], one_way_ms: float) -> dict[str, Any]:
    """The scenario document with each demand site's requests created at a client site of its own
    (`<site>.client`, no hardware), linked to the site by a link of `one_way_ms` each way: the
    harness's hop from the load generator to the servers, which the real run has and the scenario
    does not. Arrival and routing streams are seeded by service and demand position, not site, so
    the requests are the same."""
    doc = copy.deepcopy(doc)
    sites = doc["sites"] = doc.get("sites") or {}
    links = list(doc.get("links") or [])
    clients: dict[str, str] = {}
    for svc in (doc.get("services") or {}).values():
        for d in (svc.get("demand") or []) if isinstance(svc, dict) else []:
            site = d.get("site")
            if not isinstance(site, str):
                continue
            if site not in clients:
                name, k = f"{site[:57]}.client", 1
                while name in sites:
                    k += 1
                    name = f"{site[:55]}.client{k}"
                clients[site] = name
                sites[name] = {"kind": (sites.get(site) or {}).get("kind", "edge")}
                links.append({"between": [name, site], "bandwidth_gbps": CLIENT_GBPS, "latency_ms": one_way_ms})
            d["site"] = clients[site]
    doc["links"] = links
    return doc


def simulate(raw: dict[str, Any], file: str, base_dir: Path, spec: RunSpec, profile: dict[str, Any],
             horizon: dict[str, float], models: dict[int, Any] | None = None,
             hardware: dict[str, Any] | None = None, client_ms: float | None = None,
             samples: dict[int, dict[str, dict[int, list[float]]]] | None = None,
             ) -> tuple[dict[str, Any], dict[str, tuple[list[float], list[float]]]]:
    """The scenario simulated with `profile` for every this-machine type and payload codec (and, given
    `models`, those LLM pools' iteration times from them: `llm_run.simulation_with`; given
    `hardware`, those keys set on every this-machine type: `llm_run.hardware_overrides`; given
    `client_ms`, the harness's own hop as a link from each demand site's client: `with_client_path`;
    given `samples`, per pool index, each batch's time drawn from them: `sampled_times`)."""
    from lepton_sim.catalogue import THIS_MACHINE
    from lepton_sim.metrics import build_metrics
    from lepton_sim.profiles.format import dumps_profile
    from lepton_sim.scenario.load import parse_scenario
    from lepton_sim.sim import Simulation

    with tempfile.TemporaryDirectory(prefix="lepton-validate-") as tmp:
        path = Path(tmp) / "profile.json"
        path.write_text(dumps_profile(profile), encoding="utf-8")
        doc = copy.deepcopy(raw) if client_ms is None else with_client_path(raw, client_ms)
        doc["horizon"] = {**(doc.get("horizon") or {}), **horizon}
        for entry in (doc.get("hardware") or {}).values():
            if isinstance(entry, dict) and entry.get("from") == THIS_MACHINE:
                entry["profile"] = str(path)
                entry.update(copy.deepcopy(hardware or {}))
        for svc in (doc.get("services") or {}).values():
            if isinstance(svc, dict) and isinstance(svc.get("payload"), dict):
                svc["payload"]["profile"] = str(path)
        scenario = parse_scenario(doc, file=file, base_dir=base_dir)
        if models:
            from lepton_sim.validation.llm_run import simulation_with

            rec = simulation_with(scenario, spec.seed, models).run()
        elif samples:
            rec = Simulation(scenario, spec.seed, batch_times_fn=sampled_times(scenario, spec, samples)).run()
        else:
            rec = Simulation(scenario, spec.seed).run()
    metrics = build_metrics(scenario, rec)
    probs = [i / 200 for i in range(1, 200)]
    cdf = {}
    for name, t in rec.services.items():
        if t.latency_s.count:
            cdf[name] = ([q * 1e3 for q in t.latency_s.quantiles(probs)], probs)
    return metrics, cdf


def sampled_times(scenario: Any, spec: RunSpec, samples: dict[int, dict[str, dict[int, list[float]]]]) -> Any:
    """`batch_times` with each pool's times to draw from (`BatchTimes.samples_s`): its `samples`
    (`served_samples`, pooled over pools of one model, variant and hardware type). A batch size the
    run never formed draws the nearest formed size's samples scaled by the two sizes' ratio of
    times; after idle, where the run never sat idle before a batch of that size, the back-to-back ones.
    Each sample keeps when it was taken (`BatchTimes.samples_at_s`): a batch draws from those taken
    around its start, without replacement (`lepton_sim.sim.pools.DrawnTimes`)."""
    import dataclasses

    from lepton_sim.servicetime import batch_times
    from lepton_sim.servicetime.roofline import LOCAL_SAMPLES

    pooled: dict[tuple[str, str, str], dict[str, dict[int, list[tuple[float, float]]]]] = {}
    for pool in spec.pools:
        key = (scenario.services[pool.service].model, pool.variant, pool.hardware)
        mine = pooled.setdefault(key, {"hot": {}, "idle": {}})
        got = samples.get(pool.index, {})
        for kind in ("hot", "idle"):
            for b, xs in (got.get(kind) or {}).items():
                ats = (got.get(kind + "_at") or {}).get(b) or [0.0] * len(xs)
                mine[kind].setdefault(int(b), []).extend(zip(ats, xs))
    for mine in pooled.values():
        for by_b in mine.values():
            for pairs in by_b.values():
                pairs.sort()  # in time order, over the pools pooled
    names = {}
    for mname, m in scenario.models.items():
        for vname, v in m.variants.items():
            names[(id(m), id(v))] = (mname, vname)
    hw_names = {id(h): name for name, h in scenario.hardware.items()}

    def fn(model: Any, variant: Any, hardware: Any, max_batch: int) -> Any:
        t = batch_times(model, variant, hardware, max_batch)
        got = pooled.get((*names.get((id(model), id(variant)), ("", "")), hw_names.get(id(hardware), "")))
        if not got:
            return t
        hot, idle = got["hot"], got["idle"]
        formed = sorted(set(hot) | set(idle))
        if not formed:
            return t

        def row(by_b: dict[int, list[tuple[float, float]]], b: int) -> list[tuple[float, float]]:
            if b in by_b:
                return by_b[b]
            near = min(by_b or {b: []}, key=lambda x: (abs(math.log(x / b)), x))
            if near not in by_b:
                return []
            r = t.times_s[b - 1] / t.times_s[near - 1]
            return [(at, x * r) for at, x in by_b[near]]

        n_hot, n_idle = sum(map(len, hot.values())), sum(map(len, idle.values()))
        rows_hot = [row(hot, b) or row(idle, b) for b in range(1, max_batch + 1)]
        rows_idle = [row(idle, b) for b in range(1, max_batch + 1)]
        detail = (f"{t.detail}; as served: each batch's time drawn from the {n_hot + n_idle} batches the real "
                  f"run's pool took ({n_idle} after its worker sat idle, with the wake-up; {n_hot} back to back), "
                  f"of its size, from the {LOCAL_SAMPLES} taken around its start, each about once")
        return dataclasses.replace(
            t, samples_s=tuple(tuple(x for _, x in r) for r in rows_hot),
            samples_at_s=tuple(tuple(at for at, _ in r) for r in rows_hot),
            idle_samples_s=tuple(tuple(x for _, x in r) for r in rows_idle) if idle else None,
            idle_samples_at_s=tuple(tuple(at for at, _ in r) for r in rows_idle) if idle else None,
            detail=detail, after_idle=None)

    return fn


def compare(measured: dict[str, Any], simulated: dict[str, Any],
            profile: dict[str, Any] | None = None, served: dict[str, Any] | None = None,
            after_run: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Per service: measured and simulated figures and the relative errors (simulated / measured - 1);
    `after_run`: per pool id, the forward pass timed again after the load, by batch size."""
    out = {}
    for name, m in measured["services"].items():
        s = simulated["services"][name]

        def side(e: dict[str, Any]) -> dict[str, Any]:
            return {"completed": e["completed"], "latency_ms": {k: e["latency_ms"][k] for k in ("mean", "p50", "p90", "p99")},
                    "slo_attainment": e["slo_attainment"], "throughput_rps": e["throughput_rps"]}

        err = _errors(m, s)
        pools_m = {pid: p for pid, p in measured["pools"].items() if p["service"] == name}
        util = {pid: {"measured": p["utilization"], "simulated": simulated["pools"][pid]["utilization"]}
                for pid, p in pools_m.items() if pid in simulated["pools"]}
        forward = {}
        for pid, p in pools_m.items():
            run = next((r for r in (profile or {}).get("models", []) if r["model"] == name), None)
            timed = {int(b["batch"]): b["timing"]["median_s"] * 1e3 for b in run["batches"]} if run else {}
            again = {int(b): t["median_s"] * 1e3 for b, t in ((after_run or {}).get(pid) or {}).items()}
            forward[pid] = {str(b): {"served_ms": ms, "profiled_ms": timed.get(b),
                                     "ratio": ms / timed[b] if timed.get(b) else None,
                                     **({"after_run_ms": again[b], "drift": again[b] / timed[b] - 1}
                                        if b in again and timed.get(b) else {})}
                            for b, ms in p["forward_ms_by_batch"].items()}
        out[name] = {"measured": side(m), "simulated": side(s), "error": err, "utilization": util,
                     "forward_pass": forward}
        if served is not None:
            out[name]["simulated_as_served"] = side(served["services"][name])
            out[name]["error_as_served"] = _errors(m, served["services"][name])
    return out


def _errors(m: dict[str, Any], s: dict[str, Any]) -> dict[str, float | None]:
    """Relative errors simulated / measured - 1 of the latency figures."""
    err = {}
    for k in ("mean", "p50", "p90", "p99"):
        a, b = m["latency_ms"][k], s["latency_ms"][k]
        err[k] = b / a - 1 if a and b is not None else None
    return err


def validate(scenario: Any, raw: dict[str, Any], file: str, base_dir: Path, spec: RunSpec,
             horizon: dict[str, float], progress: Progress = _quiet, shared: bool = False) -> Outcome:
    """Serve `spec` for real, simulate it with the timings measured, and compare; `shared`: no core
    of its own per replica (`cores.plan`)."""
    from lepton_sim.profiles import reference_profile_path
    from lepton_sim.validation import llm_run

    if llm_run.is_llm_spec(spec):
        return llm_run.validate(scenario, raw, file, base_dir, spec, horizon, progress,  # type: ignore[no-any-return]
                                shared=shared)
    t_start = time.perf_counter()
    measured, lat, timings, codecs, overhead, placement, path = serve(spec, scenario, progress, shared)
    base = json.loads(reference_profile_path().read_text(encoding="utf-8"))
    handling_s = path["handling_ms"] / 1e3 if path is not None and "handling_ms" in path else 0.0
    forward_profile = profile_doc(base, spec, timings, codecs)
    profile = profile_doc(base, spec, with_handling(timings, handling_s), codecs)
    if handling_s:
        profile["notes"].append(f"each whole-model time includes {handling_s * 1e3:.4f} ms per request of the server's "
                                "handling around the forward pass, the median a worker took from a null batch of "
                                "the rehearsal to its response sent")
    client_ms = path["one_way_ms"] if path is not None else None
    progress("simulating the same scenario with the timings just measured")
    simulated, cdf = simulate(raw, file, base_dir, spec, profile, horizon, client_ms=client_ms)
    progress("simulating it again as served: batch times drawn from the real run's own batches")
    served_codecs = [timings[p.index].get("served_codec") or c
                     for p, c in zip((p for p in spec.pools if p.codec is not None), codecs)]
    served_profile = profile_doc(base, spec, as_served(timings, measured, spec), served_codecs)
    up, down = overhead.get("direct_path_to_queue"), overhead.get("direct_path_back")
    if path is not None and up and down:  # the hop as the run's own requests crossed it
        path["as_served_one_way_ms"] = round((up["p50"] + down["p50"]) / 2, 6)
        client_ms = path["as_served_one_way_ms"]
    over, late = overhead.get("shaper_serialise_overshoot"), overhead.get("shaper_deliver_lateness")
    raw_served = raw
    if over and late:  # each link as the shaper served it: its sleep's overshoot and its timer's lateness
        lateness = round(over["p50"] + late["p50"], 6)
        raw_served = with_link_lateness(raw, lateness)
        if path is not None:
            path["as_served_link_extra_ms"] = lateness
    served, _ = simulate(raw_served, file, base_dir, spec, served_profile, horizon, client_ms=client_ms,
                         samples={i: t["served_samples"] for i, t in timings.items() if "served_samples" in t})
    after = {p.id: timings[p.index].get("after_run") or {} for p in spec.pools}
    return Outcome(spec, measured, simulated, profile, served, overhead, lat, cdf, time.perf_counter() - t_start,
                   cores=placement, client_path=path or {}, after_run=after, forward_profile=forward_profile)
