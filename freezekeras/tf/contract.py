"""A serving contract on a frozen graph: fixed input shapes propagated to the outputs, and renamed nodes.

The options are parsed and checked in :mod:`freezekeras.contract`; this module
changes the ``GraphDef`` (either route's, after freezing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from freezekeras.graphdef.lint import op_name, renamed_input
from freezekeras.results import TensorSpec
from freezekeras.tf.freezing import record_output_shapes
from freezekeras.tf.imports import import_tensorflow
from freezekeras.tf.tensors import tensor_spec


def fix_input_shapes(graph_def: Any, shapes: Mapping[str, Sequence[int | None]],
                     outputs: Sequence[TensorSpec]) -> tuple[Any, tuple[TensorSpec, ...]]:
    """Set the placeholders' ``shape`` and let TensorFlow's shape inference carry it to the outputs.

    The graph is imported with the new placeholder shapes (TensorFlow infers every
    node's shape on import) and the outputs' ``_output_shapes`` are written from
    what it inferred, so that ``inspect`` shows them.

    Args:
        graph_def: The frozen graph; changed in place and returned.
        shapes: Full shapes by placeholder name, ``None`` where unknown.
        outputs: The graph's outputs.

    Returns:
        The graph and the outputs with their propagated shapes.
    """
    tf = import_tensorflow()
    wanted = {op_name(spec.name) for spec in outputs}
    for node in graph_def.node:
        if node.name in shapes:
            node.attr["shape"].shape.CopyFrom(tf.TensorShape(list(shapes[node.name])).as_proto())
        if (node.name in shapes or node.name in wanted) and "_output_shapes" in node.attr:
            del node.attr["_output_shapes"]
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    names = [spec.name for spec in outputs]
    record_output_shapes(graph_def, graph, names)
    propagated = []
    for spec in outputs:
        tensor = graph.get_tensor_by_name(spec.name if ":" in spec.name else f"{spec.name}:0")
        new = tensor_spec(tensor)
        propagated.append(TensorSpec(spec.name, spec.dtype, _merged(spec.shape, new.shape), spec.layer, spec.node))
    return graph_def, tuple(propagated)


def _merged(old: tuple[int | None, ...] | None, new: tuple[int | None, ...] | None) -> tuple[int | None, ...] | None:
    """The inferred shape, with what the model knew where inference lost it (a ``While`` loop's outputs)."""
    if new is None or old is None or len(old) != len(new):
        return new if new is not None else old
    return tuple(n if n is not None else o for o, n in zip(old, new))


def rename_nodes(graph_def: Any, inputs: Mapping[str, str], outputs: Mapping[str, str]) -> dict[str, str]:
    """Rename input placeholders and output nodes, in place; every reference follows.

    An output given as ``op:N`` (an op's later output), or one whose op is an
    input too, gets an ``Identity`` of the new name instead.

    Returns:
        ``{old spec name: new name}`` for every renamed input and output.
    """
    tf = import_tensorflow()
    renames = {op_name(old): new for old, new in inputs.items()}
    identities = {}
    for old, new in outputs.items():
        if ":" in old and not old.endswith(":0") or op_name(old) in renames:
            identities[old] = new
        else:
            renames[op_name(old)] = new
    for node in graph_def.node:
        node.name = renames.get(node.name, node.name)
        node.input[:] = [renamed_input(name, renames) for name in node.input]
        if "_class" in node.attr:  # colocation: loc:@node
            values = node.attr["_class"].list.s
            values[:] = [_renamed_location(value, renames) for value in values]
    if identities:
        graph = tf.Graph()
        with graph.as_default():
            tf.graph_util.import_graph_def(graph_def, name="")
        for old, new in identities.items():
            source = renamed_input(old, renames)
            tensor = graph.get_tensor_by_name(source if ":" in source else f"{source}:0")
            node = graph_def.node.add(name=new, op="Identity", input=[source])
            node.attr["T"].type = tensor.dtype.as_datatype_enum
            node.attr["_output_shapes"].list.shape.add().CopyFrom(tensor.shape.as_proto())
    return {**{old: new for old, new in inputs.items()}, **{old: new for old, new in outputs.items()}}


def _renamed_location(value: bytes, renames: Mapping[str, str]) -> bytes:
    text = value.decode("utf-8", "replace")
    if text.startswith("loc:@") and text[5:] in renames:
        return f"loc:@{renames[text[5:]]}".encode()
    return value
