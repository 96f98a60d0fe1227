"""Local sweep workers are safe to start after the solver has run in the parent process.

A forked child inherits the locks of a HiGHS thread pool but not its threads; with highspy 1.16 a
plan+verify sweep on two workers after a plan in the same process hung for good. Each scenario runs
in a child interpreter with a deadline, so that a regression fails here instead of stalling the
suite; the deadline is a deadlock detector (the run takes seconds), not a speed requirement.
"""
from __future__ import annotations

import multiprocessing
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lepton_sim.sweeps.executors import worker_context

ROOT = Path(__file__).resolve().parents[2]
DEADLOCK_S = 300

SCRIPT = textwrap.dedent("""
    import multiprocessing, sys
    from pathlib import Path
    import yaml
    import lepton_sim.sweeps.executors as ex
    from lepton_sim.planner import PlanOptions, plan
    from lepton_sim.scenario import load_scenario
    from lepton_sim.sweeps import sweep

    def main():
        root, tmp, start = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
        if start != "default":  # force a start method, to show the solver leaves nothing a fork can trip on
            ex.worker_context = lambda: multiprocessing.get_context(start)
        default = root / "scenarios" / "default.yaml"
        plan(load_scenario(default), PlanOptions(baselines=False))  # HiGHS has run in this process
        spec = tmp / "sweep.yaml"
        spec.write_text(yaml.safe_dump({"base": str(default), "mode": "plan+verify", "seeds": [1],
                                        "grid": {"horizon.duration_s": [20],
                                                 "services.classify-text.slo.latency_ms": [8, 40]}}))
        for i in range(2):
            rows = sweep(spec, out=tmp / f"run{i}", workers=2).to_pylist()
            assert [r["status"] for r in rows] == ["ok", "ok"], rows
        print("finished")

    if __name__ == "__main__":
        main()
""")


def test_workers_are_not_forked_from_this_process() -> None:
    assert worker_context().get_start_method() in ("forkserver", "spawn")


@pytest.mark.parametrize("start", ["default", "fork"])
def test_a_two_worker_sweep_after_a_plan_finishes(tmp_path: Path, start: str) -> None:
    if start != "default" and start not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {start} start method on this platform")
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    try:
        res = subprocess.run([sys.executable, str(script), str(ROOT), str(tmp_path), start],
                             capture_output=True, text=True, timeout=DEADLOCK_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"sweep workers ({start}) deadlocked after a solve in the parent: no result in {DEADLOCK_S} s")
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().splitlines()[-1] == "finished"
    assert "HiGHS" not in res.stdout  # the solver's banner stays off stdout
