"""Run one sweep task in whatever process it lands in; every failure becomes the row's error."""
from __future__ import annotations

import copy
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from lepton_sim.errors import LeptonError, ScenarioError
from lepton_sim.scenario import Scenario, parse_scenario
from lepton_sim.sweeps.collect import collect_values
from lepton_sim.sweeps.keypath import KeyPathError, set_path
from lepton_sim.sweeps.modes import MODES, Outputs
from lepton_sim.sweeps.points import Task


def run_task(task: Task, modes: dict[str, Callable[[Scenario, int], Outputs]] = MODES) -> dict[str, Any]:
    """The journal record of one task: collected values, status, error, and where and how long it ran.

    `wall_s` against `cpu_s` shows whether the worker had its core to itself.
    """
    t0, c0 = time.perf_counter(), time.process_time()
    values: dict[str, Any] = {path: None for path in task.collect}
    try:
        scenario = point_scenario(task)
        outputs = modes[task.mode](scenario, task.run_seed)
        values, missing = collect_values(outputs, task.collect, task.mode)
        status, error = "ok", None
        if missing:
            status, error = "error", f"not in the outputs: {', '.join(missing)}"
    except ScenarioError as exc:
        status, error = "error", exc.one_line()  # every problem of the point, in one table cell
    except LeptonError as exc:
        status, error = "error", str(exc)
    except Exception as exc:  # noqa: BLE001 - one bad point must not stop the sweep
        status, error = "error", f"{type(exc).__name__}: {exc}"
    return {"task": task.index, "point": task.point, "seed": task.seed, "run_seed": task.run_seed,
            "values": values, "status": status, "error": error,
            "wall_s": round(time.perf_counter() - t0, 6), "cpu_s": round(time.process_time() - c0, 6),
            "worker": f"{socket.gethostname()}:{os.getpid()}"}


def point_scenario(task: Task) -> Scenario:
    """The base scenario with the point's values set by key path, validated like any scenario file.

    Errors name the base file and the key path; the row beside them holds the point's values.
    """
    raw = copy.deepcopy(dict(task.base))
    for path, value in task.values:
        try:
            set_path(raw, path, value)
        except KeyPathError as exc:
            raise ScenarioError(str(exc), file=task.base_file, path=path) from None
    return parse_scenario(raw, file=task.base_file, base_dir=task.base_dir)
