"""Running Grappler's passes on a frozen ``GraphDef`` (not in a session), keeping the nodes a caller names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from freezekeras.tf.imports import import_tensorflow
from freezekeras.tf.internals import optimize_graph, rewriter_config


def run_passes(graph_def: Any, passes: Sequence[str], keep: Sequence[str]) -> Any:
    """``graph_def`` rewritten by Grappler's ``passes`` (run twice), with the ``keep`` nodes kept.

    The ``keep`` nodes go into the meta graph's ``train_op`` collection, which
    Grappler treats as fetches; small graphs are optimized too. The result has
    the graph's function library as Grappler left it, and no ``versions``
    (callers put back what they need).
    """
    tf = import_tensorflow()
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    meta_graph = tf.compat.v1.train.export_meta_graph(graph_def=graph_def, graph=graph)
    meta_graph.collection_def["train_op"].node_list.value.extend(keep)
    config = tf.compat.v1.ConfigProto()
    rewrite = config.graph_options.rewrite_options
    rewrite.optimizers.extend(passes)
    rewrite.meta_optimizer_iterations = rewriter_config().TWO
    rewrite.min_graph_nodes = -1  # small graphs too
    return optimize_graph(config, meta_graph)
