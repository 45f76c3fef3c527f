"""Freezing a session's graph into one self-contained ``GraphDef`` (Morgan style)."""

from __future__ import annotations

import contextlib
import gc
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from freezekeras.errors import ConversionError, GraphTooLargeError, error_summary
from freezekeras.graphdef.lint import leftover_lines, op_name
from freezekeras.tf.imports import import_tensorflow

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
        with _young_garbage_collected():  # the converter's own graph, held in reference cycles
            frozen = graph_util.convert_variables_to_constants(session, graph_def, nodes)
        del graph_def
        _remove_training_nodes_and_prune(graph_util, frozen, nodes)
    except (ValueError, TypeError, AssertionError, tf.errors.OpError) as exc:
        raise ConversionError(
            f"{source}: TensorFlow could not freeze the graph ({error_summary(exc)}). "
            "Rerun with --debug and report it."
        ) from exc
    check_tables(frozen, source)
    return frozen


def _remove_training_nodes_and_prune(graph_util: Any, graph_def: Any, nodes: Sequence[str]) -> None:
    """``remove_training_nodes`` then ``extract_sub_graph`` on ``graph_def``, in place, its constants never copied.

    Both copy every node they keep, a large model's weights included (VGG16: 553 MB five times over,
    two seconds); neither looks at a constant's value. So they run on a skeleton of the graph, whose
    constants hold no values, and what they decide (which nodes stay, and their inputs) is applied to
    the graph itself. Its function library and ``versions``, which ``remove_training_nodes`` drops,
    stay where they are.
    """
    skeleton = type(graph_def)()
    for node in graph_def.node:
        copy = skeleton.node.add()
        if node.op == "Const":
            copy.name, copy.op, copy.device = node.name, node.op, node.device
            copy.input.extend(node.input)
            for key, value in node.attr.items():
                if key != "value":
                    copy.attr[key].CopyFrom(value)
        else:
            copy.CopyFrom(node)
    cleaned = graph_util.remove_training_nodes(skeleton, protected_nodes=nodes)
    decided = {node.name: node for node in graph_util.extract_sub_graph(cleaned, nodes).node}
    for index in reversed(range(len(graph_def.node))):  # both keep the nodes' order
        if graph_def.node[index].name not in decided:
            del graph_def.node[index]
    for node in graph_def.node:
        inputs = decided[node.name].input
        if list(node.input) != list(inputs):
            del node.input[:]
            node.input.extend(inputs)


@contextlib.contextmanager
def _young_garbage_collected() -> Iterator[None]:
    """Collect the reference cycles made within the block as it ends, at the cost of the objects it made alone.

    ``convert_variables_to_constants`` leaves a graph of node and edge objects, in reference
    cycles, that holds a copy of the frozen graph (a large model's weights once more) until the
    garbage collector runs. Automatic collections are paused within the block, so that the
    objects it makes all stay in the youngest generation, which is then collected alone: a
    small share of a full collection, which walks every object TensorFlow made since its import.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        gc.collect(0)


def check_tables(graph_def: Any, source: Path | str) -> None:
    """Raise :class:`ConversionError` if the graph needs a lookup table, which a frozen graph cannot fill."""
    tables = [node.name for node in graph_def.node if node.op in _TABLE_OPS]
    if tables:
        raise ConversionError(
            f"{source}: the model uses lookup tables ({', '.join(tables[:3])}; StringLookup, "
            "IntegerLookup or TextVectorization layers), which a frozen graph cannot fill by itself. "
            "Do the lookup before feeding the graph: save the model without those layers and convert that."
        )


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
    # Sorted in place (a stable sort): the nodes move, their constants are not copied (VGG16: 553 MB, a second).
    graph_def.node.sort(key=lambda node: rank.get(node.name, 0))


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


def stable_function_names(graph_def: Any) -> None:
    """Rename the function library's functions in place, so that the names do not depend on the process.

    TensorFlow ends each function's name with a process-wide counter
    (``lstm_while_body_frozen_1921``): a model converted after another in one
    process (a batch) got other names, and other bytes, than converted alone.
    Each function becomes ``<name without the counter>_<n>``, ``n`` counting
    from 1 in the counters' order, the library is sorted by the new names, and
    every reference (``While``/``If``/call attributes, gradients) follows.
    """
    library = graph_def.library
    if not library.function:
        return
    old = sorted((function.signature.name for function in library.function), key=_counter_order)
    mapping = {name: f"{_COUNTER.sub('', name)}_{index}" for index, name in enumerate(old, 1)}
    functions = [type(function)() for function in library.function]
    for copy, function in zip(functions, library.function):
        copy.CopyFrom(function)
    functions.sort(key=lambda function: mapping[function.signature.name])
    for function in functions:
        function.signature.name = mapping[function.signature.name]
        _rename_calls(function.node_def, mapping)
        _stable_argument_names(function)
    _rename_calls(graph_def.node, mapping)
    for gradient in library.gradient:
        gradient.function_name = mapping.get(gradient.function_name, gradient.function_name)
        gradient.gradient_func = mapping.get(gradient.gradient_func, gradient.gradient_func)
    del library.function[:]
    library.function.extend(functions)


_COUNTER = re.compile(r"_\d+$")


#: A counter inside an argument's name: ``gru_while_cond_1946___redundant_placeholder0``.
_ARGUMENT_COUNTER = re.compile(r"_\d+(?=___)")


def _stable_argument_names(function: Any) -> None:
    """Drop the counter from argument names that carry one, and from the references to them."""
    renamed = {arg.name: _ARGUMENT_COUNTER.sub("", arg.name) for arg in function.signature.input_arg}
    renamed = {old: new for old, new in renamed.items() if old != new}
    if not renamed or len(set(renamed.values())) < len(renamed):
        return
    for arg in function.signature.input_arg:
        arg.name = renamed.get(arg.name, arg.name)
    for node in function.node_def:
        for index, name in enumerate(node.input):
            control, tensor = ("^", name[1:]) if name.startswith("^") else ("", name)
            head, sep, tail = tensor.partition(":")
            if head in renamed:
                node.input[index] = f"{control}{renamed[head]}{sep}{tail}"


def _counter_order(name: str) -> tuple[int, str]:
    counter = _COUNTER.search(name)
    return (int(counter.group()[1:]) if counter else -1, name)


def _rename_calls(nodes: Any, mapping: dict[str, str]) -> None:
    for node in nodes:
        for value in node.attr.values():
            _rename_attr(value, mapping)


def _rename_attr(value: Any, mapping: dict[str, str]) -> None:
    """Rename the functions an ``AttrValue`` names (``func``, ``list.func``, and their own attributes)."""
    kind = value.WhichOneof("value")
    functions = [value.func] if kind == "func" else list(value.list.func) if kind == "list" else []
    for function in functions:
        function.name = mapping.get(function.name, function.name)
        for inner in function.attr.values():
            _rename_attr(inner, mapping)


def find_leftovers(graph_def: Any) -> list[str]:
    """List what a serving runtime may reject in a frozen graph, one line per kind.

    The error-level findings of :func:`freezekeras.graphdef.lint.lint` (variables,
    random ops, learning-phase nodes, training switches, device strings,
    unused placeholders), function bodies included; empty when there is none.
    """
    return leftover_lines(graph_def)


def serialize(graph_def: Any, *, text: bool, source: Path, limit: int = PROTOBUF_LIMIT) -> Iterator[bytes]:
    """Yield the bytes of ``graph_def`` to write, binary or protobuf text, piece by piece.

    A binary graph comes node by node, each as the ``node`` field it is in the whole
    message, then its other fields: together the bytes of
    ``SerializeToString(deterministic=True)`` (attribute maps written sorted, so the
    same graph always gives the same bytes), without one buffer of the whole graph,
    which upb grows by doubling (for VGG16's 553 MB: 1 GiB allocated, 0.4 s spent).

    Args:
        graph_def: The frozen ``GraphDef``.
        text: Write protobuf text format instead of binary (one piece).
        source: The model file, named in the error message.
        limit: Refuse a graph of this many bytes or more.

    Raises:
        GraphTooLargeError: The graph reaches protobuf's 2 GiB limit (raised as
            soon as the pieces so far reach it: a writer drops what it was given).
    """
    from google.protobuf.message import EncodeError

    if text:
        size = _byte_size(graph_def)
        if size >= limit:
            raise _too_large(size, source)
        from google.protobuf import text_format

        yield text_format.MessageToString(graph_def).encode("utf-8")
        return
    size = 0
    try:
        for piece in _binary_pieces(graph_def):
            size += len(piece)
            if size >= limit:
                raise _too_large(size, source, at_least=True)
            yield piece
    except EncodeError:  # upb encodes no message of 2 GiB or more: here, one node
        raise _too_large(max(size, limit), source, at_least=True) from None


def _binary_pieces(graph_def: Any) -> Iterator[bytes]:
    """The binary ``GraphDef`` in pieces: each node's field (its tag, its length, the node), then the
    other fields (the library, the versions), which follow the nodes in the field-number order upb writes."""
    for node in graph_def.node:
        data = node.SerializeToString(deterministic=True)
        yield _NODE_TAG + _varint(len(data))
        yield data
    rest = type(graph_def)()
    for field, value in graph_def.ListFields():
        if field.name != "node":
            if field.message_type is None:
                setattr(rest, field.name, value)
            else:
                getattr(rest, field.name).CopyFrom(value)
    yield rest.SerializeToString(deterministic=True)


#: The tag of ``GraphDef.node``: field 1, length-delimited.
_NODE_TAG = bytes([1 << 3 | 2])


def _varint(value: int) -> bytes:
    """``value`` as a protobuf varint: seven bits a byte, lowest first, the high bit set on all but the last."""
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _too_large(size: int, source: Path, *, at_least: bool = False) -> GraphTooLargeError:
    return GraphTooLargeError(
        f"{source}: the frozen graph is {'at least ' if at_least else ''}{size / 2**30:.2f} GiB, at or over "
        "protobuf's 2 GiB limit, so no runtime could read it back. Export a SavedModel instead, or shrink the model."
    )


def _byte_size(graph_def: Any) -> int:
    """The serialized size of ``graph_def``; past 2 GiB, where upb's ``ByteSize()`` fails, its parts' sum."""
    from google.protobuf.message import EncodeError

    try:
        return graph_def.ByteSize()
    except EncodeError:
        return sum(node.ByteSize() for node in graph_def.node) + graph_def.library.ByteSize()
