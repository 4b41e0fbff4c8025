"""The graph an ONNX Runtime CPU session runs: the exported file rewritten in memory (fused
attention, dropped tokens, NCHWc off for narrow convolutions; docs/internals.md). Whatever
does not match is left as exported, with the reason in CpuGraph.note."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from .ort_batch import batch_dims, fix_batch
from .ort_fusion import (FUSED_OP, MS_DOMAIN, GraphIndex, NoMatch, find_attention, prune_graph,
                         rewrite_attention)
from .ort_token_drop import apply_token_drop, plan_token_drop

#: channels per block of ORT's NCHWc convolution layout with AVX-512 (8 with AVX2)
NCHWC_BLOCK = 16


def narrow_conv_share(model: onnx.ModelProto, index: GraphIndex | None = None) -> float:
    """Share of the convolution multiply-adds spent in convolutions with fewer output channels
    than an NCHWc block: ORT's NCHWc layout pads those up to the block (4 channels compute
    16) and reorders the result back, which costs more than it saves."""
    index = index or GraphIndex(model)
    narrow = total = 0
    for node in model.graph.node:
        weight = index.constants.get(node.input[1]) if node.op_type == "Conv" else None
        if weight is None or node.output[0] not in index.shapes:
            continue
        work = int(np.prod(index.shapes[node.output[0]])) * int(np.prod(weight.shape[1:]))
        total += work
        narrow += work if weight.shape[0] < NCHWC_BLOCK else 0
    return narrow / total if total else 0.0


def rewrite_for_cpu(model: onnx.ModelProto) -> tuple[int, bool, list[str]]:
    """Fuse the attention of `model` in place, dropping masked tokens where that is proven
    safe; (blocks fused, whether tokens are dropped, why anything was left as it is)."""
    index, matches, reasons = find_attention(model)
    if not matches:
        return 0, False, reasons
    try:
        plan = plan_token_drop(index, {m.key_bias for m in matches}, matches[0].q.x)
        dropped = onnx.ModelProto()
        dropped.CopyFrom(model)
        rewrite_attention(dropped, matches, key_bias=False)
        apply_token_drop(dropped, plan)
        model.CopyFrom(dropped)
        prune_graph(model.graph)
        return len(matches), True, reasons
    except NoMatch as exc:
        reasons.append(f"masked tokens kept: {exc}")
    rewrite_attention(model, matches, key_bias=True)
    prune_graph(model.graph)
    return len(matches), False, reasons


@dataclass
class CpuGraph:
    """What the CPU session should run: the rewritten graph (None: the file as it is), how
    many attention blocks it fused, whether ORT's NCHWc layout pays off, and a log note."""
    model_bytes: bytes | None
    fused: int
    use_nchwc: bool
    note: str


def prepare_cpu_graph(path, batch: int = 1) -> CpuGraph:
    """The CPU graph of the file at `path` for batches of `batch` frames (a graph with a
    dynamic batch axis is fixed to it first; token dropping needs a batch of one)."""
    model = onnx.load(str(path), load_external_data=False)
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        return CpuGraph(None, 0, True, "weights are in an external data file")
    if not all(isinstance(d, int) for d in batch_dims(model).values()):
        fix_batch(model, batch)
    use_nchwc = narrow_conv_share(model) <= 0.5
    fused, dropped, reasons = rewrite_for_cpu(model)
    if not fused:
        note = "no attention matched" + (f" ({'; '.join(reasons)})" if reasons else "")
        return CpuGraph(None, 0, use_nchwc, note)
    note = (f"{fused} attention blocks fused into {MS_DOMAIN}.{FUSED_OP}"
            + (", masked tokens dropped" if dropped else ""))
    if reasons:
        note += f"; {'; '.join(reasons)}"
    return CpuGraph(model.SerializeToString(), fused, use_nchwc, note)
