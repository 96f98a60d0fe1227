"""The report of a `validate --out` directory: measured against simulated per service, both CDFs on one plot."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from lepton_sim.report.build import read_json
from lepton_sim.report.document import Figure, Report, ReportPaths, Section, Table, Text, write
from lepton_sim.report.style import INK, SITE_PALETTE, SLO_RED, drawing, png_bytes

CDF_FILE = "validation-cdf.json"


def fmt(x: float | None, pct: bool = False) -> str:
    """A figure of validation.json as the report and the CLI show it: ms to 3 decimals, errors as signed %."""
    if x is None:
        return "-"
    return f"{x:+.1%}" if pct else f"{x:.3f}"


def _cdf_figure(name: str, c: dict[str, Any]) -> Figure:
    import numpy as np

    with drawing(7.0, 3.4) as fig:
        ax = fig.add_subplot()
        m = np.asarray(c["measured_ms"])
        if len(m):
            ax.step(m, np.arange(1, len(m) + 1) / len(m), where="post", color=INK, label="measured (real run)")
        s = c["simulated"]
        ax.plot(s["latency_ms"], s["probability"], color=SITE_PALETTE[0], linestyle="--", label="simulated")
        ax.axvline(c["slo_ms"], color=SLO_RED, linewidth=1, label=f"SLO {c['slo_ms']:g} ms")
        ax.set_xscale("log")
        ax.set_xlabel("end-to-end latency (ms)")
        ax.set_ylabel("fraction of requests")
        ax.set_title(f"{name}: latency CDF, measured and simulated")
        ax.legend(loc="lower right")
        png = png_bytes(fig)
    return Figure(f"cdf-{name}", f"{name}: latency CDF", png,
                  "Measured: every counted request of the real run (up to 2,000 order statistics drawn). "
                  "Simulated: the simulation's latency quantiles at 0.5% steps.")


def validation_report(run_dir: Path) -> Report:
    v = read_json(run_dir / "validation.json")
    cdf = read_json(run_dir / CDF_FILE) if (run_dir / CDF_FILE).is_file() else {}
    sections = []
    facts = []
    for name, s in v["services"].items():
        rows = []
        for side in ("measured", "simulated"):
            e = s[side]
            rows.append((side, str(e["completed"]), *(fmt(e["latency_ms"][k]) for k in ("mean", "p50", "p90", "p99")),
                         fmt(e["slo_attainment"])))
        rows.append(("error (simulated / measured - 1)", "", *(fmt(s["error"][k], True) for k in ("mean", "p50", "p90", "p99")), ""))
        if "simulated_as_served" in s:
            e = s["simulated_as_served"]
            rows.append(("simulated as served", str(e["completed"]),
                         *(fmt(e["latency_ms"][k]) for k in ("mean", "p50", "p90", "p99")), fmt(e["slo_attainment"])))
            rows.append(("error as served", "", *(fmt(s["error_as_served"][k], True)
                                                          for k in ("mean", "p50", "p90", "p99")), ""))
        blocks: list[Any] = [Table(f"{name}: latency (ms)", ("", "completed", "mean", "p50", "p90", "p99", "SLO attainment"),
                                   tuple(rows))]
        util = tuple((pid, fmt(u["measured"]), fmt(u["simulated"])) for pid, u in s["utilization"].items())
        if util:
            blocks.append(Table(f"{name}: pool utilisation", ("pool", "measured", "simulated"), util,
                                "Measured: forward-pass time within the window over replicas x window."))
        fwd = tuple((pid, b, fmt(f["served_ms"]), fmt(f["profiled_ms"]), fmt(f["ratio"]),
                     fmt(f.get("after_run_ms")), fmt(f.get("drift"), True))
                    for pid, by_b in s.get("forward_pass", {}).items() for b, f in by_b.items())
        if fwd:
            blocks.append(Table(f"{name}: forward pass (ms), as served in the real run and as profiled before it",
                                ("pool", "batch", "served", "profiled", "ratio", "after the run", "drift"), fwd,
                                "Profiled: back to back in the server process before the load started; after the "
                                "run: the same timing again once the load stopped (drift: after over before, "
                                "minus 1, the host's own change meanwhile). A ratio above 1 is time the forecast "
                                "could not know of (caches and cores shared with the load generator and the "
                                "shaper, idle gaps, host contention)."))
        if name in cdf:
            blocks.append(_cdf_figure(name, cdf[name]))
        sections.append(Section(name, tuple(blocks)))
        for k in ("p50", "p99"):
            facts.append((f"{name} {k} error", fmt(s["error"][k], True)))
    over = tuple((k, *(fmt(x[q]) for q in ("mean", "p50", "p99", "max")), str(x["n"]))
                 for k, x in v["overhead_ms"].items() if x is not None)
    sections.append(Section("Harness overhead", (
        Table("measured costs of the harness itself (ms), not subtracted from the latencies",
              ("what", "mean", "p50", "p99", "max", "n"), over),
        *((Text(v["cores"]["describe"]),) if v.get("cores") else ()),
        *((Text(f"harness path, simulated as a link: {v['client_path']['one_way_ms']:.3f} ms each way in the "
                f"forecast" + (f", {v['client_path']['as_served_one_way_ms']:.3f} ms as served"
                               if v["client_path"].get("as_served_one_way_ms") is not None else "")
                + f" ({v['client_path']['basis']})"
                + (f"; server handling in the forecast: {v['client_path']['handling_ms']:.3f} ms per request"
                   if v["client_path"].get("handling_ms") is not None else "")
                + (f"; links as served: +{v['client_path']['as_served_link_extra_ms']:.3f} ms on each hop (the "
                   "shaper's serialisation overshoot p50 + delivery lateness p50)"
                   if v["client_path"].get("as_served_link_extra_ms") is not None else "")),)
          if v.get("client_path") else ()),
        Text(v.get("basis", "")))))
    return Report(f"lepton-sim validation: {v['scenario']}", f"real run on this machine against simulation, "
                  f"{v['duration_s']:g} s of arrivals, seed {v['seed']}", tuple(sections), tuple(facts))


def write_validation_report(run_dir: str | Path, out_dir: str | Path | None = None) -> ReportPaths:
    src = Path(run_dir)
    return write(validation_report(src), Path(out_dir) if out_dir is not None else src)
