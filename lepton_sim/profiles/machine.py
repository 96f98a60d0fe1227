"""The `this-machine` catalogue entry and the real model's variants, both read from a profile.

Peak rates, bandwidth and memory are the profile's measurements; power and price cannot be
measured from inside a virtual machine, so they are modelled as this machine's share of the
catalogue's `generic-server-cpu` (whose figures carry their own sources).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from lepton_sim.profiles.format import Profile

REFERENCE = Path("kernels") / "profiles" / "reference.json"
SERVED_PRECISIONS = ("fp32", "fp16", "bf16", "int8", "int4")
# generic-server-cpu is two 96-core AMD EPYC 9654 (its catalogue sources: AMD EPYC 9004 product page).
SERVER_CORES = 192


def reference_profile_path() -> Path:
    """The committed profile of the reference machine (kernels/profiles/reference.json)."""
    here = Path(__file__).resolve().parents[2] / REFERENCE
    if here.is_file():
        return here
    import importlib.util

    spec = importlib.util.find_spec("kernels")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            candidate = Path(loc) / "profiles" / "reference.json"
            if candidate.is_file():
                return candidate
    return here


def this_machine_entry(profile: Profile, server: dict[str, Any]) -> dict[str, Any]:
    """A catalogue hardware entry for the machine `profile` measured; `server` is the generic-server-cpu entry."""
    c = profile.ceilings
    peaks = {p: float(f"{g / 1e3:.6g}") for p, g in c.gemm_gflops.items() if p in SERVED_PRECISIONS}
    cores = profile.machine.usable_cpus
    server_cores = SERVER_CORES
    share = cores / server_cores
    where = f"measured by `lepton-sim kernels measure` on {profile.machine.cpu_model!r} ({profile.created_utc})"
    return {
        "kind": "cpu",
        "peak_tflops": peaks,
        "memory_bandwidth_gbps": round(c.memory_bandwidth_gbps, 3),
        "memory_gb": profile.machine.memory_gb,
        "power_w": round(server["power_w"] * share, 3),
        "idle_power_w": round(server["idle_power_w"] * share, 3),
        "cost_per_hour": round(server["cost_per_hour"] * share, 5),
        "sparse_2_4": False,
        "sources": {
            "peak_tflops": f"{where}: best dense matmul rate per precision over the GEMM grid "
                           f"({', '.join(f'{p} {g:.4g} G{_unit(p)}/s' for p, g in c.gemm_gflops.items())})",
            "memory_bandwidth_gbps": f"{where}: a {c.copy_bytes / 2**20:.0f} MiB copy, bytes read plus written",
            "memory_gb": f"{where}: physical memory reported by the OS",
            "power_w": f"modelled: {cores} of the {server_cores} cores of generic-server-cpu "
                       f"({server['power_w']:g} W), pro rata; a VM cannot read its CPU's power",
            "idle_power_w": f"modelled: {cores}/{server_cores} of generic-server-cpu's idle draw "
                            f"({server['idle_power_w']:g} W)",
            "cost_per_hour": f"modelled: {cores}/{server_cores} of generic-server-cpu's "
                             f"${server['cost_per_hour']:g}/h",
            "sparse_2_4": "numpy has no sparse GEMM path; 2:4 and unstructured sparsity run on dense kernels",
        },
    }


def _unit(precision: str) -> str:
    return "OP" if precision.startswith("int") else "FLOP"


def digits_accuracy(profile: Profile) -> dict[str, float]:
    """Held-out test accuracy of every measured `digits-mlp` variant."""
    if profile.digits is None:
        raise ValueError("the profile has no digits-mlp measurements")
    return {name: v.accuracy for name, v in profile.digits.variants.items()}


def digits_variants(profile: Profile) -> dict[str, dict[str, Any]]:
    """Scenario variant dicts of `digits-mlp` with measured accuracy (the zoo entry's `variants`)."""
    if profile.digits is None:
        raise ValueError("the profile has no digits-mlp measurements")
    d = profile.digits
    out: dict[str, dict[str, Any]] = {}
    for name, v in d.variants.items():
        entry: dict[str, Any] = {"precision": v.precision}
        if v.sparsity is not None:
            entry["sparsity"] = v.sparsity.model_dump()
        if v.layers is not None:
            entry["layers"] = [dict(x) for x in v.layers]
        entry["accuracy"] = v.accuracy
        entry["accuracy_source"] = (f"measured: {v.accuracy:.2%} on {d.n_test} held-out images of {d.dataset}; "
                                    f"{v.how}; profile of {profile.machine.cpu_model!r} ({profile.created_utc})")
        out[name] = entry
    return out
