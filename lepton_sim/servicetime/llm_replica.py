"""Whether one LLM replica can serve a service at all, and a lone request's time on it.

Shared by the loader (a deployment line that cannot run is an error at its path) and the planner
(such a replica type is not a candidate), so that both refuse the same replicas for the same reasons.
"""
from __future__ import annotations

import math
from typing import Any

from lepton_sim.servicetime.llm import attention_terms, fit_problem, llm_replica_model
from lepton_sim.servicetime.roofline import UnsupportedPrecision


def replica_problem(model: Any, variant: Any, hardware: Any, tp: int, scheduler: Any,
                    tokens: Any) -> tuple[str, str] | None:
    """Why ``tp`` devices of ``hardware`` cannot serve ``variant`` of ``model`` under ``scheduler``, as (the
    deployment key to blame: "tensor_parallel" or "variant", the reason); None when they can.

    Checks `fit_problem` (interconnect and divisibility for tensor parallelism, the precisions the
    hardware runs, weights and the largest iteration's activations against memory), that the
    iteration-time model can be built, and that the longest request (``tokens.max_tokens()``) gets
    the KV-cache blocks it needs after the weights.
    """
    max_tokens = scheduler.max_batched_tokens + scheduler.max_num_seqs
    why = fit_problem(model, variant, hardware, tp, scheduler.gpu_memory_utilization, max_tokens=max_tokens,
                      max_seqs=scheduler.max_num_seqs)
    if why is not None:
        return ("tensor_parallel" if "interconnect" in why or "divide" in why else "variant"), why
    try:
        m = llm_replica_model(model, variant, hardware, tp, max_tokens, max_seqs=scheduler.max_num_seqs)
    except UnsupportedPrecision as exc:
        return "variant", str(exc)
    except ValueError as exc:
        return "tensor_parallel", str(exc)
    if tokens is None:
        return None
    blocks = m.kv_capacity_tokens(hardware.memory_gb, scheduler.gpu_memory_utilization) // scheduler.block_tokens
    p, o = tokens.max_tokens()
    if p is not None and o is not None:
        need = -(-(p + o) // scheduler.block_tokens)
        if need > blocks:
            return "variant", (f"the longest request ({p} prompt + {o} output tokens) needs {need} KV-cache blocks of "
                               f"{scheduler.block_tokens} tokens; this variant on {tp} x {hardware.name} leaves room "
                               f"for {blocks} after the weights")
    return None


def lone_request_s(model: Any, variant: Any, hardware: Any, tp: int, scheduler: Any, prompt: float,
                   output: float) -> float:
    """Seconds one request of ``prompt`` and ``output`` tokens (rounded) takes on an otherwise idle replica:
    its prompt in chunks of ``max_batched_tokens`` (one when prefill is not chunked), then one decode
    iteration per further token."""
    max_tokens = scheduler.max_batched_tokens + scheduler.max_num_seqs
    m = llm_replica_model(model, variant, hardware, tp, max_tokens, max_seqs=scheduler.max_num_seqs)
    p, o = max(1, round(prompt)), max(1, round(output))
    chunk = scheduler.max_batched_tokens if scheduler.chunked_prefill else max(p, 1)
    chunk = min(chunk, m.max_tokens)
    window = getattr(model, "sliding_window", None)
    total, done = 0.0, 0
    while done < p:
        new = min(chunk, p - done)
        pairs, kv = attention_terms(done, new, window)
        total += m.seconds(new, 1 if done + new >= p else 0, pairs, kv)
        done += new
    if o > 1:
        total += math.fsum(m.decode_seconds(1, p + 1, o - 1))
    return total
