"""Grid expansion: one task per (grid point, seed), each with its own deterministic run seed."""
from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lepton_sim.sweeps.spec import SweepSpec


@dataclass(frozen=True)
class Task:
    """Everything a worker needs to run one row: picklable, and independent of the sweep object."""

    index: int  # position in the results table: point-major, then seed
    point: int
    seed: int
    run_seed: int
    values: tuple[tuple[str, Any], ...]  # (key path, value) for every grid parameter
    mode: str
    base: Mapping[str, Any]
    base_file: str
    base_dir: Path
    collect: tuple[str, ...]


def grid_points(spec: SweepSpec) -> list[tuple[tuple[str, Any], ...]]:
    """The product of the grid's value lists, first parameter slowest; one empty point for no grid."""
    paths = spec.parameters
    return [tuple(zip(paths, combo)) for combo in itertools.product(*(values for _, values in spec.grid))]


def run_seed(seed: int, values: tuple[tuple[str, Any], ...]) -> int:
    """The seed one row simulates with: derived from the listed seed and the point's own values.

    It depends on what the point is, not where it sits in the grid, so adding values to a grid or
    resuming a sweep never changes the seed of a point already run. Rows are independent samples.
    """
    text = json.dumps([[p, v] for p, v in values], sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(text.encode()).digest()
    words = np.frombuffer(digest, dtype=np.uint32)
    state = np.random.SeedSequence([seed, *words.tolist()]).generate_state(1, dtype=np.uint32)
    return int(state[0])


def expand(spec: SweepSpec) -> list[Task]:
    """Every task of the sweep, in table order."""
    tasks: list[Task] = []
    for point, values in enumerate(grid_points(spec)):
        for seed in spec.seeds:
            tasks.append(Task(index=len(tasks), point=point, seed=seed, run_seed=run_seed(seed, values),
                              values=values, mode=spec.mode, base=spec.base, base_file=spec.base_file,
                              base_dir=spec.base_dir, collect=spec.collect))
    return tasks
