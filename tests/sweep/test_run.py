"""Running sweeps: the same table on every executor, failures kept in their rows, the files it writes."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lepton_sim.errors import InputError
from lepton_sim.scenario import Scenario
from lepton_sim.sweeps import executors, load_sweep, sweep
from lepton_sim.sweeps.points import expand
from lepton_sim.sweeps.runner import run_task
from sweep_fixtures import write_sweep


def test_rows_have_the_grid_values_seeds_metrics_and_status(load_sweep_file: Path, tmp_path: Path) -> None:
    table = sweep(load_sweep_file, out=tmp_path / "out", workers=1)
    assert table.column_names == [
        "point", "services.q.demand[0].rate_rps", "deployment.replicas[0].count", "seed", "run_seed",
        "services.q.latency_ms.p99", "services.q.slo.met", "services.q.by_site.edge.latency_ms.mean",
        "cost.usd_per_hour", "energy_kwh", "status", "error"]
    rows = table.to_pylist()
    assert len(rows) == 12
    tasks = expand(load_sweep(load_sweep_file))
    assert [r["run_seed"] for r in rows] == [t.run_seed for t in tasks]
    ok = [r for r in rows if r["services.q.demand[0].rate_rps"] != -5]
    assert all(r["status"] == "ok" and r["error"] is None for r in ok)
    assert all(r["services.q.by_site.edge.latency_ms.mean"] > 4.0 for r in ok)  # 2 ms each way, then compute
    # two replicas cost twice one
    assert {r["cost.usd_per_hour"] for r in ok if r["deployment.replicas[0].count"] == 1} == {1.0}
    assert {r["cost.usd_per_hour"] for r in ok if r["deployment.replicas[0].count"] == 2} == {2.0}


def test_a_failing_point_is_its_rows_error_and_the_sweep_goes_on(load_sweep_file: Path, tmp_path: Path) -> None:
    rows = sweep(load_sweep_file, out=tmp_path / "out", workers=2).to_pylist()
    bad = [r for r in rows if r["services.q.demand[0].rate_rps"] == -5]
    assert len(bad) == 4 and all(r["status"] == "error" for r in bad)
    assert all("services.q.demand[0].rate_rps: input should be greater than 0, got -5" in r["error"] for r in bad)
    assert all(r["services.q.latency_ms.p99"] is None for r in bad)
    assert sum(r["status"] == "ok" for r in rows) == 8


def test_an_exception_inside_a_run_is_caught_with_its_type(load_sweep_file: Path) -> None:
    def explode(scenario: Scenario, seed: int) -> dict:
        raise RuntimeError(f"kaboom at seed {seed}")

    task = expand(load_sweep(load_sweep_file))[0]
    rec = run_task(task, {"simulate": explode})
    assert rec["status"] == "error" and rec["error"] == f"RuntimeError: kaboom at seed {task.run_seed}"


def test_a_metric_missing_from_the_outputs_fails_the_row_and_says_which(tmp_path: Path, base: Path) -> None:
    # load_sweep refuses such a path up front (tests/sweep/test_collect_check.py); a task can still carry one
    task = dataclasses.replace(expand(load_sweep(write_sweep(tmp_path, {"base": base.name})))[0],
                               collect=("services.q.by_site.nowhere.latency_ms.p99",))
    rec = run_task(task)
    assert rec["status"] == "error" and "services.q.by_site.nowhere.latency_ms.p99" in rec["error"]


def test_tables_on_disk_equal_the_returned_table(load_sweep_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    table = sweep(load_sweep_file, out=out, workers=2)
    assert pq.read_table(out / "results.parquet").equals(table)
    csv_lines = (out / "results.csv").read_text().splitlines()
    assert csv_lines[0].split(",")[:3] == ["point", "services.q.demand[0].rate_rps", "deployment.replicas[0].count"]
    assert len(csv_lines) == 13
    assert len((out / "journal.jsonl").read_text().splitlines()) == 12
    assert not list(out.glob(".*"))  # no temporary file left behind


def test_serial_local_processes_and_a_dask_cluster_give_the_same_table(load_sweep_file: Path, tmp_path: Path) -> None:
    from distributed import LocalCluster

    serial = sweep(load_sweep_file, out=tmp_path / "serial", workers=1)
    local = sweep(load_sweep_file, out=tmp_path / "local", workers=2)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        dask = sweep(load_sweep_file, out=tmp_path / "dask", scheduler=cluster.scheduler_address)
    assert serial.equals(local) and serial.equals(dask)
    for name in ("results.csv",):
        assert (tmp_path / "serial" / name).read_bytes() == (tmp_path / "local" / name).read_bytes() \
            == (tmp_path / "dask" / name).read_bytes()
    journal = (tmp_path / "dask" / "journal.jsonl").read_text().splitlines()
    assert len({json.loads(line)["worker"] for line in journal}) == 2  # both Dask worker processes ran points


def test_an_unreachable_scheduler_is_bad_input(load_sweep_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT_S", 1.0)
    with pytest.raises(InputError, match="--scheduler tcp://127.0.0.1:9"):
        sweep(load_sweep_file, scheduler="tcp://127.0.0.1:9")


def test_workers_and_scheduler_exclude_each_other(load_sweep_file: Path) -> None:
    with pytest.raises(InputError, match="exclude each other"):
        sweep(load_sweep_file, workers=2, scheduler="tcp://127.0.0.1:9")


def test_a_mapping_works_like_a_file(tmp_path: Path, base: Path) -> None:
    spec = {"base": base.name, "seeds": [4], "grid": {"services.q.slo.latency_ms": [20, 200]},
            "collect": ["services.q.slo.met"]}
    rows = sweep(spec, base_dir=tmp_path, workers=1).to_pylist()
    assert [r["services.q.slo.met"] for r in rows] == [False, True]
