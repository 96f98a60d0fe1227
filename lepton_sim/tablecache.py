"""The on-disk cache of capacity tables, used by the CLI: measured ones (`lepton_sim.planner.measured`)
and the exact M/M/c, M/D/c and M/G/c ones (`lepton_sim.planner.latency`).

One SQLite file, `tables.sqlite3`, under `$LEPTON_SIM_CACHE` if set, else
`$XDG_CACHE_HOME/lepton-sim`, else `~/.cache/lepton-sim`. `LEPTON_SIM_CACHE=off` (or `plan
--no-table-cache`) keeps tables in memory only. Each entry is keyed by everything that determines
it (see `measured.point_key`, `latency._stored_capacities`), so a changed scenario never reads a stale entry; deleting the file is
always safe. Several processes (sweep workers) may share it: SQLite serialises the writes, and an
entry that cannot be written (a locked or read-only file) is simply measured again next time.
"""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

FILE = "tables.sqlite3"


def cache_dir() -> Path | None:
    """Where the cache lives, or None when it is switched off."""
    env = os.environ.get("LEPTON_SIM_CACHE")
    if env is not None:
        return None if env.strip().lower() in {"", "off", "0", "none"} else Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "lepton-sim"


class DiskStore:
    """A `TableStore` in one SQLite file; opened on first use (so it can be pickled to sweep workers)."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / FILE
        self._db: sqlite3.Connection | None = None
        self.broken = False
        self._read: dict[str, dict] = {}  # entries already read or written by this process

    def __getstate__(self) -> dict:
        return {"path": self.path, "_db": None, "broken": self.broken, "_read": {}}

    def _conn(self) -> sqlite3.Connection | None:
        if self._db is None and not self.broken:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("CREATE TABLE IF NOT EXISTS entry (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                self._db = db
            except (OSError, sqlite3.Error):
                self.broken = True  # an unusable cache is no cache: tables are measured in memory
        return self._db

    def get(self, key: str) -> dict | None:
        if key in self._read:
            return self._read[key]
        db = self._conn()
        if db is None:
            return None
        try:
            row = db.execute("SELECT value FROM entry WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error:
            return None
        if row is None:
            return None
        self._read[key] = value = json.loads(row[0])
        return value

    def put(self, key: str, value: dict) -> None:
        self._read[key] = value
        db = self._conn()
        if db is None:
            return
        try:
            db.execute("INSERT OR REPLACE INTO entry (key, value) VALUES (?, ?)", (key, json.dumps(value)))
        except sqlite3.Error:
            pass  # measured again next time


    def put_many(self, entries: dict[str, dict]) -> None:
        """`put` of every entry, in one transaction (a plan's children hand over thousands at once)."""
        self._read.update(entries)
        db = self._conn()
        if db is None or not entries:
            return
        try:
            with db:
                db.execute("BEGIN")
                db.executemany("INSERT OR REPLACE INTO entry (key, value) VALUES (?, ?)",
                               [(k, json.dumps(v)) for k, v in entries.items()])
        except sqlite3.Error:
            pass  # measured again next time


def default_store() -> DiskStore | None:
    """The disk store at `cache_dir()`, or None when the cache is off."""
    d = cache_dir()
    return None if d is None else DiskStore(d)
