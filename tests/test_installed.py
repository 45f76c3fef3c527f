"""The installed console script and ``python -m freezekeras``, run as a user runs them.

Each test starts a real subprocess. Its environment is the user's, without the
TensorFlow variables conftest.py sets for the test process itself, so that
"stderr is empty" means freezekeras hid TensorFlow's noise, not the test.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest
from conftest import FREEZEKERAS, needs_script, run_with_stderr_on_a_terminal, user_env

pytestmark = pytest.mark.subprocess  # every test runs the command or a fresh interpreter


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*args], capture_output=True, text=True, env=user_env(), cwd=cwd, timeout=300)


@needs_script
def test_version_names_the_installed_versions():
    done = _run(str(FREEZEKERAS), "--version")

    assert done.returncode == 0, done.stderr
    expected = (
        f"freezekeras {metadata.version('freezekeras')} ("
        + ", ".join(f"{name} {metadata.version(name)}" for name in ("tensorflow", "tf-keras", "keras", "h5py", "protobuf"))
        + ")"
    )
    assert done.stdout.strip() == expected
    assert done.stdout.startswith("freezekeras 0.1.0 (tensorflow ")


def test_python_m_help_lists_the_commands():
    done = _run(sys.executable, "-m", "freezekeras", "--help")

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: freezekeras ")
    commands = done.stdout.split("Commands:", 1)[1].split()
    assert "convert" in commands and "inspect" in commands


@pytest.mark.slow
@needs_script
@pytest.mark.parametrize("name", ["dense", "multi_io"])
def test_convert_json_is_one_object_and_matches_inspect(model_dir, tmp_path, name):
    done = _run(str(FREEZEKERAS), "convert", str(model_dir / f"{name}.h5"), "-o", "x.pb", "--json", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    report = json.loads(done.stdout)  # the whole of stdout is one JSON object
    assert isinstance(report, dict)
    assert report["output"] == "x.pb" and (tmp_path / "x.pb").is_file()
    assert report["verification"]["passed"] is True

    seen = _run(str(FREEZEKERAS), "inspect", "x.pb", "--json", cwd=tmp_path)

    assert seen.returncode == 0, seen.stderr
    assert seen.stderr == ""
    graph = json.loads(seen.stdout)
    assert graph["format"] == "graphdef"
    for side in ("inputs", "outputs"):
        # inspect lists a graph's nodes in graph order; convert in the model's order.
        converted = sorted((spec["name"], spec["dtype"]) for spec in report[side])
        inspected = sorted((spec["name"], spec["dtype"]) for spec in graph[side])
        assert converted == inspected, side
        assert converted  # a model has inputs and outputs


@pytest.mark.slow
@needs_script
def test_convert_verbose_succeeds(dense_h5, tmp_path):
    done = _run(str(FREEZEKERAS), "convert", str(dense_h5), "-o", str(tmp_path / "v.pb"), "--verbose")

    assert done.returncode == 0, done.stderr
    assert (tmp_path / "v.pb").is_file()


@pytest.mark.slow
@needs_script
def test_progress_with_timings_goes_to_a_terminal_stderr(dense_h5, tmp_path):
    """With stderr a terminal, each step is reported with its time; stdout keeps only the result."""
    done, progress = run_with_stderr_on_a_terminal([str(FREEZEKERAS), "convert", str(dense_h5), "-o",
                                                    str(tmp_path / "t.pb")])
    assert done.returncode == 0
    assert [line.split(": ")[-1].split(" done")[0] for line in progress] == ["load", "freeze", "write", "verify"]
    assert all(line.startswith(f"freezekeras: {dense_h5}: ") and line.endswith(" s") for line in progress)
    assert done.stdout.decode().startswith(f"wrote {tmp_path / 't.pb'} (")


@needs_script
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=["TERM", "INT", "HUP"])
def test_a_stopped_conversion_leaves_nothing(model_dir, tmp_path, signum):
    out = tmp_path / "out"
    out.mkdir()
    child = subprocess.Popen([str(FREEZEKERAS), "convert", str(model_dir / "stacked_lstm.h5"), "-o", str(out / "m.pb")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=user_env())
    deadline = time.monotonic() + 60
    while not list(out.iterdir()) and time.monotonic() < deadline:  # the temporary file: work has begun
        time.sleep(0.05)
    assert list(out.iterdir()), "no temporary file appeared"
    child.send_signal(signum)
    stdout, stderr = child.communicate(timeout=120)
    assert child.returncode == 128 + signum and stdout == ""
    assert list(out.iterdir()) == []
    name = signal.Signals(signum).name
    assert stderr.splitlines() == [f"freezekeras: stopped by {name}; nothing was written"]


#: A custom layer that receives SIGINT while being built and lets its exception be lost, as TensorFlow
#: can: replaced by a RuntimeError (what pybind11 does when the signal arrives inside TensorFlow's C++
#: code), or ignored (what Python does when it arrives inside a ``__del__``).
SWALLOWED_SIGNAL = '''
import os
import signal

import tf_keras


def interrupt_here():
    os.kill(os.getpid(), signal.SIGINT)
    signal.sigtimedwait([], 5)  # no-op wait so the handler runs here, if it has not yet


class Collected:
    def __del__(self):
        interrupt_here()


class Interrupted(tf_keras.layers.Layer):
    def build(self, input_shape):
        how = os.environ.get("INTERRUPT_BUILD")  # set in the freezekeras process only
        if how == "ignored":
            Collected()  # freed at once: Python ignores the exception raised in its __del__
        elif how == "replaced":
            try:
                interrupt_here()
            except BaseException as exc:
                raise RuntimeError(f"pybind11::error_already_set: REPLACED BY {type(exc).__name__}") from None
        super().build(input_shape)
'''


@pytest.mark.slow
@needs_script
@pytest.mark.parametrize("how", ["replaced", "ignored"])
@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
def test_a_signal_swallowed_inside_keras_still_stops(tmp_path, batch, how):
    import tf_keras

    namespace: dict = {}
    exec(compile(SWALLOWED_SIGNAL, "interrupted.py", "exec"), namespace)
    (tmp_path / "interrupted.py").write_text(SWALLOWED_SIGNAL)
    model = tmp_path / "m.h5"
    tf_keras.Sequential([tf_keras.Input((3,)), namespace["Interrupted"](name="stop_here")]).save(model)
    models = [str(model)]
    if batch:
        models.append(str(model.with_name("again.h5")))
        model.with_name("again.h5").write_bytes(model.read_bytes())
    out = tmp_path / "out"

    done = subprocess.run(
        [str(FREEZEKERAS), "convert", *models, "--custom-objects", str(tmp_path / "interrupted.py"),
         "-o", f"{out}/" if batch else str(tmp_path / "m.pb")],
        capture_output=True, text=True, timeout=300, env={**user_env(), "INTERRUPT_BUILD": how})

    assert (done.returncode, done.stdout) == (128 + signal.SIGINT, "")
    assert done.stderr.splitlines() == ["freezekeras: stopped by SIGINT; nothing was written"]
    assert not (tmp_path / "m.pb").exists() and not (out.exists() and list(out.iterdir()))


#: A custom layer that receives SIGINT while a TensorFlow Session is half-built, as a signal that lands
#: inside ``Session.__init__`` leaves it: the Session's ``__del__`` then fails when it is collected.
HALF_BUILT_SESSION = '''
import os
import signal

import tensorflow as tf
import tf_keras


class HalfBuilt(tf_keras.layers.Layer):
    def build(self, input_shape):
        if os.environ.get("INTERRUPT_BUILD"):  # in the freezekeras process only
            half = object.__new__(tf.compat.v1.Session)  # no _session yet: its __del__ raises AttributeError
            os.kill(os.getpid(), signal.SIGINT)
            signal.sigtimedwait([], 5)  # no-op wait so the handler runs here, if it has not yet
        super().build(input_shape)
'''


@pytest.mark.slow
@needs_script
@pytest.mark.parametrize("debug", [False, True], ids=["quiet", "debug"])
def test_a_signal_inside_a_constructor_leaves_no_traceback(tmp_path, debug):
    import tf_keras

    namespace: dict = {}
    exec(compile(HALF_BUILT_SESSION, "half_built.py", "exec"), namespace)
    (tmp_path / "half_built.py").write_text(HALF_BUILT_SESSION)
    model = tmp_path / "m.h5"
    tf_keras.Sequential([tf_keras.Input((3,)), namespace["HalfBuilt"](name="half")]).save(model)

    done = subprocess.run(
        [str(FREEZEKERAS), "convert", str(model), "--custom-objects", str(tmp_path / "half_built.py"),
         "-o", str(tmp_path / "m.pb"), *(["--debug"] if debug else [])],
        capture_output=True, text=True, timeout=300, env={**user_env(), "INTERRUPT_BUILD": "1"})

    assert (done.returncode, done.stdout) == (128 + signal.SIGINT, "")
    if debug:  # --debug shows what Python ignored
        assert "Exception ignored in: <function BaseSession.__del__" in done.stderr
    else:
        assert done.stderr.splitlines() == ["freezekeras: stopped by SIGINT; nothing was written"]
    assert not (tmp_path / "m.pb").exists()
