"""Reading a frozen ``GraphDef`` and finding its inputs and outputs."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from freezekeras.errors import ModelFileError
from freezekeras.graphdef.lint import lint, output_nodes
from freezekeras.graphdef.messages import DTYPE_CODES, DTYPE_SIZES, GraphDef, dtype_name
from freezekeras.paths import check_input_path
from freezekeras.results import TensorSpec

#: DataTypes whose constants count as parameters: float16, float32, float64, bfloat16.
_FLOAT_TYPES = {DTYPE_CODES[name] for name in ("float32", "float64", "bfloat16", "float16")}
#: Attributes that give a node's output type, most specific first.
_DTYPE_ATTRS = ("dtype", "output_type", "out_type", "DstT", "Tout", "output_types", "T", "type")


def read_graph_def(path: Path, *, message: Any = None) -> Any:
    """Read a ``GraphDef`` from a binary ``.pb`` or a protobuf text file, with protobuf alone.

    Args:
        path: The file.
        message: An empty ``GraphDef`` to fill, e.g. TensorFlow's own
            ``tf.compat.v1.GraphDef()``; default :func:`freezekeras.graphdef.messages.GraphDef`,
            which needs no TensorFlow.

    Raises:
        UsageError: The path is missing or a directory.
        ModelFileError: The file is neither a binary nor a text GraphDef.
    """
    check_input_path(path)
    return parse_graph_def(path.read_bytes(), path, message=message)


def parse_graph_def(data: bytes, path: Path, *, message: Any = None) -> Any:
    """Parse a ``GraphDef`` from the bytes of a binary ``.pb`` or a protobuf text file.

    Args:
        data: The bytes.
        path: Where they come from, for the errors.
        message: An empty ``GraphDef`` to fill, as for :func:`read_graph_def`.

    Raises:
        ModelFileError: The bytes are neither a binary nor a text GraphDef.
    """
    if not data:
        raise ModelFileError(f"{path}: the file is empty. Convert the model again.")
    graph_def = GraphDef() if message is None else message
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
    unconsumed node is listed (``op``, ``op:1``, ...). Read from the nodes'
    attributes, without TensorFlow: dtypes from ``dtype``/``T``/...,
    input shapes from the placeholders' ``shape``, output shapes (and the
    number of outputs) from ``_output_shapes``, which ``convert`` writes on
    its outputs (and TensorFlow with ``add_shapes=True``); ``None`` where absent.

    Returns:
        ``(inputs, outputs)``, each in the graph's node order.
    """
    nodes = {node.name: node for node in graph_def.node}
    inputs = tuple(TensorSpec(name=node.name, dtype=_dtype(node, 0), shape=_placeholder_shape(node))
                   for node in graph_def.node if node.op == "Placeholder")
    outputs = tuple(spec for name in output_nodes(graph_def) for spec in _output_specs(nodes[name]))
    return inputs, outputs


def graph_details(graph_def: Any) -> dict[str, Any]:
    """Counts, constants, function library and lint of a GraphDef, as ``inspect --json`` gives them."""
    params, const_bytes = _constant_sizes(graph_def)
    return {
        "node_count": len(graph_def.node),
        "op_histogram": op_histogram(graph_def),
        "param_count": params,
        "const_bytes": const_bytes,
        "functions": [{"name": function.signature.name, "node_count": len(function.node_def)}
                      for function in graph_def.library.function],
        "lint": [finding.to_json() for finding in lint(graph_def)],
    }


def tensor_name(name: str) -> str:
    """``op`` -> ``op:0``; ``op:1`` stays as it is."""
    return name if ":" in name else f"{name}:0"


def op_histogram(graph_def: Any) -> dict[str, int]:
    """Count the nodes of each op type, most frequent first."""
    return dict(Counter(node.op for node in graph_def.node).most_common())


def _output_specs(node: Any) -> list[TensorSpec]:
    shapes = list(node.attr["_output_shapes"].list.shape) if "_output_shapes" in node.attr else []
    count = len(shapes) or _output_count(node)
    return [TensorSpec(name=node.name if i == 0 else f"{node.name}:{i}", dtype=_dtype(node, i),
                       shape=_shape(shapes[i]) if i < len(shapes) else None) for i in range(count)]


def _output_count(node: Any) -> int:
    """How many outputs a node has, from its attributes (``num_split``, type lists); 1 when they do not say."""
    for key in ("num_split", "num"):
        if key in node.attr and node.attr[key].i > 0:
            return node.attr[key].i
    for key in ("T", "Tout", "output_types"):
        if key in node.attr and len(node.attr[key].list.type) > 0:
            return len(node.attr[key].list.type)
    return 1


def _dtype(node: Any, index: int) -> str:
    """The type of output ``index``, from the first type attribute present; ``"unknown"`` if none."""
    for key in _DTYPE_ATTRS:
        if key not in node.attr:
            continue
        value = node.attr[key]
        if value.type:
            return dtype_name(value.type)
        if index < len(value.list.type):
            return dtype_name(value.list.type[index])
    return "unknown"


def _placeholder_shape(node: Any) -> tuple[int | None, ...] | None:
    return _shape(node.attr["shape"].shape) if "shape" in node.attr else None


def _shape(shape: Any) -> tuple[int | None, ...] | None:
    if shape.unknown_rank:
        return None
    return tuple(None if dim.size < 0 else dim.size for dim in shape.dim)


def _constant_sizes(graph_def: Any) -> tuple[int, int]:
    """(elements of floating-point constants, bytes of all constants' values), function bodies included."""
    nodes = [*graph_def.node, *(node for function in graph_def.library.function for node in function.node_def)]
    params = size = 0
    for node in nodes:
        if node.op != "Const" or "value" not in node.attr:
            continue
        tensor = node.attr["value"].tensor
        elements = math.prod(max(dim.size, 0) for dim in tensor.tensor_shape.dim)
        if tensor.dtype in _FLOAT_TYPES:
            params += elements
        if tensor.dtype == DTYPE_CODES["string"]:
            size += sum(len(value) for value in tensor.string_val)
        else:
            size += elements * DTYPE_SIZES.get(tensor.dtype, 0)
    return params, size


def _looks_like_text(data: bytes) -> bool:
    head = data[:4096]
    return b"node" in head and all(b >= 9 for b in head)
