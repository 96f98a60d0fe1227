"""The error types that cross module boundaries; the CLI maps them to exit codes."""
from __future__ import annotations


class LeptonError(Exception):
    """Base of every error the CLI reports as a one-line message without a traceback."""

    exit_code = 2


class ScenarioError(LeptonError):
    """A scenario (or a file it names) is malformed: says which file, which key path, and what was expected."""

    def __init__(self, message: str, *, file: str | None = None, path: str | None = None) -> None:
        self.file = file
        self.path = path
        self.detail = message
        where = ": ".join(p for p in (file, path) if p)
        super().__init__(f"{where}: {message}" if where else message)


class InputError(LeptonError):
    """A bad flag, a missing file or another input problem that is not inside a scenario."""


class RunError(LeptonError):
    """The run itself failed (for example an infeasible plan)."""

    exit_code = 1
