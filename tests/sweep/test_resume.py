"""A sweep killed at any moment loses no finished row, leaves no half-written file, and resumes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lepton_sim.errors import InputError
from lepton_sim.sweeps import sweep
from sweep_fixtures import write_base, write_sweep

RUN = "import sys; from lepton_sim.sweeps import sweep; sweep(sys.argv[1], out=sys.argv[2], workers=int(sys.argv[3]))"


def _sweep_file(tmp_path: Path, duration_s: float = 60) -> Path:
    write_base(tmp_path, duration_s=duration_s)
    return write_sweep(tmp_path, {"base": "base.yaml", "seeds": [1, 2],
                                  "grid": {"services.q.demand[0].rate_rps": [10, 20, 30, 40, 50, 60, 70]},
                                  "collect": ["services.q.latency_ms.p99", "energy_kwh"]})


def _journal_lines(out: Path) -> list[str]:
    path = out / "journal.jsonl"
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize("workers", [1, 2])
def test_kill_then_resume_equals_an_uninterrupted_run(tmp_path: Path, workers: int) -> None:
    spec = _sweep_file(tmp_path, duration_s=800)  # about 0.2 s per point: the kill lands mid-sweep
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", RUN, str(spec), str(out), str(workers)],
                            start_new_session=True)  # its own process group: the kill reaches its workers too
    deadline = time.monotonic() + 60
    while len(_journal_lines(out)) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = [json.loads(line) for line in _journal_lines(out)]
    assert 3 <= len(finished) < 14, "the kill should land mid-sweep"
    if (out / "results.parquet").exists():  # whatever table is there is whole, and holds only finished rows
        assert pq.read_table(out / "results.parquet").num_rows <= len(finished)
        assert (out / "results.csv").read_text().endswith("\n")

    resumed = sweep(spec, out=out, workers=workers)
    records = [json.loads(line) for line in _journal_lines(out)]
    assert records[:len(finished)] == finished  # finished rows were kept, not run again
    assert sorted(r["task"] for r in records) == list(range(14))  # and every other row ran once
    assert not list(out.glob(".*"))

    fresh = sweep(spec, out=tmp_path / "fresh", workers=2)
    assert resumed.equals(fresh)
    assert pq.read_table(out / "results.parquet").equals(fresh)
    assert (out / "results.csv").read_bytes() == (tmp_path / "fresh" / "results.csv").read_bytes()


def test_a_torn_last_journal_line_is_dropped_and_that_row_runs_again(tmp_path: Path) -> None:
    spec = _sweep_file(tmp_path)
    out = tmp_path / "out"
    full = sweep(spec, out=out, workers=1)
    lines = _journal_lines(out)
    (out / "journal.jsonl").write_text("\n".join(lines[:5]) + "\n" + lines[5][:20])  # a kill mid-append
    again = sweep(spec, out=out, workers=1)
    assert again.equals(full)
    assert len(_journal_lines(out)) == 14


def test_a_finished_sweep_runs_nothing_when_started_again(tmp_path: Path) -> None:
    spec = _sweep_file(tmp_path)
    out = tmp_path / "out"
    sweep(spec, out=out, workers=1)
    before = (out / "journal.jsonl").read_bytes()
    sweep(spec, out=out, workers=1)
    assert (out / "journal.jsonl").read_bytes() == before


def test_a_different_sweep_in_the_same_directory_is_refused(tmp_path: Path) -> None:
    spec = _sweep_file(tmp_path)
    out = tmp_path / "out"
    sweep(spec, out=out, workers=1)
    other = write_sweep(tmp_path, {"base": "base.yaml", "seeds": [9]}, "other.yaml")
    with pytest.raises(InputError, match="different sweep"):
        sweep(other, out=out, workers=1)
