"""ONNX Runtime-only rewrite of the exported attention into com.microsoft.MultiHeadAttention,
with the key bias folded into one more q/k component so that ORT's tiled kernel runs (why and
how: docs/internals.md). In memory only: the .onnx file keeps standard ops for TensorRT, and
a graph not in the expected layout is left as it is."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

log = logging.getLogger(__name__)

MS_DOMAIN = "com.microsoft"
FUSED_OP = "MultiHeadAttention"
_LAYOUT_OPS = {"Reshape", "Transpose", "Slice", "Squeeze", "Unsqueeze", "Identity"}


class NoMatch(Exception):
    """This Softmax is not an attention the rewrite understands (the message says why)."""


class GraphIndex:
    """Producers, consumers, constants and static shapes of a graph's values."""

    def __init__(self, model: onnx.ModelProto) -> None:
        graph = model.graph
        self.producer = {out: node for node in graph.node for out in node.output}
        self.consumers: dict[str, list] = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant" and node.attribute[0].name == "value":
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        inferred = onnx.shape_inference.infer_shapes(model).graph
        self.shapes = {}
        for value in (*inferred.input, *inferred.value_info, *inferred.output):
            dims = value.type.tensor_type.shape.dim
            if dims and all(d.HasField("dim_value") for d in dims):
                self.shapes[value.name] = tuple(d.dim_value for d in dims)
        self.graph_outputs = {o.name for o in graph.output}

    def shape(self, name: str) -> tuple:
        if name not in self.shapes:
            raise NoMatch(f"no static shape for '{name}'")
        return self.shapes[name]

    def only_consumer(self, name: str):
        users = self.consumers.get(name, [])
        return users[0] if len(users) == 1 and name not in self.graph_outputs else None


def _attr(node, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _replay(node, x: np.ndarray, consts: dict) -> np.ndarray:
    """Apply one layout op to an array, as ONNX defines it (constant operands only)."""
    args = [consts.get(name) if name else None for name in node.input[1:]]
    if node.op_type == "Identity":
        return x
    if node.op_type == "Transpose":
        return x.transpose(_attr(node, "perm", list(range(x.ndim))[::-1]))
    if node.op_type == "Reshape":
        shape = [int(s) for s in args[0]]
        if not _attr(node, "allowzero", 0):
            shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
        return x.reshape(shape)
    if node.op_type in ("Squeeze", "Unsqueeze"):
        axes = [int(a) for a in (args[0] if args else _attr(node, "axes"))]
        if node.op_type == "Squeeze":
            return np.squeeze(x, tuple(axes))
        return np.expand_dims(x, tuple(axes))
    if node.op_type == "Slice":
        starts, ends = args[0], args[1]
        axes = args[2] if len(args) > 2 and args[2] is not None else range(len(starts))
        steps = args[3] if len(args) > 3 and args[3] is not None else [1] * len(starts)
        index = [slice(None)] * x.ndim
        for s, e, a, st in zip(starts, ends, axes, steps):
            index[int(a)] = slice(int(s), int(e), int(st))
        return x[tuple(index)]
    raise NoMatch(f"cannot replay {node.op_type}")


def _scalar(index: GraphIndex, node) -> tuple[str, float] | None:
    """(other input, factor) when `node` multiplies or divides by a scalar constant."""
    if node.op_type not in ("Mul", "Div"):
        return None
    for pos, name in enumerate(node.input):
        value = index.constants.get(name)
        if value is not None and value.size == 1 and (node.op_type == "Mul" or pos == 1):
            factor = float(value.reshape(()))
            return node.input[1 - pos], factor if node.op_type == "Mul" else 1.0 / factor
    return None


@dataclass
class Operand:
    """q, k or v: x @ weight[:, columns] + bias[columns], columns (heads, head_dim)."""
    x: str
    weight: np.ndarray
    bias: np.ndarray
    columns: np.ndarray
    scale: float


def _projection(index: GraphIndex, name: str):
    """(x, weight, bias) when `name` is x @ W (+ b) with constant W and b, else None."""
    node = index.producer.get(name)
    bias = None
    if node is not None and node.op_type == "Add":
        for pos in (0, 1):
            value = index.constants.get(node.input[1 - pos])
            inner = index.producer.get(node.input[pos])
            if value is not None and inner is not None and inner.op_type == "MatMul":
                bias, node = value, inner
                break
    if node is None or node.op_type != "MatMul" or node.input[1] not in index.constants:
        return None
    weight = index.constants[node.input[1]]
    if weight.ndim != 2:
        return None
    bias = np.zeros(weight.shape[1], weight.dtype) if bias is None else bias
    if bias.shape != (weight.shape[1],):
        return None
    return node.input[0], weight, bias


def trace_operand(index: GraphIndex, name: str, transposed: bool) -> Operand:
    """Walk back from an attention MatMul input to its projection and find which projection
    columns feed each (head, channel): the chain in between is replayed on index arrays."""
    chain, scale = [], 1.0
    while (found := _projection(index, name)) is None:
        node = index.producer.get(name)
        scaled = _scalar(index, node) if node is not None else None
        if scaled is not None:
            name, factor = scaled
            scale *= factor
        elif node is not None and node.op_type in _LAYOUT_OPS:
            chain.append(node)
            name = node.input[0]
        else:
            raise NoMatch(f"'{name}' is not reached from a constant projection")
    x, weight, bias = found
    shape = index.shape(name)
    positions = np.arange(int(np.prod(shape))).reshape(shape)
    for node in reversed(chain):
        positions = _replay(node, positions, index.constants)
    if positions.ndim != 4:
        raise NoMatch(f"attention operand of rank {positions.ndim}, expected 4")
    if transposed:
        positions = positions.swapaxes(-1, -2)
    batch, heads, seq, dim = positions.shape
    width = shape[-1]
    columns = positions[0, :, 0, :] % width
    rows = np.arange(batch * seq).reshape(batch, 1, seq, 1)
    expected = rows * width + columns[None, :, None, :]
    if shape != (batch, seq, width) or not np.array_equal(positions, expected):
        raise NoMatch("q/k/v are not per-token head slices of their projection")
    return Operand(x, weight, bias, columns, scale)


@dataclass
class AttentionMatch:
    """One softmax(scale * q k^T + key_bias) v whose heads end up in `output` (B, S, H*dv)."""
    q: Operand
    k: Operand
    v: Operand
    key_bias: str | None  # additive (B or 1, 1, 1, S_kv) score bias, None without one
    output: str
    batch: int
    seq_kv: int


def trace_output(index: GraphIndex, name: str) -> str:
    """Follow the (B, H, S, dv) attention result through layout ops to the value that holds
    it as (B, S, H * dv), heads side by side, which is what MultiHeadAttention returns."""
    shape = index.shape(name)
    if len(shape) != 4:
        raise NoMatch(f"attention result of rank {len(shape)}, expected 4")
    batch, heads, seq, dim = shape
    positions = np.arange(int(np.prod(shape))).reshape(shape)
    expected = positions.transpose(0, 2, 1, 3).reshape(batch, seq, heads * dim)
    while positions.shape != expected.shape or not np.array_equal(positions, expected):
        node = index.only_consumer(name)
        if node is None or node.op_type not in _LAYOUT_OPS or node.input[0] != name:
            raise NoMatch("the attention result is not merged back to (B, S, heads * dim)")
        positions = _replay(node, positions, index.constants)
        name = node.output[0]
    return name


def _score_inputs(index: GraphIndex, softmax) -> tuple:
    """(q @ k^T MatMul node, key bias name or None) feeding a last-axis Softmax."""
    rank = len(index.shape(softmax.input[0]))
    if _attr(softmax, "axis", -1) not in (-1, rank - 1):
        raise NoMatch("softmax is not over the last axis")
    scores = index.producer.get(softmax.input[0])
    key_bias = None
    if scores is not None and scores.op_type == "Add":
        for pos in (0, 1):
            inner = index.producer.get(scores.input[pos])
            if inner is not None and inner.op_type == "MatMul":
                scores, key_bias = inner, scores.input[1 - pos]
                break
    if scores is None or scores.op_type != "MatMul":
        raise NoMatch("softmax input is not a MatMul (plus a bias)")
    return scores, key_bias


def _check_key_bias(index: GraphIndex, key_bias: str, batch: int, seq_kv: int) -> None:
    shape = (1,) * (4 - len(index.shape(key_bias))) + index.shape(key_bias)
    if len(shape) != 4 or shape[0] not in (1, batch) or shape[1:] != (1, 1, seq_kv):
        raise NoMatch(f"score bias of shape {shape} is not a per-key bias (B, 1, 1, {seq_kv})")


def match_attention(index: GraphIndex, softmax) -> AttentionMatch:
    """The multi-head attention around `softmax`, or NoMatch."""
    scores, key_bias = _score_inputs(index, softmax)
    weighted = index.only_consumer(softmax.output[0])
    if weighted is None or weighted.op_type != "MatMul" or weighted.input[0] != softmax.output[0]:
        raise NoMatch("softmax output does not only feed probs @ v")
    q = trace_operand(index, scores.input[0], transposed=False)
    k = trace_operand(index, scores.input[1], transposed=True)
    v = trace_operand(index, weighted.input[1], transposed=False)
    if q.columns.shape != k.columns.shape or v.columns.shape[0] != q.columns.shape[0]:
        raise NoMatch("q, k and v disagree on heads or head size")
    if v.scale != 1.0:
        raise NoMatch("v is scaled")
    batch, _, _, _ = index.shape(weighted.output[0])
    seq_kv = index.shape(scores.output[0])[-1]
    if key_bias is not None:
        _check_key_bias(index, key_bias, batch, seq_kv)
    return AttentionMatch(q, k, v, key_bias, trace_output(index, weighted.output[0]), batch,
                          seq_kv)


def _heads(operand: Operand, extra_weight: bool, extra_bias: float | None):
    """Weight (in, H * d') and bias (H * d') with the operand's columns in head order; with
    extra_bias, one more channel per head (zero weight when extra_weight, else no column)."""
    weight = operand.weight[:, operand.columns]  # (in, H, d)
    bias = operand.bias[operand.columns]  # (H, d)
    if extra_bias is not None:
        bias = np.concatenate([bias, np.full_like(bias[:, :1], extra_bias)], axis=1)
        if extra_weight:
            weight = np.concatenate([weight, np.zeros_like(weight[:, :, :1])], axis=2)
    return weight.reshape(weight.shape[0], -1), bias.reshape(-1)


def emit_fused(match: AttentionMatch, prefix: str, key_bias: str | None) -> tuple[list, list]:
    """Nodes and initializers computing match.output with one MultiHeadAttention, adding
    `key_bias` (B or 1, 1, 1, S_kv) to its scores when given."""
    masked = key_bias is not None
    heads, head_dim = match.k.columns.shape
    scale = match.q.scale * match.k.scale
    w_q, b_q = _heads(match.q, extra_weight=True, extra_bias=1.0 if masked else None)
    w_k, b_k = _heads(match.k, extra_weight=False, extra_bias=0.0 if masked else None)
    w_v, b_v = _heads(match.v, extra_weight=False, extra_bias=None)
    consts = {"w_q": w_q, "w_k": w_k, "w_v": w_v, "bias": np.concatenate([b_q, b_k, b_v])}
    nodes = [helper.make_node("MatMul", [op.x, prefix + "w_" + name], [prefix + name])
             for op, name in ((match.q, "q"), (match.k, "k"), (match.v, "v"))]
    key = prefix + "k"
    if masked:  # k gets bias / scale as one more channel per head
        key = prefix + "k_with_bias"
        seq = match.seq_kv
        consts.update({
            "inverse_scale": np.array(1.0 / scale, np.float32),
            "bias_shape": np.array([-1, seq, 1, 1], np.int64),
            "bias_heads": np.array([match.batch, seq, heads, 1], np.int64),
            "k_heads": np.array([match.batch, seq, heads, head_dim], np.int64),
            "k_merged": np.array([match.batch, seq, heads * (head_dim + 1)], np.int64)})
        nodes += [
            helper.make_node("Mul", [key_bias, prefix + "inverse_scale"], [prefix + "kb"]),
            helper.make_node("Reshape", [prefix + "kb", prefix + "bias_shape"], [prefix + "kb4"]),
            helper.make_node("Expand", [prefix + "kb4", prefix + "bias_heads"], [prefix + "kbh"]),
            helper.make_node("Reshape", [prefix + "k", prefix + "k_heads"], [prefix + "k4"]),
            helper.make_node("Concat", [prefix + "k4", prefix + "kbh"], [prefix + "k4b"], axis=3),
            helper.make_node("Reshape", [prefix + "k4b", prefix + "k_merged"], [key])]
    nodes.append(helper.make_node(
        FUSED_OP, [prefix + "q", key, prefix + "v", prefix + "bias"], [match.output],
        domain=MS_DOMAIN, name=prefix + FUSED_OP, num_heads=heads, scale=scale))
    dtype = match.q.weight.dtype
    inits = [numpy_helper.from_array(value if value.dtype.kind == "i" else value.astype(dtype),
                                     prefix + name) for name, value in consts.items()]
    return nodes, inits


def prune_graph(graph) -> None:
    """Drop nodes, initializers and value infos that no graph output depends on."""
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    produced = needed | {o for node in kept for o in node.output}
    for field, alive in ((graph.initializer, needed), (graph.value_info, produced)):
        kept_items = [item for item in field if item.name in alive]
        del field[:]
        field.extend(kept_items)


def find_attention(model: onnx.ModelProto) -> tuple[GraphIndex, list, list[str]]:
    """(index, the attention blocks that can be fused in node order, why others cannot)."""
    index = GraphIndex(model)
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
           for node in model.graph.node for a in node.attribute):
        return index, [], ["the graph has subgraphs"]
    matches, reasons = [], []
    for node in model.graph.node:
        if node.op_type == "Softmax":
            try:
                matches.append(match_attention(index, node))
            except NoMatch as exc:
                reasons.append(f"{node.name or node.output[0]}: {exc}")
    return index, matches, reasons


def rewrite_attention(model: onnx.ModelProto, matches: list, key_bias: bool) -> None:
    """Put the fused nodes of each match in place of the node producing its merged heads
    (everything they read is computed before it); without key_bias the bias is ignored (the
    caller drops the masked tokens instead). Dead nodes stay until prune_graph."""
    graph = model.graph
    by_output = {match.output: (number, match) for number, match in enumerate(matches)}
    rewritten = []
    for node in graph.node:
        number, match = by_output.get(node.output[0] if node.output else None, (None, None))
        if match is None:
            rewritten.append(node)
            continue
        nodes, inits = emit_fused(match, f"fused_attention_{number}/",
                                  match.key_bias if key_bias else None)
        rewritten.extend(nodes)
        graph.initializer.extend(inits)
    del graph.node[:]
    graph.node.extend(rewritten)
    if not any(o.domain == MS_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))


def fuse_attention(model: onnx.ModelProto) -> tuple[int, list[str]]:
    """Fuse every matching attention of `model` in place, key bias included; (number fused,
    why the others were not)."""
    _, matches, reasons = find_attention(model)
    if matches:
        rewrite_attention(model, matches, key_bias=True)
        prune_graph(model.graph)
    return len(matches), reasons
