"""Built-in model zoo: layer chains generated from each architecture's published structure.

Each entry is a plain dict (validated later by the scenario schema) with the layer list, the
request and response sizes, the compression variants with their accuracy and its source. The
decoder-only LLMs (`kind: llm`) give their architecture instead of a layer list (their service
time is token-level, `lepton_sim.servicetime.llm`) and the variants fp16, bf16, fp8, int8 (W8A8
SmoothQuant) and int4-awq (weight-only AWQ W4A16).
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


def _bottleneck(in_ch: int, width: int, stride: int, hw: int, out_ch: int | None = None,
                groups: int = 1) -> Layers:
    """ResNet v1.5 bottleneck (torchvision): 1x1, 3x3 (carries the stride), 1x1 to ``out_ch``
    (4 x width by default), projection if needed; ResNeXt's grouped 3x3 with ``groups``."""
    out_ch = 4 * width if out_ch is None else out_ch
    layers: Layers = []
    if stride != 1 or in_ch != out_ch:
        layers += [_conv(in_ch, out_ch, 1, hw, stride, branch=True), {"op": "batchnorm", "branch": True}]
    layers += [
        _conv(in_ch, width, 1, hw), {"op": "batchnorm"}, {"op": "relu"},
        _conv(width, width, 3, hw, stride, groups), {"op": "batchnorm"}, {"op": "relu"},
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


RETINANET_LEVELS = (100, 50, 25, 13, 7)  # P3-P7 of an 800 x 800 image (strides 8 to 128)


def retinanet_layers(classes: int = 264, anchors: int = 9, groups: int = 32, width_factor: int = 2) -> Layers:
    """RetinaNet (Lin et al. 2017) as MLPerf Inference runs it: a ResNeXt50-32x4d backbone at
    800x800, a feature pyramid P3-P7 of 256 channels (P6 and P7 from P5, torchvision's
    LastLevelP6P7(256, 256)) and the classification and box heads (four 3x3 convs of 256 and a
    3x3 conv to ``anchors`` x ``classes`` or ``anchors`` x 4 channels) on every level, with the
    head weights shared across levels. Box decoding and NMS are not layers here. ``groups=1,
    width_factor=1`` gives torchvision's retinanet_resnet50_fpn backbone (ResNet-50) instead."""
    layers: Layers = [_conv(3, 64, 7, 800, 2), {"op": "batchnorm"}, {"op": "relu"},
                      {"op": "maxpool", "kernel": 3, "stride": 2}]
    in_ch, hw = 64, 200
    stage_out: list[int] = []  # index of the last layer of each backbone stage
    for planes, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(blocks):
            s = stride if i == 0 else 1
            layers += _bottleneck(in_ch, width_factor * planes, s, hw, out_ch=4 * planes, groups=groups)
            in_ch, hw = 4 * planes, _out_hw(hw, s)
        stage_out.append(len(layers) - 1)
    c3, c4, c5 = stage_out[1:]
    # Top-down pathway: 1x1 laterals to 256 channels, each merged with the upsampled coarser level
    # (the add), then a 3x3 conv per level.
    pyramid: dict[int, int] = {}  # level -> index of its output
    for level, stage, ch, lhw in ((5, c5, 2048, 25), (4, c4, 1024, 50), (3, c3, 512, 100)):
        lateral = _conv(ch, 256, 1, lhw) | {"reads": stage}
        layers.append(lateral)
        if level != 5:
            layers.append({"op": "add"})
        merged = len(layers) - 1
        layers.append(_conv(256, 256, 3, lhw) | {"reads": merged})
        pyramid[level] = len(layers) - 1
    layers.append(_conv(256, 256, 3, 25, 2) | {"reads": pyramid[5]})  # P6 from P5
    pyramid[6] = len(layers) - 1
    layers += [{"op": "relu"}, _conv(256, 256, 3, 13, 2)]  # P7 from relu(P6)
    pyramid[7] = len(layers) - 1
    first: dict[str, list[int]] = {}  # head -> indices of its convs on the first level
    for level, lhw in zip((3, 4, 5, 6, 7), RETINANET_LEVELS):
        for head, out in (("cls", anchors * classes), ("box", anchors * 4)):
            convs = []
            for j in range(5):
                conv = _conv(256, 256 if j < 4 else out, 3, lhw)
                if j == 0:
                    conv["reads"] = pyramid[level]
                if head in first:
                    conv["weights_of"] = first[head][j]
                layers.append(conv)
                convs.append(len(layers) - 1)
                if j < 4:
                    layers.append({"op": "relu"})
            first.setdefault(head, convs)
    return layers


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


def retinanet() -> dict[str, Any]:
    """RetinaNet (ResNeXt50-32x4d FPN) detecting objects of 264 OpenImages classes in an 800x800 RGB
    image (the MLPerf Inference object-detection model)."""
    mlperf = ("MLPerf Inference {} closed, NVIDIA, {} retinanet Offline accuracy.txt "
              "(mlcommons/inference_results_{} closed/NVIDIA/results/{}/retinanet/Offline/accuracy/accuracy.txt): "
              "OpenImages MLPerf subset mAP {} (NVIDIA's int8 TensorRT engine)")
    return {
        "layers": retinanet_layers(),
        "input_bytes": 800 * 800 * 3,
        # Up to 1,000 detections after NMS: a box (4 fp32), a score (fp32) and a class (int32) each.
        "output_bytes": 1000 * 6 * 4,
        "variants": {
            "fp32": _variant("fp32", 0.3757, "MLPerf Inference reference model resnext50_32x4d_fpn.onnx "
                             "(zenodo record 6617879): mAP 0.3757 on the OpenImages MLPerf subset"),
            "fp16": _variant("fp16", 0.3757, _FP16_SAME.format("MLPerf reference fp32: mAP 0.3757")),
            "int8": _variant("int8", 0.3742, mlperf.format("v3.1", "L4x1_TRT", "v3.1", "L4x1_TRT", "37.420%")),
        },
        "source": "RetinaNet (Lin et al. 2017, 'Focal Loss for Dense Object Detection') with a ResNeXt50-32x4d "
                  "backbone (Xie et al. 2017) and a feature pyramid P3-P7, at 800x800, 264 classes and 9 anchors "
                  "per position: MLPerf Inference's retinanet (mlcommons/training single_stage_detector, "
                  "torchvision's RetinaNet structure). Box decoding and NMS are not modelled",
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


# --- decoder-only LLMs (kind: llm), served token by token ------------------------------------

_BF16_SAME = ("modelled: the fp16 figure ({}); bf16 and fp16 are both 16-bit formats the released "
              "weights load into unchanged, and no separate figure is published")
_NO_FIGURE = ("no published figure for this variant ({}) on this metric that can be cited; give your own. "
              "For scale only, not applied here: TensorRT-LLM's quantisation blog measured Llama-2-70B MMLU "
              "at {} of its fp16 score")
_TRT_BLOG = ("NVIDIA TensorRT-LLM, docs/source/blogs/quantization-in-TRT-LLM.md ('Speed up inference with SOTA "
             "quantization techniques in TRT-LLM'), Accuracy table, LLaMA-v2-70B: MMLU {}")
# Llama-2-70B MMLU in the blog: FP16 69.1, FP8 68.5 (-0.87%), INT8-SQ 67.2 (-2.75%), INT4-AWQ 68.4 (-1.01%).
_FOR_SCALE = {"fp8": "FP8 W8A8 (ModelOpt/TensorRT-LLM)", "int8": "SmoothQuant W8A8", "int4-awq": "AWQ W4A16, group 128"}
_SCALE_LOSS = {"fp8": "0.9913 (FP8)", "int8": "0.9725 (INT8 SmoothQuant)", "int4-awq": "0.9899 (INT4 AWQ)"}


def _llm_variants(fp16: float, fp16_source: str) -> dict[str, dict[str, Any]]:
    """fp16 and bf16 at the published figure; fp8, int8 (W8A8) and int4-awq (W4A16) without one."""
    return {
        "fp16": _variant("fp16", fp16, fp16_source),
        "bf16": _variant("bf16", fp16, _BF16_SAME.format(fp16_source)),
        "fp8": _variant("fp8", None, _NO_FIGURE.format(_FOR_SCALE["fp8"], _SCALE_LOSS["fp8"])),
        "int8": _variant("int8", None, _NO_FIGURE.format(_FOR_SCALE["int8"], _SCALE_LOSS["int8"])),
        "int4-awq": _variant("int4", None, _NO_FIGURE.format(_FOR_SCALE["int4-awq"], _SCALE_LOSS["int4-awq"]),
                             weight_only=True),
    }


def _llm(layers: int, hidden: int, heads: int, kv_heads: int, ffn: int, vocab: int, max_context: int,
         variants: dict[str, dict[str, Any]], source: str, qkv_bias: bool = False,
         sliding_window: int | None = None) -> dict[str, Any]:
    return {"kind": "llm", "layers": layers, "hidden": hidden, "heads": heads, "kv_heads": kv_heads, "ffn": ffn,
            "vocab": vocab, "ffn_kind": "swiglu", "qkv_bias": qkv_bias, "tied_embeddings": False,
            "sliding_window": sliding_window, "max_context": max_context, "variants": variants, "source": source}


def llama_2_7b() -> dict[str, Any]:
    """Llama 2 7B (base): 32 blocks of multi-head attention and a SwiGLU FFN."""
    return _llm(32, 4096, 32, 32, 11008, 32000, 4096, _llm_variants(
        0.453, "Touvron et al. 2023, 'Llama 2: Open Foundation and Fine-Tuned Chat Models' (arXiv:2307.09288), "
               "Table 3: MMLU 5-shot 45.3 for Llama 2 7B"),
        "meta-llama/Llama-2-7b-hf config.json (Hugging Face): 32 layers, hidden 4096, 32 heads (no GQA), "
        "intermediate 11008, vocab 32000, 4096 positions, untied embeddings; 6.74B parameters. Accuracy is MMLU 5-shot")


def llama_3_8b() -> dict[str, Any]:
    """Meta Llama 3 8B (base): grouped-query attention (8 KV heads), a 128K-token vocabulary."""
    return _llm(32, 4096, 32, 8, 14336, 128256, 8192, _llm_variants(
        0.666, "Meta Llama 3 model card (meta-llama/Meta-Llama-3-8B), base pretrained models: MMLU 5-shot 66.6 "
               "for Llama 3 8B"),
        "meta-llama/Meta-Llama-3-8B config.json (Hugging Face): 32 layers, hidden 4096, 32 heads / 8 KV heads, "
        "intermediate 14336, vocab 128256, 8192 positions, untied embeddings; 8.03B parameters. Accuracy is MMLU "
        "5-shot")


def llama_2_70b() -> dict[str, Any]:
    """Llama 2 70B (base): 80 blocks, grouped-query attention (8 KV heads)."""
    paper = "the Llama 2 paper (Touvron et al. 2023, arXiv:2307.09288), Table 3, reports 68.9 with Meta's own harness"
    fp16 = _TRT_BLOG.format(f"69.1 (the FP16 baseline; {paper})")
    return _llm(80, 8192, 64, 8, 28672, 32000, 4096, {
        "fp16": _variant("fp16", 0.691, fp16),
        "bf16": _variant("bf16", 0.691, _BF16_SAME.format(fp16)),
        "fp8": _variant("fp8", 0.685, _TRT_BLOG.format("68.5 after FP8 (W8A8) post-training quantisation, "
                                                        "0.87% below its FP16 69.1")),
        "int8": _variant("int8", 0.672, _TRT_BLOG.format("67.2 after INT8 SmoothQuant (W8A8), 2.75% below its "
                                                          "FP16 69.1")),
        "int4-awq": _variant("int4", 0.684, _TRT_BLOG.format("68.4 after INT4 AWQ (W4A16), 1.01% below its FP16 "
                                                              "69.1"), weight_only=True),
    }, "meta-llama/Llama-2-70b-hf config.json (Hugging Face): 80 layers, hidden 8192, 64 heads / 8 KV heads, "
       "intermediate 28672, vocab 32000, 4096 positions, untied embeddings; 68.98B parameters. Accuracy is MMLU "
       "5-shot, every variant from the same TensorRT-LLM evaluation")


def mistral_7b() -> dict[str, Any]:
    """Mistral 7B v0.1 (base): grouped-query attention (8 KV heads) over a 4,096-token sliding window."""
    return _llm(32, 4096, 32, 8, 14336, 32000, 32768, _llm_variants(
        0.601, "Jiang et al. 2023, 'Mistral 7B' (arXiv:2310.06825), Table 2: MMLU 5-shot 60.1% for Mistral 7B"),
        "mistralai/Mistral-7B-v0.1 config.json (Hugging Face): 32 layers, hidden 4096, 32 heads / 8 KV heads, "
        "intermediate 14336, vocab 32000, 32768 positions with a 4096-token sliding window, untied embeddings; "
        "7.24B parameters. Accuracy is MMLU 5-shot", sliding_window=4096)


def qwen2_7b() -> dict[str, Any]:
    """Qwen2 7B (base): grouped-query attention (4 KV heads) with QKV bias, a 152K-token vocabulary."""
    return _llm(28, 3584, 28, 4, 18944, 152064, 32768, _llm_variants(
        0.703, "Yang et al. 2024, 'Qwen2 Technical Report' (arXiv:2407.10671), Table 4: MMLU 70.3 for Qwen2-7B "
               "(base)"),
        "Qwen/Qwen2-7B config.json (Hugging Face): 28 layers, hidden 3584, 28 heads / 4 KV heads, intermediate "
        "18944, vocab 152064, bias on Q, K and V, untied embeddings; 7.62B parameters. max_context 32768: the "
        "context the Qwen2 report says the base models were pre-trained to (longer contexts use YaRN, not "
        "modelled). Accuracy is MMLU 5-shot", qkv_bias=True)


_ZOO: dict[str, Callable[..., dict[str, Any]]] = {
    "resnet50": resnet50,
    "mobilenet-v2": mobilenet_v2,
    "bert-base": bert_base,
    "bert-large": bert_large,
    "retinanet": retinanet,
    "digits-mlp": digits_mlp,
    "llama-2-7b": llama_2_7b,
    "llama-3-8b": llama_3_8b,
    "llama-2-70b": llama_2_70b,
    "mistral-7b": mistral_7b,
    "qwen2-7b": qwen2_7b,
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
