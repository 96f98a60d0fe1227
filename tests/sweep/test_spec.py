"""Sweep files: grid expansion, per-row seeds, key paths, and errors that name the key path."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from sweep_fixtures import write_sweep
from lepton_sim.errors import ScenarioError
from lepton_sim.scenario import parse_yaml
from lepton_sim.sweeps import load_sweep
from lepton_sim.sweeps.keypath import KeyPathError, get_path, parse_path, set_path
from lepton_sim.sweeps.points import expand, run_seed

ROOT = Path(__file__).resolve().parents[2]


def test_grid_is_the_product_first_parameter_slowest(load_sweep_file: Path) -> None:
    spec = load_sweep(load_sweep_file)
    tasks = expand(spec)
    assert len(tasks) == 3 * 2 * 2
    assert [t.index for t in tasks] == list(range(12))
    assert [(t.point, t.seed) for t in tasks[:4]] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert [dict(t.values) for t in tasks[::2]] == [
        {"services.q.demand[0].rate_rps": r, "deployment.replicas[0].count": c} for r in (30, 60, -5) for c in (1, 2)]


def test_every_row_has_its_own_deterministic_seed(load_sweep_file: Path) -> None:
    first = [t.run_seed for t in expand(load_sweep(load_sweep_file))]
    assert first == [t.run_seed for t in expand(load_sweep(load_sweep_file))]
    assert len(set(first)) == len(first)
    assert all(0 <= s < 2**32 for s in first)


def test_a_points_seed_does_not_depend_on_its_place_in_the_grid(tmp_path: Path, base: Path) -> None:
    small = write_sweep(tmp_path, {"base": base.name, "seeds": [3], "grid": {"services.q.demand[0].rate_rps": [30]}},
                        "a.yaml")
    big = write_sweep(tmp_path, {"base": base.name, "seeds": [3],
                                 "grid": {"services.q.demand[0].rate_rps": [10, 20, 30]}}, "b.yaml")
    seed = expand(load_sweep(small))[0].run_seed
    assert expand(load_sweep(big))[2].run_seed == seed == run_seed(3, (("services.q.demand[0].rate_rps", 30),))


def test_defaults_one_seed_from_the_base_and_collects_the_usual_metrics(tmp_path: Path, base: Path) -> None:
    spec = load_sweep(write_sweep(tmp_path, {"base": base.name}))
    assert spec.mode == "simulate" and spec.seeds == (5,) and spec.grid == ()
    assert "services.q.latency_ms.p99" in spec.collect and "cost.usd_per_hour" in spec.collect
    assert len(expand(spec)) == 1


@pytest.mark.parametrize(("spec", "path", "words"), [
    ({"grid": {"services.q.demand[7].rate_rps": [1]}}, "grid.services.q.demand[7].rate_rps", "no index [7]"),
    ({"grid": {"services.nope.slo.latency_ms": [1]}}, "grid.services.nope.slo.latency_ms", "no key 'nope'"),
    ({"grid": {"services.q.bogus": [1]}}, "grid.services.q.bogus", "no key 'bogus'"),
    ({"grid": {"services..q": [1]}}, "grid.services..q", "malformed key path"),
    ({"grid": {"services.q.slo.latency_ms": []}}, "grid.services.q.slo.latency_ms", "non-empty list"),
    ({"grid": {"services.q.slo.latency_ms": [5, 5]}}, "grid.services.q.slo.latency_ms", "distinct"),
    ({"mode": "optimise"}, "mode", "unknown mode 'optimise'"),
    ({"seeds": [1, -2]}, "seeds[1]", "non-negative integer"),
    ({"seeds": [1, 1]}, "seeds", "distinct"),
    ({"base": None}, "base", "required"),
    ({"base": "missing.yaml"}, "base", "not found"),
    ({"colect": ["energy_kwh"]}, "colect", "unknown key 'colect'; did you mean 'collect'?"),
    ({"collect": ["services.q.latency_ms.p999"]}, "collect[0]", "nearest valid paths: services.q.latency_ms.p99"),
    ({"mode": "simulat"}, "mode", "did you mean 'simulate'?"),
    ({"collect": ["services.q.latency_ms.p99", "costs.usd"]}, "collect[1]", "no key 'costs'"),
    ({"collect": ["services.x.latency_ms.p99"]}, "collect[0]", "unknown service 'x'"),
    ({"collect": ["seed"]}, "collect[0]", "write metrics.seed"),
])
def test_sweep_file_errors_name_the_key_path(tmp_path: Path, base: Path, spec: dict, path: str, words: str) -> None:
    full = {"base": base.name, **spec}
    if full["base"] is None:
        del full["base"]
    with pytest.raises(ScenarioError) as exc:
        load_sweep(write_sweep(tmp_path, full))
    assert exc.value.path == path
    assert words in str(exc.value)


def test_a_broken_base_scenario_is_an_error_of_that_file(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("name: x\nhorizon: {duration_s: -1}\n")
    with pytest.raises(ScenarioError) as exc:
        load_sweep(write_sweep(tmp_path, {"base": "base.yaml"}))
    assert exc.value.file and exc.value.file.endswith("base.yaml")


def test_key_paths_read_and_set_nested_values() -> None:
    raw = parse_yaml((ROOT / "scenarios" / "edge-vision.yaml").read_text(), "edge-vision.yaml")
    assert parse_path("services.detect.demand[1].arrival.rates_rps[0]") == [
        "services", "detect", "demand", 1, "arrival", "rates_rps", 0]
    assert get_path(raw, "services.detect.demand[1].arrival.rates_rps[1]") == 400
    edited = copy.deepcopy(raw)
    set_path(edited, "hardware.h100.cost_per_hour", 2.5)  # a catalogue entry's field, not in the file yet
    set_path(edited, "services.detect.max_queue", 64)  # an optional key
    set_path(edited, "sites.dc-1.capacity.orin", 1)  # a new entry in a mapping of counts
    assert edited["hardware"]["h100"] == {"from": "nvidia-h100-sxm", "cost_per_hour": 2.5}
    assert edited["services"]["detect"]["max_queue"] == 64
    for bad in ("hardware.tpu.cost_per_hour", "services.detect.demand[1].arrival.period_s", "links[3].latency_ms"):
        with pytest.raises(KeyPathError):
            set_path(copy.deepcopy(raw), bad, 1)


def test_names_with_dots_are_found() -> None:
    data = {"hardware": {"gpu.v2": {"cost_per_hour": 1.0}}}
    assert get_path(data, "hardware.gpu.v2.cost_per_hour") == 1.0
