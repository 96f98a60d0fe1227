"""Payload codecs (DEFLATE = LZ77 + Huffman, LZMA, Zstandard, LZ4) on real data kinds.

Data kinds: the digits images as uint8 tensors, float32 hidden activations of the trained model,
and text (the package's own Python source read from disk). Throughputs count uncompressed bytes.
"""
from __future__ import annotations

import hashlib
import lzma
import zlib
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import lz4.frame
import numpy as np
import zstandard

from kernels.micro import Job, Record
from kernels.timing import TimingPolicy, time_call

Compress = Callable[[bytes, int], bytes]
Decompress = Callable[[bytes], bytes]


def _zstd_compress(data: bytes, level: int) -> bytes:
    return zstandard.ZstdCompressor(level=level).compress(data)


def _zstd_decompress(data: bytes) -> bytes:
    return zstandard.ZstdDecompressor().decompress(data)


CODECS: dict[str, tuple[Compress, Decompress]] = {
    "zlib": (lambda d, lv: zlib.compress(d, lv), zlib.decompress),
    "lzma": (lambda d, lv: lzma.compress(d, preset=lv), lzma.decompress),
    "zstd": (_zstd_compress, _zstd_decompress),
    "lz4": (lambda d, lv: lz4.frame.compress(d, compression_level=lv), lz4.frame.decompress),
}
FULL_LEVELS: dict[str, tuple[int, ...]] = {"zlib": (1, 6, 9), "lzma": (0, 6, 9), "zstd": (1, 3, 9, 19),
                                           "lz4": (0, 9)}
QUICK_LEVELS: dict[str, tuple[int, ...]] = {"zlib": (1, 6), "lzma": (0,), "zstd": (1, 3), "lz4": (0,)}


def compress(codec: str, level: int, data: bytes) -> bytes:
    """Compress `data` with `codec` at `level`."""
    return CODECS[codec][0](data, level)


def decompress(codec: str, data: bytes) -> bytes:
    """Inverse of `compress`."""
    return CODECS[codec][1](data)


@dataclass(frozen=True)
class DataKind:
    """A payload sample: its name, what it is, and its bytes."""

    name: str
    description: str
    data: bytes

    def record(self) -> Record:
        return {"name": self.name, "description": self.description, "bytes": len(self.data),
                "sha256": hashlib.sha256(self.data).hexdigest()}


def source_text(limit: int) -> bytes:
    """The lepton_sim package's Python source and docs, files in sorted order, up to `limit` bytes."""
    root = Path(__file__).resolve().parent.parent / "lepton_sim"
    parts = [p.read_bytes() for p in sorted(root.rglob("*")) if p.suffix in (".py", ".md", ".yaml")]
    return b"".join(parts)[:limit]


def data_kinds(images_uint8: np.ndarray, activations: np.ndarray, text_limit: int) -> list[DataKind]:
    """The three payload kinds from the real model's data."""
    return [
        DataKind("uint8-images", f"scikit-learn digits, {images_uint8.shape[0]} 8x8 uint8 images (values 0-16)",
                 images_uint8.tobytes()),
        DataKind("float32-activations", f"float32 ReLU outputs of the trained digits-mlp's first layer, "
                 f"{activations.shape[0]}x{activations.shape[1]}", activations.astype(np.float32).tobytes()),
        DataKind("text", "UTF-8 text: the lepton_sim package's own Python source and YAML, read from disk",
                 source_text(text_limit)),
    ]


def codec_job(codec: str, level: int, kind: Callable[[], DataKind], policy: TimingPolicy, name: str) -> Job:
    def run() -> Record:
        dk = kind()
        packed = compress(codec, level, dk.data)
        if decompress(codec, packed) != dk.data:
            raise RuntimeError(f"{codec} level {level} did not round-trip {dk.name}")
        tc = time_call(partial(compress, codec, level, dk.data), policy)
        td = time_call(partial(decompress, codec, packed), policy)
        n = len(dk.data)
        return {"codec": codec, "level": level, "data_kind": dk.name, "input_bytes": n,
                "compressed_bytes": len(packed), "ratio": n / len(packed), "compress": tc.as_dict(),
                "decompress": td.as_dict(), "compress_mb_s": n / tc.median_s / 1e6,
                "decompress_mb_s": n / td.median_s / 1e6}
    return Job("codecs", f"{codec} {level} {name}", run)
