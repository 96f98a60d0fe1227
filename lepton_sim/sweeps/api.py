"""`sweep(...)`: expand a sweep, run its unfinished tasks on an executor, journal them, return the table."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lepton_sim.argtypes import out_dir
from lepton_sim.errors import InputError
from lepton_sim.sweeps.executors import Executor, dask_cluster, local_processes, serial
from lepton_sim.sweeps.points import Task, expand
from lepton_sim.sweeps.progress import SweepProgress
from lepton_sim.sweeps.spec import SweepSpec, load_sweep, parse_sweep
from lepton_sim.sweeps.store import SweepStore
from lepton_sim.sweeps.table import columns, csv_text, parquet_bytes, table_rows, to_arrow

if TYPE_CHECKING:
    import pyarrow as pa


def sweep(spec: str | Path | Mapping[str, Any] | SweepSpec, *, out: str | Path | None = None,
          workers: int | None = None, scheduler: str | None = None, progress: bool = False,
          base_dir: str | Path | None = None) -> pa.Table:
    """Run a sweep and return its results table (a pyarrow Table, one row per (point, seed)).

    `spec` is a sweep file, an already-parsed mapping (its `base` relative to `base_dir`) or a
    `SweepSpec`. With `out`, the rows are journaled there and `results.parquet`/`results.csv`
    written; a second call with the same `out` runs only the tasks not finished yet. `workers`
    local processes (default: all cores; 1 runs in this process), or the Dask cluster at
    `scheduler`. Failing points are rows with status ``error``; nothing is raised for them.
    """
    sw = _as_spec(spec, base_dir)
    executor = choose_executor(workers, scheduler)
    tasks = expand(sw)
    store = SweepStore(out_dir(out), header(sw, tasks)) if out is not None else None
    records: dict[int, dict[str, Any]] = dict(store.records) if store else {}
    todo = [t for t in tasks if t.index not in records]
    try:
        with SweepProgress(sw.name, len(tasks), len(tasks) - len(todo), enabled=progress) as bar:
            for rec in executor(todo):
                if store is not None and not rec.get("transient"):
                    store.append(rec)
                records[int(rec["task"])] = rec
                bar.advance(ok=rec["status"] == "ok")
                if store is not None and store.due():
                    _write_tables(store, sw, tasks, records)
    finally:
        if store is not None:
            _write_tables(store, sw, tasks, records)
            store.close()
    return to_arrow(columns(sw), table_rows(sw, tasks, records))


def choose_executor(workers: int | None, scheduler: str | None) -> Executor:
    """Serial for one worker, local processes for more (default: all cores), Dask with a scheduler."""
    if scheduler is not None:
        if workers is not None:
            raise InputError("--workers and --scheduler exclude each other: the cluster has its own workers")
        return dask_cluster(scheduler)
    n = (os.cpu_count() or 1) if workers is None else workers
    if n < 1:
        raise InputError(f"--workers: expected at least 1, got {n}")
    return serial if n == 1 else local_processes(n)


def header(sw: SweepSpec, tasks: list[Task]) -> dict[str, Any]:
    """sweep.json: what the directory holds, for resuming (the fingerprint) and for the report (which
    draws each service's SLO from `slos`, the base scenario's, so it needs no access to the base file)."""
    from lepton_sim import __version__
    from lepton_sim.scenario import parse_scenario

    base = parse_scenario(sw.base, file=sw.base_file, base_dir=sw.base_dir)
    slos = {name: {"percentile": svc.slo.percentile, "latency_ms": svc.slo.latency_ms,
                   **{k: getattr(svc.slo, k).model_dump() for k in ("ttft", "tpot") if getattr(svc.slo, k) is not None}}
            for name, svc in base.services.items()}
    return {"kind": "lepton-sim sweep", "version": __version__, "name": sw.name, "sweep_file": sw.file,
            "base_file": sw.base_file, "slos": slos, "mode": sw.mode, "seeds": list(sw.seeds),
            "grid": {path: list(values) for path, values in sw.grid}, "parameters": list(sw.parameters),
            "collect": list(sw.collect), "columns": columns(sw), "points": len(tasks) // len(sw.seeds),
            "tasks": len(tasks), "fingerprint": sw.fingerprint()}


def _write_tables(store: SweepStore, sw: SweepSpec, tasks: list[Task], records: dict[int, dict[str, Any]]) -> None:
    table = to_arrow(columns(sw), table_rows(sw, tasks, records))
    store.write_tables(parquet_bytes(table), csv_text(table))


def _as_spec(spec: str | Path | Mapping[str, Any] | SweepSpec, base_dir: str | Path | None) -> SweepSpec:
    if isinstance(spec, SweepSpec):
        return spec
    if isinstance(spec, Mapping):
        return parse_sweep(spec, base_dir=Path(base_dir) if base_dir is not None else None)
    return load_sweep(spec)


