"""Cut an ONNX model into per-shard subgraphs along its layer groups.

The builder in :mod:`outrider_runtime.builtin_models` names every node ``<group>/...`` with group in
``embeddings``, ``attention``, ``ffn`` or ``head``. A runtime config assigns each group to a shard.
Walking the nodes in topological order, maximal runs of nodes that belong to the same shard become
one :class:`Segment`: a standalone ONNX model whose inputs are the tensors it needs from the model
inputs or from earlier segments and whose outputs are the tensors later segments (or the caller)
need. Because attention and feed-forward blocks alternate, a shard holding ``attention`` and another
holding ``ffn`` give ``2 x layers`` alternating segments, each run by its own shard's session.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import onnx
from onnx import helper, shape_inference

from outrider_runtime.config import Layer, ShardConfig
from outrider_runtime.errors import ModelBuildError

__all__ = ["GROUPS", "Segment", "assign_layers", "cut_model", "node_group"]

GROUPS = (Layer.EMBEDDINGS, Layer.ATTENTION, Layer.FFN, Layer.HEAD)
DEFAULT_SHARD = "all"


@dataclass(frozen=True)
class Segment:
    """A contiguous run of nodes executed by one shard."""

    index: int
    shard: str
    groups: tuple[str, ...]
    model: onnx.ModelProto
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def node_group(node: onnx.NodeProto) -> Layer | None:
    """The layer group a node belongs to, from its ``<group>/`` name prefix (None if untagged)."""
    prefix = node.name.split("/", 1)[0]
    try:
        layer = Layer(prefix)
    except ValueError:
        return None
    return layer if layer is not Layer.ALL else None


def assign_layers(shards: Sequence[ShardConfig]) -> dict[Layer, str]:
    """Map every layer group to the name of the shard holding it; every group must be covered."""
    if not shards:
        return dict.fromkeys(GROUPS, DEFAULT_SHARD)
    out: dict[Layer, str] = {}
    for shard in shards:
        for layer in shard.layers:
            if layer is Layer.ALL:
                return {g: shard.name for g in GROUPS}
            out[layer] = shard.name
    missing = [g.value for g in GROUPS if g not in out]
    if missing:
        raise ModelBuildError(f"layer groups {missing} are not assigned to any shard")
    return out


def _value_infos(model: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    inferred = shape_inference.infer_shapes(model)
    infos: dict[str, onnx.ValueInfoProto] = {}
    for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        infos[vi.name] = vi
    return infos


def cut_model(model: onnx.ModelProto, assignment: dict[Layer, str]) -> list[Segment]:
    """Cut ``model`` into segments according to ``assignment`` (see :func:`assign_layers`)."""
    graph = model.graph
    shard_names = set(assignment.values())
    tagged = any(node_group(n) is not None for n in graph.node)
    if not tagged and len(shard_names) > 1:
        raise ModelBuildError(
            "this model's nodes carry no layer-group names, so it can only run as a single shard"
        )
    # 1. shard of each node: its group's shard; untagged nodes follow the previous node.
    runs: list[tuple[str, list[onnx.NodeProto], list[str]]] = []
    current = next(iter(assignment.values()))
    for node in graph.node:
        group = node_group(node)
        if group is not None:
            current = assignment[group]
        if not runs or runs[-1][0] != current:
            runs.append((current, [], []))
        runs[-1][1].append(node)
        if group is not None and group.value not in runs[-1][2]:
            runs[-1][2].append(group.value)
    if len(runs) == 1:
        return [Segment(0, runs[0][0], tuple(runs[0][2]), model, _names(graph.input), _names(graph.output))]

    inits = {t.name: t for t in graph.initializer}
    infos = _value_infos(model)
    graph_outputs = [o.name for o in graph.output]
    consumed_after: list[set[str]] = []
    later: set[str] = set(graph_outputs)
    for _, nodes, _ in reversed(runs):
        consumed_after.append(set(later))
        for n in nodes:
            later.update(n.input)
    consumed_after.reverse()

    segments: list[Segment] = []
    for idx, (shard, nodes, groups) in enumerate(runs):
        produced = {o for n in nodes for o in n.output}
        needed = [i for n in nodes for i in n.input if i and i not in produced]
        seg_inits = sorted({i for i in needed if i in inits})
        seg_inputs = list(dict.fromkeys(i for i in needed if i not in inits))
        seg_outputs = [o for n in nodes for o in n.output if o in consumed_after[idx]]
        sub = helper.make_graph(
            list(nodes),
            f"{graph.name}_seg{idx}_{shard}",
            [_info(infos, name) for name in seg_inputs],
            [_info(infos, name) for name in seg_outputs],
            initializer=[inits[name] for name in seg_inits],
        )
        seg_model = helper.make_model(sub, opset_imports=list(model.opset_import), producer_name="outrider")
        seg_model.ir_version = model.ir_version
        segments.append(Segment(idx, shard, tuple(groups), seg_model, tuple(seg_inputs), tuple(seg_outputs)))
    return segments


def _names(values: Sequence[onnx.ValueInfoProto]) -> tuple[str, ...]:
    return tuple(v.name for v in values)


def _info(infos: dict[str, onnx.ValueInfoProto], name: str) -> onnx.ValueInfoProto:
    if name not in infos:
        raise ModelBuildError(f"cannot infer the type of tensor {name!r} crossing a shard boundary")
    vi = onnx.ValueInfoProto()
    vi.CopyFrom(infos[name])
    return vi
