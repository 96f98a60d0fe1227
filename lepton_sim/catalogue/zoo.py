"""Built-in model zoo: layer chains generated from each architecture's published structure.

Each entry is a plain dict (validated later by the scenario schema) with the layer list, the
request and response sizes, the compression variants with their accuracy and its source.
"""
from __future__ import annotations

from typing import Any, Callable

Layers = list[dict[str, Any]]

_MEASURED = "measured by `lepton-sim kernels measure`"


def _conv(in_ch: int, out_ch: int, kernel: int, in_hw: int, stride: int = 1, groups: int = 1,
          branch: bool = False) -> dict[str, Any]:
    layer: dict[str, Any] = {"op": "conv2d", "in_ch": in_ch, "out_ch": out_ch, "kernel": kernel,
                             "stride": stride, "groups": groups, "in_hw": in_hw}
    if branch:
        layer["branch"] = True
    return layer


def _out_hw(in_hw: int, stride: int) -> int:
    return -(-in_hw // stride)


def _bottleneck(in_ch: int, width: int, stride: int, hw: int) -> Layers:
    """ResNet v1.5 bottleneck (torchvision): 1x1, 3x3 (carries the stride), 1x1 x4, projection if needed."""
    out_ch = 4 * width
    layers: Layers = []
    if stride != 1 or in_ch != out_ch:
        layers += [_conv(in_ch, out_ch, 1, hw, stride, branch=True), {"op": "batchnorm", "branch": True}]
    layers += [
        _conv(in_ch, width, 1, hw), {"op": "batchnorm"}, {"op": "relu"},
        _conv(width, width, 3, hw, stride), {"op": "batchnorm"}, {"op": "relu"},
        _conv(width, out_ch, 1, _out_hw(hw, stride)), {"op": "batchnorm"},
        {"op": "add"}, {"op": "relu"},
    ]
    return layers


def resnet50_layers() -> Layers:
    """ResNet-50 v1.5 for 224x224x3 input: stages of 3, 4, 6, 3 bottlenecks (He et al. 2016)."""
    layers: Layers = [_conv(3, 64, 7, 224, 2), {"op": "batchnorm"}, {"op": "relu"},
                      {"op": "maxpool", "kernel": 3, "stride": 2}]
    in_ch, hw = 64, 56
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(blocks):
            s = stride if i == 0 else 1
            layers += _bottleneck(in_ch, width, s, hw)
            in_ch, hw = 4 * width, _out_hw(hw, s)
    return layers + [{"op": "global_avgpool"}, {"op": "dense", "in": 2048, "out": 1000}]


def mobilenet_v2_layers() -> Layers:
    """MobileNetV2 (Sandler et al. 2018, width 1.0, 224x224): inverted residuals as in torchvision."""
    layers: Layers = [_conv(3, 32, 3, 224, 2), {"op": "batchnorm"}, {"op": "relu"}]
    in_ch, hw = 32, 112
    # (expansion t, output channels c, repeats n, first stride s), Table 2 of the paper.
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = in_ch * t
            if t != 1:
                layers += [_conv(in_ch, hidden, 1, hw), {"op": "batchnorm"}, {"op": "relu"}]
            layers += [_conv(hidden, hidden, 3, hw, stride, groups=hidden), {"op": "batchnorm"},
                       {"op": "relu"}]
            out_hw = _out_hw(hw, stride)
            layers += [_conv(hidden, c, 1, out_hw), {"op": "batchnorm"}]
            if stride == 1 and in_ch == c:
                layers.append({"op": "add"})
            in_ch, hw = c, out_hw
    layers += [_conv(320, 1280, 1, hw), {"op": "batchnorm"}, {"op": "relu"},
               {"op": "global_avgpool"}, {"op": "dense", "in": 1280, "out": 1000}]
    return layers


def bert_layers(seq_len: int, n_layers: int = 12, token_types: bool = True, pooler: bool = True,
                hidden: int = 768, heads: int = 12, ffn: int = 3072, vocab: int = 30522,
                max_positions: int = 512) -> Layers:
    """BERT encoder (Devlin et al. 2019): embeddings, ``n_layers`` post-norm blocks, optional pooler."""
    if not 1 <= seq_len <= max_positions:
        raise ValueError(f"seq_len must be between 1 and {max_positions}, got {seq_len}")
    layers: Layers = [
        {"op": "embedding", "vocab": vocab, "dim": hidden, "seq": seq_len},
        {"op": "embedding", "vocab": max_positions, "dim": hidden, "seq": seq_len, "branch": True},
        {"op": "add"},
    ]
    if token_types:
        layers += [{"op": "embedding", "vocab": 2, "dim": hidden, "seq": seq_len, "branch": True},
                   {"op": "add"}]
    layers.append({"op": "layernorm"})
    for _ in range(n_layers):
        layers += [
            {"op": "dense", "in": hidden, "out": 3 * hidden, "tokens": seq_len},
            {"op": "attention", "seq": seq_len, "heads": heads, "dim": hidden},
            {"op": "dense", "in": hidden, "out": hidden, "tokens": seq_len},
            {"op": "add"}, {"op": "layernorm"},
            {"op": "dense", "in": hidden, "out": ffn, "tokens": seq_len}, {"op": "gelu"},
            {"op": "dense", "in": ffn, "out": hidden, "tokens": seq_len},
            {"op": "add"}, {"op": "layernorm"},
        ]
    if pooler:
        layers += [{"op": "dense", "in": hidden, "out": hidden, "tokens": 1}, {"op": "tanh"}]
    return layers


def digits_mlp_layers() -> Layers:
    """The small real model for scikit-learn's 8x8 digits: 64 -> 128 -> 64 -> 10."""
    return [{"op": "dense", "in": 64, "out": 128}, {"op": "relu"},
            {"op": "dense", "in": 128, "out": 64}, {"op": "relu"},
            {"op": "dense", "in": 64, "out": 10}]


def _variant(precision: str, accuracy: float | None, source: str, **extra: Any) -> dict[str, Any]:
    return {"precision": precision, **extra, "accuracy": accuracy, "accuracy_source": source}


_SPARSE_24 = {"pattern": "2:4", "ratio": 0.5}
_FP16_SAME = ("modelled: fp16 inference taken as the fp32 figure ({}); half precision changes "
              "top-1 of these networks by well under 0.1 points, and MLPerf Inference accepts fp16 "
              "and int8 ResNet-50 runs only within 1% of fp32, so no separate figure is published")


def resnet50() -> dict[str, Any]:
    """ResNet-50 v1.5 classifying a 224x224 RGB uint8 image into 1000 fp32 logits."""
    fp32 = "torchvision ResNet50_Weights.IMAGENET1K_V1: ImageNet-1k top-1 76.13%"
    return {
        "layers": resnet50_layers(),
        "input_bytes": 224 * 224 * 3,
        "output_bytes": 1000 * 4,
        "variants": {
            "fp32": _variant("fp32", 0.7613, fp32),
            "fp16": _variant("fp16", 0.7613, _FP16_SAME.format(fp32)),
            "int8": _variant("int8", 0.7592, "torchvision ResNet50_QuantizedWeights.IMAGENET1K_FBGEMM_V1 "
                                            "(post-training static quantisation, fbgemm): top-1 75.92%"),
            "int8-p50": _variant("int8", 0.7592, "modelled: the int8 figure (torchvision, 75.92%) with no "
                                 "further loss; Mishra et al. 2021 'Accelerating Sparse Deep Neural "
                                 "Networks' (arXiv:2104.08378) report 2:4-sparse ResNet-50 retrained to "
                                 "dense accuracy", sparsity=dict(_SPARSE_24)),
        },
        "source": "ResNet-50 v1.5 as in torchvision.models.resnet50 (He et al. 2016, stride on the 3x3 "
                  "conv); torchvision lists 25.56M params and 4.09 GMACs",
    }


def mobilenet_v2() -> dict[str, Any]:
    """MobileNetV2 (width 1.0) classifying a 224x224 RGB uint8 image into 1000 fp32 logits."""
    fp32 = "torchvision MobileNet_V2_Weights.IMAGENET1K_V1: ImageNet-1k top-1 71.878%"
    return {
        "layers": mobilenet_v2_layers(),
        "input_bytes": 224 * 224 * 3,
        "output_bytes": 1000 * 4,
        "variants": {
            "fp32": _variant("fp32", 0.71878, fp32),
            "fp16": _variant("fp16", 0.71878, _FP16_SAME.format(fp32)),
            "int8": _variant("int8", 0.71658, "torchvision MobileNet_V2_QuantizedWeights.IMAGENET1K_QNNPACK_V1 "
                                             "(quantisation-aware training, qnnpack): top-1 71.658%"),
        },
        "source": "MobileNetV2 as in torchvision.models.mobilenet_v2 (Sandler et al. 2018); torchvision "
                  "lists 3.50M params and 0.30 GMACs",
    }


def bert_base(seq_len: int = 128) -> dict[str, Any]:
    """BERT-base encoder over ``seq_len`` int32 token ids, returning the pooled 768-d fp32 vector."""
    fp32 = "Sanh et al. 2019 (DistilBERT paper), Table 1: BERT-base SST-2 dev accuracy 92.7%"
    return {
        "layers": bert_layers(seq_len),
        "input_bytes": seq_len * 4,
        "output_bytes": 768 * 4,
        "variants": {
            "fp32": _variant("fp32", 0.927, fp32),
            "fp16": _variant("fp16", 0.927, "modelled: fp16 inference taken as the fp32 figure (" + fp32
                             + "); no separate published figure"),
            "int8": _variant("int8", 0.9224, "Zafrir et al. 2019 'Q8BERT: Quantized 8Bit BERT' "
                                            "(arXiv:1910.06188): SST-2 dev 92.24% with 8-bit "
                                            "quantisation-aware fine-tuning"),
            "distil": _variant("fp32", 0.913, "Sanh et al. 2019 'DistilBERT' (arXiv:1910.01108), Table 1: "
                               "SST-2 dev 91.3% (6 layers, 66M params)",
                               layers=bert_layers(seq_len, n_layers=6, token_types=False, pooler=False)),
            "distil-int8": _variant("int8", 0.9025, "Intel's int8 DistilBERT SST-2 model card (dynamic "
                                    "post-training quantisation): accuracy 0.9106 fp32 -> 0.9025 int8",
                                    layers=bert_layers(seq_len, n_layers=6, token_types=False,
                                                       pooler=False)),
        },
        "source": f"BERT-base uncased (Devlin et al. 2019): 12 layers, hidden 768, 12 heads, FFN 3072, "
                  f"vocab 30522, seq_len {seq_len}; about 110M params. Accuracy is SST-2 (GLUE) dev",
    }


def bert_large(seq_len: int = 384) -> dict[str, Any]:
    """BERT-large for SQuAD question answering: ``seq_len`` token ids (and segment ids and mask) in,
    a start and an end logit per token out (the MLPerf Inference BERT model)."""
    layers = bert_layers(seq_len, n_layers=24, hidden=1024, heads=16, ffn=4096, pooler=False)
    layers.append({"op": "dense", "in": 1024, "out": 2, "tokens": seq_len})  # the span (start, end) head
    mlperf = ("mlcommons/inference_results_{} closed/NVIDIA/results/{}/{}/Offline/accuracy/accuracy.txt: "
              "SQuAD v1.1 dev F1 {}")
    return {
        "layers": layers,
        "input_bytes": 3 * seq_len * 4,  # token ids, segment ids and the attention mask, int32
        "output_bytes": 2 * seq_len * 4,
        "variants": {
            "fp32": _variant("fp32", 0.90874, "MLPerf Inference reference BERT-large (bert-99 and bert-99.9 "
                             "targets are 99% and 99.9% of it): SQuAD v1.1 dev F1 90.874%"),
            "fp16": _variant("fp16", 0.909257, mlperf.format("v3.0", "L4x1_TRT", "bert-99.9", "90.926% "
                             "(NVIDIA's fp16 TensorRT engine)")),
            "int8": _variant("int8", 0.903568, mlperf.format("v3.1", "DGX-H100_H100-SXM-80GBx1_TRT", "bert-99",
                             "90.357% (NVIDIA's int8 TensorRT engine)")),
        },
        "source": f"BERT-large uncased (Devlin et al. 2019): 24 layers, hidden 1024, 16 heads, FFN 4096, vocab "
                  f"30522, seq_len {seq_len}, with the SQuAD span head; about 335M params (Intel's Open Model Zoo "
                  f"card for bert-large-uncased-whole-word-masking-squad lists 333.96M params and 246.93 GOps at "
                  f"384 tokens). Accuracy is SQuAD v1.1 dev F1",
    }


def digits_mlp() -> dict[str, Any]:
    """The MLP for 8x8 digits: 64 float32 pixels in, 10 float32 scores out."""
    return {
        "layers": digits_mlp_layers(),
        "input_bytes": 64 * 4,
        "output_bytes": 10 * 4,
        "variants": {p: _variant(p, None, _MEASURED) for p in ("fp32", "fp16", "int8")},
        "source": "lepton-sim's own MLP for scikit-learn's load_digits (8x8 images, 10 classes)",
    }


_ZOO: dict[str, Callable[..., dict[str, Any]]] = {
    "resnet50": resnet50,
    "mobilenet-v2": mobilenet_v2,
    "bert-base": bert_base,
    "bert-large": bert_large,
    "digits-mlp": digits_mlp,
}


def zoo_names() -> list[str]:
    """Names of the built-in models."""
    return sorted(_ZOO)


def zoo_model(name: str, **params: Any) -> dict[str, Any]:
    """A fresh dict for zoo model ``name``; KeyError if unknown, ValueError for a bad parameter."""
    try:
        build = _ZOO[name]
    except KeyError:
        raise KeyError(f"unknown zoo model {name!r}; known: {', '.join(zoo_names())}") from None
    try:
        return build(**params)
    except TypeError as exc:
        raise ValueError(f"zoo model {name!r}: bad parameters {sorted(params)}: {exc}") from None
