"""Choosing where the frozen graph goes, and writing it atomically."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from freezekeras.errors import OutputError


def output_path(model: Path, output: Path | None, *, text: bool) -> Path:
    """Decide the output file for ``model``.

    Args:
        model: The input model file.
        output: A file, an existing folder (the file is named after the
            model), or ``None`` (next to the model).
        text: The graph is written as protobuf text (``.pbtxt``).

    Raises:
        OutputError: The output would overwrite the input.
    """
    suffix = ".pbtxt" if text else ".pb"
    if output is None:
        target = model.with_suffix(suffix)
    elif output.is_dir():
        target = output / (model.stem + suffix)
    else:
        target = output
    if target.is_symlink():  # write to the file the link points at, and keep the link
        target = Path(os.path.realpath(target))
    if target.resolve() == model.resolve():
        raise OutputError(
            f"{target}: the output path is the input model; choose another path with -o."
        )
    return target


class AtomicFile:
    """A file that appears at its path complete or not at all.

    On entry a temporary file is created in the target's folder (so an
    unwritable destination fails before any slow work); :meth:`commit` renames
    it over the target. Leaving the ``with`` block without committing removes
    the temporary file, whatever happened.

    Attributes:
        target: The final path.
        temporary: The temporary file written to.
    """

    def __init__(self, target: Path):
        self.target = target
        self.temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")

    def __enter__(self) -> AtomicFile:
        folder = self.target.parent
        if not folder.is_dir():
            problem = "is not a folder" if folder.exists() else "does not exist"
            raise OutputError(f"{self.target}: the output folder {folder} {problem}; create it or choose another -o.")
        try:
            fd = os.open(self.temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as exc:
            raise OutputError(
                f"{self.target}: cannot write to {folder} ({exc.strerror}); choose another -o."
            ) from exc
        os.close(fd)
        return self

    def write(self, data: bytes) -> None:
        """Write ``data`` to the temporary file and flush it to disk."""
        try:
            with open(self.temporary, "wb") as stream:
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
        except OSError as exc:
            raise OutputError(f"{self.target}: writing failed ({exc.strerror}); free space or choose another -o.") from exc

    def commit(self) -> None:
        """Move the temporary file to the target path, keeping a replaced file's permissions."""
        try:
            if self.target.is_file():
                os.chmod(self.temporary, stat.S_IMODE(self.target.stat().st_mode))
            os.replace(self.temporary, self.target)
        except OSError as exc:
            raise OutputError(f"{self.target}: cannot replace the file ({exc.strerror}); choose another -o.") from exc

    def __exit__(self, *exc_info) -> None:
        self.temporary.unlink(missing_ok=True)
