"""Measurement points for calibration: the CSV a user brings, read and checked row by row.

One row per measurement of a zoo model variant at one batch size:

    model,variant,batch,throughput_per_s,latency_ms,seq_len,source

- ``model`` is a zoo model (`lepton_sim.catalogue.zoo_names()`), ``variant`` one of its variants;
- ``batch`` the batch size the measurement ran at (for a throughput, the batch of a saturated
  replica; for a latency, the batch whose completion was timed);
- exactly one of ``throughput_per_s`` (requests per second of one busy replica) and
  ``latency_ms`` (seconds of one batch, in ms);
- ``seq_len`` (optional) the sequence length of a model that takes one (BERT);
- ``source`` (optional) where the figure comes from; it is kept in the calibration file.

Every problem in the file is reported at once, each with its row number and column.
"""
from __future__ import annotations

import csv
import difflib
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lepton_sim.catalogue import zoo_model, zoo_names
from lepton_sim.errors import ScenarioError
from lepton_sim.scenario.schema import ModelSpec

REQUIRED = ("model", "variant", "batch")
MEASURES = ("throughput_per_s", "latency_ms")
OPTIONAL = ("seq_len", "source")
COLUMNS = (*REQUIRED, *MEASURES, *OPTIONAL)
# Token-level LLM measurements (SCENARIO.md) need LLM services, which the zoo does not have yet.
LLM_COLUMNS = ("prompt_tokens", "output_tokens", "ttft_ms", "tpot_ms", "output_tokens_per_s")
MAX_BATCH = 65536


@dataclass(frozen=True)
class Point:
    """One measurement: a zoo model variant at one batch size, as throughput or latency."""

    row: int  # line number in the CSV (the header is line 1)
    model_name: str
    variant_name: str
    batch: int
    kind: str  # "throughput_per_s" or "latency_ms"
    value: float
    seq_len: int | None
    source: str
    model: ModelSpec  # the zoo model, validated
    extra: dict[str, str] = field(default_factory=dict)  # the caller's own columns (parse_points(extra=...))

    @property
    def variant(self) -> Any:
        return self.model.variants[self.variant_name]

    @property
    def label(self) -> str:
        seq = f" seq {self.seq_len}" if self.seq_len else ""
        return f"{self.model_name}/{self.variant_name}{seq} b{self.batch}"

    def predicted(self, batch_seconds: float) -> float:
        """The figure this point measures, given the seconds of one batch of its size."""
        if self.kind == "throughput_per_s":
            return self.batch / batch_seconds
        return batch_seconds * 1e3

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"row": self.row, "model": self.model_name, "variant": self.variant_name,
                               "batch": self.batch, self.kind: self.value}
        if self.seq_len is not None:
            out["seq_len"] = self.seq_len
        if self.source:
            out["source"] = self.source
        return out


def _near(word: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def read_points(path: str | Path) -> list[Point]:
    """The points of a calibration CSV; ScenarioError listing every problem (file, row, column) otherwise."""
    p = Path(path)
    file = str(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ScenarioError("measurements file not found", file=file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read the measurements file: {exc}", file=file) from None
    return parse_points(text, file=file)


def parse_points(text: str, *, file: str = "<measurements>", extra: tuple[str, ...] = ()) -> list[Point]:
    """The points of CSV text (see the module docstring for the columns); ``extra`` columns are allowed too
    and kept in each point's ``extra``."""
    problems: list[ScenarioError] = []
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        raise ScenarioError(f"empty file: expected a header row with {', '.join(REQUIRED)} and one of "
                            f"{' / '.join(MEASURES)}", file=file)
    for col in header:
        if col in LLM_COLUMNS:
            problems.append(ScenarioError(
                f"column {col!r}: token-level LLM measurements are not supported yet (the zoo has no LLM "
                f"services); calibrate with throughput_per_s or latency_ms of zoo models", file=file, path="header"))
        elif col not in COLUMNS and col not in extra:
            known = (*COLUMNS, *extra)
            problems.append(ScenarioError(f"unknown column {col!r}{_near(col, known)}; columns are: "
                                          f"{', '.join(known)}", file=file, path="header"))
    for col in REQUIRED:
        if col not in header:
            problems.append(ScenarioError(f"missing column {col!r}", file=file, path="header"))
    if not any(m in header for m in MEASURES):
        problems.append(ScenarioError(f"no measurement column: give {' or '.join(MEASURES)}", file=file,
                                      path="header"))
    if problems:
        raise ScenarioError.of(problems)
    reader.fieldnames = header
    points: list[Point] = []
    models: dict[tuple[str, int | None], ModelSpec | None] = {}
    for i, raw in enumerate(reader, start=2):
        row = {k: (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(row.values()):
            continue  # a blank line
        if None in raw:
            problems.append(ScenarioError("more fields than columns", file=file, path=f"row {i}"))
            continue
        point = _point(i, row, file, models, problems)
        if point is not None:
            points.append(point)
    if not points and not problems:
        problems.append(ScenarioError("no measurement rows after the header", file=file))
    if problems:
        raise ScenarioError.of(problems)
    return points


def _point(i: int, row: dict[str, str], file: str, models: dict[tuple[str, int | None], ModelSpec | None],
           problems: list[ScenarioError]) -> Point | None:
    before = len(problems)

    def bad(col: str, msg: str) -> None:
        problems.append(ScenarioError(msg, file=file, path=f"row {i} ({col})"))

    name, vname = row.get("model", ""), row.get("variant", "")
    batch = _positive_int(row.get("batch", ""), "batch", bad, MAX_BATCH)
    seq_len = _positive_int(row["seq_len"], "seq_len", bad, 1 << 20) if row.get("seq_len") else None
    given = [(m, row[m]) for m in MEASURES if row.get(m)]
    kind, value = "", math.nan
    if len(given) != 1:
        bad("/".join(MEASURES), f"give exactly one of {' and '.join(MEASURES)} (got {len(given) or 'none'})")
    else:
        kind, text = given[0]
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            bad(kind, f"{text!r} is not a positive number")
    model = None
    if not name:
        bad("model", "empty")
    elif name not in zoo_names():
        bad("model", f"unknown zoo model {name!r}{_near(name, zoo_names())}; zoo models: {', '.join(zoo_names())}")
    else:
        key = (name, seq_len)
        if key not in models:
            try:
                models[key] = ModelSpec.model_validate(zoo_model(name, **({"seq_len": seq_len} if seq_len else {})))
            except (TypeError, ValueError) as exc:
                models[key] = None
                bad("seq_len", f"{name}: {exc}")
        model = models[key]
        if model is not None and vname not in model.variants:
            known = list(model.variants)
            bad("variant", f"{name} has no variant {vname!r}{_near(vname, known)}; variants: {', '.join(known)}")
    if len(problems) > before or model is None or batch is None:
        return None
    return Point(i, name, vname, batch, kind, value, seq_len, row.get("source", ""), model,
                 {k: v for k, v in row.items() if k not in COLUMNS})


def _positive_int(text: str, col: str, bad: Any, most: int) -> int | None:
    try:
        value = int(text)
    except ValueError:
        bad(col, f"{text!r} is not a whole number" if text else "empty")
        return None
    if not 1 <= value <= most:
        bad(col, f"{value} is out of range (1 to {most})")
        return None
    return value
