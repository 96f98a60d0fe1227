"""The report of a plan directory: the chosen deployment and compression levels, the baselines it beat,
predicted against simulated latency, the verify rounds and the local-optimality certificate, and, when
the verifying run was written there, its run sections."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lepton_sim.errors import LeptonError
from lepton_sim.report.data import FILE as DATA_FILE
from lepton_sim.report.data import scenario_shape
from lepton_sim.report.document import Block, Figure, Report, Section, Table, Text
from lepton_sim.report.planfigs import baselines_png, latency_check_png
from lepton_sim.report.run import simulated_sections, topology_section
from lepton_sim.report.style import fmt, pct, site_colours

PLANNED = "scenario.planned.yaml"


def plan_report(run_dir: Path) -> Report:
    from lepton_sim.report.build import read_json

    doc = read_json(run_dir / "plan.json")
    if doc.get("status") == "infeasible":
        return _infeasible_report(doc)
    metrics = read_json(run_dir / "metrics.json") if (run_dir / "metrics.json").is_file() else None
    data = read_json(run_dir / DATA_FILE) if (run_dir / DATA_FILE).is_file() else None
    verify = doc.get("verify")
    facts: tuple[tuple[str, str], ...] = (
        ("US$ per hour", f"${fmt(doc['usd_per_hour'])}"), ("status", str(doc["status"])),
        ("solver", f"{doc.get('solver')} in {fmt(doc.get('solve_s'))} s"),
        ("optimality gap", "-" if doc.get("gap") is None else pct(doc["gap"])))
    if verify:
        facts += (("verified by simulation", f"{'all SLOs met' if verify['met'] else 'SLO missed'}, "
                                             f"{len(verify['rounds'])} round(s)"),)
        cert = verify.get("certificate")
        if cert:
            facts += (("final deployment from", _FROM.get(str(verify.get("final_from")), "the MILP")),
                      ("local-optimality certificate", _certificate_state(cert)))
    shape = _shape(run_dir, doc, data)
    colours = site_colours(shape["sites"])
    sections = [topology_section(shape, metrics, colours=colours), deployment_section(doc),
                baselines_section(doc), check_section(doc)]
    if verify and "action" in (verify.get("rounds") or [{}])[0]:
        sections.append(verify_section(verify))
    if metrics is not None:
        sections += simulated_sections(metrics, data, colours)
    subtitle = (f"Plan for scenario {doc.get('scenario')!r}: the cheapest deployment the planner found that meets "
                "every latency target and accuracy floor under its model" + (", then simulated." if verify else "."))
    return Report(f"lepton-sim plan: {doc.get('scenario')}", subtitle, tuple(sections), facts)


def _shape(run_dir: Path, doc: Mapping[str, Any], data: Mapping[str, Any] | None) -> dict[str, Any]:
    """The planned scenario's shape: from report-data.json, else scenario.planned.yaml, else plan.json alone."""
    if data:
        return dict(data["scenario"])
    if (run_dir / PLANNED).is_file():
        from lepton_sim.scenario import load_scenario

        try:
            return scenario_shape(load_scenario(run_dir / PLANNED))
        except LeptonError:
            pass  # a planned scenario that no longer loads: fall back to what plan.json says
    lines = doc["deployment"]["replicas"]
    return {"sites": {line["site"]: {"kind": "site"} for line in lines}, "links": [], "services": {},
            "deployment": doc["deployment"]}


def deployment_section(doc: Mapping[str, Any]) -> Section:
    pools = doc.get("pools", {})
    # a line serving a request-size bucket: its pool was planned under the bucket's name
    planned_as = {(svc, tuple(b["prompt_tokens"])): b["planned_as"]
                  for svc, bs in (doc.get("buckets") or {}).items() for b in bs}
    rows = []
    for line in doc["deployment"]["replicas"]:
        prompts = line.get("prompt_tokens")
        name = planned_as.get((line["service"], tuple(prompts)), line["service"]) if prompts else line["service"]
        pid = f"{name}@{line['site']}/{line['hardware']}/{line['variant']}"
        p = pools.get(pid, {})
        weights = ", ".join(f"{site} {100 * w:.0f} %" for site, w in (line.get("weights") or {}).items())
        shown = line["service"] if not prompts else \
            f"{line['service']} (prompts {prompts[0]}-{prompts[1] if prompts[1] is not None else ''})"
        rows.append((shown, line["site"], line["hardware"], line["variant"], fmt(line["count"]),
                     fmt(p.get("planned_rps")), fmt(p.get("capacity_rps")), weights))
    table = Table("Chosen deployment", ("service", "site", "hardware", "variant (compression)", "replicas",
                                         "planned rps", "capacity rps", "share of each demand site"), tuple(rows),
                  "Variant is the compression level the planner chose (precision, sparsity, distillation).")
    routing = tuple((svc, site, pool, pct(f)) for svc, sites in doc.get("routing", {}).items()
                    for site, pools_ in sites.items() for pool, f in pools_.items())
    blocks: list[Block] = [table]
    if routing:
        blocks.append(Table("Routing fractions", ("service", "demand site", "pool", "fraction"), routing))
    return Section("Deployment", tuple(blocks))


def baselines_section(doc: Mapping[str, Any]) -> Section:
    baselines = doc.get("baselines", [])
    if not baselines:
        return Section("Baselines", (Text("The plan was computed without baselines."),))
    usd = float(doc["usd_per_hour"])
    rows = tuple((b["name"], b.get("status", ""), _usd(b.get("usd_per_hour")), _saving(usd, b.get("usd_per_hour")),
                  b.get("note", "")) for b in baselines)
    fig = Figure("plan-baselines", "The plan against its baselines", baselines_png(usd, baselines),
                 "; ".join(f"{name}: {what}" for name, what in _baseline_kinds(baselines))
                 + ". Bars are US$ per hour under the same model.")
    return Section("Baselines", (fig, Table("", ("baseline", "status", "US$ per hour", "the plan saves", "note"),
                                            rows)))


# the planner's own words for its greedy baseline (planner/baselines.py), which plan.json repeats as the
# greedy row's note when the greedy found a plan
GREEDY = "least compressed variants, most constrained demand first"
SINGLE = "the best plan on one hardware type"


def _baseline_kinds(baselines: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """What each kind of baseline is; the greedy one in the words of its note in plan.json (when it found a
    plan: otherwise the note says why not), so that the caption and the table describe it alike."""
    out = []
    greedy = next((b for b in baselines if b["name"] == "greedy"), None)
    if greedy is not None:
        solved = greedy.get("usd_per_hour") is not None and greedy.get("note")
        out.append(("greedy", str(greedy["note"]) if solved else GREEDY))
    if any(b["name"].startswith("single:") for b in baselines):
        out.append(("single:TYPE", SINGLE))
    return out


def _usd(v: float | None) -> str:
    return "-" if v is None else f"${fmt(v)}"


def _saving(plan_usd: float, baseline_usd: float | None) -> str:
    if baseline_usd is None or baseline_usd <= 0:
        return "-"
    return f"{100 * (1 - plan_usd / baseline_usd):.1f} %"


def _simulated_rounds(verify: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """`verify` with only the rounds that simulated a new deployment (a certificate pass that adopted none repeats
    the deployment it certified)."""
    if not verify:
        return None
    return {**verify, "rounds": [r for r in verify.get("rounds", [])
                                 if r.get("action") != "certificate" or r.get("kept")]}


def check_section(doc: Mapping[str, Any]) -> Section:
    predicted = doc.get("predicted", {})
    verify = _simulated_rounds(doc.get("verify"))
    fig = Figure("plan-latency", "Predicted against simulated latency", latency_check_png(predicted, verify),
                 "The planner's predicted latency at each service's SLO percentile ("
                 + str(doc.get("assumptions", {}).get("capacity_model", "see plan.json's assumptions")) + ")"
                 + (" and the simulated latency of every verification round that simulated a new deployment (a "
                    "miss tightens the capacity model, slack relaxes it, and each re-plans)." if verify
                    else "; run plan --verify to simulate it."))
    rows = []
    for name, p in predicted.items():
        for r in (verify or {}).get("rounds", [{"round": "-", "services": {}}]):
            s = r["services"].get(name, {})
            rows.append((name, str(r["round"]), f"p{fmt(p['percentile'])} ≤ {fmt(p['slo_ms'])} ms",
                         fmt(s.get("predicted_ms", p["latency_ms"])), fmt(s.get("simulated_ms")),
                         pct(s.get("attainment")), "-" if "met" not in s else ("yes" if s["met"] else "no")))
    table = Table("", ("service", "round", "SLO", "predicted ms", "simulated ms", "within SLO", "met"), tuple(rows))
    return Section("Predicted against simulated latency", (fig, table))


_FROM = {"milp": "the MILP", "local search": "the certificate's local search"}


def _certificate_state(cert: Mapping[str, Any]) -> str:
    return "holds" if cert.get("holds") else ("incomplete" if not cert.get("complete") else "does not hold")


def _entry_detail(e: Mapping[str, Any]) -> str:
    if e.get("outcome") == "misses":
        return "; ".join(f"{m['service']} p{fmt(m['percentile'])} {fmt(m['simulated_ms'])} ms"
                         + (f" at {m['site']}" if m.get("site") else "") + f" > {fmt(m['slo_ms'])} ms"
                         for m in e.get("missed", []))
    return "every SLO met" if e.get("outcome") == "verifies" else str(e.get("note", ""))


def verify_section(verify: Mapping[str, Any]) -> Section:
    """Every round (its action, cost, verdict and what the loop made of it) and the certificate's entries."""
    rounds = tuple((str(r["round"]), str(r.get("action", "")), _usd(r.get("usd_per_hour")),
                    "every SLO met" if r.get("met") else
                    "missed: " + ", ".join(n for n, s in r.get("services", {}).items() if not s.get("met")),
                    str(r.get("note", ""))) for r in verify.get("rounds", []))
    blocks: list[Block] = [Table("Verify rounds", ("round", "action", "US$ per hour", "SLOs", "outcome"), rounds,
                                 "plan: the first plan; tighten: re-planned after a miss with less capacity assumed "
                                 "of the services that missed; relax: re-planned with more capacity assumed of "
                                 "services with slack, kept when cheaper and verified; certificate: every "
                                 "deployment one replica cheaper simulated.")]
    cert = verify.get("certificate")
    if cert:
        entries = tuple((e["pool"], fmt(e["replicas"]), _usd(e.get("saved_usd_per_hour")), str(e["outcome"]),
                         _entry_detail(e)) for e in cert.get("entries", []))
        note = (f"Final deployment from {_FROM.get(str(verify.get('final_from')), 'the MILP')} "
                f"(round {verify.get('final_round')}), "
                f"seed {cert.get('seed')}. " + str(cert.get("note", "")))
        blocks.append(Table(f"Local-optimality certificate: {_certificate_state(cert)}",
                            ("pool", "replicas", "one fewer saves", "outcome", "detail"), entries, note.strip()))
    return Section("Verification rounds and certificate", tuple(blocks))


def _infeasible_report(doc: Mapping[str, Any]) -> Report:
    rows = tuple((r["service"], r["demand_site"], r["reason"], r["message"]) for r in doc.get("reasons", []))
    section = Section("Why no deployment meets every target",
                      (Table("", ("service", "demand site", "reason", "detail"), rows),))
    return Report(f"lepton-sim plan: {doc.get('scenario')}", "The planner found the scenario infeasible.",
                  (section,), (("status", "infeasible"),))
