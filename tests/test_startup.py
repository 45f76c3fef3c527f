"""The command line imports what the command needs, and nothing else.

``freezekeras inspect`` on a Keras file must start in about the time h5py takes
to import (``bench/inspect_speed.py`` measures it); here each command runs in a
fresh interpreter and the modules it imported are listed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.subprocess

_IMPORTED = """
import json, sys
from freezekeras.cli.commands import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""

#: What no ``inspect`` without ``--build`` may import: TensorFlow, Keras, and freezekeras' own converting side.
NEVER = ("tensorflow", "tf_keras", "keras", "freezekeras.tf", "freezekeras.api", "freezekeras.batch",
         "freezekeras.output", "freezekeras.compatibility")


def _imported(*args: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", _IMPORTED, *args], capture_output=True, text=True, timeout=120)
    report = json.loads(done.stderr.splitlines()[-1])
    assert report["code"] == 0, done.stderr
    return report["modules"]


def _under(modules: list[str], *prefixes: str) -> list[str]:
    return [name for name in modules if any(name == p or name.startswith(p + ".") for p in prefixes)]


@pytest.fixture(scope="module")
def files(model_dir, tmp_path_factory) -> dict[str, Path]:
    import freezekeras

    folder = tmp_path_factory.mktemp("startup")
    pb = freezekeras.convert(model_dir / "dense.h5", freezekeras.ConvertOptions(output=folder / "dense.pb",
                                                                                verify=False)).output
    return {"h5": model_dir / "dense.h5", "pb": pb}


def test_inspecting_a_keras_file_imports_h5py_but_neither_tensorflow_nor_protobuf(files):
    modules = _imported("inspect", str(files["h5"]))

    assert _under(modules, *NEVER) == []
    assert _under(modules, "google.protobuf", "freezekeras.graphdef") == []
    assert "h5py" in modules and "freezekeras.kerasfile.h5file" in modules


def test_inspecting_a_graph_imports_protobuf_but_neither_tensorflow_nor_h5py(files):
    modules = _imported("inspect", str(files["pb"]), "--check")

    assert _under(modules, *NEVER) == []
    assert _under(modules, "h5py", "numpy", "freezekeras.kerasfile") == []
    assert "google.protobuf" in modules and "freezekeras.graphdef.lint" in modules


def test_help_and_version_import_no_model_code():
    for args in (["--help"], ["convert", "--help"], ["--version"]):
        modules = _imported(*args)
        assert _under(modules, *NEVER, "h5py", "google.protobuf", "freezekeras.kerasfile", "freezekeras.graphdef") == []
