"""The real model: `digits-mlp` trained in numpy on scikit-learn's bundled handwritten digits.

`load_digits` ships inside scikit-learn (1,797 8x8 images, 10 classes), so nothing is downloaded.
The split is stratified 75/25 with a fixed seed; training is mini-batch Adam on softmax
cross-entropy from a seeded generator, so the same seed gives the same weights on a given BLAS.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from kernels.forward import DenseWeights, Params, init_params

SEED = 0
TEST_FRACTION = 0.25
EPOCHS = 60
FINETUNE_EPOCHS = 15
BATCH = 32
LR = 2e-3


@dataclass(frozen=True)
class DigitsData:
    """Pixels scaled to [0, 1] as float32 (the model input), the raw uint8 images, and labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    images_uint8: np.ndarray  # every image, 0..16 as stored by scikit-learn


def load_data(seed: int = SEED) -> DigitsData:
    """The digits set split 75/25, stratified by class, from `seed`."""
    from sklearn.datasets import load_digits

    ds = load_digits()
    x = (ds.data / 16.0).astype(np.float32)
    y = ds.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    test_idx = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        test_idx.append(idx[: int(round(len(idx) * TEST_FRACTION))])
    test = np.zeros(len(y), bool)
    test[np.concatenate(test_idx)] = True
    return DigitsData(x[~test], y[~test], x[test], y[test], ds.images.astype(np.uint8))


# --- a small trainer: dense + relu chains, softmax cross-entropy, Adam ---------------------------


def _forward_train(layers: Sequence[dict[str, Any]], params: Params, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Logits and the input of every layer (kept for backprop)."""
    inputs = []
    for layer, p in zip(layers, params):
        inputs.append(x)
        if layer["op"] == "dense":
            assert p is not None
            x = x @ p.w + p.b
        elif layer["op"] == "relu":
            x = np.maximum(x, 0)
        else:
            raise ValueError(f"the trainer handles dense and relu layers, got {layer['op']!r}")
    return x, inputs


def softmax(z: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = z / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def train(layers: Sequence[dict[str, Any]], x: np.ndarray, y: np.ndarray, *, seed: int, epochs: int,
          params: Params | None = None, masks: list[np.ndarray | None] | None = None,
          teacher_logits: np.ndarray | None = None, temperature: float = 4.0, alpha: float = 0.7,
          lr: float = LR) -> Params:
    """Mini-batch Adam on cross-entropy (plus distillation from `teacher_logits` when given).

    `masks` keep pruned weights at zero throughout (masked fine-tuning). Distillation follows
    Hinton et al. 2015: alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(labels).
    """
    rng = np.random.default_rng(seed)
    if params is None:
        params = init_params(layers, rng)
    dense = [i for i, p in enumerate(params) if p is not None]
    w = {i: params[i].w.copy() for i in dense}  # type: ignore[union-attr]
    b = {i: params[i].b.copy() for i in dense}  # type: ignore[union-attr]
    mask = {i: masks[i] for i in dense if masks is not None and masks[i] is not None}
    for i, m in mask.items():
        w[i] = w[i] * m
    # Adam moments per parameter array: (first, second) for the weights and for the biases.
    moments = {(i, kind): (np.zeros_like(arr[i]), np.zeros_like(arr[i])) for i in dense for kind, arr in (("w", w), ("b", b))}
    onehot = np.eye(10, dtype=np.float32)[y]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    step = 0
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), BATCH):
            idx = order[start:start + BATCH]
            cur: Params = [DenseWeights(w[i], b[i]) if i in w else None for i in range(len(layers))]
            out, inputs = _forward_train(layers, cur, x[idx])
            grad = softmax(out) - onehot[idx]
            if teacher_logits is not None:
                soft = softmax(out, temperature) - softmax(teacher_logits[idx], temperature)
                grad = alpha * temperature * soft + (1 - alpha) * grad
            grad = (grad / len(idx)).astype(np.float32)
            step += 1
            for i in reversed(range(len(layers))):
                if layers[i]["op"] == "relu":
                    grad = grad * (inputs[i] > 0)
                    continue
                gw, gb = inputs[i].T @ grad, grad.sum(axis=0)
                grad = grad @ w[i].T
                for kind, arr, g in (("w", w, gw), ("b", b, gb)):
                    m1, m2 = moments[(i, kind)]
                    m1 = beta1 * m1 + (1 - beta1) * g
                    m2 = beta2 * m2 + (1 - beta2) * g * g
                    moments[(i, kind)] = (m1, m2)
                    mhat, vhat = m1 / (1 - beta1 ** step), m2 / (1 - beta2 ** step)
                    arr[i] = (arr[i] - lr * mhat / (np.sqrt(vhat) + eps)).astype(np.float32)
                if i in mask:
                    w[i] *= mask[i]
    return [DenseWeights(w[i], b[i]) if i in w else None for i in range(len(layers))]


def logits(layers: Sequence[dict[str, Any]], params: Params, x: np.ndarray) -> np.ndarray:
    """Float32 logits of the chain (for distillation targets and activations)."""
    return _forward_train(layers, params, x)[0]


def accuracy(predict_scores: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of class scores against labels."""
    return float(np.mean(np.argmax(np.asarray(predict_scores, np.float64), axis=1) == y))
