"""What each serving runtime cannot take in a frozen graph: ``--target`` checks, without TensorFlow.

Each :class:`Gap` is a kind of node one or more runtimes refuse, found by
looking at the graph alone; ``convert --target`` refuses to write a graph with
a gap of its runtime, ``inspect --check --target`` reports them. Every gap is
proven by a test that shows the runtime itself refusing such a graph
(``tests/test_targets.py``), and the serving tests show the graphs
``--target`` writes running there. A graph with no gap may still meet an op a
runtime lacks that is not listed here: the list holds what freezekeras' own
graphs were seen to need.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from freezekeras.graphdef.lint import ERROR, Finding, all_nodes, op_name

#: The runtimes ``--target`` knows (the same as :data:`freezekeras.results.TARGET_NAMES`), with how messages name them.
TARGETS = {
    "tf": "TensorFlow (Python or C API)",
    "opencv": "OpenCV's dnn module",
    "onnx": "tf2onnx and ONNX runtimes",
    "openvino": "OpenVINO",
    "tflite": "TensorFlow Lite",
}
LOOP_OPS = {"While", "StatelessWhile"}
GATHER_OPS = {"GatherV2", "Gather", "ResourceGather"}
LIST_OPS = {"TensorListReserve", "EmptyTensorList", "TensorListFromTensor"}
_DT_HALF = 19
_DT_INT32 = 3


@dataclass(frozen=True)
class Gap:
    """A kind of node some runtimes cannot take.

    Attributes:
        kind: The finding's kind, in ``inspect --json``.
        runtimes: The ``--target`` names that lack it.
        label: What the nodes are, for the one-line report.
        fix: What to do instead, for messages.
        find: The graph's nodes of this kind (``function/node`` inside functions).
    """

    kind: str
    runtimes: tuple[str, ...]
    label: str
    fix: str
    find: Callable[[Any], list[str]]


def _nodes_of(ops: set[str]) -> Callable[[Any], list[str]]:
    """A finder of the nodes whose op is one of ``ops``."""
    return lambda graph_def: [name for name, node in all_nodes(graph_def) if node.op in ops]


def _half_weights(graph_def: Any) -> list[str]:
    return [name for name, node in all_nodes(graph_def)
            if node.op == "Const" and node.attr["dtype"].type == _DT_HALF]


def _accumulating_loops(graph_def: Any) -> list[str]:
    """Loops whose body pushes onto tensor lists: what tf-keras' graph-mode RNNs keep for their gradients."""
    pushing = {function.signature.name for function in graph_def.library.function
               if any(node.op == "TensorListPushBack" for node in function.node_def)}
    return [name for name, node in all_nodes(graph_def)
            if node.op in LOOP_OPS and node.attr["body"].func.name in pushing]


def _dynamic_lists(graph_def: Any) -> list[str]:
    """Tensor lists whose element shape is not a constant with every dimension known."""
    found = []
    for scope, nodes in _scopes(graph_def):
        by_name = {node.name: node for node in nodes}
        for node in nodes:
            if node.op not in LIST_OPS:
                continue
            shape_input = node.input[1] if node.op == "TensorListFromTensor" else node.input[0]
            source = by_name.get(op_name(shape_input))
            if source is None or source.op != "Const" or not _static_shape(source.attr["value"].tensor):
                found.append(f"{scope}{node.name}")
    return found


_OTHER_RUNTIMES = "an ONNX runtime, OpenVINO or TensorFlow Lite (--target onnx, openvino or tflite)"
GAPS = (
    Gap("loops", ("opencv",), "While loops (recurrent layers)", f"serve recurrent models with {_OTHER_RUNTIMES}",
        _nodes_of(LOOP_OPS)),
    Gap("gathers", ("opencv",), "GatherV2 (Embedding layers)", f"serve models with embeddings with {_OTHER_RUNTIMES}",
        _nodes_of(GATHER_OPS)),
    Gap("half-weights", ("opencv",), "float16 weights (--fp16)", "convert without --fp16", _half_weights),
    Gap("accumulating-loops", ("onnx", "openvino", "tflite"),
        "recurrent loops that keep per-step tensor lists for training (tf-keras' graph-mode RNNs: the session route)",
        "convert with --route function (--target picks it unless --route or --output-node is given)",
        _accumulating_loops),
    Gap("dynamic-tensor-lists", ("tflite",),
        "recurrent loops' tensor lists without a static element shape (an unknown batch)",
        "convert with --route function and --batch-size 1, or an --input-shape that fixes the batch",
        _dynamic_lists),
)


def target_gaps(graph_def: Any, target: str) -> list[tuple[Gap, tuple[str, ...]]]:
    """The gaps of ``target``'s runtime in ``graph_def``, each with its nodes; empty when none is found."""
    if target not in TARGETS:
        raise KeyError(target)
    found = []
    for gap in GAPS:
        if target in gap.runtimes:
            nodes = gap.find(graph_def)
            if nodes:
                found.append((gap, tuple(nodes)))
    return found


def target_findings(graph_def: Any, target: str) -> list[Finding]:
    """:func:`target_gaps` as lint findings (errors), for ``inspect --check --target``."""
    return [Finding(f"{target}:{gap.kind}", ERROR, nodes, label=f"{TARGETS[target]} cannot run {gap.label}",
                    fix=gap.fix)
            for gap, nodes in target_gaps(graph_def, target)]


def _scopes(graph_def: Any) -> Iterator[tuple[str, list[Any]]]:
    yield "", list(graph_def.node)
    for function in graph_def.library.function:
        yield f"{function.signature.name}/", list(function.node_def)


def _static_shape(tensor: Any) -> bool:
    """A shape tensor (int32/int64 vector) with no unknown (-1) dimension; a scalar -1 is an unknown rank."""
    values = list(tensor.int_val) or list(tensor.int64_val)
    if not values and tensor.tensor_content:
        size = 4 if tensor.dtype == _DT_INT32 else 8
        count = len(tensor.tensor_content) // size
        values = list(struct.unpack(f"<{count}{'i' if size == 4 else 'q'}", tensor.tensor_content))
    dims = [dim.size for dim in tensor.tensor_shape.dim]
    if not dims:  # a scalar: -1 is an unknown rank
        return bool(values) and values[0] >= 0
    if len(values) == 1 and dims[0] > 1:  # one value repeated
        values = values * dims[0]
    return all(value >= 0 for value in values)
