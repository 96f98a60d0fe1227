"""LLM iteration times against published results, and what they come to at decode.

1. First-token latency of Llama-2-7B at batch 1 against TensorRT-LLM v0.6.1's published figures
   (docs/source/performance.md: H100 SXM FP8 7 ms for a 128-token prompt and 36 ms for 2,048; A100
   FP16 16 ms and 133 ms), as shipped (calibrated to MLPerf ResNet-50, never to an LLM) and with
   datasheet figures only (the kind's modelled efficiencies). A ratio is simulated over published:
   below 1 the model is faster than the published run. First-token latency is one prefill
   iteration: seconds(tokens=P, samples=1, attn_pairs=P(P+1)/2, kv_tokens=P).
2. Decode: time per output token and tokens/s of Llama-2-7B with 1,024 tokens of context at batch
   1, 8 and 64 (one iteration of B tokens, B samples, B x 1,025 pairs and cached tokens read), on
   the H100, A100 and L4, for each variant the device runs.
3. The kernel breakdown of those iterations (seconds per kernel group).
4. The whole simulator (arrivals, continuous batching, the token stream back) against third-party
   vLLM runs of Llama-3.1-8B at one request at a time (a closed loop of concurrency 1 is requests
   that never overlap: here constant arrivals 5 s apart), none of them fitted to:
   - A100 40GB, BF16, vLLM 0.23.0, 1,024 prompt / 128 output tokens: "decode at one request per
     time runs at about 75 tokens/sec" (johnmusgrave.com/p/vllm-throughput-latency-sweep-on), a
     TPOT of about 13.3 ms. The A100 40GB is the catalogue's A100 with its own datasheet figures
     (1,555 GB/s, 40 GB), so the catalogue's calibration gives way to the gpu kind's defaults.
   - H100 80GB HBM3, fp16, vLLM 0.21.0, InferenceBench "chatbot-short" at concurrency 1: TPOT p50
     6.48 ms, TTFT p50 13.98 ms (yobitelcomm.github.io/bench/recipes/concurrency-sweep/). Its prompt
     and output lengths are not published: simulated at 128 / 128 and 1,024 / 128 tokens, to show
     how much the TPOT depends on them; TTFT is not compared.

5. Calibrated to LLM figures: `lepton-sim calibrate scenarios/calibration/llama-2-7b-trtllm-h100.csv
   --hardware nvidia-h100-sxm` fits the H100's figures to the two TensorRT-LLM FP8 first-token
   rows of (1); the H100 runs of (4), which it was not fitted to, are then simulated with them.

Run:
    python benchmarks/llm_fidelity.py
"""
from __future__ import annotations

from lepton_sim.calibration import calibrated_hardware, datasheet_hardware
from lepton_sim.catalogue import zoo_model
from lepton_sim.scenario.schema import LLMModelSpec
from lepton_sim.servicetime import UnsupportedPrecision
from lepton_sim.servicetime.llm import llm_replica_model

# TensorRT-LLM v0.6.1 docs/source/performance.md: Llama-2-7B first-token latency at batch 1, ms.
PUBLISHED = [("nvidia-h100-sxm", "fp8", 128, 7.0), ("nvidia-h100-sxm", "fp8", 2048, 36.0),
             ("nvidia-a100-80gb", "fp16", 128, 16.0), ("nvidia-a100-80gb", "fp16", 2048, 133.0)]
DECODE_HARDWARE = ["nvidia-h100-sxm", "nvidia-a100-80gb", "nvidia-l4"]
VARIANTS = ["fp16", "fp8", "int8", "int4-awq"]
CONTEXT = 1024
BATCHES = [1, 8, 64]


def model(name: str) -> LLMModelSpec:
    return LLMModelSpec.model_validate(zoo_model(name)).model_copy(update={"name": name})


def first_token() -> None:
    m = model("llama-2-7b")
    print("1. Llama-2-7B first-token latency at batch 1 vs TensorRT-LLM v0.6.1 (ratio = simulated / published)")
    print(f"   {'hardware':<18} {'variant':<8} {'prompt':>6} {'published':>10} {'calibrated':>11} {'ratio':>6}"
          f" {'datasheet':>10} {'ratio':>6}")
    for hw_name, variant, prompt, published in PUBLISHED:
        row = []
        for hw in (calibrated_hardware(hw_name), datasheet_hardware(hw_name)):
            r = llm_replica_model(m, m.variants[variant], hw, 1, prompt)
            ms = r.seconds(prompt, 1, prompt * (prompt + 1) / 2, prompt) * 1e3
            row += [ms, ms / published]
        print(f"   {hw_name:<18} {variant:<8} {prompt:>6} {published:>8.1f}ms {row[0]:>9.2f}ms {row[1]:>6.3f}"
              f" {row[2]:>8.2f}ms {row[3]:>6.3f}")
    print(f"   basis: {calibrated_hardware('nvidia-h100-sxm').name}: "
          f"{llm_replica_model(m, m.variants['fp8'], calibrated_hardware('nvidia-h100-sxm'), 1, 1).basis}")


def decode() -> None:
    m = model("llama-2-7b")
    print(f"\n2. Llama-2-7B decode with {CONTEXT} tokens of context (calibrated catalogue hardware)")
    print(f"   {'hardware':<18} {'variant':<9} " + " ".join(f"{f'batch {b} ms/token':>18} {'tokens/s':>9}"
                                                          for b in BATCHES))
    breakdowns = []
    for hw_name in DECODE_HARDWARE:
        hw = calibrated_hardware(hw_name)
        for variant in VARIANTS:
            try:
                r = llm_replica_model(m, m.variants[variant], hw, 1, max(BATCHES))
            except UnsupportedPrecision:
                print(f"   {hw_name:<18} {variant:<9} (no {m.variants[variant].precision} peak)")
                continue
            cells = []
            for b in BATCHES:
                args = (b, b, b * (CONTEXT + 1.0), b * (CONTEXT + 1.0))
                t = r.seconds(*args)
                cells.append(f"{t * 1e3:>18.3f} {b / t:>9.0f}")
                if variant == "fp16":
                    breakdowns.append((hw_name, b, t, r.breakdown(*args)))
            print(f"   {hw_name:<18} {variant:<9} " + " ".join(cells))
    print("\n3. Kernel breakdown of the fp16 decode iterations above (ms per iteration)")
    groups = list(breakdowns[0][3])
    print(f"   {'hardware':<18} {'batch':>5} {'total':>8} " + " ".join(f"{g:>10}" for g in groups))
    for hw_name, b, t, parts in breakdowns:
        print(f"   {hw_name:<18} {b:>5} {t * 1e3:>8.3f} " + " ".join(f"{parts[g] * 1e3:>10.3f}" for g in groups))
    print(f"\n   {llm_replica_model(m, m.variants['fp16'], calibrated_hardware('nvidia-h100-sxm'), 1, 1).detail}")


SERVING = [  # (hardware overrides, variant, prompt, output, published TPOT ms, what)
    ({"from": "nvidia-a100-80gb", "memory_bandwidth_gbps": 1555, "memory_gb": 40}, "bf16", 1024, 128, 1e3 / 75,
     "A100 40GB, vLLM 0.23.0, about 75 tokens/s"),
    ({"from": "nvidia-h100-sxm"}, "fp16", 128, 128, 6.48, "H100 80GB, vLLM 0.21.0, TPOT p50 6.48 ms"),
    ({"from": "nvidia-h100-sxm"}, "fp16", 1024, 128, 6.48, "the same run, had its prompts been 1,024 tokens"),
]


def serving(runs: list = SERVING, title: str = "4. The whole simulator at one request at a time vs "
            "third-party vLLM runs of Llama-3.1-8B (TPOT p50; ratio = simulated / published)") -> None:
    from lepton_sim.scenario.load import parse_scenario
    from lepton_sim.sim import simulate

    print(f"\n{title}")
    print(f"   {'run':<48} {'prompt':>6} {'output':>6} {'published':>10} {'simulated':>10} {'ratio':>6}"
          f" {'TTFT p50':>9}")
    for hw, variant, prompt, output, published, what in runs:
        raw = {"name": "vllm-c1", "horizon": {"duration_s": 60.0},
               "hardware": {"gpu": hw}, "sites": {"dc": {"capacity": {"gpu": 1}}},
               "models": {"llama": {"from": "llama-3-8b"}},
               "services": {"chat": {"model": "llama",
                                     "slo": {"ttft": {"latency_ms": 1000}, "tpot": {"latency_ms": 100}},
                                     "tokens": {"prompt": {"dist": "fixed", "n": prompt},
                                                "output": {"dist": "fixed", "n": output}},
                                     "demand": [{"site": "dc", "rate_rps": 0.2, "arrival": "constant"}]}},
               "deployment": {"replicas": [{"service": "chat", "site": "dc", "hardware": "gpu", "variant": variant,
                                            "count": 1}]}}
        rec = simulate(parse_scenario(raw))
        llm = rec.services["chat"].llm
        tpot = llm.tpot_s.quantiles([0.5])[0] * 1e3
        ttft = llm.ttft_s.quantiles([0.5])[0] * 1e3
        print(f"   {what:<48} {prompt:>6} {output:>6} {published:>8.2f}ms {tpot:>8.2f}ms {tpot / published:>6.3f}"
              f" {ttft:>7.2f}ms")
        print(f"      {rec.pools[0].compute_basis}")


def calibrated_to_llm_figures() -> None:
    from pathlib import Path

    from lepton_sim.calibration import fit, read_points

    csv_path = Path(__file__).resolve().parents[1] / "scenarios" / "calibration" / "llama-2-7b-trtllm-h100.csv"
    points = read_points(csv_path)
    result = fit(points, datasheet_hardware("nvidia-h100-sxm"))
    figures = {f.name: round(f.value, 4) for f in result.figures}
    print(f"\n5. Fitted to {csv_path.name} ({len(points)} TensorRT-LLM FP8 first-token rows): {figures}; "
          f"fit rms error {100 * result.rms_error:.1f}%, leave-one-out rms {100 * (result.loo_rms_error or 0):.1f}%")
    own = {"compute_efficiency": result.compute_efficiency,
           "memory_efficiency": result.figure("memory_efficiency").value,
           "kernel_overhead_us": result.figure("kernel_overhead_us").value}
    runs = [({**hw, "calibration": None, **own}, *rest) for hw, *rest in SERVING if hw["from"] == "nvidia-h100-sxm"]
    serving(runs, "   The H100 vLLM runs of (4), not fitted to, with those figures (fp16 takes the fp8 figure: "
                  "the lowest given)")


if __name__ == "__main__":
    first_token()
    decode()
    serving()
    calibrated_to_llm_figures()
