"""A sweep's output directory: an append-only journal of finished rows, and atomically replaced tables.

`journal.jsonl` is the truth: one JSON line per finished task, flushed and fsync'd before the
tables are touched, so a kill at any moment loses no finished row. `results.parquet` and
`results.csv` are rewritten from it under temporary names and renamed into place, so a reader
never sees half a file. `sweep.json` records which sweep the directory holds; a resume with a
different sweep is refused rather than mixed in.
"""
from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lepton_sim.errors import InputError
from lepton_sim.fileio import atomic_write

JOURNAL = "journal.jsonl"
SPEC = "sweep.json"
PARQUET = "results.parquet"
CSV = "results.csv"
MIN_REWRITE_S = 1.0


class SweepStore:
    """Owns the files of one sweep directory: journal appends, table rewrites, the sweep header."""

    def __init__(self, out: Path, header: Mapping[str, Any]) -> None:
        self.out = out
        self.journal_path = out / JOURNAL
        for name in (SPEC, PARQUET, CSV):  # temporary files of a write that a kill interrupted
            for stale in out.glob(f".{name}.*"):
                stale.unlink(missing_ok=True)
        self._check_or_write_header(header)
        self.records = self._read_journal()
        self._fh = self.journal_path.open("a", encoding="utf-8")
        self._last_write_s = -math.inf
        self._write_cost_s = 0.0

    def _check_or_write_header(self, header: Mapping[str, Any]) -> None:
        path = self.out / SPEC
        if path.exists():
            try:
                old = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise InputError(f"--out {self.out}: unreadable {SPEC} ({exc}); use a new --out") from None
            if old.get("fingerprint") != header["fingerprint"]:
                raise InputError(f"--out {self.out} holds the results of a different sweep (base scenario, mode, "
                                 "seeds, grid or collect differ); use a new --out or delete that directory")
            return
        if (self.out / JOURNAL).exists():
            raise InputError(f"--out {self.out}: has {JOURNAL} but no {SPEC}; use a new --out")
        atomic_write(path, (json.dumps(header, indent=2, default=str) + "\n").encode())

    def _read_journal(self) -> dict[int, dict[str, Any]]:
        """Finished records by task index; a torn last line (a kill mid-append) is cut off."""
        if not self.journal_path.exists():
            return {}
        data = self.journal_path.read_bytes()
        good = data if data.endswith(b"\n") or not data else data[: data.rfind(b"\n") + 1]
        records: dict[int, dict[str, Any]] = {}
        for n, line in enumerate(good.splitlines(), start=1):
            try:
                rec = json.loads(line)
                records[int(rec["task"])] = rec
            except (ValueError, KeyError, TypeError):
                raise InputError(f"{self.journal_path} line {n} is not a journal record; use a new --out") from None
        if len(good) != len(data):
            with self.journal_path.open("r+b") as fh:
                fh.truncate(len(good))
                os.fsync(fh.fileno())
        return records

    def append(self, record: Mapping[str, Any]) -> None:
        """Add one finished row to the journal, durably, before anything else refers to it."""
        self._fh.write(json.dumps(record, sort_keys=True, allow_nan=True) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.records[int(record["task"])] = dict(record)

    def due(self) -> bool:
        """Rewrite the tables at most once a second, and as they grow at most 5% of the time.

        The journal already holds every finished row; this bounds how far the tables lag behind it
        while keeping the main process (which shares the cores with the workers) mostly idle.
        """
        return time.monotonic() - self._last_write_s >= max(MIN_REWRITE_S, 20 * self._write_cost_s)

    def write_tables(self, parquet: bytes, csv: str) -> None:
        t0 = time.monotonic()
        atomic_write(self.out / PARQUET, parquet)
        atomic_write(self.out / CSV, csv.encode())
        self._last_write_s = time.monotonic()
        self._write_cost_s = self._last_write_s - t0

    def close(self) -> None:
        self._fh.close()
