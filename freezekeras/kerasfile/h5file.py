"""Reading a Keras ``.h5`` file's metadata with h5py, before anything is built.

Nothing here imports TensorFlow or runs code from the file: the checks that
must happen before Keras touches a file (is it a Keras model at all, does it
hold Lambda layers) live here.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from freezekeras.errors import (
    LambdaLayerError,
    ModelFileError,
    UsageError,
    WeightsOnlyError,
    error_summary,
)
from freezekeras.kerasfile.compat import cudnn_layers_to_portable, default_gru_reset_after, function_references_to_names
from freezekeras.kerasfile.keras1 import is_keras1, translate_model_config
from freezekeras.paths import check_input_path, file_signature

RESAVE_HINT = "save the model with model.save('model.h5') in Keras and convert that file"
LAMBDA_REPLACEMENT_HINT = "a CUSTOM_OBJECTS dict mapping each Lambda layer's name to a function computing the same"
KERAS3_HINT = (
    "freezekeras reads Keras 2 (tf-keras) .h5 models, not Keras 3 ones: build the model with "
    "tf_keras (pip install tf-keras), load or retrain its weights, save it with "
    "model.save('model.h5') and convert that file."
)


@dataclass(frozen=True)
class KerasFileInfo:
    """What an ``.h5`` file says about the model inside, read without Keras.

    Attributes:
        path: The file.
        model_config: The parsed ``model_config`` attribute.
        keras_version: The ``keras_version`` attribute, or ``None``.
        backend: The ``backend`` attribute, or ``None``.
        lambda_layers: Names of the Lambda layers, nested models included.
        architecture: The JSON/YAML file the config came from, when the
            ``.h5`` supplies only the weights.
        config_rewritten: ``model_config`` was changed to be readable (see
            :mod:`freezekeras.kerasfile.compat` and :mod:`freezekeras.kerasfile.keras1`), so the
            model must be built from it rather than by Keras' ``load_model``.
    """

    path: Path
    model_config: dict[str, Any]
    keras_version: str | None = None
    backend: str | None = None
    lambda_layers: tuple[str, ...] = field(default_factory=tuple)
    architecture: Path | None = None
    config_rewritten: bool = False


def read_keras_file(path: Path, *, architecture: Path | None = None, backend: str | None = None,
                    keras3: bool = False) -> KerasFileInfo:
    """Check that ``path`` is a Keras HDF5 model and read its metadata.

    Args:
        path: The ``.h5`` file: a whole model, or only weights when
            ``architecture`` is given.
        architecture: A JSON (``model.to_json()``) or YAML file with the
            model's architecture; the ``.h5`` then supplies only weights.
        backend: The backend that trained the model, for a file that does not record one.
        keras3: Accept a Keras 3 ``.h5`` (for inspecting; convert refuses them).

    Returns:
        The file's metadata.

    Raises:
        UsageError: A path is missing or a directory.
        ModelFileError: The file is empty, not HDF5, damaged, a Keras 3
            archive, or holds no (or a malformed) Keras model config.
        WeightsOnlyError: The file holds weights but no architecture, and
            ``architecture`` was not given.
        UsageError: ``backend`` contradicts the backend the file records.
    """
    check_input_path(path)
    _check_signature(path)
    import h5py

    with reading_hdf5(path), h5py.File(path, "r") as handle:
        if architecture is None:
            raw_config = read_attribute(handle, "model_config")
            if raw_config is None:
                raise _missing_config_error(path, handle)
            config = _parse_config(path, text_attribute(raw_config))
        keras_version = text_attribute(read_attribute(handle, "keras_version"))
        recorded = text_attribute(read_attribute(handle, "backend"))
    if architecture is not None:
        config = read_architecture(architecture)
        keras_version = keras_version or text_attribute(config.get("keras_version"))
        recorded = recorded or text_attribute(config.get("backend"))
    if backend is not None and recorded is not None and recorded.lower() != backend:
        raise UsageError(
            f"{path}: records that it was trained with {recorded}; --backend {backend} is only for "
            "files that do not say (Keras 1). Leave it out."
        )
    if keras_version and keras_version.startswith("3.") and not keras3:
        raise ModelFileError(f"{path}: was saved by Keras {keras_version}. {KERAS3_HINT}")
    if is_keras1(keras_version):
        config = translate_model_config(config, source=path)
    config, references = function_references_to_names(config)
    config, cudnn = cudnn_layers_to_portable(config)
    config, grus = default_gru_reset_after(config)
    rewritten = references or cudnn or grus or is_keras1(keras_version)
    return KerasFileInfo(
        path=path,
        model_config=config,
        keras_version=keras_version,
        backend=recorded or backend,
        lambda_layers=tuple(find_lambda_layers(config)),
        architecture=architecture,
        config_rewritten=rewritten,
    )


def read_architecture(path: Path) -> dict[str, Any]:
    """Read a model architecture from JSON (``model.to_json()``) or YAML (``.yaml``/``.yml``).

    Raises:
        UsageError: The path is missing or a directory, or YAML is asked for
            without PyYAML installed.
        ModelFileError: The file is not a Keras model config.
    """
    check_input_path(path, option="--architecture", expected="a JSON or YAML architecture file")
    if path.suffix.lower() in {".yaml", ".yml"}:
        try:
            import yaml
        except ImportError:
            raise UsageError(
                f"{path}: reading a YAML architecture needs PyYAML; run 'pip install pyyaml' "
                "or pass the architecture as JSON."
            ) from None
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ModelFileError(
                f"{path}: is not valid YAML ({error_summary(exc)}). Pass the file model.to_yaml() wrote."
            ) from exc
        return _check_config(path, config, "the architecture file")
    return _parse_config(path, path.read_bytes().decode("utf-8", errors="replace"), "the architecture file")


def refuse_lambda_layers(info: KerasFileInfo) -> None:
    """Raise :class:`LambdaLayerError` if the model holds Lambda layers with bytecode."""
    if info.lambda_layers:
        names = ", ".join(info.lambda_layers)
        raise LambdaLayerError(
            f"{info.path}: the model holds Lambda layers ({names}) whose Python bytecode Keras "
            "would run while loading. If you trust this file, pass --allow-lambda; or give your own "
            f"functions for them with --custom-objects FILE.py ({LAMBDA_REPLACEMENT_HINT})."
        )


def find_lambda_layers(config: Any) -> Iterator[str]:
    """Yield the name of every Lambda layer holding marshalled bytecode, nested models included.

    A Lambda that names a function (``function_type`` ``"function"``) holds
    no code: Keras looks the name up among the custom objects.
    """
    for class_name, layer_config in _layer_configs(config):
        if class_name == "Lambda" and not _holds_bytecode(layer_config):
            continue
        if class_name == "Lambda" or layer_config.get("function_type") == "lambda":  # or Lambda-like
            yield str(layer_config.get("name") or "<unnamed>")


def replace_lambda_functions(info: KerasFileInfo, functions: dict[str, Any]) -> KerasFileInfo:
    """Point every Lambda layer named in ``functions`` at that function instead of its bytecode.

    The layer's marshalled function (and a marshalled output shape or mask)
    is then never loaded: Keras looks the layer name up among the custom
    objects, and infers the output shape by calling the function.

    Args:
        info: The file's metadata.
        functions: The custom objects; keys that are Lambda layer names replace those layers.

    Returns:
        ``info`` itself when nothing is replaced, else a copy with the rewritten config.
    """
    replaced = [name for name in info.lambda_layers if name in functions]
    if not replaced:
        return info
    config = copy.deepcopy(info.model_config)
    for class_name, layer_config in _layer_configs(config):
        if class_name == "Lambda" and layer_config.get("name") in replaced:
            layer_config.update(function=_function_reference(layer_config["name"]), function_type="function",
                                module=None)
            for part in ("output_shape", "mask"):
                if layer_config.get(f"{part}_type") == "lambda":
                    layer_config.update({part: None, f"{part}_type": "raw", f"{part}_module": None})
    return dataclasses.replace(info, model_config=config, config_rewritten=True,
                               lambda_layers=tuple(find_lambda_layers(config)))


def _function_reference(name: str) -> dict[str, Any]:
    """How tf-keras serializes a reference to a function it finds among the custom objects."""
    return {"class_name": "function", "config": name, "module": None, "registered_name": name}


def _holds_bytecode(layer_config: dict[str, Any]) -> bool:
    return "function_type" not in layer_config or any(
        layer_config.get(f"{part}_type") == "lambda" for part in ("function", "output_shape", "mask"))


def _layer_configs(config: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(class_name, config)`` of every layer in a model config, nested models included."""
    if isinstance(config, dict):
        class_name, layer_config = config.get("class_name"), config.get("config")
        if isinstance(class_name, str) and isinstance(layer_config, dict):
            yield class_name, layer_config
        for value in config.values():
            yield from _layer_configs(value)
    elif isinstance(config, list):
        for item in config:
            yield from _layer_configs(item)


def _check_signature(path: Path) -> None:
    if path.stat().st_size == 0:
        raise ModelFileError(f"{path}: the file is empty. {RESAVE_HINT[0].upper()}{RESAVE_HINT[1:]}.")
    kind = file_signature(path)
    if kind == "zip":
        raise ModelFileError(f"{path}: is a Keras 3 .keras archive. {KERAS3_HINT}")
    if kind != "hdf5":
        raise ModelFileError(f"{path}: is not an HDF5 file. Pass a Keras .h5 model; {RESAVE_HINT}.")


def _missing_config_error(path: Path, handle) -> ModelFileError:
    from freezekeras.kerasfile.generation import is_keras3_weights_file
    from freezekeras.kerasfile.keras3 import ARCHITECTURE_HINT

    if is_keras3_weights_file(handle):
        return WeightsOnlyError(f"{path}: holds Keras 3 weights only (saved with save_weights), no architecture. "
                                f"{ARCHITECTURE_HINT}.")
    if "layer_names" in handle.attrs or "model_weights" in handle:
        return WeightsOnlyError(
            f"{path}: holds weights only, no model architecture (saved with save_weights). "
            "Pass the architecture with --architecture model.json (what model.to_json() wrote)."
        )
    return ModelFileError(
        f"{path}: is an HDF5 file but holds no Keras model (no model_config attribute). "
        f"Pass a Keras .h5 model; {RESAVE_HINT}."
    )


def _parse_config(path: Path, text: str | None, what: str = "the model_config attribute") -> dict[str, Any]:
    try:
        config = json.loads(text or "")
    except ValueError as exc:
        raise ModelFileError(
            f"{path}: {what} is not valid JSON ({error_summary(exc)}). "
            f"The file is damaged; {RESAVE_HINT}."
        ) from exc
    return _check_config(path, config, what)


def _check_config(path: Path, config: Any, what: str) -> dict[str, Any]:
    if not isinstance(config, dict) or "class_name" not in config or "config" not in config:
        raise ModelFileError(
            f"{path}: {what} is not a Keras model config (no class_name/config). "
            f"The file is damaged; {RESAVE_HINT}."
        )
    return config


#: What h5py raises on a damaged or truncated file: OSError where HDF5 cannot open or read it, and
#: RuntimeError, KeyError or ValueError where it meets a damaged object header, heap or B-tree inside
#: it (``Object visitation failed``, ``Unable to synchronously open dataset``, ...).
HDF5_ERRORS = (OSError, RuntimeError, KeyError, ValueError)


def hdf5_damaged(path: Path, exc: BaseException, what: str = "the HDF5 file") -> ModelFileError:
    """The error for h5py's ``exc`` on ``path``: ``what`` is damaged or truncated."""
    reason = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc  # KeyError's str() adds quotes
    return ModelFileError(f"{path}: {what} is damaged or truncated ({error_summary(reason)}). "
                          "Copy or download it again.")


@contextlib.contextmanager
def reading_hdf5(path: Path, what: str = "the HDF5 file") -> Iterator[None]:
    """Turn h5py's errors (:data:`HDF5_ERRORS`) raised in the block into :func:`hdf5_damaged`."""
    try:
        yield
    except HDF5_ERRORS as exc:
        raise hdf5_damaged(path, exc, what) from exc


def read_attribute(handle: Any, name: str) -> Any:
    """The attribute ``name`` of an open h5py object, or ``None``; a damaged one raises ValueError.

    Keras writes its metadata (``model_config``, ``keras_version``, ``backend``)
    as strings. An attribute whose type is a variable-length sequence instead
    is damaged, and HDF5 1.14 crashes the process (SIGSEGV) converting some of
    them, so it is refused before it is read.
    """
    import h5py

    if name not in handle.attrs:
        return None
    if handle.attrs.get_id(name).get_type().get_class() == h5py.h5t.VLEN:
        raise ValueError(f"attribute {name} holds a variable-length sequence, not text")
    return handle.attrs[name]


def text_attribute(value: Any) -> str | None:
    """An HDF5 attribute (bytes, numpy scalar or str) as text; ``None`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if hasattr(value, "item") and not isinstance(value, str):
        return text_attribute(value.item())
    return str(value)



__all__ = [
    "KerasFileInfo",
    "HDF5_ERRORS",
    "find_lambda_layers",
    "hdf5_damaged",
    "read_attribute",
    "read_keras_file",
    "reading_hdf5",
    "refuse_lambda_layers",
    "replace_lambda_functions",
    "text_attribute",
]
