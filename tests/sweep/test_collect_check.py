"""A sweep's `collect` paths are checked against the metrics.json of the scenario swept, before anything runs."""
from __future__ import annotations

from pathlib import Path

import pytest

from lepton_sim.cli import main
from lepton_sim.errors import ScenarioError
from lepton_sim.metrics import build_metrics
from lepton_sim.scenario import parse_yaml
from lepton_sim.sim import simulate
from lepton_sim.sweeps import load_sweep
from lepton_sim.sweeps.collect import _leaf_paths, _zero_length_metrics
from lepton_sim.sweeps.points import expand
from lepton_sim.sweeps.runner import point_scenario, run_task
from sweep_fixtures import write_sweep

ROOT = Path(__file__).resolve().parents[2]


def _error(tmp_path: Path, spec: dict) -> ScenarioError:
    with pytest.raises(ScenarioError) as exc:
        load_sweep(write_sweep(tmp_path, spec))
    return exc.value


def test_a_typo_below_the_first_key_is_refused_with_the_nearest_paths(tmp_path: Path, base: Path) -> None:
    err = _error(tmp_path, {"base": base.name, "collect": ["services.q.latency_ms.p999"]})
    assert err.path == "collect[0]"
    assert "no key 'p999' at services.q.latency_ms" in err.detail
    assert "nearest valid paths: services.q.latency_ms.p99," in err.detail


@pytest.mark.parametrize(("path", "nearest"), [
    ("services.q.by_site.edg.latency_ms.p99", "services.q.by_site.edge.latency_ms.p99"),
    ("pools.q@dc/server/fp32.utilisation", "pools.q@dc/server/fp32.utilization"),
    ("links.edge--dc.utilisation", "links.edge--dc.utilization"),
    ("cost.usd_per_hr", "cost.usd_per_hour"),
    ("costs.usd_per_hour", "cost.usd_per_hour"),
    ("services.qq.slo_attainment", "services.q.slo_attainment"),
])
def test_each_kind_of_typo_names_what_was_meant(tmp_path: Path, base: Path, path: str, nearest: str) -> None:
    err = _error(tmp_path, {"base": base.name, "collect": [path]})
    assert f"nearest valid paths: {nearest}" in err.detail


def test_every_bad_path_is_listed_at_once(tmp_path: Path, base: Path) -> None:
    err = _error(tmp_path, {"base": base.name, "seeds": [1, -1],
                            "collect": ["energy_kwh", "services.q.latency_ms.p999", "pools.nope.utilization"]})
    assert [p.path for p in err.problems] == ["seeds[1]", "collect[1]", "collect[2]"]
    assert str(err).startswith(f"{tmp_path / 'sweep.yaml'}: 3 problems:\n  1. ")


def test_the_cli_exits_2_before_running_any_point(tmp_path: Path, base: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = write_sweep(tmp_path, {"base": base.name, "grid": {"services.q.demand[0].rate_rps": [10, 20]},
                                  "collect": ["services.q.latency_ms.p99", "services.q.latncy_ms.p99"]})
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--workers", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "collect[1]: unknown metric 'services.q.latncy_ms.p99'" in err and "Traceback" not in err
    assert "nearest valid paths: services.q.latency_ms.p99" in err
    assert not out.exists()  # nothing ran, nothing written


def test_valid_paths_reach_every_part_of_metrics_json(tmp_path: Path, base: Path) -> None:
    collect = ["services.q.latency_ms.p99", "services.q.by_site.edge.slo.met", "pools.q@dc/server/fp32.utilization",
               "nodes.dc/server/0.utilization", "links.edge--dc.directions.edge->dc.gb", "cost.prices.server",
               "energy_kwh_by.site.dc", "timeseries.pools.q@dc/server/fp32", "services.q.latency_ms"]
    spec = load_sweep(write_sweep(tmp_path, {"base": base.name, "collect": collect}))
    record = run_task(expand(spec)[0])
    assert record["status"] == "ok", record["error"]
    assert all(record["values"][p] is not None for p in collect)


def test_names_a_grid_gives_some_points_are_valid(tmp_path: Path, base: Path) -> None:
    """A replica count or a site set by the grid: each point's pools and nodes are valid paths."""
    text = base.read_text().replace("edge: {kind: edge}", "edge: {kind: edge, capacity: {server: 2}}")
    base.write_text(text)
    spec = {"base": base.name, "grid": {"deployment.replicas[0].site": ["dc", "edge"],
                                        "deployment.replicas[0].count": [1, 2]},
            "collect": ["pools.q@edge/server/fp32.utilization", "pools.q@dc/server/fp32.utilization",
                        "nodes.edge/server/1.utilization"]}
    assert len(expand(load_sweep(write_sweep(tmp_path, spec)))) == 4
    spec["collect"] = ["pools.q@mars/server/fp32.utilization"]
    err = _error(tmp_path, spec)
    assert "no key 'q@mars/server/fp32' at pools" in err.detail


def test_a_rate_grid_is_one_structure(tmp_path: Path, base: Path) -> None:
    from lepton_sim.sweeps.collect import metric_shapes

    raw = parse_yaml(base.read_text(), str(base))
    shapes = metric_shapes(raw, (("services.q.demand[0].rate_rps", (1, 2, 3)), ("hardware.server.cost_per_hour", (1, 2))),
                           base_file=str(base), base_dir=base.parent)
    assert len(shapes.documents) == 1 and shapes.complete


def test_plan_verify_checks_service_metrics_and_leaves_the_deployment_open(tmp_path: Path, base: Path) -> None:
    ok = {"base": base.name, "mode": "plan+verify",
          "collect": ["plan.status", "metrics.services.q.latency_ms.p99", "metrics.pools.q@dc/server/fp32.utilization"]}
    assert load_sweep(write_sweep(tmp_path, ok)).collect == tuple(ok["collect"])
    err = _error(tmp_path, {**ok, "collect": ["metrics.services.q.latency_ms.p999", "usd_per_hr"]})
    assert [p.path for p in err.problems] == ["collect[0]", "collect[1]"]
    assert "nearest valid paths: metrics.services.q.latency_ms.p99" in err.problems[0].detail
    assert "nearest valid paths: usd_per_hour" in err.problems[1].detail


def test_the_shape_checked_is_the_shape_a_run_gives(tmp_path: Path, base: Path) -> None:
    """The zero-length simulation has every key of a real run's metrics.json, and no other."""
    spec = load_sweep(write_sweep(tmp_path, {"base": base.name}))
    scenario = point_scenario(expand(spec)[0])
    real = build_metrics(scenario, simulate(scenario, 1))
    shape = _zero_length_metrics(dict(spec.base), spec.base_file, spec.base_dir)
    assert set(_leaf_paths(shape)) == set(_leaf_paths(real))


@pytest.mark.parametrize("name", ["default.yaml", "edge-vision.yaml", "metro-fleet.yaml"])
def test_shipped_scenarios_shape_is_a_runs_shape(name: str) -> None:
    from lepton_sim.scenario import load_scenario
    from lepton_sim.scenario.schema import Horizon

    path = ROOT / "scenarios" / name
    s = load_scenario(path)
    short = s.model_copy(update={"horizon": Horizon(duration_s=2.0, warmup_s=0.5)})
    real = build_metrics(short, simulate(short, 1))
    shape = _zero_length_metrics(parse_yaml(path.read_text(), str(path)), str(path), path.parent)
    assert set(_leaf_paths(shape)) == set(_leaf_paths(real))


def test_a_sweep_over_max_batch_with_a_fixed_wait_runs_every_point(tmp_path: Path, base: Path) -> None:
    text = base.read_text().replace("service_time: {dist: exponential, mean_ms: 10}",
                                    "service_time: {dist: exponential, mean_ms: 10}\n    batching: {max_batch: 1, max_wait_ms: 4}")
    base.write_text(text)
    spec = load_sweep(write_sweep(tmp_path, {"base": base.name, "grid": {"services.q.batching.max_batch": [1, 8, 32]},
                                             "collect": ["services.q.latency_ms.p99"]}))
    records = [run_task(t) for t in expand(spec)]
    assert [r["status"] for r in records] == ["ok", "ok", "ok"], [r["error"] for r in records]
