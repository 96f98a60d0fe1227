"""Print the reference machine's kernel figures as Markdown tables.

GEMM GFLOP/s against the measured ceiling, memory bandwidth, each digits-mlp variant's held-out
accuracy, stored size and batch-1 / batch-64 latency, and each payload codec's ratio and MB/s.
Every figure is read from a profile (default: the committed reference profile).

    python benchmarks/kernels_report.py [PROFILE]
"""
from __future__ import annotations

import sys
from pathlib import Path

from lepton_sim.profiles import Profile, load_profile, reference_profile_path

GEMM_SHAPES = [(1, 1024, 1024), (16, 1024, 1024), (64, 1024, 1024), (256, 1024, 1024), (1024, 1024, 1024),
               (1024, 4096, 1024), (2048, 2048, 2048), (3072, 3072, 3072), (64, 256, 256), (256, 256, 256)]


def _t(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def gemm_section(p: Profile) -> str:
    c = p.ceilings
    peak = c.gemm_gflops["fp32"]
    rows = []
    by = {(g.precision, g.m, g.k, g.n): g for g in p.gemm}
    for prec in ("fp32", "fp64"):
        for shape in GEMM_SHAPES:
            g = by.get((prec, *shape))
            if g is not None:
                rows.append([prec, "x".join(map(str, shape)), f"{g.gflops:.1f}", f"{g.fraction_of_peak:.0%}",
                             f"±{g.timing.iqr_rel * 50:.0f}%"])
    for prec, best in c.gemm_gflops.items():
        at = "x".join(map(str, c.gemm_shape[prec]))
        rows.append([f"{prec} (best)", at, f"{best:.3g}", f"{best / peak:.1%}", ""])
    head = (f"GEMM (M x K x N, dense layer with bias): machine ceiling = best fp32 rate measured, "
            f"{peak:.1f} GFLOP/s (GOP/s for int8/int4)")
    return head + "\n\n" + _table(["precision", "M x K x N", "GFLOP/s", "of ceiling", "spread"], rows)


def memory_section(p: Profile) -> str:
    c = p.ceilings
    rows = [["copy (ceiling)", f"{c.copy_bytes / 2**20:.0f} MiB", f"{c.memory_bandwidth_gbps:.1f}", "100%"]]
    for op in ("relu", "add", "gelu", "layernorm", "softmax"):
        es = [e for e in p.elementwise if e.op == op and e.precision == "fp32"]
        if es:
            e = max(es, key=lambda e: e.elems)
            rows.append([f"{op} fp32", f"{e.elems * 4 / 2**20:.0f} MiB", f"{e.gbps:.1f}", f"{e.fraction_of_bandwidth:.0%}"])
    return ("Memory bandwidth (bytes read + written per second)\n\n"
            + _table(["kernel", "input", "GB/s", "of copy bandwidth"], rows))


def digits_section(p: Profile) -> str:
    if p.digits is None:
        return "digits-mlp: not in this profile"
    runs = {r.variant: r for r in p.models if r.model == "digits-mlp"}
    fp32 = runs.get("fp32")
    rows = []
    for name, v in p.digits.variants.items():
        run = runs.get(name)
        times = {b.batch: b.timing.median_s for b in run.batches} if run else {}
        base = {b.batch: b.timing.median_s for b in fp32.batches} if fp32 else {}
        cells = []
        for batch in (1, 64):
            t = times.get(batch)
            cells.append(f"{_t(t)} ({base[batch] / t:.2f}x)" if t and batch in base else "not timed")
        before = f" (one-shot {v.accuracy_before_finetune:.1%})" if v.accuracy_before_finetune is not None else ""
        rows.append([name, f"{v.accuracy:.2%}{before}", f"{v.weight_bytes:,}", f"{v.nonzero_params:,}", *cells])
    d = p.digits
    head = (f"digits-mlp on scikit-learn's digits ({d.n_train} train / {d.n_test} held-out test images); "
            f"latency is a whole forward pass, speed-up against fp32 in brackets")
    return head + "\n\n" + _table(["variant", "test accuracy", "stored bytes", "non-zero params", "batch 1",
                                   "batch 64"], rows)


def codec_section(p: Profile) -> str:
    rows = [[c.data_kind, c.codec, str(c.level), f"{c.ratio:.2f}", f"{c.compress_mb_s:.1f}", f"{c.decompress_mb_s:.1f}"]
            for c in p.codecs]
    kinds = ", ".join(f"{k.name} {k.bytes:,} B" for k in p.data_kinds)
    return (f"Payload codecs (MB/s of uncompressed data; samples: {kinds})\n\n"
            + _table(["data", "codec", "level", "ratio", "compress MB/s", "decompress MB/s"], rows))


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else reference_profile_path()
    p = load_profile(path)
    m = p.machine
    blas = "; ".join(f"{b.get('internal_api')} {b.get('version')} {b.get('num_threads')} threads "
                     f"{b.get('architecture')} ({b.get('shipped_in')})" for b in m.blas if b.get("user_api") == "blas")
    print(f"profile {path} ({p.created_utc}{', quick' if p.quick else ''}): {m.cpu_model}, {m.usable_cpus} CPUs, "
          f"{m.memory_gb:g} GB; {blas}; OPENBLAS_CORETYPE={m.env.get('OPENBLAS_CORETYPE')}\n")
    for section in (gemm_section(p), memory_section(p), digits_section(p), codec_section(p)):
        print(section + "\n")
    for note in p.notes:
        print(f"- {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
