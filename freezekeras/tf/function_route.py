"""The function route: a model traced into a concrete function, then frozen with ``convert_variables_to_constants_v2``.

Keras 3 models (``.keras`` archives, Keras 3 ``.h5`` files, Keras 3 weights with
their architecture), SavedModel signatures, and Keras 2 files given
``--route function`` take this route; Keras 1 and 2 files take the session route
(:mod:`freezekeras.tf.loading` and :mod:`freezekeras.tf.freezing`) by default.

1. **Trace** the model in inference mode (``training=False``) into a concrete
   function whose inputs have an unknown batch dimension.
2. **Freeze**: ``convert_variables_to_constants_v2(..., lower_control_flow=False)``.
   Recurrent layers stay ``While`` loops with their function library, which
   tf2onnx turns into native ONNX ``LSTM``/``GRU`` nodes.
3. **Name**: the placeholders take the input names, and each output gets an
   ``Identity`` node of its own name, so that no name a user types carries
   TensorFlow's counters (``functional_1/dense_1/...``). The names are the
   model's: Keras 3 input and output layer names (the rule of
   :func:`freezekeras.kerasfile.keras3.io_names`, which ``inspect`` predicts
   them with), a SavedModel signature's keys, or, for a Keras 2 file, the nodes
   the session route names.
4. **Simplify** with Grappler (pruning, constant folding, arithmetic and
   dependency optimizers): the variables' ``ReadVariableOp``/``Identity``
   chains and the reshapes of constants fold into plain constants, which
   OpenCV's dnn module and other importers need.
"""

from __future__ import annotations

import contextlib
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freezekeras.contract import ShapeSpec, resolve_shapes
from freezekeras.errors import ConversionError, UnknownObjectError, UsageError, error_summary
from freezekeras.graphdef.lint import renamed_input
from freezekeras.kerasfile.h5file import KerasFileInfo
from freezekeras.kerasfile.keras3 import Keras3FileInfo, node_name, refuse_lambda_layers, unique_names
from freezekeras.results import TensorSpec
from freezekeras.tf.custom import load_custom_objects
from freezekeras.tf.freezing import check_tables, order_nodes, stable_function_names
from freezekeras.tf.grappler import run_passes
from freezekeras.tf.imports import import_keras, import_tensorflow, quiet
from freezekeras.tf.internals import (
    convert_variables_to_constants_v2,
    keras_name_counters_restarted,
    keras_operation,
)
from freezekeras.tf.layers import integer_input_limit, stateful_layers
from freezekeras.tf.loading import eager_keras_model, keras_session
from freezekeras.tf.verification import INT_HIGH

#: The Grappler passes that simplify a frozen function, in order (run twice).
SIMPLIFY_PASSES = ("pruning", "constfold", "arithmetic", "dependency", "constfold", "pruning")
#: A Keras 3 archive's weights, inside the zip.
ARCHIVE_WEIGHTS = "model.weights.h5"


@dataclass
class TracedModel:
    """A model traced into a concrete function, and what verification compares the frozen graph with.

    Attributes:
        function: The concrete function (inference mode, unknown batch dimension).
        inputs: The graph's inputs: ``name`` the placeholder, ``layer`` the Keras
            input layer or signature key; in the function's input order.
        outputs: The graph's outputs: ``name`` the ``Identity`` node, ``layer``
            the Keras output layer or signature key; in its output order.
        predict: The model's own predictions for feeds keyed by input name, one
            array per output (Keras' ``predict``, or the SavedModel signature).
        notes: What the user should know (config repairs, what a SavedModel holds).
        int_high: Random integer inputs stay below this (the smallest Embedding size).
        stateful: Names of stateful recurrent layers (frozen with a zero state).
        owner: Whatever keeps the function's variables alive (the model, the loaded SavedModel).
    """

    function: Any
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    predict: Callable[[dict[str, Any]], list[Any]]
    notes: tuple[str, ...] = ()
    int_high: int = INT_HIGH
    stateful: tuple[str, ...] = ()
    owner: Any = field(default=None, repr=False)


# --------------------------------------------------------------------------- Keras 3

@contextlib.contextmanager
def keras3_model(info: Keras3FileInfo, *, custom_objects: Path | None = None, allow_lambda: bool = False,
                 verbose: bool = False, input_shapes: Sequence[ShapeSpec] = (),
                 batch_size: int | None = None) -> Iterator[TracedModel]:
    """Load a Keras 3 model with Keras 3 on TensorFlow and trace it.

    Args:
        info: The file, read by :func:`freezekeras.kerasfile.keras3.read_keras3_file`
            (its config already repaired).
        custom_objects: A Python file defining the model's custom layers and functions.
        allow_lambda: Load Lambda layers (Keras' ``safe_mode=False``).
        verbose: Leave TensorFlow's and Keras' logging on.
        input_shapes: ``--input-shape`` specs, fixed when the model is traced (see :func:`_trace_keras`).
        batch_size: ``--batch-size``, fixed when the model is traced too.

    Raises:
        LambdaLayerError: The model holds Lambda layers and ``allow_lambda`` is false.
        UnknownObjectError: The model uses a class Keras does not know.
        ConversionError: Keras could not build or trace the model.
    """
    if info.lambda_layers and not allow_lambda:
        refuse_lambda_layers(info)
    keras = import_keras(verbose=verbose)
    objects = load_custom_objects(custom_objects) if custom_objects is not None else {}
    notes = info.notes
    if info.kind == "keras-h5":
        operations = _operations_named_as_layers(keras, info.config, objects)
        objects = {**operations, **objects}
        notes += tuple(f"{name}: a Keras operation that Keras 3's .h5 loader cannot find by name; "
                       "freezekeras took it from Keras" for name in sorted(operations))
    with quiet(verbose), keras_name_counters_restarted():
        try:
            model = _load_keras3(keras, info, objects, safe_mode=not allow_lambda)
        except (UsageError, ConversionError):
            raise
        except Exception as exc:  # Keras raises many types for a model it cannot build
            raise _keras3_load_error(exc, info, custom_objects) from exc
        traced = _trace_keras(keras.tree, model, _live_names(model), notes=notes, input_shapes=input_shapes,
                              batch_size=batch_size, predict=lambda x: model.predict(x, verbose=0), source=info.path,
                              scope=keras.StatelessScope)
    yield traced


def _load_keras3(keras: Any, info: Keras3FileInfo, objects: dict[str, Any], *, safe_mode: bool) -> Any:
    """The model of ``info``: Keras' own ``load_model`` for a file as saved, else built from the (repaired) config."""
    if not info.notes and info.architecture is None:
        return keras.saving.load_model(str(info.path), custom_objects=objects, compile=False, safe_mode=safe_mode)
    model = keras.saving.deserialize_keras_object(info.config, custom_objects=objects, safe_mode=safe_mode)
    if info.kind != "keras-archive":
        model.load_weights(str(info.path))
        return model
    with tempfile.TemporaryDirectory(prefix="freezekeras-") as folder, zipfile.ZipFile(info.path) as archive:
        if ARCHIVE_WEIGHTS not in archive.namelist():
            raise ConversionError(f"{info.path}: the archive holds no {ARCHIVE_WEIGHTS}, so the model has no weights. "
                                  "Save the model again with model.save('model.keras').")
        model.load_weights(archive.extract(ARCHIVE_WEIGHTS, folder))
    return model


def _operations_named_as_layers(keras: Any, config: Any, objects: dict[str, Any]) -> dict[str, Any]:
    """Keras operations (``NotEqual``: the mask of an ``Embedding(mask_zero=True)``) a Keras 3 ``.h5`` config
    names without the ``module`` a ``.keras`` config gives them, so that Keras' ``.h5`` loader finds no such layer."""
    found = {}
    for entry in _class_entries(config):
        name = entry["class_name"]
        if "module" not in entry and name not in objects and not hasattr(keras.layers, name):
            operation = keras_operation(name)
            if operation is not None:
                found[name] = operation
    return found


def _class_entries(value: Any) -> Iterator[dict[str, Any]]:
    """Every serialized object (a dict with a ``class_name``) inside a config, nested ones included."""
    if isinstance(value, dict):
        if isinstance(value.get("class_name"), str):
            yield value
        for item in value.values():
            yield from _class_entries(item)
    elif isinstance(value, list):
        for item in value:
            yield from _class_entries(item)


def _keras3_load_error(exc: Exception, info: Keras3FileInfo, custom_objects: Path | None) -> Exception:
    message = error_summary(exc)
    unknown = _unknown_class(str(exc))
    if unknown:
        hint = (f"{custom_objects} does not define it; add it." if custom_objects is not None else
                "Pass its definition with --custom-objects FILE.py (a Python file defining it, or a "
                "CUSTOM_OBJECTS dict naming it).")
        return UnknownObjectError(f"{info.path}: the model uses {unknown}, which Keras does not know. {hint}")
    return ConversionError(f"{info.path}: Keras 3 could not build the model ({type(exc).__name__}: {message}). "
                           "Check that it loads with keras.saving.load_model, or rerun with --debug.")


def _unknown_class(message: str) -> str | None:
    """``"class 'L1Distance'"`` from Keras 3's "Could not locate class 'L1Distance'" (or function)."""
    for kind, marker in (("class", "Could not locate class '"), ("function", "Could not locate function '"),
                         ("class", "Unknown layer: '")):
        if marker in message:
            return f"{kind} '{message.split(marker, 1)[1].split(chr(39), 1)[0]}'"
    return None


def _live_names(model: Any) -> tuple[list[str], list[str]]:
    """The input and output names of a built Keras 3 model (the rule of ``kerasfile.keras3.io_names``)."""
    import keras

    inputs = [node_name(_layer_of(tensor)) for tensor in keras.tree.flatten(_input_structure(model))]
    structure = getattr(model, "_outputs_struct", None)
    if isinstance(structure, dict):
        outputs = [node_name(str(key)) for key in keras.tree.flatten({key: key for key in structure})]
    else:
        outputs = [node_name(_layer_of(tensor)) for tensor in model.outputs]
    inputs = unique_names(inputs)
    return inputs, unique_names(outputs, reserved=inputs)


def _layer_of(tensor: Any) -> str:
    history = getattr(tensor, "_keras_history", None)
    return history[0].name if history else tensor.name


def _input_structure(model: Any) -> Any:
    try:
        return model.input
    except (AttributeError, ValueError):  # a Sequential that was never called: its inputs, as it takes them
        inputs = list(model.inputs)
        return inputs[0] if len(inputs) == 1 else inputs


# --------------------------------------------------------------------------- Keras 2 (tf-keras)

@contextlib.contextmanager
def traced_tf_keras_model(info: KerasFileInfo, *, custom_objects: Path | None = None, allow_lambda: bool = False,
                          verbose: bool = False, input_shapes: Sequence[ShapeSpec] = (),
                          batch_size: int | None = None) -> Iterator[TracedModel]:
    """Trace a Keras 1 or 2 model built in tf-keras, naming its inputs and outputs as the session route does.

    The model is built twice: in a graph session, for the names the session route
    gives (so that switching route never changes a user's serving code), and
    outside graph mode, to trace.
    """
    tf = import_tensorflow(verbose=verbose)
    objects = load_custom_objects(custom_objects) if custom_objects is not None else {}
    options = {"custom_objects": custom_objects, "allow_lambda": allow_lambda, "verbose": verbose}
    with keras_session(info, objects=objects, **options) as session:
        inputs, outputs = session.inputs(), session.outputs()
    with eager_keras_model(info, objects, **options) as (model, notes):
        names = ([spec.name for spec in inputs], [spec.name for spec in outputs])
        yield _trace_keras(tf.nest, model, names, notes=notes, source=info.path, input_shapes=input_shapes,
                           batch_size=batch_size,
                           predict=lambda x: model.predict(x, verbose=0),
                           layers=([spec.layer for spec in inputs], [spec.layer for spec in outputs]))


# --------------------------------------------------------------------------- tracing a Keras model

def _trace_keras(tree: Any, model: Any, names: tuple[list[str], list[str]], *, notes: tuple[str, ...],
                 predict: Callable[[Any], Any], source: Path,
                 layers: tuple[list[Any], list[Any]] | None = None, input_shapes: Sequence[ShapeSpec] = (),
                 batch_size: int | None = None,
                 scope: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext) -> TracedModel:
    """Trace ``model(inputs, training=False)`` with an unknown batch dimension; ``tree`` flattens and packs.

    ``input_shapes`` (``--input-shape``) and ``batch_size`` (``--batch-size``) are fixed
    in the traced function itself, not only in the frozen graph's placeholders:
    shapes computed while tracing (the element shapes of a recurrent loop's tensor lists, which TFLite needs static)
    then follow from them.

    The call runs in ``scope``: ``keras.StatelessScope`` for Keras 3, which keeps
    variable assignments out of the traced function. Keras 3 recurrent cells with
    ``dropout``/``recurrent_dropout`` draw their dropout masks even at inference
    (unused then), advancing a ``SeedGenerator`` variable with an ``AssignVariableOp``
    that ``convert_variables_to_constants_v2`` cannot freeze.
    """
    tf = import_tensorflow()
    structure = _input_structure(model)
    flat = tree.flatten(structure)
    input_names, output_names = names
    if len(flat) != len(input_names):
        raise ConversionError(f"{source}: the model has {len(flat)} inputs but {len(input_names)} were named; "
                              "rerun with --debug and report it.")
    in_layers = (layers or (input_names, output_names))[0]
    dims = resolve_shapes(source, input_shapes, [
        TensorSpec(name=name, dtype=tensor.dtype.name if hasattr(tensor.dtype, "name") else str(tensor.dtype),
                   shape=(None, *tensor.shape[1:]), layer=layer)
        for tensor, name, layer in zip(flat, input_names, in_layers)], batch=batch_size)
    specs = [tf.TensorSpec(dims.get(name, (None, *tensor.shape[1:])), tensor.dtype, name=name)
             for tensor, name in zip(flat, input_names)]

    def call(*values: Any) -> list[Any]:
        with scope():
            return tree.flatten(model(tree.pack_sequence_as(structure, list(values)), training=False))

    try:
        function = tf.function(call, autograph=False).get_concrete_function(*specs)
    except Exception as exc:  # whatever the model's own code raises while tracing
        raise ConversionError(f"{source}: tracing the model for TensorFlow failed ({type(exc).__name__}: "
                              f"{error_summary(exc)}). Rerun with --debug and report it.") from exc
    if len(function.outputs) != len(output_names):
        raise ConversionError(f"{source}: the traced model has {len(function.outputs)} outputs, not the "
                              f"{len(output_names)} its layers name; rerun with --debug and report it.")
    in_layers, out_layers = layers or (input_names, output_names)

    def own_predictions(feeds: dict[str, Any]) -> list[Any]:
        values = tree.pack_sequence_as(structure, [feeds[name] for name in input_names])
        return [_numpy(value) for value in tree.flatten(predict(values))]

    return TracedModel(
        function=function,
        inputs=tuple(_spec(name, spec.dtype.name, spec.shape, layer) for name, spec, layer
                     in zip(input_names, specs, in_layers)),
        outputs=tuple(_spec(name, tensor.dtype.name, tensor.shape, layer) for name, tensor, layer
                      in zip(output_names, function.outputs, out_layers)),
        predict=own_predictions, notes=notes, int_high=integer_input_limit(model, INT_HIGH),
        stateful=tuple(stateful_layers(model)), owner=model,
    )


def _spec(name: str, dtype: str, shape: Any, layer: str | None) -> TensorSpec:
    dims = None if shape.rank is None else tuple(shape.as_list())
    return TensorSpec(name=name, dtype=dtype, shape=dims, layer=layer)


def _numpy(value: Any) -> Any:
    import numpy as np

    return np.asarray(value.numpy() if hasattr(value, "numpy") else value)


# --------------------------------------------------------------------------- SavedModel

@contextlib.contextmanager
def saved_model(path: Path, *, signature: str = "serving_default", verbose: bool = False) -> Iterator[TracedModel]:
    """Load a SavedModel folder with TensorFlow and take one of its signatures.

    The inputs and outputs are named by the signature's keys, sorted (the order
    in which TensorFlow flattens them). No Python from the folder runs: a
    SavedModel holds graphs of TensorFlow ops.

    Raises:
        UsageError: The SavedModel has no signature ``signature``.
        ConversionError: TensorFlow could not load it.
    """
    tf = import_tensorflow(verbose=verbose)
    with quiet(verbose):
        try:
            loaded = tf.saved_model.load(str(path))
        except Exception as exc:  # a damaged or foreign folder
            raise ConversionError(f"{path}: TensorFlow could not load the SavedModel ({type(exc).__name__}: "
                                  f"{error_summary(exc)}). Export it again (model.export(DIR) in Keras 3).") from exc
    if signature not in loaded.signatures:
        have = ", ".join(sorted(loaded.signatures)) or "none"
        raise UsageError(f"{path}: has no signature '{signature}'; it has: {have}. "
                         "Pass --signature with one of them.")
    function = loaded.signatures[signature]
    keys = sorted(function.structured_input_signature[1])
    given = function.structured_input_signature[1]
    out_keys = sorted(function.structured_outputs)

    def predict(feeds: dict[str, Any]) -> list[Any]:
        result = function(**{key: tf.constant(feeds[key]) for key in keys})
        return [_numpy(result[key]) for key in out_keys]

    inputs = tuple(_spec(key, given[key].dtype.name, given[key].shape, key) for key in keys)
    outputs = tuple(_spec(key, function.structured_outputs[key].dtype.name, function.structured_outputs[key].shape,
                          key) for key in out_keys)
    yield TracedModel(function=function, inputs=inputs, outputs=outputs, predict=predict, owner=loaded)


# --------------------------------------------------------------------------- freezing

def freeze_traced(traced: TracedModel, *, source: Path) -> Any:
    """Freeze ``traced`` into one ``GraphDef``: named inputs and outputs, simplified, stable names.

    Raises:
        ConversionError: TensorFlow could not freeze the function, or the graph
            needs a lookup table.
    """
    tf = import_tensorflow()
    try:
        frozen = convert_variables_to_constants_v2(traced.function)
    except (ValueError, TypeError, tf.errors.OpError) as exc:
        raise ConversionError(f"{source}: TensorFlow could not freeze the function ({error_summary(exc)}). "
                              "Rerun with --debug and report it.") from exc
    input_names = [spec.name for spec in traced.inputs]
    output_names = [spec.name for spec in traced.outputs]
    placeholders = [tensor.op.name for tensor in frozen.inputs]
    graph_def = _named(frozen.graph.as_graph_def(), dict(zip(placeholders, input_names)),
                       dict(zip(output_names, (tensor.name for tensor in frozen.outputs))), frozen.graph)
    graph_def = _simplified(graph_def, output_names)
    _check_names_kept(graph_def, input_names, output_names, source)
    for node in graph_def.node:
        node.device = ""
    check_tables(graph_def, source)
    stable_function_names(graph_def)
    order_nodes(graph_def, first=input_names, last=output_names)
    _record_output_shapes(graph_def, traced.outputs)
    return graph_def


def _named(graph_def: Any, placeholders: dict[str, str], outputs: dict[str, str], graph: Any) -> Any:
    """Rename the placeholders and add one ``Identity`` per output; nodes already holding a wanted name move aside."""
    wanted = set(placeholders.values()) | set(outputs)
    existing = {node.name for node in graph_def.node}
    taken = existing | wanted
    renames = {name: _aside(name, taken) for name in sorted((existing & wanted) - set(placeholders))}
    renames.update(placeholders)
    dtypes = {name: graph.get_tensor_by_name(tensor).dtype.as_datatype_enum for name, tensor in outputs.items()}
    for node in graph_def.node:
        node.name = renames.get(node.name, node.name)
        node.input[:] = [renamed_input(name, renames) for name in node.input]
    for name, tensor in outputs.items():
        identity = graph_def.node.add(name=name, op="Identity", input=[renamed_input(tensor, renames)])
        identity.attr["T"].type = dtypes[name]
    return graph_def


def _aside(name: str, taken: set[str]) -> str:
    """``name`` (taken) with the first free ``_1``, ``_2``... suffix, which is then taken too."""
    free = unique_names([name], reserved=taken)[0]
    taken.add(free)
    return free


def _simplified(graph_def: Any, keep: Sequence[str]) -> Any:
    """Run Grappler's :data:`SIMPLIFY_PASSES` on ``graph_def``, keeping the ``keep`` nodes."""
    simplified = run_passes(graph_def, SIMPLIFY_PASSES, keep)
    simplified.versions.CopyFrom(graph_def.versions)
    return simplified


def _check_names_kept(graph_def: Any, inputs: Sequence[str], outputs: Sequence[str], source: Path) -> None:
    ops = {node.name: node.op for node in graph_def.node}
    lost = [name for name in outputs if ops.get(name) != "Identity"]
    lost += [name for name in inputs if ops.get(name) not in (None, "Placeholder")]
    if lost:
        raise ConversionError(f"{source}: simplifying the frozen graph lost the nodes {', '.join(lost)}; "
                              "rerun with --debug and report it.")


def _record_output_shapes(graph_def: Any, outputs: Sequence[TensorSpec]) -> None:
    """``_output_shapes`` on the output nodes, so that ``inspect`` reports them without TensorFlow."""
    tf = import_tensorflow()
    shapes = {spec.name: spec.shape for spec in outputs}
    for node in graph_def.node:
        if node.name in shapes:
            listed = node.attr["_output_shapes"].list.shape
            del listed[:]
            dims = shapes[node.name]
            listed.add().CopyFrom(tf.TensorShape(None if dims is None else list(dims)).as_proto())
