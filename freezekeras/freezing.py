"""Freezing a session's graph into one self-contained ``GraphDef`` (Morgan style)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from freezekeras.errors import ConversionError, GraphTooLargeError, error_summary
from freezekeras.graphs import op_name
from freezekeras.lint import leftover_lines
from freezekeras.tfimport import import_tensorflow

#: protobuf cannot parse a message of 2 GiB or more; such a file cannot be read back.
PROTOBUF_LIMIT = 2**31

#: Lookup tables are filled by an initializer op that a frozen graph cannot run by itself.
_TABLE_OPS = {"HashTable", "HashTableV2", "MutableHashTable", "MutableHashTableV2",
              "MutableHashTableOfTensors", "MutableHashTableOfTensorsV2", "MutableDenseHashTable",
              "MutableDenseHashTableV2", "AnonymousHashTable", "AnonymousMutableHashTable"}


def freeze_graph(session: Any, graph: Any, output_names: Sequence[str], *,
                 source: Path | str = "the model") -> Any:
    """Return the frozen ``GraphDef`` computing ``output_names`` in ``session``.

    Variables become constants (``convert_variables_to_constants``), device
    placements are cleared, training-only nodes are removed
    (``remove_training_nodes``) and the graph is pruned to what the outputs
    need (``extract_sub_graph``). The function library and the ``versions``
    field, which ``remove_training_nodes`` drops, are kept, so graphs with
    ``While`` loops (recurrent layers) still load.

    Args:
        session: A ``tf.compat.v1.Session`` holding the variables' values.
        graph: The ``tf.Graph`` to freeze.
        output_names: Node names (``op`` or ``op:index``) to keep.
        source: The model file, named in the error message.

    Returns:
        A ``GraphDef`` with no variables, no devices and only the nodes the
        outputs need.

    Raises:
        ConversionError: TensorFlow could not freeze the graph, or the outputs
            need a lookup table (its initializer would not be in the graph).
    """
    tf = import_tensorflow()
    graph_util = tf.compat.v1.graph_util
    nodes = [op_name(name) for name in output_names]
    graph_def = graph.as_graph_def()
    for node in graph_def.node:
        node.device = ""
    try:
        frozen = graph_util.convert_variables_to_constants(session, graph_def, nodes)
        cleaned = graph_util.remove_training_nodes(frozen, protected_nodes=nodes)
        pruned = graph_util.extract_sub_graph(cleaned, nodes)
    except (ValueError, TypeError, AssertionError, tf.errors.OpError) as exc:
        raise ConversionError(
            f"{source}: TensorFlow could not freeze the graph ({error_summary(exc)}). "
            "Rerun with --debug and report it."
        ) from exc
    pruned.library.CopyFrom(frozen.library)
    pruned.versions.CopyFrom(frozen.versions)
    tables = [node.name for node in pruned.node if node.op in _TABLE_OPS]
    if tables:
        raise ConversionError(
            f"{source}: the model uses lookup tables ({', '.join(tables[:3])}; StringLookup, "
            "IntegerLookup or TextVectorization layers), which a frozen graph cannot fill by itself. "
            "Do the lookup before feeding the graph: save the model without those layers and convert that."
        )
    return pruned


def order_nodes(graph_def: Any, *, first: Sequence[str], last: Sequence[str]) -> None:
    """Reorder ``graph_def``'s nodes in place: ``first`` at the start, ``last`` at the end.

    Node order carries no meaning to TensorFlow, but tools that list a graph's
    inputs and outputs (``freezekeras inspect`` among them) list them in node
    order; this puts them in the Keras model's order.
    """
    head = [op_name(name) for name in first]
    tail = [op_name(name) for name in last if op_name(name) not in head]
    rank = {name: i - len(head) for i, name in enumerate(head)}
    rank.update({name: len(graph_def.node) + i for i, name in enumerate(tail)})
    nodes = sorted(graph_def.node, key=lambda node: rank.get(node.name, 0))
    copies = [type(node)() for node in nodes]
    for copy, node in zip(copies, nodes):
        copy.CopyFrom(node)
    del graph_def.node[:]
    graph_def.node.extend(copies)


def record_output_shapes(graph_def: Any, graph: Any, names: Sequence[str]) -> None:
    """Write the ``_output_shapes`` attribute of the nodes ``names`` (``op`` or ``op:N``), in place.

    TensorFlow writes this attribute itself with ``as_graph_def(add_shapes=True)``
    and ignores it on import; it lets ``freezekeras inspect`` report the output
    shapes without importing TensorFlow to infer them.
    """
    wanted = {op_name(name) for name in names}
    for node in graph_def.node:
        if node.name in wanted:
            shapes = node.attr["_output_shapes"].list.shape
            del shapes[:]
            for tensor in graph.get_operation_by_name(node.name).outputs:
                shapes.add().CopyFrom(tensor.shape.as_proto())


def find_leftovers(graph_def: Any) -> list[str]:
    """List what a serving runtime may reject in a frozen graph, one line per kind.

    The error-level findings of :func:`freezekeras.lint.lint` (variables,
    random ops, learning-phase nodes, training switches, device strings,
    unused placeholders), function bodies included; empty when there is none.
    """
    return leftover_lines(graph_def)


def serialize(graph_def: Any, *, text: bool, source: Path, limit: int = PROTOBUF_LIMIT) -> bytes:
    """Return the bytes of ``graph_def`` to write, binary or protobuf text.

    The same graph always gives the same bytes (attribute maps are written sorted).

    Args:
        graph_def: The frozen ``GraphDef``.
        text: Write protobuf text format instead of binary.
        source: The model file, named in the error message.
        limit: Refuse a graph of this many bytes or more.

    Raises:
        GraphTooLargeError: The graph reaches protobuf's 2 GiB limit.
    """
    size = graph_def.ByteSize()
    if size >= limit:
        raise GraphTooLargeError(
            f"{source}: the frozen graph is {size / 2**30:.2f} GiB, at or over protobuf's 2 GiB limit, "
            "so no runtime could read it back. Export a SavedModel instead, or shrink the model."
        )
    if text:
        from google.protobuf import text_format

        return text_format.MessageToString(graph_def).encode("utf-8")
    return graph_def.SerializeToString(deterministic=True)  # map fields (attrs) sorted: stable bytes
