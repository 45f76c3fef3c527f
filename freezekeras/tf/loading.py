"""Building a Keras ``.h5`` model in tf-keras, in a TF1-style graph session, in inference mode."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from freezekeras.errors import ConversionError, FreezeKerasError, UnknownObjectError, error_summary
from freezekeras.kerasfile.config import channels_first_layers
from freezekeras.kerasfile.h5file import (
    LAMBDA_REPLACEMENT_HINT,
    KerasFileInfo,
    refuse_lambda_layers,
    replace_lambda_functions,
)
from freezekeras.kerasfile.keras1 import is_keras1
from freezekeras.results import TensorSpec
from freezekeras.tf.custom import load_custom_objects
from freezekeras.tf.imports import import_tensorflow, import_tf_keras, quiet
from freezekeras.tf.internals import (
    APPLICATION_LAYERS,
    application_layer,
    builtin_layer_lookup,
    keras_get_session,
    layer_base_classes_restored,
    manual_variable_initialization,
)
from freezekeras.tf.layout import plain_session_config, session_config
from freezekeras.tf.legacy_weights import load_legacy_weights, needs_legacy_loading
from freezekeras.tf.tensors import run_session, tensor_spec

_UNKNOWN_OBJECT = re.compile(
    r"Unknown (layer|activation|activation function|loss|metric|initializer|regularizer|"
    r"constraint|optimizer|object)[^:]*: '?([A-Za-z0-9_.<>]+)'?"
)


@dataclass
class KerasSession:
    """A tf-keras model built in its own ``tf.Graph`` and ``tf.compat.v1.Session``.

    Attributes:
        model: The tf-keras model.
        graph: The graph it was built in.
        session: The session holding its variables.
        notes: What was converted while loading, for the user to know
            (e.g. Theano kernels flipped).
    """

    model: Any
    graph: Any
    session: Any
    notes: tuple[str, ...] = ()

    def inputs(self) -> tuple[TensorSpec, ...]:
        """The model's input placeholders, in its input order.

        ``name`` is the graph node; ``layer`` the Keras input layer.
        """
        return tuple(tensor_spec(t, layer=name) for t, name in zip(self.model.inputs, self.model.input_names))

    def outputs(self) -> tuple[TensorSpec, ...]:
        """The ops producing the model's outputs, in its output order.

        ``name`` is the graph node (``op`` or ``op:index`` for an op's later
        outputs); ``layer`` the Keras output layer.
        """
        return tuple(tensor_spec(t, layer=name) for t, name in zip(self.model.outputs, self.model.output_names))

    def run(self, fetches: list[str], feeds: dict[str, Any]) -> list[Any]:
        """Run the Keras graph: fetch nodes (``op`` or ``op:N``), feeding values by node."""
        return run_session(self.session, fetches, feeds)


@contextlib.contextmanager
def keras_session(info: KerasFileInfo, *, custom_objects: Path | None = None,
                  allow_lambda: bool = False, verbose: bool = False,
                  objects: dict[str, Any] | None = None) -> Iterator[KerasSession]:
    """Build the model of ``info`` in a fresh graph and session, learning phase 0.

    The learning phase is set before the model is built, so Dropout and
    BatchNormalization are built in inference mode with no training switch.

    Args:
        info: The file's metadata, from :func:`freezekeras.kerasfile.h5file.read_keras_file`.
        custom_objects: A Python file defining the model's custom layers and
            functions; it is run (see :func:`freezekeras.tf.custom.load_custom_objects`).
        allow_lambda: Load Lambda layers (runs their Python bytecode).
        verbose: Leave TensorFlow's logging on.
        objects: The custom objects, when the caller loaded them from ``custom_objects`` already.

    Yields:
        The built model with its graph and session; the session is closed on exit.

    Raises:
        LambdaLayerError: The model has Lambda layers holding bytecode, ``custom_objects``
            gives no function for them by layer name, and ``allow_lambda`` is false.
        UnknownObjectError: The model names a layer or function Keras lacks.
        ConversionError: Keras failed to build the model for another reason.
    """
    tf = import_tensorflow(verbose=verbose)
    tf_keras = import_tf_keras(verbose=verbose)
    if objects is None:
        objects = load_custom_objects(custom_objects) if custom_objects is not None else {}
    info = _lambdas_settled(info, objects, allow_lambda)
    graph = tf.Graph()
    with layer_base_classes_restored(), graph.as_default(), quiet(verbose):
        session = tf.compat.v1.Session(graph=graph, config=_session_config(tf_keras, info, objects))
        try:
            with session.as_default():
                tf_keras.backend.set_learning_phase(0)
                with _weights_assigned_not_drawn(tf_keras):
                    model, notes = _load_model(tf_keras, info, objects, custom_objects)
                yield KerasSession(model=model, graph=graph, session=session, notes=notes)
        finally:
            session.close()


@contextlib.contextmanager
def _weights_assigned_not_drawn(tf_keras: Any) -> Iterator[None]:
    """Load with Keras' manual variable initialization: its weights are assigned from the file, never drawn.

    Otherwise loading a weight first runs every variable's random initializer (VGG16: 138
    million numbers, half a second), then overwrites it. On leaving, Keras' ``get_session()``
    (automatic initialization again, unless the caller had made it manual) initializes what
    loading left unassigned, such as a stateful RNN's states.
    """
    manual = manual_variable_initialization()
    tf_keras.backend.manual_variable_initialization(True)
    try:
        yield
    finally:
        tf_keras.backend.manual_variable_initialization(manual)
    keras_get_session()()


def _session_config(tf_keras: Any, info: KerasFileInfo, objects: dict[str, Any]) -> Any:
    """The Keras session's ``ConfigProto``: Grappler off, unless the model may compute channels-first (NCHW).

    Grappler runs on each new fetch (initializing the variables, loading the weights, Keras'
    predictions for verification): about a second for ResNet50 on two cores, which the model
    needs only for its layout optimizer, to run NCHW nodes on CPUs. Those come from a
    ``channels_first`` layer, the ``channels_first`` default of ``keras.json``, or Python code
    (custom objects, Lambda layers), which may make any node.
    """
    if (channels_first_layers(info.model_config) or objects or info.lambda_layers
            or tf_keras.backend.image_data_format() == "channels_first"):
        return session_config()  # NCHW runs on CPUs too
    return plain_session_config()


@contextlib.contextmanager
def eager_keras_model(info: KerasFileInfo, objects: dict[str, Any], *, custom_objects: Path | None = None,
                      allow_lambda: bool = False, verbose: bool = False) -> Iterator[tuple[Any, tuple[str, ...]]]:
    """Build the model of ``info`` in tf-keras outside graph mode, as the function route traces it.

    Args:
        info: The file's metadata, as for :func:`keras_session`.
        objects: The custom objects, already loaded from ``custom_objects``.
        custom_objects: The file they came from, for messages.
        allow_lambda: Load Lambda layers (runs their Python bytecode).
        verbose: Leave TensorFlow's logging on.

    Yields:
        The model and the notes on what loading converted.
    """
    tf_keras = import_tf_keras(verbose=verbose)
    info = _lambdas_settled(info, objects, allow_lambda)
    with layer_base_classes_restored(), quiet(verbose):
        yield _load_model(tf_keras, info, objects, custom_objects)


def _lambdas_settled(info: KerasFileInfo, objects: dict[str, Any], allow_lambda: bool) -> KerasFileInfo:
    """``info`` with the Lambda layers ``objects`` replace by name; refused if others remain, unless allowed."""
    info = replace_lambda_functions(info, objects)
    if not allow_lambda:
        refuse_lambda_layers(info)
    return info


def _load_model(tf_keras, info: KerasFileInfo, objects: dict[str, Any],
                objects_file: Path | None) -> tuple[Any, tuple[str, ...]]:
    unknown = set(_unknown_layer_classes(info.model_config, objects, builtin_layer_lookup()))
    supplied = _application_layers(info.model_config, unknown)
    unknown_layers = sorted(unknown - set(supplied))
    if unknown_layers:
        # Checked first: Keras names only the first, and model_from_json fails on them with
        # "'str' object is not callable".
        names = ", ".join(repr(name) for name in unknown_layers)
        raise UnknownObjectError(
            f"{info.path}: the model uses layer{'s' if len(unknown_layers) > 1 else ''} {names}, "
            f"which Keras does not know. {_custom_objects_hint(objects, objects_file)}"
        )
    notes = (f"{' and '.join(sorted(supplied))}: layers of tf-keras' own applications, which Keras does not "
             "load by name; freezekeras took their definitions from tf-keras",) if supplied else ()
    objects = {**objects, **supplied}
    try:
        legacy = needs_legacy_loading(info.keras_version, info.backend)
        if info.architecture is None and not info.config_rewritten and not legacy:
            return tf_keras.models.load_model(str(info.path), custom_objects=objects, compile=False), notes
        model = tf_keras.models.model_from_json(json.dumps(info.model_config), custom_objects=objects)
        if not legacy:
            model.load_weights(str(info.path))
            return model, notes
        flipped = load_legacy_weights(model, info.path, keras_version=info.keras_version, backend=info.backend)
        if flipped:
            notes += (f"kernels of {', '.join(flipped)} were flipped: the model was trained with Theano, "
                      "which stores them mirrored (Keras 2 did the same when loading)",)
        return model, notes
    except FreezeKerasError:
        raise
    except Exception as exc:  # Keras raises many types for a model it cannot build
        raise _load_error(exc, info, objects, objects_file) from exc


def _application_layers(config: Any, unknown: set[str]) -> dict[str, Any]:
    """tf-keras' own classes for the :data:`APPLICATION_LAYERS` among ``unknown`` whose configs are theirs."""
    found = {}
    for name in unknown & set(APPLICATION_LAYERS):
        configs = [layer.get("config") or {} for layer in _layer_entries(config) if layer.get("class_name") == name]
        if configs and all(APPLICATION_LAYERS[name] in layer_config for layer_config in configs):
            found[name] = application_layer(name)
    return found


def _load_error(exc: Exception, info: KerasFileInfo, objects: dict[str, Any],
                objects_file: Path | None) -> ConversionError | UnknownObjectError:
    """The one-line error that says why Keras could not build the model, and what to do."""
    path, message = info.path, f"{type(exc).__name__}: {error_summary(exc)}"
    if is_keras1(info.keras_version) and not _UNKNOWN_OBJECT.search(str(exc)):
        return ConversionError(
            f"{path}: was saved by Keras {info.keras_version}; its config was translated to Keras 2, "
            f"but tf-keras could not build it ({message}). Load the model in Keras 2.0-2.3, save it "
            "again with model.save() and convert that file; please also report this with --debug output."
        )
    if info.lambda_layers and _is_marshal_error(exc):
        return ConversionError(
            f"{path}: the bytecode of Lambda layers ({', '.join(info.lambda_layers)}) was written by "
            f"another Python version and cannot be loaded here ({message}). Give your own functions "
            f"for them with --custom-objects FILE.py ({LAMBDA_REPLACEMENT_HINT}), or rebuild the "
            "model in this Python and save it again."
        )
    unknown = _UNKNOWN_OBJECT.search(str(exc))
    if unknown:
        kind, name = unknown.groups()
        return UnknownObjectError(
            f"{path}: the model uses {kind} '{name}', which Keras does not know. "
            f"{_custom_objects_hint(objects, objects_file)}"
        )
    source = f"the architecture in {info.architecture} with these weights" if info.architecture else "the model"
    return ConversionError(
        f"{path}: Keras could not build {source} ({message}). "
        "Check that it loads in tf_keras, or rerun with --debug."
    )


def _custom_objects_hint(objects: dict[str, Any], objects_file: Path | None) -> str:
    if objects_file is None:
        return ("Pass the definitions with --custom-objects FILE.py (a Python file defining them, "
                "or a CUSTOM_OBJECTS dict naming them).")
    given = ", ".join(sorted(objects)) or "nothing"
    return f"{objects_file} does not define them (it gives: {given}); add them or a CUSTOM_OBJECTS dict."


def _unknown_layer_classes(config: Any, objects: dict[str, Any], builtin: Callable[[str], Any]) -> Iterator[str]:
    """Yield the layer class names in a model config that neither Keras nor ``objects`` define."""
    for layer in _layer_entries(config):
        name = layer.get("class_name")
        if isinstance(name, str) and name not in objects and builtin(name) is None:
            yield name


def _layer_entries(config: Any) -> Iterator[dict[str, Any]]:
    """Every layer entry of a model config: nested models' and wrapped (TimeDistributed, ...) ones too."""
    inner = config.get("config") if isinstance(config, dict) else None
    layers = inner.get("layers") if isinstance(inner, dict) else inner
    if isinstance(inner, dict) and isinstance(inner.get("layer"), dict):
        layers = [inner["layer"]]
    for layer in layers if isinstance(layers, list) else ():
        if isinstance(layer, dict):
            yield layer
            yield from _layer_entries(layer)


def _is_marshal_error(exc: BaseException) -> bool:
    return isinstance(exc, EOFError) or "marshal" in str(exc) or "bad magic" in str(exc)
