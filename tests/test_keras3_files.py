"""Keras 3 files read without TensorFlow: freezekeras.kerasfile.keras3 and inspect.

The naming rule (io_names) on configs written by hand for each branch, and on
real Keras 3 files built in a fresh interpreter with Keras 3, whose live
model gives the expected names (what the function route reads from it:
the input tensors' layers in ``keras.tree`` order, the output tensors' layers or
the output dict's keys). The shared corpus of real Keras 3 files is checked
against the input and output layers its MANIFEST.md lists.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import CORPUS, assert_one_error_line, describe, modules_imported, modules_under, run_cli

import freezekeras
from freezekeras.errors import (
    EXIT_MODEL_ERROR,
    EXIT_OK,
    EXIT_USAGE_ERROR,
    LambdaLayerError,
    ModelFileError,
    WeightsOnlyError,
)
from freezekeras.kerasfile.generation import keras_generation
from freezekeras.kerasfile.keras3 import (
    Keras3FileInfo,
    find_lambda_layers,
    io_names,
    node_name,
    read_keras3_file,
    refuse_lambda_layers,
    repair_config,
    unique_names,
)

KERAS3_CORPUS = CORPUS / "keras3"
needs_keras3_corpus = pytest.mark.skipif(not (KERAS3_CORPUS / "MANIFEST.md").is_file(),
                                         reason=f"the shared corpus of Keras 3 files is absent ({KERAS3_CORPUS})")


# --------------------------------------------------------------------------- configs written by hand

def _input(name: str, shape=(None, 3), dtype="float32") -> dict:
    return {"module": "keras.layers", "class_name": "InputLayer",
            "config": {"batch_shape": list(shape), "dtype": dtype, "name": name}, "name": name}


def _dense(name: str, units: int = 2) -> dict:
    return {"module": "keras.layers", "class_name": "Dense",
            "config": {"name": name, "units": units, "activation": "linear",
                       "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}}},
            "name": name}


def _functional(inputs, outputs, layers, name="model") -> dict:
    return {"module": "keras", "class_name": "Functional",
            "config": {"name": name, "layers": layers, "input_layers": inputs, "output_layers": outputs}}


def _sequential(layers, name="sequential", **extra) -> dict:
    return {"module": "keras", "class_name": "Sequential", "config": {"name": name, "layers": layers, **extra}}


def test_single_leaf_input_and_output():
    config = _functional(["x", 0, 0], ["out", 0, 0], [_input("x"), _dense("out")])
    assert io_names(config) == (["x"], ["out"])


def test_list_inputs_keep_their_order_and_outputs_are_named_by_layer():
    config = _functional([["zeta", 0, 0], ["alpha", 0, 0]], [["b", 0, 0], ["a", 0, 0]],
                         [_input("zeta"), _input("alpha"), _dense("a"), _dense("b")])
    assert io_names(config) == (["zeta", "alpha"], ["b", "a"])


def test_dict_inputs_sort_by_key_and_keep_layer_names():
    config = _functional({"b_key": ["alpha", 0, 0], "a_key": ["zeta", 0, 0]}, ["out", 0, 0],
                         [_input("alpha"), _input("zeta"), _dense("out")])
    assert io_names(config) == (["zeta", "alpha"], ["out"])  # a_key's layer first


def test_dict_outputs_are_named_by_their_keys_in_sorted_order():
    config = _functional(["x", 0, 0], {"score": ["s", 0, 0], "classes": ["c", 0, 0]},
                         [_input("x"), _dense("s"), _dense("c")])
    assert io_names(config) == (["x"], ["classes", "score"])


def test_nested_lists_flatten_depth_first():
    config = _functional([["a", 0, 0], [["b", 0, 0], ["c", 0, 0]]], [["o", 0, 0]],
                         [_input("a"), _input("b"), _input("c"), _dense("o")])
    assert io_names(config) == (["a", "b", "c"], ["o"])


def test_a_nested_model_output_is_named_by_the_nested_model():
    inner = _functional(["inner_in", 0, 0], ["inner_out", 0, 0], [_input("inner_in"), _dense("inner_out")],
                        name="encoder")
    inner["name"] = "encoder"
    config = _functional(["x", 0, 0], ["encoder", 1, 0], [_input("x"), inner])
    assert io_names(config) == (["x"], ["encoder"])


def test_sequential_input_layer_and_last_layer():
    config = _sequential([_input("input_layer_3"), _dense("dense"), _dense("dense_1")])
    assert io_names(config) == (["input_layer_3"], ["dense_1"])


def test_sequential_whose_last_layer_is_a_two_output_model():
    inner = _functional(["i", 0, 0], [["p", 0, 0], ["q", 0, 0]], [_input("i"), _dense("p"), _dense("q")],
                        name="heads")
    config = _sequential([_input("x"), inner])
    assert io_names(config) == (["x"], ["heads", "heads_1"])


def test_sequential_without_input_layer_gets_the_name_keras_gives_it():
    plain = _sequential([_dense("d")], build_input_shape=[None, 3])
    assert io_names(plain) == (["input_layer"], ["d"])
    nested = _sequential([_sequential([_dense("d")], name="inner", build_input_shape=[None, 3]), _dense("e")],
                         build_input_shape=[None, 3])
    assert io_names(nested) == (["input_layer_1"], ["e"])  # the inner model made input_layer first


def test_an_unbuilt_sequential_has_no_known_input():
    with pytest.raises(ModelFileError, match="saved before it was built.*keras.Input"):
        io_names(_sequential([_dense("d")]), source=Path("m.keras"))


def test_names_are_sanitised_then_made_unique():
    config = _functional([["x in", 0, 0], ["x:in", 0, 0]], [["x_in", 0, 0], ["o/k", 0, 0], ["o k", 0, 0]],
                         [_input("x in"), _input("x:in"), _dense("x_in"), _dense("o/k"), _dense("o k")])
    assert io_names(config) == (["x_in", "x_in_1"], ["x_in_2", "o/k", "o_k"])


def test_node_name_and_unique_names():
    assert node_name("a b:c/d.e-f") == "a_b_c/d.e-f"
    assert unique_names(["a", "a", "a_1", "b"], reserved=["b"]) == ["a", "a_1", "a_1_1", "b_1"]


def test_singleton_lists_inside_a_sequential_are_unwrapped():
    """A Keras 3.8-style config: a keras.applications-like Functional base inside a Sequential."""
    base = _functional([["input_layer", 0, 0]], [["out_relu", 0, 0]], [_input("input_layer"), _dense("out_relu")],
                       name="base")
    config = _sequential([_input("input_layer_1"), base, _dense("probs")])
    repaired, notes = repair_config(config)
    inner = repaired["config"]["layers"][1]["config"]
    assert inner["input_layers"] == ["input_layer", 0, 0]
    assert inner["output_layers"] == ["out_relu", 0, 0]
    assert len(notes) == 2 and all("keras-team/keras#20084" in note and "sequential/base" in note for note in notes)
    assert config["config"]["layers"][1]["config"]["output_layers"] == [["out_relu", 0, 0]]  # not modified
    assert io_names(repaired) == (["input_layer_1"], ["probs"])
    two = _functional([["a", 0, 0], ["b", 0, 0]], [["o", 0, 0]], [_input("a"), _input("b"), _dense("o")])
    assert repair_config(two)[0]["config"]["input_layers"] == [["a", 0, 0], ["b", 0, 0]]  # two leaves stay a list


def test_augmentation_layers_become_identity():
    rotation = {"module": "keras.layers", "class_name": "RandomRotation", "registered_name": None,
                "config": {"name": "random_rotation", "trainable": True, "dtype": "float32", "factor": 0.1,
                           "value_range": [0, 255], "seed": None}}
    crop = {"module": "keras.layers", "class_name": "RandomCrop",
            "config": {"name": "random_crop", "height": 2, "width": 2}}
    custom = {"module": "mine", "class_name": "RandomFlip", "registered_name": "Custom>RandomFlip",
              "config": {"name": "my_flip"}}
    config = _sequential([_input("x"), rotation, crop, custom, _dense("d")])
    repaired, notes = repair_config(config)
    layers = repaired["config"]["layers"]
    assert layers[1] == {"module": "keras.layers", "class_name": "Identity", "registered_name": None,
                         "config": {"name": "random_rotation", "trainable": True, "dtype": "float32"}}
    assert layers[2] == crop and layers[3] == custom  # a centre crop at inference; a custom class
    assert notes == ["sequential/random_rotation: RandomRotation replaced with Identity (identity at inference); "
                     "dropped arguments ['factor', 'seed', 'value_range']"]
    assert repair_config(repaired) == (repaired, [])


def test_lambda_layers_are_found_and_refused():
    lam = {"module": "keras.layers", "class_name": "Lambda",
           "config": {"name": "double", "function": {"class_name": "__lambda__", "config": {"code": "..."}}}}
    named = {"module": "keras.layers", "class_name": "Lambda",
             "config": {"name": "named", "function": {"class_name": "function", "config": "my_fn"}}}
    info = Keras3FileInfo(path=Path("m.keras"), kind="keras-archive", config=_sequential([_input("x"), lam, named]),
                          keras_version="3.15.0")
    assert list(find_lambda_layers(info.config)) == ["double"]
    refuse_lambda_layers(info)  # no lambda_layers given: nothing to refuse
    with pytest.raises(LambdaLayerError, match=r"m.keras: .*Lambda layers \(double\).*--allow-lambda"):
        refuse_lambda_layers(Keras3FileInfo(path=Path("m.keras"), kind="keras-archive", config=info.config,
                                            keras_version="3.15.0", lambda_layers=("double",)))


# --------------------------------------------------------------------------- archives made with zipfile and h5py

def _weights(target) -> None:
    with h5py.File(target, "w") as handle:
        handle.create_group("layers/d/vars").create_dataset("0", data=np.zeros((3, 2), "float32"))
        handle["layers/d/vars"].create_dataset("1", data=np.zeros(2, "float32"))
        handle.create_group("optimizer/vars").create_dataset("0", data=np.zeros((3, 2), "float32"))
        handle.create_group("vars")


def _fake_archive(path: Path, config: dict | None, *, skip: str = "", version: str = "3.8.0") -> Path:
    weights = path.with_suffix(".weights.h5")
    _weights(weights)
    members = {"metadata.json": json.dumps({"keras_version": version}),
               "config.json": json.dumps(config or _sequential([_input("x"), _dense("d")])),
               "model.weights.h5": weights.read_bytes()}
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            if name != skip:
                archive.writestr(name, data)
    return path


def test_an_archive_is_read_and_inspected(tmp_path):
    base = _functional([["i", 0, 0]], [["d", 0, 0]], [_input("i", (None, 3)), _dense("d")], name="base")
    path = _fake_archive(tmp_path / "m.keras", _sequential([_input("x", (None, 3)), base]))
    assert keras_generation(path) == "keras3"
    info = read_keras3_file(path)
    assert (info.kind, info.keras_version, len(info.notes), info.lambda_layers) == ("keras-archive", "3.8.0", 2, ())
    seen = freezekeras.inspect(path)
    assert seen.format == "keras-archive"
    assert [(s.name, s.dtype, s.shape, s.node) for s in seen.inputs] == [("x", "float32", (None, 3), "x")]
    assert [(s.name, s.node) for s in seen.outputs] == [("base", "base")]
    assert seen.details["param_count"] == 3 * 2 + 2  # the optimizer's variables left out
    assert seen.details["route"] == "function" and len(seen.details["repairs"]) == 2
    text = run_cli("inspect", path)
    assert text.exit_code == EXIT_OK, describe(text)
    assert "config repairs" in text.stdout and "keras-team/keras#20084" in text.stdout


@pytest.mark.parametrize(("damage", "phrase"), [
    ("truncated", "not a readable zip"),
    ("config.json", "it has no config.json"),
    ("model.weights.h5", "it has no model.weights.h5"),
    ("bad-json", "config.json is not valid JSON"),
])
def test_a_damaged_archive_is_one_error_line(tmp_path, damage, phrase):
    path = _fake_archive(tmp_path / "m.keras", None, skip=damage)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    if damage == "bad-json":
        with zipfile.ZipFile(path) as archive:
            members = {name: archive.read(name) for name in archive.namelist()}
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in members.items():
                archive.writestr(name, b"{not json" if name == "config.json" else data)
    with pytest.raises(ModelFileError, match="damaged or truncated"):
        read_keras3_file(path)
    for command in ("inspect",):
        assert_one_error_line(run_cli(command, path), EXIT_MODEL_ERROR, path, phrase, "damaged or truncated",
                              "Copy or download it again")


def test_keras3_weights_need_an_architecture(tmp_path):
    weights = tmp_path / "m.weights.h5"
    _weights(weights)
    assert keras_generation(weights) == "keras3"
    with pytest.raises(WeightsOnlyError):
        read_keras3_file(weights)
    assert_one_error_line(run_cli("inspect", weights), EXIT_MODEL_ERROR, weights,
                          "holds Keras 3 weights only (saved with save_weights), no architecture",
                          "Pass --architecture config.json (a .keras archive's config.json or model.to_json())")
    # the Keras 2 reader, given one, says the same
    from freezekeras.kerasfile.h5file import read_keras_file

    with pytest.raises(WeightsOnlyError, match="Keras 3 weights only"):
        read_keras_file(weights)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(_sequential([_input("x", (None, 3)), _dense("d")])))
    archive = _fake_archive(tmp_path / "a.keras", None)
    for architecture in (config, archive):
        seen = freezekeras.inspect(weights, architecture=architecture)
        assert seen.format == "keras-weights" and seen.details["architecture"] == str(architecture)
        assert [s.node for s in seen.inputs + seen.outputs] == ["x", "d"]
        assert seen.details["param_count"] == 8 and seen.details["keras_version"] is None


def test_keras_generation_never_raises(tmp_path):
    garbage = tmp_path / "g.h5"
    garbage.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 20)
    keras2 = tmp_path / "k2.h5"  # a Keras 2 model file, as tf-keras writes its metadata
    layers = [{"class_name": "InputLayer", "config": {"batch_input_shape": [None, 3], "dtype": "float32", "name": "x"}},
              {"class_name": "Dense", "config": {"name": "d", "units": 2, "activation": "linear", "use_bias": True}}]
    with h5py.File(keras2, "w") as handle:
        handle.attrs.update(keras_version="2.15.0", backend="tensorflow",
                            model_config=json.dumps({"class_name": "Sequential", "config": {"name": "s", "layers": layers}}))
        handle.create_group("model_weights")
    assert [keras_generation(p) for p in (garbage, tmp_path / "missing.h5", tmp_path, keras2)] == ["keras2"] * 4
    seen = freezekeras.inspect(keras2)
    assert seen.details["route"] == "session" and [s.node for s in seen.outputs] == ["d/BiasAdd"]


# --------------------------------------------------------------------------- real Keras 3 files

_BUILD = textwrap.dedent('''
    import collections, json, re, sys, zipfile
    import keras
    from keras.src.backend.common import global_state

    L = keras.layers
    def dense(n, name): return L.Dense(n, name=name)

    a, z = keras.Input((2,), name="alpha", dtype="int32"), keras.Input((3,), name="zeta")
    j = L.Concatenate(name="cat")([L.Activation("linear", dtype="float32", name="cast")(a), z])
    keras.Model({"b_key": a, "a_key": z}, {"score": dense(1, "s")(j), "cls": dense(3, "c")(j)}).save("dict_io.keras")

    i = keras.Input((4,), name="enc_in")
    inner = keras.Model(i, dense(2, "enc_out")(i), name="inner")
    x1, x2 = keras.Input((4,), name="x in"), keras.Input((4,), name="x:in")
    keras.Model([x1, x2], [inner(x1), dense(2, "x_in")(x2), dense(1, "o k")(x2)]).save("list_io.keras")

    seq = keras.Sequential([keras.Input((5,), name="seq_in"), dense(3, "d"),
                            keras.Sequential([dense(2, "e")], name="tail")])
    seq.save("seq_nested.keras")
    seq.save("seq_nested.h5")
    seq.save_weights("seq_nested.weights.h5")
    open("seq_nested.json", "w").write(seq.to_json())
    keras.Sequential([keras.Input((3,), name="lam_in"), L.Lambda(lambda t: t * 2, name="double")]).save("lambda.keras")

    # Sequential configs without InputLayer, with build_input_shape (as older writers left them)
    def rewrite(source, target, edit):
        with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
            for info in src.infolist():
                data = src.read(info)
                if info.filename == "config.json":
                    data = json.dumps(edit(json.loads(data)))
                dst.writestr(info.filename, data)
    keras.Sequential([keras.Input((3,)), dense(2, "first"), dense(1, "second")]).save("plain.keras")
    def drop_input(config):
        config["config"]["layers"] = config["config"]["layers"][1:]
        config["config"]["build_input_shape"] = [None, 3]
        return config
    rewrite("plain.keras", "auto_input.keras", drop_input)
    keras.Sequential([keras.Input((3,)), keras.Sequential([keras.Input((3,)), dense(2, "first")], name="inner"),
                      dense(1, "second")]).save("nested_plain.keras")
    def drop_inputs(config):
        drop_input(config)
        drop_input(config["config"]["layers"][0])
        return config
    rewrite("nested_plain.keras", "auto_nested.keras", drop_inputs)

    live = {}
    for name in sys.argv[1:]:
        global_state.set_global_attribute("object_name_uids", collections.defaultdict(int))  # as convert loads
        model = keras.saving.load_model(name, compile=False)
        try:
            structure = model.input
        except (AttributeError, ValueError):
            structure = model.inputs
        inputs = [t._keras_history[0].name for t in keras.tree.flatten(structure)]
        outs = getattr(model, "_outputs_struct", None)
        if isinstance(outs, dict):
            outputs = [str(k) for k in keras.tree.flatten({k: k for k in outs})]
        else:
            outputs = [t._keras_history[0].name for t in model.outputs]
        live[name] = [inputs, outputs]
    print(json.dumps(live))
''')

LIVE = ["dict_io.keras", "list_io.keras", "seq_nested.keras", "seq_nested.h5", "auto_input.keras",
        "auto_nested.keras"]


def _keras3_subprocess(code: str, folder: Path, *args: str) -> str:
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "0", "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=600)
    if done.returncode != 0:
        pytest.fail(f"Keras 3 failed: {done.stderr[-3000:]}")
    return done.stdout


@pytest.fixture(scope="module")
def keras3_files(tmp_path_factory) -> tuple[Path, dict]:
    """Real Keras 3 files, and the names their live models give (loaded in the same fresh interpreter)."""
    folder = tmp_path_factory.mktemp("keras3_files")
    live = json.loads(_keras3_subprocess(_BUILD, folder, *LIVE).splitlines()[-1])
    return folder, live


def _rule(names: list[str], reserved: list[str] = ()) -> list[str]:
    """The function route's renaming, written out again: sanitise, then suffix repeats."""
    taken, result = set(reserved), []
    for name in (re.sub(r"[^A-Za-z0-9_.\-/]", "_", n) for n in names):
        candidate, index = name, 0
        while candidate in taken:
            index += 1
            candidate = f"{name}_{index}"
        taken.add(candidate)
        result.append(candidate)
    return result


@pytest.mark.subprocess
@pytest.mark.slow
@pytest.mark.parametrize("name", LIVE)
def test_predicted_names_are_the_live_models(keras3_files, name):
    folder, live = keras3_files
    inputs, outputs = live[name]
    expected_inputs = _rule(inputs)
    expected = (expected_inputs, _rule(outputs, expected_inputs))
    info = read_keras3_file(folder / name)
    assert io_names(info.config) == expected
    seen = freezekeras.inspect(folder / name)
    assert seen.format == ("keras-h5" if name.endswith(".h5") else "keras-archive")
    assert ([s.node for s in seen.inputs], [s.node for s in seen.outputs]) == expected


@pytest.mark.subprocess
@pytest.mark.slow
def test_real_files_details(keras3_files):
    folder, live = keras3_files
    assert live["dict_io.keras"] == [["zeta", "alpha"], ["cls", "score"]]  # the rule, as stated, holds
    assert live["list_io.keras"] == [["x in", "x:in"], ["inner", "x_in", "o k"]]
    seen = freezekeras.inspect(folder / "dict_io.keras")
    assert [(s.name, s.dtype, s.shape) for s in seen.inputs] == [("zeta", "float32", (None, 3)),
                                                               ("alpha", "int32", (None, 2))]
    assert [(s.name, s.node) for s in seen.outputs] == [("c", "cls"), ("s", "score")]
    seen = freezekeras.inspect(folder / "list_io.keras")
    assert [s.node for s in seen.inputs + seen.outputs] == ["x_in", "x_in_1", "inner", "x_in_2", "o_k"]
    h5 = read_keras3_file(folder / "seq_nested.h5")
    assert (h5.kind, h5.keras_version.startswith("3."), keras_generation(folder / "seq_nested.h5")) == \
        ("keras-h5", True, "keras3")
    weights = folder / "seq_nested.weights.h5"
    assert keras_generation(weights) == "keras3"
    for architecture in (folder / "seq_nested.json", folder / "seq_nested.keras"):
        seen = freezekeras.inspect(weights, architecture=architecture)
        assert seen.format == "keras-weights"
        assert [s.node for s in seen.inputs + seen.outputs] == ["seq_in", "tail"]
        assert seen.details["param_count"] == 5 * 3 + 3 + 3 * 2 + 2
    assert_one_error_line(run_cli("inspect", weights), EXIT_MODEL_ERROR, weights, "holds Keras 3 weights only",
                          "--architecture config.json")
    lam = read_keras3_file(folder / "lambda.keras")
    assert lam.lambda_layers == ("double",)
    with pytest.raises(LambdaLayerError, match="double"):
        refuse_lambda_layers(lam)


# --------------------------------------------------------------------------- the shared corpus

def _manifest() -> dict[str, tuple[list[str], str]]:
    rows = {}
    for line in (KERAS3_CORPUS / "MANIFEST.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0].endswith((".keras", ".h5")):
            inputs = [part.split()[0] for part in cells[4].split(";")]
            rows[cells[0]] = (inputs, cells[5])
    return rows


@pytest.mark.corpus
@needs_keras3_corpus
def test_corpus_names_are_the_manifests_layers():
    manifest = _manifest()
    files = sorted(p.name for p in KERAS3_CORPUS.iterdir() if p.suffix in {".keras", ".h5"})
    assert sorted(manifest) == files and len(files) == 17
    for name, (inputs, output) in manifest.items():
        seen = freezekeras.inspect(KERAS3_CORPUS / name)
        assert seen.format == ("keras-h5" if name.endswith(".h5") else "keras-archive"), name
        assert [(s.name, s.node) for s in seen.inputs] == [(n, n) for n in inputs], name
        assert [(s.name, s.node) for s in seen.outputs] == [(output, output)], name
        assert seen.details["route"] == "function" and seen.details["keras_version"].startswith("3."), name
    repairs = freezekeras.inspect(KERAS3_CORPUS / "ssarawagi05-mnist_improved_mnist_cnn_model.keras").details["repairs"]
    assert any("RandomRotation replaced with Identity" in note and "value_range" in note for note in repairs)


# --------------------------------------------------------------------------- no TensorFlow

_NEVER = ("tensorflow", "tf_keras", "keras", "freezekeras.tf", "freezekeras.api")


@pytest.mark.subprocess
@pytest.mark.slow
def test_inspecting_keras3_files_imports_no_tensorflow(keras3_files):
    folder, _ = keras3_files
    for path in (folder / "dict_io.keras", folder / "seq_nested.h5"):
        modules = modules_imported("inspect", str(path))
        assert modules_under(modules, *_NEVER) == [], path
        assert "freezekeras.kerasfile.keras3" in modules


def test_usage_errors(tmp_path):
    path = _fake_archive(tmp_path / "m.keras", None)
    assert_one_error_line(run_cli("inspect", path, "--signature", "x"), EXIT_USAGE_ERROR, path, "Drop --signature")
    config = tmp_path / "c.json"
    config.write_text("{}")
    assert_one_error_line(run_cli("inspect", path, "--architecture", config), EXIT_USAGE_ERROR, path,
                          "holds its own architecture", "Drop --architecture")
