"""The error types that cross module boundaries; the CLI maps them to exit codes."""
from __future__ import annotations

from collections.abc import Sequence


class LeptonError(Exception):
    """Base of every error the CLI reports as a one-line message without a traceback."""

    exit_code = 2


class ScenarioError(LeptonError):
    """A scenario (or a file it names) is malformed: says which file, which key path, and what was expected.

    One error may carry several `problems` of the same file (every problem found, not only the
    first); its message is then a numbered list, each line naming the file and the key path.
    `path` and `detail` are the first problem's.
    """

    def __init__(self, message: str, *, file: str | None = None, path: str | None = None) -> None:
        self.file = file
        self.path = path
        self.detail = message
        self.problems: tuple[ScenarioError, ...] = (self,)
        super().__init__(self.line())

    def line(self) -> str:
        """This problem as one line: ``file: key.path: what was expected``."""
        where = ": ".join(p for p in (self.file, self.path) if p)
        return f"{where}: {self.detail}" if where else self.detail

    @classmethod
    def of(cls, problems: Sequence[ScenarioError]) -> ScenarioError:
        """One error for every problem found: the problem itself when there is one, else a numbered list."""
        if not problems:
            raise ValueError("ScenarioError.of needs at least one problem")
        if len(problems) == 1:
            return problems[0]
        first = problems[0]
        err = cls(first.detail, file=first.file, path=first.path)
        err.problems = tuple(p for q in problems for p in q.problems)
        n = len(err.problems)
        head = f"{first.file}: {n} problems" if first.file and all(p.file == first.file for p in err.problems) \
            else f"{n} problems"
        lines = [f"{head}:", *(f"  {i}. {p.line()}" for i, p in enumerate(err.problems, start=1))]
        err.args = ("\n".join(lines),)
        return err

    def one_line(self) -> str:
        """Every problem on one line (for a table cell): joined by `` | ``."""
        return " | ".join(p.line() for p in self.problems)


class InputError(LeptonError):
    """A bad flag, a missing file or another input problem that is not inside a scenario."""


class RunError(LeptonError):
    """The run itself failed (for example an infeasible plan)."""

    exit_code = 1
