"""Measurement points for calibration: the CSV a user brings, read and checked row by row.

One row per measurement of a zoo model variant at one batch size:

    model,variant,batch,throughput_per_s,latency_ms,seq_len,share,source

and for a zoo LLM (`kind: llm`: llama-2-7b, llama-3-8b, ...) token-level figures instead:

    model,variant,batch,prompt_tokens,output_tokens,ttft_ms,tpot_ms,output_tokens_per_s,tensor_parallel,source

- ``model`` is a zoo model (`lepton_sim.catalogue.zoo_names()`), ``variant`` one of its variants;
- ``batch`` the batch size the measurement ran at (for a throughput, the batch of a saturated
  replica; for a latency, the batch whose completion was timed);
- exactly one of ``throughput_per_s`` (requests per second of one busy replica) and
  ``latency_ms`` (seconds of one batch, in ms);
- ``seq_len`` (optional) the sequence length of a model that takes one (BERT);
- ``share`` (optional, a throughput's only; default 1) the fraction of the measured throughput
  that the hardware type as modelled delivers, when the measurement also ran engines the model does
  not have beside it (MLPerf's Jetson AGX Orin ResNet-50 Offline runs two DLAs beside the GPU): the
  fit then reproduces ``throughput_per_s x share``. Where the fraction comes from belongs in
  ``source``;
- ``source`` (optional) where the figure comes from; it is kept in the calibration file.

An LLM row gives ``prompt_tokens`` and exactly one of ``ttft_ms`` (first-token latency of
``batch`` prompts prefilled together), ``tpot_ms`` (time per output token of ``batch`` sequences
decoding together) and ``output_tokens_per_s`` (of a batch of ``batch`` requests run together from
prefill to last token); the last two need ``output_tokens``. ``tensor_parallel`` (default 1) is
the devices of the replica. How the model predicts each: the module docstring of
`lepton_sim.calibration.fitting`.

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
from lepton_sim.scenario.schema import LLMModelSpec, ModelSpec

REQUIRED = ("model", "variant", "batch")
MEASURES = ("throughput_per_s", "latency_ms")
OPTIONAL = ("seq_len", "share", "source")
LLM_MEASURES = ("ttft_ms", "tpot_ms", "output_tokens_per_s")
LLM_OPTIONAL = ("prompt_tokens", "output_tokens", "tensor_parallel")
COLUMNS = (*REQUIRED, *MEASURES, *OPTIONAL, *LLM_MEASURES, *LLM_OPTIONAL)
MAX_BATCH = 65536
MAX_TOKENS = 1 << 20


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
    model: ModelSpec | LLMModelSpec  # the zoo model, validated
    extra: dict[str, str] = field(default_factory=dict)  # the caller's own columns (parse_points(extra=...))
    prompt_tokens: int | None = None  # LLM rows only
    output_tokens: int | None = None
    tensor_parallel: int = 1
    share: float = 1.0  # the part of a measured throughput the modelled hardware delivers

    @property
    def target(self) -> float:
        """What the model should reproduce: the measured figure times its ``share``."""
        return self.value * self.share

    @property
    def variant(self) -> Any:
        return self.model.variants[self.variant_name]

    @property
    def llm(self) -> bool:
        return isinstance(self.model, LLMModelSpec)

    @property
    def label(self) -> str:
        seq = f" seq {self.seq_len}" if self.seq_len else ""
        if self.llm:
            out = f"/{self.output_tokens}" if self.output_tokens else ""
            tp = f" tp{self.tensor_parallel}" if self.tensor_parallel > 1 else ""
            seq = f" {self.prompt_tokens}{out} tok{tp}"
        return f"{self.model_name}/{self.variant_name}{seq} b{self.batch}"

    @property
    def unit(self) -> str:
        return {"throughput_per_s": "/s", "output_tokens_per_s": " tok/s"}.get(self.kind, " ms")

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
        for k in ("prompt_tokens", "output_tokens"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        if self.tensor_parallel > 1:
            out["tensor_parallel"] = self.tensor_parallel
        if self.share != 1.0:
            out["share"] = self.share
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
        if col not in COLUMNS and col not in extra:
            known = (*COLUMNS, *extra)
            problems.append(ScenarioError(f"unknown column {col!r}{_near(col, known)}; columns are: "
                                          f"{', '.join(known)}", file=file, path="header"))
    for col in REQUIRED:
        if col not in header:
            problems.append(ScenarioError(f"missing column {col!r}", file=file, path="header"))
    if not any(m in header for m in (*MEASURES, *LLM_MEASURES)):
        problems.append(ScenarioError(f"no measurement column: give {' or '.join(MEASURES)} (for LLMs "
                                      f"{', '.join(LLM_MEASURES)})", file=file, path="header"))
    if problems:
        raise ScenarioError.of(problems)
    reader.fieldnames = header
    points: list[Point] = []
    models: dict[tuple[str, int | None], ModelSpec | LLMModelSpec | None] = {}
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


def _point(i: int, row: dict[str, str], file: str,
           models: dict[tuple[str, int | None], ModelSpec | LLMModelSpec | None],
           problems: list[ScenarioError]) -> Point | None:
    before = len(problems)

    def bad(col: str, msg: str) -> None:
        problems.append(ScenarioError(msg, file=file, path=f"row {i} ({col})"))

    name, vname = row.get("model", ""), row.get("variant", "")
    batch = _positive_int(row.get("batch", ""), "batch", bad, MAX_BATCH)
    seq_len = _positive_int(row["seq_len"], "seq_len", bad, 1 << 20) if row.get("seq_len") else None
    model: ModelSpec | LLMModelSpec | None = None
    if not name:
        bad("model", "empty")
    elif name not in zoo_names():
        bad("model", f"unknown zoo model {name!r}{_near(name, zoo_names())}; zoo models: {', '.join(zoo_names())}")
    else:
        key = (name, seq_len)
        if key not in models:
            try:
                raw = zoo_model(name, **({"seq_len": seq_len} if seq_len else {}))
                spec = LLMModelSpec if raw.get("kind") == "llm" else ModelSpec
                models[key] = spec.model_validate(raw)
            except (TypeError, ValueError) as exc:
                models[key] = None
                bad("seq_len", f"{name}: {exc}")
        model = models[key]
        if model is not None and vname not in model.variants:
            known = list(model.variants)
            bad("variant", f"{name} has no variant {vname!r}{_near(vname, known)}; variants: {', '.join(known)}")
    llm = isinstance(model, LLMModelSpec)
    measures = LLM_MEASURES if llm else MEASURES
    for m in (MEASURES if llm else LLM_MEASURES):
        if row.get(m):
            bad(m, f"{m} is a measure of {'layered models' if llm else 'LLMs (kind: llm)'}; {name} is "
                   f"{'an LLM' if llm else 'not one'}: give one of {', '.join(measures)}")
    if not llm:
        for c in LLM_OPTIONAL:
            if row.get(c):
                bad(c, f"{c} is for LLM rows; {name} is not an LLM")
    given = [(m, row[m]) for m in measures if row.get(m)]
    kind, value = "", math.nan
    if len(given) != 1:
        bad("/".join(measures), f"give exactly one of {' and '.join(measures)} (got {len(given) or 'none'})")
    else:
        kind, text = given[0]
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            bad(kind, f"{text!r} is not a positive number")
    share = 1.0
    if row.get("share"):
        try:
            share = float(row["share"])
        except ValueError:
            share = math.nan
        if not (math.isfinite(share) and 0.0 < share <= 1.0):
            bad("share", f"{row['share']!r} is not a fraction in (0, 1]")
        elif kind and kind not in ("throughput_per_s", "output_tokens_per_s"):
            bad("share", f"share is the modelled part of a throughput; this row gives {kind}")
    prompt = output = None
    tp = 1
    if llm:
        if seq_len is not None:
            bad("seq_len", f"{name} is an LLM: give prompt_tokens and output_tokens, not seq_len")
        prompt = _positive_int(row.get("prompt_tokens", ""), "prompt_tokens", bad, MAX_TOKENS)
        if row.get("output_tokens"):
            output = _positive_int(row["output_tokens"], "output_tokens", bad, MAX_TOKENS)
        elif kind in ("tpot_ms", "output_tokens_per_s"):
            bad("output_tokens", f"empty: {kind} needs the output length")
        if row.get("tensor_parallel"):
            tp = _positive_int(row["tensor_parallel"], "tensor_parallel", bad, 64) or 1
    if len(problems) > before or model is None or batch is None:
        return None
    return Point(i, name, vname, batch, kind, value, seq_len, row.get("source", ""), model,
                 {k: v for k, v in row.items() if k not in COLUMNS}, prompt, output, tp, share)


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
