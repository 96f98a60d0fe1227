"""The sweep file: a base scenario, a mode, seeds, a grid of values by key path, metrics to collect.

`load_sweep` validates it once; every problem is a `ScenarioError` naming the sweep file and the
key path (``grid.services.detect.demand[5].rate_rps``), which the CLI turns into exit code 2.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from lepton_sim.errors import ScenarioError
from lepton_sim.scenario import parse_scenario, parse_yaml
from lepton_sim.sweeps.collect import check_collect_path, default_collect
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
    """Validate an already-parsed sweep mapping; `base_dir` resolves a relative `base` path."""
    where = base_dir or Path.cwd()
    if not isinstance(data, Mapping):
        raise ScenarioError("expected a mapping with keys base, mode, seeds, grid, collect", file=file)
    for key in data:
        if key not in _KEYS:
            raise ScenarioError(f"unknown key {key!r}; expected one of: {', '.join(_KEYS)}", file=file, path=str(key))
    base_file, base_raw, base_dir_ = _base(data, file, where)
    mode = _mode(data, file)
    scenario = parse_scenario(base_raw, file=base_file, base_dir=base_dir_)
    grid = _grid(data, file, base_raw)
    if mode == "simulate" and scenario.deployment is None and not any(p.startswith("deployment") for p, _ in grid):
        raise ScenarioError("mode simulate needs a deployment in the base scenario (or one set by the grid)",
                            file=base_file, path="deployment")
    seeds = _seeds(data, file, scenario.seed)
    collect = _collect(data, file, mode, list(scenario.services), {p for p, _ in grid})
    name = data.get("name", Path(file).stem)
    if not isinstance(name, str) or not name:
        raise ScenarioError("expected a non-empty string", file=file, path="name")
    return SweepSpec(name=name, file=file, base_file=base_file, base_dir=base_dir_, base=base_raw, mode=mode,
                     seeds=seeds, grid=grid, collect=collect)


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


def _mode(data: Mapping[str, Any], file: str) -> Mode:
    mode = data.get("mode", "simulate")
    if mode not in MODES:
        raise ScenarioError(f"unknown mode {mode!r}; expected one of: {', '.join(MODES)}", file=file, path="mode")
    return cast(Mode, mode)


def _seeds(data: Mapping[str, Any], file: str, default: int) -> tuple[int, ...]:
    seeds = data.get("seeds", [default])
    if not isinstance(seeds, list) or not seeds:
        raise ScenarioError("expected a non-empty list of seeds (non-negative integers)", file=file, path="seeds")
    for i, s in enumerate(seeds):
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise ScenarioError(f"expected a non-negative integer, got {s!r}", file=file, path=f"seeds[{i}]")
    if len(set(seeds)) != len(seeds):
        raise ScenarioError(f"seeds must be distinct, got {seeds}", file=file, path="seeds")
    return tuple(seeds)


def _grid(data: Mapping[str, Any], file: str, base: dict[str, Any]) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    grid = data.get("grid") or {}
    if not isinstance(grid, Mapping):
        raise ScenarioError("expected a mapping of key path to a list of values", file=file, path="grid")
    out = []
    for path, values in grid.items():
        where = f"grid.{path}"
        try:
            parse_path(str(path))
        except KeyPathError as exc:
            raise ScenarioError(str(exc), file=file, path=where) from None
        if not isinstance(values, list) or not values:
            raise ScenarioError("expected a non-empty list of values", file=file, path=where)
        canon = [_canonical(v) for v in values]
        if len(set(canon)) != len(canon):
            raise ScenarioError(f"values must be distinct, got {values}", file=file, path=where)
        try:
            set_path(copy.deepcopy(base), str(path), values[0])  # does the path lead somewhere in the base?
        except KeyPathError as exc:
            raise ScenarioError(f"unknown key path in the base scenario: {exc}", file=file, path=where) from None
        out.append((str(path), tuple(values)))
    return tuple(out)


def _collect(data: Mapping[str, Any], file: str, mode: Mode, services: list[str], params: set[str]) -> tuple[str, ...]:
    collect = data.get("collect")
    if collect is None:
        return default_collect(mode, services)
    if not isinstance(collect, list) or not collect:
        raise ScenarioError("expected a non-empty list of metric paths", file=file, path="collect")
    for i, path in enumerate(collect):
        where = f"collect[{i}]"
        if not isinstance(path, str):
            raise ScenarioError(f"expected a metric path, got {path!r}", file=file, path=where)
        problem = check_collect_path(path, mode, services)
        if problem:
            raise ScenarioError(problem, file=file, path=where)
        if path in params:
            raise ScenarioError(f"{path!r} is also a grid parameter; a table column needs one meaning",
                                file=file, path=where)
    if len(set(collect)) != len(collect):
        raise ScenarioError("metric paths must be distinct", file=file, path="collect")
    return tuple(collect)


def _canonical(value: Any) -> str:
    """JSON with sorted keys: equal values give equal text (for distinctness, seeds, fingerprints)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
