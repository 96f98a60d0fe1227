"""How close the measured service-time model comes to timing the same layers directly on this machine.

`machine_fidelity` predicts held-out layer stacks (chains the profile never timed whole) from a
profile's kernel tables, as the simulator does for the `this-machine` hardware type, and times
the same stacks directly with numpy. The stacks span the regimes the tables have to cover: small
layers bound by call overhead and cache bandwidth, 4096-wide ones bound by memory at batch 1 and
by arithmetic at batch 64, and a chain whose weights together fill the last-level cache.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Sequence, TypedDict

import numpy as np
from threadpoolctl import threadpool_limits

from kernels import micro
from kernels.fingerprint import caches
from kernels.forward import compile_forward, init_params
from kernels.timing import FULL, Guard, TimingPolicy, guarded, time_call
from lepton_sim.catalogue import hardware_entry
from lepton_sim.profiles import Profile, load_profile, measured_batch_times, this_machine_entry
from lepton_sim.profiles.format import Timing
from lepton_sim.profiles.measured import canonical_layers, records_read
from lepton_sim.scenario.schema import HardwareSpec, ModelSpec, Variant


class _StackBase(TypedDict):
    name: str
    layers: list[dict[str, Any]]


class Stack(_StackBase, total=False):
    """A named layer chain and the precisions to check it at (default: `PRECISIONS`)."""

    precisions: Sequence[str]


PRECISIONS = ("fp32", "int8")


def _dense(*sizes: int, act: str = "relu") -> list[dict[str, Any]]:
    """Dense layers through `sizes` with `act` between them (none after the last)."""
    layers: list[dict[str, Any]] = []
    for i, (k, n) in enumerate(zip(sizes, sizes[1:])):
        if i:
            layers.append({"op": act})
        layers.append({"op": "dense", "in": k, "out": n})
    return layers


# None of these is among the whole models a profile times (digits-mlp and its variants, inline-mlp).
# Timing them all directly takes about 7 minutes on one core, most of it int8 at 4096 x 4096, where
# numpy's integer matmul takes 12 s a pass at batch 64.
HELD_OUT: tuple[Stack, ...] = (
    {"name": "dense-512x2", "layers": _dense(512, 512, 512)},
    {"name": "dense-4096x2", "layers": _dense(4096, 4096, 4096)},
    {"name": "dense-64-1024-10", "layers": _dense(64, 1024, 10)},
    {"name": "dense-1024-4096-1024", "layers": _dense(1024, 4096, 1024, act="gelu")},
)


def profile_threads(profile: Profile) -> int | None:
    """BLAS threads numpy used while the profile was measured (None if the fingerprint does not say)."""
    for pool in profile.machine.blas:
        if pool.get("user_api") == "blas" and pool.get("shipped_in") == "numpy.libs":
            return int(pool["num_threads"])
    return None


def local_hardware(profile: Profile) -> HardwareSpec:
    """The `this-machine` hardware type built from `profile`, as the scenario loader builds it."""
    entry = this_machine_entry(profile, hardware_entry("generic-server-cpu"))
    return HardwareSpec.model_validate(entry).model_copy(update={"name": "this-machine"})


def direct_seconds(layers: Sequence[dict[str, Any]], precision: str, batch: int, threads: int,
                   policy: TimingPolicy = FULL) -> float:
    """Median seconds of one forward pass of `layers` over `batch` rows, timed here and now.

    See `machine_fidelity` for how.
    """
    forward = compile_forward(layers, init_params(layers, np.random.default_rng(0)), precision)
    x = np.random.default_rng(1).standard_normal((batch, layers[0]["in"])).astype(np.float32)
    with threadpool_limits(limits=threads):
        return time_call(partial(forward, x), policy).median_s


def machine_fidelity(profile_path: str | Path, *, threads: int, batches: Sequence[int] = (1, 4, 16, 64),
                     stacks: Sequence[Stack] | None = None, rounds: int = 0) -> list[dict[str, Any]]:
    """Simulated against directly timed seconds per batch of held-out stacks, one row per stack, precision, batch.

    Each row has `stack` (its name), `precision`, `batch`, `simulated_s` (the measured model,
    `measured_batch_times`, on the profile's `this-machine` hardware entry: the compute time the
    simulator gives a batch of that size), `direct_s`, `ratio` (simulated / direct) and `source`
    (`BatchTimes.source`: "measured" unless a layer fell back to the roofline).

    The direct timing runs the stack as `kernels.forward` runs it, which is what the profile's
    kernels time one step at a time: `compile_forward` once per stack and precision (He-initialised
    weights, every cast, quantisation and packing done up front), an input of `batch` rows of
    standard-normal float32, BLAS limited to `threads` threads (threadpoolctl) for the timing.
    `kernels.timing.time_call` with the FULL policy then discards two warm-up calls (first-touch
    page faults, allocator growth), takes up to nine samples of enough back-to-back calls to last
    2 ms each, within a budget of about 1.5 s per case, and `direct_s` is their median. A case
    timed while the speed probe shows the CPU slowed by other work is timed again, up to three
    times, within as much time again as the timings themselves take (`kernels.timing.Guard`; the
    profile was measured the same way). Another process sharing the cores for longer still
    stretches the timings (a multi-threaded BLAS most of all), and on a shared host the caches and
    memory bandwidth left to this machine vary too: compare on a quiet machine, more than once.

    `rounds` (paired timing): each case is predicted from the profile records its prediction reads
    timed again just before the direct timing (`retimed`), `rounds` times over, and the medians of
    the two kept. The drift of the machine between measuring the profile and timing the stack then
    drops out, leaving the error of the model itself (how it puts a chain together from its steps);
    without it, each case compares the profile as measured with a timing taken now.

    `threads` must be the thread count the profile was measured with where its fingerprint
    records one: a profile measured with two BLAS threads does not predict one thread.
    `stacks` defaults to `HELD_OUT`; a stack the profile timed as a whole model is refused, since
    its prediction would be that timing rather than the per-layer tables. Nothing is printed.
    """
    profile = load_profile(profile_path)
    measured_threads = profile_threads(profile)
    if measured_threads is not None and measured_threads != threads:
        raise ValueError(f"{profile_path}: measured with {measured_threads} BLAS thread(s), but threads={threads}: "
                         "the profile predicts the thread count it was measured with")
    whole = {canonical_layers(m.layers) for m in profile.models}
    hardware = local_hardware(profile)
    rows: list[dict[str, Any]] = []
    with guarded(Guard(share=1.0)):
        for stack in HELD_OUT if stacks is None else stacks:
            rows += _stack_rows(profile, hardware, whole, stack, batches, threads, rounds)
    return rows


def _stack_rows(profile: Profile, hardware: HardwareSpec, whole: set[tuple[str, ...]], stack: Stack,
                batches: Sequence[int], threads: int, rounds: int = 0) -> list[dict[str, Any]]:
    """The rows of one stack: every precision it names (or `PRECISIONS`) at every batch size.

    With `rounds`, each round times again the profile records the prediction reads, predicts from
    them and times the stack directly right after; a row's figures are the medians over rounds.
    """
    layers = [dict(layer) for layer in stack["layers"]]
    if canonical_layers(layers) in whole:
        raise ValueError(f"stack {stack['name']!r}: the profile times it as a whole model; not held out")
    model = ModelSpec.model_validate({"layers": layers, "input_bytes": 4, "output_bytes": 4})
    rows: list[dict[str, Any]] = []
    for precision in stack.get("precisions", PRECISIONS):
        for batch in batches:
            samples = []
            for _ in range(max(1, rounds)):
                here = retimed(profile, records_read(profile, layers, precision, [batch]), threads) if rounds else profile
                predicted = measured_batch_times(here, model, Variant(precision=precision), hardware, batch)
                samples.append((predicted.times_s[batch - 1], direct_seconds(layers, precision, batch, threads)))
            simulated = float(np.median([s for s, _ in samples]))
            direct = float(np.median([d for _, d in samples]))
            rows.append({"stack": stack["name"], "precision": precision, "batch": batch,
                         "simulated_s": simulated, "direct_s": direct, "ratio": simulated / direct,
                         "source": predicted.source, "rounds": rounds})
    return rows


def retimed(profile: Profile, reads: set[tuple[Any, ...]], threads: int) -> Profile:
    """A copy of `profile` whose records in `reads` (keys of `records_read`) are timed again now.

    GEMM timings hot, warm and cold, memory-bound kernels and the chain step cost are timed as `kernels
    measure` timed them, with the profile's own timing policy and `threads` BLAS threads; a record
    of another kind (convolution, attention) is refused.
    """
    rec = profile.timing_policy
    policy = TimingPolicy(warmup=rec.warmup, repeats=rec.repeats, min_sample_s=rec.min_sample_s, budget_s=rec.budget_s)
    llc = max(profile.machine.caches.values(), default=None) or max(caches().values(), default=micro.DEFAULT_LLC_BYTES)
    hot = {(k[1], int(k[2]), int(k[3]), int(k[4])) for k in reads if k[0] == "gemm"}
    cold = {(k[1], int(k[2]), int(k[3]), int(k[4])) for k in reads if k[0] == "gemm_cold"}
    warm = {(k[1], int(k[2]), int(k[3]), int(k[4])) for k in reads if k[0] == "gemm_warm"}
    private = profile.machine.caches.get("L2") or caches().get("L2")
    elem = {(k[1], k[2], int(k[4])) for k in reads if k[0] == "elementwise"}
    other = sorted({k[0] for k in reads} - {"gemm", "gemm_cold", "gemm_warm", "elementwise", "chain"})
    if other or any(k[3] for k in reads if k[0] == "elementwise"):
        raise ValueError(f"cannot time these records again: {', '.join(other) or 'pooling'}")
    with threadpool_limits(limits=threads):
        hot_t = {key: micro.gemm_job(*key, policy).run()["timing"] for key in sorted(hot)}
        cold_t = {}
        for p, k, n in sorted({(p, k, n) for p, _, k, n in cold}):
            ms = tuple(sorted(m for q, m, kk, nn in cold if (q, kk, nn) == (p, k, n)))
            for row in micro.cold_gemm_job(p, k, n, ms, llc, policy).run()["rows"]:
                cold_t[(p, row["m"], k, n)] = row["timing"]
        warm_t = {}
        for p, k, n in sorted({(p, k, n) for p, _, k, n in warm}):
            assert private is not None, "a warm timing was read, so the profile has a private cache size"
            ms = tuple(sorted(m for q, m, kk, nn in warm if (q, kk, nn) == (p, k, n)))
            for row in micro.warm_gemm_job(p, k, n, ms, private, policy).run()["rows"]:
                warm_t[(p, row["m"], k, n)] = row["timing"]
        elem_t = {key: micro.elementwise_job(*key, policy).run()["timing"] for key in sorted(elem)}
        step = micro.chain_job(policy).run()["step_s"] if ("chain",) in reads else None
    gemm = []
    for g in profile.gemm:
        key = (g.precision, g.m, g.k, g.n)
        update: dict[str, Any] = {}
        if key in hot_t:
            update["timing"] = Timing.model_validate(hot_t[key])
        if key in cold_t:
            update["cold"] = Timing.model_validate(cold_t[key])
        if key in warm_t:
            update["warm"] = Timing.model_validate(warm_t[key])
        gemm.append(g.model_copy(update=update) if update else g)
    elementwise = [e.model_copy(update={"timing": Timing.model_validate(elem_t[(e.op, e.precision, e.elems)])})
                   if (e.op, e.precision, e.elems) in elem_t else e for e in profile.elementwise]
    ceilings = profile.ceilings if step is None else profile.ceilings.model_copy(update={"chain_step_s": step})
    out = profile.model_copy(update={"gemm": gemm, "elementwise": elementwise, "ceilings": ceilings})
    out._lookup = None  # the copy's tables are built from its own records
    return out
