"""Payload codec model: compression ratio and seconds per byte of a codec on a data kind, from a profile."""
from __future__ import annotations

import math
from dataclasses import dataclass

from lepton_sim.profiles.format import CodecRun, Profile

# Valid levels of each codec (zstd also has negative "fast" levels).
LEVELS = {"zlib": (0, 9), "lzma": (0, 9), "zstd": (-7, 22), "lz4": (0, 16)}


@dataclass(frozen=True)
class Codec:
    """How a codec treats a payload: bytes on the wire = size / ratio; times scale with the uncompressed size."""

    ratio: float  # uncompressed / compressed
    compress_s_per_byte: float  # at the sender, per uncompressed byte
    decompress_s_per_byte: float  # at the receiver, per uncompressed byte
    source: str


NO_CODEC = Codec(1.0, 0.0, 0.0, "no payload codec")


def _figures(run: CodecRun) -> tuple[float, float, float]:
    return run.ratio, run.compress.median_s / run.input_bytes, run.decompress.median_s / run.input_bytes


def codec_model(profile: Profile, codec: str, level: int, data_kind: str) -> Codec:
    """The measured codec figures; between measured levels, interpolated; ValueError if not measured at all."""
    if codec == "none":
        return NO_CODEC
    if codec not in LEVELS:
        raise ValueError(f"unknown payload codec {codec!r}; known: none, {', '.join(LEVELS)}")
    lo, hi = LEVELS[codec]
    if not lo <= level <= hi:
        raise ValueError(f"{codec} level must be between {lo} and {hi}, got {level}")
    kinds = sorted({r.data_kind for r in profile.codecs})
    if data_kind not in kinds:
        raise ValueError(f"the profile measured no codec on data kind {data_kind!r}; measured: {', '.join(kinds) or 'none'}")
    runs = sorted((r for r in profile.codecs if r.codec == codec and r.data_kind == data_kind), key=lambda r: r.level)
    if not runs:
        raise ValueError(f"the profile did not measure {codec} on {data_kind}")
    where = f"{data_kind}, profile of {profile.machine.cpu_model!r} ({profile.created_utc})"
    by_level = {r.level: r for r in runs}
    if level in by_level:
        return Codec(*_figures(by_level[level]), f"measured: {codec} level {level} on {where}")
    below = [r for r in runs if r.level < level]
    above = [r for r in runs if r.level > level]
    if not below or not above:
        near = (below or above)[-1 if below else 0]
        return Codec(*_figures(near), f"measured: {codec} level {near.level} on {where}, used for level {level} "
                                      f"(outside the measured levels {runs[0].level}-{runs[-1].level})")
    a, b = below[-1], above[0]
    f = (level - a.level) / (b.level - a.level)
    fa, fb = _figures(a), _figures(b)
    ratio = fa[0] + f * (fb[0] - fa[0])
    comp = math.exp(math.log(fa[1]) + f * (math.log(fb[1]) - math.log(fa[1])))
    dec = math.exp(math.log(fa[2]) + f * (math.log(fb[2]) - math.log(fa[2])))
    return Codec(ratio, comp, dec, f"interpolated between measured {codec} levels {a.level} and {b.level} on {where}")
