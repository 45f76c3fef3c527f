"""Reading a Keras ``.h5`` file's metadata with h5py, before anything is built.

Nothing here imports TensorFlow or runs code from the file: the checks that
must happen before Keras touches a file (is it a Keras model at all, does it
hold Lambda layers) live here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from freezekeras.compat import function_references_to_names
from freezekeras.errors import (
    ConversionError,
    LambdaLayerError,
    ModelFileError,
    UsageError,
    WeightsOnlyError,
    error_summary,
)

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"
RESAVE_HINT = "save the model with model.save('model.h5') in Keras and convert that file"
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
            :mod:`freezekeras.compat`), so the model must be built from it
            rather than by Keras' ``load_model``.
    """

    path: Path
    model_config: dict[str, Any]
    keras_version: str | None = None
    backend: str | None = None
    lambda_layers: tuple[str, ...] = field(default_factory=tuple)
    architecture: Path | None = None
    config_rewritten: bool = False


def check_input_path(path: Path, *, option: str | None = None, expected: str = "a Keras .h5 model file") -> None:
    """Raise :class:`UsageError` unless ``path`` names an existing, readable regular file.

    Args:
        path: The path given.
        option: The command-line option that named it (``--architecture``), for the message.
        expected: What the file should be, for the message.
    """
    given = f" (given as {option})" if option else ""
    if not path.exists():
        raise UsageError(f"{path}: no such file{given}. Check the path and try again.")
    if path.is_dir():
        if option is None and (path / "saved_model.pb").exists():
            raise UsageError(
                f"{path}: is a SavedModel folder, not a Keras .h5 file. "
                "Load it in Keras and save it with model.save('model.h5'), then convert that file."
            )
        raise UsageError(f"{path}: is a directory{given}. Pass {expected}.")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{path}: cannot be read (permission denied){given}. Check its permissions.")


def file_signature(path: Path) -> str | None:
    """``"hdf5"``, ``"zip"`` (a Keras 3 ``.keras`` archive) or ``None``, from the file's first bytes.

    HDF5 puts its signature at 0, 512, 1024, 2048, ... (a user block may precede it).
    """
    size = path.stat().st_size
    with open(path, "rb") as stream:
        if stream.read(4) == ZIP_SIGNATURE:
            return "zip"
        for offset in [0] + [512 * 2**i for i in range(20) if 512 * 2**i < size]:
            stream.seek(offset)
            if stream.read(8) == HDF5_SIGNATURE:
                return "hdf5"
    return None


def read_keras_file(path: Path, *, architecture: Path | None = None, keras3: bool = False) -> KerasFileInfo:
    """Check that ``path`` is a Keras HDF5 model and read its metadata.

    Args:
        path: The ``.h5`` file: a whole model, or only weights when
            ``architecture`` is given.
        architecture: A JSON (``model.to_json()``) or YAML file with the
            model's architecture; the ``.h5`` then supplies only weights.
        keras3: Accept a Keras 3 ``.h5`` (for inspecting; convert refuses them).

    Returns:
        The file's metadata.

    Raises:
        UsageError: A path is missing or a directory.
        ModelFileError: The file is empty, not HDF5, damaged, a Keras 3
            archive, or holds no (or a malformed) Keras model config.
        WeightsOnlyError: The file holds weights but no architecture, and
            ``architecture`` was not given.
    """
    check_input_path(path)
    _check_signature(path)
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            attrs = handle.attrs
            if architecture is None:
                raw_config = attrs.get("model_config")
                if raw_config is None:
                    raise _missing_config_error(path, handle)
                config = _parse_config(path, _text(raw_config))
            keras_version = _text(attrs.get("keras_version"))
            backend = _text(attrs.get("backend"))
    except OSError as exc:
        raise ModelFileError(
            f"{path}: the HDF5 file is damaged or truncated ({error_summary(exc)}). "
            "Copy or download it again."
        ) from exc
    if architecture is not None:
        config = read_architecture(architecture)
        keras_version = keras_version or _text(config.get("keras_version"))
        backend = backend or _text(config.get("backend"))
    if keras_version and keras_version.startswith("3.") and not keras3:
        raise ModelFileError(f"{path}: was saved by Keras {keras_version}. {KERAS3_HINT}")
    config, rewritten = function_references_to_names(config)
    return KerasFileInfo(
        path=path,
        model_config=config,
        keras_version=keras_version,
        backend=backend,
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
    """Raise :class:`LambdaLayerError` if the model holds Lambda layers."""
    if info.lambda_layers:
        names = ", ".join(info.lambda_layers)
        raise LambdaLayerError(
            f"{info.path}: the model holds Lambda layers ({names}) whose Python bytecode Keras "
            "would run while loading. If you trust this file, pass --allow-lambda."
        )


def find_lambda_layers(config: Any) -> Iterator[str]:
    """Yield the name of every Lambda layer in a model config, nested models included."""
    for class_name, layer_config in _layer_configs(config):
        if class_name == "Lambda" or layer_config.get("function_type") == "lambda":  # or Lambda-like
            yield str(layer_config.get("name") or "<unnamed>")


def refuse_theano_convolutions(info: KerasFileInfo) -> None:
    """Raise :class:`ConversionError` for a Theano-trained model with convolution layers.

    Theano stores convolution kernels flipped; Keras 2's loader flipped them
    back, tf-keras does not, so the frozen graph would compute something else
    (and verification, comparing with the same wrongly loaded model, could not tell).
    """
    if (info.backend or "").lower() != "theano":
        return
    convolutions = [str(layer_config.get("name") or class_name)
                    for class_name, layer_config in _layer_configs(info.model_config)
                    if "Conv" in class_name or "Deconvolution" in class_name]
    if convolutions:
        raise ConversionError(
            f"{info.path}: was trained with the Theano backend and holds convolution layers "
            f"({', '.join(convolutions)}) whose kernels Theano stores flipped; tf-keras would load "
            "them unflipped. Converting them is planned; until then flip them in Keras 2 "
            "(keras.utils.layer_utils.convert_all_kernels_in_model) and save the model again."
        )


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


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if hasattr(value, "item") and not isinstance(value, str):
        return _text(value.item())
    return str(value)



__all__ = [
    "KerasFileInfo",
    "check_input_path",
    "file_signature",
    "find_lambda_layers",
    "read_keras_file",
    "refuse_lambda_layers",
    "refuse_theano_convolutions",
]
