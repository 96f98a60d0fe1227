"""The real model's measurements: train `digits-mlp`, compress it, measure accuracy, time every variant.

Variants: fp32 (trained), fp16, int8 (W8A8), int4 (W4A8), fp32-p50/p75/p90 (unstructured
magnitude pruning + masked fine-tuning), fp32-2of4 (2:4 pruning + masked fine-tuning) and distil
(a 64-32-10 student distilled from the fp32 model). Accuracy is on the held-out quarter of the
data, computed by the same kernels that are timed. Pruned weights run through dense kernels here
(numpy has no sparse GEMM path that wins at these sizes); their storage size counts sparse formats.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

import numpy as np

from kernels import compress, digits
from kernels.forward import Params, compile_forward, init_params
from kernels.micro import Job, Record
from kernels.timing import Measured, TimingPolicy, time_call, time_runs
from lepton_sim.catalogue.zoo import digits_mlp_layers

MODEL = "digits-mlp"
STUDENT_HIDDEN = 32
PRUNE_RATIOS = (0.5, 0.75, 0.9)
# A small inline MLP (not in the zoo) measured whole, to check the per-layer model on a second chain.
INLINE_MLP = "inline-mlp"
INLINE_MLP_LAYERS: list[dict[str, Any]] = [
    {"op": "dense", "in": 256, "out": 512}, {"op": "relu"},
    {"op": "dense", "in": 512, "out": 512}, {"op": "relu"},
    {"op": "dense", "in": 512, "out": 10},
]


@dataclass(frozen=True)
class Built:
    """One variant ready to run: its layers, float weights (pruned where pruned), precision, sparsity."""

    layers: list[dict[str, Any]]
    params: Params
    precision: str
    sparsity: dict[str, Any] | None
    how: str
    accuracy_before_finetune: float | None = None


@dataclass
class RealModelBench:
    """Trains once (in the first job), then hands its variants to the timing jobs that follow."""

    policy: TimingPolicy
    quick: bool
    batches: tuple[int, ...]
    runs: int  # repetitions of each training run
    data: digits.DigitsData | None = None
    variants: dict[str, Built] = field(default_factory=dict)
    records: dict[str, Any] = field(default_factory=dict)

    def jobs(self) -> list[Job]:
        names = self.variant_names()
        jobs = [Job("digits", f"train {MODEL}, compress, accuracy", self.train_and_compress)]
        jobs += [Job("models", f"{MODEL} {v} forward", partial(self.time_variant, v)) for v in names]
        precisions = ("fp32",) if self.quick else ("fp32", "int8")
        jobs += [Job("models", f"{INLINE_MLP} {p} forward", partial(self.time_inline, p)) for p in precisions]
        return jobs

    def variant_names(self) -> list[str]:
        if self.quick:
            return ["fp32", "int8"]
        return ["fp32", "fp16", "int8", "int4", *(f"fp32-p{int(r * 100)}" for r in PRUNE_RATIOS),
                "fp32-2of4", "distil"]

    # --- training, compression, accuracy -------------------------------------------------

    def train_and_compress(self) -> Record:
        data = self.data = digits.load_data()
        layers = digits_mlp_layers()
        epochs = digits.EPOCHS // 3 if self.quick else digits.EPOCHS
        fine = max(1, digits.FINETUNE_EPOCHS // 3) if self.quick else digits.FINETUNE_EPOCHS
        fit = partial(digits.train, layers, data.x_train, data.y_train, seed=digits.SEED)
        train_t, params = time_runs(partial(fit, epochs=epochs), self.runs)
        dense_bytes = compress.storage_bytes(params, "fp32")
        for p in ("fp32", "fp16", "int8", "int4"):
            self.variants[p] = Built(layers, params, p, None, _HOW[p])
        transforms = [self._quant_transform(params, bits, dense_bytes) for bits in (8, 4)]
        if not self.quick:
            for ratio in PRUNE_RATIOS:
                transforms.append(self._prune(layers, params, "magnitude", ratio, fine, dense_bytes))
            transforms.append(self._prune(layers, params, "2:4", 0.5, fine, dense_bytes))
            transforms.append(self._distil(layers, params, epochs, dense_bytes))
        variants = {name: self._variant_record(name, b) for name, b in self.variants.items()}
        self.records = {
            "digits": {
                "dataset": "sklearn.datasets.load_digits (bundled with scikit-learn: 1,797 8x8 images, "
                           f"10 classes), stratified {1 - digits.TEST_FRACTION:.0%}/{digits.TEST_FRACTION:.0%} split",
                "n_train": int(len(data.y_train)), "n_test": int(len(data.y_test)), "seed": digits.SEED,
                "epochs": epochs, "train": train_t.as_dict(), "variants": variants,
            },
            "transforms": transforms,
        }
        return self.records

    def _quant_transform(self, params: Params, bits: int, dense_bytes: int) -> Record:
        t = time_call(partial(compress.quantise, params, bits), self.policy)
        prec = f"int{bits}"
        return {"name": f"quantise-int{bits}", "variant": prec, "timing": t.as_dict(),
                "bytes_before": dense_bytes, "bytes_after": compress.storage_bytes(params, prec)}

    def _prune(self, layers: list[dict[str, Any]], params: Params, how: str, ratio: float, epochs: int,
               dense_bytes: int) -> Record:
        assert self.data is not None
        t = time_call(partial(compress.prune, params, how, ratio), self.policy)
        pruned, masks = compress.prune(params, how, ratio)
        before = self._accuracy(layers, pruned, "fp32")
        retrain, tuned = time_runs(partial(digits.train, layers, self.data.x_train, self.data.y_train,
                                           seed=digits.SEED + 1, epochs=epochs, params=pruned, masks=masks,
                                           lr=digits.LR / 2), self.runs)
        name = "fp32-2of4" if how == "2:4" else f"fp32-p{int(ratio * 100)}"
        sparsity = {"pattern": "2:4" if how == "2:4" else "unstructured", "ratio": ratio}
        self.variants[name] = Built(layers, tuned, "fp32", sparsity,
                                    _HOW["2:4" if how == "2:4" else "prune"].format(ratio=ratio, epochs=epochs),
                                    before)
        return {"name": "prune-2:4" if how == "2:4" else f"prune-magnitude-{int(ratio * 100)}", "variant": name,
                "timing": t.as_dict(), "retrain": retrain.as_dict(), "bytes_before": dense_bytes,
                "bytes_after": compress.storage_bytes(tuned, "fp32", sparsity),
                "zero_fraction": compress.zero_fraction(tuned)}

    def _distil(self, layers: list[dict[str, Any]], params: Params, epochs: int, dense_bytes: int) -> Record:
        assert self.data is not None
        student = compress.student_layers(layers, STUDENT_HIDDEN)
        teacher = digits.logits(layers, params, self.data.x_train)
        retrain, trained = time_runs(partial(digits.train, student, self.data.x_train, self.data.y_train,
                                             seed=digits.SEED + 2, epochs=epochs, teacher_logits=teacher), self.runs)
        self.variants["distil"] = Built(student, trained, "fp32", None, _HOW["distil"].format(
            hidden=STUDENT_HIDDEN, epochs=epochs))
        return {"name": "distil", "variant": "distil", "retrain": retrain.as_dict(), "bytes_before": dense_bytes,
                "bytes_after": compress.storage_bytes(trained, "fp32")}

    def _accuracy(self, layers: list[dict[str, Any]], params: Params, precision: str) -> float:
        assert self.data is not None
        return digits.accuracy(compile_forward(layers, params, precision)(self.data.x_test), self.data.y_test)

    def _variant_record(self, name: str, b: Built) -> Record:
        total, nonzero = compress.param_counts(b.params)
        return {"precision": b.precision, "sparsity": b.sparsity,
                "layers": b.layers if name == "distil" else None,
                "accuracy": self._accuracy(b.layers, b.params, b.precision),
                "accuracy_before_finetune": b.accuracy_before_finetune,
                "params": total, "nonzero_params": nonzero,
                "weight_bytes": compress.storage_bytes(b.params, b.precision, b.sparsity), "how": b.how}

    # --- whole-model timing --------------------------------------------------------------

    def time_variant(self, name: str) -> Record:
        b = self.variants[name]
        assert self.data is not None
        run = self._time_batches(compile_forward(b.layers, b.params, b.precision), self.data.x_test)
        return {"model": MODEL, "variant": name, "precision": b.precision, "sparsity": b.sparsity,
                "layers": b.layers, "weight_bytes": compress.storage_bytes(b.params, b.precision, b.sparsity),
                "batches": run}

    def time_inline(self, precision: str) -> Record:
        params = init_params(INLINE_MLP_LAYERS, np.random.default_rng(1))
        x = np.random.default_rng(2).standard_normal((max(self.batches), 256)).astype(np.float32)
        run = self._time_batches(compile_forward(INLINE_MLP_LAYERS, params, precision), x)
        return {"model": INLINE_MLP, "variant": precision, "precision": precision, "sparsity": None,
                "layers": INLINE_MLP_LAYERS, "weight_bytes": compress.storage_bytes(params, precision),
                "batches": run}

    def _time_batches(self, forward: Callable[[np.ndarray], np.ndarray], pool: np.ndarray) -> list[Record]:
        out = []
        for batch in self.batches:
            x = np.resize(pool, (batch, pool.shape[1])).astype(np.float32)
            t: Measured = time_call(partial(forward, x), self.policy)
            out.append({"batch": batch, "timing": t.as_dict()})
        return out


_HOW = {
    "fp32": "trained in numpy (Adam, softmax cross-entropy), fp32 numpy/OpenBLAS kernels",
    "fp16": "fp32 weights cast to float16; activations in float16",
    "int8": "post-training per-channel symmetric int8 weights, dynamic per-tensor int8 activations (W8A8)",
    "int4": "post-training per-channel symmetric int4 weights (packed), dynamic int8 activations (W4A8)",
    "prune": "unstructured magnitude pruning of {ratio:.0%} of each dense layer, then {epochs} epochs of "
             "masked fine-tuning; runs on dense kernels",
    "2:4": "2:4 structured pruning (2 of every 4 along the input), then {epochs} epochs of masked "
           "fine-tuning; runs on dense kernels (no sparse tensor cores here)",
    "distil": "student 64-{hidden}-10 trained {epochs} epochs on the fp32 model's soft targets "
              "(T=4, alpha=0.7) and the labels",
}
