"""Every bad input through the command line: one error line, the right exit code, nothing written.

Each failing case checks the same contract (see :func:`assert_one_error_line`
and :func:`assert_nothing_changed`): the exit code of
:mod:`freezekeras.errors`, exactly one ``freezekeras: error:`` line on stderr
naming the file, the problem and the next step, no traceback, nothing on
stdout, no output or temporary file, and the input file unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import (
    PREFIX,
    WARNING,
    assert_nothing_changed,
    assert_one_error_line,
    build_custom_layer,
    build_lambda,
    build_weights_only,
    copy,
    describe,
    noise_function,
    run_cli,
    run_frozen,
    sha256,
    snapshot,
)

from freezekeras.errors import (
    EXIT_MODEL_ERROR,
    EXIT_OK,
    EXIT_USAGE_ERROR,
    EXIT_VERIFICATION_FAILED,
    GraphTooLargeError,
)
from freezekeras.kerasfile.h5file import find_lambda_layers

# --------------------------------------------------------------------------- models


def build_nested_lambda(path: Path) -> Path:
    """A Lambda inside a Sequential used as a layer of a functional model."""
    import tf_keras

    inner = tf_keras.Sequential([
        tf_keras.Input((3,)),
        tf_keras.layers.Lambda(lambda x: x * 2.0, name="inner_lambda"),
        tf_keras.layers.Dense(2),
    ], name="inner")
    features = tf_keras.Input((3,), name="features")
    tf_keras.Model(features, tf_keras.layers.Dense(1, name="head")(inner(features))).save(path)
    return path


def set_model_config(path: Path, value: str) -> Path:
    with h5py.File(path, "r+") as handle:
        handle.attrs["model_config"] = value
    return path


# --------------------------------------------------------------------------- bad inputs


@dataclass(frozen=True)
class Case:
    """A bad input: ``make(tmp_path, request)`` creates it and returns its path."""

    make: Callable[[Path, pytest.FixtureRequest], Path]
    code: int
    phrases: tuple[str, ...]
    commands: tuple[str, ...] = ("convert", "inspect")


def _missing(tmp: Path, _request) -> Path:
    return tmp / "missing.h5"


def _directory(tmp: Path, _request) -> Path:
    folder = tmp / "models"
    folder.mkdir()
    (folder / "inside.txt").write_text("not a model\n")
    return folder


def _saved_model(tmp: Path, _request) -> Path:
    folder = tmp / "exported"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"\x08\x01")
    return folder


def _empty(tmp: Path, _request) -> Path:
    path = tmp / "empty.h5"
    path.write_bytes(b"")
    return path


def _text(tmp: Path, _request) -> Path:
    path = tmp / "notes.h5"
    path.write_text("these are notes, not a model\n")
    return path


def _text_txt(tmp: Path, _request) -> Path:
    path = tmp / "notes.txt"
    path.write_text("these are notes, not a model\n")
    return path


def _binary(tmp: Path, _request) -> Path:
    path = tmp / "random.h5"
    path.write_bytes(bytes(range(256)) * 8)
    return path


def _signature_only(tmp: Path, _request) -> Path:
    path = tmp / "header.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 1000)
    return path


def _truncated(tmp: Path, request) -> Path:
    data = (request.getfixturevalue("model_dir") / "dense.h5").read_bytes()
    path = tmp / "truncated.h5"
    path.write_bytes(data[: len(data) // 2])
    return path


def _no_keras_metadata(tmp: Path, _request) -> Path:
    path = tmp / "plain.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("values", data=[1.0, 2.0, 3.0])
        handle.attrs["note"] = "plain HDF5, no Keras"
    return path


def _config_not_json(tmp: Path, request) -> Path:
    path = copy(request.getfixturevalue("model_dir") / "dense.h5", tmp / "bad_json.h5")
    return set_model_config(path, "{not json")


def _config_no_class_name(tmp: Path, request) -> Path:
    path = copy(request.getfixturevalue("model_dir") / "dense.h5", tmp / "no_class.h5")
    return set_model_config(path, json.dumps({"config": {"name": "sequential", "layers": []}}))


def _config_not_object(tmp: Path, request) -> Path:
    path = copy(request.getfixturevalue("model_dir") / "dense.h5", tmp / "list_config.h5")
    return set_model_config(path, json.dumps(["Sequential", {"layers": []}]))


def _config_unbuildable(tmp: Path, request) -> Path:
    path = copy(request.getfixturevalue("model_dir") / "dense.h5", tmp / "unbuildable.h5")
    return set_model_config(path, json.dumps({"class_name": "Sequential", "config": 5}))


def _weights_only(tmp: Path, _request) -> Path:
    return build_weights_only(tmp / "weights.h5")


def _custom_layer(tmp: Path, _request) -> Path:
    return build_custom_layer(tmp / "custom.h5")


def _empty_pb(tmp: Path, _request) -> Path:
    path = tmp / "empty.pb"
    path.write_bytes(b"")
    return path


def _frozen_graph(tmp: Path, _request) -> Path:
    """A real GraphDef, given to ``convert`` (whose default output path would be the input itself)."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.constant([1.0, 2.0], name="values")
    path = tmp / "graph.pb"
    path.write_bytes(graph.as_graph_def().SerializeToString())
    return path


def _garbage_pb(tmp: Path, _request) -> Path:
    path = tmp / "garbage.pb"
    path.write_text("hello, this is not a graph\n")
    return path


CASES = {
    # 1. paths
    "missing": Case(_missing, EXIT_USAGE_ERROR, ("no such file", "Check the path")),
    "directory": Case(_directory, EXIT_USAGE_ERROR, ("is a directory", "Pass a Keras model file", "SavedModel folder")),
    "damaged-saved-model": Case(_saved_model, EXIT_MODEL_ERROR,
                                ("saved_model.pb", "damaged or truncated", "export it again")),
    # 2. not a (readable) Keras HDF5 file
    "empty": Case(_empty, EXIT_MODEL_ERROR, ("the file is empty", "model.save('model.h5')")),
    "text": Case(_text, EXIT_MODEL_ERROR, ("is not an HDF5 file", "Pass a Keras .h5 model")),
    "txt-file": Case(_text_txt, EXIT_MODEL_ERROR, ("is not an HDF5 file", "Pass a Keras .h5 model"),
                            ("convert",)),
    "binary": Case(_binary, EXIT_MODEL_ERROR, ("is not an HDF5 file", "Pass a Keras .h5 model")),
    "hdf5-signature-only": Case(_signature_only, EXIT_MODEL_ERROR,
                                ("damaged or truncated", "Copy or download it again")),
    "truncated": Case(_truncated, EXIT_MODEL_ERROR, ("damaged or truncated", "Copy or download it again")),
    "no-keras-metadata": Case(_no_keras_metadata, EXIT_MODEL_ERROR,
                              ("holds no Keras model", "no model_config", "model.save('model.h5')")),
    "config-not-json": Case(_config_not_json, EXIT_MODEL_ERROR,
                            ("model_config attribute is not valid JSON", "model.save('model.h5')")),
    "config-no-class-name": Case(_config_no_class_name, EXIT_MODEL_ERROR,
                                 ("is not a Keras model config", "class_name", "model.save('model.h5')")),
    "config-not-object": Case(_config_not_object, EXIT_MODEL_ERROR,
                              ("is not a Keras model config", "model.save('model.h5')")),
    "config-unbuildable": Case(_config_unbuildable, EXIT_MODEL_ERROR,
                               ("Keras could not build the model", "--debug"), ("convert", "inspect --build")),
    "config-unreadable": Case(_config_unbuildable, EXIT_MODEL_ERROR,
                              ("the model config is malformed", "model.save('model.h5')"), ("inspect",)),
    # 3. weights only
    "weights-only": Case(_weights_only, EXIT_MODEL_ERROR,
                         ("holds weights only", "save_weights", "--architecture model.json", "model.to_json()")),
    # 5. custom layers (inspect reads the config without them unless it builds the model)
    "unknown-custom-layer": Case(_custom_layer, EXIT_MODEL_ERROR,
                                 ("'Scale'", "Keras does not know", "--custom-objects FILE.py"),
                                 ("convert", "inspect --build")),
    # a frozen graph is no input for convert (its default output path would be the input itself)
    "frozen-graph-given-to-convert": Case(_frozen_graph, EXIT_MODEL_ERROR,
                                          ("is not an HDF5 file", "Pass a Keras .h5 model"), ("convert",)),
    # inspect reads frozen graphs too
    "empty-pb": Case(_empty_pb, EXIT_MODEL_ERROR, ("the file is empty",), ("inspect",)),
    "garbage-pb": Case(_garbage_pb, EXIT_MODEL_ERROR,
                       ("is not a TensorFlow GraphDef", "Pass a frozen graph"), ("inspect",)),
    "txt-file-read-as-graph": Case(_text_txt, EXIT_MODEL_ERROR,
                                    ("is not a TensorFlow GraphDef", "Pass a frozen graph"), ("inspect",)),
}


@pytest.mark.parametrize(
    ("case", "command"),
    [pytest.param(case, command, id=f"{command}-{name}") for name, case in CASES.items() for command in case.commands],
)
def test_bad_input(case: Case, command: str, tmp_path: Path, request) -> None:
    path = case.make(tmp_path, request)
    digest = sha256(path) if path.is_file() else None
    before = snapshot(tmp_path)

    name, *flags = command.split()
    result = run_cli(name, path, *flags)

    assert_one_error_line(result, case.code, path, *case.phrases)
    assert_nothing_changed(before, tmp_path)
    if digest is not None:
        assert sha256(path) == digest


@pytest.mark.parametrize("attribute", ["keras_version", "backend"])
@pytest.mark.parametrize("command", ["convert", "inspect"])
def test_undecodable_metadata_attribute(attribute: str, command: str, dense_h5: Path,
                                        tmp_path: Path) -> None:
    """A damaged informational attribute (bytes that are not UTF-8) is no crash: the model converts."""
    import numpy as np

    with h5py.File(dense_h5, "r+") as handle:
        handle.attrs[attribute] = np.void(b"\xff\xfe2.21")
    digest = sha256(dense_h5)

    result = run_cli(command, dense_h5, "--json")

    assert result.exit_code == EXIT_OK, describe(result)
    assert json.loads(result.stdout)["outputs"][0]["name"] in {"predictions", "predictions/Softmax"}
    assert sha256(dense_h5) == digest


def test_weights_only_file_is_really_weights_only(tmp_path: Path) -> None:
    """The weights-only case above is what save_weights really writes: layer names, no config."""
    path = build_weights_only(tmp_path / "weights.h5")
    with h5py.File(path, "r") as handle:
        assert "model_config" not in handle.attrs
        assert "layer_names" in handle.attrs


# --------------------------------------------------------------------------- output paths


def _output_is_input(tmp: Path, model: Path) -> tuple[Path, Path, tuple[str, ...]]:
    return model, model, ("the output path is the input model", "choose another path with -o")


def _output_is_input_spelled_differently(tmp: Path, model: Path) -> tuple[Path, Path, tuple[str, ...]]:
    (tmp / "sub").mkdir()
    other = tmp / "sub" / ".." / model.name
    return other, other, ("the output path is the input model", "choose another path with -o")


def _output_folder_missing(tmp: Path, model: Path) -> tuple[Path, Path, tuple[str, ...]]:
    target = tmp / "no_such_folder" / "model.pb"
    return target, target, (f"the output folder {tmp / 'no_such_folder'} does not exist",
                            "create it or choose another -o")


def _output_parent_is_file(tmp: Path, model: Path) -> tuple[Path, Path, tuple[str, ...]]:
    regular = tmp / "regular_file"
    regular.write_text("I am a file\n")
    target = regular / "model.pb"
    return target, target, (f"the output folder {regular} is not a folder", "choose another -o")


def _output_target_is_folder(tmp: Path, model: Path) -> tuple[Path, Path, tuple[str, ...]]:
    """``-o out`` (a folder) where ``out/dense.pb`` is itself a folder: the rename must fail."""
    out = tmp / "out"
    (out / f"{model.stem}.pb").mkdir(parents=True)
    return out, out / f"{model.stem}.pb", ("cannot replace the file", "choose another -o")


OUTPUT_CASES = {
    "output-is-input": _output_is_input,
    "output-is-input-via-dotdot": _output_is_input_spelled_differently,
    "output-folder-missing": _output_folder_missing,
    "output-parent-is-a-file": _output_parent_is_file,
    "output-target-is-a-folder": _output_target_is_folder,
}


@pytest.mark.parametrize("make", OUTPUT_CASES.values(), ids=OUTPUT_CASES.keys())
def test_bad_output_path(make, dense_h5: Path, tmp_path: Path) -> None:
    option, named, phrases = make(tmp_path, dense_h5)
    digest = sha256(dense_h5)
    before = snapshot(tmp_path)

    result = run_cli("convert", dense_h5, "-o", option)

    assert_one_error_line(result, EXIT_USAGE_ERROR, named, *phrases)
    assert_nothing_changed(before, tmp_path)
    assert sha256(dense_h5) == digest


# --------------------------------------------------------------------------- output nodes


@pytest.mark.parametrize(
    ("node", "phrases"),
    [
        pytest.param("does_not_exist", ("--output-node does_not_exist is not in the model's graph",),
                     id="unknown"),
        pytest.param("predictions/Softmx", ("Did you mean predictions/Softmax",), id="typo"),
        pytest.param("predictions", ("That is a Keras layer name; its output node is predictions/Softmax.",),
                     id="layer-name"),
        pytest.param("predictions/Softmax:7", ("--output-node predictions/Softmax:7 asks for output 7 of "
                                               "predictions/Softmax, which has 1 output.",),
                     id="output-index-out-of-range"),
        pytest.param("predictions/Softmax:-1", ("asks for output -1 of predictions/Softmax, which has 1 output.",),
                     id="negative-output-index"),
        pytest.param("predictions/kernel/Assign", ("of predictions/kernel/Assign, which has no outputs.",),
                     id="op-without-outputs"),
        pytest.param("predictions/kernel", ("gives a resource handle (a variable or a container)",
                                            "name the node that reads it"),
                     id="variable-handle"),
        pytest.param("predictions/Softmax:x", ("--output-node predictions/Softmax:x is not",),
                     id="output-index-not-a-number"),
    ],
)
def test_unknown_output_node(node: str, phrases: tuple[str, ...], dense_h5: Path, tmp_path: Path) -> None:
    digest = sha256(dense_h5)
    before = snapshot(tmp_path)

    result = run_cli("convert", dense_h5, "--output-node", node)

    assert_one_error_line(result, EXIT_USAGE_ERROR, dense_h5, *phrases,
                          f"Run 'freezekeras inspect {dense_h5}'")
    assert_nothing_changed(before, tmp_path)
    assert sha256(dense_h5) == digest


# --------------------------------------------------------------------------- option parsing


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        pytest.param(("convert", "{model}", "--atol", "-1"), "'--atol'", id="negative-atol"),
        pytest.param(("convert", "{model}", "--seed", "abc"), "'--seed'", id="seed-not-int"),
        pytest.param(("convert", "{model}", "--bogus"), "--bogus", id="unknown-option"),
        pytest.param(("inspect", "{model}", "--text"), "--text", id="convert-option-on-inspect"),
        pytest.param(("convert",), "MODEL", id="missing-argument"),
    ],
)
def test_option_errors_are_usage_errors(args: tuple[str, ...], phrase: str, dense_h5: Path,
                                        tmp_path: Path) -> None:
    """Click parses these before freezekeras runs: one line, exit 2, no traceback, nothing written."""
    digest = sha256(dense_h5)
    before = snapshot(tmp_path)

    result = run_cli(*(arg.format(model=dense_h5) for arg in args))

    assert result.exit_code == EXIT_USAGE_ERROR, describe(result)
    assert result.stdout == ""
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("freezekeras: error: "), describe(result)
    assert phrase in lines[0] and f"Run 'freezekeras {args[0]} --help' for usage." in lines[0]
    assert_nothing_changed(before, tmp_path)
    assert sha256(dense_h5) == digest


# --------------------------------------------------------------------------- Lambda layers


@pytest.fixture
def marker_model(tmp_path: Path) -> tuple[Path, Path]:
    """A model whose Lambda layer, when its bytecode runs, creates a marker file.

    Returns ``(model, marker)``; the marker is removed again after saving.
    """
    marker = tmp_path / "lambda_ran.marker"
    MARKER = str(marker)  # noqa: N806  (a closure cell, serialized with the bytecode)
    path = build_lambda(tmp_path / "marker.h5", lambda x: (open(MARKER, "w").close(), x)[1],
                        name="marker_lambda")
    assert marker.exists(), "building the model must have run the lambda once"
    marker.unlink()
    with h5py.File(path, "r") as handle:  # really serialized as marshalled bytecode
        layer = json.loads(handle.attrs["model_config"])["config"]["layers"][-2]
    assert layer["class_name"] == "Lambda"
    assert layer["config"]["function_type"] == "lambda"
    return path, marker


@pytest.mark.parametrize("command", ["convert", "inspect --build"])
def test_lambda_refused_without_allow_lambda(command: str, marker_model, tmp_path: Path) -> None:
    path, marker = marker_model
    digest = sha256(path)
    before = snapshot(tmp_path)

    name, *flags = command.split()
    result = run_cli(name, path, *flags)

    assert_one_error_line(result, EXIT_MODEL_ERROR, path,
                          "Lambda layers (marker_lambda)", "If you trust this file, pass --allow-lambda")
    assert not marker.exists(), "the Lambda's bytecode ran although --allow-lambda was not given"
    assert_nothing_changed(before, tmp_path)
    assert sha256(path) == digest


def test_inspect_lists_a_lambda_model_without_running_it(marker_model) -> None:
    """Without --build, inspect reads the config with h5py: the bytecode is never loaded."""
    path, marker = marker_model

    result = run_cli("inspect", path, "--json")

    assert result.exit_code == EXIT_OK, describe(result)
    assert not marker.exists()
    assert [spec["name"] for spec in json.loads(result.stdout)["outputs"]] == ["out"]


def test_marker_lambda_does_run_with_allow_lambda(marker_model) -> None:
    """The control for the test above: loading with --allow-lambda does run the bytecode."""
    path, marker = marker_model

    result = run_cli("inspect", path, "--allow-lambda")

    assert result.exit_code == EXIT_OK, describe(result)
    assert marker.exists()


def test_lambda_replaced_through_custom_objects_never_runs_its_bytecode(marker_model, tmp_path: Path) -> None:
    """A function keyed by the Lambda layer's name stands in for its bytecode: no --allow-lambda needed."""
    path, marker = marker_model
    objects = tmp_path / "replacements.py"
    objects.write_text("CUSTOM_OBJECTS = {'marker_lambda': lambda x: x * 3.0}\n")

    result = run_cli("convert", path, "--custom-objects", objects, "-o", tmp_path / "m.pb", "--json")

    assert result.exit_code == EXIT_OK, describe(result)
    assert not marker.exists(), "the file's bytecode ran although a replacement was given"
    with h5py.File(path, "r") as handle:
        weights, bias = (handle[f"model_weights/out/out/{name}:0"][()] for name in ("kernel", "bias"))
    x = np.linspace(-1, 1, 6, dtype="float32").reshape(2, 3)
    data = json.loads(result.stdout)
    frozen, = run_frozen(tmp_path / "m.pb", {data["inputs"][0]["name"]: x}, [data["outputs"][0]["name"]])
    np.testing.assert_allclose(frozen, (x * 3.0) @ weights + bias, atol=1e-5)


def test_lambda_layers_left_without_replacement_are_still_refused(tmp_path: Path) -> None:
    import tf_keras

    path = tmp_path / "two.h5"
    tf_keras.Sequential([
        tf_keras.Input((3,)),
        tf_keras.layers.Lambda(lambda x: x * 2.0, name="first"),
        tf_keras.layers.Lambda(lambda x: x + 1.0, name="second"),
    ]).save(path)
    objects = tmp_path / "replacements.py"
    objects.write_text("CUSTOM_OBJECTS = {'first': lambda x: x * 2.0}\n")
    before = snapshot(tmp_path)

    result = run_cli("convert", path, "--custom-objects", objects)

    assert_one_error_line(result, EXIT_MODEL_ERROR, path, "Lambda layers (second)", "--allow-lambda",
                          "a CUSTOM_OBJECTS dict mapping each Lambda layer's name to a function")
    assert_nothing_changed(before, tmp_path)


def model_config(path: Path) -> dict:
    with h5py.File(path, "r") as handle:
        return json.loads(handle.attrs["model_config"])


def test_find_lambda_layers_finds_nested_lambda(tmp_path: Path) -> None:
    path = build_nested_lambda(tmp_path / "nested_lambda.h5")
    assert list(find_lambda_layers(model_config(path))) == ["inner_lambda"]


def test_find_lambda_layers_finds_wrapped_lambda(tmp_path: Path) -> None:
    import tf_keras

    path = tmp_path / "wrapped_lambda.h5"
    tf_keras.Sequential([
        tf_keras.Input((4, 3)),
        tf_keras.layers.TimeDistributed(tf_keras.layers.Lambda(lambda x: x + 1.0, name="step_lambda"),
                                        name="per_step"),
    ]).save(path)
    assert list(find_lambda_layers(model_config(path))) == ["step_lambda"]


def test_find_lambda_layers_without_lambda(model_dir: Path) -> None:
    for name in ("dense.h5", "nested.h5", "stacked_lstm.h5"):
        assert list(find_lambda_layers(model_config(model_dir / name))) == []


@pytest.mark.parametrize("command", ["convert", "inspect --build"])
def test_nested_lambda_refused(command: str, tmp_path: Path) -> None:
    path = build_nested_lambda(tmp_path / "nested_lambda.h5")
    digest = sha256(path)
    before = snapshot(tmp_path)

    name, *flags = command.split()
    result = run_cli(name, path, *flags)

    assert_one_error_line(result, EXIT_MODEL_ERROR, path, "Lambda layers (inner_lambda)", "--allow-lambda")
    assert_nothing_changed(before, tmp_path)
    assert sha256(path) == digest


def test_harmless_lambda_converts_with_allow_lambda(tmp_path: Path) -> None:
    path = build_lambda(tmp_path / "double.h5", lambda x: x * 2.0, name="double")

    result = run_cli("convert", path, "--allow-lambda")

    assert result.exit_code == EXIT_OK, describe(result)
    assert "Traceback" not in result.stderr
    assert not [line for line in result.stderr.splitlines() if line.startswith(PREFIX)]
    assert (tmp_path / "double.pb").is_file()
    assert not list(tmp_path.glob(".*.tmp"))


# --------------------------------------------------------------------------- verification


@pytest.fixture
def random_lambda_h5(tmp_path: Path) -> Path:
    """A model that adds fresh uniform noise: Keras and the frozen graph draw different numbers."""
    return build_lambda(tmp_path / "noisy.h5", noise_function(), name="noise")


def test_verification_failure_writes_nothing(random_lambda_h5: Path, tmp_path: Path) -> None:
    digest = sha256(random_lambda_h5)
    before = snapshot(tmp_path)

    result = run_cli("convert", random_lambda_h5, "--allow-lambda")

    assert_one_error_line(result, EXIT_VERIFICATION_FAILED, random_lambda_h5,
                          "outputs differ from Keras'", "nothing was written",
                          "draws random numbers at inference (random ops (Dropout?): 1 (", "--no-verify")
    assert_nothing_changed(before, tmp_path)
    assert sha256(random_lambda_h5) == digest


def test_a_difference_over_atol_fails(tmp_path: Path) -> None:
    """Keras' session lets Grappler fold the chain ``(x @ W + b) * 0.37 * 1.7`` into one multiplication,
    which rounds differently from the frozen graph's own two: a difference in the last bits,
    that ``--atol 0`` rejects."""
    import tf_keras

    import freezekeras

    tf_keras.utils.set_random_seed(3)
    tf_keras.Sequential([tf_keras.Input((64,)), tf_keras.layers.Dense(32, name="dense"),
                         tf_keras.layers.Rescaling(0.37), tf_keras.layers.Rescaling(1.7, name="scaled")]
                        ).save(tmp_path / "chain.h5")
    measured = freezekeras.convert(tmp_path / "chain.h5", freezekeras.ConvertOptions(
        output=tmp_path / "measured.pb")).verification.max_abs_diff
    if measured == 0:
        pytest.skip("the frozen graph and Keras agree bit for bit on this machine: no difference to exceed")
    before = snapshot(tmp_path)

    result = run_cli("convert", tmp_path / "chain.h5", "-o", tmp_path / "strict.pb", "--atol", "0")

    assert_one_error_line(result, EXIT_VERIFICATION_FAILED, tmp_path / "chain.h5",
                          f"differ from Keras' by up to {measured:.3g} (output scaled/add, tolerance 0)",
                          "nothing was written", "report it", "--atol", "--no-verify")
    assert_nothing_changed(before, tmp_path)


def test_no_verify_keeps_graph_and_warns_of_random_op(random_lambda_h5: Path, tmp_path: Path) -> None:
    result = run_cli("convert", random_lambda_h5, "--allow-lambda", "--no-verify")

    output = tmp_path / "noisy.pb"
    assert result.exit_code == EXIT_OK, describe(result)
    assert output.is_file()
    assert not list(tmp_path.glob(".*.tmp"))
    assert "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith(WARNING)]
    assert warnings, describe(result)
    assert any("random ops (Dropout?): 1 (" in line and "RandomUniform" in line and str(output) in line
               for line in warnings), describe(result)
    assert not [line for line in result.stderr.splitlines() if line.startswith(PREFIX)]


# --------------------------------------------------------------------------- --debug


@pytest.mark.parametrize(
    ("make", "code"),
    [
        pytest.param(_missing, EXIT_USAGE_ERROR, id="missing"),
        pytest.param(_text, EXIT_MODEL_ERROR, id="not-hdf5"),
        pytest.param(_weights_only, EXIT_MODEL_ERROR, id="weights-only"),
    ],
)
@pytest.mark.parametrize("command", ["convert", "inspect"])
def test_debug_shows_traceback_with_same_exit_code(make, code: int, command: str, tmp_path: Path,
                                                   request) -> None:
    path = make(tmp_path, request)
    before = snapshot(tmp_path)

    quiet = run_cli(command, path)
    loud = run_cli(command, path, "--debug")

    assert quiet.exit_code == loud.exit_code == code, describe(loud)
    assert "Traceback" in loud.stderr, describe(loud)
    assert "Traceback" not in quiet.stderr
    assert loud.stdout == ""
    last = loud.stderr.splitlines()[-1]
    assert last == quiet.stderr.strip()
    assert last.startswith(PREFIX) and str(path) in last
    assert_nothing_changed(before, tmp_path)


# --------------------------------------------------------------------------- 2 GiB limit


def test_serialize_refuses_graphs_at_protobuf_limit() -> None:
    import tensorflow as tf

    from freezekeras.tf.freezing import serialize

    graph = tf.Graph()
    with graph.as_default():
        tf.constant([1.0, 2.0, 3.0], name="three")
    graph_def = graph.as_graph_def()
    assert graph_def.ByteSize() > 10

    with pytest.raises(GraphTooLargeError) as caught:
        b"".join(serialize(graph_def, text=False, source=Path("m.h5"), limit=10))

    message = str(caught.value)
    assert message.startswith("m.h5: ")
    assert "2 GiB" in message
    assert "SavedModel" in message
    assert "\n" not in message
    assert caught.value.exit_code == EXIT_MODEL_ERROR
    # Under the limit the same graph serializes.
    written = b"".join(serialize(graph_def, text=False, source=Path("m.h5")))
    assert tf.compat.v1.GraphDef.FromString(written) == graph_def


def test_model_that_cannot_run_on_the_random_inputs(tmp_path: Path) -> None:
    """A 40x40 kernel on unknown image sides: 32x32 verification inputs (--verify-shape) are too small."""
    import tf_keras

    model = tmp_path / "big_kernel.h5"
    tf_keras.Sequential([tf_keras.Input((None, None, 1), name="image"), tf_keras.layers.Conv2D(2, 40),
                         tf_keras.layers.GlobalMaxPooling2D()]).save(model)
    before = snapshot(tmp_path)

    result = run_cli("convert", model, "--verify-shape", "2,32,32,1")

    assert_one_error_line(result, EXIT_MODEL_ERROR, model, "verification failed",
                          "Computed output size would be negative", "image (2, 32, 32, 1)", "--verify-shape",
                          "--no-verify")
    assert_nothing_changed(before, tmp_path)
    kept = run_cli("convert", model, "--no-verify")
    assert kept.exit_code == EXIT_OK and model.with_suffix(".pb").is_file()
    # Without --verify-shape, verification finds the size the kernel needs in the config (docs/verification.md).
    verified = run_cli("convert", model, "--json")
    assert verified.exit_code == EXIT_OK
    assert json.loads(verified.stdout)["verification"]["input_shapes"] == {"image": [2, 64, 64, 1]}


@pytest.mark.parametrize("flags", [(), ("--no-verify",)], ids=["verify", "no-verify"])
def test_lookup_tables_are_refused(tmp_path: Path, flags: tuple[str, ...]) -> None:
    """IntegerLookup's table would be empty in a frozen graph: refused, whatever the verification."""
    import tensorflow as tf
    import tf_keras

    model = tmp_path / "lookup.h5"
    codes = tf_keras.Input((3,), dtype="int64", name="codes")
    looked_up = tf_keras.layers.IntegerLookup(vocabulary=[7, 8, 9])(codes)
    tf_keras.Model(codes, tf_keras.layers.Dense(2)(tf.cast(looked_up, "float32"))).save(model)
    before = snapshot(tmp_path)

    result = run_cli("convert", model, *flags)

    assert_one_error_line(result, EXIT_MODEL_ERROR, model, "lookup tables", "Do the lookup before feeding")
    assert_nothing_changed(before, tmp_path)
