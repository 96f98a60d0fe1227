"""Scale: build time, peak memory and simulated requests per wall second of generated edge fleets.

Generates metro-fleet-like scenarios (see scenarios/metro-fleet.yaml) with N edge sites grouped
four to a region (R = ceil(N/4) regional datacenters, one core datacenter): an int8 MobileNet-V2
classifier on Jetson Orin Nano at every edge site, a ResNet-50 detector on L4 in every region and
on an H100 in the core, a BERT service on T4 in every region and on L4 in the core, routing
`least-latency`. Regions hang off the core and form a ring, so routes between regions have
alternatives. Each size runs in a fresh process so that its peak memory is its own, and prints:

- sites / pools;
- build: writing nothing, reading the YAML file, `load_scenario` (parse + validate) and
  `Simulation(...)` construction (routes, pools), in wall seconds;
- peak: the process's peak resident memory (ru_maxrss), which includes the interpreter and imports;
- run: simulated requests per wall second over a short run of about `--requests` requests
  (`Simulation.run()` only).

Run: python benchmarks/sim_scale.py [--sizes 10,100,1000] [--requests 200000]
     (add 10000 to --sizes for the issue's largest fleet; it takes minutes)
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

CLASSIFY_RPS, DETECT_RPS, DOCS_RPS = 300.0, 150.0, 700.0


def fleet(n: int, duration_s: float = 60.0) -> dict:
    """A metro-fleet-like scenario mapping with `n` edge sites, four to a region."""
    r = max(1, math.ceil(n / 4))
    regions = [f"region-{j:05d}" for j in range(r)]
    edges = [f"e{i:05d}" for i in range(n)]
    sites: dict = {"core": {"kind": "datacenter", "capacity": {"h100": 16, "l4": 32}}}
    for name in regions:
        sites[name] = {"kind": "datacenter", "capacity": {"l4": 16, "t4": 16}}
    for name in edges:
        sites[name] = {"kind": "edge", "capacity": {"nano": 4}}
    links = []
    for j, name in enumerate(regions):
        links.append({"between": [name, "core"], "bandwidth_gbps": 100, "latency_ms": 10 + (j * 7) % 20,
                      "cost_per_gb": 0.02})
    if r > 2:
        for j, name in enumerate(regions):
            links.append({"between": [name, regions[(j + 1) % r]], "bandwidth_gbps": 40,
                          "latency_ms": 8 + (j * 5) % 12, "cost_per_gb": 0.02})
    for i, name in enumerate(edges):
        links.append({"between": [name, regions[i // 4]], "bandwidth_gbps": 10, "latency_ms": 3 + i % 4,
                      "cost_per_gb": 0.01})
    replicas = [{"service": "classify", "site": e, "hardware": "nano", "variant": "int8", "count": 2} for e in edges]
    replicas += [{"service": "detect", "site": g, "hardware": "l4", "variant": "int8", "count": 2} for g in regions]
    replicas.append({"service": "detect", "site": "core", "hardware": "h100", "variant": "int8", "count": 1})
    replicas += [{"service": "documents", "site": g, "hardware": "t4", "variant": "int8", "count": 2} for g in regions]
    replicas.append({"service": "documents", "site": "core", "hardware": "l4", "variant": "int8", "count": 2})
    return {
        "name": f"fleet-{n}",
        "description": f"generated metro-fleet-like fleet of {n} edge sites in {r} regions",
        "seed": 11,
        "horizon": {"duration_s": duration_s, "warmup_s": min(5.0, duration_s / 10)},
        "hardware": {"h100": {"from": "nvidia-h100-sxm"}, "l4": {"from": "nvidia-l4"},
                     "t4": {"from": "nvidia-t4"}, "nano": {"from": "nvidia-jetson-orin-nano"}},
        "sites": sites,
        "links": links,
        "models": {"resnet50": {"from": "resnet50"}, "mobilenet": {"from": "mobilenet-v2"},
                   "bert": {"from": "bert-base", "seq_len": 128}},
        "services": {
            "classify": {"model": "mobilenet", "slo": {"percentile": 99, "latency_ms": 25},
                         "batching": {"max_batch": 4, "max_wait_ms": 1},
                         "demand": [{"site": e, "rate_rps": CLASSIFY_RPS} for e in edges]},
            "detect": {"model": "resnet50", "slo": {"percentile": 99, "latency_ms": 40},
                       "batching": {"max_batch": 16, "max_wait_ms": 2},
                       "demand": [{"site": e, "rate_rps": DETECT_RPS,
                                   "arrival": {"kind": "mmpp", "rates_rps": [100, 400], "mean_dwell_s": [30, 6]}}
                                  for e in edges]},
            "documents": {"model": "bert", "slo": {"percentile": 99, "latency_ms": 80},
                          "batching": {"max_batch": 32, "max_wait_ms": 5},
                          "demand": [{"site": g, "rate_rps": DOCS_RPS,
                                      "arrival": {"kind": "diurnal", "period_s": 60, "amplitude": 0.4}}
                                     for g in regions]},
        },
        "deployment": {"replicas": replicas, "routing": "least-latency"},
    }


def total_rate(n: int) -> float:
    return n * (CLASSIFY_RPS + DETECT_RPS) + max(1, math.ceil(n / 4)) * DOCS_RPS


def run_one(n: int, requests: int) -> dict:
    """In this process: write, load, build and run the fleet of `n` edge sites."""
    duration = requests / total_rate(n)  # a short run: about `requests` requests
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"fleet-{n}.yaml"
        path.write_text(yaml.safe_dump(fleet(n, duration), sort_keys=False), encoding="utf-8")
        import lepton_sim
        from lepton_sim.scenario import load_scenario
        from lepton_sim.sim.engine import Simulation

        t0 = time.perf_counter()
        s = load_scenario(path)
        t1 = time.perf_counter()
        sim = Simulation(s)
        t2 = time.perf_counter()
    rec = sim.run()
    t3 = time.perf_counter()
    return {"n": n, "sites": len(s.sites), "pools": len(s.deployment.replicas), "load_s": t1 - t0,
            "construct_s": t2 - t1, "build_s": t2 - t0, "requests": rec.created, "run_s": t3 - t2,
            "rps": rec.created / (t3 - t2), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "code": str(Path(lepton_sim.__file__).parent)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,100,1000", help="comma-separated edge-site counts (default 10,100,1000)")
    ap.add_argument("--requests", type=int, default=200_000, help="simulated requests per run (about)")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(run_one(args.one, args.requests)))
        return
    print(f"{'edge sites':>10} {'sites/pools':>13} {'load':>8} {'construct':>9} {'build':>8} {'peak MB':>8} "
          f"{'requests':>9} {'run':>8} {'requests/s':>11}")
    for n in (int(x) for x in args.sizes.split(",")):
        out = subprocess.run([sys.executable, __file__, "--one", str(n), "--requests", str(args.requests)],
                             capture_output=True, text=True, check=False)
        if out.returncode != 0:
            print(f"{n:>10} failed: {out.stderr.strip().splitlines()[-1:] or out.returncode}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{n:>10} {r['sites']:>6}/{r['pools']:<6} {r['load_s']:>7.2f}s {r['construct_s']:>8.2f}s "
              f"{r['build_s']:>7.2f}s {r['peak_rss_mb']:>8.0f} {r['requests']:>9} {r['run_s']:>7.2f}s "
              f"{r['rps']:>11.0f}", flush=True)
    print(f"(code: {r['code']})" if 'r' in locals() else "")


if __name__ == "__main__":
    main()
