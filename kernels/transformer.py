"""A small decoder-only transformer in numpy (fp32), run one continuous-batching iteration at a time.

The architecture is the one `lepton_sim.servicetime.llm` models (Llama-style, no positional
encoding: the timing does not depend on it): an embedding, ``layers`` blocks of

    x += o_proj(attention(qkv(rmsnorm(x))))          grouped-query attention over a KV cache
    x += down(silu(gate(h)) * up(h)), h = rmsnorm(x)  SwiGLU, gate and up as one GEMM

then a final RMSNorm and the LM head, and greedy sampling (argmax). Weights come from a seeded RNG
(scaled by 1/sqrt(fan-in), so activations stay in range: the values do not change the timing).

`iteration(model, batch)` runs ONE iteration of a continuous-batching engine, as vLLM does: the
new tokens of every scheduled sequence (a prefill chunk, or one decode token) are concatenated
into one matrix, so each projection is a single GEMM over all of them; attention runs per
sequence against its own cache (its new queries against everything it has cached, causally
masked inside the chunk). Sequences whose cache then holds all their known tokens sample their
next token. Each sequence's cache is preallocated for its whole length (prompt + output): the
paged allocation of `block_tokens` blocks is the scheduler's accounting, not a copy.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

F32 = np.float32


@dataclass(frozen=True)
class Config:
    layers: int = 4
    hidden: int = 512
    heads: int = 8
    kv_heads: int = 2
    head_dim: int = 64
    ffn: int = 1408
    vocab: int = 8192
    eps: float = 1e-5

    @property
    def qkv(self) -> int:
        return (self.heads + 2 * self.kv_heads) * self.head_dim

    def gemm_shapes(self) -> dict[str, tuple[int, int]]:
        """(K, N) of each decoder GEMM, by the names `lepton_sim.servicetime.llm` gives them."""
        return {"qkv": (self.hidden, self.qkv), "o_proj": (self.heads * self.head_dim, self.hidden),
                "gate_up": (self.hidden, 2 * self.ffn), "down": (self.ffn, self.hidden)}

    def model_dict(self) -> dict[str, int]:
        """The scenario's `kind: llm` model keys for this architecture."""
        return {"layers": self.layers, "hidden": self.hidden, "heads": self.heads, "kv_heads": self.kv_heads,
                "head_dim": self.head_dim, "ffn": self.ffn, "vocab": self.vocab}


@dataclass
class Layer:
    norm1: np.ndarray
    wqkv: np.ndarray
    wo: np.ndarray
    norm2: np.ndarray
    wgu: np.ndarray
    wdown: np.ndarray


@dataclass
class Model:
    cfg: Config
    embed: np.ndarray
    blocks: list[Layer]
    norm: np.ndarray
    head: np.ndarray

    @property
    def weight_bytes(self) -> int:
        arrays = [self.embed, self.norm, self.head]
        for b in self.blocks:
            arrays += [b.norm1, b.wqkv, b.wo, b.norm2, b.wgu, b.wdown]
        return int(sum(a.nbytes for a in arrays))


def build(cfg: Config, seed: int) -> Model:
    rng = np.random.default_rng(seed)

    def w(k: int, n: int) -> np.ndarray:
        return (rng.standard_normal((k, n)) / np.sqrt(k)).astype(F32)

    blocks = [Layer(np.ones(cfg.hidden, F32), w(cfg.hidden, cfg.qkv), w(cfg.heads * cfg.head_dim, cfg.hidden),
                    np.ones(cfg.hidden, F32), w(cfg.hidden, 2 * cfg.ffn), w(cfg.ffn, cfg.hidden))
              for _ in range(cfg.layers)]
    return Model(cfg, rng.standard_normal((cfg.vocab, cfg.hidden)).astype(F32), blocks, np.ones(cfg.hidden, F32),
                 w(cfg.hidden, cfg.vocab))


@dataclass
class Sequence_:
    """One sequence's tokens (prompt, then those sampled) and its KV cache (cached = `kv` tokens)."""

    tokens: list[int]
    capacity: int
    cfg: Config
    kv: int = 0
    k: np.ndarray = field(init=False, repr=False)
    v: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        c = self.cfg
        self.k = np.zeros((c.layers, c.kv_heads, self.capacity, c.head_dim), F32)
        self.v = np.zeros((c.layers, c.kv_heads, self.capacity, c.head_dim), F32)

    def reset(self) -> None:
        """Preempted: the cache is dropped (its contents are overwritten when it is recomputed)."""
        self.kv = 0


def new_sequence(cfg: Config, prompt: Sequence[int], output: int) -> Sequence_:
    return Sequence_(list(prompt), len(prompt) + output, cfg)


def _rmsnorm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    ms = np.einsum("ij,ij->i", x, x) / x.shape[1]
    return (x / np.sqrt(ms + eps)[:, None]) * w


def _causal(start: int, n: int) -> np.ndarray:
    """(n, start + n): 0 where query i may see key j (j <= start + i), -inf where it may not."""
    return np.where(np.arange(start + n)[None, :] > (start + np.arange(n))[:, None], F32(-np.inf), F32(0.0))


def _attend(q: np.ndarray, k: np.ndarray, v: np.ndarray, start: int, cfg: Config) -> np.ndarray:
    """Grouped-query attention of n new queries at positions start..start+n-1 over keys 0..start+n-1.

    q: (n, heads, head_dim); k, v: (kv_heads, start + n, head_dim). Returns (n, heads x head_dim).
    """
    n = q.shape[0]
    g = cfg.heads // cfg.kv_heads
    qg = q.reshape(n, cfg.kv_heads, g, cfg.head_dim).transpose(1, 2, 0, 3).reshape(cfg.kv_heads, g * n, cfg.head_dim)
    s = np.matmul(qg, k.transpose(0, 2, 1))  # (kv_heads, g x n, keys)
    s *= F32(1.0 / np.sqrt(cfg.head_dim))
    if n > 1:  # causal inside the chunk: query i (position start + i) sees keys up to start + i
        keys = start + n
        s.reshape(cfg.kv_heads, g, n, keys)[...] += _causal(start, n)  # an additive -inf mask, broadcast
    s -= s.max(axis=-1, keepdims=True)
    np.exp(s, out=s)
    s /= s.sum(axis=-1, keepdims=True)
    o = np.matmul(s, v)  # (kv_heads, g x n, head_dim)
    return o.reshape(cfg.kv_heads, g, n, cfg.head_dim).transpose(2, 0, 1, 3).reshape(n, cfg.heads * cfg.head_dim)


def iteration(model: Model, batch: Sequence[tuple[Sequence_, int]]) -> list[int | None]:
    """One continuous-batching iteration: sequence s processes its next n tokens (s.kv .. s.kv + n).

    Returns, per scheduled sequence, the token it sampled (its cache then holds all its known
    tokens), or None (a prefill chunk short of the prompt's end). Advances each s.kv by n; the
    caller appends sampled tokens to s.tokens.
    """
    cfg = model.cfg
    hd, h, kvh = cfg.head_dim, cfg.heads, cfg.kv_heads
    ids = np.concatenate([np.asarray(s.tokens[s.kv:s.kv + n], dtype=np.int64) for s, n in batch])
    x = model.embed[ids]  # (T, hidden)
    bounds = []
    r = 0
    for s, n in batch:
        bounds.append((r, r + n))
        r += n
    for li, blk in enumerate(model.blocks):
        qkv = _rmsnorm(x, blk.norm1, cfg.eps) @ blk.wqkv  # one GEMM over every new token
        outs = []
        for (s, n), (a, b) in zip(batch, bounds):
            part = qkv[a:b]
            q = part[:, : h * hd].reshape(n, h, hd)
            s.k[li, :, s.kv:s.kv + n] = part[:, h * hd:(h + kvh) * hd].reshape(n, kvh, hd).transpose(1, 0, 2)
            s.v[li, :, s.kv:s.kv + n] = part[:, (h + kvh) * hd:].reshape(n, kvh, hd).transpose(1, 0, 2)
            end = s.kv + n
            outs.append(_attend(q, s.k[li, :, :end], s.v[li, :, :end], s.kv, cfg))
        attn = outs[0] if len(outs) == 1 else np.concatenate(outs)
        x = x + attn @ blk.wo
        gu = _rmsnorm(x, blk.norm2, cfg.eps) @ blk.wgu
        gate, up = gu[:, : cfg.ffn], gu[:, cfg.ffn:]
        act = gate / (1.0 + np.exp(-gate)) * up  # SiLU(gate) x up
        x = x + act @ blk.wdown
    rows, out = [], []
    for (s, n), (a, b) in zip(batch, bounds):
        s.kv += n
        if s.kv == len(s.tokens):
            rows.append(b - 1)
            out.append(len(rows) - 1)
        else:
            out.append(-1)
    if not rows:
        return [None] * len(batch)
    logits = _rmsnorm(x[rows], model.norm, cfg.eps) @ model.head  # the LM head only for rows that sample
    best = logits.argmax(axis=1)
    return [None if i < 0 else int(best[i]) for i in out]
