"""The private TensorFlow and tf-keras entry points freezekeras relies on, all in one place.

Each is used because no public API does the job (named in each function). A
TensorFlow or tf-keras release may move any of them: then the function that
reaches for it raises :class:`~freezekeras.errors.MovedInternalError`, naming
the installed version and what moved, never a fallback that would turn the
move into another error (an "unknown layer", a random-weights model).
``tests/test_internals.py`` reaches for every one, so an upgrade that moves
one fails there first.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator
from typing import Any

from freezekeras.errors import MovedInternalError
from freezekeras.tf.imports import import_keras, import_tensorflow, import_tf_keras

#: tf-keras' own application layers that Keras cannot load by name, and the config key that marks
#: a layer's config as tf-keras' own (tensorflow/tensorflow#59767).
APPLICATION_LAYERS = {"LayerScale": "projection_dim", "StochasticDepth": "drop_path_rate"}
_CONVNEXT = "tf_keras.src.applications.convnext"


def private(module: str, name: str | None = None) -> Any:
    """``module`` (or its attribute ``name``), imported; :class:`MovedInternalError` if it is not there.

    Args:
        module: The dotted module path, e.g. ``"tf_keras.src.saving.legacy.hdf5_format"``.
        name: An attribute of the module, or ``None`` for the module itself.
    """
    what = f"{module}.{name}" if name else module
    try:
        found = importlib.import_module(module)
        return getattr(found, name) if name else found
    except (ImportError, AttributeError) as exc:
        raise MovedInternalError(
            f"freezekeras needs {what}, which {_installed()} does not have ({type(exc).__name__}: {exc}). "
            "Install the TensorFlow and tf-keras versions freezekeras pins (pip install freezekeras "
            "again), or report it with the versions above."
        ) from exc


def hdf5_weight_loaders() -> tuple[Callable[..., Any], Callable[..., Any]]:
    """tf-keras' ``load_weights_from_hdf5_group`` and ``..._by_name``, which convert Keras 1 and Theano layouts.

    ``model.load_weights`` converts old layouts only for files without a
    ``keras_version``; these take the group with our normalised attributes.
    """
    import_tf_keras()
    module = "tf_keras.src.saving.legacy.hdf5_format"
    return private(module, "load_weights_from_hdf5_group"), private(module, "load_weights_from_hdf5_group_by_name")


def builtin_layer_lookup() -> Callable[[str], Any]:
    """tf-keras' lookup of its built-in layer classes by name, ``None`` when unknown.

    It knows what ``tf_keras.layers`` does not export (``TensorFlowOpLayer``,
    ``Functional``...), so a model that uses them is not taken for one with
    custom layers.
    """
    tf_keras = import_tf_keras()
    get_builtin_layer = private("tf_keras.src.layers.serialization", "get_builtin_layer")
    return lambda name: get_builtin_layer(name) or tf_keras.utils.get_registered_object(name)


def application_layer(name: str) -> type:
    """tf-keras' own ``LayerScale`` or ``StochasticDepth`` (ConvNeXt), which ``load_model`` cannot find by name."""
    import_tf_keras()
    return private(_CONVNEXT, name)


def optimize_graph(config: Any, meta_graph: Any) -> Any:
    """Run Grappler with ``config`` on ``meta_graph`` and return the ``GraphDef`` (``tf_optimizer.OptimizeGraph``).

    The public way to run Grappler is a session or ``tf.function``, neither of
    which returns the rewritten graph.
    """
    import_tensorflow()
    return private("tensorflow.python.grappler.tf_optimizer", "OptimizeGraph")(config, meta_graph)


def rewriter_config() -> Any:
    """Grappler's ``RewriterConfig`` message class (its enums: ``ONE``, ``NCHW_TO_NHWC``...)."""
    import_tensorflow()
    return private("tensorflow.core.protobuf.rewriter_config_pb2", "RewriterConfig")


def deprecation_notices_silenced() -> contextlib.AbstractContextManager[Any]:
    """TensorFlow's switch for its deprecation notices, which it logs whatever the logging setup."""
    import_tensorflow()
    return private("tensorflow.python.util.deprecation", "silence")()


def convert_variables_to_constants_v2(function: Any) -> Any:
    """Freeze a concrete function, keeping its control flow as ``While``/``If`` ops (``lower_control_flow=False``).

    TensorFlow 2's freezing function has no public name (the v1 one,
    ``tf.compat.v1.graph_util.convert_variables_to_constants``, takes a session).
    """
    import_tensorflow()
    convert = private("tensorflow.python.framework.convert_to_constants", "convert_variables_to_constants_v2")
    return convert(function, lower_control_flow=False)


def keras_operation(name: str) -> type | None:
    """Keras 3's operation class ``name`` (``NotEqual``...) from ``keras.src.ops.numpy``, or ``None``.

    A Keras 3 ``.h5`` config names the operations a Functional model applies to
    Keras tensors like layers, without the module a ``.keras`` config gives them.
    """
    import_keras()
    found = getattr(private("keras.src.ops.numpy"), name, None)
    return found if isinstance(found, type) else None


@contextlib.contextmanager
def keras_name_counters_restarted() -> Iterator[None]:
    """Restart Keras 3's layer auto-naming counters within the block, and put them back after.

    Layers that Python code creates while a model loads (the inside of a custom
    layer) are named from process-wide counters (``dense_7``), and the names end
    up in graph nodes: without this the bytes of a frozen graph would depend on
    what the process built before. Keras keeps the counters in its global state.
    """
    import collections

    global_state = private("keras.src.backend.common.global_state")
    key = "object_name_uids"
    saved = global_state.get_global_attribute(key)
    global_state.set_global_attribute(key, collections.defaultdict(int))
    try:
        yield
    finally:
        global_state.set_global_attribute(key, saved)


@contextlib.contextmanager
def layer_base_classes_restored() -> Iterator[None]:
    """Put back the base classes tf-keras swaps while a model is built in graph mode.

    tf-keras picks a layer's v1 (graph) or v2 (eager) base class when the
    layer is made, by assigning ``__bases__`` on the class itself; building
    in our graph would leave the caller's eager models of the same classes
    broken ("Your Layer or Model is in an invalid state").
    """
    classes, pending = [], [import_tf_keras().layers.Layer]
    while pending:
        cls = pending.pop()
        classes.append(cls)
        pending.extend(cls.__subclasses__())
    saved = [(cls, cls.__bases__) for cls in classes]
    try:
        yield
    finally:
        for cls, bases in saved:
            if cls.__bases__ != bases:
                cls.__bases__ = bases


def manual_variable_initialization() -> bool:
    """tf-keras' manual variable initialization flag (``backend._MANUAL_VAR_INIT``), to put it back after setting it.

    ``tf_keras.backend.manual_variable_initialization(value)`` sets the flag; no public function reads it.
    """
    import_tf_keras()
    return bool(private("tf_keras.src.backend", "_MANUAL_VAR_INIT"))


def keras_get_session() -> Callable[[], Any]:
    """tf-keras' ``backend.get_session``: the default session, once it has initialized the variables
    tf-keras made in its graph that nothing has set yet (unless initialization is manual).

    TensorFlow exports it as ``tf.compat.v1.keras.backend.get_session`` only while ``tf.keras`` is
    tf-keras; tf-keras' own API exports no TF1 function.
    """
    import_tf_keras()
    return private("tf_keras.src.backend", "get_session")


def batch_norm_folder() -> Callable[[Any], Any]:
    """``optimize_for_inference_lib.fold_batch_norms``: BatchNorm after a convolution folded into its weights.

    It takes a ``GraphDef`` and returns a new one, without the function
    library. TensorFlow has no public way to fold BatchNorm into convolution
    weights in a frozen graph (Grappler's remapper fuses them into internal
    ``_FusedConv2D`` ops instead, which other runtimes cannot load).
    """
    import_tensorflow()
    return private("tensorflow.python.tools.optimize_for_inference_lib", "fold_batch_norms")


def import_serialized_graph_def(graph: Any, data: bytes) -> None:
    """Import the serialized ``GraphDef`` ``data`` into the empty ``graph``, as ``import_graph_def(name="")`` does.

    ``tf.graph_util.import_graph_def`` takes a parsed message and serializes it again
    for TensorFlow's C API: for a frozen graph of hundreds of MB, a parse and a
    serialization in Python and two more copies of its constants held at once. The
    bytes go to the C API's import (``TF_GraphImportGraphDefWithResults``, which adds
    the default attributes and the function library) as they are; the Python
    operations are then made as ``import_graph_def`` makes them (``importer._ProcessNewOps``).
    The library's functions are not registered on the Python side, which only
    building more ops in Python needs, not running the graph.

    Raises:
        ValueError: ``data`` is not a graph TensorFlow can import (as ``import_graph_def`` raises).
    """
    tf = import_tensorflow()
    c_api = private("tensorflow.python.client.pywrap_tf_session")
    c_api_util = private("tensorflow.python.framework.c_api_util")
    process_new_ops = private("tensorflow.python.framework.importer", "_ProcessNewOps")
    mutation_lock, c_graph = _attribute(graph, "_mutation_lock"), _attribute(graph, "_c_graph")
    scoped = c_api_util.ScopedTFImportGraphDefOptions()
    c_api.TF_ImportGraphDefOptionsSetPrefix(scoped.options, "")
    c_api.TF_ImportGraphDefOptionsSetUniquifyNames(scoped.options, True)
    c_api.TF_ImportGraphDefOptionsSetValidateColocationConstraints(scoped.options, True)
    with mutation_lock():
        buffer = c_api.TF_NewBufferFromString(data)
        try:
            with c_graph.get() as handle:
                c_api_util.ScopedTFImportGraphDefResults(
                    c_api.TF_GraphImportGraphDefWithResults(handle, buffer, scoped.options))
        except tf.errors.InvalidArgumentError as exc:
            raise ValueError(str(exc)) from exc
        finally:
            c_api.TF_DeleteBuffer(buffer)
        process_new_ops(graph)


def _attribute(value: Any, name: str) -> Any:
    """``value.name``, a private attribute; :class:`MovedInternalError` if it is not there."""
    try:
        return getattr(value, name)
    except AttributeError as exc:
        raise MovedInternalError(
            f"freezekeras needs {type(value).__module__}.{type(value).__name__}.{name}, which {_installed()} "
            f"does not have (AttributeError: {exc}). Install the TensorFlow and tf-keras versions freezekeras "
            "pins (pip install freezekeras again), or report it with the versions above."
        ) from exc


def _installed() -> str:
    from importlib import metadata

    versions = []
    for name in ("tensorflow", "tf-keras"):
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    return " with ".join(versions)
