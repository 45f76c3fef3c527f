"""Which Keras wrote a model file, from its first bytes and root attributes alone.

Kept apart from :mod:`freezekeras.kerasfile.keras3` so that telling a Keras 2
``.h5`` from a Keras 3 file costs ``inspect`` no more than the check itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from freezekeras.kerasfile.h5file import read_attribute, text_attribute
from freezekeras.paths import file_signature


def keras_generation(path: Path) -> str:
    """``"keras3"`` for a ``.keras`` zip, a Keras 3 ``.h5`` or a Keras 3 weights file; else ``"keras2"``.

    Reads only the file's first bytes and, for HDF5, its root attributes and
    groups. Never raises: a missing or damaged file is ``"keras2"``, and the
    Keras 2 reader (:func:`freezekeras.kerasfile.h5file.read_keras_file`) reports it.
    """
    try:
        signature = file_signature(path)
        if signature == "zip":
            return "keras3"
        if signature != "hdf5":
            return "keras2"
        import h5py

        with h5py.File(path, "r") as handle:
            version = text_attribute(read_attribute(handle, "keras_version"))
            if version is not None and version.startswith("3."):
                return "keras3"
            return "keras3" if is_keras3_weights_file(handle) else "keras2"
    except Exception:  # noqa: BLE001 - by contract: the Keras 2 reader reports damaged files
        return "keras2"


def is_keras3_weights_file(handle: Any) -> bool:
    """Whether an open ``h5py.File`` was written by Keras 3's ``save_weights``.

    Such a file has no root attributes (no ``model_config``, ``keras_version``
    or ``layer_names``) and holds ``layers`` and/or ``vars`` groups.
    """
    import h5py

    if any(name in handle.attrs for name in ("model_config", "keras_version", "layer_names", "backend")):
        return False
    groups = [name for name in ("layers", "vars") if isinstance(handle.get(name), h5py.Group)]
    return bool(groups)
