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

    from lepton_sim.planner.document import plan_outputs
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
