"""The sweep file: a base scenario, a mode, seeds, a grid of values by key path, metrics to collect.

`load_sweep` validates it once, before anything runs; its problems are raised together as one
`ScenarioError`, each naming the sweep file and the key path (``grid.services.detect.demand[5].rate_rps``),
which the CLI turns into exit code 2.
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from lepton_sim.errors import ScenarioError
from lepton_sim.scenario import Scenario, parse_scenario, parse_yaml
from lepton_sim.scenario.schema import is_llm
from lepton_sim.sweeps.collect import MetricShapes, check_collect_path, default_collect, metric_shapes
from lepton_sim.sweeps.keypath import KeyPathError, parse_path, set_path

Mode = Literal["simulate", "plan", "plan+verify"]
MODES: tuple[Mode, ...] = ("simulate", "plan", "plan+verify")
_KEYS = ("name", "description", "base", "mode", "seeds", "grid", "collect")


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: the base scenario as a raw mapping, and what to vary and collect."""

    name: str
    file: str
    base_file: str
    base_dir: Path
    base: Mapping[str, Any]
    mode: Mode
    seeds: tuple[int, ...]
    grid: tuple[tuple[str, tuple[Any, ...]], ...]
    collect: tuple[str, ...]

    @property
    def parameters(self) -> tuple[str, ...]:
        """The varied key paths, in the order the grid gives them."""
        return tuple(path for path, _ in self.grid)

    def fingerprint(self) -> str:
        """A digest of everything that determines the results table (not where it runs)."""
        return hashlib.sha256(_canonical(self.identity()).encode()).hexdigest()

    def identity(self) -> dict[str, Any]:
        return {"base": self.base, "mode": self.mode, "seeds": list(self.seeds),
                "grid": {path: list(values) for path, values in self.grid}, "collect": list(self.collect)}


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file; the base path is relative to the sweep file."""
    p = Path(path)
    file = str(path)
    if not p.is_file():
        raise ScenarioError("no such sweep file" if not p.exists() else "is not a file", file=file)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read: {exc}", file=file) from None
    return parse_sweep(parse_yaml(text, file), file=file, base_dir=p.parent)


def parse_sweep(data: Any, *, file: str = "<sweep>", base_dir: Path | None = None) -> SweepSpec:
    """Validate an already-parsed sweep mapping; `base_dir` resolves a relative `base` path.

    Every problem found is raised together, as one `ScenarioError` (the base scenario's own
    problems among them, naming the base file), before any point runs.
    """
    where = base_dir or Path.cwd()
    if not isinstance(data, Mapping):
        raise ScenarioError("expected a mapping with keys base, mode, seeds, grid, collect", file=file)
    problems: list[ScenarioError] = []

    def fail(path: str, msg: str) -> None:
        problems.append(ScenarioError(msg, file=file, path=path))

    for key in data:
        if key not in _KEYS:
            near = difflib.get_close_matches(str(key), [k for k in _KEYS if k not in data], n=1, cutoff=0.6)
            hint = f"did you mean {near[0]!r}? " if near else ""
            fail(str(key), f"unknown key {key!r}; {hint}expected one of: {', '.join(_KEYS)}")
    try:
        base_file, base_raw, base_dir_ = _base(data, file, where)
    except ScenarioError as exc:
        raise ScenarioError.of([*problems, exc]) from None
    mode = _mode(data, file, fail)
    scenario: Scenario | None = None
    try:
        scenario = parse_scenario(base_raw, file=base_file, base_dir=base_dir_)
    except ScenarioError as exc:
        problems.append(exc)
    grid = _grid(data, file, base_raw, fail)
    if mode == "simulate" and scenario is not None and scenario.deployment is None \
            and not any(p.startswith("deployment") for p, _ in grid):
        problems.append(ScenarioError("mode simulate needs a deployment in the base scenario (or one set by the grid)",
                                      file=base_file, path="deployment"))
    seeds = _seeds(data, scenario.seed if scenario is not None else 0, fail)
    collect: tuple[str, ...] = ()
    if scenario is not None and mode is not None:
        llm = [n for n, svc in scenario.services.items() if is_llm(scenario.models[svc.model])]
        collect = _collect(data, mode, list(scenario.services), llm, {p for p, _ in grid}, fail,
                           lambda: metric_shapes(base_raw, grid, base_file=base_file, base_dir=base_dir_))
    name = data.get("name", Path(file).stem)
    if not isinstance(name, str) or not name:
        fail("name", "expected a non-empty string")
    if problems:
        raise ScenarioError.of(problems)
    assert mode is not None
    return SweepSpec(name=name, file=file, base_file=base_file, base_dir=base_dir_, base=base_raw, mode=mode,
                     seeds=seeds, grid=grid, collect=collect)


Fail = Callable[[str, str], None]  # record a problem of the sweep file at a key path


def _base(data: Mapping[str, Any], file: str, where: Path) -> tuple[str, dict[str, Any], Path]:
    base = data.get("base")
    if not isinstance(base, str) or not base:
        raise ScenarioError("required: the base scenario file, relative to the sweep file", file=file, path="base")
    p = Path(os.path.normpath(base if Path(base).is_absolute() else where / base))
    if not p.is_file():
        raise ScenarioError(f"base scenario not found: {p}", file=file, path="base")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read the base scenario {p}: {exc}", file=file, path="base") from None
    raw = parse_yaml(text, str(p))
    if not isinstance(raw, dict):
        raise ScenarioError("expected a mapping of scenario keys at the top", file=str(p))
    return str(p), raw, p.parent


def _mode(data: Mapping[str, Any], file: str, fail: Fail) -> Mode | None:
    mode = data.get("mode", "simulate")
    if mode not in MODES:
        near = difflib.get_close_matches(str(mode), MODES, n=1, cutoff=0.5)
        hint = f"did you mean {near[0]!r}? " if near else ""
        fail("mode", f"unknown mode {mode!r}; {hint}expected one of: {', '.join(MODES)}")
        return None
    return cast(Mode, mode)


def _seeds(data: Mapping[str, Any], default: int, fail: Fail) -> tuple[int, ...]:
    seeds = data.get("seeds", [default])
    if not isinstance(seeds, list) or not seeds:
        fail("seeds", "expected a non-empty list of seeds (non-negative integers)")
        return ()
    bad = False
    for i, s in enumerate(seeds):
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            fail(f"seeds[{i}]", f"expected a non-negative integer, got {s!r}")
            bad = True
    if not bad and len(set(seeds)) != len(seeds):
        fail("seeds", f"seeds must be distinct, got {seeds}")
    return tuple(seeds)


def _grid(data: Mapping[str, Any], file: str, base: dict[str, Any], fail: Fail) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    grid = data.get("grid") or {}
    if not isinstance(grid, Mapping):
        fail("grid", "expected a mapping of key path to a list of values")
        return ()
    out = []
    for path, values in grid.items():
        where = f"grid.{path}"
        try:
            parse_path(str(path))
        except KeyPathError as exc:
            fail(where, str(exc))
            continue
        if not isinstance(values, list) or not values:
            fail(where, "expected a non-empty list of values")
            continue
        canon = [_canonical(v) for v in values]
        if len(set(canon)) != len(canon):
            fail(where, f"values must be distinct, got {values}")
            continue
        try:
            set_path(copy.deepcopy(base), str(path), values[0])  # does the path lead somewhere in the base?
        except KeyPathError as exc:
            fail(where, f"unknown key path in the base scenario: {exc}")
            continue
        out.append((str(path), tuple(values)))
    return tuple(out)


def _collect(data: Mapping[str, Any], mode: Mode, services: list[str], llm: list[str], params: set[str], fail: Fail,
             shapes: Callable[[], MetricShapes]) -> tuple[str, ...]:
    """The metric paths to collect, each checked against what the mode's documents will hold."""
    collect = data.get("collect")
    if collect is None:
        return default_collect(mode, services, llm)
    if not isinstance(collect, list) or not collect:
        fail("collect", "expected a non-empty list of metric paths")
        return ()
    known = shapes() if mode != "plan" else None  # plan.json's shape is known only once planned
    for i, path in enumerate(collect):
        where = f"collect[{i}]"
        if not isinstance(path, str):
            fail(where, f"expected a metric path, got {path!r}")
            continue
        problem = check_collect_path(path, mode, services, known)
        if problem:
            fail(where, problem)
        elif path in params:
            fail(where, f"{path!r} is also a grid parameter; a table column needs one meaning")
    if len(set(map(str, collect))) != len(collect):
        fail("collect", "metric paths must be distinct")
    return tuple(collect)


def _canonical(value: Any) -> str:
    """JSON with sorted keys: equal values give equal text (for distinctness, seeds, fingerprints)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
