"""The results table: one row per (point, seed), typed columns, written as Parquet and CSV.

Columns: ``point``, the grid's key paths, ``seed``, ``run_seed``, the collected metric paths,
``status`` (ok | error) and ``error``. Timing is left out on purpose: the same sweep gives the
same table on any executor (it is in the journal instead).
"""
from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lepton_sim.sweeps.points import Task
from lepton_sim.sweeps.spec import SweepSpec

if TYPE_CHECKING:
    import pyarrow as pa


def columns(spec: SweepSpec) -> list[str]:
    return ["point", *spec.parameters, "seed", "run_seed", *spec.collect, "status", "error"]


def table_rows(spec: SweepSpec, tasks: Sequence[Task],
               records: Mapping[int, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows for the finished tasks (those with a record), in table order."""
    rows = []
    for task in tasks:
        rec = records.get(task.index)
        if rec is None:
            continue
        row: dict[str, Any] = {"point": task.point}
        row.update({path: _scalar(v) for path, v in task.values})
        row.update({"seed": task.seed, "run_seed": task.run_seed})
        row.update({path: rec["values"].get(path) for path in spec.collect})
        row.update({"status": rec["status"], "error": rec["error"]})
        rows.append(row)
    return rows


def _scalar(v: Any) -> Any:
    return v if v is None or isinstance(v, (bool, int, float, str)) else json.dumps(v, sort_keys=True)


def _column_values(values: list[Any]) -> tuple[str, list[Any]]:
    """One type per column: bool, int64, float64 or string (mixed kinds become JSON text)."""
    present = [v for v in values if v is not None]
    if not present:
        return "null", values
    if all(isinstance(v, bool) for v in present):
        return "bool", values
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "int64", values
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return "float64", [None if v is None else float(v) for v in values]
    if all(isinstance(v, str) for v in present):
        return "string", values
    return "string", [None if v is None else (v if isinstance(v, str) else json.dumps(v)) for v in values]


def to_arrow(names: list[str], rows: list[dict[str, Any]]) -> pa.Table:
    """The rows as a pyarrow Table with one type per column."""
    import pyarrow as pa

    arrays, fields = [], []
    for name in names:
        kind, values = _column_values([r.get(name) for r in rows])
        typ = {"null": pa.null(), "bool": pa.bool_(), "int64": pa.int64(), "float64": pa.float64(),
               "string": pa.string()}[kind]
        arrays.append(pa.array(values, type=typ))
        fields.append(pa.field(name, typ))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def parquet_bytes(table: pa.Table) -> bytes:
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def csv_text(table: pa.Table) -> str:
    """CSV with a header; empty cells for nulls; floats as Python writes them (round-trip exact)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(table.column_names)
    for row in table.to_pylist():
        w.writerow(["" if v is None else _csv_cell(v) for v in row.values()])
    return buf.getvalue()


def _csv_cell(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return str(v)
