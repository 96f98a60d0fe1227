"""`lepton-sim validate SCENARIO [--duration S] [--seed N] [--out DIR] [--utilisation U] [--shared-cores]`: serve it for real here; measured vs simulated.

Exit codes: 0 when both runs completed (whatever the errors: the command measures, it does not
judge); 2 for a scenario it cannot read or cannot run on this machine (every reason at once).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lepton_sim.argtypes import int_at_least, positive_float
from lepton_sim.argtypes import out_dir as make_out_dir
from lepton_sim.fileio import write_json_atomic



def register(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "validate", help="serve a scenario for real on this machine and compare it with its simulation",
        description="Serve SCENARIO for real here (real server processes running the model's forward pass, "
                    "its arrivals in real time over loopback TCP, links emulated by a shaper), then simulate it "
                    "with the service times the servers measured; print measured against simulated.")
    p.add_argument("scenario", help="scenario YAML file (hardware from: this-machine)")
    p.add_argument("--duration", type=positive_float, metavar="S",
                   help="seconds of arrivals (default: the scenario's horizon; its warm-up share is kept)")
    p.add_argument("--seed", type=int_at_least(0), metavar="N", help="arrival seed (default: the scenario's)")
    p.add_argument("--out", metavar="DIR", help="write validation.json, both metrics, the profile used and a report")
    p.add_argument("--utilisation", type=positive_float, metavar="U",
                   help="scale every demand's rate_rps by one factor so that the busiest pool's simulated "
                        "utilisation is U (0 < U < 1), with its forward pass timed here first: the same load "
                        "on a faster or slower day")
    p.add_argument("--shared-cores", action="store_true",
                   help="let the OS place replicas and harness on every core (default: when a core is left over, "
                        "each replica worker on a core of its own and the harness on the rest)")
    p.set_defaults(func=cmd_validate)
    return p


def _check_utilisation(u: float, raw: dict[str, Any], spec: Any) -> None:
    """What `--utilisation` cannot scale, refused before anything starts or is written."""
    from lepton_sim.errors import InputError
    from lepton_sim.validation.llm_run import is_llm_spec

    if not 0 < u < 1:
        raise InputError(f"--utilisation {u:g}: give a utilisation above 0 and below 1")
    if is_llm_spec(spec):
        raise InputError("--utilisation scales layered pools' demand; this scenario's pools are LLM pools")
    missing = [f"services.{name}.demand[{i}]" for name, svc in (raw.get("services") or {}).items()
               for i, d in enumerate(svc.get("demand") or []) if d.get("rate_rps") is None]
    if missing:
        raise InputError(f"--utilisation scales rate_rps, which {', '.join(missing)} does not give")


def _at_utilisation(args: argparse.Namespace, raw: dict[str, Any], horizon: dict[str, float], path: Path,
                    spec: Any, progress: Any) -> tuple[dict[str, Any], Any, Any, dict[str, Any]]:
    """`--utilisation U`: the scenario with its demand rates scaled to U (`run.scale_to_utilisation`),
    parsed and planned again; with what was scaled, for validation.json."""
    from lepton_sim.scenario.load import parse_scenario
    from lepton_sim.validation.run import scale_to_utilisation
    from lepton_sim.validation.spec import run_spec

    scaled_raw, factor, u = scale_to_utilisation(raw, args.scenario, path.parent, spec, horizon, args.utilisation,
                                                 progress, args.shared_cores)
    progress(f"demand rates x{factor:.4f}: the busiest pool's simulated utilisation {u:.3f} "
             f"(asked {args.utilisation:g}), with the forward pass just timed")
    scenario = parse_scenario({**scaled_raw, "horizon": {**(scaled_raw.get("horizon") or {}), **horizon}},
                              file=args.scenario, base_dir=path.parent)
    spec = run_spec(scenario, scaled_raw, args.scenario, args.seed)
    return scaled_raw, scenario, spec, {"target": args.utilisation, "factor": round(factor, 6),
                                        "simulated_utilisation": round(u, 6),
                                        "basis": "every demand's rate_rps times the factor; the busiest pool's "
                                                 "utilisation simulated with the forward pass timed by a first "
                                                 "start of the servers just before the run"}


def _horizon(scenario: Any, duration: float | None) -> dict[str, float]:
    h = scenario.horizon
    if duration is None:
        return {"duration_s": h.duration_s, "warmup_s": h.warmup_s, "drain_s": h.drain_s}
    return {"duration_s": duration, "warmup_s": h.warmup_s * duration / h.duration_s, "drain_s": h.drain_s}


def cmd_validate(args: argparse.Namespace) -> int:
    from lepton_sim.scenario import load_scenario
    from lepton_sim.scenario.load import parse_scenario, parse_yaml
    from lepton_sim.validation.llm_run import compare_service, is_llm_spec
    from lepton_sim.validation.run import compare, validate
    from lepton_sim.validation.spec import run_spec

    scenario = load_scenario(args.scenario)
    path = Path(args.scenario)
    raw = parse_yaml(path.read_text(encoding="utf-8"), args.scenario)
    horizon = _horizon(scenario, args.duration)
    doc = {**raw, "horizon": {**(raw.get("horizon") or {}), **horizon}}
    scenario = parse_scenario(doc, file=args.scenario, base_dir=path.parent)
    spec = run_spec(scenario, raw, args.scenario, args.seed)  # every reason it cannot run here, before anything starts
    if args.utilisation is not None:
        _check_utilisation(args.utilisation, raw, spec)
    out_dir = make_out_dir(args.out) if args.out is not None else None

    def progress(msg: str) -> None:
        print(f"validate: {msg}", file=sys.stderr, flush=True)

    scaled = None
    if args.utilisation is not None:
        raw, scenario, spec, scaled = _at_utilisation(args, raw, horizon, path, spec, progress)

    outcome = validate(scenario, raw, args.scenario, path.parent, spec, horizon, progress, shared=args.shared_cores)
    if is_llm_spec(spec):
        services = {name: compare_service(name, outcome.measured, outcome.simulated, outcome.simulated_as_served,
                                          outcome.fits, outcome.latencies_ms.get(name), outcome.simulated_other)
                    for name in outcome.measured["services"]}
    else:
        services = compare(outcome.measured, outcome.simulated, outcome.forward_profile or outcome.profile,
                           outcome.simulated_as_served,
                           outcome.after_run)
    result = {"scenario": scenario.name, "seed": spec.seed, "duration_s": spec.duration_s,
              "warmup_s": spec.warmup_s, "services": services, "overhead_ms": outcome.overhead_ms,
              "cores": outcome.cores, "client_path": outcome.client_path or None, "rates_scaled": scaled,
              "wall_s": outcome.wall_s,
              "basis": LLM_BASIS if is_llm_spec(spec) else "measured: a real run on this machine (server processes, loopback TCP, emulated links); "
                       "simulated: the same scenario and seed, service times from profile.json (whole-model "
                       "timings taken in the server processes just before the run, plus the server's handling per "
                       "request timed on the rehearsal); simulated as served: the "
                       "same with each batch's time drawn from what the run's batches of its size cost (back to "
                       "back, from the worker's previous response sent to its last; after idle, from when the batch "
                       "was due: the wake-up too), the codec's times as the run "
                       "spent them, the harness's hop at the run's own medians and each link slower by the "
                       "shaper's lateness, which separates the simulator's queueing, batching and network model "
                       "from the kernel profile and the host's drift"}
    _print(result)
    if out_dir is not None:
        from lepton_sim.report.validation import CDF_FILE, write_validation_report

        write_json_atomic(out_dir / "metrics.measured.json", outcome.measured)
        write_json_atomic(out_dir / "metrics.simulated.json", outcome.simulated)
        write_json_atomic(out_dir / "metrics.simulated-as-served.json", outcome.simulated_as_served)
        for other, doc in outcome.simulated_other.items():
            write_json_atomic(out_dir / f"metrics.simulated-{other.replace('_', '-')}.json", doc)
        write_json_atomic(out_dir / "profile.json", outcome.profile)
        cdf = {name: {"measured_ms": _thin(outcome.latencies_ms.get(name)),
                      "simulated": {"latency_ms": c[0], "probability": c[1]},
                      "slo_ms": scenario.services[name].slo.latency_ms}
               for name, c in outcome.simulated_cdf.items()}
        write_json_atomic(out_dir / CDF_FILE, cdf)
        for fname, doc_ in outcome.files.items():
            write_json_atomic(out_dir / fname, doc_)
        write_json_atomic(out_dir / "validation.json", result)
        paths = write_validation_report(out_dir)
        print(f"wrote {out_dir / 'validation.json'}, both metrics, profile.json, {paths.html} and {paths.markdown}")
    return 0


LLM_BASIS = ("measured: a real run on this machine (an LLM server process per pool running continuous batching "
             "of the numpy transformer of kernels/transformer.py, the simulator's arrivals and token counts over "
             "loopback TCP); TTFT from creation to the first token back, TPOT (last back - first back) / "
             "(output - 1); simulated (the forecast): the same scenario and seed, each iteration's time from a "
             "model fitted (non-negative least squares, as below) to the engine's iterations timed in the server "
             "process on a designed grid of batches just before the run, one BLAS thread; simulated, LLM model: "
             "this-machine with lepton_sim.servicetime.llm's iteration model, the decoder GEMMs timed from "
             "profile.json (timed in the server process just before the run), attention, norms and the LM head "
             "as that model rooflines them; simulated as served: the same with each "
             "iteration's time from a model fitted (non-negative least squares of seconds on 1, tokens, samples, "
             "attention pairs and KV tokens read) to the iterations the server ran, which separates the "
             "scheduler model's error from the kernel profile's")


def _thin(lat: Any, n: int = 2000) -> list[float]:
    """The measured latencies as at most n evenly spaced order statistics (enough to draw a CDF)."""
    import numpy as np

    if lat is None or not len(lat):
        return []
    a = np.sort(np.asarray(lat))
    if len(a) > n:
        a = a[np.linspace(0, len(a) - 1, n).round().astype(int)]
    return [round(float(x), 6) for x in a]


def _print(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from lepton_sim.report.validation import fmt as _fmt

    console = Console()
    for name, s in result["services"].items():
        if s.get("kind") == "llm":
            _print_llm(console, name, result, s)
            continue
        t = Table(title=f"{name}: measured on this machine vs simulated ({result['duration_s']:g} s, seed {result['seed']})")
        for col in ("", "completed", "mean ms", "p50 ms", "p90 ms", "p99 ms", "SLO attainment"):
            t.add_column(col, justify="right" if col else "left")
        for side in ("measured", "simulated"):
            e = s[side]
            lat = e["latency_ms"]
            t.add_row(side, str(e["completed"]), *(_fmt(lat[k]) for k in ("mean", "p50", "p90", "p99")),
                      _fmt(e["slo_attainment"]))
        err = s["error"]
        t.add_row("error", "", *(_fmt(err[k], True) for k in ("mean", "p50", "p90", "p99")), "")
        if "simulated_as_served" in s:
            e = s["simulated_as_served"]
            t.add_row("simulated as served", str(e["completed"]),
                      *(_fmt(e["latency_ms"][k]) for k in ("mean", "p50", "p90", "p99")), _fmt(e["slo_attainment"]))
            t.add_row("error", "", *(_fmt(s["error_as_served"][k], True) for k in ("mean", "p50", "p90", "p99")), "")
        console.print(t)
        for pid, u in s["utilization"].items():
            console.print(f"  {pid}: utilisation measured {u['measured']:.3f}, simulated {u['simulated']:.3f}")
        for pid, by_b in s["forward_pass"].items():
            parts = [f"b{b} {f['served_ms']:.3f}/{f['profiled_ms']:.3f} ms" for b, f in by_b.items()
                     if f["profiled_ms"] is not None][:6]
            if parts:
                console.print(f"  {pid}: forward pass as served / as profiled: {', '.join(parts)}")
            drift = [f"b{b} {f['after_run_ms']:.3f} ms ({f['drift']:+.1%})" for b, f in by_b.items() if "drift" in f]
            if drift:
                console.print(f"  {pid}: timed again after the run (back to back, against as profiled): "
                              f"{', '.join(drift)}")
    if result.get("cores"):
        console.print(result["cores"]["describe"])
    if result.get("client_path"):
        c = result["client_path"]
        served = c.get("as_served_one_way_ms")
        console.print(f"harness path, simulated as a link: {c['one_way_ms']:.3f} ms each way in the forecast (rehearsal "
                      f"to the queue p50 {c['to_queue']['p50']:.3f}, back p50 {c['back']['p50']:.3f} ms)"
                      + (f", {served:.3f} ms as served" if served is not None else ""))
        if c.get("handling_ms") is not None:
            console.print(f"server handling in the forecast: {c['handling_ms']:.3f} ms per request on every batch (the "
                          "rehearsal's null batches, taken to response sent, median)")
        if c.get("as_served_link_extra_ms") is not None:
            console.print(f"links as served: +{c['as_served_link_extra_ms']:.3f} ms on each hop (the shaper's "
                          "serialisation overshoot p50 + delivery lateness p50)")
    console.print("harness overhead (ms, measured, not subtracted):")
    for k, v in result["overhead_ms"].items():
        if v is not None:
            console.print(f"  {k}: mean {v['mean']:.3f}, p50 {v['p50']:.3f}, p99 {v['p99']:.3f}, max {v['max']:.3f} (n={v['n']})")


def _print_llm(console: Any, name: str, result: dict[str, Any], s: dict[str, Any]) -> None:
    from rich.table import Table

    from lepton_sim.report.validation import fmt as _fmt

    for fig, label, err in (("ttft_ms", "TTFT", "error_ttft"), ("tpot_ms", "TPOT", "error_tpot"),
                            ("latency_ms", "end-to-end latency", "error")):
        t = Table(title=f"{name}: {label} (ms), measured on this machine vs simulated "
                        f"({result['duration_s']:g} s, seed {result['seed']})")
        for col in ("", "completed", "mean", "p50", "p90", "p99"):
            t.add_column(col, justify="right" if col else "left")
        rows = [("measured", s["measured"], None), ("simulated (iterations timed before)", s["simulated"], s[err])]
        if "simulated_as_served" in s:
            rows.append(("simulated, iterations as served", s["simulated_as_served"], s[err + "_as_served"]))
        if "simulated_llm_model" in s:
            rows.append(("simulated, LLM model + GEMM timings", s["simulated_llm_model"], s[err + "_llm_model"]))
        for label_, e, er in rows:
            t.add_row(label_, str(e["completed"]), *(_fmt(e[fig][k]) for k in ("mean", "p50", "p90", "p99")))
            if er is not None:
                t.add_row("  error", "", *(_fmt(er[k], True) for k in ("mean", "p50", "p90", "p99")))
        console.print(t)
    for pid, u in s["utilization"].items():
        it = s["iterations"][pid]
        console.print(f"  {pid}: utilisation measured {u['measured']:.3f}, simulated {u['simulated']:.3f}; iterations "
                      f"{it['measured']} / {it['simulated']}, mean sequences {_fmt(it['mean_batch_measured'])} / "
                      f"{_fmt(it['mean_batch_simulated'])}")
    for pid, f in s.get("iteration_fit", {}).items():
        if "before_run" in f:
            console.print(f"  {pid}: forecast, {f['before_run']['detail']}")
        console.print(f"  {pid}: as served, {f['detail']}")
