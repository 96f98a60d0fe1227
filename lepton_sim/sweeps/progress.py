"""A progress bar with ETA for a sweep (rich), on stderr; a no-op when disabled."""
from __future__ import annotations

from types import TracebackType
from typing import Any


class SweepProgress:
    """Counts finished rows (and failed ones) against the total; rows resumed from a journal start it."""

    def __init__(self, name: str, total: int, done: int, *, enabled: bool) -> None:
        self.name, self.total, self.done, self.errors = name, total, done, 0
        self._bar: Any = None
        self._task: Any = None
        if enabled:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            from lepton_sim.termtable import console

            self._bar = Progress(TextColumn("sweep {task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[errors]} failed"), TimeElapsedColumn(),
                                 TextColumn("ETA"), TimeRemainingColumn(), console=console(stderr=True),
                                 transient=False)

    def __enter__(self) -> SweepProgress:
        if self._bar is not None:
            self._bar.start()
            self._task = self._bar.add_task(self.name, total=self.total, completed=self.done, errors=0)
        return self

    def advance(self, *, ok: bool) -> None:
        self.done += 1
        self.errors += not ok
        if self._bar is not None:
            self._bar.update(self._task, advance=1, errors=self.errors)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()
