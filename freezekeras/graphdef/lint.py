"""Finding what should not be in a frozen serving graph: one implementation for convert and inspect.

Works on any ``GraphDef`` message with TensorFlow's field names: TensorFlow's
own ``tf.compat.v1.GraphDef`` or :func:`freezekeras.graphdef.GraphDef`. No
TensorFlow is imported. Nodes inside the function library (``While`` and
``If`` bodies) are checked too and named ``function/node``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ERROR = "error"
INFO = "info"

VARIABLE_OPS = {"VarHandleOp", "VariableV2", "Variable", "ReadVariableOp", "VarIsInitializedOp",
                "AssignVariableOp", "Assign", "AssignAdd", "AssignSub", "AssignAddVariableOp",
                "AssignSubVariableOp"}
RANDOM_OPS = {"RandomUniform", "RandomStandardNormal", "RandomUniformInt", "TruncatedNormal",
              "StatelessRandomUniformV2", "StatelessRandomNormalV2", "StatelessTruncatedNormalV2",
              "StatelessRandomUniformIntV2", "RandomShuffle", "Multinomial"}
SWITCH_OPS = {"If", "StatelessIf", "Switch"}
#: The ``data_format`` values of channels-first nodes (2-D and 3-D).
CHANNELS_FIRST = (b"NCHW", b"NCDHW")
#: Ops that are never a graph's output even when nothing consumes them.
NOT_OUTPUTS = {"Const", "NoOp", "Placeholder", "PlaceholderWithDefault", "Assert", "VarHandleOp"}

#: kind -> (severity, label). The labels are those of convert's warnings.
KINDS = {
    "variables": (ERROR, "variable ops"),
    "random-ops": (ERROR, "random ops (Dropout?)"),
    "learning-phase": (ERROR, "learning-phase nodes"),
    "training-switches": (ERROR, "training switches"),
    "device-strings": (ERROR, "device strings"),
    "unused-placeholders": (ERROR, "unused placeholders"),
    "several-outputs": (INFO, "several candidate outputs"),
    "channels-first": (INFO, "channels_first (NCHW) nodes TensorFlow's CPU kernels cannot run"),
}


def shown_names(names: Sequence[str], limit: int = 3) -> str:
    """The first ``limit`` of ``names``, comma-separated, with ``", ..."`` when there are more."""
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


@dataclass(frozen=True)
class Finding:
    """One kind of problem found in a graph.

    Attributes:
        kind: One of :data:`KINDS` (``"variables"``, ``"random-ops"``, ...).
        severity: ``"error"`` (fails ``inspect --check``) or ``"info"``.
        nodes: The nodes concerned, ``function/node`` inside the function library.
        label: What the nodes are; empty for a kind of :data:`KINDS`, which labels it.
        fix: What to do about them (``--target`` findings); empty when the label says it.
    """

    kind: str
    severity: str
    nodes: tuple[str, ...]
    label: str = ""
    fix: str = ""

    @property
    def line(self) -> str:
        """One readable line: ``variable ops: 2 (a, b)``, then the fix if there is one."""
        fix = f"; {self.fix}" if self.fix else ""
        return f"{self.label or KINDS[self.kind][1]}: {len(self.nodes)} ({shown_names(self.nodes)}){fix}"

    def to_json(self) -> dict[str, Any]:
        """Return ``{"kind", "severity", "count", "nodes", "message"}``."""
        return {"kind": self.kind, "severity": self.severity, "count": len(self.nodes),
                "nodes": list(self.nodes), "message": self.line}


def lint(graph_def: Any) -> list[Finding]:
    """Check a frozen graph for what a serving runtime may reject.

    Errors: variables, random ops (Dropout's ``RandomUniform``), Keras'
    learning-phase nodes, ``If``/``Switch`` nodes fed by a training flag,
    device placements, placeholders nothing consumes. Information: more than
    one candidate output (nodes nothing consumes); NCHW convolutions and
    poolings, which run on GPUs and in OpenCV but not on TensorFlow's CPU kernels.

    Args:
        graph_def: A ``GraphDef``.

    Returns:
        One finding per kind found, in :data:`KINDS` order; empty for a clean graph.
    """
    found: dict[str, list[str]] = {}
    for name, node in all_nodes(graph_def):
        for kind in _node_kinds(node):
            found.setdefault(kind, []).append(name)
    consumed = consumed_nodes(graph_def)
    unused = [node.name for node in graph_def.node if node.op == "Placeholder" and node.name not in consumed]
    if unused:
        found["unused-placeholders"] = unused
    outputs = output_nodes(graph_def)
    if len(outputs) > 1:
        found["several-outputs"] = outputs
    return [Finding(kind, KINDS[kind][0], tuple(found[kind])) for kind in KINDS if kind in found]


def leftover_lines(graph_def: Any) -> list[str]:
    """The lines ``convert`` warns with: every error-level finding, one line per kind."""
    return [finding.line for finding in lint(graph_def) if finding.severity == ERROR]


def op_name(name: str) -> str:
    """The node a tensor or node input names: ``op:1`` -> ``op``, ``^op`` (a control input) -> ``op``."""
    return name.lstrip("^").split(":")[0]


def renamed_input(reference: str, renames: Mapping[str, str]) -> str:
    """A node input (``op``, ``op:1``, ``^op``) with its node renamed by ``renames``; the rest kept."""
    control = "^" if reference.startswith("^") else ""
    node, sep, index = reference.lstrip("^").partition(":")
    return f"{control}{renames.get(node, node)}{sep}{index}"


def consumed_nodes(graph_def: Any) -> set[str]:
    """Names of the top-level nodes some other node takes as input."""
    return {op_name(inp) for node in graph_def.node for inp in node.input}


def output_nodes(graph_def: Any) -> list[str]:
    """Top-level nodes nothing consumes, constants, no-ops and placeholders excepted, in node order."""
    consumed = consumed_nodes(graph_def)
    return [node.name for node in graph_def.node if node.name not in consumed and node.op not in NOT_OUTPUTS]


def all_nodes(graph_def: Any) -> Iterator[tuple[str, Any]]:
    """Every node with its name: top-level ones, then function bodies' as ``function/node``."""
    for node in graph_def.node:
        yield node.name, node
    for function in graph_def.library.function:
        for node in function.node_def:
            yield f"{function.signature.name}/{node.name}", node


def _node_kinds(node: Any) -> Iterator[str]:
    if node.op in VARIABLE_OPS or node.op.startswith("Assign"):
        yield "variables"
    if node.op in RANDOM_OPS:
        yield "random-ops"
    if "keras_learning_phase" in node.name:
        yield "learning-phase"
    if node.op in SWITCH_OPS and any(
        "learning_phase" in inp or "training" in inp.lower() for inp in map(op_name, node.input)
    ):
        yield "training-switches"
    if node.device:
        yield "device-strings"
    if data_format(node) in CHANNELS_FIRST and node.op != "BiasAdd":  # CPUs run an NCHW BiasAdd
        yield "channels-first"


def data_format(node: Any) -> bytes | None:
    """A node's ``data_format`` attribute (``b"NHWC"``, ``b"NCHW"``, ...), ``None`` if it has none."""
    # not node.attr["data_format"] alone: reading a missing key of a protobuf map adds it
    return node.attr["data_format"].s if "data_format" in node.attr else None
