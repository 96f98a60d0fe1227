"""Layer schema, shape inference and costs, checked against hand arithmetic and published totals."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from pydantic import TypeAdapter, ValidationError

from lepton_sim.catalogue import zoo_model
from lepton_sim.layers import Dense, Layer, LayerShapeError, layer_costs, model_summary

LAYERS = TypeAdapter(list[Layer])


def parse(layers: list[dict]) -> list:
    return LAYERS.validate_python(layers)


def zoo_layers(name: str, **params: object) -> list:
    return parse(zoo_model(name, **params)["layers"])


def tensor_macs(layers: list) -> float:
    return sum(c.flops for c in layer_costs(layers) if c.tensor_op) / 2


SCENARIO_EXAMPLE = [{"op": "dense", "in": 64, "out": 256}, {"op": "relu"}, {"op": "dense", "in": 256, "out": 10}]


def test_scenario_inline_example_validates_and_costs() -> None:
    costs = layer_costs(parse(SCENARIO_EXAMPLE))
    assert [c.op for c in costs] == ["dense", "relu", "dense"]
    # dense 64 -> 256: 64*256 multiply-adds = 16384 -> 32768 FLOPs; 64*256 weights + 256 biases.
    assert costs[0].flops == 32768 and costs[0].weight_params == 16640
    assert costs[0].act_elems == 64 + 256 and costs[0].tensor_op
    # relu over 256 elements: read 256, write 256.
    assert costs[1].act_elems == 512 and costs[1].weight_params == 0 and not costs[1].tensor_op
    assert costs[2].weight_params == 256 * 10 + 10


def test_dense_in_alias_round_trips() -> None:
    layer = parse([{"op": "dense", "in": 3, "out": 4}])[0]
    assert layer.in_ == 3 and layer.model_dump(by_alias=True)["in"] == 3
    assert Dense(in_=3, out=4) == layer


@pytest.mark.parametrize("bad", [
    {"op": "dense", "in": 3, "out": 4, "bogus": 1},
    {"op": "dense", "out": 4},
    {"op": "dense", "in": 0, "out": 4},
    {"op": "conv3d", "in_ch": 3},
])
def test_schema_rejects_bad_layers(bad: dict) -> None:
    with pytest.raises(ValidationError):
        parse([bad])


def test_dense_mismatch_names_the_layer() -> None:
    with pytest.raises(LayerShapeError) as err:
        layer_costs(parse([{"op": "dense", "in": 64, "out": 128}, {"op": "dense", "in": 256, "out": 10}]))
    assert isinstance(err.value, ValueError) and err.value.index == 1
    assert str(err.value).startswith("layers[1] (dense)")


def test_elementwise_first_layer_needs_a_size() -> None:
    with pytest.raises(LayerShapeError) as err:
        layer_costs(parse([{"op": "relu"}]))
    assert err.value.index == 0
    assert layer_costs(parse([{"op": "relu", "size": 10}]))[0].act_elems == 20


def test_size_must_match_previous_output() -> None:
    with pytest.raises(LayerShapeError):
        layer_costs(parse([{"op": "dense", "in": 4, "out": 8}, {"op": "softmax", "size": 9}]))


def test_conv_same_padding_and_costs() -> None:
    # 3 -> 8 channels, 3x3, stride 2 on 7x7: output ceil(7/2) = 4, so 4x4x8 outputs, each 3*3*3 MACs.
    conv = layer_costs(parse([{"op": "conv2d", "in_ch": 3, "out_ch": 8, "kernel": 3, "stride": 2, "in_hw": 7}]))[0]
    assert conv.flops == 2 * (4 * 4 * 8) * (3 * 3 * 3)
    assert conv.weight_params == 8 * 3 * 3 * 3
    assert conv.act_elems == 3 * 7 * 7 + 8 * 4 * 4


def test_depthwise_conv_and_chained_spatial_size() -> None:
    costs = layer_costs(parse([
        {"op": "conv2d", "in_ch": 4, "out_ch": 4, "kernel": 3, "groups": 4, "in_hw": 8},
        {"op": "maxpool", "kernel": 2},
        {"op": "conv2d", "in_ch": 4, "out_ch": 2, "kernel": 1},  # in_hw 4 inferred from the pool
        {"op": "global_avgpool"},
        {"op": "dense", "in": 2, "out": 1},
    ]))
    assert costs[0].weight_params == 4 * 1 * 9
    assert costs[2].flops == 2 * (4 * 4 * 2) * 4


def test_conv_channel_mismatch() -> None:
    with pytest.raises(LayerShapeError) as err:
        layer_costs(parse([{"op": "conv2d", "in_ch": 3, "out_ch": 8, "kernel": 3, "in_hw": 8},
                           {"op": "conv2d", "in_ch": 16, "out_ch": 8, "kernel": 3}]))
    assert err.value.index == 1


def test_attention_costs_and_input_check() -> None:
    # seq 4, model width 8, 2 heads: QK^T and AV are 4*4*8 multiply-adds each -> 4*16*8 FLOPs,
    # plus softmax at 5 FLOPs over 2*4*4 scores.
    costs = layer_costs(parse([{"op": "dense", "in": 8, "out": 24, "tokens": 4},
                               {"op": "attention", "seq": 4, "heads": 2, "dim": 8}]))
    assert costs[1].flops == 4 * 16 * 8 + 5 * 2 * 16
    assert costs[1].weight_params == 0 and costs[1].tensor_op
    with pytest.raises(LayerShapeError):
        layer_costs(parse([{"op": "dense", "in": 8, "out": 8, "tokens": 4},
                           {"op": "attention", "seq": 4, "heads": 2, "dim": 8}]))


def test_dense_may_read_fewer_tokens_but_not_more() -> None:
    ok = [{"op": "dense", "in": 8, "out": 8, "tokens": 4}, {"op": "dense", "in": 8, "out": 2, "tokens": 1}]
    assert layer_costs(parse(ok))[1].flops == 2 * 8 * 2
    with pytest.raises(LayerShapeError):
        layer_costs(parse([ok[0], {"op": "dense", "in": 8, "out": 2, "tokens": 5}]))


def test_branch_must_be_merged_with_matching_size() -> None:
    trunk = {"op": "conv2d", "in_ch": 4, "out_ch": 4, "kernel": 3, "in_hw": 8}
    proj = {"op": "conv2d", "in_ch": 4, "out_ch": 8, "kernel": 1, "in_hw": 8, "branch": True}
    with pytest.raises(LayerShapeError, match="never merged"):
        layer_costs(parse([trunk, proj]))
    with pytest.raises(LayerShapeError, match="branch gives"):
        layer_costs(parse([trunk, proj, {"op": "conv2d", "in_ch": 4, "out_ch": 4, "kernel": 3}, {"op": "add"}]))
    # The branch reads the trunk's output, so the main chain continues from it unchanged.
    merged = layer_costs(parse([trunk, proj, {"op": "conv2d", "in_ch": 4, "out_ch": 8, "kernel": 3}, {"op": "add"}]))
    assert merged[-1].act_elems == 3 * 8 * 8 * 8


def test_reads_takes_an_earlier_output_and_names_bad_references() -> None:
    stem = {"op": "conv2d", "in_ch": 3, "out_ch": 8, "kernel": 3, "in_hw": 16}
    down = {"op": "conv2d", "in_ch": 8, "out_ch": 16, "kernel": 3, "stride": 2}
    # A 1x1 lateral on the stem's 8 x 16 x 16 output, after the chain moved on to 16 x 8 x 8.
    lateral = {"op": "conv2d", "in_ch": 8, "out_ch": 4, "kernel": 1, "reads": 0}
    costs = layer_costs(parse([stem, down, lateral]))
    assert costs[2].flops == 2 * 8 * 4 * 16 * 16 and costs[2].act_elems == 8 * 16 * 16 + 4 * 16 * 16
    with pytest.raises(LayerShapeError, match=r"layers\[2\].*expects 16 channels"):
        layer_costs(parse([stem, down, {**lateral, "in_ch": 16}]))
    for bad in (2, 5):
        with pytest.raises(LayerShapeError, match=rf"layers\[2\].*reads={bad} must name an earlier main-chain layer"):
            layer_costs(parse([stem, down, {**lateral, "reads": bad}]))
    proj = {"op": "conv2d", "in_ch": 8, "out_ch": 8, "kernel": 1, "branch": True}
    with pytest.raises(LayerShapeError, match=r"layers\[1\].*cannot be on or inside a branch"):
        layer_costs(parse([stem, {**proj, "reads": 0}, {"op": "add"}]))
    with pytest.raises(LayerShapeError, match=r"layers\[3\].*reads=1 must name an earlier main-chain"):
        layer_costs(parse([stem, proj, {"op": "add"}, {**lateral, "reads": 1}]))


def test_weights_of_shares_weights_of_the_same_shape_only() -> None:
    a = {"op": "conv2d", "in_ch": 4, "out_ch": 4, "kernel": 3, "in_hw": 16}
    b = {"op": "conv2d", "in_ch": 4, "out_ch": 4, "kernel": 3, "in_hw": 8, "reads": 0, "weights_of": 0}
    # The second conv runs on the pooled 8 x 8 map with the first conv's weights: its math, no weights.
    layers = parse([a, {"op": "maxpool", "kernel": 2}, {**b, "reads": None}])
    costs = layer_costs(layers)
    assert costs[2].flops == 2 * 4 * 4 * 9 * 8 * 8 and costs[2].weight_params == 0 and costs[2].shares_weights
    assert model_summary(layers, "fp32").params == 4 * 4 * 9
    with pytest.raises(LayerShapeError, match=r"layers\[2\].*weights_of=0: layers\[0\] \(conv2d\) does not hold"):
        layer_costs(parse([a, {"op": "maxpool", "kernel": 2}, {**b, "reads": None, "kernel": 1}]))
    with pytest.raises(LayerShapeError, match=r"weights_of applies to conv2d and dense"):
        layer_costs(parse([a, {"op": "relu", "weights_of": 0}]))
    with pytest.raises(LayerShapeError, match=r"weights_of=1 must name an earlier layer"):
        layer_costs(parse([a, {**b, "reads": None, "in_hw": 16, "weights_of": 1}]))


def test_retinanet_matches_torchvision_and_mlperf() -> None:
    from lepton_sim.catalogue.zoo import retinanet_layers

    # With a ResNet-50 backbone and COCO's 91 classes the structure is torchvision's
    # retinanet_resnet50_fpn: RetinaNet_ResNet50_FPN_Weights.COCO_V1 lists 34,014,999 params (its
    # FrozenBatchNorm2d holds buffers, not params; 4,951 of them are conv biases, which lepton-sim's
    # conv2d has not) and 151.54 GFLOPS (multiply-adds at 800 x 800).
    resnet = parse(retinanet_layers(classes=91, groups=1, width_factor=1))
    norms = sum(c.weight_params for c in layer_costs(resnet) if c.op == "batchnorm")
    assert model_summary(resnet, "fp32").params - norms == 34_014_999 - 4_951
    assert tensor_macs(resnet) == pytest.approx(151.54e9, rel=0.01)
    # MLPerf's model: ResNeXt50-32x4d (torchvision lists 25,028,904 params with its 2,049,000-param
    # classifier, against ResNet-50's 25,557,032) and 264 classes.
    mlperf = zoo_layers("retinanet")
    resnext_less = (25_557_032 - 25_028_904)
    head_more = 256 * 9 * 9 * (264 - 91)
    assert (model_summary(mlperf, "fp32").params - model_summary(resnet, "fp32").params
            == pytest.approx(head_more - resnext_less, rel=0.01))
    assert sum(1 for layer in mlperf if layer.weights_of is not None) == 4 * 2 * 5
    # One kernel per conv (and per unfused add, pool): the heads' five levels are kernels of their own.
    costs = layer_costs(mlperf)
    assert sum(1 for c in costs if c.op == "conv2d") == 53 + 8 + 5 * 10


def test_resnet50_matches_torchvision() -> None:
    layers = zoo_layers("resnet50")
    # torchvision ResNet50_Weights.IMAGENET1K_V1: num_params 25,557,032, GFLOPS (GMACs) 4.09.
    assert model_summary(layers, "fp32").params == pytest.approx(25_557_032, rel=0.03)
    assert tensor_macs(layers) == pytest.approx(4.09e9, rel=0.03)
    assert model_summary(layers, "fp32").flops == pytest.approx(2 * 4.09e9, rel=0.03)


def test_mobilenet_v2_matches_published() -> None:
    layers = zoo_layers("mobilenet-v2")
    # Sandler et al. 2018, Table 4: 300M multiply-adds, 3.4M params; torchvision: 3,504,872 params.
    assert tensor_macs(layers) == pytest.approx(300e6, rel=0.03)
    assert model_summary(layers, "fp32").params == pytest.approx(3_504_872, rel=0.03)


def test_bert_base_matches_published() -> None:
    seq = 128
    layers = zoo_layers("bert-base", seq_len=seq)
    # Hugging Face bert-base-uncased BertModel: 109,482,240 parameters ("110M" in Devlin et al.).
    assert model_summary(layers, "fp32").params == pytest.approx(109_482_240, rel=0.03)
    # Kaplan et al. 2020, Table 1: forward FLOPs per token = 2N + 2 n_layer n_ctx d_model with
    # N = 2 d_model n_layer (2 d_model + d_ff) non-embedding parameters.
    n = 2 * 768 * 12 * (2 * 768 + 3072)
    assert model_summary(layers, "fp32").flops == pytest.approx(seq * (2 * n + 2 * 12 * seq * 768), rel=0.03)


def test_bert_distil_variant_matches_distilbert() -> None:
    variant = zoo_model("bert-base")["variants"]["distil"]
    layers = parse(variant["layers"])
    assert sum(1 for layer in layers if layer.op == "attention") == 6
    # Sanh et al. 2019: DistilBERT has 66M parameters (HF DistilBertModel: 66,362,880).
    assert model_summary(layers, "fp32").params == pytest.approx(66e6, rel=0.03)


def test_seq_len_scales_bert() -> None:
    short, long = zoo_layers("bert-base", seq_len=64), zoo_layers("bert-base", seq_len=256)
    assert model_summary(short, "fp32").params == model_summary(long, "fp32").params
    assert 4 < model_summary(long, "fp32").flops / model_summary(short, "fp32").flops < 5


def test_weight_bytes_by_precision_and_sparsity() -> None:
    layers = parse(SCENARIO_EXAMPLE)
    params = 16640 + 2570
    assert model_summary(layers, "fp32").weight_bytes == 4 * params
    assert model_summary(layers, "bf16").weight_bytes == 2 * params
    assert model_summary(layers, "int4").weight_bytes == 0.5 * params
    # 2:4 at int8: half the bytes kept plus 2 bits of index per kept value = 0.5 + 0.5 * 0.25 B/weight.
    two_four = SimpleNamespace(pattern="2:4", ratio=0.5)
    assert model_summary(layers, "int8", two_four).weight_bytes == pytest.approx(0.625 * params)
    # Unstructured 90% at fp32: 10% of 4 B kept plus a 1-bit bitmap per weight.
    sparse90 = SimpleNamespace(pattern="unstructured", ratio=0.9)
    assert model_summary(layers, "fp32", sparse90).weight_bytes == pytest.approx((0.4 + 0.125) * params)
    # At low ratios the bitmap would cost more than it saves: the dense layout is kept.
    sparse10 = SimpleNamespace(pattern="unstructured", ratio=0.1)
    assert model_summary(layers, "int4", sparse10).weight_bytes == 0.5 * params
    # Sparsity never changes the counted math.
    assert model_summary(layers, "int8", two_four).flops == model_summary(layers, "int8").flops


def test_sparsity_spares_norms_and_tables() -> None:
    layers = parse([{"op": "conv2d", "in_ch": 4, "out_ch": 8, "kernel": 1, "in_hw": 2}, {"op": "batchnorm"}])
    two_four = SimpleNamespace(pattern="2:4", ratio=0.5)
    # 32 conv weights compressed to 0.625 B each at int8; 16 batchnorm parameters stay 1 B each.
    assert model_summary(layers, "int8", two_four).weight_bytes == pytest.approx(32 * 0.625 + 16)


@pytest.mark.parametrize("precision, sparsity", [
    ("fp6", None),
    ("int8", SimpleNamespace(pattern="2:4", ratio=0.3)),
    ("int8", SimpleNamespace(pattern="blocky", ratio=0.5)),
    ("int8", SimpleNamespace(pattern="unstructured", ratio=1.0)),
])
def test_bad_precision_or_sparsity(precision: str, sparsity: object) -> None:
    with pytest.raises(ValueError):
        model_summary(parse(SCENARIO_EXAMPLE), precision, sparsity)
