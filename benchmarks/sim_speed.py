"""Simulation speed and memory: simulated requests per wall second and peak memory.

Runs (a) the M/M/c queueing scenario (mmc-8) and (b) edge-vision, each at 1M and 5M simulated
requests (the horizon is stretched to reach the count at the scenario's own rates), each in a fresh
process so that its peak resident memory is its own, and (c) the LLM chat scenario
(scenarios/llm/chat-h100.yaml: about 211 output tokens a request, every token an iteration of its
replica) at `--llm-counts` requests (default 20k and 100k: LLM requests cost far more wall time
each). For scale, it also times a bare SimPy M/M/1 (a `simpy.Resource` and a process per customer)
on this machine.

Run: python benchmarks/sim_speed.py [--counts 1000000 5000000] [--llm-counts 20000 100000]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = {"M/M/c (mmc-8)": ROOT / "scenarios" / "queueing" / "mmc-8.yaml",
         "edge-vision": ROOT / "scenarios" / "edge-vision.yaml"}
LLM_CASES = {"LLM chat": ROOT / "scenarios" / "llm" / "chat-h100.yaml"}


def run_one(path: str, n: int) -> dict:
    """In this process: simulate `path` stretched to about `n` requests; report speed and peak RSS."""
    from lepton_sim.scenario import load_scenario
    from lepton_sim.scenario.rates import mean_rate
    from lepton_sim.sim import simulate

    s = load_scenario(path)
    rate = sum(mean_rate(d) for svc in s.services.values() for d in svc.demand)
    duration = n / rate
    horizon = s.horizon.model_copy(update={"duration_s": duration, "warmup_s": min(s.horizon.warmup_s, duration / 10)})
    s = s.model_copy(update={"horizon": horizon})
    t0 = time.perf_counter()
    rec = simulate(s)
    wall = time.perf_counter() - t0
    tokens = sum(p.llm.output_tokens for p in rec.pools if p.llm is not None)
    return {"requests": rec.created, "wall_s": wall, "events": rec.events, "output_tokens": tokens,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def bare_simpy_mm1(n: int) -> float:
    """Customers per wall second of a textbook SimPy M/M/1: a Resource and one process per customer."""
    import random

    import simpy

    rng = random.Random(1)  # a throwaway baseline, not part of lepton-sim
    env = simpy.Environment()
    server = simpy.Resource(env, capacity=1)

    def customer(env: simpy.Environment):  # noqa: ANN202
        with server.request() as req:
            yield req
            yield env.timeout(rng.expovariate(100.0))

    def source(env: simpy.Environment):  # noqa: ANN202
        for _ in range(n):
            yield env.timeout(rng.expovariate(70.0))
            env.process(customer(env))

    env.process(source(env))
    t0 = time.perf_counter()
    env.run()
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[1_000_000, 5_000_000])
    ap.add_argument("--llm-counts", type=int, nargs="+", default=[20_000, 100_000])
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child[0], int(args.child[1]))))
        return
    print(f"bare SimPy M/M/1 (Resource + process per customer): {bare_simpy_mm1(300_000):,.0f} customers/s")
    print(f"{'scenario':<16} {'requests':>10} {'wall s':>8} {'req/s':>10} {'events/s':>11} {'peak RSS MB':>12}"
          f" {'out tokens/s':>13}")
    cases = [(label, path, n) for label, path in CASES.items() for n in args.counts]
    cases += [(label, path, n) for label, path in LLM_CASES.items() for n in args.llm_counts]
    for label, path, n in cases:
        out = subprocess.run([sys.executable, __file__, "--child", str(path), str(n)], check=True,
                             capture_output=True, text=True)
        r = json.loads(out.stdout)
        tokens = f"{r['output_tokens'] / r['wall_s']:>13,.0f}" if r["output_tokens"] else f"{'-':>13}"
        print(f"{label:<16} {r['requests']:>10,} {r['wall_s']:>8.2f} {r['requests'] / r['wall_s']:>10,.0f} "
              f"{r['events'] / r['wall_s']:>11,.0f} {r['peak_rss_mb']:>12.0f} {tokens}")


if __name__ == "__main__":
    main()
