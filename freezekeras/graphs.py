"""Reading a frozen ``GraphDef`` and finding its inputs and outputs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from freezekeras.errors import ModelFileError
from freezekeras.h5file import check_input_path
from freezekeras.results import TensorSpec
from freezekeras.tfimport import import_tensorflow

#: Ops that are never a graph's output even when nothing consumes them.
_NOT_OUTPUTS = {"Const", "NoOp", "Placeholder", "PlaceholderWithDefault", "Assert", "VarHandleOp"}


def read_graph_def(path: Path, *, verbose: bool = False) -> Any:
    """Read a ``GraphDef`` from a binary ``.pb`` or a protobuf text file.

    Raises:
        UsageError: The path is missing or a directory.
        ModelFileError: The file is neither a binary nor a text GraphDef.
    """
    check_input_path(path)
    data = path.read_bytes()
    if not data:
        raise ModelFileError(f"{path}: the file is empty. Convert the model again.")
    tf = import_tensorflow(verbose=verbose)
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(data)
    except Exception:  # protobuf's DecodeError, or a RuntimeError from its C++ core
        graph_def.Clear()
    if not graph_def.node and _looks_like_text(data):
        from google.protobuf import text_format

        try:
            text_format.Parse(data.decode("utf-8"), graph_def)
        except (text_format.ParseError, UnicodeDecodeError):
            graph_def.Clear()
    if not graph_def.node:
        raise ModelFileError(
            f"{path}: is not a TensorFlow GraphDef (no nodes could be read). "
            "Pass a frozen graph (.pb or .pbtxt) or a Keras .h5 model."
        )
    return graph_def


def graph_inputs_outputs(graph_def: Any) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Find a frozen graph's inputs (placeholders) and outputs (nodes nothing consumes).

    Constants, no-ops and placeholders are never outputs. Every output of an
    unconsumed node is listed (``op``, ``op:1``, ...). Dtypes and shapes come
    from importing the graph into TensorFlow; for a graph this TensorFlow
    cannot import (ops it lacks), from the nodes' attributes.

    Returns:
        ``(inputs, outputs)``, each in the graph's node order.
    """
    tf = import_tensorflow()
    consumed = {op_name(inp) for node in graph_def.node for inp in node.input}
    input_names = [n.name for n in graph_def.node if n.op == "Placeholder"]
    output_names = [
        n.name for n in graph_def.node if n.name not in consumed and n.op not in _NOT_OUTPUTS
    ]
    graph = tf.Graph()
    try:
        with graph.as_default():
            tf.import_graph_def(graph_def, name="")
    except (ValueError, tf.errors.OpError):  # unknown ops, or a graph that does not validate
        nodes = {node.name: node for node in graph_def.node}
        return (tuple(_spec_from_attrs(tf, nodes[name]) for name in input_names),
                tuple(_spec_from_attrs(tf, nodes[name]) for name in output_names))
    outputs = [
        _tensor_spec(graph, name, index)
        for name in output_names
        for index in range(max(1, len(graph.get_operation_by_name(name).outputs)))
    ]
    return tuple(_tensor_spec(graph, name) for name in input_names), tuple(outputs)


def tensor_name(name: str) -> str:
    """``op`` -> ``op:0``; ``op:1`` stays as it is."""
    return name if ":" in name else f"{name}:0"


def op_name(name: str) -> str:
    """The node a tensor or node input names: ``op:1`` -> ``op``, ``^op`` (a control input) -> ``op``."""
    return name.lstrip("^").split(":")[0]


def run_session(session: Any, fetches: Sequence[str], feeds: dict[str, Any]) -> list[Any]:
    """``session.run`` by node names (``op`` or ``op:N``) for both fetches and feeds."""
    return session.run([tensor_name(name) for name in fetches],
                       feed_dict={tensor_name(name): value for name, value in feeds.items()})


def op_histogram(graph_def: Any) -> dict[str, int]:
    """Count the nodes of each op type, most frequent first."""
    return dict(Counter(node.op for node in graph_def.node).most_common())


def tensor_spec(tensor: Any, *, layer: str | None = None) -> TensorSpec:
    """A graph tensor's node name (``op``, or ``op:N`` for an op's later outputs), dtype and shape."""
    shape = tensor.shape
    dims = None if shape.rank is None else tuple(shape.as_list())
    name = tensor.op.name if tensor.value_index == 0 else tensor.name
    return TensorSpec(name=name, dtype=tensor.dtype.name, shape=dims, layer=layer)


def _tensor_spec(graph: Any, name: str, index: int = 0) -> TensorSpec:
    op = graph.get_operation_by_name(name)
    if not op.outputs:
        return TensorSpec(name=name, dtype="none", shape=None)
    return tensor_spec(op.outputs[index])


def _spec_from_attrs(tf: Any, node: Any) -> TensorSpec:
    """A node's dtype (``dtype`` or ``T`` attribute) and shape (``shape`` attribute), where present."""
    dtype = "unknown"
    for key in ("dtype", "T"):
        if key in node.attr and node.attr[key].type:
            dtype = tf.dtypes.as_dtype(node.attr[key].type).name
            break
    shape = None
    if "shape" in node.attr and not node.attr["shape"].shape.unknown_rank:
        shape = tuple(None if dim.size < 0 else dim.size for dim in node.attr["shape"].shape.dim)
    return TensorSpec(name=node.name, dtype=dtype, shape=shape)


def _looks_like_text(data: bytes) -> bool:
    head = data[:4096]
    return b"node" in head and all(b >= 9 for b in head)
