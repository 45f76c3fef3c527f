"""TensorFlow SavedModel folders read with protobuf alone: their signatures and what they hold.

``saved_model.pb`` (or ``saved_model.pbtxt``) is a ``SavedModel`` message
(TensorFlow's saved_model.proto), read with the message classes of
:mod:`freezekeras.graphdef.messages`. The MetaGraph used is the first one
tagged ``serve``, else the first. A signature's inputs and outputs are its
keys, sorted: the order in which TensorFlow flattens them, and the node
names convert writes for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from freezekeras.errors import ModelFileError, error_summary
from freezekeras.graphdef.messages import dtype_name, message_class
from freezekeras.paths import is_saved_model_dir
from freezekeras.results import DEFAULT_SIGNATURE, TensorSpec

SERVE_TAG = "serve"
#: Signature keys TensorFlow keeps for itself (the init op), which ``loaded.signatures`` does not list.
_INTERNAL_PREFIX = "__saved_model"
_EXPORT_HINT = "Copy it again, or export it again (model.export(DIR) or tf.saved_model.save)"


@dataclass(frozen=True)
class Signature:
    """One signature of a SavedModel.

    Attributes:
        key: The signature's key (``serving_default``).
        inputs: Its inputs sorted by key; ``name`` (and ``node``) is the key, dtype and shape from the TensorInfo.
        outputs: Its outputs sorted by key, alike.
    """

    key: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


def is_saved_model(path: Path) -> bool:
    """Whether ``path`` is a folder holding ``saved_model.pb`` (or ``saved_model.pbtxt``)."""
    return is_saved_model_dir(path)


def read_saved_model(path: Path) -> Any:
    """The ``SavedModel`` message of a SavedModel folder.

    Raises:
        ModelFileError: ``saved_model.pb`` cannot be read or parsed, or holds no MetaGraph.
    """
    message = message_class("SavedModel")()
    binary, text = path / "saved_model.pb", path / "saved_model.pbtxt"
    source = binary if binary.is_file() else text
    try:
        data = source.read_bytes()
        if source is binary:
            message.ParseFromString(data)
        else:
            from google.protobuf import text_format

            text_format.Parse(data.decode("utf-8"), message)
    except Exception as exc:  # protobuf's DecodeError/ParseError, a RuntimeError from its C++ core, OSError
        raise ModelFileError(f"{path}: {source.name} is damaged or truncated ({error_summary(exc)}). "
                             f"{_EXPORT_HINT}.") from exc
    if not message.meta_graphs:
        raise ModelFileError(f"{path}: {source.name} holds no MetaGraph, so no signatures: the SavedModel is "
                             f"damaged or truncated. {_EXPORT_HINT}.")
    return message


def serving_meta_graph(saved_model: Any) -> Any:
    """The first MetaGraph tagged ``serve``, else the first."""
    for meta_graph in saved_model.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return meta_graph
    return saved_model.meta_graphs[0]


def read_signatures(path: Path) -> dict[str, Signature]:
    """The signatures of a SavedModel folder's serving MetaGraph, by key (sorted; the init op left out).

    Raises:
        ModelFileError: ``saved_model.pb`` cannot be read, or holds no MetaGraph.
    """
    return signatures_of(serving_meta_graph(read_saved_model(path)))


def signatures_of(meta_graph: Any) -> dict[str, Signature]:
    """The signatures of a MetaGraph message, by key (sorted; the init op left out)."""
    return {key: Signature(key=key, inputs=_specs(meta_graph.signature_def[key].inputs),
                           outputs=_specs(meta_graph.signature_def[key].outputs))
            for key in sorted(meta_graph.signature_def) if not key.startswith(_INTERNAL_PREFIX)}


def _specs(tensors: Any) -> tuple[TensorSpec, ...]:
    return tuple(TensorSpec(name=key, dtype=dtype_name(tensors[key].dtype), shape=_shape(tensors[key].tensor_shape),
                            node=key)
                 for key in sorted(tensors))


def _shape(shape: Any) -> tuple[int | None, ...] | None:
    if shape.unknown_rank:
        return None
    return tuple(None if dim.size < 0 else int(dim.size) for dim in shape.dim)


def saved_model_facts(path: Path) -> dict[str, Any]:
    """What a SavedModel folder holds, for ``inspect``.

    Returns:
        ``tags`` (of the MetaGraph read), ``meta_graph_count``, ``signatures`` (keys),
        ``function_count`` (functions in its library), ``tensorflow_version``
        (that saved it, if recorded), ``keras_metadata`` (whether ``keras_metadata.pb``
        exists: tf-keras ``model.save``), ``fingerprint`` (whether ``fingerprint.pb``
        exists), ``variables_bytes`` (the size of ``variables/``) and ``assets`` (files in ``assets/``).

    Raises:
        ModelFileError: ``saved_model.pb`` cannot be read, or holds no MetaGraph.
    """
    saved_model = read_saved_model(path)
    meta_graph = serving_meta_graph(saved_model)
    return {
        "tags": list(meta_graph.meta_info_def.tags),
        "meta_graph_count": len(saved_model.meta_graphs),
        "signatures": list(signatures_of(meta_graph)),
        "function_count": len(meta_graph.graph_def.library.function),
        "tensorflow_version": meta_graph.meta_info_def.tensorflow_version or None,
        "keras_metadata": (path / "keras_metadata.pb").is_file(),
        "fingerprint": (path / "fingerprint.pb").is_file(),
        "variables_bytes": _folder_size(path / "variables"),
        "assets": _file_count(path / "assets"),
    }


def _folder_size(folder: Path) -> int:
    return sum(item.stat().st_size for item in folder.rglob("*") if item.is_file()) if folder.is_dir() else 0


def _file_count(folder: Path) -> int:
    return sum(1 for item in folder.rglob("*") if item.is_file()) if folder.is_dir() else 0


__all__ = ["DEFAULT_SIGNATURE", "Signature", "is_saved_model", "read_saved_model", "read_signatures", "saved_model_facts",
           "serving_meta_graph", "signatures_of"]
