"""Paths the caller gives: are they readable files, what kind of file is each (no TensorFlow, no h5py).

The checks every command makes before it opens a file, and the file names it
counts as models.
"""

from __future__ import annotations

import os
from pathlib import Path

from freezekeras.errors import UsageError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"

#: The suffixes of Keras HDF5 files that a folder given to ``convert`` stands for (any case).
H5_SUFFIXES = (".h5", ".hdf5")
#: The suffixes ``inspect`` reads as Keras models whatever their first bytes say.
KERAS_SUFFIXES = (*H5_SUFFIXES, ".keras")


#: The file that makes a folder a TensorFlow SavedModel (binary, or protobuf text).
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")


def is_saved_model_dir(path: Path) -> bool:
    """Whether ``path`` is a folder holding ``saved_model.pb`` (or ``saved_model.pbtxt``)."""
    return path.is_dir() and any((path / name).is_file() for name in SAVED_MODEL_FILES)


def check_input_path(path: Path, *, option: str | None = None, expected: str = "a Keras model file or a SavedModel folder",
                     saved_model: bool = False) -> None:
    """Raise :class:`UsageError` unless ``path`` names an existing, readable regular file.

    Args:
        path: The path given.
        option: The command-line option that named it (``--architecture``), for the message.
        expected: What the file should be, for the message.
        saved_model: Accept a SavedModel folder too (:func:`is_saved_model_dir`), if readable.
    """
    given = f" (given as {option})" if option else ""
    if not path.exists():
        raise UsageError(f"{path}: no such file{given}. Check the path and try again.")
    if path.is_dir():
        if saved_model and is_saved_model_dir(path):
            if not os.access(path, os.R_OK | os.X_OK):
                raise UsageError(f"{path}: cannot be read (permission denied){given}. Check its permissions.")
            return
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
