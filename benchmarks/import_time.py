"""Start-up: wall time of `import lepton_sim`, `lepton-sim --help` and `lepton-sim check scenarios/default.yaml`.

Each command runs in a fresh subprocess (so every import is paid again, as a user pays it), `--runs`
times (default 5); the median is printed beside the goal (under 1 s each, issue 13). The first run
of each command also warms the file-system cache and the bytecode cache, so it is run once more
before the timed runs. Imports dominate both commands; `python -X importtime -c "import
lepton_sim.cli"` shows which.

Run: python benchmarks/import_time.py [--runs 5]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 1.0


def lepton_sim() -> list[str]:
    """The `lepton-sim` script of this interpreter's environment, else `python -m lepton_sim`."""
    script = Path(sys.executable).with_name("lepton-sim")
    if script.exists():
        return [str(script)]
    found = shutil.which("lepton-sim")
    return [found] if found else [sys.executable, "-m", "lepton_sim"]


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    t = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr.strip()[-500:]}")
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="timed runs per command (default 5); the median is shown")
    args = ap.parse_args()
    base = lepton_sim()
    commands = {"python -c 'import lepton_sim'": [sys.executable, "-c", "import lepton_sim"],
                "lepton-sim --help": [*base, "--help"],
                "lepton-sim check scenarios/default.yaml": [*base, "check", "scenarios/default.yaml"]}
    print(f"{'command':<42} {'median':>8} {'min':>7} {'max':>7}  goal")
    for label, cmd in commands.items():
        wall(cmd)  # warm-up: caches, bytecode
        times = [wall(cmd) for _ in range(args.runs)]
        med = statistics.median(times)
        verdict = "ok" if med < GOAL_S else "over"
        print(f"{label:<42} {med:>7.2f}s {min(times):>6.2f}s {max(times):>6.2f}s  < {GOAL_S:g} s: {verdict}", flush=True)


if __name__ == "__main__":
    main()
