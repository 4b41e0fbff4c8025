"""ONNX Runtime-only: run the encoder blocks on the kept tokens only, as the eager model does.
Invalid depth tokens weigh exactly 0 in attention and are cut before the decoder, so gathering
the kept ones before the first block gives the same outputs (proof and checks:
docs/internals.md)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .ort_fusion import FUSED_OP, MS_DOMAIN, GraphIndex, NoMatch, _attr, prune_graph

#: a key bias at or below this gives exactly zero attention weight: exp() of it plus any
#: realistic score difference underflows to 0 in fp32 (the export uses -30000)
DROPPED_KEY_BIAS = -1e4
_UNARY = {"Erf", "Relu", "Sigmoid", "Tanh", "Identity", "Gelu", "Exp", "Sqrt", "Neg", "Abs"}
_BINARY = {"Add", "Sub", "Mul", "Div", "Pow"}


@dataclass
class DropPlan:
    keep: str  # bool (1, S): the tokens to keep
    always_kept: int  # leading tokens that are kept whatever the input
    stream: str  # (1, S, D): the token stream entering the first block


def _through_layout(index: GraphIndex, name: str):
    """The first producer of `name` that is not an Unsqueeze / Reshape."""
    node = index.producer.get(name)
    while node is not None and node.op_type in ("Unsqueeze", "Reshape", "Identity"):
        node = index.producer.get(node.input[0])
    return node


def _always_true_prefix(index: GraphIndex, keep: str) -> int:
    """Leading entries of the bool (1, S) `keep` that are constant True."""
    concat = index.producer.get(keep)
    if concat is None or concat.op_type != "Concat" or _attr(concat, "axis") not in (1, -1):
        raise NoMatch("the kept-token mask is not a concatenation")
    first = concat.input[0]
    value = index.constants.get(first)
    producer = index.producer.get(first)
    if value is None and producer is not None and producer.op_type == "Expand":
        value = index.constants.get(producer.input[0])
    if value is None or value.dtype != np.bool_ or not value.all():
        raise NoMatch("no leading tokens are kept by construction")
    return index.shape(first)[1]


def plan_token_drop(index: GraphIndex, key_biases: set, first_q_input: str) -> DropPlan:
    """What to gather, from the fused attentions' shared key bias Where(keep, 0, -30000)."""
    if len(key_biases) != 1 or None in key_biases:
        raise NoMatch("the attention blocks do not share one key bias")
    where = _through_layout(index, next(iter(key_biases)))
    if where is None or where.op_type != "Where":
        raise NoMatch("the key bias is not Where(keep, 0, masked)")
    kept_value = index.constants.get(where.input[1])
    dropped_value = index.constants.get(where.input[2])
    if (kept_value is None or dropped_value is None or np.any(kept_value != 0)
            or np.any(dropped_value > DROPPED_KEY_BIAS)):
        raise NoMatch("the key bias is not 0 for kept and <= -1e4 for dropped tokens")
    keep = where.input[0]
    if len(index.shape(keep)) != 2 or index.shape(keep)[0] != 1:
        raise NoMatch("batches of more than one frame")
    norm = index.producer.get(first_q_input)
    if norm is None or norm.op_type != "LayerNormalization":
        raise NoMatch("the first block does not start with a LayerNormalization")
    stream = norm.input[0]
    if index.shape(stream)[:2] != index.shape(keep):
        raise NoMatch("the token stream and the key mask differ in length")
    return DropPlan(keep, _always_true_prefix(index, keep), stream)


def _token_invariant(value: np.ndarray) -> bool:
    """A constant that broadcasts against (1, S, D) without varying along the tokens."""
    shape = (1,) * (3 - value.ndim) + value.shape
    return len(shape) == 3 and shape[0] == shape[1] == 1


def _cuts_to_kept(node, consts: dict, always_kept: int) -> bool:
    """A Slice of the token axis to leading tokens that are always kept."""
    starts, ends, axes, steps = ([consts.get(n) for n in node.input[1:5]] + [None] * 4)[:4]
    return (starts is not None and ends is not None and axes is not None
            and list(starts) == [0] and list(axes) in ([1], [-2]) and int(ends[0]) <= always_kept
            and (steps is None or list(steps) == [1]))


def _token_role(node, name: str, consts: dict, always_kept: int) -> tuple[str, list]:
    """('exit' | 'pass', inputs that must also be on the token path) for an op on it."""
    others = [i for i in node.input if i and i != name and i not in consts]
    if node.op_type == "Slice" and node.input[0] == name and _cuts_to_kept(node, consts,
                                                                              always_kept):
        return "exit", []
    if node.op_type == "LayerNormalization" and node.input[0] == name and not others:
        if _attr(node, "axis", -1) in (-1, 2):
            return "pass", []
    if node.op_type == "MatMul" and node.input[0] == name and not others:
        if consts[node.input[1]].ndim == 2:
            return "pass", []
    if node.op_type in _BINARY and len(node.input) == 2:
        constant = [consts[i] for i in node.input if i in consts]
        if all(_token_invariant(c) for c in constant):
            return "pass", others
    if node.op_type in _UNARY and len(node.input) == 1:
        return "pass", []
    if node.domain == MS_DOMAIN and node.op_type == FUSED_OP and len(node.input) <= 4:
        if len(node.input) < 4 or node.input[3] in consts:
            return "pass", [i for i in node.input[:3] if i != name]
    raise NoMatch(f"{node.op_type} {node.name or node.output[0]} does not work token by token")


def token_path(graph, start: str, always_kept: int) -> set:
    """Values that carry the (variable-length) token stream from `start`; NoMatch unless every
    op on it works token by token until a cut to always-kept leading tokens."""
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    path, queue, needed = {start}, deque([start]), set()
    while queue:
        name = queue.popleft()
        if name in outputs:
            raise NoMatch("the token stream reaches a graph output")
        for node in consumers.get(name, []):
            role, also = _token_role(node, name, consts, always_kept)
            needed.update(also)
            if role == "pass":
                for out in node.output:
                    if out not in path:
                        path.add(out)
                        queue.append(out)
    if not needed <= path:
        raise NoMatch("an op mixes the token stream with other values")
    return path


def _topological_sort(graph) -> None:
    """Order nodes so that each comes after its inputs' producers (stable otherwise)."""
    produced_by = {o: i for i, node in enumerate(graph.node) for o in node.output}
    waiting = {i: {produced_by[n] for n in node.input if n in produced_by}
               for i, node in enumerate(graph.node)}
    users: dict[int, list] = {}
    for i, deps in waiting.items():
        for dep in deps:
            users.setdefault(dep, []).append(i)
    ready = sorted(i for i, deps in waiting.items() if not deps)
    order = []
    while ready:
        i = ready.pop(0)
        order.append(i)
        for user in users.get(i, []):
            waiting[user].discard(i)
            if not waiting[user]:
                ready.append(user)
    if len(order) != len(graph.node):
        raise NoMatch("the rewritten graph has a cycle")
    nodes = [graph.node[i] for i in order]
    del graph.node[:]
    graph.node.extend(nodes)


def apply_token_drop(model: onnx.ModelProto, plan: DropPlan) -> None:
    """Feed the blocks the kept tokens only (model's attention already fused, unbiased)."""
    graph = model.graph
    kept = plan.stream + "/kept"
    graph.initializer.append(numpy_helper.from_array(np.array(1, np.int64), kept + "_axis1"))
    for node in graph.node:
        node.input[:] = [kept if name == plan.stream else name for name in node.input]
    graph.node.extend([
        helper.make_node("NonZero", [plan.keep], [kept + "_where"]),
        helper.make_node("Gather", [kept + "_where", kept + "_axis1"], [kept + "_index"], axis=0),
        helper.make_node("Gather", [plan.stream, kept + "_index"], [kept], axis=1)])
    _topological_sort(graph)
    prune_graph(graph)  # the unfused attention, which would hold the length fixed
    path = token_path(graph, kept, plan.always_kept)
    static = [v for v in graph.value_info if v.name not in path]  # those lengths now vary
    del graph.value_info[:]
    graph.value_info.extend(static)
