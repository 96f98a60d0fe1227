"""Simulation speed and memory: simulated requests per wall second and peak memory, per engine.

Runs (a) the M/M/c queueing scenario (mmc-8) and (b) edge-vision, each at 1M and 5M simulated
requests (the horizon is stretched to reach the count at the scenario's own rates), each in a fresh
process so that its peak resident memory is its own, once on the event engine (`--engine event`)
and once as `simulate` runs it by default (`--engine auto`: the exact fast path where it applies;
edge-vision routes by load, so it stays on the event engine), and (c) the LLM chat scenario
(scenarios/llm/chat-h100.yaml: about 211 output tokens a request, every token an iteration of its
replica) at `--llm-counts` requests (default 20k and 100k: LLM requests cost far more wall time
each). In the same run it times a bare SimPy M/M/8 at mmc-8's rates (a `simpy.Resource` of 8 and a
process per customer), the yardstick each row is divided by; auto rows are also divided by their
event row. The fast path's compiled loops are loaded (or compiled, on a fresh cache) by a short
run before the timed one; that time is printed as "jit s".

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


def run_one(path: str, n: int, engine: str) -> dict:
    """In this process: simulate `path` stretched to about `n` requests on `engine`; report speed and peak RSS."""
    from lepton_sim.scenario import load_scenario
    from lepton_sim.scenario.rates import mean_rate
    from lepton_sim.sim import simulate

    def stretched(count: float) -> object:
        duration = count / rate
        horizon = s.horizon.model_copy(update={"duration_s": duration,
                                               "warmup_s": min(s.horizon.warmup_s, duration / 10)})
        return s.model_copy(update={"horizon": horizon})

    s = load_scenario(path)
    rate = sum(mean_rate(d) for svc in s.services.values() for d in svc.demand)
    t0 = time.perf_counter()
    if engine != "event":
        simulate(stretched(1000), engine=engine)  # loads (or compiles) the fast path's loops
    jit = time.perf_counter() - t0
    t0 = time.perf_counter()
    rec = simulate(stretched(n), engine=engine)
    wall = time.perf_counter() - t0
    tokens = sum(p.llm.output_tokens for p in rec.pools if p.llm is not None)
    return {"requests": rec.created, "wall_s": wall, "events": rec.events, "output_tokens": tokens,
            "jit_s": jit, "engines": dict(rec.engines),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def bare_simpy_mmc(n: int, c: int = 8, rate: float = 680.0, mean_s: float = 0.010) -> float:
    """Customers per wall second of a textbook SimPy M/M/c: a Resource and one process per customer."""
    import random

    import simpy

    rng = random.Random(1)  # a throwaway baseline, not part of lepton-sim
    env = simpy.Environment()
    server = simpy.Resource(env, capacity=c)

    def customer(env: simpy.Environment):  # noqa: ANN202
        with server.request() as req:
            yield req
            yield env.timeout(rng.expovariate(1.0 / mean_s))

    def source(env: simpy.Environment):  # noqa: ANN202
        for _ in range(n):
            yield env.timeout(rng.expovariate(rate))
            env.process(customer(env))

    env.process(source(env))
    t0 = time.perf_counter()
    env.run()
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[1_000_000, 5_000_000])
    ap.add_argument("--llm-counts", type=int, nargs="+", default=[20_000, 100_000])
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child[0], int(args.child[1]), args.child[2])))
        return
    bare = bare_simpy_mmc(500_000)
    print(f"bare SimPy M/M/8 at 680/s, 10 ms (Resource + process per customer): {bare:,.0f} customers/s")
    print(f"{'scenario':<16} {'engine':<6} {'requests':>10} {'wall s':>8} {'req/s':>10} {'x SimPy':>8} "
          f"{'x event':>8} {'jit s':>6} {'events/s':>11} {'peak RSS MB':>12} {'out tokens/s':>13}")
    cases = [(label, path, n, e) for label, path in CASES.items() for n in args.counts for e in ("event", "auto")]
    cases += [(label, path, n, "auto") for label, path in LLM_CASES.items() for n in args.llm_counts]
    event_rps: dict[tuple[str, int], float] = {}
    for label, path, n, engine in cases:
        out = subprocess.run([sys.executable, __file__, "--child", str(path), str(n), engine], check=True,
                             capture_output=True, text=True)
        r = json.loads(out.stdout)
        rps = r["requests"] / r["wall_s"]
        ran = "fast" if set(r["engines"].values()) == {"fast"} else "event" if engine == "event" or all(
            e.startswith("event") for e in r["engines"].values()) else "mixed"
        if engine == "event":
            event_rps[(label, n)] = rps
        vs_event = f"{rps / event_rps[(label, n)]:>8.1f}" if engine != "event" and (label, n) in event_rps else f"{'-':>8}"
        tokens = f"{r['output_tokens'] / r['wall_s']:>13,.0f}" if r["output_tokens"] else f"{'-':>13}"
        print(f"{label:<16} {ran:<6} {r['requests']:>10,} {r['wall_s']:>8.2f} {rps:>10,.0f} {rps / bare:>8.2f} "
              f"{vs_event} {r['jit_s']:>6.2f} {r['events'] / r['wall_s']:>11,.0f} {r['peak_rss_mb']:>12.0f} {tokens}")


if __name__ == "__main__":
    main()
