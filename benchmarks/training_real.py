"""A real data-parallel step on this machine against its simulation.

Two worker processes (one thread each) train a dense network on their micro-batches and
ring-all-reduce the fp32 gradients over loopback TCP in buckets (`lepton_sim/validation/
dataparallel.py`); loopback bandwidth and per-message latency are measured first. The same job is
then simulated: compute from a `this-machine` kernel profile (3 x its forward time; by default the
reference profile's records this network reads, timed again after the run with one BLAS thread,
as each worker runs), the collective from the closed form with the measured bandwidth (both
directions busy at once, as in a ring) as `interconnect_gbps` and the measured latency as
`step_latency_us`, no overlap (the real workers combine after the backward pass).

Printed: measured and simulated forward, compute, communication and iteration, with the relative
error; and checks that need no profile: forward + backward against 3 x the measured forward (the
backward factor), and the measured all-reduce against the closed form with the measured bandwidth
and latency, without and with the workers' adds timed here.

Run: python benchmarks/training_real.py [--widths 1024,4096,4096,1024] [--batch 128] [--iters 20]
     [--profile FILE]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from kernels.fidelity import retimed
from lepton_sim.metrics import build_metrics
from lepton_sim.profiles import reference_profile_path
from lepton_sim.profiles.format import dumps_profile, load_profile
from lepton_sim.profiles.measured import records_read
from lepton_sim.scenario import parse_scenario
from lepton_sim.servicetime.training import ring_allreduce_s
from lepton_sim.sim import simulate
from lepton_sim.validation.dataparallel import loopback_measured, run_step


def scenario(widths: list[int], batch: int, bps: float, alpha_s: float, bucket_mb: float) -> dict:
    layers: list[dict] = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers.append({"op": "dense", "in": a, "out": b})
        if i < len(widths) - 2:
            layers.append({"op": "relu"})
    return {
        "name": "dataparallel-here", "seed": 1, "horizon": {"duration_s": 60, "warmup_s": 0},
        "hardware": {"here": {"from": "this-machine", "interconnect_gbps": bps / 1e9}},
        "sites": {"box": {"capacity": {"here": 2}}},
        "models": {"mlp": {"layers": layers, "input_bytes": widths[0] * 4, "output_bytes": widths[-1] * 4,
                           "variants": {"fp32": {"precision": "fp32"}}}},
        "jobs": {"step": {"model": "mlp", "variant": "fp32", "global_batch": 2 * batch, "samples": 2 * batch * 50,
                          "placement": {"site": "box", "hardware": "here", "count": 2, "per_node": 2},
                          "sync": {"kind": "ring-allreduce", "bucket_mb": bucket_mb, "overlap": False,
                                   "step_latency_us": alpha_s * 1e6}}},
    }


def reduction_s(bucket_bytes: list[float], repeats: int = 5) -> float:
    """Seconds of the reduce-scatter's adds of a 2-rank ring over these buckets, timed here with one
    BLAS thread: each rank adds the half it owns (`np.add(mine, incoming, out=mine)`), best of `repeats`."""
    import time

    import numpy as np
    from threadpoolctl import threadpool_limits

    total = 0.0
    with threadpool_limits(1):
        for size in bucket_bytes:
            half = int(size // 8)  # fp32 values in half the bucket
            mine, incoming = np.ones(half, np.float32), np.ones(half, np.float32)
            best = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                np.add(mine, incoming, out=mine)
                best = min(best, time.perf_counter() - t0)
            total += best
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", default="1024,4096,4096,1024")
    ap.add_argument("--batch", type=int, default=128, help="samples per worker")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--bucket-mb", type=float, default=4.0)
    ap.add_argument("--profile", help="kernel profile for the simulated compute (default: the records of the "
                    "reference profile this network reads, timed again now with one BLAS thread, as each worker runs)")
    args = ap.parse_args()
    widths = [int(x) for x in args.widths.split(",")]
    lb = loopback_measured()
    bps, alpha = lb.duplex_bps, lb.latency_s  # a ring all-reduce sends and receives at once
    print(f"loopback TCP here: {lb.one_way_bps / 1e9:.2f} GB/s with one direction busy, {bps / 1e9:.2f} GB/s each "
          f"way with both (best of 3 x 64 MB; the collective's bandwidth), {alpha * 1e6:.1f} us one way (half the "
          "median round trip of 1-byte messages)")
    real, _ = run_step(widths, args.batch, iters=args.iters, bucket_mb=args.bucket_mb)
    with tempfile.TemporaryDirectory() as tmp:
        doc = scenario(widths, args.batch, bps, alpha, args.bucket_mb)
        if args.profile:
            profile_path, basis = str(Path(args.profile).resolve()), f"the profile {args.profile}"
        else:
            ref = load_profile(reference_profile_path())
            layers = parse_scenario(doc).models["mlp"].layers
            reads = records_read(ref, layers, "fp32", [args.batch])
            fresh = retimed(ref, reads, threads=1)
            profile_path = str(Path(tmp) / "profile.json")
            Path(profile_path).write_text(dumps_profile(fresh.model_dump(mode="json")), encoding="utf-8")
            basis = (f"the {len(reads)} records of the reference profile this network reads, timed again now with "
                     "one BLAS thread (as each worker runs)")
        doc["hardware"]["here"]["profile"] = profile_path
        s = parse_scenario(doc)
        j = build_metrics(s, simulate(s))["jobs"]["step"]
    sim_fwd = j["compute_ms"] / 3.0
    rows = (("forward (one worker)", real.forward_s * 1e3, sim_fwd),
            ("forward + backward", real.compute_s * 1e3, j["compute_ms"]),
            ("all-reduce", real.communication_s * 1e3, j["communication_ms"]),
            ("iteration", real.iteration_s * 1e3, j["iteration_ms"]["mean"]))
    print(f"2 workers x batch {args.batch}, widths {widths}, {real.grad_bytes / 1e6:.1f} MB of fp32 gradients in "
          f"{real.buckets} buckets, medians of {args.iters} steps")
    print(f"{'':<22} {'measured ms':>12} {'simulated ms':>13} {'sim/meas - 1':>13}")
    for name, m, sm in rows:
        print(f"{name:<22} {m:>12.3f} {sm:>13.3f} {sm / m - 1:>+13.1%}")
    per = args.bucket_mb * 1e6
    sizes = [per] * int(real.grad_bytes // per) + ([real.grad_bytes % per] if real.grad_bytes % per else [])
    closed = sum(ring_allreduce_s(x, 2, bps, alpha) for x in sizes)
    adds = reduction_s(sizes)
    print(f"checks without the profile: forward + backward / measured forward = "
          f"{real.compute_s / real.forward_s:.2f} (the model takes 3); measured all-reduce / closed form with the "
          f"measured bandwidth and latency = {real.communication_s / closed:.2f}; the workers add each received half "
          f"after it arrives, {adds * 1e3:.1f} ms of adds timed here with one thread, which the closed form (NCCL's "
          f"reduction, pipelined with the transfer) leaves out: measured / (closed form + adds) = "
          f"{real.communication_s / (closed + adds):.2f}")
    print(f"the simulated compute rests on {basis}; forward + backward is 3x the forward (the model's backward_factor)")


if __name__ == "__main__":
    main()
