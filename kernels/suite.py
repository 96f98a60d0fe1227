"""Run every measurement and assemble the profile: jobs in order, a progress bar, ceilings, findings."""
from __future__ import annotations

import datetime as dt
import importlib
from functools import cache, partial
from typing import Any, Callable

import numpy as np
from threadpoolctl import threadpool_limits

from kernels import codecs, micro
from kernels.fingerprint import OtherLoad, caches, load_average, machine
from kernels.micro import Job, Record
from kernels.realmodel import RealModelBench
from kernels.timing import FULL, QUICK, TimingPolicy, guarded
from lepton_sim.profiles.format import FORMAT, VERSION, parse_profile

FULL_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
QUICK_BATCHES = (1, 4, 16, 64, 256)
TEXT_BYTES = {False: 1 << 20, True: 1 << 17}
BUSY_FRACTION = 0.05  # share of the CPUs other processes may use while measuring before the profile says so

Tick = Callable[[str], None]


def plan(quick: bool) -> list[Job]:
    """Every job of a full or quick run, in the order they run (the real model before the codecs)."""
    policy = QUICK if quick else FULL
    grid = micro.QUICK_GRID if quick else micro.FULL_GRID
    bench = RealModelBench(policy, quick, QUICK_BATCHES if quick else FULL_BATCHES, runs=1 if quick else 3)

    @cache
    def kinds() -> dict[str, codecs.DataKind]:
        assert bench.data is not None, "the real model trains before the codecs run"
        fp32 = bench.variants["fp32"].params[0]
        assert fp32 is not None
        images = bench.data.images_uint8
        acts = np.maximum(images.reshape(len(images), -1).astype(np.float32) / 16.0 @ fp32.w + fp32.b, 0)
        return {k.name: k for k in codecs.data_kinds(images, acts, TEXT_BYTES[quick])}

    sizes = caches()
    llc = max(sizes.values(), default=None)
    jobs = [micro.overhead_job(policy), micro.copy_job(grid, policy), micro.chain_job(policy)]
    jobs += micro.gemm_jobs(grid, policy, llc, sizes.get("L2")) + micro.elementwise_jobs(grid, policy) + micro.structure_jobs(grid, policy)
    jobs += bench.jobs()
    levels = codecs.QUICK_LEVELS if quick else codecs.FULL_LEVELS

    def kind(name: str) -> codecs.DataKind:
        return kinds()[name]

    for name in ("uint8-images", "float32-activations", "text"):
        for codec, lvls in levels.items():
            for level in lvls:
                jobs.append(codecs.codec_job(codec, level, partial(kind, name), policy, name))
    jobs.append(Job("data_kinds", "data kinds", lambda: {"kinds": [k.record() for k in kinds().values()]}))
    return jobs


def run_jobs(jobs: list[Job], tick: Tick | None = None, load: OtherLoad | None = None) -> dict[str, list[Record]]:
    """Run the jobs in order, calling `tick(label)` before each; records grouped by section."""
    out: dict[str, list[Record]] = {}
    for job in jobs:
        if tick is not None:
            tick(job.label)
        mark = load.start() if load is not None else None
        out.setdefault(job.section, []).append(job.run())
        if load is not None and mark is not None:
            load.stop(job.section, mark)
    return out


def _policy_record(policy: TimingPolicy) -> Record:
    return {"warmup": policy.warmup, "repeats": policy.repeats, "min_sample_s": policy.min_sample_s,
            "budget_s": policy.budget_s}


def assemble(raw: dict[str, list[Record]], quick: bool, fingerprint: Record, load: dict[str, list[float]],
             other_cpu: dict[str, float]) -> dict[str, Any]:
    """The profile object from the grouped records: ceilings, fractions of them, findings."""
    gemm = raw.get("gemm", [])
    by_shape = {(g["precision"], g["m"], g["k"], g["n"]): g for g in gemm}
    for section, field in (("gemm_cold", "cold"), ("gemm_warm", "warm")):
        for c in raw.get(section, []):
            for row in c["rows"]:
                by_shape[(c["precision"], row["m"], c["k"], c["n"])][field] = row["timing"]
    best: dict[str, Record] = {}
    for g in gemm:
        if g["precision"] not in best or g["gflops"] > best[g["precision"]]["gflops"]:
            best[g["precision"]] = g
    peak = best["fp32"]["gflops"]
    copy = raw["copy"][0]
    bw = copy["gbps"]
    for g in gemm:
        g["fraction_of_peak"] = g["gflops"] / peak
    for e in raw.get("elementwise", []):
        e["fraction_of_bandwidth"] = e["gbps"] / bw
    ceilings = {
        "gemm_gflops": {p: r["gflops"] for p, r in best.items()},
        "gemm_shape": {p: (r["m"], r["k"], r["n"]) for p, r in best.items()},
        "memory_bandwidth_gbps": bw, "copy_bytes": copy["copy_bytes"], "copy_timing": copy["timing"],
        "call_overhead_s": raw["overhead"][0]["timing"]["median_s"],
    }
    if raw.get("chain"):
        ceilings["chain_step_s"] = raw["chain"][0]["step_s"]
    digits = raw["digits"][0]
    profile = {
        "format": FORMAT, "version": VERSION,
        "created_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "quick": quick, "tool": f"lepton-sim {fingerprint['libraries'].get('lepton-sim', '?')} kernels measure"
                                + (" --quick" if quick else ""),
        "machine": fingerprint, "load_average": load, "other_cpu": other_cpu,
        "timing_policy": _policy_record(QUICK if quick else FULL),
        "paths": dict(micro.PATHS),
        "ceilings": ceilings,
        "gemm": gemm, "elementwise": raw.get("elementwise", []), "conv": raw.get("conv", []),
        "attention": raw.get("attention", []), "models": raw.get("models", []),
        "transforms": digits["transforms"], "digits": digits["digits"],
        "data_kinds": raw["data_kinds"][0]["kinds"], "codecs": raw.get("codecs", []),
    }
    profile["notes"] = findings(profile)
    return _rounded(profile)


def _rounded(obj: Any, digits: int = 5) -> Any:
    """Floats to `digits` significant figures (far below the run-to-run spread); order is preserved."""
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}")
    if isinstance(obj, dict):
        return {k: _rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rounded(v, digits) for v in obj]
    return obj


def findings(p: dict[str, Any]) -> list[str]:
    """Plain-language findings computed from the measurements."""
    notes = []
    ceil = p["ceilings"]["gemm_gflops"]
    fp32 = ceil["fp32"]
    for prec in ("fp16", "int8", "int4"):
        if prec in ceil:
            ratio = fp32 / ceil[prec]
            rel = f"{ratio:.1f}x slower than" if ratio > 1 else f"{1 / ratio:.1f}x faster than"
            notes.append(f"{prec} dense matmul peaks at {ceil[prec]:.3g} G{'OP' if prec.startswith('int') else 'FLOP'}/s, "
                         f"{rel} fp32 ({fp32:.3g} GFLOP/s): {_WHY[prec]}")
    busy = {s: f for s, f in p["other_cpu"].items() if f > BUSY_FRACTION}
    if busy:
        where = ", ".join(f"{s} {f:.0%}" for s, f in busy.items())
        notes.append(f"other processes used CPU time while measuring ({where} of the {p['machine']['usable_cpus']} "
                     "CPUs): multi-threaded kernels in those sections may have waited for a CPU; measure again "
                     "on an idle machine")
    notes.append(f"memory bandwidth {p['ceilings']['memory_bandwidth_gbps']:.3g} GB/s counts bytes read plus "
                 "bytes written by a large copy; with write-allocate caches the DRAM traffic is up to 1.5x that")
    runs = {(m["model"], m["variant"]): m for m in p["models"]}
    dense = runs.get(("digits-mlp", "fp32"))
    for (model, variant), m in runs.items():
        if model == "digits-mlp" and m["sparsity"] is not None and dense is not None:
            r = _at(m, 64) / _at(dense, 64)
            notes.append(f"{variant} runs on dense kernels here: {r:.2f}x the fp32 time at batch 64 "
                         "(sparsity saves storage, not math, on this machine)")
    return notes


def _at(run: Record, batch: int) -> float:
    times = {b["batch"]: b["timing"]["median_s"] for b in run["batches"]}
    return times.get(batch, times[max(times)])


_WHY = {
    "fp16": "numpy has no BLAS half-precision GEMM and computes fp16 matmul in its own loop",
    "int8": "numpy's integer matmul has no BLAS path; real int8 speed-ups need VNNI kernels (oneDNN, FBGEMM)",
    "int4": "unpacking the packed weights on every call adds to the int8 path",
}


def measure_profile(quick: bool = False, tick: Tick | None = None, total: Callable[[int], None] | None = None,
                    threads: int | None = None) -> dict[str, Any]:
    """Measure this machine and return a validated profile object (a plain dict, ready for JSON).

    `threads` caps the BLAS/OpenMP thread pools (threadpoolctl) for the whole run; None keeps the
    libraries' defaults. The fingerprint records the settings in force while measuring. Kernels
    timed while a probe shows the CPU slowed by other work are timed again, within a quarter of
    the run's time (`kernels.timing.Guard`); the notes say how many.
    """
    importlib.import_module("sklearn.datasets")  # loads scikit-learn's own BLAS/OpenMP now: the limits cover it too

    jobs = plan(quick)
    if total is not None:
        total(len(jobs))
    other = OtherLoad()
    with threadpool_limits(limits=threads), guarded() as guard:
        before = load_average()
        raw = run_jobs(jobs, tick, other)
        fingerprint = machine()
    profile = assemble(raw, quick, fingerprint, {"before": before, "after": load_average()}, other.fractions())
    if (slowed := guard.note()) is not None:
        profile["notes"].append(slowed)
    parse_profile(profile, "<measured profile>")
    return profile
