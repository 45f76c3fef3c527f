"""Making a ``channels_first`` (NCHW) graph run on CPUs, with Grappler's layout optimizer.

Models built with ``channels_first`` layers (Theano's usual layout, Keras 1's
``dim_ordering: "th"``) give ``Conv2D``, ``MaxPool``, ``FusedBatchNormV3``
... nodes with ``data_format: NCHW``. TensorFlow's CPU kernels run only
NHWC, so such a graph fails on every CPU runtime. Grappler's generic layout
optimizer, with ``cpu_layout_conversion = NCHW_TO_NHWC``, rewrites those
nodes to NHWC and puts transposes where the layout changes: the graph's
inputs and outputs keep the model's own channels-first shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from freezekeras.graphdef.lint import CHANNELS_FIRST, all_nodes, data_format, op_name, shown_names
from freezekeras.tf.imports import import_tensorflow
from freezekeras.tf.internals import optimize_graph, rewriter_config

#: The device the layout optimizer must see on a node to convert it for CPUs.
_CPU = "/device:CPU:0"


def channels_first_nodes(graph_def: Any, *, functions: bool = True) -> list[str]:
    """Names of the nodes that compute in a channels-first layout (with ``functions``, in function bodies too)."""
    nodes = all_nodes(graph_def) if functions else ((node.name, node) for node in graph_def.node)
    return [name for name, node in nodes if data_format(node) in CHANNELS_FIRST]


def to_channels_last(graph_def: Any, output_names: Sequence[str]) -> Any:
    """Return ``graph_def`` with its channels-first nodes computing in NHWC.

    Grappler's layout optimizer runs alone (no other rewrite), on a copy whose
    nodes are placed on the CPU, as it converts only CPU nodes; the placement
    is cleared again. Node names are kept; the added transposes are named
    ``...-TransposeNCHWToNHWC-LayoutOptimizer`` and ``...-TransposeNHWCToNCHW-LayoutOptimizer``.

    Args:
        graph_def: A frozen ``GraphDef`` (not changed).
        output_names: The graph's outputs (``op`` or ``op:N``); they keep their layout.

    Returns:
        The converted ``GraphDef``, with the function library and versions of the input.
    """
    tf = import_tensorflow()
    placed = tf.compat.v1.GraphDef()
    placed.CopyFrom(graph_def)
    for node in placed.node:
        node.device = _CPU
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(placed, name="")
    meta_graph = tf.compat.v1.train.export_meta_graph(graph=graph)
    meta_graph.collection_def["train_op"].node_list.value.extend(op_name(name) for name in output_names)

    config = session_config(only_layout=True)
    config.graph_options.rewrite_options.meta_optimizer_iterations = rewriter_config().ONE
    converted = optimize_graph(config, meta_graph)
    for node in converted.node:
        node.device = ""
    converted.library.CopyFrom(graph_def.library)
    converted.versions.CopyFrom(graph_def.versions)
    return converted


def relayout_note(nodes: Sequence[str], *, kept: bool = False) -> str:
    """The warning that says which nodes :func:`to_channels_last` rewrote (or, ``kept``, left NCHW)."""
    subject = f"{len(nodes)} channels_first (NCHW) node{'s' if len(nodes) > 1 else ''} ({shown_names(nodes)})"
    if kept:
        return (f"{subject} kept as NCHW (--keep-nchw): OpenCV's dnn module and GPUs run them, "
                "TensorFlow's CPU kernels do not")
    return (f"{subject} compute{'' if len(nodes) > 1 else 's'} in NHWC between transposes, as TensorFlow's "
            "CPU kernels need; the inputs and outputs keep the model's channels-first shapes "
            "(--keep-nchw for OpenCV's dnn module)")


def session_config(*, only_layout: bool = False) -> Any:
    """A ``ConfigProto`` for a session that runs channels-first graphs on the CPU.

    Args:
        only_layout: Run no Grappler optimizer but the layout one. On a frozen
            graph every Grappler pass copies its constants, which costs
            seconds for a large model (VGG16: about 50 s in all).
    """
    config = import_tensorflow().compat.v1.ConfigProto()
    rewrite = config.graph_options.rewrite_options
    rewrite.cpu_layout_conversion = rewriter_config().NCHW_TO_NHWC
    if only_layout:
        rewrite.optimizers.append("layout")
    return config


def frozen_session_config(graph_def: Any = None, *, channels_first: bool | None = None) -> Any:
    """A ``ConfigProto`` that runs a frozen graph's own nodes, as they are.

    Grappler is off, as its passes cost seconds on large frozen graphs and
    change nothing a verification should see; for channels-first nodes
    (``--keep-nchw``) the layout optimizer alone runs, as CPU kernels need.

    Args:
        graph_def: The graph, looked through for channels-first nodes.
        channels_first: Whether it has any, when known (then ``graph_def`` is not needed).
    """
    if channels_first if channels_first is not None else channels_first_nodes(graph_def):
        return session_config(only_layout=True)
    return plain_session_config()


def plain_session_config() -> Any:
    """A ``ConfigProto`` for a session that runs a graph's nodes as they are: Grappler off.

    Every Grappler pass copies the graph it rewrites and costs a share of a second on each
    new fetch of a large model (building a tf-keras model runs two, loading its weights a
    third); none changes what the nodes compute. A graph with channels-first nodes needs
    :func:`session_config` instead.
    """
    config = import_tensorflow().compat.v1.ConfigProto()
    config.graph_options.rewrite_options.disable_meta_optimizer = True
    return config
