"""Wall time of one 64-row sweep run serially, on 2 local worker processes and on a 2-worker local Dask cluster.

The sweep: the built-in default scenario with its horizon doubled to 240 s of simulated time (two
services, three pools), the camera load at edge-a over 8 values x 8 seeds = 64 rows, each about
1.3 s of simulation on this kind of machine, so that
the per-row overhead of an executor (pickling, scheduling, the fsync'd journal, table rewrites) is
small against the work and the speed-up shows what parallel execution buys.

    python benchmarks/sweep_speed.py [--seeds 8]

Prints, per executor: wall time, speed-up over serial, mean wall and CPU time inside a row (measured
in the worker: a row's wall time above its CPU time means its core was shared, e.g. with another
program), the per-row overhead = (wall x workers - sum of in-row wall times) / rows, and the
1-minute load average before the run (above 0 means something else was running).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from lepton_sim.scenario import default_scenario_path
from lepton_sim.sweeps import sweep

RATES = [400, 600, 800, 1000, 1200, 1400, 1600, 1800]


def spec(seeds: int) -> dict[str, Any]:
    return {"name": "sweep-speed", "base": str(default_scenario_path()), "mode": "simulate",
            "seeds": list(range(1, seeds + 1)),
            "grid": {"horizon.duration_s": [240], "services.detect.demand[0].rate_rps": RATES},
            "collect": ["services.detect.latency_ms.p99", "cost.usd_per_hour"]}


def timed(out: Path, seeds: int, **executor: Any) -> dict[str, Any]:
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    table = sweep(spec(seeds), out=out, **executor)
    wall = time.perf_counter() - t0
    records = [json.loads(line) for line in (out / "journal.jsonl").read_text().splitlines()]
    assert table.num_rows == len(records) and all(r["status"] == "ok" for r in records)
    return {"wall_s": wall, "rows": table.num_rows, "in_row_s": sum(r["wall_s"] for r in records),
            "cpu_s": sum(r["cpu_s"] for r in records), "load": load, "table": table}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=8, help="seeds per load value (rows = 8 x seeds; default 8)")
    args = ap.parse_args()
    from distributed import LocalCluster

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="lepton-sweep-speed-") as tmp:
        root = Path(tmp)
        results["serial"] = timed(root / "serial", args.seeds, workers=1)
        results["2 local processes"] = timed(root / "local", args.seeds, workers=2)
        t0 = time.perf_counter()
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            start_s = time.perf_counter() - t0
            results["Dask LocalCluster, 2 workers"] = timed(root / "dask", args.seeds,
                                                           scheduler=cluster.scheduler_address)
    base = results["serial"]
    same = all(r["table"].equals(base["table"]) for r in results.values())
    print(f"sweep of {base['rows']} rows (default scenario, {len(RATES)} loads x {args.seeds} seeds) "
          f"on {os.cpu_count()} cores")
    print(f"{'executor':<30} {'wall s':>8} {'speed-up':>9} {'row wall s':>11} {'row CPU s':>10} "
          f"{'overhead/row s':>15} {'load before':>12}")
    for name, r in results.items():
        workers = 1 if name == "serial" else 2
        overhead = (r["wall_s"] * workers - r["in_row_s"]) / r["rows"]
        print(f"{name:<30} {r['wall_s']:>8.2f} {base['wall_s'] / r['wall_s']:>8.2f}x "
              f"{r['in_row_s'] / r['rows']:>11.3f} "
              f"{r['cpu_s'] / r['rows']:>10.3f} {overhead:>15.3f} {r['load']:>12.2f}")
    print(f"Dask LocalCluster start-up (not in its wall time): {start_s:.2f} s")
    print(f"identical tables on all three executors: {same}")


if __name__ == "__main__":
    main()
