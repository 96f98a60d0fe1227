"""Training jobs at scale: wall time to simulate 100 iterations of data-parallel jobs of 8 to 1,024 devices.

Each job is ResNet-50 in mixed precision on H100 SXM, 8 to a node, 128 samples per device, gradients
ring-all-reduced in 25 MB buckets overlapped with the backward pass, 2% per-device variation (so
every iteration draws one factor per device). The goal (issue 15): 100 iterations of a 1,024-device
job in under 10 s of wall time. Each size runs in this process; build = load and `Simulation(...)`.

Run: python benchmarks/training_scale.py [--sizes 8,64,256,1024] [--iterations 100]
"""
from __future__ import annotations

import argparse
import time

from lepton_sim.metrics import build_metrics
from lepton_sim.scenario import parse_scenario
from lepton_sim.sim import Simulation


def job(n: int, iterations: int, kind: str) -> dict:
    return {
        "name": f"train-{n}", "seed": 1, "horizon": {"duration_s": 3600, "warmup_s": 0},
        "hardware": {"h100": {"from": "nvidia-h100-sxm"}},
        "sites": {"dc": {"capacity": {"h100": n}, "fabric_gbps": 3200, "fabric_latency_us": 5}},
        "models": {"resnet50": {"from": "resnet50"}},
        "jobs": {"j": {"model": "resnet50", "variant": "fp16", "global_batch": 128 * n,
                       "samples": 128 * n * iterations,
                       "placement": {"site": "dc", "hardware": "h100", "count": n, "per_node": min(8, n)},
                       "sync": {"kind": kind, "bucket_mb": 25, "overlap": True}, "straggler_cv": 0.02}},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="8,64,256,1024")
    ap.add_argument("--iterations", type=int, default=100)
    args = ap.parse_args()
    print(f"{'devices':>8} {'sync':<15} {'build s':>8} {'run s':>8} {'iterations':>10} {'iteration ms':>12} "
          f"{'scaling':>8} {'samples/s':>12}")
    for n in (int(x) for x in args.sizes.split(",")):
        for kind in ("ring-allreduce", "tree-allreduce"):
            t0 = time.perf_counter()
            s = parse_scenario(job(n, args.iterations, kind))
            sim = Simulation(s)
            t1 = time.perf_counter()
            rec = sim.run()
            t2 = time.perf_counter()
            j = build_metrics(s, rec)["jobs"]["j"]
            print(f"{n:>8} {kind:<15} {t1 - t0:>8.2f} {t2 - t1:>8.3f} {j['iterations']:>10} "
                  f"{j['iteration_ms']['mean']:>12.3f} {j['scaling_efficiency']:>8.1%} {j['samples_per_s']:>12,.0f}")


if __name__ == "__main__":
    main()
