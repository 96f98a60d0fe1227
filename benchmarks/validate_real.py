"""Measured against simulated: every shipped validation scenario served for real here, with repeats.

For each scenario in scenarios/validation/ and each repeat, `lepton-sim validate` runs it (real
server processes, real-time arrivals over loopback TCP, links emulated by the shaper) and this
prints the relative errors (simulated / measured - 1) of p50 and p99, both for the forecast (the
profile timed just before the run, after-idle timings included) and for the simulation as served
(each batch's time drawn from what the run's own batches of its size cost, the codec, the
harness's hop and the shaper's lateness as the run measured them: which leaves the simulator's
queueing, batching and network model alone to blame). It also prints utilisation measured and simulated,
the forward pass as served over as profiled at batch 1 (where the forecast misses, that ratio
says whether the kernel profile is why), the drift: the same back-to-back timing taken again after
the run over the one before it, minus 1 (the host's own change while the run went on), and the harness's p99 send lateness and p99 path from
creation to the server's queue (ms; a route without links has none in the simulation).
With --compare-shared each repeat also runs with `--shared-cores` (rows "<scenario>/shared"), in
alternation with the default (each replica worker on a core of its own when one is left for the
harness), so that both meet the host in the same state.

An LLM scenario (`kind: llm`, e.g. llm-chat) prints its own rows: measured TTFT and TPOT p50 and
p99, and their errors for the forecast (an iteration-time model fitted to the engine's iterations
timed on a designed grid in the server just before the run), as served (the same model fitted to
the iterations the server ran) and for `lepton_sim.servicetime.llm`'s iteration model on this
machine (the decoder GEMMs timed just before the run, the rest rooflined). Goal: within 10% at p50
and 15% at p99.

`one-pool-30` and `one-pool-80` run with `--utilisation 0.3` and `0.8`: their demand rates scaled
so that the forecast puts the pool at that utilisation on this machine as it is that day.

With --out DIR, the last repeat of each scenario is kept as DIR/<scenario>/ (validation.json,
both metrics, the profile used, report.html and report.md).

Run: python benchmarks/validate_real.py [--repeats 2] [--duration S] [--only NAME ...] [--out reports/validation]
                                       [--compare-shared]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios" / "validation").glob("*.yaml"))


# The scenarios named for a utilisation run at it whatever the host's speed that day (`--utilisation`:
# demand rates scaled with the forward pass timed just before); the others at their own rates.
UTILISATION = {"one-pool-30": 0.3, "one-pool-80": 0.8}


def run(path: Path, duration: float | None, out: Path, shared: bool = False) -> dict:
    from lepton_sim.cli import main

    argv = ["validate", str(path), "--out", str(out)] + (["--duration", str(duration)] if duration else [])
    argv += ["--shared-cores"] if shared else []
    argv += ["--utilisation", str(UTILISATION[path.stem])] if path.stem in UTILISATION else []
    with contextlib.redirect_stdout(io.StringIO()):
        rc = main(argv)
    if rc != 0:
        raise SystemExit(f"validate {path.name} exited {rc}")
    return json.loads((out / "validation.json").read_text())


def pct(x: float | None) -> str:
    return "     -" if x is None else f"{x:+6.1%}"


LLM_HEAD = ("measured TTFT p50/p99 ms, TPOT p50/p99 ms; errors of the forecast (iterations timed before the run), "
            "as served, and the LLM model with the GEMM timings: TTFT p50 p99 TPOT p50 p99 each")
GROUPS = (("", ""), ("served_", "_as_served"), ("model_", "_llm_model"))
LLM_KEYS = tuple(f"{pre}{fig}_{q}" for pre, _ in GROUPS for fig in ("ttft", "tpot") for q in ("p50", "p99"))


def _llm_errors(s: dict) -> dict[str, float]:
    out = {}
    for pre, sfx in GROUPS:
        for fig in ("ttft", "tpot"):
            for q in ("p50", "p99"):
                out[f"{pre}{fig}_{q}"] = s[f"error_{fig}{sfx}"][q]
    return out


def _llm_row(stem: str, rep: int, s: dict, wall: float) -> str:
    m = s["measured"]
    e = _llm_errors(s)
    (pid, u), = s["utilization"].items()
    return (f"{stem:<24}{rep + 1:>4}  TTFT {m['ttft_ms']['p50']:8.1f} {m['ttft_ms']['p99']:8.1f}  TPOT "
            f"{m['tpot_ms']['p50']:6.1f} {m['tpot_ms']['p99']:6.1f}  forecast " +
            " ".join(pct(e[k]) for k in LLM_KEYS[:4]) + "  as served " + " ".join(pct(e[k]) for k in LLM_KEYS[4:8]) +
            "  LLM model " + " ".join(pct(e[k]) for k in LLM_KEYS[8:]) +
            f"  n {m['completed']:>4}  util {u['measured']:.2f}/{u['simulated']:.2f}  wall {wall:4.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--duration", type=float, help="seconds of arrivals (default: each scenario's horizon)")
    ap.add_argument("--only", nargs="*", help="scenario names (file stems) to run")
    ap.add_argument("--out", help="keep each scenario's last run under this directory")
    ap.add_argument("--compare-shared", action="store_true",
                    help="run each repeat twice, pinned (the default) and with --shared-cores, in alternation")
    args = ap.parse_args()
    chosen = [p for p in SCENARIOS if not args.only or p.stem in args.only]
    print(f"{'scenario':<24}{'rep':>4}{'p50 ms':>9}{'p99 ms':>9}{'err p50':>9}{'err p99':>9}"
          f"{'served p50':>11}{'served p99':>11}{'util m/s':>13}{'fwd b1 s/p':>11}{'drift':>8}{'late p99':>9}{'path p99':>9}"
          f"{'wall s':>8}")
    summary: dict[str, list[tuple[float, float, float, float]]] = {}
    llm: dict[str, list[dict[str, float]]] = {}
    llm_rows: list[str] = []
    modes = (False, True) if args.compare_shared else (False,)
    for path in chosen:
        for rep in range(args.repeats):
            for shared in modes:
                label = path.stem + ("/shared" if shared else "")
                with tempfile.TemporaryDirectory() as tmp:
                    t = time.perf_counter()
                    v = run(path, args.duration, Path(tmp) / "v", shared)
                    wall = time.perf_counter() - t
                    if args.out and rep == args.repeats - 1 and not shared:
                        dst = Path(args.out) / path.stem
                        if dst.exists():
                            shutil.rmtree(dst)
                        shutil.copytree(Path(tmp) / "v", dst)
                for name, s in v["services"].items():
                    if s.get("kind") == "llm":
                        llm_rows.append(_llm_row(label, rep, s, wall))
                        print(llm_rows[-1], flush=True)
                        llm.setdefault(label, []).append(_llm_errors(s))
                        continue
                    m = s["measured"]["latency_ms"]
                    e, es = s["error"], s["error_as_served"]
                    (pid, u), = s["utilization"].items()
                    fwd = s["forward_pass"][pid].get("1") or next(iter(s["forward_pass"][pid].values()))
                    ratio = fwd["ratio"]
                    drift = fwd.get("drift")
                    path_p99 = (v["overhead_ms"].get("direct_path_to_queue") or {}).get("p99")
                    print(f"{label:<24}{rep + 1:>4}{m['p50']:>9.3f}{m['p99']:>9.3f}{pct(e['p50']):>9}{pct(e['p99']):>9}"
                          f"{pct(es['p50']):>11}{pct(es['p99']):>11}{u['measured']:>6.3f}/{u['simulated']:.3f}"
                          f"{ratio:>11.2f}{pct(drift):>8}{v['overhead_ms']['send_lateness']['p99']:>9.3f}"
                          f"{path_p99 if path_p99 is not None else float('nan'):>9.3f}{wall:>8.0f}", flush=True)
                    summary.setdefault(label, []).append((e["p50"], e["p99"], es["p50"], es["p99"]))
    if summary:
        print("\nmedian |error| over repeats (forecast p50, p99; as served p50, p99):")
    for name, rows in summary.items():
        cols = [statistics.median(abs(r[i]) for r in rows) for i in range(4)]
        print(f"  {name:<24}" + "".join(f"{c:>8.1%}" for c in cols))
    if llm:
        print(f"\nLLM scenarios ({LLM_HEAD}):")
        for row in llm_rows:
            print(row)
        print("median |error| over repeats (TTFT p50, p99; TPOT p50, p99), forecast / as served / LLM model:")
        for name, rows in llm.items():
            cols = [statistics.median(abs(r[k]) for r in rows) for k in LLM_KEYS]
            print(f"  {name:<20}" + "".join(f"{c:>8.1%}" for c in cols[:4]) + "   /" +
                  "".join(f"{c:>8.1%}" for c in cols[4:8]) + "   /" + "".join(f"{c:>8.1%}" for c in cols[8:]))
    if args.out:
        print(f"\nkept the last run of each under {args.out}/")


if __name__ == "__main__":
    main()
