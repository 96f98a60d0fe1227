"""Fixtures of the planner tests: small scenarios built from a mapping, shipped ones, the benchmark's generator."""
from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import pytest

from lepton_sim.scenario import load_scenario, parse_scenario
from lepton_sim.scenario.schema import Scenario
from planner_helpers import ROOT, small


@pytest.fixture
def scenario() -> Callable[..., Scenario]:
    """Build a validated scenario from `small(**changes)`."""
    return lambda **changes: parse_scenario(small(**changes), file="<test>")


@pytest.fixture
def shipped() -> Callable[[str], Scenario]:
    return lambda name: load_scenario(ROOT / "scenarios" / name)


@pytest.fixture(scope="session")
def generator() -> Callable[..., dict[str, Any]]:
    """`make_instance(n_services, n_sites, seed)` from benchmarks/planner_scale.py."""
    spec = importlib.util.spec_from_file_location("planner_scale", ROOT / "benchmarks" / "planner_scale.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_instance
