"""Planning an LLM fleet: a chat and a summarisation service over H100, A100 and L4 GPUs at three sites.

Chat (Llama-3-8B, the Azure conversation trace's token statistics, TTFT p99 800 ms, TPOT p99
60 ms) is asked for at a metro edge site (24 rps) and at a regional datacenter (40 rps); summarisation
(the Arxiv trace's lengths, TTFT p99 2 s, TPOT p99 50 ms) at the central datacenter (12 rps). The
central site holds two H100s and eight A100s, the regional one A100s and L4s, the edge L4s; links
of 5 ms (metro-regional) and 10 ms (regional-central) join them, so that the cheapest GPU type
cannot serve everything and the plan must mix. The planner chooses hardware, tensor-parallel
degree (1, 2, 4, 8 where they can run), variant (fp16, fp8, int8, int4-awq within each service's
accuracy floor) and replica counts, and the verify loop simulates the plan. It prints the plan's cost against each baseline (best single GPU type, no
quantisation, TP 1 only, greedy), the planning time with its replica trials, and the verification.

With `--buckets chat=2048` (repeatable) a service's requests may be planned in request-size buckets of
prompt length (Mélange's idea, `lepton_sim.planner.buckets`): every way of merging the buckets (down to
none) is planned, the cheapest verified, and, when it splits, its deployment simulated as written
(requests routed by prompt length).

Run: python benchmarks/planner_llm.py [--rate-scale X] [--rounds N] [--buckets SERVICE=B1,B2 ...]
(the first run measures every replica type, about three minutes; the trials are cached
in the table cache, `$LEPTON_SIM_CACHE`, so a second run takes seconds)
"""
from __future__ import annotations

import argparse
import time

import dataclasses

from lepton_sim.planner import PlanOptions
from lepton_sim.planner.measured import STATS
from lepton_sim.scenario import parse_scenario
from lepton_sim.tablecache import default_store
from lepton_sim.verification.buckets import bucket_outcome, choose_buckets, verify_buckets
from lepton_sim.verification.deployment import deployment_mapping
from lepton_sim.verification.llm_meter import SimulatedReplicas
from lepton_sim.verification.loop import verify

CHAT_TOKENS = {"prompt": {"dist": "lognormal", "mean": 1155, "cv": 0.9, "max": 8192},
               "output": {"dist": "lognormal", "mean": 211, "cv": 1.2, "max": 2048}}
ARXIV_TOKENS = {"prompt": {"dist": "lognormal", "mean": 2588, "cv": 0.30, "max": 6144},
                "output": {"dist": "lognormal", "mean": 291, "cv": 0.6, "max": 2048}}


def fleet(rate_scale: float = 1.0) -> dict:
    sched = {"max_num_seqs": 256, "max_batched_tokens": 8192, "chunked_prefill": True}
    return {
        "name": "llm-fleet-three-sites", "seed": 7, "horizon": {"duration_s": 120, "warmup_s": 20},
        "hardware": {"h100": {"from": "nvidia-h100-sxm"}, "a100": {"from": "nvidia-a100-80gb"},
                     "l4": {"from": "nvidia-l4"}},
        "sites": {"central": {"capacity": {"h100": 2, "a100": 8}},
                  "regional": {"capacity": {"a100": 8, "l4": 16}},
                  "metro": {"kind": "edge", "capacity": {"l4": 8}}},
        "links": [{"between": ["metro", "regional"], "bandwidth_gbps": 10, "latency_ms": 5, "cost_per_gb": 0.01},
                  {"between": ["regional", "central"], "bandwidth_gbps": 40, "latency_ms": 10, "cost_per_gb": 0.02}],
        "models": {"llama3-8b": {"from": "llama-3-8b"}},
        "services": {
            "chat": {"model": "llama3-8b", "variants": ["fp16", "fp8", "int4-awq"],
                     "slo": {"ttft": {"percentile": 99, "latency_ms": 800},
                             "tpot": {"percentile": 99, "latency_ms": 60}},
                     "tokens": CHAT_TOKENS, "scheduler": sched,
                     "demand": [{"site": "metro", "rate_rps": 24 * rate_scale},
                                {"site": "regional", "rate_rps": 40 * rate_scale}]},
            "summarise": {"model": "llama3-8b", "variants": ["fp16", "fp8", "int8"],
                          "slo": {"ttft": {"percentile": 99, "latency_ms": 2000},
                                  "tpot": {"percentile": 99, "latency_ms": 50}},
                          "tokens": ARXIV_TOKENS, "scheduler": {**sched, "max_num_seqs": 64, "max_batched_tokens": 2048},
                          "demand": [{"site": "central", "rate_rps": 12 * rate_scale}]},
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate-scale", type=float, default=1.0, help="multiply every demand rate")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--buckets", action="append", default=[], metavar="SERVICE=B1,B2",
                    help="plan SERVICE's requests in prompt-length buckets ending at B1, B2, ... tokens")
    args = ap.parse_args()
    raw = fleet(args.rate_scale)
    for spec in args.buckets:
        name, _, bounds = spec.partition("=")
        raw["services"][name]["buckets"] = [int(b) for b in bounds.split(",")]
    given = parse_scenario(raw, file="<planner_llm>")
    options = PlanOptions(tables=default_store(), progress=lambda line: print(line, flush=True),
                          llm_meter=SimulatedReplicas())
    before = dataclasses.replace(STATS)
    t0 = time.perf_counter()
    chosen = choose_buckets(given, options)
    if chosen is not None:  # as `plan --verify` does: the splits planned close to the cheapest are verified
        chosen, v = verify_buckets(given, chosen, lambda s: verify(s, options, rounds=args.rounds))
    else:
        v = verify(given, options, rounds=args.rounds)
    wall = time.perf_counter() - t0
    final = v.final
    plan = final.plan
    print(f"\nplanned and verified in {wall:.1f} s wall: {STATS.trials - before.trials} replica trials simulated "
          f"({STATS.seconds - before.seconds:.1f} s), {STATS.cached - before.cached} read from the table cache; "
          f"{len(v.rounds)} verify round(s); every SLO met: {v.met}; certificate holds: {v.certificate.holds}")
    for r in v.rounds:
        met = all(c.met for c in r.services.values())
        print(f"  round {r.index} ({r.action}): ${r.usd_per_hour:.2f}/h, every SLO met: {met}"
              + (f"; {r.note}" if r.note else ""))
    print(f"plan: ${final.usd_per_hour:.2f}/h")
    for line in final.lines:
        print(f"  {line.id}: {line.count} x TP {line.tensor_parallel}, weights {dict(line.weights)}")
    for name, c in final.services.items():
        by = c.by_metric or {}
        print(f"  {name}: simulated TTFT p99 {by.get('ttft')} ms, TPOT p99 {by.get('tpot')} ms, met {c.met}")
    print("baselines (same capacity model, not simulated):")
    for b in plan.baselines:
        cost = b.usd_per_hour
        if cost is None:
            print(f"  {b.name}: none ({b.note})")
        else:
            print(f"  {b.name}: ${cost:.2f}/h, the plan saves {(cost - final.usd_per_hour) / cost:.1%}")
    if chosen is not None and chosen.buckets:
        t1 = time.perf_counter()
        bucket_outcome(given, chosen, deployment_mapping(final.lines), v.seed)
        print(f"the written deployment's simulation: {time.perf_counter() - t1:.1f} s")
    elif chosen is not None:
        print("request-size buckets did not pay: the services are planned unsplit")


if __name__ == "__main__":
    main()
