"""Verification's order and what it holds: Keras' predictions first, the model freed, then the written graph
imported from its bytes; the Keras session without Grappler, loading weights without drawing random ones
first; the graph serialized node by node."""

from __future__ import annotations

import contextlib
import gc
import weakref
from pathlib import Path

import numpy as np
import pytest
from conftest import build_conv_bn, build_dense

from freezekeras.errors import GraphTooLargeError
from freezekeras.results import ConvertOptions, TensorSpec


def _small_graph(channels_first: bool = False):
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (None, 2), name="x")
        tf.identity(x * 2.0, name="y")
    return graph.as_graph_def()


def test_verify_releases_the_model_after_its_predictions_and_before_reading_the_graph():
    from freezekeras.tf.verification import verify

    events = []
    graph_def = _small_graph()

    def reference(feeds):
        events.append("predict")
        return [feeds["x"] * 2.0]

    def read():
        events.append("read")
        return graph_def.SerializeToString()

    result = verify(read, [TensorSpec("x", "float32", (None, 2))], [TensorSpec("y", "float32", (None, 2))],
                    reference=reference, channels_first=False, release=lambda: events.append("release"))

    assert result.passed and result.max_abs_diff == 0.0
    assert events == ["predict", "release", "read"]


@pytest.mark.parametrize("channels_first", [False, None])
def test_run_graph_def_runs_serialized_bytes(channels_first):
    from freezekeras.graphdef.messages import GraphDef
    from freezekeras.tf.verification import run_graph_def

    data = _small_graph().SerializeToString()
    feeds = {"x": np.ones((3, 2), "float32")}

    message = GraphDef()
    message.ParseFromString(data)
    for graph_def in (data, lambda: data, message):
        [y] = run_graph_def(graph_def, feeds, ["y"], channels_first=channels_first)
        np.testing.assert_array_equal(y, np.full((3, 2), 2.0))


def test_convert_frees_the_keras_session_before_importing_the_written_graph(tmp_path, monkeypatch):
    import freezekeras.api as api
    import freezekeras.tf.verification as verification

    sessions = []
    imported = []
    opened = api.keras_session

    @contextlib.contextmanager
    def recorded(*args, **kwargs):
        with opened(*args, **kwargs) as keras:
            sessions.append(weakref.ref(keras.session))
            yield keras

    def import_graph(graph, data):
        imported.append([ref() is None for ref in sessions])
        return original_import(graph, data)

    original_import = verification.import_serialized_graph_def
    monkeypatch.setattr(api, "keras_session", recorded)
    monkeypatch.setattr(verification, "import_serialized_graph_def", import_graph)
    model = build_dense(tmp_path / "dense.h5")

    result = api.convert(model, ConvertOptions(output=tmp_path / "dense.pb"))

    assert result.verification.passed
    assert imported == [[True]]  # the session was gone when the written graph was imported


def test_a_function_route_model_is_freed_before_importing_the_written_graph(tmp_path, monkeypatch):
    import freezekeras.api as api
    import freezekeras.tf.verification as verification

    calls = []
    original_release, original_import = api._release, verification.import_serialized_graph_def
    monkeypatch.setattr(api, "_release", lambda *a, **k: (calls.append(("release", k)), original_release(*a, **k)))
    monkeypatch.setattr(verification, "import_serialized_graph_def",
                        lambda graph, data: (calls.append(("import", {})), original_import(graph, data))[1])
    model = build_dense(tmp_path / "dense.h5")

    result = api.convert(model, ConvertOptions(output=tmp_path / "dense.pb", route="function"))

    assert result.verification.passed
    assert calls == [("release", {"collect": True}), ("import", {})]


def test_the_keras_session_runs_without_grappler_unless_the_model_may_be_channels_first(tmp_path):
    import tf_keras

    from freezekeras.kerasfile.h5file import read_keras_file
    from freezekeras.tf.loading import _session_config

    plain = read_keras_file(build_dense(tmp_path / "dense.h5"))
    nchw = tf_keras.Sequential([tf_keras.layers.Conv2D(2, 3, data_format="channels_first", input_shape=(3, 8, 8))])
    nchw.save(tmp_path / "nchw.h5")
    channels_first = read_keras_file(tmp_path / "nchw.h5")

    assert _session_config(tf_keras, plain, {}).graph_options.rewrite_options.disable_meta_optimizer
    for info, objects in ((channels_first, {}), (plain, {"my_layer": object})):
        rewrite = _session_config(tf_keras, info, objects).graph_options.rewrite_options
        assert not rewrite.disable_meta_optimizer and rewrite.cpu_layout_conversion  # NCHW runs on CPUs


def test_a_channels_first_model_still_converts_and_verifies(tmp_path):
    import tf_keras

    from freezekeras.api import convert

    model = tf_keras.Sequential([tf_keras.layers.Conv2D(4, 3, data_format="channels_first", input_shape=(3, 8, 8)),
                                 tf_keras.layers.BatchNormalization(axis=1)])
    model.save(tmp_path / "nchw.h5")

    for keep in (False, True):
        result = convert(tmp_path / "nchw.h5", ConvertOptions(output=tmp_path / f"nchw{keep}.pb", keep_nchw=keep))
        assert result.verification.passed


def test_the_conv_model_gives_the_same_bytes_and_verifies(tmp_path):
    from freezekeras.api import convert

    model = build_conv_bn(tmp_path / "conv.h5")
    first = convert(model, ConvertOptions(output=tmp_path / "a.pb"))
    second = convert(model, ConvertOptions(output=tmp_path / "b.pbtxt", text=True))

    assert first.verification.passed and second.verification.passed
    assert (tmp_path / "a.pb").read_bytes() == convert(model, ConvertOptions(output=tmp_path / "c.pb")).output.read_bytes()


class _HugeNode:
    """Stands for a node of 2 GiB or more, which upb neither serializes nor measures."""

    def SerializeToString(self, deterministic: bool = False) -> bytes:  # noqa: N802 (protobuf's name)
        from google.protobuf.message import EncodeError

        raise EncodeError("Failed to serialize proto")


class _HugeGraph:
    node = [_HugeNode()]


def test_a_graph_protobuf_cannot_encode_is_refused_as_too_large():
    from freezekeras.tf.freezing import serialize

    with pytest.raises(GraphTooLargeError, match="at least 2.00 GiB, at or over protobuf's 2 GiB limit"):
        b"".join(serialize(_HugeGraph(), text=False, source=Path("m.h5")))


def _graphs_with_every_field():
    """A session graph (versions, sorted attributes) and a loop's graph (a function library, a While)."""
    import tensorflow as tf

    yield "session", _small_graph()

    @tf.function(input_signature=[tf.TensorSpec((None, 3), tf.float32)])
    def loop(x):
        return tf.while_loop(lambda i, y: i < 3, lambda i, y: (i + 1, tf.tanh(y) * 2.0), (0, x))[1]

    graph_def = loop.get_concrete_function().graph.as_graph_def()
    assert graph_def.library.function and graph_def.versions.producer
    yield "function", graph_def


@pytest.mark.parametrize("name", ["session", "function"])
def test_the_graph_written_piece_by_piece_is_protobufs_own_serialization(name):
    """Node by node, then the other fields: the bytes of SerializeToString(deterministic=True), and each
    node written as its own field (so no buffer of the whole graph is made)."""
    from freezekeras.tf.freezing import serialize

    graph_def = dict(_graphs_with_every_field())[name]
    pieces = list(serialize(graph_def, text=False, source=Path("m.h5")))

    assert b"".join(pieces) == graph_def.SerializeToString(deterministic=True)
    assert len(pieces) == 2 * len(graph_def.node) + 1
    assert pieces[1::2] == [node.SerializeToString(deterministic=True) for node in graph_def.node]


def test_a_graph_reaching_the_limit_on_the_way_is_refused_with_the_size_so_far(tmp_path):
    from freezekeras.output import AtomicFile
    from freezekeras.tf.freezing import serialize

    graph_def = _small_graph()
    with pytest.raises(GraphTooLargeError, match="at least 0.00 GiB"), AtomicFile(tmp_path / "g.pb") as out:
        out.write(serialize(graph_def, text=False, source=Path("m.h5"), limit=graph_def.ByteSize() - 1))
    assert list(tmp_path.iterdir()) == []


def test_freezing_collects_the_cycles_it_made_and_leaves_the_collector_as_it_was():
    from freezekeras.tf.freezing import _young_garbage_collected

    class Node:
        pass

    for enabled in (True, False):
        (gc.enable if enabled else gc.disable)()
        try:
            with _young_garbage_collected():
                assert not gc.isenabled()
                node = Node()
                node.self = node
                ref = weakref.ref(node)
                del node
            assert ref() is None and gc.isenabled() == enabled
        finally:
            gc.enable()


_FREED = """
import os, sys
from freezekeras.tf.imports import import_tensorflow
tf = import_tensorflow()
import numpy as np

def rss():
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return int(status["VmRSS"].split()[0]) // 1024

graph = tf.Graph()
with graph.as_default():
    variable = tf.compat.v1.get_variable("v", shape=(8192, 8192), initializer=tf.compat.v1.zeros_initializer())
    value = tf.compat.v1.placeholder(tf.float32, (8192, 8192))
    assign = variable.assign(value)
session = tf.compat.v1.Session(graph=graph)
session.run(variable.initializer)
session.run(assign, {value: np.ones((8192, 8192), "float32")})
held = rss()
session.close()
print(os.environ["TF_ENABLE_ONEDNN_OPTS"], held - rss())
"""


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the resident set size from /proc")
@pytest.mark.parametrize(("given", "freed"), [(None, True), ("1", False)])
def test_a_closed_sessions_memory_goes_back_unless_onednn_is_asked_for(given, freed):
    """import_tensorflow turns oneDNN's CPU allocator off (unless the caller set TF_ENABLE_ONEDNN_OPTS), so that
    the model freed before verification leaves memory: closing a session with a 256 MB variable returns it."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if given is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = given
    done = subprocess.run([sys.executable, "-c", _FREED], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    setting, returned_mb = done.stdout.split()
    assert setting == (given or "0")
    assert (int(returned_mb) >= 200) is freed, f"closing the session returned {returned_mb} MB"


def test_training_nodes_are_removed_and_the_graph_pruned_as_tensorflow_does_without_copying_constants():
    """freeze_graph runs remove_training_nodes and extract_sub_graph on a skeleton without constant values and
    applies their decisions in place: the graph is exactly theirs, and its constants are the same objects' bytes."""
    import tensorflow as tf

    from freezekeras.tf.freezing import _remove_training_nodes_and_prune

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (None, 4), name="x")
        weights = tf.constant(np.arange(4 * 300, dtype="float32").reshape(4, 300), name="weights")
        product = tf.identity(tf.identity(tf.matmul(x, weights), name="chain_a"), name="chain_b")
        checked = tf.debugging.check_numerics(product, "no NaN", name="checked")
        with tf.control_dependencies([checked]):
            kept = tf.identity(product * 2.0, name="kept")  # its control input goes with the CheckNumerics
        tf.add(x, 1.0, name="unused_branch")
        out = tf.identity(tf.nn.relu(kept), name="out")
    graph_def = graph.as_graph_def()
    graph_def.library.function.add().signature.name = "a_function"  # the library stays
    graph_def.versions.producer = 1234
    graph_util = tf.compat.v1.graph_util
    expected = graph_util.extract_sub_graph(graph_util.remove_training_nodes(graph_def, protected_nodes=["out"]),
                                            ["out"])
    expected.library.CopyFrom(graph_def.library)
    expected.versions.CopyFrom(graph_def.versions)
    _remove_training_nodes_and_prune(graph_util, graph_def, [out.op.name])
    assert graph_def.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)
    names = [node.name for node in graph_def.node]
    assert not {"unused_branch", "chain_a", "chain_b", "checked", "kept"} & set(names)
    assert names[-1] == "out" and "weights" in names
    assert len(graph_def.node[names.index("weights")].attr["value"].tensor.tensor_content) == 4 * 300 * 4


def _initializers_run(monkeypatch) -> list[list[str]]:
    """Spy on the Keras session's runs: for each run of a variables initializer, the variables it set."""
    import tensorflow as tf

    runs: list[list[str]] = []
    original = tf.compat.v1.Session.run

    def run(self, fetches, *args, **kwargs):
        for fetch in tf.nest.flatten(fetches):
            if isinstance(fetch, tf.Operation) and fetch.type == "NoOp" and fetch.name.startswith("init"):
                runs.append(sorted(op.name.rsplit("/", 1)[0] for op in fetch.control_inputs))
        return original(self, fetches, *args, **kwargs)

    monkeypatch.setattr(tf.compat.v1.Session, "run", run)
    return runs


@pytest.mark.parametrize("manual", [False, True])
def test_loading_assigns_the_files_weights_without_drawing_random_ones_first(tmp_path, monkeypatch, manual):
    """No random initializer runs for a variable the file sets; Keras' manual-initialization flag is put back."""
    import tf_keras

    from freezekeras.tf.internals import manual_variable_initialization

    runs = _initializers_run(monkeypatch)
    tf_keras.backend.manual_variable_initialization(manual)
    try:
        result = freezekeras_convert(build_conv_bn(tmp_path / "conv.h5"), tmp_path / "conv.pb")
        assert manual_variable_initialization() is manual
    finally:
        tf_keras.backend.manual_variable_initialization(False)

    assert result.verification.passed
    assert runs == []


def test_what_the_file_leaves_unset_is_initialized_after_loading(tmp_path, monkeypatch):
    """A stateful LSTM's states are not in the file: they alone are initialized (to zeros), once loaded."""
    import tf_keras

    runs = _initializers_run(monkeypatch)
    tf_keras.Sequential([tf_keras.Input((5, 2), batch_size=4),
                         tf_keras.layers.LSTM(3, stateful=True, name="memory")]).save(tmp_path / "m.h5")

    result = freezekeras_convert(tmp_path / "m.h5", tmp_path / "m.pb")

    assert result.verification.passed
    assert runs == [["memory/Variable", "memory/Variable_1"]]


def freezekeras_convert(model: Path, output: Path):
    from freezekeras.api import convert

    return convert(model, ConvertOptions(output=output))
