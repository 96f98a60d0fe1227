"""Reports: what they contain, that they stand alone, and that the same input gives the same bytes."""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from lepton_sim.errors import InputError
from lepton_sim.report import detect_kind, write_report
from lepton_sim.report.data import QUANTILES
from lepton_sim.report.sweepfigs import frontier_points
from report_fixtures import make_plan, make_run, make_sweep

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    make_run(out)
    return out


@pytest.fixture(scope="module")
def sweep_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sweeps")
    collect = ["services.q.latency_ms.p99", "services.q.slo.met", "cost.usd_per_hour"]
    return {
        "one": make_sweep(root / "one", {"services.q.demand[0].rate_rps": [40, 70, 90]}, collect),
        "two": make_sweep(root / "two", {"services.q.demand[0].rate_rps": [40, 80],
                                         "deployment.replicas[0].count": [1, 2]}, collect),
        "slo": make_sweep(root / "slo", {"services.q.slo.latency_ms": [40, 80, 300],
                                         "deployment.replicas[0].count": [1, 2, 3]}, collect, seeds=(1,)),
    }


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([^"]+)"', html)]


def _assert_self_contained(out: Path, figure_names: set[str]) -> None:
    html = (out / "report.html").read_text()
    images = _images(html)
    assert len(images) == html.count("<img") == len(figure_names)
    assert all(img.startswith(PNG) and len(img) > 2000 for img in images)
    assert not re.search(r'(src|href)="(?!data:)', html)  # nothing to fetch: opens offline
    assert "<script" not in html
    md = (out / "report.md").read_text()
    linked = set(re.findall(r"!\[[^\]]*\]\(([^)]+)\.png\)", md))
    assert linked == figure_names
    for name in linked:
        assert (out / f"{name}.png").read_bytes().startswith(PNG)


def test_cdf_points_agree_with_the_metrics(run_dir: Path) -> None:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    data = json.loads((run_dir / "report-data.json").read_text())
    assert data["latency_cdf"]["quantiles"] == list(QUANTILES)
    for name, svc in data["latency_cdf"]["services"].items():
        lat = svc["latency_ms"]
        assert lat == sorted(lat) and len(lat) == len(QUANTILES)
        assert lat[QUANTILES.index(0.99)] == pytest.approx(metrics["services"][name]["latency_ms"]["p99"], rel=1e-5)
        assert lat[-1] == pytest.approx(metrics["services"][name]["latency_ms"]["max"], rel=1e-5)
        assert svc["count"] == metrics["services"][name]["completed"]
        assert set(svc["by_site"]) == set(metrics["services"][name]["by_site"])


def test_run_report_has_every_figure_and_stands_alone(run_dir: Path, tmp_path: Path) -> None:
    paths = write_report(run_dir, tmp_path / "rep")
    assert detect_kind(run_dir) == "run"
    assert {p.stem for p in paths.figures} == {"topology", "latency-cdf", "utilisation", "cost-energy"}
    _assert_self_contained(tmp_path / "rep", {"topology", "latency-cdf", "utilisation", "cost-energy"})
    html = paths.html.read_text()
    for text in ("Latency percentiles", "detect", "classify-text", "Replica pools", "Link directions", "Prices",
                 "US$ per hour"):
        assert text in html


def test_the_same_run_gives_the_same_report_bytes(run_dir: Path, tmp_path: Path) -> None:
    a, b = write_report(run_dir, tmp_path / "a"), write_report(run_dir, tmp_path / "b")
    assert a.html.read_bytes() == b.html.read_bytes()
    assert a.markdown.read_bytes() == b.markdown.read_bytes()


def test_a_run_without_report_data_still_reports_from_metrics(tmp_path: Path) -> None:
    make_run(tmp_path / "run", with_data=False)
    paths = write_report(tmp_path / "run")
    assert {p.stem for p in paths.figures} == {"topology", "utilisation", "cost-energy"}
    assert "no report-data.json" in paths.html.read_text()


def test_sweep_report_one_parameter_draws_lines(sweep_dirs: dict[str, Path], tmp_path: Path) -> None:
    paths = write_report(sweep_dirs["one"], tmp_path)
    assert detect_kind(sweep_dirs["one"]) == "sweep"
    assert {p.stem for p in paths.figures} == {"sweep-lines"}
    _assert_self_contained(tmp_path, {"sweep-lines"})
    assert "services.q.demand[0].rate_rps" in paths.html.read_text()


def test_sweep_report_two_parameters_draws_heat_maps(sweep_dirs: dict[str, Path], tmp_path: Path) -> None:
    paths = write_report(sweep_dirs["two"], tmp_path)
    assert {p.stem for p in paths.figures} == {"sweep-heatmaps"}


def test_sweep_report_over_an_slo_draws_the_frontier(sweep_dirs: dict[str, Path], tmp_path: Path) -> None:
    paths = write_report(sweep_dirs["slo"], tmp_path)
    assert {p.stem for p in paths.figures} == {"sweep-heatmaps", "frontier"}
    assert "Cost-latency frontier" in paths.html.read_text()


def test_the_frontier_is_drawn_over_an_llm_service_s_ttft_or_tpot_target() -> None:
    from lepton_sim.report.sweep import SLO_TARGET

    assert SLO_TARGET.search("services.chat.slo.tpot.latency_ms")
    assert SLO_TARGET.search("services.chat.slo.ttft.latency_ms")
    assert SLO_TARGET.search("services.q.slo.latency_ms")
    assert not SLO_TARGET.search("services.q.slo.percentile")
    assert not SLO_TARGET.search("services.chat.slo.tpot.percentile")
    assert not SLO_TARGET.search("links[0].latency_ms")


def test_frontier_takes_the_cheapest_point_whose_every_seed_meets_the_slo() -> None:
    def row(point: int, target: float, count: int, cost: float, met: bool, load: int = 1) -> dict:
        return {"point": point, "slo": target, "count": count, "load": load, "cost": cost, "q.slo.met": met,
                "status": "ok"}

    rows = [row(0, 10, 1, 1.0, False), row(0, 10, 1, 1.0, True),  # one seed misses: not feasible
            row(1, 10, 2, 2.0, True), row(1, 10, 2, 2.0, True),
            row(2, 50, 1, 1.0, True), row(2, 50, 1, 1.0, True),
            row(3, 50, 2, 2.0, True), row(3, 50, 2, 2.0, True),
            row(4, 5, 2, 2.0, False), row(4, 5, 2, 2.0, False)]
    lines = frontier_points(rows, "slo", "cost", ["q.slo.met"], [])
    assert lines == {(): ([(10.0, 2.0), (50.0, 1.0)], [5.0])}
    by_load = frontier_points([*rows[:4], row(9, 10, 1, 1.0, True, load=2)], "slo", "cost", ["q.slo.met"], ["load"])
    assert by_load == {(1,): ([(10.0, 2.0)], []), (2,): ([(10.0, 1.0)], [])}


def test_detect_kind_rejects_a_directory_without_results(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a run directory"):
        write_report(tmp_path)
    with pytest.raises(InputError, match="no such directory"):
        write_report(tmp_path / "absent")


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plan")
    make_plan(out)
    return out


def test_plan_report_shows_deployment_baselines_and_the_check(plan_dir: Path, tmp_path: Path) -> None:
    assert detect_kind(plan_dir) == "plan"
    paths = write_report(plan_dir, tmp_path)
    names = {"topology", "plan-baselines", "plan-latency"}
    assert {p.stem for p in paths.figures} == names
    _assert_self_contained(tmp_path, names)
    html = paths.html.read_text()
    doc = json.loads((plan_dir / "plan.json").read_text())
    for line in doc["deployment"]["replicas"]:
        assert line["variant"] in html and line["hardware"] in html
    for b in doc["baselines"]:
        assert b["name"] in html
    assert "verified by simulation" in html and "Predicted against simulated latency" in html


def test_a_plan_with_its_verifying_run_beside_it_adds_the_run_sections(plan_dir: Path, tmp_path: Path) -> None:
    import shutil

    from lepton_sim.verification.document import plan_outputs
    from lepton_sim.scenario import load_scenario

    shutil.copytree(plan_dir, tmp_path / "p")
    outputs = plan_outputs(load_scenario(plan_dir / "scenario.planned.yaml"), 1, with_verify=True)
    (tmp_path / "p" / "metrics.json").write_text(json.dumps(outputs["metrics"]))
    paths = write_report(tmp_path / "p")
    assert {p.stem for p in paths.figures} == {"topology", "plan-baselines", "plan-latency", "utilisation",
                                               "cost-energy"}


def test_an_unverified_plan_reports_without_simulation(tmp_path: Path) -> None:
    make_plan(tmp_path / "p", verified=False)
    paths = write_report(tmp_path / "p")
    assert {p.stem for p in paths.figures} == {"topology", "plan-baselines", "plan-latency"}
    assert "run plan --verify to simulate it" in paths.html.read_text()


def test_an_infeasible_plan_reports_its_reasons(tmp_path: Path) -> None:
    doc = {"scenario": "x", "status": "infeasible", "usd_per_hour": None,
           "reasons": [{"service": "detect", "demand_site": "edge-a", "reason": "latency", "message": "too far"}]}
    (tmp_path / "plan.json").write_text(json.dumps(doc))
    html = write_report(tmp_path).html.read_text()
    assert "too far" in html and "infeasible" in html


def _png_size(png: bytes) -> tuple[int, int]:
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def test_no_figure_is_wider_than_the_page_shows_it(run_dir: Path, plan_dir: Path, sweep_dirs: dict[str, Path],
                                                    tmp_path: Path) -> None:
    """At most 1,100 px: report.html's column (1,120 px) shows every figure unscaled, labels at their size."""
    from lepton_sim.report.style import DPI, MAX_WIDTH_IN

    for i, src in enumerate([run_dir, plan_dir, *sweep_dirs.values()]):
        for png in write_report(src, tmp_path / str(i)).figures:
            assert _png_size(png.read_bytes())[0] <= MAX_WIDTH_IN * DPI, png


def _has_colour(png: Path, rgb: tuple[int, int, int], box: tuple[float, float, float, float] = (0, 0, 1, 1)) -> bool:
    """Whether some pixel in `box` (left, top, right, bottom as fractions of the image) has exactly colour `rgb`."""
    from PIL import Image

    with Image.open(png) as im:
        im = im.convert("RGB")
        w, h = im.size
        part = im.crop((int(box[0] * w), int(box[1] * h), int(box[2] * w), int(box[3] * h)))
        return any(c == rgb for _, c in (part.getcolors(1 << 20) or []))


def test_a_site_keeps_one_colour_in_every_figure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lepton_sim.report import style

    # three sites (dc-1, edge-a, edge-b), three colours no other mark of the report uses
    monkeypatch.setattr(style, "SITE_PALETTE", ("#ff00ff", "#00ffff", "#ffff00"))
    make_run(tmp_path / "run")
    paths = {p.stem: p for p in write_report(tmp_path / "run").figures}
    edge_a, edge_b = (0, 255, 255), (255, 255, 0)
    for name in ("topology", "latency-cdf", "cost-energy", "utilisation"):
        assert _has_colour(paths[name], edge_a), f"edge-a's colour missing from {name}"
    # edge-a sends requests to both services: the same colour in the detect and the classify-text panels
    # (the panels fill the top 4/5 of the figure, the legend is below them)
    left, right = (0, 0, 0.5, 0.8), (0.5, 0, 1, 0.8)
    assert _has_colour(paths["latency-cdf"], edge_a, left) and _has_colour(paths["latency-cdf"], edge_a, right)
    assert _has_colour(paths["latency-cdf"], edge_b, left)  # edge-b's camera demand, detect only
    assert not _has_colour(paths["latency-cdf"], edge_b, right)


def test_a_fleet_topology_shows_what_its_caption_says(tmp_path: Path) -> None:
    from lepton_sim.report.data import scenario_shape
    from lepton_sim.report.topology import DETAILED, caption, link_label, site_lines, style_for
    from lepton_sim.scenario import load_scenario
    from report_fixtures import ROOT

    shape = scenario_shape(load_scenario(ROOT / "scenarios" / "metro-fleet.yaml"))
    assert len(shape["sites"]) > DETAILED and style_for(len(shape["sites"])).font >= 8
    text = caption(shape, {"e01--region-east": 0.1})
    assert "demand" in text and "egress price" in text and "utilisation" in text
    demand_sites = {d["site"] for svc in shape["services"].values() for d in svc["demand"]}
    for site in shape["sites"]:
        lines = site_lines(shape, site, detailed=False)
        assert any(line.startswith("⇢") for line in lines) == (site in demand_sites)
    for link in shape["links"]:
        assert f"${link['cost_per_gb']:g}/GB" in link_label(link, 0.1, detailed=False)
    # a shape from metrics.json alone has no demand or prices, and its caption does not promise them
    bare = {"sites": {"a": {"kind": "site"}, "b": {"kind": "site"}}, "links": [{"between": ["a", "b"]}],
            "services": {}, "deployment": None}
    assert "demand" not in caption(bare) and "price" not in caption(bare)


def test_the_run_report_names_no_missing_source_and_its_tables_fit(run_dir: Path, tmp_path: Path) -> None:
    html = write_report(run_dir, tmp_path).html.read_text()
    assert "FACTS" not in html  # price sources say what a figure is, not which file it is missing from
    # numbers are right-aligned, text left; headers may break inside key paths
    assert '<td class="num">' in html and "<th" in html


def test_the_plan_report_describes_the_greedy_baseline_one_way(plan_dir: Path, tmp_path: Path) -> None:
    from lepton_sim.report.plan import GREEDY

    html = write_report(plan_dir, tmp_path).html.read_text()
    doc = json.loads((plan_dir / "plan.json").read_text())
    greedy = next(b for b in doc["baselines"] if b["name"] == "greedy")
    if greedy["usd_per_hour"] is not None:
        assert greedy["note"] == GREEDY  # the planner's words, which the caption repeats
    assert f"greedy: {GREEDY}" in html and "largest demand first" not in html


def test_units_and_slo_of_sweep_key_paths() -> None:
    from lepton_sim.report.sweep import slo_lookup
    from lepton_sim.report.units import axis_label, latency_service, unit, wrap_path

    assert unit("services.detect.latency_ms.p99") == "latency (ms)"
    assert unit("metrics.services.detect.by_site.edge-a.latency_ms.p99") == "latency (ms)"
    assert unit("cost.usd_per_hour") == unit("usd_per_hour") == "US$ per hour"
    assert unit("energy_kwh") == "kWh" and unit("pools.q@a/b/c.utilization").startswith("busy fraction")
    assert unit("services.q.slo.met") == "yes / no"
    assert axis_label("services.detect.demand[0].rate_rps") == "services.detect.demand[0].rate_rps (requests/s)"
    assert latency_service("services.classify-text.latency_ms.p99") == "classify-text"
    assert latency_service("metrics.services.detect.by_site.edge-a.latency_ms.p50") == "detect"
    assert latency_service("predicted.detect.latency_ms") == "detect"
    assert latency_service("services.detect.slo_attainment") is None
    assert all(len(line) <= 36 for line in wrap_path("pools.detect@edge-a/orin/int8.utilization").split("\n"))
    slo = slo_lookup({"q": (99.0, 40.0)})
    assert slo("q", {}) == (99.0, 40.0)
    assert slo("q", {"services.q.slo.latency_ms": 80}) == (99.0, 80.0)
    assert slo("other", {}) is None


def test_yes_no_metrics_are_categories_not_a_scale(sweep_dirs: dict[str, Path]) -> None:
    from lepton_sim.report.sweep import read_rows
    from lepton_sim.report.sweepfigs import is_boolean, seed_stats, yes_no_cells

    rows = read_rows(sweep_dirs["two"])
    assert is_boolean(rows, "services.q.slo.met") and not is_boolean(rows, "services.q.latency_ms.p99")
    codes, texts = yes_no_cells({(1, "a"): [1.0, 1.0], (1, "b"): [0.0, 1.0], (2, "a"): [0.0, 0.0]}, [1, 2],
                                ["a", "b"])
    assert texts == [["yes", "1 of 2"], ["no", "–"]]
    assert codes[0] == [2.0, 1.0] and codes[1][0] == 0.0
    stats = seed_stats(rows, ["services.q.demand[0].rate_rps", "deployment.replicas[0].count"], "services.q.slo.met")
    assert all(set(v) <= {0.0, 1.0} for v in stats.values())


def test_price_labels_on_the_frontier_do_not_overlap() -> None:
    from lepton_sim.report.placement import Label, place_labels
    from lepton_sim.report.style import drawing
    from lepton_sim.report.sweepfigs import step_labels

    assert step_labels([(10, 2.0), (15, 2.0), (20, 1.0), (30, 1.0)]) == [(10, 2.0), (20, 1.0)]
    with drawing(6, 3) as fig:
        ax = fig.add_subplot()
        xs, a, b = [10, 12, 15, 20], [0.78, 0.78, 0.78, 0.27], [0.79, 0.80, 0.79, 0.28]  # two lines close together
        ax.plot(xs, a, marker="o")
        ax.plot(xs, b, marker="s")
        labels = [Label(x, y, f"${y:.3g}", "k") for x, y in [*zip(xs, a), *zip(xs, b)]]
        anns = place_labels(fig, ax, labels)
        renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
        boxes = [ann.get_window_extent(renderer) for ann in anns]
    assert len(boxes) == len(labels)
    for i, p in enumerate(boxes):
        for q in boxes[i + 1:]:
            assert not p.overlaps(q), "two price labels overlap"
