"""Tables for the terminal: fit the width, split a table too wide for it, never cut a cell.

Width: `COLUMNS` when set, else the terminal's, else (piped, redirected) `PIPED_WIDTH`. A table
whose columns fit (headers and word-bearing cells may wrap at spaces; numbers never wrap) prints
as one; otherwise it is split into several tables, each repeating the key column(s), the other
columns (by `group`, kept together when they fit) taken in order of their `rank`, so the important
ones (a service's p50, p99, SLO, met) land in the first. Every column folds rather than ends in "…", so nothing is ever truncated.
"""
from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, TextIO

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

PIPED_WIDTH = 100
WRAP_AT = 24  # a wrapping column's cells shorter than this stay on one line
_WORD = re.compile(r"\s*\S+\s*")  # how rich splits a line into words for wrapping
_CUT = re.compile(r":| \(")  # a continued table's title is the first one's up to its colon or parenthesis


def output_width(stream: TextIO) -> int:
    """`COLUMNS` if set, else the width of the terminal `stream` is, else `PIPED_WIDTH`."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        if stream.isatty():
            return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        pass
    return PIPED_WIDTH


def console(*, stderr: bool = False) -> Console:
    """A rich Console on stdout (or stderr) as wide as `output_width` says."""
    return Console(stderr=stderr, width=output_width(sys.stderr if stderr else sys.stdout))


@dataclass(frozen=True)
class Col:
    """One column: header, justification, `rank` (lower stays in the first table when split; default:
    its position), `group` (columns kept together when split) and `wrap` (cells may wrap at spaces:
    labels and prose, never numbers)."""

    header: str
    justify: Literal["left", "right"] = "right"
    rank: int | None = None
    group: str | None = None
    wrap: bool = False


def print_table(c: Console, title: str, cols: Sequence[Col], rows: Iterable[Sequence[str]], *,
                keys: int = 1) -> None:
    """Print the rows (cells may carry rich markup) as one table, or split by columns to fit `c.width`."""
    body = [list(r) for r in rows]
    ranges = [_range(col, [r[i] for r in body]) for i, col in enumerate(cols)]
    for n, part in enumerate(split_columns(cols, ranges, keys, c.width)):
        t = Table(title=title if n == 0 else f"{_CUT.split(title)[0]} (continued)", title_justify="left")
        for i, w in zip(part, _allocate([ranges[i] for i in part], c.width)):
            t.add_column(cols[i].header, justify=cols[i].justify, width=w, overflow="fold")
        for r in body:
            t.add_row(*(r[i] for i in part))
        c.print(t)


def split_columns(cols: Sequence[Col], ranges: Sequence[tuple[int, int]], keys: int, width: int) -> list[list[int]]:
    """Column indices of each table: all of them if they fit, else the keys plus groups taken by rank.

    A group (columns sharing `group`, each other column alone) stays in one table when it fits in
    one; groups are taken in the order of their best-ranked column.
    """
    everything = list(range(len(cols)))
    if _needed(ranges, everything) <= width or len(cols) <= keys:
        return [everything]
    key_idx = everything[:keys]
    groups: dict[str, list[int]] = {}
    for i in sorted(everything[keys:], key=lambda i: (i if cols[i].rank is None else cols[i].rank, i)):
        groups.setdefault(cols[i].group or f"#{i}", []).append(i)
    parts: list[list[int]] = [[]]
    for group in groups.values():
        if parts[-1] and _needed(ranges, key_idx + parts[-1] + group) > width:
            parts.append([])
        for i in group:  # a group too wide for a table of its own goes column by column
            if parts[-1] and _needed(ranges, key_idx + parts[-1] + [i]) > width:
                parts.append([])
            parts[-1].append(i)
    return [key_idx + sorted(p) for p in parts]


def _range(col: Col, cells: list[str]) -> tuple[int, int]:
    """(narrowest, natural) content width of a column.

    The header may always wrap at spaces; cells of a `wrap` column only when longer than `WRAP_AT`
    (so labels stay whole and long notes wrap), others never.
    """
    lengths = [cell_len(Text.from_markup(x).plain) for x in cells]
    natural = max([cell_len(col.header), *lengths])
    if col.wrap:
        words = max([0, *(_longest_word(Text.from_markup(x).plain) for x in cells)])
        cell_min = max(words, min(WRAP_AT, max([0, *lengths])))
    else:
        cell_min = max([0, *lengths])
    return max(_longest_word(col.header), cell_min), natural


def _longest_word(text: str) -> int:
    return max((cell_len(m.group().rstrip()) for line in text.splitlines() for m in _WORD.finditer(line)), default=0)


def _needed(ranges: Sequence[tuple[int, int]], idx: Sequence[int]) -> int:
    return sum(ranges[i][0] for i in idx) + _chrome(len(idx))


def _chrome(n: int) -> int:
    """Borders and padding of an n-column rich table (box edges, separators, one space each side)."""
    return 2 + (n - 1) + 2 * n


def _allocate(ranges: Sequence[tuple[int, int]], width: int) -> list[int]:
    """Content widths: natural if they fit, else each column's narrowest plus the slack, left to right."""
    if sum(hi for _, hi in ranges) + _chrome(len(ranges)) <= width:
        return [hi for _, hi in ranges]
    slack = max(0, width - sum(lo for lo, _ in ranges) - _chrome(len(ranges)))
    out = []
    for lo, hi in ranges:
        extra = min(slack, hi - lo)
        out.append(lo + extra)
        slack -= extra
    return out
