"""Shared command-line helpers: flag value parsers and the --out directory check."""
from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

from lepton_sim.errors import InputError


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= `low`."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {v}")
        return v
    return parse


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return v


def fraction(text: str) -> float:
    """An argparse type: a relative gap in [0, 1)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a relative gap in [0, 1), got {text!r}") from None
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"expected a relative gap in [0, 1), got {text}")
    return v


def out_dir(out: str | Path) -> Path:
    """Check and create an --out directory before any work, so a bad path fails at once."""
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise InputError(f"--out {out}: exists and is not a directory")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot create the directory: {exc.strerror}") from None
    return p
