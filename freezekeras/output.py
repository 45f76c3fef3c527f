"""Choosing where the frozen graph goes, and writing it: atomically, or into what is already there.

A regular file (or a new path) is written atomically (:class:`AtomicFile`). An
existing target that is not a regular file, a character device such as
``/dev/null``, a FIFO or a Unix socket, is written into and never replaced
(:class:`StreamOutput`), and so is standard output (``-o -``, :data:`STDOUT`).
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import sys
from collections.abc import Iterable
from pathlib import Path

from freezekeras.errors import OutputError

#: The output path that stands for standard output (``-o -``).
STDOUT = Path("-")


def is_stdout(output: str | os.PathLike | None) -> bool:
    """Whether ``output`` is ``-``, standard output."""
    return output is not None and os.fspath(output) == "-"


def output_path(model: Path, output: Path | None, *, text: bool) -> Path:
    """Decide the output file for ``model``.

    Args:
        model: The input model file.
        output: A file, an existing folder (the file is named after the
            model), ``-`` (:data:`STDOUT`), or ``None`` (next to the model).
        text: The graph is written as protobuf text (``.pbtxt``).

    A symbolic link to a regular file (or to nothing yet) stands for the file
    it points at, which is replaced and the link kept; a link to anything
    else (``/dev/stdout``) is left as it is and written through.

    Raises:
        OutputError: The output would overwrite the input.
    """
    if is_stdout(output):
        return STDOUT
    suffix = ".pbtxt" if text else ".pb"
    if output is None:
        target = model.with_suffix(suffix)
    elif output.is_dir():
        target = output / (model.stem + suffix)
    else:
        target = output
    if target.is_symlink() and not _is_special(target):  # replace the file the link points at, keep the link
        target = Path(os.path.realpath(target))
    if target.resolve() == model.resolve():
        raise OutputError(
            f"{target}: the output path is the input model; choose another path with -o."
        )
    return target


def open_output(target: Path) -> AtomicFile | StreamOutput:
    """The writer for ``target``: :class:`StreamOutput` for stdout and for an existing target that
    is not a regular file, :class:`AtomicFile` otherwise."""
    return StreamOutput(target) if target == STDOUT or _is_special(target) else AtomicFile(target)


def _is_special(path: Path) -> bool:
    """``path`` exists (links followed) and is neither a regular file nor a folder."""
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


class AtomicFile:
    """A file that appears at its path complete or not at all.

    On entry a temporary file is created in the target's folder (so an
    unwritable destination fails before any slow work); :meth:`commit` renames
    it over the target. Leaving the ``with`` block without committing removes
    the temporary file, whatever happened.

    Attributes:
        target: The final path.
        temporary: The temporary file written to, which can be read back before :meth:`commit`.
        size: The bytes written.
    """

    def __init__(self, target: Path):
        self.target = target
        self.temporary: Path | None = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        self.size = 0

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

    @property
    def data(self) -> None:
        """Nothing is kept in memory: read :attr:`temporary` back instead."""
        return None

    def write(self, pieces: Iterable[bytes]) -> None:
        """Write ``pieces``, one after the other, to the temporary file and flush it to disk.

        An exception from ``pieces`` (a graph found too large) stops the writing; the
        temporary file is removed as the ``with`` block is left.
        """
        self.size = 0
        try:
            with open(self.temporary, "wb") as stream:
                for piece in pieces:
                    stream.write(piece)
                    self.size += len(piece)
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


class StreamOutput:
    """Standard output, or an existing target that is not a regular file, written into, never replaced.

    Such a target (``/dev/null``, a FIFO, a Unix socket, a terminal) cannot
    take a temporary file renamed over it, and a reader may be waiting on it:
    :meth:`write` keeps the bytes in memory (:attr:`data`, what verification
    reads), and :meth:`commit` writes them, so nothing reaches the target
    unless every step succeeded. A FIFO's :meth:`commit` waits for a reader.

    Attributes:
        target: The path, or :data:`STDOUT`.
        temporary: Always ``None``: there is no file to read back.
        size: The bytes written.
    """

    temporary = None

    def __init__(self, target: Path):
        self.target = target
        self.size = 0
        self._data: bytes | None = None

    @property
    def name(self) -> str:
        """How messages name the target."""
        return "stdout" if self.target == STDOUT else str(self.target)

    def __enter__(self) -> StreamOutput:
        if self.target != STDOUT and not os.access(self.target, os.W_OK):
            raise OutputError(f"{self.target}: cannot be written (permission denied); choose another -o.")
        return self

    @property
    def data(self) -> bytes | None:
        """The bytes given to :meth:`write`, not yet written."""
        return self._data

    def write(self, pieces: Iterable[bytes]) -> None:
        """Keep ``pieces``, joined, until :meth:`commit`."""
        self._data = b"".join(pieces)
        self.size = len(self._data)

    def commit(self) -> None:
        """Write the bytes into the target."""
        data = self._data or b""
        try:
            if self.target == STDOUT:
                sys.stdout.flush()
                stream = sys.stdout.buffer
                stream.write(data)
                stream.flush()
            elif stat.S_ISSOCK(self.target.stat().st_mode):
                _send(self.target, data)
            else:
                fd = os.open(self.target, os.O_WRONLY | getattr(os, "O_BINARY", 0))
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                finally:
                    os.close(fd)
        except OSError as exc:
            hint = "free space or choose another -o" if exc.errno == errno.ENOSPC else "choose another -o"
            raise OutputError(f"{self.name}: writing failed ({exc.strerror or exc}); {hint}.") from exc
        self._data = None

    def __exit__(self, *exc_info) -> None:
        self._data = None


def _send(path: Path, data: bytes) -> None:
    """Send ``data`` to the Unix stream socket at ``path``."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.connect(os.fspath(path))
        connection.sendall(data)
