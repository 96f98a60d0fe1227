"""Reports open in a real headless browser: every figure loads, the page logs no error and it fits a
1,280 px wide window (no sideways scrolling of the page, nor of a table inside it).

Needs Debian's `chromium` (`.ci/run` installs it). Without it the test is skipped on a developer's
machine and fails in CI, where it must run.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from chromium_cdp import find_chromium, load_page
from lepton_sim.report import write_report
from report_fixtures import ROOT, make_plan, make_run, make_sweep

EXAMPLES = sorted((ROOT / "reports").rglob("report.html"))
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run must install it (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium); CI installs it and runs this test")
    return path


def _check(chromium: str, page: Path) -> None:
    result = load_page(chromium, page, viewport=(1280, 900))
    assert result.images, f"{page}: no figures"
    for complete, width, alt in result.images:
        assert complete and width > 0, f"{page}: figure {alt!r} did not load"
    assert result.errors == [], f"{page}: the page logged errors"
    assert result.title.startswith("lepton-sim")
    assert result.scroll_width <= result.client_width, f"{page}: scrolls sideways ({result.too_wide})"
    assert result.too_wide == [], f"{page}: these stick out of the window"
    assert result.scrollers == [], f"{page}: these scroll sideways inside the page (scrollWidth, clientWidth)"


def test_a_fresh_run_report_renders(chromium: str, tmp_path: Path) -> None:
    make_run(tmp_path / "run")
    _check(chromium, write_report(tmp_path / "run").html)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.stem)
def test_the_report_of_every_shipped_scenario_fits_the_window(chromium: str, tmp_path: Path, scenario: Path) -> None:
    make_run(tmp_path / "run", scenario)
    _check(chromium, write_report(tmp_path / "run").html)


def test_a_fresh_plan_report_renders(chromium: str, tmp_path: Path) -> None:
    make_plan(tmp_path / "plan", ROOT / "scenarios" / "edge-vision.yaml")
    _check(chromium, write_report(tmp_path / "plan").html)


def test_a_fresh_sweep_report_renders(chromium: str, tmp_path: Path) -> None:
    out = make_sweep(tmp_path / "sw", {"services.q.slo.latency_ms": [40, 300], "deployment.replicas[0].count": [1, 2]},
                     ["services.q.latency_ms.p99", "services.q.slo.met", "cost.usd_per_hour"], seeds=(1,))
    _check(chromium, write_report(out).html)


def test_the_examples_exist() -> None:
    assert len(EXAMPLES) >= 3, "reports/ should hold the example run and sweep reports (reports/make_examples.sh)"


@pytest.mark.parametrize("page", EXAMPLES, ids=lambda p: p.parent.relative_to(ROOT).as_posix())
def test_the_example_reports_render(chromium: str, page: Path) -> None:
    _check(chromium, page)
