"""A graph with a dynamic batch axis (export-onnx --max-batch) fixed to one batch size, in
memory: the inputs get that size and the shape arithmetic the exporter wrote for the symbolic
axis (Shape, Slice, Concat on a handful of integers) is folded into constants, so the CPU
rewrites of ort_cpu see the same static graph a batch-1 export gives them."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

#: a folded value larger than this and than the node's inputs together stays computed at run
#: time (a big constant would bloat the graph; shape arithmetic is a few integers, and an Expand
#: to batch 1 grows nothing)
MAX_FOLDED_ELEMENTS = 64
_FOLDABLE = {"Shape", "Gather", "Concat", "Slice", "Squeeze", "Unsqueeze", "Cast", "Add", "Sub",
             "Mul", "Div", "Reshape", "Equal", "Where", "Range", "ConstantOfShape", "Expand",
             "Identity", "Max", "Min", "Neg", "Abs", "ReduceProd"}


def batch_dims(model: onnx.ModelProto) -> dict[str, object]:
    """Each graph input's first dimension: an int (static) or its symbolic name."""
    out = {}
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        if dims:
            out[value.name] = dims[0].dim_value if dims[0].HasField("dim_value") else (
                dims[0].dim_param or "?")
    return out


def _static_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    inferred = onnx.shape_inference.infer_shapes(model).graph
    shapes = {}
    for value in (*inferred.input, *inferred.value_info, *inferred.output):
        dims = value.type.tensor_type.shape.dim
        if value.type.HasField("tensor_type") and all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = tuple(d.dim_value for d in dims)
    return shapes


def _evaluate(node, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """One node on constant inputs, as the ONNX reference implementation defines it."""
    names = [f"in{i}" for i in range(len(inputs))]
    values = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
              for n, a in zip(names, inputs)]
    copy = helper.make_node(node.op_type, [names[i] if name else "" for i, name in
                                           enumerate(node.input)], list(node.output),
                            domain=node.domain)
    copy.attribute.extend(node.attribute)
    outputs = [helper.make_empty_tensor_value_info(o) for o in node.output]
    graph = helper.make_graph([copy], "fold", values, outputs)
    return ReferenceEvaluator(helper.make_model(graph)).run(None, dict(zip(names, inputs)))


def _fold_once(model: onnx.ModelProto) -> int:
    """Replace the small shape computations that are now constant; how many nodes went."""
    graph = model.graph
    shapes = _static_shapes(model)
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    kept, folded = [], 0
    for node in graph.node:
        values = None
        if node.op_type == "Constant" and node.attribute[0].name == "value":
            values = [numpy_helper.to_array(node.attribute[0].t)]
        elif node.op_type == "Shape" and node.input[0] in shapes:
            start = next((a.i for a in node.attribute if a.name == "start"), 0)
            end = next((a.i for a in node.attribute if a.name == "end"), None)
            values = [np.array(shapes[node.input[0]][start:end], np.int64)]
        elif (node.op_type in _FOLDABLE and not node.domain
              and all(not n or n in consts for n in node.input)):
            values = _evaluate(node, [consts[n] for n in node.input if n])
        limit = max(MAX_FOLDED_ELEMENTS, sum(consts[n].size for n in node.input if n in consts))
        if values is None or any(np.asarray(v).size > limit for v in values):
            kept.append(node)
            continue
        for name, value in zip(node.output, values):
            consts[name] = np.asarray(value)
            graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        folded += node.op_type != "Constant"
    del graph.node[:]
    graph.node.extend(kept)
    return folded


def fix_batch(model: onnx.ModelProto, batch: int) -> onnx.ModelProto:
    """`model` (a dynamic batch axis on every input and output) with that axis set to `batch`
    and its shape arithmetic folded; a static graph is returned as it is when it is `batch`."""
    if batch < 1:
        raise ValueError(f"batch must be positive, got {batch}")
    for value in (*model.graph.input, *model.graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        if dim.HasField("dim_value") and dim.dim_value != batch:
            raise ValueError(f"'{value.name}' has a static batch of {dim.dim_value}, not {batch}")
        dim.Clear()
        dim.dim_value = batch
    while _fold_once(model):
        pass
    del model.graph.value_info[:]  # inferred for the symbolic axis; re-inferred by its users
    return model
