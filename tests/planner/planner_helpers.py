"""Shared helpers of the planner tests (imported by name: test directories here are not packages)."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def small(**changes: Any) -> dict[str, Any]:
    """A one-site, one-service scenario mapping with fixed compute times; top-level keys replaced by `changes`."""
    base: dict[str, Any] = {
        "name": "t", "seed": 1, "horizon": {"duration_s": 20, "warmup_s": 2},
        "hardware": {"cheap": {"from": "nvidia-t4", "cost_per_hour": 0.5},
                     "dear": {"from": "nvidia-l4", "cost_per_hour": 0.7}},
        "sites": {"dc": {"capacity": {"cheap": 4, "dear": 4}}},
        "models": {"mlp": {"layers": [{"op": "dense", "in": 64, "out": 64}], "input_bytes": 1000,
                           "output_bytes": 100,
                           "variants": {"fp16": {"precision": "fp16", "accuracy": 0.95},
                                        "int8": {"precision": "int8", "accuracy": 0.93}}}},
        "services": {"svc": {"model": "mlp", "slo": {"latency_ms": 50},
                             "service_time": {"dist": "deterministic", "ms": 1},
                             "demand": [{"site": "dc", "rate_rps": 500}]}},
    }
    base.update(copy.deepcopy(changes))
    return base
