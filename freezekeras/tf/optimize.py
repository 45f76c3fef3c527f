"""Inference simplifications of a frozen graph (``--optimize``) and float16 weights (``--fp16``).

:func:`optimize` uses TensorFlow's own tools: ``optimize_for_inference``'s
``fold_batch_norms`` folds a ``FusedBatchNorm``/``FusedBatchNormV3`` that
follows a ``Conv2D`` or ``DepthwiseConv2dNative`` (with or without a bias in
between) into the convolution's weights and a ``BiasAdd``; then Grappler's
pruning, constant folding, arithmetic and dependency passes fold constants
(a constant ``Mul`` after a ``Conv2D``, as Keras 3's BatchNormalization leaves
it, goes into the weights), drop ``Identity`` chains and ``NoOp`` nodes, and
simplify the ``While`` bodies in the function library. Grappler's remapper,
layout and other passes that emit TensorFlow-internal ops (``_FusedConv2D``...)
are not run: the graph stays loadable by OpenCV, tf2onnx and TFLite.

:func:`to_fp16` stores float32 constants as float16 ``Const`` nodes, each
followed by a ``Cast`` back to float32 under the constant's own name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from freezekeras.graphdef.lint import op_name
from freezekeras.kerasfile.keras3 import unique_names
from freezekeras.tf.grappler import run_passes
from freezekeras.tf.imports import import_tensorflow
from freezekeras.tf.internals import batch_norm_folder

#: The largest ``|fp16 - fp32|`` difference of a graph's outputs ``--fp16`` accepts, relative to the
#: largest ``|output|`` (measured: at most 1.1e-3 on Dense, CNN+BN, MobileNetV2, LSTM and softmax models).
FP16_RELATIVE_ATOL = 1e-2
#: Grappler's passes, in order: none of them emits TensorFlow-internal (``_``) ops.
OPTIMIZE_PASSES = ("pruning", "constfold", "arithmetic", "dependency", "constfold", "pruning")
#: The BatchNorm ops ``fold_batch_norms`` folds into a convolution before them.
BATCH_NORM_OPS = ("BatchNormWithGlobalNormalization", "FusedBatchNorm", "FusedBatchNormV3")
#: The ops ``fold_batch_norms`` looks through between a convolution and its BatchNorm, and the convolutions.
_BIAS_OPS = ("BiasAdd", "Add", "AddV2")
_CONV_OPS = ("Conv2D", "DepthwiseConv2dNative")
#: Grappler rounds at most, until the graph no longer changes (a fixpoint: optimizing again changes nothing).
_MAX_ROUNDS = 4
#: The largest finite float16 value: constants with larger values stay float32.
_FP16_MAX = 65504.0
#: Attributes a node keeps through the rewrite when it keeps its name and op (convert's output shapes).
_KEPT_ATTRS = ("_output_shapes",)


@dataclass(frozen=True)
class OptimizeReport:
    """What :func:`optimize` did to a graph.

    Attributes:
        nodes_before: Top-level nodes of the input graph.
        nodes_after: Top-level nodes of the optimized graph.
        folded_batch_norms: BatchNorm nodes folded into the convolution before them.
        batch_norms_left: BatchNorm nodes (``FusedBatchNorm*``) still in the graph (not after a convolution).
        function_nodes_before: Nodes in the function library's bodies (``While`` loops) before.
        function_nodes_after: The same, after.
        rounds: Grappler rounds run until the graph stopped changing.
    """

    nodes_before: int
    nodes_after: int
    folded_batch_norms: int
    batch_norms_left: int
    function_nodes_before: int
    function_nodes_after: int
    rounds: int

    def to_json(self) -> dict[str, int]:
        """Return the fields as a dict."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class Fp16Report:
    """What :func:`to_fp16` did to a graph.

    Attributes:
        constants_converted: float32 constants now stored as float16 (function bodies included).
        bytes_before: The serialized size of the input graph.
        bytes_after: The serialized size of the converted graph.
    """

    constants_converted: int
    bytes_before: int
    bytes_after: int

    def to_json(self) -> dict[str, int]:
        """Return the fields as a dict."""
        return dict(self.__dict__)


def optimize(graph_def: Any, *, inputs: Sequence[str], outputs: Sequence[str]) -> tuple[Any, OptimizeReport]:
    """Simplify a frozen graph for inference with TensorFlow's own tools.

    BatchNorm folded into the convolution before it, constants folded,
    ``Identity`` chains and ``NoOp`` nodes dropped (see the module's
    docstring). The function library (``While`` bodies) and versions are
    kept; inputs and outputs keep their names, dtypes and shapes. The result is
    a fixpoint: optimizing it again gives the same bytes.

    Args:
        graph_def: A frozen ``tf.compat.v1.GraphDef`` (not changed).
        inputs: The graph's input placeholders (``name`` or ``name:0``).
        outputs: The graph's output tensors (``op`` or ``op:N``).

    Returns:
        The optimized ``GraphDef`` and an :class:`OptimizeReport`.

    Raises:
        ValueError: If an input or output node was lost (a bug to report).
    """
    keep = sorted({op_name(name) for name in (*inputs, *outputs)})
    folded, count = _fold_batch_norms(graph_def, keep)
    optimized, rounds = _simplified_to_fixpoint(folded, graph_def, keep)
    _check_kept(graph_def, optimized, keep)
    report = OptimizeReport(
        nodes_before=len(graph_def.node), nodes_after=len(optimized.node), folded_batch_norms=count,
        batch_norms_left=sum(node.op in BATCH_NORM_OPS for node in optimized.node),
        function_nodes_before=_function_nodes(graph_def), function_nodes_after=_function_nodes(optimized),
        rounds=rounds)
    return optimized, report


def to_fp16(graph_def: Any, *, min_elements: int = 16) -> tuple[Any, Fp16Report]:
    """Store the float32 constants (weights) of a graph as float16, each with a ``Cast`` back to float32.

    A constant ``w`` becomes ``w_fp16`` (``Const``, float16) and ``w``
    (``Cast`` to float32): consumers, inputs and outputs see float32 as before.
    Constants in the function library's bodies are converted too. Left alone:
    constants of other dtypes, those with fewer than ``min_elements`` values
    (scalars, shapes, epsilons) and those with a finite value float16 cannot
    hold (beyond 65504). Run it after :func:`optimize`, whose constant folding
    would fold the casts back.

    Args:
        graph_def: A frozen ``tf.compat.v1.GraphDef`` (not changed).
        min_elements: The fewest values a constant must have to be converted.

    Returns:
        The converted ``GraphDef`` and an :class:`Fp16Report`.
    """
    tf = import_tensorflow()
    converted = tf.compat.v1.GraphDef()
    converted.CopyFrom(graph_def)
    count = _nodes_to_fp16(converted.node, min_elements, None)
    for function in converted.library.function:
        count += _nodes_to_fp16(function.node_def, min_elements, function)
    return converted, Fp16Report(constants_converted=count, bytes_before=graph_def.ByteSize(),
                                 bytes_after=converted.ByteSize())


# --------------------------------------------------------------------------- BatchNorm folding


def _fold_batch_norms(graph_def: Any, keep: Sequence[str]) -> tuple[Any, int]:
    """``fold_batch_norms`` on the BatchNorm nodes it folds safely; the graph and how many were folded.

    The others are hidden from it while it runs (their op renamed, then
    restored): it would rewrite a convolution, bias or weights that something
    else uses too, and break that consumer. It scales the weights one value at
    a time in Python (a minute for ResNet50), so it is given ones in the
    shape of one filter tap instead, and the weights are multiplied by the
    scales it computed with numpy.
    """
    tf = import_tensorflow()
    hidden = tf.compat.v1.GraphDef()
    hidden.CopyFrom(graph_def)
    foldable = _foldable_batch_norms(hidden, keep)
    if not foldable:
        return graph_def, 0
    hidden_ops, weights = {}, {}
    for node in hidden.node:
        if node.op in BATCH_NORM_OPS and node.name not in foldable:
            hidden_ops[node.name], node.op = node.op, f"Hidden{node.op}"
    for conv, constant in foldable.values():
        weights[f"{conv.name}_weights"] = _ones_per_channel(conv, constant)
    folded = batch_norm_folder()(hidden)
    for node in folded.node:
        node.op = hidden_ops.get(node.name, node.op)
        if node.name in weights:
            scales = tf.make_ndarray(node.attr["value"].tensor)
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(weights[node.name] * scales))
    folded.library.CopyFrom(graph_def.library)
    folded.versions.CopyFrom(graph_def.versions)
    return folded, len(foldable)


def _ones_per_channel(conv: Any, constant: Any) -> Any:
    """Replace the weights ``constant`` of ``conv`` by ones of shape ``(1, 1, 1, out)`` (``(1, 1, in, multiplier)``
    for a depthwise convolution), and return its values."""
    tf = import_tensorflow()
    values = tf.make_ndarray(constant.attr["value"].tensor)
    shape = (1, 1, *values.shape[2:]) if conv.op == "DepthwiseConv2dNative" else (1, 1, 1, values.shape[3])
    constant.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.ones(shape, values.dtype)))
    return values


def _foldable_batch_norms(graph_def: Any, keep: Sequence[str]) -> dict[str, tuple[Any, Any]]:
    """The inference BatchNorm nodes after a convolution whose convolution, bias and weights nothing else uses.

    Returns:
        ``{batch norm: (convolution node, weights node)}``.
    """
    nodes = {node.name: node for node in graph_def.node}
    consumers: dict[str, list[str]] = {}
    for node in graph_def.node:
        for reference in node.input:
            consumers.setdefault(op_name(reference), []).append(reference)
    found = {}
    for node in graph_def.node:
        chain = _safe_chain(node, nodes, consumers, set(keep)) if node.op in BATCH_NORM_OPS else None
        if chain is not None:
            found[node.name] = (chain[-1], nodes[op_name(chain[-1].input[1])])
    return found


def _safe_chain(node: Any, nodes: dict[str, Any], consumers: dict[str, list[str]], keep: set[str]) -> list | None:
    """``node``'s :func:`_conv_chain` if folding it changes nothing else, else ``None``."""
    training = "is_training" in node.attr and node.attr["is_training"].b
    if training or any(ref not in (node.name, f"{node.name}:0") for ref in consumers.get(node.name, [])):
        return None  # a training BatchNorm, or its batch statistics (or a control edge) used
    chain = _conv_chain(node, nodes)
    if chain is None:
        return None
    conv, weights = chain[-1], nodes.get(op_name(chain[-1].input[1]))
    if weights is None or weights.op != "Const" or len(consumers.get(weights.name, [])) != 1:
        return None
    if any(step.name in keep or len(consumers.get(step.name, [])) != 1 for step in chain[1:]):
        return None
    return None if {f"{conv.name}_weights", f"{conv.name}_bn_offset"} & nodes.keys() else chain  # names it adds


def _conv_chain(node: Any, nodes: dict[str, Any]) -> list[Any] | None:
    """``[node, bias?, conv]`` as ``fold_batch_norms`` follows it, or ``None`` without a convolution."""
    first = nodes.get(op_name(node.input[0]))
    if first is None:
        return None
    if first.op in _CONV_OPS:
        return [node, first]
    if first.op not in _BIAS_OPS:
        return None
    for conv_input, bias_input in ((0, 1), (1, 0)):
        conv, bias = (nodes.get(op_name(first.input[index])) for index in (conv_input, bias_input))
        if conv is not None and conv.op in _CONV_OPS:
            return [node, first, conv] if bias is not None and bias.op == "Const" else None
    return None


# --------------------------------------------------------------------------- Grappler


def _simplified_to_fixpoint(graph_def: Any, original: Any, keep: Sequence[str]) -> tuple[Any, int]:
    """Grappler rounds until the graph's bytes stop changing (at most :data:`_MAX_ROUNDS`)."""
    current = _simplified(graph_def, original, keep)
    for rounds in range(1, _MAX_ROUNDS):
        following = _simplified(current, original, keep)
        if following.SerializeToString(deterministic=True) == current.SerializeToString(deterministic=True):
            return current, rounds
        current = following
    return current, _MAX_ROUNDS


def _simplified(graph_def: Any, original: Any, keep: Sequence[str]) -> Any:
    """One Grappler round of :data:`OPTIMIZE_PASSES`, keeping the ``keep`` nodes and ``original``'s attributes."""
    simplified = run_passes(graph_def, OPTIMIZE_PASSES, keep)
    if not simplified.library.function and graph_def.library.function:
        simplified.library.CopyFrom(graph_def.library)
    simplified.versions.CopyFrom(original.versions)
    _restore_attrs(simplified, original, keep)
    return simplified


def _restore_attrs(graph_def: Any, original: Any, keep: Sequence[str]) -> None:
    """Put back :data:`_KEPT_ATTRS` on the ``keep`` nodes and those that kept their op; empty the devices."""
    before = {node.name: node for node in original.node}
    for node in graph_def.node:
        node.device = ""
        old = before.get(node.name)
        if old is None or (old.op != node.op and node.name not in keep):
            continue
        for key in _KEPT_ATTRS:
            if key in old.attr:
                node.attr[key].CopyFrom(old.attr[key])


def _check_kept(original: Any, optimized: Any, keep: Sequence[str]) -> None:
    before = {node.name: node for node in original.node}
    after = {node.name: node for node in optimized.node}
    lost = [name for name in keep if name in before and name not in after]
    changed = [name for name in keep if name in after and before[name].op == "Placeholder"
               and after[name].op != "Placeholder"]
    if lost or changed:
        raise ValueError(f"optimizing the graph lost or changed the nodes {', '.join(lost + changed)}")


def _function_nodes(graph_def: Any) -> int:
    return sum(len(function.node_def) for function in graph_def.library.function)


def internal_ops(graph_def: Any) -> set[str]:
    """The TensorFlow-internal ops (named ``_...``) of a graph, function bodies included: none after :func:`optimize`."""
    nodes: Iterable[Any] = [*graph_def.node, *(node for function in graph_def.library.function
                                                for node in function.node_def)]
    return {node.op for node in nodes if node.op.startswith("_")}


# --------------------------------------------------------------------------- float16


def _nodes_to_fp16(nodes: Any, min_elements: int, function: Any) -> int:
    """Convert the float32 constants among ``nodes`` (a repeated field, rewritten in place); how many."""
    taken = {node.name for node in nodes}
    rewritten, casts = [], []
    for node in nodes:
        half = _half_constant(node, min_elements, taken)
        if half is not None:
            rewritten.append(half)
            casts.append(node.name)
            _make_cast(node, half.name if function is None else f"{half.name}:output:0")
        rewritten.append(node)
    if casts:
        copies = [type(node)() for node in rewritten]
        for copy, node in zip(copies, rewritten):
            copy.CopyFrom(node)
        del nodes[:]
        nodes.extend(copies)
    if function is not None and casts:
        _rename_outputs(function, set(casts))
    return len(casts)


def _half_constant(node: Any, min_elements: int, taken: set[str]) -> Any:
    """The float16 ``Const`` that replaces ``node``, or ``None`` when ``node`` stays as it is."""
    tf = import_tensorflow()
    if node.op != "Const" or node.attr["dtype"].type != tf.float32.as_datatype_enum:
        return None
    values = tf.make_ndarray(node.attr["value"].tensor)
    finite = values[abs(values) < float("inf")]
    if values.size < min_elements or (finite.size and abs(finite).max() > _FP16_MAX):
        return None
    name = _unique(f"{node.name}_fp16", taken)
    half = type(node)(name=name, op="Const", input=[ref for ref in node.input if ref.startswith("^")])
    half.attr["dtype"].type = tf.float16.as_datatype_enum
    half.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(values.astype("float16")))
    return half


def _make_cast(node: Any, source: str) -> None:
    """Turn the constant ``node`` into a ``Cast`` of ``source`` (float16) to float32, keeping its output shapes.

    ``source`` is the float16 constant's name, ``name:output:0`` in a function body.
    """
    tf = import_tensorflow()
    shapes = node.attr["_output_shapes"] if "_output_shapes" in node.attr else None
    kept = type(shapes)() if shapes is not None else None
    if kept is not None:
        kept.CopyFrom(shapes)
    node.op = "Cast"
    node.ClearField("attr")
    del node.input[:]
    node.input.append(source)
    node.attr["SrcT"].type = tf.float16.as_datatype_enum
    node.attr["DstT"].type = tf.float32.as_datatype_enum
    node.attr["Truncate"].b = False
    if kept is not None:
        node.attr["_output_shapes"].CopyFrom(kept)


def _rename_outputs(function: Any, casts: set[str]) -> None:
    """In a function body, ``w:output:0`` (a Const's output) becomes ``w:y:0`` (a Cast's) for the converted ``w``."""
    def renamed(reference: str) -> str:
        name, _, rest = reference.partition(":")
        if name.lstrip("^") in casts and rest.startswith("output:"):
            return f"{name}:y:{rest.split(':', 1)[1]}"
        return reference

    for node in function.node_def:
        node.input[:] = [renamed(reference) for reference in node.input]
    for key, value in list(function.ret.items()):
        function.ret[key] = renamed(value)


def _unique(name: str, taken: set[str]) -> str:
    free = unique_names([name], reserved=taken)[0]
    taken.add(free)
    return free
