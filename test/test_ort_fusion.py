"""The ONNX Runtime-only graph rewrite: attention fused into com.microsoft.MultiHeadAttention,
masked tokens dropped, NCHWc layout choice."""

import onnx
import pytest
import torch
from onnx import TensorProto, helper

ort = pytest.importorskip("onnxruntime")

from lingbot_depth_ros.engines import create_engine  # noqa: E402
from lingbot_depth_ros.engines.neural_common import frame_to_model_inputs  # noqa: E402
from lingbot_depth_ros.engines.ort_cpu import narrow_conv_share, prepare_cpu_graph  # noqa: E402
from lingbot_depth_ros.engines.ort_fusion import (FUSED_OP, MS_DOMAIN, NoMatch,  # noqa: E402
                                                  fuse_attention)
from lingbot_depth_ros.engines.ort_token_drop import token_path  # noqa: E402
from lingbot_depth_ros.model.export import OUTPUT_NAMES, StaticPipeline, export_onnx  # noqa: E402
from tiny_models import (CAPTURES, ORT_THREADS, assert_close, assert_same_prediction,  # noqa: E402
                         capture, frame_tensors, ort_session, tiny_model)

TOKENS = 600  # 21x28 patches
BLOCKS = 3  # tiny_config's ViT depth
#: fused attention (another kernel) against the plain graph: depth (relative), mask
#: probability (absolute); and both graphs against PyTorch, as test_onnx_export states it
FUSED_DEPTH_RTOL, FUSED_PROB_ATOL = 1e-5, 1e-5
ORT_DEPTH_RTOL = 1e-4
#: the export wrapper's resizes against F.interpolate, in PyTorch
PIPELINE_DEPTH_RTOL, PIPELINE_PROB_ATOL = 1e-5, 1e-6


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def completion_onnx(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("fusion") / "completion.onnx"
    return export_onnx(model, path, 480, 640, num_tokens=TOKENS)


def _session(source):
    return ort_session(source)


def _run(session, frame):
    rgb, depth = frame_to_model_inputs(frame)
    return session.run(list(OUTPUT_NAMES), {"rgb": rgb, "depth": depth})


def _ops(model_proto):
    return [(node.domain, node.op_type) for node in model_proto.graph.node]


def test_every_attention_block_becomes_one_multihead_attention(completion_onnx):
    graph = onnx.load(str(completion_onnx))
    assert _ops(graph).count(("", "Softmax")) == BLOCKS
    fused, reasons = fuse_attention(graph)
    assert (fused, reasons) == (BLOCKS, [])
    ops = _ops(graph)
    assert ops.count((MS_DOMAIN, FUSED_OP)) == BLOCKS and ("", "Softmax") not in ops
    onnx.checker.check_model(graph, full_check=True)


@pytest.fixture(scope="module")
def key_bias_fused(completion_onnx):
    """The fused graph that keeps every token and adds the key bias in the fused attention."""
    graph = onnx.load(str(completion_onnx))
    assert fuse_attention(graph)[0] == BLOCKS
    return graph.SerializeToString()


def test_cpu_graph_drops_the_masked_tokens(completion_onnx):
    graph = prepare_cpu_graph(completion_onnx)
    assert graph.fused == BLOCKS and "masked tokens dropped" in graph.note
    ops = _ops(onnx.load_from_string(graph.model_bytes))
    assert ops.count((MS_DOMAIN, FUSED_OP)) == BLOCKS and ("", "NonZero") in ops


@pytest.mark.numerics
@pytest.mark.parametrize("name", CAPTURES)
def test_fused_graphs_give_the_plain_graphs_outputs(model, completion_onnx, key_bias_fused,
                                                    name):
    frame = capture(name)
    plain = _run(_session(str(completion_onnx)), frame)
    with torch.no_grad():
        ref = model(*frame_tensors(frame), num_tokens=TOKENS, masking="drop")
    for fused_graph in (key_bias_fused, prepare_cpu_graph(completion_onnx).model_bytes):
        fused = _run(_session(fused_graph), frame)
        assert_close(fused[0], plain[0], rtol=FUSED_DEPTH_RTOL)
        assert_close(fused[1], plain[1], rtol=0, atol=FUSED_PROB_ATOL)
        assert_close(fused[0], ref["depth"], rtol=ORT_DEPTH_RTOL)


@pytest.mark.numerics
def test_engine_runs_the_fused_graph_and_leaves_the_file_alone(completion_onnx):
    before = completion_onnx.read_bytes()
    engine = create_engine("onnxruntime", onnx=completion_onnx, providers="cpu",
                           threads=ORT_THREADS, refine_measured=True)
    assert engine.fused_attention == BLOCKS and f"{BLOCKS} fused attention" in engine.describe()
    assert completion_onnx.read_bytes() == before  # TensorRT parses the file: standard ops only
    plain = create_engine("onnxruntime", onnx=completion_onnx, providers="cpu",
                          threads=ORT_THREADS, fuse_attention=False, refine_measured=True)
    assert plain.fused_attention == 0
    frame = capture("3")
    fused_depth, plain_depth = engine.complete(frame).depth, plain.complete(frame).depth
    plain_prob = _run(_session(str(completion_onnx)), frame)[1]
    assert_same_prediction(fused_depth, plain_depth, plain_prob, rtol=FUSED_DEPTH_RTOL,
                           prob_atol=FUSED_PROB_ATOL)


@pytest.mark.numerics
def test_monocular_graph_is_fused_without_a_key_bias(model, tmp_path):
    path = export_onnx(model, tmp_path / "mono.onnx", 480, 640, num_tokens=300,
                       mode="monocular")
    graph = prepare_cpu_graph(path)
    assert graph.fused == BLOCKS and "masked tokens kept" in graph.note  # there are none
    attention = [node for node in onnx.load_from_string(graph.model_bytes).graph.node
                 if node.op_type == FUSED_OP]
    assert len(attention) == BLOCKS
    assert not any(node.input[1].endswith("k_with_bias") for node in attention)
    frame = capture("1")
    plain = _run(_session(str(path)), frame)
    fused = _run(_session(graph.model_bytes), frame)
    assert_close(fused[0], plain[0], rtol=FUSED_DEPTH_RTOL)


def _softmax_graph(with_matmul: bool) -> onnx.ModelProto:
    """x (1, 4, 8, 8) -> Softmax, optionally after a MatMul with itself: not our attention."""
    nodes = [helper.make_node("Softmax", ["s" if with_matmul else "x"], ["y"], axis=-1)]
    if with_matmul:
        nodes.insert(0, helper.make_node("MatMul", ["x", "x"], ["s"]))
    value = helper.make_tensor_value_info
    graph = helper.make_graph(nodes, "g", [value("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [value("y", TensorProto.FLOAT, [1, 4, 8, 8])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


@pytest.mark.parametrize("with_matmul", [False, True])
def test_a_softmax_that_is_not_our_attention_is_left_alone(with_matmul, tmp_path):
    model_proto = _softmax_graph(with_matmul)
    before = model_proto.SerializeToString()
    fused, reasons = fuse_attention(model_proto)
    assert fused == 0 and len(reasons) == 1
    assert model_proto.SerializeToString() == before
    path = tmp_path / "softmax.onnx"
    onnx.save(model_proto, str(path))
    graph = prepare_cpu_graph(path)
    assert graph.model_bytes is None and "no attention matched" in graph.note


def test_narrow_decoders_turn_off_the_nchwc_layout(completion_onnx):
    # the tiny decoder's widest levels have 4-8 channels, under ORT's 16-channel blocks
    assert narrow_conv_share(onnx.load(str(completion_onnx))) > 0.5
    assert not prepare_cpu_graph(completion_onnx).use_nchwc


@pytest.mark.numerics
def test_static_pipeline_leaves_out_identity_resizes(model):
    """At 1200 tokens the heads' output grid (30x40 * 16) is the frame size: no resize."""
    rows, cols = model.grid(480, 640, num_tokens=1200)
    pipeline = StaticPipeline(model, 480, 640, rows, cols, "completion")
    assert {"depth_out_h", "depth_out_w", "mask_out_h", "mask_out_w"} <= pipeline.identity_resizes
    assert not {"rgb_h", "rgb_w"} & pipeline.identity_resizes
    frame = capture("3")
    rgb, depth = (torch.from_numpy(a) for a in frame_to_model_inputs(frame))
    with torch.no_grad():
        metres, prob = pipeline(rgb, depth)
        ref = model(*frame_tensors(frame), num_tokens=1200, masking="drop")
    assert_close(metres, ref["depth"], rtol=PIPELINE_DEPTH_RTOL)
    assert_close(prob, ref["mask"], rtol=0, atol=PIPELINE_PROB_ATOL)


def _stream_graph(middle: list, cut_end: int) -> onnx.ModelProto:
    """x (1, 6, 4) -> middle nodes (x -> m) -> x[:, :cut_end] -> y."""
    value = helper.make_tensor_value_info
    consts = [helper.make_tensor(name, TensorProto.INT64, [1], [v])
              for name, v in (("zero", 0), ("end", cut_end), ("axis", 1))]
    consts.append(helper.make_tensor("w", TensorProto.FLOAT, [4, 4], [0.5] * 16))
    nodes = middle + [helper.make_node("Slice", ["m", "zero", "end", "axis"], ["y"])]
    graph = helper.make_graph(nodes, "g", [value("x", TensorProto.FLOAT, [1, 6, 4])],
                              [value("y", TensorProto.FLOAT, None)], initializer=consts)
    return helper.make_model(graph)


def test_token_path_accepts_token_wise_ops_up_to_a_cut_to_kept_tokens():
    middle = [helper.make_node("MatMul", ["x", "w"], ["h"]),
              helper.make_node("Erf", ["h"], ["e"]),
              helper.make_node("Add", ["x", "e"], ["m"])]
    assert token_path(_stream_graph(middle, 2).graph, "x", always_kept=2) == {"x", "h", "e", "m"}
    with pytest.raises(NoMatch, match="Slice"):  # the cut reaches tokens that may be dropped
        token_path(_stream_graph(middle, 3).graph, "x", always_kept=2)


def test_token_path_refuses_ops_that_mix_tokens():
    middle = [helper.make_node("Transpose", ["x"], ["m"], perm=[0, 2, 1])]
    with pytest.raises(NoMatch, match="Transpose"):
        token_path(_stream_graph(middle, 2).graph, "x", always_kept=2)
