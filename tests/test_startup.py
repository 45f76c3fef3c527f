"""The command line imports what the command needs, and nothing else.

``freezekeras inspect`` on a Keras file must start in about the time h5py takes
to import (``bench/inspect_speed.py`` measures it); here each command runs in a
fresh interpreter and the modules it imported are listed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import modules_imported, modules_under

pytestmark = pytest.mark.subprocess

#: What no ``inspect`` without ``--build`` may import: TensorFlow, Keras, and freezekeras' own converting side.
NEVER = ("tensorflow", "tf_keras", "keras", "freezekeras.tf", "freezekeras.api", "freezekeras.batch",
         "freezekeras.output", "freezekeras.compatibility")


@pytest.fixture(scope="module")
def files(model_dir, tmp_path_factory) -> dict[str, Path]:
    import freezekeras

    folder = tmp_path_factory.mktemp("startup")
    pb = freezekeras.convert(model_dir / "dense.h5", freezekeras.ConvertOptions(output=folder / "dense.pb",
                                                                                verify=False)).output
    return {"h5": model_dir / "dense.h5", "pb": pb}


def test_inspecting_a_keras_file_imports_h5py_but_neither_tensorflow_nor_protobuf(files):
    modules = modules_imported("inspect", str(files["h5"]))

    assert modules_under(modules, *NEVER) == []
    assert modules_under(modules, "google.protobuf", "freezekeras.graphdef") == []
    assert "h5py" in modules and "freezekeras.kerasfile.h5file" in modules


def test_inspecting_a_graph_imports_protobuf_but_neither_tensorflow_nor_h5py(files):
    modules = modules_imported("inspect", str(files["pb"]), "--check")

    assert modules_under(modules, *NEVER) == []
    assert modules_under(modules, "h5py", "numpy", "freezekeras.kerasfile") == []
    assert "google.protobuf" in modules and "freezekeras.graphdef.lint" in modules


def test_help_and_version_import_no_model_code():
    for args in (["--help"], ["convert", "--help"], ["--version"]):
        modules = modules_imported(*args)
        model_code = ("h5py", "google.protobuf", "freezekeras.kerasfile", "freezekeras.graphdef")
        assert modules_under(modules, *NEVER, *model_code) == []
