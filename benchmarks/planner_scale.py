"""Planner scale: model size, build time, solve time and gap from small to large generated instances.

    python benchmarks/planner_scale.py                    # small, medium, large; HiGHS and CBC
    python benchmarks/planner_scale.py --sizes large --solvers highs --time-limit 60

Instances are regions of one datacenter and four edge sites (40 sites = 8 regions), six hardware
types (H100, A100, L4, T4 in datacenters; Jetson AGX Orin and Orin Nano, some L4, at the edge),
models from the zoo with four variants each (fp32/fp16/int8/2:4-sparse int8, or BERT's
fp16/int8/distilled/distilled int8), and services with one to three demand sites, Poisson or
bursty (mmpp) demand, p99 targets, accuracy floors and batching. Edge slots are few and cheap,
so services compete for them. Everything is drawn from one seeded generator.

`large-loose` is the large instance with twenty times the slots: no shared limit binds, and the
planner's grouping solves it as 500 independent groups (with 4x slots the cheap edge slots are still
contested and everything couples). `--monolithic` also solves each size as one
model (HiGHS, no grouping), for comparison.

Columns: candidates (pools after pruning), variables / integers / constraints (summed over the
groups solved last), groups and lazy rounds, prep_s (scenario -> pruned problem, capacity tables
included), tables_s (of which: simulating batching pools for measured tables), simulations and
cache_hits (measured-table points simulated / read from the cache), build_s (PuLP models), solve_s
(solver calls), wall_s (build and solve), the plan's cost, gap, status. With `--cache DIR` every
size runs a second time reading its tables from DIR (`mode` "... (cached)").
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lepton_sim.planner.measured import STATS, MemoryStore  # noqa: E402
from lepton_sim.planner.options import PlanOptions  # noqa: E402
from lepton_sim.planner.problem import build_problem  # noqa: E402
from lepton_sim.planner.search import solve_problem  # noqa: E402
from lepton_sim.scenario import parse_scenario  # noqa: E402
from lepton_sim.tablecache import DiskStore  # noqa: E402

SIZES = {"small": (20, 10, 1), "medium": (100, 20, 1), "large": (500, 40, 1),
         "large-loose": (500, 40, 20)}  # services, sites, slot multiplier

HARDWARE = {"h100": "nvidia-h100-sxm", "a100": "nvidia-a100-80gb", "l4": "nvidia-l4", "t4": "nvidia-t4",
            "orin": "nvidia-jetson-agx-orin", "nano": "nvidia-jetson-orin-nano"}

MODELS: dict[str, dict[str, Any]] = {
    "resnet50": {"from": "resnet50"},
    "mobilenet": {"from": "mobilenet-v2", "variants": {
        "int8-p50": {"precision": "int8", "sparsity": {"pattern": "2:4", "ratio": 0.5}, "accuracy": 0.712}}},
    "bert": {"from": "bert-base", "seq_len": 128},
    "digits": {"from": "digits-mlp", "variants": {
        "fp32": {"precision": "fp32", "accuracy": 0.97}, "fp16": {"precision": "fp16", "accuracy": 0.97},
        "int8": {"precision": "int8", "accuracy": 0.965},
        "int8-p50": {"precision": "int8", "sparsity": {"pattern": "2:4", "ratio": 0.5}, "accuracy": 0.955}}},
}
VARIANTS = {"resnet50": ["fp32", "fp16", "int8", "int8-p50"], "mobilenet": ["fp32", "fp16", "int8", "int8-p50"],
            "bert": ["fp16", "int8", "distil", "distil-int8"], "digits": ["fp32", "fp16", "int8", "int8-p50"]}
FLOORS = {"resnet50": [None, 0.76], "mobilenet": [None, 0.715], "bert": [None, 0.91, 0.92], "digits": [None, 0.96]}
SLO_MS = {"resnet50": (25, 80), "mobilenet": (15, 60), "bert": (40, 120), "digits": (5, 25)}


def make_instance(n_services: int, n_sites: int, seed: int = 1, slots: int = 1) -> dict[str, Any]:
    """A scenario mapping with `n_services` services over `n_sites` sites (regions of 1 datacenter + 4 edges).

    `slots` multiplies every site's capacity (with 20 no shared limit binds and services decouple).
    """
    rng = np.random.default_rng(seed)
    regions = max(1, n_sites // 5)
    sites: dict[str, Any] = {}
    links: list[dict[str, Any]] = []
    edges_of: dict[int, list[str]] = {}
    for r in range(regions):
        dc = f"dc{r}"
        sites[dc] = {"kind": "datacenter", "capacity": {
            "h100": slots * int(rng.integers(2, 17)), "a100": slots * int(rng.integers(2, 17)),
            "l4": slots * int(rng.integers(16, 49)), "t4": slots * int(rng.integers(16, 49))}}
        edges_of[r] = []
        for e in range(4):
            name = f"e{r}-{e}"
            cap = {"orin": slots * int(rng.integers(2, 5)), "nano": slots * int(rng.integers(2, 7))}
            if rng.random() < 0.3:
                cap["l4"] = slots * int(rng.integers(1, 3))
            sites[name] = {"kind": "edge", "capacity": cap}
            edges_of[r].append(name)
            links.append({"between": [name, dc], "bandwidth_gbps": float(rng.choice([10.0, 25.0])),
                          "latency_ms": float(np.round(rng.uniform(1, 6), 2)), "cost_per_gb": 0.01})
    for r in range(regions if regions > 2 else regions - 1):
        links.append({"between": [f"dc{r}", f"dc{(r + 1) % regions}"], "bandwidth_gbps": 100.0,
                      "latency_ms": float(np.round(rng.uniform(4, 12), 2)), "cost_per_gb": 0.02})
    for r in range(0, regions - 3, 3):
        if (r + 3) % regions == (r - 1) % regions:
            continue  # already joined by the ring
        links.append({"between": [f"dc{r}", f"dc{r + 3}"], "bandwidth_gbps": 40.0,
                      "latency_ms": float(np.round(rng.uniform(8, 20), 2)), "cost_per_gb": 0.02})
    services: dict[str, Any] = {}
    names = list(MODELS)
    for i in range(n_services):
        model = names[int(rng.choice(len(names), p=[0.4, 0.25, 0.2, 0.15]))]
        lo, hi = SLO_MS[model]
        batch = int(rng.choice([1, 4, 8, 16]))
        r = int(rng.integers(regions))
        pool = edges_of[r] + [f"dc{r}"]
        k = int(rng.integers(1, 4))
        demand = []
        for site in rng.choice(pool, size=k, replace=False):
            rate = float(np.clip(np.round(rng.lognormal(np.log(100), 0.8), 1), 5, 1500))
            line: dict[str, Any] = {"site": str(site), "rate_rps": rate}
            if rng.random() < 0.2:
                line["arrival"] = {"kind": "mmpp", "rates_rps": [1.0, 3.0], "mean_dwell_s": [20.0, 5.0]}
            demand.append(line)
        floor = FLOORS[model][int(rng.integers(len(FLOORS[model])))]
        slo_ms = float(rng.integers(lo, hi + 1))
        wait = 0.0 if batch == 1 else min(float(rng.choice([1.0, 2.0, 5.0])), slo_ms / 5)
        svc: dict[str, Any] = {
            "model": model, "variants": VARIANTS[model], "slo": {"percentile": 99, "latency_ms": slo_ms},
            "batching": {"max_batch": batch, "max_wait_ms": wait},
            "demand": demand,
        }
        if floor is not None:
            svc["min_accuracy"] = floor
        services[f"s{i:03d}"] = svc
    return {
        "name": f"scale-{n_services}x{n_sites}", "seed": seed, "horizon": {"duration_s": 60, "warmup_s": 5},
        # The instances measure the planner's size and speed, not the hardware: they keep the
        # uncalibrated roofline they were sized with, so their figures stay comparable.
        "hardware": {k: {"from": v, "calibration": None, "on_chip_mb": None} for k, v in HARDWARE.items()},
        "sites": sites, "links": links, "models": MODELS, "services": services,
    }


def run(size: str, solver: str, time_limit: float, gap: float | None, decompose: bool, seed: int,
        latency_model: str = "tight", cache: Path | None = None) -> dict[str, Any]:
    """Prepare, build and solve one generated instance; the row of the table."""
    n_services, n_sites, slots = SIZES[size]
    scenario = parse_scenario(make_instance(n_services, n_sites, seed=seed, slots=slots), file=f"<{size}>")
    opts = PlanOptions(solver=solver, time_limit_s=time_limit, gap=gap, baselines=False, decompose=decompose,
                       latency_model=latency_model,  # type: ignore[arg-type]
                       tables=DiskStore(cache) if cache is not None else MemoryStore())
    before = replace(STATS)
    t0 = time.perf_counter()
    problem = build_problem(scenario, opts)
    prep_s = time.perf_counter() - t0
    sim_s = STATS.seconds - before.seconds
    if problem.reasons:
        return {"size": size, "solver": solver, "error": f"{len(problem.reasons)} demands cannot be served"}
    t0 = time.perf_counter()
    sol = solve_problem(problem)
    wall_s = time.perf_counter() - t0
    return {"size": size, "services": n_services, "sites": n_sites, "solver": sol.solver,
            "mode": "grouped" if decompose else "one model", "candidates": len(problem.candidates),
            "arcs": len(problem.arcs), "variables": sol.size.variables, "integers": sol.size.integer_variables,
            "constraints": sol.size.constraints, "groups": sol.groups, "rounds": sol.rounds, "prep_s": prep_s,
            "tables_s": sim_s, "simulations": STATS.trials - before.trials, "cache_hits": STATS.cached - before.cached,
            "build_s": sol.build_s, "solve_s": sol.solve_s, "wall_s": wall_s, "usd_per_hour": sol.objective,
            "gap": sol.gap, "status": sol.status.value}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--solvers", nargs="+", default=["highs", "cbc"], choices=["highs", "cbc"])
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--gap", type=float, default=None, help="stop at this relative gap (default: the solver's)")
    ap.add_argument("--monolithic", action="store_true", help="also solve each size as one model (HiGHS)")
    ap.add_argument("--latency-model", choices=["tight", "bound"], default="tight")
    ap.add_argument("--cache", type=Path, default=None,
                    help="a table-cache directory: each size then runs twice, the second from the cache "
                         "(default: tables in memory, measured afresh per run)")
    args = ap.parse_args()
    rows = []
    for size in args.sizes:
        for solver in args.solvers:
            for again in (False, True) if args.cache is not None else (False,):
                rows.append(run(size, solver, args.time_limit, args.gap, True, args.seed, args.latency_model, args.cache))
                rows[-1]["mode"] += " (cached)" if again else ""
                _print_row(rows[-1])
        if args.monolithic:
            rows.append(run(size, "highs", args.time_limit, args.gap, False, args.seed))
            _print_row(rows[-1])
    return 0


HEADER = ("size", "services", "sites", "solver", "mode", "candidates", "variables", "integers", "constraints",
          "groups", "rounds", "prep_s", "tables_s", "simulations", "cache_hits", "build_s", "solve_s", "wall_s",
          "usd_per_hour", "gap", "status")
_printed = False


def _print_row(row: dict[str, Any]) -> None:
    global _printed
    if not _printed:
        print(" | ".join(HEADER))
        _printed = True
    if "error" in row:
        print(f"{row['size']} | {row['solver']} | error: {row['error']}")
        return
    cells = []
    for h in HEADER:
        v = row[h]
        cells.append(f"{v:.2f}" if isinstance(v, float) and h.endswith("_s") else
                     f"{v:.2f}" if h == "usd_per_hour" else
                     ("-" if v is None else f"{v:.4%}") if h == "gap" else str(v))
    print(" | ".join(cells), flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
