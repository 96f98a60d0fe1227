"""What `plan --verify` prints: a line per round on stderr as it happens, then on stdout the plan's tables
with simulated latency, the rounds, the final deployment (when the certificate's descent changed the
MILP's) and the certificate."""
from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console

from lepton_sim.planner.summary import print_baselines, print_plan
from lepton_sim.termtable import Col, print_table
from lepton_sim.termtable import console as make_console
from lepton_sim.verification.certificate import Entry
from lepton_sim.verification.loop import Progress, Replan, Round, Verified


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} ms"


def _at(v: float | None, site: str) -> str:
    return _ms(v) + (f" at {site}" if site else "")


def slo_words(r: Round) -> str:
    missed = r.missed()
    if not missed:
        return "every SLO met"
    return "missed: " + ", ".join(f"{n} ({_metric(r.services[n].metric)}{_at(r.services[n].judged_ms, r.services[n].worst_site)})"
                                  for n in missed)


def _metric(metric: str) -> str:
    """"TTFT " or "TPOT " before an LLM service's figure; nothing before an end-to-end latency."""
    return "" if metric == "latency" else f"{metric.upper()} "


def round_line(r: Round) -> str:
    """One line: round, action, $/h, SLOs met or the services missing, and what the loop made of it."""
    return f"verify round {r.index} {r.action}: ${r.usd_per_hour:.4f}/h, {slo_words(r)}" + \
        (f"; {r.note}" if r.note else "")


def entry_words(e: Entry) -> str:
    if e.outcome == "misses":
        return "; ".join(f"{m.service} {_metric(m.metric)}p{m.percentile:g} {_at(m.simulated_ms, m.site)} > "
                         f"{m.slo_ms:g} ms" for m in e.missed)
    if e.outcome == "verifies":
        return "every SLO met"
    return e.note


def entry_line(e: Entry) -> str:
    smaller = "removed" if e.count == 1 else f"at {e.count - 1}"
    return f"  certificate: {e.pool} {smaller}: {e.outcome}" + (f" ({entry_words(e)})" if entry_words(e) else "")


def replan_line(r: Replan) -> str:
    tried = ", ".join(f"{n} x{f:.3g}" for n, f in r.relaxed.items())
    return f"  relax after round {r.after_round}: re-planned with {tried}: ${r.usd_per_hour:.4f}/h, {r.note} " \
           "(not simulated)"


def progress_printer(stream: TextIO | None = None) -> Progress:
    """A `verify` progress callback writing each round's and each certificate check's line to `stream` (stderr)."""
    def show(item: Round | Entry | Replan) -> None:
        line = round_line(item) if isinstance(item, Round) else (
            replan_line(item) if isinstance(item, Replan) else entry_line(item))
        print(line, file=stream or sys.stderr, flush=True)
    return show


def print_verified(v: Verified, console: Console | None = None) -> None:
    c = console or make_console()
    final = v.final
    print_plan(final.plan, c, simulated=final.services, simulated_by_site=final.by_site, baselines=False)
    print_table(c, "Verify rounds",
                (Col("round"), Col("action", "left"), Col("$/h"), Col("SLOs", "left", wrap=True),
                 Col("outcome", "left", wrap=True)),
                [[str(r.index), r.action, f"{r.usd_per_hour:.4f}", slo_words(r), r.note] for r in v.rounds])
    if v.final_from == "local search":
        # by key and degree: a line removed before another of its key renumbers the other's pool id
        now = {(line.key, line.tensor_parallel): line.count for line in final.lines}
        print_table(c, f"Final deployment (local search from round {v.milp_round.index}'s MILP plan)",
                    (Col("pool", "left"), Col("MILP replicas"), Col("replicas")),
                    [[p.id, str(p.count), str(now.get((p.key, p.tensor_parallel), 0))] for p in final.plan.pools])
    cert = v.certificate
    state = "holds" if cert.holds else ("incomplete" if not cert.complete else "does not hold")
    print_table(c, f"Local-optimality certificate (seed {cert.seed}): {state}",
                (Col("pool", "left"), Col("replicas"), Col("one fewer saves $/h"), Col("outcome", "left"),
                 Col("detail", "left", wrap=True)),
                [[e.pool, str(e.count), "-" if e.saved_usd_per_hour is None else f"{e.saved_usd_per_hour:.4f}",
                  e.outcome, entry_words(e)] for e in cert.entries])
    if cert.note:
        c.print(cert.note)
    first = v.first_met
    usd = final.usd_per_hour
    source = "the MILP" if v.final_from == "milp" else "the certificate's local search"
    c.print(f"final: ${usd:.4f}/h from {source} (round {final.index})"
            + (f", first SLO-meeting plan ${first.usd_per_hour:.4f}/h" if first is not None else "")
            + f"; {'every SLO met' if v.met else 'SLOs missed'}; certificate {state}")
    print_baselines(final.plan, c)
