"""Where ``convert -o`` may write: nothing but a regular file is ever replaced.

An existing target that is not a regular file (a character device, a FIFO, a
socket) is written into, once every step succeeded; ``-o -`` writes the graph
to stdout and the report to stderr. A symbolic link to a regular file keeps
the link and replaces the file it points at.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
from pathlib import Path

import pytest
from conftest import PREFIX, assert_one_error_line, describe, run_cli

import freezekeras
from freezekeras.errors import EXIT_USAGE_ERROR
from freezekeras.output import STDOUT, AtomicFile, StreamOutput, open_output, output_path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, bytes]:
    """A two-layer tf_keras model saved as .h5, and the graph convert writes for it into a regular file."""
    import tf_keras

    folder = tmp_path_factory.mktemp("outputs")
    tf_keras.utils.set_random_seed(7)
    model = tf_keras.Sequential([tf_keras.layers.Dense(4, activation="relu", input_shape=(3,), name="hidden"),
                                 tf_keras.layers.Dense(2, name="out")])
    model.save(folder / "tiny.h5")
    result = run_cli("convert", folder / "tiny.h5", "-o", folder / "tiny.pb")
    assert result.exit_code == 0, describe(result)
    return folder / "tiny.h5", (folder / "tiny.pb").read_bytes()


def _mode(path: Path) -> int:
    return os.lstat(path).st_mode


def test_dev_full_fails_cleanly_and_stays_a_device(tiny) -> None:
    """/dev/full: ENOSPC is one OutputError line, exit 2; the device node is not replaced."""
    full = Path("/dev/full")
    if not full.exists() or not stat.S_ISCHR(_mode(full)):
        pytest.skip("no /dev/full here")
    model, _ = tiny
    before = os.lstat(full)
    result = run_cli("convert", model, "-o", full)
    assert_one_error_line(result, EXIT_USAGE_ERROR, full, "writing failed", "No space left on device")
    after = os.lstat(full)
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev and after.st_ino == before.st_ino


def test_null_device_is_written_into(tiny, tmp_path: Path) -> None:
    """A null device (made in tmp_path, like /dev/null) takes the graph and stays a device."""
    model, graph = tiny
    null = tmp_path / "null"
    try:
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, AttributeError, OSError) as exc:
        pytest.skip(f"cannot make a device node here: {exc}")
    result = run_cli("convert", model, "-o", null, "--json")
    assert result.exit_code == 0, describe(result)
    report = json.loads(result.stdout)
    assert report["output"] == str(null) and report["size_bytes"] == len(graph)
    assert stat.S_ISCHR(_mode(null)) and os.stat(null).st_rdev == os.makedev(1, 3)
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["null"]  # no temporary file left


def _convert_into_fifo(model: Path, fifo: Path, output: Path):
    """``convert model -o output`` while a thread reads ``fifo``: the CLI result and what the reader got."""
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    result = run_cli("convert", model, "-o", output)
    reader.join(timeout=60)
    return result, received


def test_fifo_gets_the_graph(tiny, tmp_path: Path) -> None:
    """A FIFO is written into (the reader gets the same bytes as a regular file) and stays a FIFO."""
    model, graph = tiny
    fifo = tmp_path / "graph.fifo"
    os.mkfifo(fifo)
    result, received = _convert_into_fifo(model, fifo, fifo)
    assert result.exit_code == 0, describe(result)
    assert received == [graph]
    assert stat.S_ISFIFO(_mode(fifo))
    assert result.stdout.startswith(f"wrote {fifo} ")


def test_unix_socket_gets_the_graph(tiny, tmp_path: Path) -> None:
    """A listening Unix socket receives the graph; the socket file stays."""
    model, graph = tiny
    path = tmp_path / "graph.sock"
    if len(os.fsencode(path)) > 100:
        pytest.skip("tmp_path too long for a Unix socket address")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(os.fspath(path))
    server.listen(1)
    received: list[bytes] = []

    def serve() -> None:
        connection, _ = server.accept()
        with connection:
            data = b""
            while chunk := connection.recv(65536):
                data += chunk
        received.append(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        result = run_cli("convert", model, "-o", path)
        thread.join(timeout=60)
    finally:
        server.close()
    assert result.exit_code == 0, describe(result)
    assert received == [graph]
    assert stat.S_ISSOCK(_mode(path))


def test_socket_nobody_listens_on_is_an_output_error(tiny, tmp_path: Path) -> None:
    model, _ = tiny
    path = tmp_path / "dead.sock"
    if len(os.fsencode(path)) > 100:
        pytest.skip("tmp_path too long for a Unix socket address")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(os.fspath(path))  # bound, never listening
        result = run_cli("convert", model, "-o", path)
    assert_one_error_line(result, EXIT_USAGE_ERROR, path, "writing failed")
    assert stat.S_ISSOCK(_mode(path))


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_dash_writes_the_graph_to_stdout_and_the_report_to_stderr(tiny, tmp_path: Path, as_json: bool) -> None:
    model, graph = tiny
    result = run_cli("convert", model, "-o", "-", *(["--json"] if as_json else []))
    assert result.exit_code == 0, describe(result)
    assert result.stdout_bytes == graph
    if as_json:
        report = json.loads(result.stderr)
        assert report["output"] == "-" and report["size_bytes"] == len(graph)
        assert report["verification"]["passed"]
    else:
        assert result.stderr.startswith(f"wrote - ({report_nodes(graph)} nodes")
    assert not (Path.cwd() / "-").exists()


def report_nodes(graph: bytes) -> int:
    from freezekeras.graphdef.messages import GraphDef

    graph_def = GraphDef()
    graph_def.ParseFromString(graph)
    return len(graph_def.node)


def test_dash_with_text_writes_pbtxt(tiny) -> None:
    model, _ = tiny
    result = run_cli("convert", model, "-o", "-", "--text")
    assert result.exit_code == 0, describe(result)
    assert result.stdout.startswith("node {"), describe(result)
    assert "verification: passed" in result.stderr


def test_dash_with_a_batch_is_a_usage_error(tiny, tmp_path: Path) -> None:
    model, _ = tiny
    second = tmp_path / "second.h5"
    second.write_bytes(model.read_bytes())
    result = run_cli("convert", model, second, "-o", "-")
    line = assert_one_error_line(result, EXIT_USAGE_ERROR, "-o -", "one model file")
    assert line.startswith(PREFIX)
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["second.h5"]
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "one.h5").write_bytes(model.read_bytes())
    result = run_cli("convert", folder, "-o", "-")  # a folder is a batch, even of one model
    assert_one_error_line(result, EXIT_USAGE_ERROR, "-o -", "one model file")
    assert sorted(entry.name for entry in folder.iterdir()) == ["one.h5"]


def test_symlink_to_a_regular_file_keeps_the_link(tiny, tmp_path: Path) -> None:
    """The file the link points at is replaced (its permissions kept); the link stays a link."""
    model, graph = tiny
    real = tmp_path / "real.pb"
    real.write_bytes(b"old")
    real.chmod(0o640)
    link = tmp_path / "link.pb"
    link.symlink_to(real.name)
    result = run_cli("convert", model, "-o", link)
    assert result.exit_code == 0, describe(result)
    assert stat.S_ISLNK(_mode(link)) and os.readlink(link) == real.name
    assert real.read_bytes() == graph
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o640
    assert result.stdout.startswith(f"wrote {real} ")


def test_symlink_to_a_fifo_is_written_through(tiny, tmp_path: Path) -> None:
    model, graph = tiny
    fifo = tmp_path / "graph.fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link.pb"
    link.symlink_to(fifo)
    result, received = _convert_into_fifo(model, fifo, link)
    assert result.exit_code == 0, describe(result)
    assert received == [graph]
    assert stat.S_ISLNK(_mode(link)) and stat.S_ISFIFO(_mode(fifo))


def test_api_to_a_device_verifies_from_memory(tiny, tmp_path: Path) -> None:
    """The Python API: a target written into is verified from the bytes kept, not read back."""
    model, graph = tiny
    null = Path(os.devnull)
    if not stat.S_ISCHR(_mode(null)):
        pytest.skip("no character device /dev/null here")
    result = freezekeras.convert(model, freezekeras.ConvertOptions(output=null))
    assert result.output == null and result.size_bytes == len(graph)
    assert result.verification is not None and result.verification.passed
    assert stat.S_ISCHR(_mode(null))


def test_writers(tmp_path: Path) -> None:
    """open_output picks the writer by what the target is; a StreamOutput writes only on commit."""
    model = tmp_path / "m.h5"
    assert output_path(model, Path("-"), text=False) == STDOUT
    assert output_path(model, None, text=True) == tmp_path / "m.pbtxt"
    assert isinstance(open_output(tmp_path / "new.pb"), AtomicFile)
    assert isinstance(open_output(STDOUT), StreamOutput)
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    assert isinstance(open_output(fifo), StreamOutput)
    with open_output(fifo) as out:  # never committed: the FIFO is never opened, so this cannot block
        out.write([b"graph"])
        assert out.temporary is None and out.data == b"graph" and out.size == 5
    assert stat.S_ISFIFO(_mode(fifo))
