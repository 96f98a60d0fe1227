"""Helpers for the sweep tests: a small M/M/1-like base scenario and sweep files around it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

BASE = """\
name: tiny-queue
seed: 5
horizon: {duration_s: DURATION, warmup_s: 5}
hardware:
  server: {kind: cpu, peak_tflops: {fp32: 1.0}, memory_bandwidth_gbps: 50, memory_gb: 64, power_w: 200,
           idle_power_w: 100, cost_per_hour: 1.0}
sites:
  dc: {kind: datacenter, capacity: {server: 4}}
  edge: {kind: edge}
links:
  - {between: [edge, dc], bandwidth_gbps: 1, latency_ms: 2}
models:
  m: {layers: [{op: dense, in: 64, out: 64}], input_bytes: 256, output_bytes: 256}
services:
  q:
    model: m
    slo: {percentile: 99, latency_ms: 60}
    service_time: {dist: exponential, mean_ms: 10}
    demand:
      - {site: dc, rate_rps: 40}
      - {site: edge, rate_rps: 10}
deployment:
  replicas:
    - {service: q, site: dc, hardware: server, variant: fp32, count: 1}
"""


def write_base(directory: Path, duration_s: float = 60) -> Path:
    path = directory / "base.yaml"
    path.write_text(BASE.replace("DURATION", str(duration_s)))
    return path


def write_sweep(directory: Path, spec: dict[str, Any], name: str = "sweep.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path
