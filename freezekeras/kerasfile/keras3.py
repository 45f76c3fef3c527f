"""Keras 3 files read without TensorFlow or Keras: ``.keras`` archives, Keras 3 ``.h5`` files, weights files.

Keras 3 models are converted by the function route (a concrete function
frozen with ``convert_variables_to_constants_v2``, :mod:`freezekeras.tf`); this
module holds what can be known before Keras is imported: which generation of
Keras wrote a file (:func:`freezekeras.kerasfile.generation.keras_generation`), its model config, repaired
where Keras 3.15 cannot read what older Keras 3 releases wrote
(:func:`repair_config`), its Lambda layers, and the names the frozen graph's
inputs and outputs will get (:func:`io_names`).

Naming rule (what the function route names the graph's nodes; it is
computed from the live model there and predicted from the config here):

* inputs, in Keras' flattening order of the Functional config's
  ``input_layers`` (one leaf ``[layer, node, tensor]``; a list of leaves, in
  order, nested lists depth first; a dict, sorted by key), each named by its
  input layer's name (a dict's keys do not name inputs);
* outputs, in the flattening order of ``output_layers``, each named by the
  layer in the leaf (a nested model's output: the nested model's name); when
  ``output_layers`` is a dict, each output is named by its key instead;
* a Sequential model: the input is its InputLayer's name (Keras 3 lists the
  InputLayer first). A Sequential config without one but with
  ``build_input_shape`` gets an InputLayer Keras names itself when it builds
  the model: ``input_layer``, or ``input_layer_<n>`` when ``n`` such
  InputLayers were made before it while loading (Sequential models nested
  in it, depth first; the function route loads with Keras' name counters
  reset). The outputs are the last layer's: its name, once per output of a
  nested model (a dict-output nested model as the last layer still names
  them by layer, Sequential does not keep the dict);
* then each name is made a valid node name (:func:`node_name`: characters
  outside ``[A-Za-z0-9_.\\-/]`` become ``_``), the inputs are made unique
  (:func:`unique_names`: a repeat gets ``_1``, ``_2``, ...), and the outputs
  unique among themselves and the inputs.

A Sequential model without InputLayer and without ``build_input_shape``
was never built: its input is unknown, and :func:`io_names` raises.
"""

from __future__ import annotations

import copy
import json
import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from freezekeras.errors import LambdaLayerError, ModelFileError, UsageError, WeightsOnlyError, error_summary
from freezekeras.kerasfile.generation import is_keras3_weights_file
from freezekeras.kerasfile.h5file import HDF5_ERRORS, read_attribute, text_attribute
from freezekeras.paths import check_input_path, file_signature
from freezekeras.results import TensorSpec

CONFIG_MEMBER = "config.json"
METADATA_MEMBER = "metadata.json"
WEIGHTS_MEMBER = "model.weights.h5"
RESAVE_ARCHIVE_HINT = "Copy or download it again, or save the model again with model.save('model.keras')"
ARCHITECTURE_HINT = "Pass --architecture config.json (a .keras archive's config.json or model.to_json())"

#: Layers whose ``call(x, training=False)`` returns ``x`` unchanged (replaced by Identity).
INFERENCE_IDENTITY_LAYERS = frozenset({
    "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation",
    "RandomContrast", "RandomBrightness", "RandomSaturation", "RandomHue",
    "RandomSharpness", "RandomColorJitter", "RandomColorDegeneration",
    "RandomGrayscale", "RandomShear", "RandomPerspective", "RandomErasing",
    "RandomGaussianBlur", "RandomInvert", "RandomPosterization",
    "RandomElasticTransform", "AugMix", "RandAugment", "CutMix", "MixUp",
})
_KEPT_LAYER_ARGS = ("name", "trainable", "dtype")
_IO_KEYS = ("input_layers", "output_layers")
_MODEL_CLASSES = {"Sequential", "Functional", "Model"}
_NODE_NAME_RE = re.compile(r"[^A-Za-z0-9_.\-/]")


@dataclass(frozen=True)
class Keras3FileInfo:
    """What a Keras 3 file says about its model, read without Keras.

    Attributes:
        path: The file given.
        kind: ``"keras-archive"`` (a ``.keras`` zip), ``"keras-h5"`` (Keras 3's
            legacy ``.h5``) or ``"keras-weights"`` (a ``.weights.h5`` from ``save_weights``).
        config: The model config after :func:`repair_config` (``{"class_name", "config", ...}``).
        keras_version: ``metadata.json``'s ``keras_version`` (archive) or the
            ``keras_version`` attribute (``.h5``); ``None`` for weights files.
        notes: One line per repair made; empty when the config is as saved.
        lambda_layers: Names of the layers holding Python bytecode (``__lambda__``), nested models included.
        architecture: The ``--architecture`` file the config came from (weights files).
    """

    path: Path
    kind: str
    config: dict[str, Any]
    keras_version: str | None
    notes: tuple[str, ...] = ()
    lambda_layers: tuple[str, ...] = ()
    architecture: Path | None = None


# --------------------------------------------------------------------------- which Keras wrote a file

# --------------------------------------------------------------------------- reading

def read_keras3_file(path: Path, *, architecture: Path | None = None) -> Keras3FileInfo:
    """Read a Keras 3 file's config (repaired), version and Lambda layers.

    Args:
        path: A ``.keras`` archive, a Keras 3 ``.h5`` model, or a Keras 3 weights file.
        architecture: The architecture of a weights file: a ``.keras`` archive's
            ``config.json``, ``model.to_json()`` output, or a ``.keras`` archive.
            For an ``.h5`` model it replaces the file's own config.

    Raises:
        UsageError: A path is missing or a directory; ``architecture`` given with a ``.keras`` archive.
        ModelFileError: The file is damaged or truncated, or holds no Keras 3 model config.
        WeightsOnlyError: A weights file without ``architecture``.
    """
    check_input_path(path)
    if architecture is not None:
        check_input_path(architecture, option="--architecture",
                         expected="a JSON architecture (config.json or model.to_json()) or a .keras archive")
    if file_signature(path) == "zip":
        if architecture is not None:
            raise UsageError(f"{path}: is a .keras archive, which holds its own architecture. Drop --architecture.")
        config, version = _read_archive(path)
        kind = "keras-archive"
    else:
        config, version, kind = _read_h5(path, architecture)
    repaired, notes = repair_config(config)
    return Keras3FileInfo(path=path, kind=kind, config=repaired, keras_version=version, notes=tuple(notes),
                          lambda_layers=tuple(find_lambda_layers(repaired)), architecture=architecture)


def _damaged(path: Path, what: str) -> ModelFileError:
    return ModelFileError(f"{path}: {what}: the .keras archive is damaged or truncated. {RESAVE_ARCHIVE_HINT}.")


def _read_archive(path: Path) -> tuple[dict[str, Any], str | None]:
    """``config.json`` and ``metadata.json``'s keras_version of a ``.keras`` zip."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            for member in (CONFIG_MEMBER, WEIGHTS_MEMBER):
                if member not in names:
                    raise _damaged(path, f"it has no {member}")
            config = _json_member(path, archive, CONFIG_MEMBER)
            metadata = _json_member(path, archive, METADATA_MEMBER) if METADATA_MEMBER in names else {}
            with archive.open(WEIGHTS_MEMBER) as stream:
                if stream.read(8) != b"\x89HDF\r\n\x1a\n":
                    raise _damaged(path, f"its {WEIGHTS_MEMBER} is not an HDF5 file")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, NotImplementedError, zlib.error) as exc:
        raise _damaged(path, f"not a readable zip ({error_summary(exc)})") from exc
    if not isinstance(metadata, dict):
        raise _damaged(path, f"{METADATA_MEMBER} is not a JSON object")
    return _model_config(path, config, CONFIG_MEMBER), text_attribute(metadata.get("keras_version"))


def _json_member(path: Path, archive: zipfile.ZipFile, member: str) -> Any:
    try:
        return json.loads(archive.read(member).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise _damaged(path, f"its {member} is not valid JSON ({error_summary(exc)})") from exc


def _model_config(path: Path, config: Any, what: str) -> dict[str, Any]:
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str) \
            or not isinstance(config.get("config"), dict):
        raise ModelFileError(f"{path}: {what} is not a Keras model config (no class_name/config). "
                             f"{RESAVE_ARCHIVE_HINT}.")
    return config


def _read_h5(path: Path, architecture: Path | None) -> tuple[dict[str, Any], str | None, str]:
    """The config, keras_version and kind of a Keras 3 ``.h5`` model or weights file."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            raw = read_attribute(handle, "model_config")
            version = text_attribute(read_attribute(handle, "keras_version"))
            weights_only = raw is None and is_keras3_weights_file(handle)
    except HDF5_ERRORS as exc:
        raise ModelFileError(f"{path}: the HDF5 file is damaged or truncated ({error_summary(exc)}). "
                             "Copy or download it again.") from exc
    if weights_only:
        if architecture is None:
            raise WeightsOnlyError(f"{path}: holds Keras 3 weights only (saved with save_weights), no "
                                   f"architecture. {ARCHITECTURE_HINT}.")
        return read_architecture(architecture), None, "keras-weights"
    if architecture is not None:
        return read_architecture(architecture), version, "keras-h5"
    if raw is None:
        raise ModelFileError(f"{path}: is an HDF5 file but holds no Keras model (no model_config attribute). "
                             "Pass a Keras model file saved with model.save('model.keras').")
    if version is None or not version.startswith("3."):
        raise ModelFileError(f"{path}: was not saved by Keras 3 (keras_version {version or 'unknown'}). "
                             "Pass a Keras 3 file.")
    try:
        config = json.loads(text_attribute(raw) or "")
    except ValueError as exc:
        raise ModelFileError(f"{path}: the model_config attribute is not valid JSON ({error_summary(exc)}). "
                             f"The file is damaged; {RESAVE_ARCHIVE_HINT[0].lower()}{RESAVE_ARCHIVE_HINT[1:]}.") \
            from exc
    return _model_config(path, config, "the model_config attribute"), version, "keras-h5"


def read_architecture(path: Path) -> dict[str, Any]:
    """A Keras 3 architecture: JSON (``config.json``, ``model.to_json()``) or a ``.keras`` archive's config.

    Raises:
        ModelFileError: The file is not a Keras model config (or a damaged archive).
    """
    if file_signature(path) == "zip":
        return _read_archive(path)[0]
    try:
        config = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path}: the architecture file is not valid JSON ({error_summary(exc)}). "
                             f"{ARCHITECTURE_HINT}.") from exc
    if isinstance(config, str):  # json.dumps(model.to_json()): a JSON string holding the JSON
        try:
            config = json.loads(config)
        except ValueError:
            pass
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str) \
            or not isinstance(config.get("config"), dict):
        raise ModelFileError(f"{path}: the architecture file is not a Keras model config (no class_name/config). "
                             f"{ARCHITECTURE_HINT}.")
    return config


# --------------------------------------------------------------------------- Lambda layers

def find_lambda_layers(config: Any) -> Iterator[str]:
    """Yield the name of every layer holding Python bytecode (a ``__lambda__`` object), nested models included.

    In Keras 3 a Lambda's function (or output shape, or mask) serialised as
    bytecode is ``{"class_name": "__lambda__", ...}``; a named function is not bytecode.
    """
    seen: list[str] = []

    def walk(node: Any, layer: str | None) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, layer)
            return
        if not isinstance(node, dict):
            return
        if node.get("class_name") == "__lambda__":
            name = layer or "<unnamed>"
            if name not in seen:
                seen.append(name)
            return
        if _is_layer_config(node):
            layer = _layer_name(node)
        for value in node.values():
            walk(value, layer)

    walk(config, None)
    yield from seen


def refuse_lambda_layers(info: Keras3FileInfo) -> None:
    """Raise :class:`LambdaLayerError` naming the model's Lambda layers, if it has any."""
    if info.lambda_layers:
        raise LambdaLayerError(
            f"{info.path}: the model holds Lambda layers ({', '.join(info.lambda_layers)}) whose Python bytecode "
            "Keras would run while loading. If you trust this file, pass --allow-lambda."
        )


# --------------------------------------------------------------------------- repairs

def repair_config(config: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A copy of a Keras 3 model config that Keras 3.15 can load, and one note per change.

    Two repairs, each what the Keras release that wrote the file did itself:

    1. Singleton input/output lists (keras-team/keras#20084): Keras <= 3.8
       wrote one input or output as ``[["out", 0, 0]]`` and unwrapped it when
       loading; Keras 3.15 keeps the list, so a nested model then passes
       ``[tensor]`` on and the next layer fails. They are unwrapped to the leaf.
    2. Random augmentation layers (:data:`INFERENCE_IDENTITY_LAYERS`), identity
       at inference, become ``Identity`` layers keeping name, dtype and
       trainable: their arguments change between releases (Keras 3.5 wrote
       ``value_range`` for RandomRotation, which 3.15 rejects). They hold no
       weights. ``RandomCrop`` is not one of them (a centre crop at inference).

    ``config`` is not modified; ``notes`` is empty when nothing changed.
    """
    repaired = copy.deepcopy(config)
    notes: list[str] = []
    _repair(repaired, "", notes)
    return repaired, notes


def _repair(node: Any, path: str, notes: list[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _repair(item, path, notes)
        return
    if not isinstance(node, dict):
        return
    if _is_layer_config(node):
        path = f"{path}/{_layer_name(node)}" if path else _layer_name(node)
        if _is_inference_identity(node):
            _replace_with_identity(node, path, notes)
            return
        _unwrap_singleton_io(node["config"], path, notes)
    for value in node.values():
        _repair(value, path, notes)


def _is_layer_config(node: dict[str, Any]) -> bool:
    return isinstance(node.get("class_name"), str) and isinstance(node.get("config"), dict)


def _layer_name(node: dict[str, Any]) -> str:
    return str(node["config"].get("name") or node.get("name") or node["class_name"])


def _is_inference_identity(node: dict[str, Any]) -> bool:
    """A built-in (not a custom subclass of the same name) inference-identity layer."""
    if node["class_name"] not in INFERENCE_IDENTITY_LAYERS:
        return False
    module = node.get("module")
    return (module is None or str(module).startswith("keras")) and \
        node.get("registered_name") in (None, node["class_name"])


def _replace_with_identity(node: dict[str, Any], path: str, notes: list[str]) -> None:
    old_class, old_args = node["class_name"], node["config"]
    node["class_name"] = "Identity"
    node["config"] = {key: old_args[key] for key in _KEPT_LAYER_ARGS if key in old_args}
    if "module" in node:
        node["module"] = "keras.layers"
    if "registered_name" in node:
        node["registered_name"] = None
    dropped = sorted(set(old_args) - set(_KEPT_LAYER_ARGS))
    notes.append(f"{path}: {old_class} replaced with Identity (identity at inference); dropped arguments {dropped}")


def _unwrap_singleton_io(inner: dict[str, Any], path: str, notes: list[str]) -> None:
    for key in _IO_KEYS:
        value = inner.get(key)
        if isinstance(value, list) and len(value) == 1 and _is_leaf(value[0]):
            inner[key] = value[0]
            notes.append(f"{path}: {key} {value} unwrapped to {value[0]} "
                         "(Keras <= 3.8 singleton list, keras-team/keras#20084)")


def _is_leaf(value: Any) -> bool:
    """``[layer_name, node_index, tensor_index]``: Keras' own test (functional_from_config)."""
    return isinstance(value, list) and len(value) == 3 and isinstance(value[0], str)


# --------------------------------------------------------------------------- names

def node_name(name: str) -> str:
    """A Keras name made a valid TensorFlow node name: characters outside ``[A-Za-z0-9_.\\-/]`` become ``_``."""
    return _NODE_NAME_RE.sub("_", name)


def unique_names(names: Sequence[str], reserved: Iterable[str] = ()) -> list[str]:
    """``names`` with repeats (of each other or of ``reserved``) suffixed ``_1``, ``_2``, ..."""
    taken = set(reserved)
    result = []
    for name in names:
        candidate, index = name, 0
        while candidate in taken:
            index += 1
            candidate = f"{name}_{index}"
        taken.add(candidate)
        result.append(candidate)
    return result


def flatten_structure(structure: Any) -> list[tuple[Any, list[Any]]]:
    """The leaves of an ``input_layers``/``output_layers`` structure in Keras' flattening order.

    Returns ``(key, leaf)`` pairs; ``key`` is the top-level dict key of the
    leaf (``None`` when the structure is not a dict). A dict flattens in sorted key order.
    """
    if isinstance(structure, dict):
        return [(key, leaf) for key in sorted(structure) for _, leaf in flatten_structure(structure[key])]
    if _is_leaf(structure):
        return [(None, structure)]
    if isinstance(structure, list):
        return [pair for item in structure for pair in flatten_structure(item)]
    return []


def io_layers(config: dict[str, Any], *, source: Path | None = None) -> tuple[
        list[tuple[str, dict[str, Any]]], list[tuple[str, str, dict[str, Any]]]]:
    """The model's flat inputs and outputs as Keras names them, before they become node names.

    Returns:
        ``(inputs, outputs)``: inputs as ``(name, input layer config)``, outputs as
        ``(name, layer name, layer config)`` (the name is the dict key for a dict output).

    Raises:
        ModelFileError: The config does not say what the inputs are.
    """
    prefix = f"{source}: " if source is not None else ""
    inner = config.get("config") if isinstance(config, dict) else None
    if not isinstance(inner, dict):
        raise ModelFileError(f"{prefix}the model config has no 'config' object. {RESAVE_ARCHIVE_HINT}.")
    layers = [layer for layer in inner.get("layers") or [] if isinstance(layer, dict)]
    if config.get("class_name") == "Sequential":
        return _sequential_io(inner, layers, prefix)
    by_name = {_config_name(layer): layer for layer in layers}
    if "input_layers" not in inner or "output_layers" not in inner:
        raise ModelFileError(f"{prefix}the {config.get('class_name')} config has no input_layers/output_layers, "
                             "so its inputs and outputs are unknown (a subclassed model?). Save it as a "
                             "Functional or Sequential model.")
    inputs = [(str(leaf[0]), by_name.get(leaf[0], {})) for _, leaf in flatten_structure(inner["input_layers"])]
    dict_outputs = isinstance(inner["output_layers"], dict)
    outputs = [(str(key) if dict_outputs else str(leaf[0]), str(leaf[0]), by_name.get(leaf[0], {}))
               for key, leaf in flatten_structure(inner["output_layers"])]
    return inputs, outputs


def _config_name(layer: dict[str, Any]) -> str:
    return str(layer.get("name") or (layer.get("config") or {}).get("name") or "")


def _sequential_io(inner: dict[str, Any], layers: list[dict[str, Any]], prefix: str) -> tuple[
        list[tuple[str, dict[str, Any]]], list[tuple[str, str, dict[str, Any]]]]:
    if not layers:
        raise ModelFileError(f"{prefix}the Sequential model has no layers. {RESAVE_ARCHIVE_HINT}.")
    first = layers[0]
    if first.get("class_name") == "InputLayer":
        inputs = [(_config_name(first), first)]
        body = layers[1:]
    elif inner.get("build_input_shape"):
        before = sum(_auto_input_layers(layer) for layer in layers)
        name = "input_layer" if before == 0 else f"input_layer_{before}"
        shape = inner["build_input_shape"]
        dtype = (first.get("config") or {}).get("dtype")
        layer = {"batch_shape": shape, "name": name, **({} if dtype is None else {"dtype": dtype})}
        inputs = [(name, {"class_name": "InputLayer", "config": layer})]
        body = layers
    else:
        raise ModelFileError(f"{prefix}the Sequential model was saved before it was built: its config gives no "
                             "input (no InputLayer, no build_input_shape). Build it in Keras (start it with "
                             "keras.Input(shape)) and save it again.")
    if not body:
        raise ModelFileError(f"{prefix}the Sequential model has no layers after its InputLayer. "
                             f"{RESAVE_ARCHIVE_HINT}.")
    last = body[-1]
    name = _config_name(last)
    count = _output_count(last)
    return inputs, [(name, name, last)] * count


def _auto_input_layers(layer: dict[str, Any]) -> int:
    """InputLayers Keras names itself while loading ``layer``: nested Sequentials without one, depth first."""
    if layer.get("class_name") not in _MODEL_CLASSES:
        return 0
    inner = layer.get("config") or {}
    nested = [item for item in inner.get("layers") or [] if isinstance(item, dict)]
    count = sum(_auto_input_layers(item) for item in nested)
    if layer.get("class_name") == "Sequential" and nested and nested[0].get("class_name") != "InputLayer" \
            and inner.get("build_input_shape"):
        count += 1
    return count


def _output_count(layer: dict[str, Any]) -> int:
    """How many tensors a layer returns: a nested model's output count, 1 for any other layer."""
    if layer.get("class_name") not in _MODEL_CLASSES:
        return 1
    inner = layer.get("config") or {}
    if layer.get("class_name") == "Sequential":
        nested = [item for item in inner.get("layers") or [] if isinstance(item, dict)]
        return _output_count(nested[-1]) if nested else 1
    return max(1, len(flatten_structure(inner.get("output_layers"))))


def io_names(config: dict[str, Any], *, source: Path | None = None) -> tuple[list[str], list[str]]:
    """The node names convert's function route gives the graph's inputs and outputs (the module's rule).

    Args:
        config: A Keras 3 model config, repaired (:func:`repair_config`).
        source: The file the config came from, for error messages.

    Raises:
        ModelFileError: The config does not say what the model's inputs are.
    """
    inputs, outputs = io_layers(config, source=source)
    input_names = unique_names([node_name(name) for name, _ in inputs])
    output_names = unique_names([node_name(name) for name, _, _ in outputs], reserved=input_names)
    return input_names, output_names


__all__ = [
    "Keras3FileInfo",
    "config_specs",
    "find_lambda_layers",
    "flatten_structure",
    "io_layers",
    "io_names",
    "layer_count",
    "node_name",
    "parameter_count",
    "read_architecture",
    "read_keras3_file",
    "refuse_lambda_layers",
    "repair_config",
    "unique_names",
    "weights_file_count",
]


# --------------------------------------------------------------------------- inspect's view

def config_specs(config: dict[str, Any], *, source: Path | None = None) -> tuple[
        tuple[TensorSpec, ...], tuple[TensorSpec, ...], int]:
    """The inputs and outputs of a Keras 3 model config for ``inspect``, and its layer count.

    Specs are named by Keras layer and carry ``node``, the name convert's
    function route gives the graph node (:func:`io_names`); inputs have the
    InputLayer's dtype and ``batch_shape``; outputs the dtype where the layer's
    class is known to compute in its dtype policy, else ``"unknown"``, and no shape.

    Raises:
        ModelFileError: The config does not say what the model's inputs are.
    """
    from freezekeras.kerasfile.config import _batch_shape, _dtype, _output_dtype

    inputs, outputs = io_layers(config, source=source)
    input_nodes, output_nodes = io_names(config, source=source)
    input_specs = []
    for (name, layer), node in zip(inputs, input_nodes, strict=True):
        shape = _batch_shape(layer)
        input_specs.append(TensorSpec(
            name=name, dtype=_dtype(layer) if layer else "unknown", node=node,
            shape=None if not isinstance(shape, list) else tuple(None if d is None else int(d) for d in shape)))
    output_specs = tuple(TensorSpec(name=layer_name, dtype=_output_dtype(layer) if layer else "unknown", shape=None,
                                    node=node)
                         for (_, layer_name, layer), node in zip(outputs, output_nodes, strict=True))
    return tuple(input_specs), output_specs, layer_count(config)


def layer_count(config: dict[str, Any]) -> int:
    """What ``len(model.layers)`` gives: a Sequential model does not count its InputLayer."""
    layers = [layer for layer in (config.get("config") or {}).get("layers") or [] if isinstance(layer, dict)]
    if config.get("class_name") == "Sequential":
        return sum(1 for layer in layers if layer.get("class_name") != "InputLayer")
    return len(layers)


def weights_file_count(handle: Any) -> int:
    """Elements of a Keras 3 weights file's datasets (``model.weights.h5``), the optimizer's left out."""
    import h5py

    from freezekeras.kerasfile.config import weight_count

    return sum(weight_count(handle[name]) for name in handle
               if name != "optimizer" and isinstance(handle.get(name), h5py.Group))


def parameter_count(info: Keras3FileInfo) -> tuple[int, str | None]:
    """``(parameters, backend)`` of a Keras 3 file: its weights' elements (optimizer excluded), the backend attribute.

    Raises:
        ModelFileError: The weights cannot be read (a damaged file).
    """
    import h5py

    from freezekeras.kerasfile.config import weight_count

    path = info.path
    try:
        if info.kind == "keras-archive":
            with zipfile.ZipFile(path) as archive, archive.open(WEIGHTS_MEMBER) as stream, \
                    h5py.File(stream, "r") as handle:
                return weights_file_count(handle), None
        with h5py.File(path, "r") as handle:
            backend = text_attribute(read_attribute(handle, "backend"))
            return (weights_file_count(handle) if info.kind == "keras-weights" else weight_count(handle)), backend
    except (*HDF5_ERRORS, zipfile.BadZipFile, EOFError, NotImplementedError, zlib.error) as exc:
        what = f"its {WEIGHTS_MEMBER}" if info.kind == "keras-archive" else "the HDF5 file"
        raise ModelFileError(f"{path}: {what} is damaged or truncated ({error_summary(exc)}). "
                             "Copy or download it again.") from exc
