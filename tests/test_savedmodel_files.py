"""SavedModel folders read without TensorFlow: freezekeras.graphdef.savedmodel and inspect.

Two real SavedModels, made in a fresh interpreter: tf-keras' ``model.save(dir,
save_format='tf')`` and Keras 3's ``model.export(dir)``. The expected
signatures come from TensorFlow itself (``tf.saved_model.load`` in that
interpreter); freezekeras reads them with protobuf alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import assert_one_error_line, describe, modules_imported, modules_under, run_cli

import freezekeras
from freezekeras.errors import EXIT_MODEL_ERROR, EXIT_OK, EXIT_USAGE_ERROR, ModelFileError
from freezekeras.graphdef.messages import message_class
from freezekeras.graphdef.savedmodel import is_saved_model, read_signatures, saved_model_facts

_BUILD = textwrap.dedent('''
    import json
    import keras
    import tensorflow as tf
    import tf_keras

    features = tf_keras.Input((6,), name="features")
    tokens = tf_keras.Input((5,), dtype="int32", name="tokens")
    joined = tf_keras.layers.Concatenate()([features, tf_keras.layers.Flatten()(tf_keras.layers.Embedding(7, 2)(tokens))])
    outputs = [tf_keras.layers.Dense(1, activation="sigmoid", name="score")(joined),
               tf_keras.layers.Dense(4, activation="softmax", name="classes")(joined)]
    tf_keras.Model([features, tokens], outputs).save("tfk_sm", save_format="tf")

    x = keras.Input((None, 3), name="seq")
    model = keras.Model(x, keras.layers.Dense(2, name="head")(keras.layers.LSTM(4, name="rnn")(x)))
    model.export("k3_sm", verbose=False)

    def spec(s):
        return [None if s.shape.rank is None else [d for d in s.shape.as_list()], s.dtype.name]

    found = {}
    for folder in ("tfk_sm", "k3_sm"):
        loaded = tf.saved_model.load(folder)
        found[folder] = {}
        for key, function in loaded.signatures.items():
            found[folder][key] = [{k: spec(v) for k, v in function.structured_input_signature[1].items()},
                                  {k: spec(v) for k, v in function.structured_outputs.items()}]
    print(json.dumps(found))
''')


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory) -> tuple[Path, dict]:
    """Two SavedModel folders, and their signatures as TensorFlow loads them."""
    folder = tmp_path_factory.mktemp("saved_models")
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    done = subprocess.run([sys.executable, "-c", _BUILD], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=600)
    if done.returncode != 0:
        pytest.fail(f"building the SavedModels failed: {done.stderr[-3000:]}")
    return folder, json.loads(done.stdout.splitlines()[-1])


def _as_tensorflow(signature) -> list[dict]:
    return [{spec.name: [None if spec.shape is None else list(spec.shape), spec.dtype] for spec in specs}
            for specs in (signature.inputs, signature.outputs)]


pytestmark = [pytest.mark.subprocess, pytest.mark.slow]


@pytest.mark.parametrize("name", ["tfk_sm", "k3_sm"])
def test_signatures_are_what_tensorflow_loads(saved_models, name):
    folder, expected = saved_models
    path = folder / name
    assert is_saved_model(path) and not is_saved_model(folder)
    signatures = read_signatures(path)
    assert sorted(signatures) == sorted(expected[name])
    for key, signature in signatures.items():
        assert _as_tensorflow(signature) == expected[name][key]
        names = [spec.name for spec in signature.inputs]
        assert names == sorted(names) and all(spec.node == spec.name for spec in signature.inputs + signature.outputs)


def test_inspect_lists_the_serving_signature(saved_models):
    folder, expected = saved_models
    for name, keras_metadata in (("tfk_sm", True), ("k3_sm", False)):
        seen = freezekeras.inspect(folder / name)
        assert seen.format == "saved-model"
        assert _as_tensorflow(seen) == expected[name]["serving_default"]
        d = seen.details
        assert d["signature"] == "serving_default" and d["route"] == "function"
        assert d["tags"] == ["serve"] and d["signatures"] == sorted(expected[name])
        assert d["keras_metadata"] is keras_metadata and d["fingerprint"] is True
        assert d["function_count"] > 0 and d["variables_bytes"] > 0
    tfk = freezekeras.inspect(folder / "tfk_sm")
    assert [s.name for s in tfk.inputs] == ["features", "tokens"]
    assert [(s.name, s.dtype) for s in tfk.inputs] == [("features", "float32"), ("tokens", "int32")]
    assert [s.name for s in tfk.outputs] == ["classes", "score"]  # sorted by key
    result = run_cli("inspect", folder / "k3_sm")
    assert result.exit_code == EXIT_OK, describe(result)
    assert result.stdout.startswith(f"{folder / 'k3_sm'}: TensorFlow SavedModel (tags serve), signature serving_default")
    as_json = json.loads(run_cli("inspect", folder / "k3_sm", "--json", "--signature", "serving_default").stdout)
    assert as_json["format"] == "saved-model" and as_json["inputs"][0]["shape"] == [None, None, 3]


def test_a_missing_signature_lists_the_ones_there_are(saved_models):
    folder, expected = saved_models
    path = folder / "tfk_sm"
    line = assert_one_error_line(run_cli("inspect", path, "--signature", "x"), EXIT_USAGE_ERROR, path)
    assert line.endswith(f"{path}: has no signature 'x'; it has: {', '.join(sorted(expected['tfk_sm']))}. "
                         "Pass --signature with one of them.")
    assert_one_error_line(run_cli("inspect", path, "--build"), EXIT_USAGE_ERROR, path, "--build", "Drop it")
    assert_one_error_line(run_cli("inspect", path, "--check"), EXIT_USAGE_ERROR, path, "this is a SavedModel")


def test_damaged_and_text_saved_models(saved_models, tmp_path):
    folder, expected = saved_models
    truncated = shutil.copytree(folder / "k3_sm", tmp_path / "truncated")
    data = (truncated / "saved_model.pb").read_bytes()
    (truncated / "saved_model.pb").write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelFileError):
        read_signatures(truncated)
    assert_one_error_line(run_cli("inspect", truncated), EXIT_MODEL_ERROR, truncated, "saved_model.pb",
                          "damaged or truncated")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "saved_model.pb").write_bytes(b"\x08\x01")  # schema version 1, no MetaGraph
    assert_one_error_line(run_cli("inspect", empty), EXIT_MODEL_ERROR, empty, "holds no MetaGraph")
    from google.protobuf import text_format

    text = tmp_path / "text"
    text.mkdir()
    message = message_class("SavedModel")()
    message.ParseFromString((folder / "tfk_sm" / "saved_model.pb").read_bytes())
    (text / "saved_model.pbtxt").write_text(text_format.MessageToString(message))
    assert {k: _as_tensorflow(v) for k, v in read_signatures(text).items()} == expected["tfk_sm"]
    assert saved_model_facts(text)["variables_bytes"] == 0
    plain = tmp_path / "plain"
    plain.mkdir()
    assert_one_error_line(run_cli("inspect", plain), EXIT_USAGE_ERROR, plain, "is a directory")




def test_inspecting_a_saved_model_imports_no_tensorflow_and_no_h5py(saved_models):
    folder, _ = saved_models
    modules = modules_imported("inspect", str(folder / "tfk_sm"))
    never = ("tensorflow", "tf_keras", "keras", "h5py", "freezekeras.tf", "freezekeras.api", "freezekeras.kerasfile")
    assert modules_under(modules, *never) == []
    assert "freezekeras.graphdef.savedmodel" in modules
