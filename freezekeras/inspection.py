"""The Python API's :func:`inspect`: a Keras model's or a frozen graph's inputs and outputs.

It imports neither TensorFlow nor the modules that need it, unless asked to
build the model: the command line's ``inspect`` starts in about the time
h5py takes to import.
"""

from __future__ import annotations

import os
from pathlib import Path

from freezekeras.errors import ModelFileError, UsageError, error_summary
from freezekeras.paths import KERAS_SUFFIXES, check_input_path, file_signature
from freezekeras.results import DEFAULT_SIGNATURE, TARGET_NAMES, InspectResult, TensorSpec


def inspect(path: str | os.PathLike, *, architecture: str | os.PathLike | None = None,
            custom_objects: str | os.PathLike | None = None, allow_lambda: bool = False,
            verbose: bool = False, build: bool = False, signature: str = DEFAULT_SIGNATURE,
            target: str | None = None) -> InspectResult:
    """List the inputs and outputs of a Keras model, a SavedModel or a frozen graph, and lint a graph.

    Neither TensorFlow nor Keras is imported unless the model is built: a
    graph is read with protobuf alone, a Keras model's config and weight
    sizes with h5py. For a Keras model the names are the Keras layer names,
    and each carries the graph ``node`` that :func:`convert` will name where
    the rules of :mod:`freezekeras.kerasfile.config` know it (``None`` otherwise);
    output shapes come from :mod:`freezekeras.kerasfile.shapes` (``None`` where it
    cannot derive them) unless the model is built. For a graph,
    inputs are the placeholders and outputs the nodes nothing consumes, and
    ``details["lint"]`` holds what a serving runtime may reject.

    A Keras 3 file (``.keras`` archive, Keras 3 ``.h5``, or a Keras 3
    weights file with ``architecture``) is read with
    :mod:`freezekeras.kerasfile.keras3`: each input and output carries the
    ``node`` convert's function route names (its naming rule), and
    ``details["route"]`` is ``"function"`` (``"session"`` for Keras 1 and 2
    files); ``details["repairs"]`` lists the config repairs made, if any.
    A SavedModel folder is read with protobuf alone: the inputs and outputs of
    ``signature`` (named by key, the nodes convert writes), and what the
    folder holds (:func:`freezekeras.graphdef.savedmodel.saved_model_facts`).

    Args:
        path: A Keras ``.h5``/``.keras`` file, a SavedModel folder or a ``GraphDef`` (``.pb``/``.pbtxt``).
        architecture: For a weights-only ``.h5``: its JSON or YAML architecture (Keras 3
            weights: a ``.keras`` archive's ``config.json``, ``model.to_json()``, or the archive).
        custom_objects: A Python file defining the model's custom layers and
            functions; implies ``build``.
        allow_lambda: Load Lambda layers (runs their Python bytecode); implies ``build``.
        verbose: Leave TensorFlow's logging on.
        build: Build a Keras ``.h5`` model in tf-keras (imports TensorFlow)
            for exact nodes, dtypes and output shapes.
        signature: The SavedModel signature to list (SavedModel folders only).
        target: A runtime of :data:`~freezekeras.results.TARGET_NAMES` (``--target``): a graph's
            lint then also reports what that runtime cannot run
            (:func:`freezekeras.graphdef.targets.target_findings`), and ``details["target"]`` names it.

    Raises:
        UsageError: The path is missing or a directory (other than a SavedModel);
            a SavedModel has no signature ``signature``; an option that does not apply
            (``target`` for anything but a graph); an unknown ``target``.
        ModelFileError: The file is neither a Keras model nor a GraphDef.
        LambdaLayerError: Building, the model holds Lambda layers and they are not allowed.
        UnknownObjectError: Building, the model uses custom layers or functions.
        ConversionError: Building, Keras failed to build the model.
    """
    path = Path(path)
    check_input_path(path, saved_model=True)
    if target not in (None, *TARGET_NAMES):
        raise UsageError(f"target {target!r}: use one of {', '.join(TARGET_NAMES)} (--target).")
    graph = not path.is_dir() and path.suffix.lower() not in KERAS_SUFFIXES and file_signature(path) is None
    if target is not None and not graph:
        raise UsageError(f"{path}: --target checks frozen graphs, and this is a model. Convert it with "
                         f"--target {target}, which checks the graph it writes, or inspect the .pb.")
    if path.is_dir():
        given = [option for option, value in (("--architecture", architecture), ("--custom-objects", custom_objects),
                                              ("--allow-lambda", allow_lambda), ("--build", build)) if value]
        if given:
            raise UsageError(f"{path}: is a SavedModel folder, read from its signatures; "
                             f"{', '.join(given)} applies to Keras files. Drop it.")
        return _saved_model_inspection(path, signature)
    if signature != DEFAULT_SIGNATURE:
        raise UsageError(f"{path}: --signature picks a SavedModel folder's signature, and this is a file. "
                         "Drop --signature.")
    if graph:
        return _graph_inspection(path, target)
    if build or custom_objects is not None or allow_lambda:
        return _built_inspection(path, _path_or_none(architecture), _path_or_none(custom_objects),
                                 allow_lambda=allow_lambda, verbose=verbose)
    return _config_inspection(path, _path_or_none(architecture))


# Each kind of file imports the modules it needs when it comes, so that inspecting a graph
# loads no h5py and inspecting a Keras file no protobuf, and only building loads TensorFlow.

def _built_inspection(path: Path, architecture: Path | None, custom_objects: Path | None, *,
                      allow_lambda: bool, verbose: bool) -> InspectResult:
    """Inspect a Keras file by building the model (imports TensorFlow): tf-keras in a graph session,
    or Keras 3 traced as convert's function route traces it."""
    from freezekeras.kerasfile.generation import keras_generation
    from freezekeras.kerasfile.h5file import read_keras_file
    from freezekeras.tf.loading import keras_session

    if keras_generation(path) == "keras3":
        return _built_keras3_inspection(path, architecture, custom_objects, allow_lambda=allow_lambda,
                                        verbose=verbose)
    info = read_keras_file(path, architecture=architecture)
    with keras_session(info, custom_objects=custom_objects, allow_lambda=allow_lambda, verbose=verbose) as keras:
        return _keras_inspection(info, keras)


def _built_keras3_inspection(path: Path, architecture: Path | None, custom_objects: Path | None, *,
                             allow_lambda: bool, verbose: bool) -> InspectResult:
    from freezekeras.kerasfile.keras3 import read_keras3_file
    from freezekeras.tf.function_route import keras3_model

    info = read_keras3_file(path, architecture=architecture)
    with keras3_model(info, custom_objects=custom_objects, allow_lambda=allow_lambda, verbose=verbose) as traced:
        model = traced.owner
        details = {"keras_version": info.keras_version, "backend": None, "layer_count": len(model.layers),
                   "param_count": int(model.count_params()), "route": "function"}
        return InspectResult(path=path, format=info.kind, inputs=tuple(_by_layer(spec) for spec in traced.inputs),
                             outputs=tuple(_by_layer(spec) for spec in traced.outputs), details=details)


def _graph_inspection(path: Path, target: str | None) -> InspectResult:
    """Inspect a ``GraphDef`` with protobuf alone (imported here: a Keras file does not need it)."""
    from freezekeras.graphdef.reading import graph_details, graph_inputs_outputs, read_graph_def
    from freezekeras.graphdef.targets import target_findings

    graph_def = read_graph_def(path)
    inputs, outputs = graph_inputs_outputs(graph_def)
    details = graph_details(graph_def)
    if target is not None:
        details["target"] = target
        details["lint"] += [finding.to_json() for finding in target_findings(graph_def, target)]
    return InspectResult(path=path, format="graphdef", inputs=inputs, outputs=outputs, details=details)


def _saved_model_inspection(path: Path, signature: str) -> InspectResult:
    """Inspect a SavedModel folder with protobuf alone: one signature, and what the folder holds."""
    from freezekeras.graphdef.savedmodel import read_saved_model, saved_model_facts, serving_meta_graph, signatures_of

    signatures = signatures_of(serving_meta_graph(read_saved_model(path)))
    if signature not in signatures:
        raise UsageError(f"{path}: has no signature '{signature}'; it has: {', '.join(signatures) or 'none'}. "
                         "Pass --signature with one of them.")
    chosen = signatures[signature]
    details = {"signature": signature, "route": "function", **saved_model_facts(path)}
    return InspectResult(path=path, format="saved-model", inputs=chosen.inputs, outputs=chosen.outputs,
                         details=details)


def _keras3_inspection(path: Path, architecture: Path | None) -> InspectResult:
    """Inspect a Keras 3 file from its (repaired) config and weight sizes (h5py and zipfile, no Keras)."""
    from freezekeras.kerasfile.keras3 import config_specs, parameter_count, read_keras3_file

    info = read_keras3_file(path, architecture=architecture)
    try:
        inputs, outputs, layer_count = config_specs(info.config, source=path)
    except (AttributeError, TypeError, KeyError, IndexError, ValueError) as exc:
        raise ModelFileError(
            f"{path}: the model config is malformed ({type(exc).__name__}: {error_summary(exc)}). "
            "The file is damaged; save the model again with model.save('model.keras')."
        ) from exc
    param_count, backend = parameter_count(info)
    details = {"keras_version": info.keras_version, "backend": backend, "layer_count": layer_count,
               "param_count": param_count, "route": "function"}
    if info.architecture is not None:
        details["architecture"] = str(info.architecture)
    if info.notes:
        details["repairs"] = list(info.notes)
    return InspectResult(path=path, format=info.kind, inputs=inputs, outputs=outputs, details=details)


def _config_inspection(path: Path, architecture: Path | None) -> InspectResult:
    """Inspect a Keras file from its config and weight sizes alone (h5py, no TensorFlow)."""
    from freezekeras.kerasfile.generation import keras_generation

    if keras_generation(path) == "keras3":
        return _keras3_inspection(path, architecture)

    import h5py

    from freezekeras.kerasfile.config import config_inspection, weight_count
    from freezekeras.kerasfile.h5file import RESAVE_HINT, read_keras_file, reading_hdf5
    from freezekeras.kerasfile.shapes import model_output_shapes
    from freezekeras.kerasfile.unbuilt import built_sequential

    info = read_keras_file(path, architecture=architecture)
    try:  # a Sequential saved before it was built: its input, as convert will take it from its first weights
        info, notes = built_sequential(info)
    except UsageError:  # no weights tell it: listed without inputs, as the config has none
        notes = ()
    config, keras_version, backend, kind = info.model_config, info.keras_version, info.backend, "keras-h5"
    with reading_hdf5(path), h5py.File(path, "r") as handle:
        param_count = weight_count(handle)
    keras2 = (keras_version or "2.").startswith(("1.", "2."))  # Keras 1: translated
    try:
        inputs, outputs, layer_count = config_inspection(
            config, predict_nodes=keras2, output_shapes=model_output_shapes(config) if keras2 else None)
    except (AttributeError, TypeError, KeyError, IndexError, ValueError) as exc:
        raise ModelFileError(
            f"{path}: the model config is malformed ({type(exc).__name__}: {error_summary(exc)}). "
            f"The file is damaged; {RESAVE_HINT}."
        ) from exc
    details = {"keras_version": keras_version, "backend": backend,
               "layer_count": layer_count, "param_count": param_count, "route": "session"}
    if notes:
        details["notes"] = list(notes)
    return InspectResult(path=path, format=kind, inputs=inputs, outputs=outputs, details=details)


def _keras_inspection(info, keras) -> InspectResult:
    details = {
        "keras_version": info.keras_version,
        "backend": info.backend,
        "layer_count": len(keras.model.layers),
        "param_count": int(keras.model.count_params()),
        "route": "session",
    }
    return InspectResult(
        path=info.path, format="keras-h5",
        inputs=tuple(_by_layer(spec) for spec in keras.inputs()),
        outputs=tuple(_by_layer(spec) for spec in keras.outputs()),
        details=details,
    )


def _by_layer(spec: TensorSpec) -> TensorSpec:
    return TensorSpec(name=spec.layer or spec.name, dtype=spec.dtype, shape=spec.shape, node=spec.name)


def _path_or_none(value: str | os.PathLike | None) -> Path | None:
    return None if value is None else Path(value)
