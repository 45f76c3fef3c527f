"""Every private TensorFlow and tf-keras entry point freezekeras relies on is where freezekeras reaches for it.

A TensorFlow or tf-keras upgrade that moves one fails here, with a message that
names the installed versions and what moved (:class:`MovedInternalError`).
"""

from __future__ import annotations

import ast
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from freezekeras.errors import EXIT_INTERNAL_ERROR, MovedInternalError
from freezekeras.tf import internals

PACKAGE = Path(__file__).resolve().parents[1] / "freezekeras"


def test_the_hdf5_weight_loaders_load_a_weights_group(tmp_path):
    import h5py
    import tf_keras

    model = tf_keras.Sequential([tf_keras.Input((3,)), tf_keras.layers.Dense(2, name="d")])
    model.save_weights(tmp_path / "w.h5")
    copy = tf_keras.Sequential([tf_keras.Input((3,)), tf_keras.layers.Dense(2, name="d")])
    load_group, load_group_by_name = internals.hdf5_weight_loaders()

    with h5py.File(tmp_path / "w.h5", "r") as handle:
        load_group(handle, copy)
        np.testing.assert_array_equal(copy.get_weights()[0], model.get_weights()[0])
        copy.layers[0].kernel.assign(np.zeros((3, 2), "float32"))
        load_group_by_name(handle, copy)
    np.testing.assert_array_equal(copy.get_weights()[0], model.get_weights()[0])


def test_the_builtin_layer_lookup_knows_what_tf_keras_layers_does_not_export():
    import tf_keras

    lookup = internals.builtin_layer_lookup()

    assert lookup("Dense") is tf_keras.layers.Dense
    assert lookup("TensorFlowOpLayer") is not None and not hasattr(tf_keras.layers, "TensorFlowOpLayer")
    assert lookup("NoSuchLayer") is None


@pytest.mark.parametrize("name", sorted(internals.APPLICATION_LAYERS))
def test_the_convnext_layers_are_tf_keras_layers_with_their_config_key(name):
    import tf_keras

    cls = internals.application_layer(name)

    assert issubclass(cls, tf_keras.layers.Layer) and cls.__name__ == name
    key = internals.APPLICATION_LAYERS[name]
    arguments = {"LayerScale": {"init_values": 1e-6, "projection_dim": 4}, "StochasticDepth": {"drop_path_rate": 0.5}}
    assert key in cls(**arguments[name]).get_config()


def test_grappler_runs_with_the_rewriter_config(tmp_path):
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (None, 2), name="x")
        tf.identity(x * (tf.constant(2.0) + tf.constant(3.0)), name="y")
    meta_graph = tf.compat.v1.train.export_meta_graph(graph_def=graph.as_graph_def(), graph=graph)
    meta_graph.collection_def["train_op"].node_list.value.append("y")
    config = tf.compat.v1.ConfigProto()
    config.graph_options.rewrite_options.meta_optimizer_iterations = internals.rewriter_config().ONE
    config.graph_options.rewrite_options.optimizers.append("constfold")

    optimized = internals.optimize_graph(config, meta_graph)

    assert {node.name for node in optimized.node} >= {"x", "y"}
    assert len(optimized.node) < len(graph.as_graph_def().node)  # 2 + 3 folded into one constant
    assert internals.rewriter_config().NCHW_TO_NHWC != internals.rewriter_config().NO_CONVERSION_ON_CPU


def test_deprecation_notices_are_silenced_within_the_block():
    from tensorflow.python.util import deprecation  # the module internals reaches into

    deprecation._PRINT_DEPRECATION_WARNINGS = True  # as a fresh process has it
    with internals.deprecation_notices_silenced():
        assert deprecation._PRINT_DEPRECATION_WARNINGS is False
    assert deprecation._PRINT_DEPRECATION_WARNINGS is True


def test_layer_base_classes_are_put_back():
    import tensorflow as tf
    import tf_keras

    dense = tf_keras.layers.Dense
    before = dense.__bases__
    with internals.layer_base_classes_restored(), tf.Graph().as_default():
        tf_keras.layers.Dense(1)(tf_keras.Input((2,)))
        swapped = dense.__bases__
    assert dense.__bases__ == before
    assert swapped != before  # tf-keras did swap them in graph mode: the guard is not idle


def test_a_moved_entry_point_names_the_versions_and_what_moved():
    with pytest.raises(MovedInternalError) as caught:
        internals.private("tf_keras.src.saving.legacy.hdf5_format", "no_such_loader")

    message = str(caught.value)
    assert caught.value.exit_code == EXIT_INTERNAL_ERROR
    assert "tf_keras.src.saving.legacy.hdf5_format.no_such_loader" in message
    assert f"tensorflow {metadata.version('tensorflow')}" in message
    assert f"tf-keras {metadata.version('tf-keras')}" in message
    with pytest.raises(MovedInternalError, match="tf_keras.src.nowhere"):
        internals.private("tf_keras.src.nowhere")


def _private_imports(path: Path) -> list[str]:
    """The private TensorFlow/tf-keras modules ``path`` imports or names in a string."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [node.value]
        found += [name for name in names if name.startswith(("tensorflow.python", "tensorflow.core", "tf_keras.src",
                                                              "keras.src"))]
    return found


def test_no_other_module_touches_private_entry_points():
    offenders = {str(path.relative_to(PACKAGE)): _private_imports(path) for path in PACKAGE.rglob("*.py")
                 if path.name != "internals.py" and _private_imports(path)}
    assert offenders == {}
    assert "__bases__ =" not in "".join(path.read_text() for path in PACKAGE.rglob("*.py")
                                        if path.name != "internals.py")


def test_the_batch_norm_folder_folds_a_batch_norm_into_the_convolution():
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (1, 4, 4, 2), name="x")
        conv = tf.nn.conv2d(x, tf.constant(np.ones((1, 1, 2, 3), "float32"), name="w"), 1, "VALID", name="conv")
        params = [tf.constant(np.full(3, value, "float32")) for value in (2.0, 0.5, 1.0, 4.0)]  # gamma beta mean var
        tf.compat.v1.nn.fused_batch_norm(conv, *params, epsilon=0.0, is_training=False, name="bn")

    folded = internals.batch_norm_folder()(graph.as_graph_def())

    ops = {node.name: node.op for node in folded.node}
    assert "FusedBatchNormV3" not in ops.values() and ops["bn"] == "BiasAdd"
    weights = tf.make_ndarray(next(node for node in folded.node if node.name == "conv_weights").attr["value"].tensor)
    np.testing.assert_allclose(weights, 1.0)  # ones * gamma / sqrt(var) = 1


def test_keras_operations_are_found_by_class_name():
    import keras

    not_equal = internals.keras_operation("NotEqual")

    assert not_equal is not None and not_equal.__name__ == "NotEqual"
    assert isinstance(not_equal(), keras.Operation)
    assert internals.keras_operation("NoSuchOperation") is None


def test_keras_name_counters_restart_and_come_back():
    import keras

    keras.layers.Dense(1)  # the process's counters move on
    before = keras.layers.Dense(1).name
    with internals.keras_name_counters_restarted():
        assert keras.layers.Dense(1).name == "dense"
    assert keras.layers.Dense(1).name != "dense" and keras.layers.Dense(1).name != before


def test_the_manual_variable_initialization_flag_is_what_keras_set():
    import tf_keras

    try:
        for value in (True, False):
            tf_keras.backend.manual_variable_initialization(value)
            assert internals.manual_variable_initialization() is value
    finally:
        tf_keras.backend.manual_variable_initialization(False)


def test_keras_get_session_initializes_what_nothing_has_set():
    import numpy as np
    import tensorflow as tf
    import tf_keras

    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session, session.as_default():
        state = tf_keras.backend.variable(np.full((2,), 3.0, np.float32))
        assert internals.keras_get_session()() is session
        np.testing.assert_array_equal(session.run(state), [3.0, 3.0])


def test_variables_become_constants_and_loops_stay_while_ops():
    import numpy as np
    import tensorflow as tf

    weight = tf.Variable(2.0)

    @tf.function(input_signature=[tf.TensorSpec((), tf.float32)])
    def doubled_until_large(x):
        return tf.while_loop(lambda value: value < 100.0, lambda value: value * weight, [x])[0]

    frozen = internals.convert_variables_to_constants_v2(doubled_until_large.get_concrete_function())
    ops = {node.op for node in frozen.graph.as_graph_def().node}

    assert "VarHandleOp" not in ops and "ReadVariableOp" not in ops
    assert ops & {"While", "StatelessWhile"}
    np.testing.assert_allclose(frozen(tf.constant(3.0))[0].numpy(), 192.0)


def test_a_serialized_graph_imports_as_import_graph_def_imports_it():
    import tensorflow as tf

    weight = tf.Variable(2.0)

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.float32)])
    def doubled_until_large(x):  # a While loop: its body is in the function library
        return tf.identity(tf.while_loop(lambda v: tf.reduce_max(v) < 100.0, lambda v: v * weight, [x])[0], name="y")

    graph_def = internals.convert_variables_to_constants_v2(doubled_until_large.get_concrete_function()).graph.as_graph_def()
    assert graph_def.library.function
    graph = tf.Graph()

    internals.import_serialized_graph_def(graph, graph_def.SerializeToString())

    expected = tf.Graph()
    with expected.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    assert [op.name for op in graph.get_operations()] == [op.name for op in expected.get_operations()]
    placeholder = next(op for op in graph.get_operations() if op.type == "Placeholder")
    output = next(op for op in graph.get_operations() if op.name.endswith("y") and op.type == "Identity")
    with tf.compat.v1.Session(graph=graph) as session:
        result = session.run(output.outputs[0], {placeholder.outputs[0]: np.array([3.0, 5.0], "float32")})
    np.testing.assert_allclose(result, [96.0, 160.0])  # doubled while the largest is under 100
    with pytest.raises(ValueError):
        internals.import_serialized_graph_def(tf.Graph(), b"\x0a\x05not a graph")
