"""Render a profile as readable rich tables (`lepton-sim kernels show`)."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

from lepton_sim.profiles.format import Profile, Timing


def _t(seconds: float) -> str:
    """A duration with a unit that keeps 3 significant figures readable."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3g} us"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def _spread(t: Timing) -> str:
    return f"±{t.iqr_rel * 50:.0f}%"  # half the IQR, relative to the median


def render_profile(p: Profile, console: Console) -> None:
    """Print every section of the profile."""
    m = p.machine
    blas = ", ".join(f"{b.get('internal_api')} {b.get('version')} ({b.get('num_threads')} threads, "
                     f"{b.get('architecture')})" for b in m.blas) or "none found"
    env = ", ".join(f"{k}={v}" for k, v in m.env.items() if v is not None) or "no BLAS variables set"
    console.print(f"[bold]{p.tool}[/bold]  {p.created_utc}{'  (quick)' if p.quick else ''}")
    caches = "".join(f", {level} {size / 2**10:g} KiB" for level, size in m.caches.items())
    console.print(f"{m.cpu_model}, {m.usable_cpus}/{m.logical_cpus} CPUs, {m.memory_gb:g} GB{caches}; "
                  f"BLAS: {blas}; {env}")
    console.print(f"python {m.python}; " + ", ".join(f"{k} {v}" for k, v in m.libraries.items()))
    console.print("basis: every figure below is measured on this machine (none modelled or fitted); a hardware "
                  "type with `profile:` naming this file takes its compute times from these tables", highlight=False)
    if p.other_cpu:
        console.print("other processes' share of the CPUs while measuring: "
                      + ", ".join(f"{s} {f:.0%}" for s, f in p.other_cpu.items()))
    console.print(f"timing: {p.timing_policy.warmup} warm-up calls, up to {p.timing_policy.repeats} samples of at "
                  f"least {p.timing_policy.min_sample_s * 1e3:g} ms, median and IQR (± is half the IQR)")
    _ceilings(p, console)
    _gemm(p, console)
    _elementwise(p, console)
    _structures(p, console)
    _models(p, console)
    _digits(p, console)
    _codecs(p, console)
    for note in p.notes:
        console.print(f"[yellow]note[/yellow]: {note}")


def _ceilings(p: Profile, console: Console) -> None:
    c = p.ceilings
    t = Table(title="Machine ceilings")
    for col in ("ceiling", "value", "at"):
        t.add_column(col)
    for prec, g in c.gemm_gflops.items():
        unit = "GOP/s" if prec.startswith("int") else "GFLOP/s"
        t.add_row(f"GEMM {prec}", f"{g:.4g} {unit}", "M x K x N = " + " x ".join(map(str, c.gemm_shape[prec])))
    t.add_row("memory bandwidth", f"{c.memory_bandwidth_gbps:.3g} GB/s",
              f"copy of {c.copy_bytes / 2**20:.0f} MiB, read + written, {_spread(c.copy_timing)}")
    t.add_row("call overhead", _t(c.call_overhead_s), "one numpy ufunc call on one element")
    console.print(t)


def _gemm(p: Profile, console: Console) -> None:
    for prec in dict.fromkeys(g.precision for g in p.gemm):
        rows = [g for g in p.gemm if g.precision == prec]
        sizes = sorted({g.k for g in rows if g.k == g.n})
        t = Table(title=f"GEMM {prec}: GFLOP/s at M x K x K ({p.paths.get(f'gemm {prec}', 'path not recorded')})")
        t.add_column("M")
        for k in sizes:
            t.add_column(f"K=N={k}", justify="right")
        by = {(g.m, g.k): g for g in rows if g.k == g.n}
        for m in sorted({g.m for g in rows}):
            cells = [f"{by[(m, k)].gflops:.3g}" if (m, k) in by else "" for k in sizes]
            if any(cells):
                t.add_row(str(m), *cells)
        best = max(rows, key=lambda g: g.gflops)
        cold = sum(g.cold is not None for g in rows)
        warm = sum(g.warm is not None for g in rows)
        t.caption = (f"{len(rows)} shapes (all K x N pairs measured; square ones shown); best {best.gflops:.4g} "
                     f"at {best.m}x{best.k}x{best.n} = {best.fraction_of_peak:.0%} of the fp32 ceiling"
                     + (f"; {cold} also timed with cold weights" if cold else "")
                     + (f", {warm} with warm ones (from the shared cache)" if warm else ""))
        console.print(t)


def _elementwise(p: Profile, console: Console) -> None:
    t = Table(title="Memory-bound kernels (largest size measured)")
    for col in ("op", "precision", "sizes", "time", "GB/s", "of bandwidth", "spread"):
        t.add_column(col, justify="right" if col not in ("op", "precision") else "left")
    groups: dict[tuple[str, str, str], list] = {}
    for e in p.elementwise:
        key = (e.op, e.precision, ",".join(f"{k}{v}" for k, v in e.params.items() if k in ("kernel", "stride")))
        groups.setdefault(key, []).append(e)
    for (op, prec, extra), es in groups.items():
        big = max(es, key=lambda e: e.elems)
        small = min(e.elems for e in es)
        t.add_row(f"{op} {extra}".strip(), prec, f"{small:,}-{big.elems:,}", _t(big.timing.median_s),
                  f"{big.gbps:.3g}", f"{big.fraction_of_bandwidth:.0%}", _spread(big.timing))
    console.print(t)


def _structures(p: Profile, console: Console) -> None:
    if p.conv:
        t = Table(title=f"Convolution ({p.paths.get('conv', 'path not recorded')})")
        for col in ("in->out", "kernel/stride/groups", "input", "batch", "time", "GFLOP/s", "spread"):
            t.add_column(col)
        for c in p.conv:
            t.add_row(f"{c.in_ch}->{c.out_ch}", f"{c.kernel}/{c.stride}/{c.groups}", f"{c.in_hw}x{c.in_hw}",
                      str(c.batch), _t(c.timing.median_s), f"{c.gflops:.3g}", _spread(c.timing))
        console.print(t)
    if p.attention:
        t = Table(title="Attention core (QK^T, softmax, AV)")
        for col in ("seq", "heads", "dim", "batch", "time", "GFLOP/s", "spread"):
            t.add_column(col)
        for a in p.attention:
            t.add_row(str(a.seq), str(a.heads), str(a.dim), str(a.batch), _t(a.timing.median_s),
                      f"{a.gflops:.3g}", _spread(a.timing))
        console.print(t)


def _models(p: Profile, console: Console) -> None:
    if not p.models:
        return
    batches = sorted({b.batch for m in p.models for b in m.batches})
    t = Table(title="Whole-model forward pass, seconds per batch")
    for col in ("model", "variant", "weights"):
        t.add_column(col)
    for b in batches:
        t.add_column(f"b={b}", justify="right")
    for m in p.models:
        times = {b.batch: b.timing.median_s for b in m.batches}
        t.add_row(m.model, m.variant, f"{m.weight_bytes:,} B", *(_t(times[b]) if b in times else "" for b in batches))
    console.print(t)


def _digits(p: Profile, console: Console) -> None:
    if p.digits is not None:
        d = p.digits
        t = Table(title=f"digits-mlp variants: held-out accuracy on {d.n_test} images (trained on {d.n_train}, "
                        f"{d.epochs} epochs in {_t(d.train.median_s)})")
        for col in ("variant", "precision", "accuracy", "before fine-tune", "params (non-zero)", "stored bytes"):
            t.add_column(col)
        for name, v in d.variants.items():
            before = f"{v.accuracy_before_finetune:.2%}" if v.accuracy_before_finetune is not None else ""
            t.add_row(name, v.precision + (f" {v.sparsity.pattern} {v.sparsity.ratio:.0%}" if v.sparsity else ""),
                      f"{v.accuracy:.2%}", before, f"{v.params:,} ({v.nonzero_params:,})", f"{v.weight_bytes:,}")
        console.print(t)
    if p.transforms:
        t = Table(title="Compression transforms")
        for col in ("transform", "variant", "transform time", "retraining", "bytes before -> after", "zeros"):
            t.add_column(col)
        for tr in p.transforms:
            t.add_row(tr.name, tr.variant, _t(tr.timing.median_s) if tr.timing else "",
                      _t(tr.retrain.median_s) if tr.retrain else "", f"{tr.bytes_before:,} -> {tr.bytes_after:,}",
                      f"{tr.zero_fraction:.1%}" if tr.zero_fraction is not None else "")
        console.print(t)


def _codecs(p: Profile, console: Console) -> None:
    if not p.codecs:
        return
    t = Table(title="Payload codecs (MB/s of uncompressed data)")
    for col in ("data", "codec", "level", "ratio", "compress MB/s", "decompress MB/s"):
        t.add_column(col, justify="left" if col in ("data", "codec") else "right")
    for c in p.codecs:
        t.add_row(c.data_kind, c.codec, str(c.level), f"{c.ratio:.2f}", f"{c.compress_mb_s:.4g} {_spread(c.compress)}",
                  f"{c.decompress_mb_s:.4g} {_spread(c.decompress)}")
    kinds = "; ".join(f"{k.name}: {k.bytes:,} B ({k.description})" for k in p.data_kinds)
    t.caption = kinds
    console.print(t)
