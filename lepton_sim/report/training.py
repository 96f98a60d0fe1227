"""The report's training-jobs section: each job's iteration split into compute and the
communication nothing hid, and the table of its figures (metrics.json `jobs`)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lepton_sim.report.document import Figure, Section, Table, Text
from lepton_sim.report.style import NEUTRAL, drawing, fmt, pct, png_bytes

COMPUTE = "#4c78a8"
EXPOSED = "#e45756"


def iteration_png(jobs: Mapping[str, Mapping[str, Any]]) -> bytes:
    """One bar per job over its mean iteration (ms): compute (the slowest device's forward and
    backward), then the exposed communication; the whole communication, overlapped or not, as a
    thin bar beneath."""
    names = [n for n, j in jobs.items() if j["iteration_ms"]["mean"] is not None]
    with drawing(9.0, 1.8 + 0.7 * max(1, len(names))) as fig:
        ax = fig.subplots()
        for i, name in enumerate(names):
            j = jobs[name]
            c, x, comm = j["compute_ms"], j["exposed_communication_ms"], j["communication_ms"]
            ax.barh(i, c, color=COMPUTE, height=0.45, label="compute" if i == 0 else None)
            ax.barh(i, x, left=c, color=EXPOSED, height=0.45, label="exposed communication" if i == 0 else None)
            ax.barh(i + 0.32, comm, color=NEUTRAL, height=0.12, label="all communication" if i == 0 else None)
            ax.text(c + x, i, f"  {fmt(j['iteration_ms']['mean'])} ms", va="center", fontsize=8)
        ax.set_yticks(range(len(names)), names)
        ax.invert_yaxis()
        ax.set_xlabel("ms per iteration (mean)")
        if names:
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.45 / max(1, len(names))), ncol=3, fontsize=8,
                      frameon=False)
        return png_bytes(fig)


def scaling_png(jobs: Mapping[str, Mapping[str, Any]]) -> bytes:
    """Per job, modelled samples per second against devices (same micro-batch, no stragglers),
    beside the ideal line of one device's rate times the count."""
    with drawing(9.0, 3.2) as fig:
        ax = fig.subplots()
        for k, (name, j) in enumerate(jobs.items()):
            pts = j.get("scaling") or []
            if not pts:
                continue
            n = [p["devices"] for p in pts]
            rate = [p["samples_per_s"] for p in pts]
            one = pts[0]["samples_per_s"] / pts[0]["devices"] * pts[0]["efficiency"]
            line = ax.plot(n, rate, marker="o", label=f"{name} (modelled)")[0]
            ax.plot(n, [one * x for x in n], linestyle=":", color=line.get_color(), label=f"{name}: ideal")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("devices")
        ax.set_ylabel("samples per second")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, frameon=False)
        else:
            ax.text(0.5, 0.5, "no scaling curve in this run's metrics", ha="center", va="center",
                    transform=ax.transAxes, color=NEUTRAL)
        return png_bytes(fig)


def jobs_section(metrics: Mapping[str, Any]) -> Section | None:
    jobs = metrics.get("jobs")
    if not jobs:
        return None
    rows = []
    for name, j in jobs.items():
        it = j["iteration_ms"]
        rows.append((name, f"{j['devices']} x {j['hardware']} ({j['nodes']} nodes)", j["sync"], fmt(it["mean"]),
                     fmt(it["p99"]), fmt(j["compute_ms"]), fmt(j["communication_ms"]), fmt(j["exposed_communication_ms"]),
                     fmt(j["samples_per_s"]), pct(j["scaling_efficiency"]) if j["scaling_efficiency"] is not None else "-",
                     fmt(j["time_to_complete_h"]),
                     "-" if j["deadline_met"] is None else ("met" if j["deadline_met"] else "missed"),
                     f"${fmt(j['usd_total'])}" if j["usd_total"] is not None else "-"))
    header = ("job", "devices", "sync", "iteration ms", "p99 ms", "compute ms", "communication ms", "exposed ms",
              "samples/s", "scaling", "done in h", "deadline", "cost")
    notes = [f"{name}: compute {j['compute']}; {j['communication']}. Time to complete: {j['time_to_complete_basis']}."
             for name, j in jobs.items()]
    blocks = (Figure("training-iterations", "Training iterations", iteration_png(jobs),
                     "Mean iteration per job: compute (blue), then the communication the backward pass did not hide "
                     "(red); grey beneath, all the time spent combining gradients. All figures are modelled "
                     "(collective closed forms, compute from the service-time model)."),
              Figure("training-scaling", "Scaling", scaling_png(jobs),
                     "Samples per second against the number of devices, each with the job's micro-batch, from the "
                     "iteration model (collective closed forms inside the site, no stragglers); dotted, one device's "
                     "rate times the count."),
              Table("Training jobs", header, tuple(rows),
                    "Scaling: one device's iteration (same micro-batch, nothing to combine) over the mean iteration."),
              *(Text(n) for n in notes))
    return Section("Training jobs", blocks)
