"""Run reports of LLM services: TTFT and TPOT CDFs with their targets, per-service and per-pool tables, the
pools over time; and an LLM service without an end-to-end target kept out of the end-to-end latency figure."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from lepton_sim.report import write_report
from lepton_sim.report.data import QUANTILES
from lepton_sim.report.style import SLO_RED, fmt, pct
from report_fixtures import ROOT, make_run
from test_browser import _check, chromium  # noqa: F401  (the browser fixture and its checks)
from test_report import _assert_self_contained, _has_colour

LLM_FIGURES = {"ttft-cdf", "tpot-cdf", "llm-pools"}
TOKENS = {"prompt": {"dist": "lognormal", "mean": 600, "cv": 0.8, "max": 4096},
          "output": {"dist": "lognormal", "mean": 120, "cv": 1.0, "max": 1024}}


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16)


def mixed_scenario(path: Path) -> Path:
    """The default scenario (detect, classify-text) plus two LLM services on H100s at dc-1: chat, from both
    edge sites, with TTFT and TPOT targets only; ask, from dc-1, with an end-to-end target as well."""
    raw = yaml.safe_load((ROOT / "scenarios" / "default.yaml").read_text())
    raw["hardware"]["h100"] = {"from": "nvidia-h100-sxm"}
    raw["sites"]["dc-1"]["capacity"]["h100"] = 4
    raw["models"]["llama3-8b"] = {"from": "llama-3-8b"}
    raw["services"]["chat"] = {
        "model": "llama3-8b", "tokens": TOKENS,
        "slo": {"ttft": {"percentile": 99, "latency_ms": 300}, "tpot": {"percentile": 90, "latency_ms": 30}},
        "demand": [{"site": "edge-a", "rate_rps": 6}, {"site": "edge-b", "rate_rps": 3}]}
    raw["services"]["ask"] = {
        "model": "llama3-8b", "tokens": TOKENS,
        "slo": {"percentile": 95, "latency_ms": 5000, "ttft": {"percentile": 99, "latency_ms": 500},
                "tpot": {"percentile": 99, "latency_ms": 40}},
        "demand": [{"site": "dc-1", "rate_rps": 2}]}
    raw["deployment"]["replicas"] += [
        {"service": "chat", "site": "dc-1", "hardware": "h100", "variant": "fp16", "count": 1, "tensor_parallel": 2},
        {"service": "ask", "site": "dc-1", "hardware": "h100", "variant": "fp8", "count": 1}]
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mixed")
    make_run(root / "run", mixed_scenario(root / "mixed.yaml"))
    return root / "run"


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scenarios/llm/chat-h100.yaml shortened: one LLM service, no end-to-end target, no other service."""
    out = tmp_path_factory.mktemp("chat") / "run"
    make_run(out, ROOT / "scenarios" / "llm" / "chat-h100.yaml")
    return out


@pytest.fixture(scope="module")
def mixed_report(mixed: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mixed-report")
    write_report(mixed, out)
    return out


def _metrics(run: Path) -> dict[str, Any]:
    return dict(json.loads((run / "metrics.json").read_text()))


def md_table(md: str, title: str) -> list[dict[str, str]]:
    """The rows of the table titled `title` in report.md, as {header: cell}."""
    lines = md.split("\n")
    start = lines.index(f"### {title}") + 2
    header = [c.strip() for c in lines[start].strip("|").split(" | ")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (c.strip() for c in line.strip()[2:-2].split(" | ")))))
    return rows


def section_titles(md: str) -> list[str]:
    return re.findall(r"^## (.+)$", md, flags=re.M)


def test_report_data_holds_ttft_and_tpot_distributions_of_the_llm_services(mixed: Path) -> None:
    metrics = _metrics(mixed)
    data = json.loads((mixed / "report-data.json").read_text())
    for key, measure in (("ttft_cdf", "ttft_ms"), ("tpot_cdf", "tpot_ms")):
        cdf = data[key]
        assert cdf["quantiles"] == list(QUANTILES)
        assert set(cdf["services"]) == {"chat", "ask"}  # the LLM services only
        for name, svc in cdf["services"].items():
            values, m = svc["latency_ms"], metrics["services"][name][measure]
            assert values == sorted(values) and len(values) == len(QUANTILES)
            assert values[QUANTILES.index(0.99)] == pytest.approx(m["p99"], rel=1e-5)
            assert values[QUANTILES.index(0.5)] == pytest.approx(m["p50"], rel=1e-5)
            assert values[-1] == pytest.approx(m["max"], rel=1e-5)
            assert set(svc["by_site"]) == set(metrics["services"][name]["by_site"])
        edge_b = cdf["services"]["chat"]["by_site"]["edge-b"]["latency_ms"]
        assert edge_b[-1] == pytest.approx(metrics["services"]["chat"]["by_site"]["edge-b"][measure]["max"], rel=1e-5)
    assert data["ttft_cdf"]["services"]["chat"]["count"] == metrics["services"]["chat"]["completed"]
    assert set(data["latency_cdf"]["services"]) == {"detect", "classify-text", "chat", "ask"}


def test_a_run_without_llm_services_has_no_token_distributions(tmp_path: Path) -> None:
    make_run(tmp_path / "run", ROOT / "scenarios" / "queueing" / "mm1.yaml")
    data = json.loads((tmp_path / "run" / "report-data.json").read_text())
    assert "ttft_cdf" not in data and "tpot_cdf" not in data
    paths = write_report(tmp_path / "run")
    assert not LLM_FIGURES & {p.stem for p in paths.figures}
    assert "LLM" not in paths.markdown.read_text()


def test_the_llm_run_report_has_every_figure_and_stands_alone(mixed_report: Path) -> None:
    names = {"topology", "latency-cdf", *LLM_FIGURES, "utilisation", "cost-energy"}
    assert {p.stem for p in mixed_report.glob("*.png")} == names
    _assert_self_contained(mixed_report, names)
    md = (mixed_report / "report.md").read_text()
    assert section_titles(md) == ["Topology", "Latency", "LLM services", "LLM pools", "Utilisation",
                                  "Cost and energy"]
    html = (mixed_report / "report.html").read_text()
    for text in ("Time to first token (TTFT) CDF per LLM service", "Time per output token (TPOT) CDF per LLM service",
                 "chat: time to first token, per output token and end to end", "ask: requests, goodput and tokens",
                 "LLM pools (continuous batching per replica)", "LLM pools over simulated time"):
        assert text in html and text in md


def test_each_llm_service_has_its_targets_and_tokens_table(mixed: Path, mixed_report: Path) -> None:
    metrics = _metrics(mixed)
    md = (mixed_report / "report.md").read_text()
    for name in ("chat", "ask"):
        s = metrics["services"][name]
        rows = md_table(md, f"{name}: time to first token, per output token and end to end")
        groups = ["all", *(s["by_site"] if len(s["by_site"]) > 1 else [])]
        assert [r["from"] for r in rows] == [g for g in groups for _ in range(3)]
        for group in groups:
            g = s if group == "all" else s["by_site"][group]
            ttft, tpot, e2e = (r for r in rows if r["from"] == group)
            for row, key, target, what in ((ttft, "ttft_ms", "ttft_slo", "time to first token"),
                                           (tpot, "tpot_ms", "tpot_slo", "time per output token")):
                t = g[target]
                assert row["measure"] == what
                assert [row[f"{k} ms"] for k in ("mean", "p50", "p90", "p99", "max")] == \
                    [fmt(g[key][k]) for k in ("mean", "p50", "p90", "p99", "max")]
                assert row["target"] == f"p{fmt(t['percentile'])} ≤ {fmt(t['latency_ms'])} ms"
                assert row["at the target's percentile ms"] == fmt(t["latency_at_percentile_ms"])
                assert row["within target"] == pct(t["attainment"])
                assert row["met"] == ("yes" if t["met"] else "no")
            assert e2e["measure"] == "end to end" and e2e["p99 ms"] == fmt(g["latency_ms"]["p99"])
            assert e2e["target"] == ("none" if name == "chat" else "p95 ≤ 5,000 ms")
        tokens = md_table(md, f"{name}: requests, goodput and tokens")
        assert [r["from"] for r in tokens] == groups
        for row in tokens:
            g = s if row["from"] == "all" else s["by_site"][row["from"]]
            assert row["requests"] == fmt(g["arrived"]) and row["completed"] == fmt(g["completed"])
            assert row["both targets met"] == pct(g["slo_attainment"])
            assert row["goodput requests/s"] == fmt(g["goodput_rps"])
            assert row["output tokens/s"] == fmt(g["output_tokens_per_s"])
            assert row["prompt tokens/s"] == fmt(g["prompt_tokens_per_s"])
            assert row["preempted"] == fmt(g["preempted"])
            assert row["SLO met"] == ("yes" if g["slo"]["met"] else "no")


def test_every_llm_cell_comes_from_its_own_field(mixed: Path, tmp_path: Path) -> None:
    """Distinct values in every field the LLM tables show (a run's may coincide: goodput and throughput when
    every request meets both targets), each found in its own column."""
    metrics = _metrics(mixed)
    s = metrics["services"]["chat"]
    fields = {"goodput_rps": 1.11, "output_tokens_per_s": 2.22, "prompt_tokens_per_s": 3.33, "preempted": 44,
              "slo_attainment": 0.555, "throughput_rps": 6.66, "arrived": 777, "completed": 666, "dropped": 88,
              "in_flight": 99}
    s.update(fields)
    s["ttft_slo"].update(attainment=0.123, latency_at_percentile_ms=12.5, met=False)
    s["tpot_slo"].update(attainment=0.987, latency_at_percentile_ms=3.25, met=True)
    pool = metrics["pools"]["chat@dc-1/h100/fp16"]
    pool.update(tensor_parallel=3, devices=5, iterations=1234, running_mean=5.5, kv_cache_utilization=0.375,
                kv_cache_tokens=4321, batch_tokens_mean=66.5, output_tokens_per_s=77.5, preempted=11, too_long=12,
                usd_per_million_output_tokens=0.125, joules_per_output_token=0.25, mean_batch=9.5)
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps(metrics))
    (run / "report-data.json").write_text((mixed / "report-data.json").read_text())
    md = write_report(run).markdown.read_text()
    row = md_table(md, "chat: requests, goodput and tokens")[0]
    assert row == {"from": "all", "requests": "777", "completed": "666", "dropped": "88", "in flight": "99",
                   "both targets met": "55.50 %", "goodput requests/s": "1.11", "output tokens/s": "2.22",
                   "prompt tokens/s": "3.33", "preempted": "44", "SLO met": fmt(s["slo"]["met"])}
    ttft, tpot = md_table(md, "chat: time to first token, per output token and end to end")[:2]
    assert (ttft["at the target's percentile ms"], ttft["within target"], ttft["met"]) == ("12.5", "12.30 %", "no")
    assert (tpot["at the target's percentile ms"], tpot["within target"], tpot["met"]) == ("3.25", "98.70 %", "yes")
    pools = md_table(md, "LLM pools (continuous batching per replica)")[0]
    assert pools == {"pool": "chat@dc-1/h100/fp16", "replicas": fmt(pool["replicas"]), "tensor parallel": "3",
                     "devices": "5", "iterations": "1,234", "running sequences": "5.5", "KV cache in use": "37.50 %",
                     "KV cache tokens": "4,321", "batch tokens": "66.5", "output tokens/s": "77.5", "preempted": "11",
                     "too long": "12", "US$ per million output tokens": "$0.125", "J per output token": "0.25"}


def test_each_llm_pool_has_its_scheduler_figures(mixed: Path, mixed_report: Path) -> None:
    metrics = _metrics(mixed)
    rows = md_table((mixed_report / "report.md").read_text(), "LLM pools (continuous batching per replica)")
    llm_pools = {pid: p for pid, p in metrics["pools"].items() if "running_mean" in p}
    assert [r["pool"] for r in rows] == list(llm_pools) == ["chat@dc-1/h100/fp16", "ask@dc-1/h100/fp8"]
    for row in rows:
        p = llm_pools[row["pool"]]
        assert (row["tensor parallel"], row["devices"]) == (fmt(p["tensor_parallel"]), fmt(p["devices"]))
        assert row["running sequences"] == fmt(p["running_mean"])
        assert row["KV cache in use"] == pct(p["kv_cache_utilization"])
        assert row["KV cache tokens"] == fmt(p["kv_cache_tokens"])
        assert row["batch tokens"] == fmt(p["batch_tokens_mean"])
        assert row["output tokens/s"] == fmt(p["output_tokens_per_s"])
        assert row["US$ per million output tokens"] == f"${fmt(p['usd_per_million_output_tokens'])}"
        assert row["J per output token"] == fmt(p["joules_per_output_token"])
    assert rows[0]["tensor parallel"] == "2" and rows[0]["devices"] == "2"


def test_the_ttft_and_tpot_cdfs_mark_their_targets_and_demand_sites(mixed_report: Path) -> None:
    from lepton_sim.report.style import SITE_PALETTE

    red = _rgb(SLO_RED)
    left, right = (0, 0, 0.5, 0.8), (0.5, 0, 1, 0.8)  # chat's panels, ask's (the legend is below them)
    for name in ("ttft-cdf", "tpot-cdf"):
        png = mixed_report / f"{name}.png"
        assert _has_colour(png, red, left) and _has_colour(png, red, right), f"{name}: a target is not marked"
        # chat has two demand sites (edge-a, edge-b: the scenario's 2nd and 3rd sites), drawn in their colours
        assert _has_colour(png, _rgb(SITE_PALETTE[1]), left) and _has_colour(png, _rgb(SITE_PALETTE[2]), left)
        assert not _has_colour(png, _rgb(SITE_PALETTE[1]), right)  # ask comes from dc-1 alone


def test_a_cdf_target_without_a_latency_is_not_marked(mixed: Path) -> None:
    import io

    from PIL import Image

    from lepton_sim.report.latency import cdf_png

    data = json.loads((mixed / "report-data.json").read_text())
    slos = {"chat": {"percentile": 99.0, "latency_ms": None}, "ask": {"percentile": 95.0, "latency_ms": None}}
    png = cdf_png(data["latency_cdf"], slos, only=["chat", "ask"])
    with Image.open(io.BytesIO(png)) as im:
        colours = {c for _, c in im.convert("RGB").getcolors(1 << 20) or []}
    assert _rgb(SLO_RED) not in colours


def test_an_llm_service_without_an_end_to_end_target_stays_out_of_the_latency_section(
        mixed: Path, mixed_report: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lepton_sim.report import run

    drawn: list[set[str]] = []
    real = run.cdf_png

    def spy(cdf: Any, slos: Any, colours: Any = None, **kw: Any) -> bytes:
        drawn.append({n for n in cdf["services"] if kw.get("only") is None or n in kw["only"]})
        return real(cdf, slos, colours, **kw)

    monkeypatch.setattr(run, "cdf_png", spy)
    section = run.latency_section(_metrics(mixed), json.loads((mixed / "report-data.json").read_text()))
    assert section is not None
    assert drawn == [{"detect", "classify-text", "ask"}]  # ask has an end-to-end target, chat none
    md = (mixed_report / "report.md").read_text()
    services = {r["service"] for r in md_table(md, "Latency percentiles")}
    assert services == {"detect", "classify-text"}  # an LLM service's attainment is both targets'
    assert "The end-to-end percentiles of ask (LLM, last token back)" in md


def test_an_llm_only_run_has_no_end_to_end_section(chat: Path, tmp_path: Path) -> None:
    paths = write_report(chat, tmp_path)
    assert {p.stem for p in paths.figures} == {"topology", *LLM_FIGURES, "utilisation", "cost-energy"}
    md = paths.markdown.read_text()
    assert section_titles(md) == ["Topology", "LLM services", "LLM pools", "Utilisation", "Cost and energy"]
    assert "- **1 of 1** services meeting their SLO" in md and "LLM output tokens per second" in md
    assert "TPn: n devices per replica, tensor parallel" in md  # the topology names tensor-parallel replicas


def test_the_pools_over_time_are_drawn_from_the_llm_timeseries(mixed: Path, mixed_report: Path,
                                                                tmp_path: Path) -> None:
    from lepton_sim.report.style import SITE_PALETTE
    from lepton_sim.report.usage import Panel, timeseries_png

    assert _has_colour(mixed_report / "llm-pools.png", _rgb(SITE_PALETTE[0]))  # dc-1's pools in dc-1's colour
    # without timeseries.llm_pools the figure goes, the table stays
    metrics = _metrics(mixed)
    del metrics["timeseries"]["llm_pools"]
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps(metrics))
    (run / "report-data.json").write_text((mixed / "report-data.json").read_text())
    paths = write_report(run)
    assert "llm-pools" not in {p.stem for p in paths.figures}
    assert "LLM pools (continuous batching per replica)" in paths.markdown.read_text()
    # a bin without a value is a gap, not an error
    png = timeseries_png([Panel("KV", "KV cache used (%)", {"a@dc-1/h/v": [0.1, None, 0.3]}, percent=True)],
                         1.0, 0.0, 3.0)
    assert png.startswith(b"\x89PNG")


def test_an_llm_run_without_token_distributions_reports_from_metrics(mixed: Path, tmp_path: Path) -> None:
    data = json.loads((mixed / "report-data.json").read_text())
    del data["ttft_cdf"], data["tpot_cdf"]  # report-data.json written before they were
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text((mixed / "metrics.json").read_text())
    (run / "report-data.json").write_text(json.dumps(data))
    paths = write_report(run)
    assert not {"ttft-cdf", "tpot-cdf"} & {p.stem for p in paths.figures}
    md = paths.markdown.read_text()
    assert "no TTFT and TPOT distributions" in md and "### chat: requests, goodput and tokens" in md


def test_an_llm_run_without_report_data_still_reports_from_metrics(tmp_path: Path) -> None:
    make_run(tmp_path / "run", ROOT / "scenarios" / "llm" / "chat-h100.yaml", with_data=False)
    paths = write_report(tmp_path / "run")
    assert {p.stem for p in paths.figures} == {"topology", "llm-pools", "utilisation", "cost-energy"}
    md = paths.markdown.read_text()
    assert "No report-data.json in this run directory: the TTFT and TPOT CDFs need it" in md
    assert "### chat: time to first token, per output token and end to end" in md


def test_the_same_llm_run_gives_the_same_report_bytes(chat: Path, tmp_path: Path) -> None:
    a, b = write_report(chat, tmp_path / "a"), write_report(chat, tmp_path / "b")
    assert a.html.read_bytes() == b.html.read_bytes() and a.markdown.read_bytes() == b.markdown.read_bytes()


def test_sweeps_of_llm_services_read_their_targets() -> None:
    from lepton_sim.report.sweep import base_slos, slo_lookup
    from lepton_sim.report.units import latency_service, unit

    base = base_slos({"slos": {"chat": {"percentile": 99, "latency_ms": None,
                                        "ttft": {"percentile": 90, "latency_ms": 800},
                                        "tpot": {"percentile": 99, "latency_ms": 60}},
                               "q": {"percentile": 99, "latency_ms": 40}}}, Path("."))
    assert base == {"chat": (99.0, None), "chat.ttft": (90.0, 800.0), "chat.tpot": (99.0, 60.0), "q": (99.0, 40.0)}
    slo = slo_lookup(base)
    assert slo("chat", {}) is None and slo("q", {}) == (99.0, 40.0)
    # TTFT and TPOT metrics are drawn against their own targets, which a grid may vary
    assert latency_service("services.chat.ttft_ms.p99") == "chat.ttft"
    assert latency_service("services.chat.by_site.edge.tpot_ms.p50") == "chat.tpot"
    assert slo("chat.ttft", {}) == (90.0, 800.0)
    assert slo("chat.tpot", {"services.chat.slo.tpot.latency_ms": 40}) == (99.0, 40.0)
    assert unit("services.chat.ttft_ms.p99") == "latency (ms)"
    assert unit("services.chat.output_tokens_per_s") == "tokens per second"
    assert unit("services.chat.goodput_rps") == "requests per second"
    assert unit("pools.chat@dc-1/h100/fp16.kv_cache_utilization").startswith("fraction of the KV cache")
    assert unit("pools.chat@dc-1/h100/fp16.usd_per_million_output_tokens") == "US$ per million output tokens"
    assert unit("services.chat.ttft_slo.attainment") == "fraction within the target"


@pytest.mark.parametrize("scenario", sorted((ROOT / "scenarios" / "llm").glob("*.yaml")), ids=lambda p: p.stem)
def test_the_report_of_every_llm_scenario_fits_the_window(chromium: str, tmp_path: Path,  # noqa: F811
                                                          scenario: Path) -> None:
    make_run(tmp_path / "run", scenario)
    _check(chromium, write_report(tmp_path / "run").html)


def test_the_mixed_llm_report_fits_the_window(chromium: str, mixed_report: Path) -> None:  # noqa: F811
    _check(chromium, mixed_report / "report.html")
