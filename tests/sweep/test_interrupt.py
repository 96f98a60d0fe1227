"""Ctrl-C during a sweep: how far it got, and that the same command resumes it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lepton_sim.cli import main
from lepton_sim.sweeps import executors
from lepton_sim.sweeps.points import Task
from sweep_fixtures import write_base, write_sweep


def test_an_interrupted_sweep_says_how_far_it_got_and_how_to_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    write_base(tmp_path, duration_s=20)
    spec = write_sweep(tmp_path, {"base": "base.yaml", "seeds": [1, 2],
                                  "grid": {"services.q.demand[0].rate_rps": [10, 20, 30]}})
    out = tmp_path / "out"
    argv = ["sweep", str(spec), "--workers", "1", "--out", str(out)]
    real = executors.run_task
    calls = []

    def ctrl_c_on_the_fourth(task: Task) -> dict[str, Any]:
        calls.append(task.index)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(executors, "run_task", ctrl_c_on_the_fourth)
    assert main(argv) == 130
    captured = capsys.readouterr()
    assert captured.err == (f"interrupted: 3 of 6 runs (grid point x seed) done; "
                            f"run the same command again to resume from {out}\n")
    assert len((out / "journal.jsonl").read_text().splitlines()) == 3

    monkeypatch.setattr(executors, "run_task", real)
    assert main(argv) == 0
    assert "6 rows (3 points x 2 seeds), 6 ok, 0 failed" in capsys.readouterr().out
    tasks = [json.loads(line)["task"] for line in (out / "journal.jsonl").read_text().splitlines()]
    assert sorted(tasks) == list(range(6))  # the three finished rows were not run again
