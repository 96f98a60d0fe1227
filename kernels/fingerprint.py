"""Machine fingerprint: CPU, cores, memory, BLAS and its threading, environment, library versions."""
from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import threadpoolctl

ENV_KEYS = ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
            "NUMEXPR_NUM_THREADS")
LIBRARIES = ("numpy", "scikit-learn", "zstandard", "lz4", "threadpoolctl", "lepton-sim")
# CPU features that decide which SIMD and low-precision paths a library can use.
FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
         "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16", "neon", "asimd")


def _cpuinfo() -> tuple[str, list[str]]:
    model: str = platform.processor() or platform.machine()
    flags: list[str] = []
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and value.strip():
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            have = set(value.split())
            flags = [f for f in FLAGS if f in have]
    return model, flags


def _memory_gb() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError, AttributeError):
        return 0.0


def caches() -> dict[str, int]:
    """Sizes in bytes of the data caches one CPU sees, by level ("L1d", "L2", "L3"), from sysfs; {} elsewhere.

    The last level decides whether a chain's weights stay cached from one forward pass to the
    next (`kernels.micro.cold_gemm_job`). In a virtual machine it is the slice the VM shares with
    its neighbours on the host, so the share left to this process can be smaller.
    """
    out: dict[str, int] = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            kind = (index / "type").read_text(encoding="ascii").strip()
            level = (index / "level").read_text(encoding="ascii").strip()
            size = (index / "size").read_text(encoding="ascii").strip()
        except OSError:
            continue
        if kind == "Instruction" or not size:
            continue
        unit = {"K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30}.get(size[-1].upper(), 1)
        try:
            out[f"L{level}{'d' if kind == 'Data' else ''}"] = int(size.rstrip("KkMmGg")) * unit
        except ValueError:
            continue
    return out


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _pool(info: dict[str, Any]) -> dict[str, Any]:
    """A threadpoolctl record with the library's file reduced to the package that ships it (numpy.libs)."""
    out = {k: v for k, v in info.items() if k != "filepath"}
    out["shipped_in"] = Path(str(info.get("filepath", ""))).parent.name
    return out


def machine() -> dict[str, Any]:
    """The fingerprint record (the `machine` key of a profile)."""
    assert np is not None  # numpy must be loaded for threadpoolctl to see its BLAS
    model, flags = _cpuinfo()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return {
        "cpu_model": model,
        "cpu_flags": flags,
        "logical_cpus": os.cpu_count() or 1,
        "usable_cpus": usable,
        "memory_gb": round(_memory_gb(), 2),
        "caches": caches(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "blas": [_pool(info) for info in threadpoolctl.threadpool_info()],
        "env": {k: os.environ.get(k) for k in ENV_KEYS},
        "libraries": {name: _version(name) for name in LIBRARIES},
        "gpu": None,
    }


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (other work on the machine skews timings)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _cpu_busy_s() -> float | None:
    """Seconds all CPUs spent busy since boot (/proc/stat), or None where unavailable."""
    try:
        fields = Path("/proc/stat").read_text(encoding="ascii").splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    ticks = [int(f) for f in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    guest = sum(ticks[8:10])  # guest time is already counted in user time
    return (sum(ticks) - guest - idle) / os.sysconf("SC_CLK_TCK")


class OtherLoad:
    """CPU time used by other processes while we measure: machine busy time minus our own."""

    def __init__(self) -> None:
        self.cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        self.busy: dict[str, float] = {}
        self.wall: dict[str, float] = {}

    def _now(self) -> tuple[float | None, float, float]:
        t = os.times()
        return _cpu_busy_s(), t.user + t.system, t.elapsed

    def start(self) -> tuple[float | None, float, float]:
        return self._now()

    def stop(self, section: str, mark: tuple[float | None, float, float]) -> None:
        busy0, own0, wall0 = mark
        busy1, own1, wall1 = self._now()
        if busy0 is None or busy1 is None:
            return
        self.busy[section] = self.busy.get(section, 0.0) + max(0.0, (busy1 - busy0) - (own1 - own0))
        self.wall[section] = self.wall.get(section, 0.0) + (wall1 - wall0)

    def fractions(self) -> dict[str, float]:
        """Per section: other processes' CPU time over the CPU time available (wall x CPUs)."""
        return {s: round(min(1.0, self.busy[s] / (self.wall[s] * self.cpus)), 3)
                for s in self.busy if self.wall[s] > 0}
