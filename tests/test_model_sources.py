"""Models that need more than the .h5: custom objects from a Python file, a separate architecture."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import CUSTOM_CODE, assert_verified, custom_namespace, own_inputs, run_frozen

import freezekeras
from freezekeras.cli.commands import main
from freezekeras.errors import EXIT_MODEL_ERROR, EXIT_USAGE_ERROR


@pytest.fixture
def custom_module(tmp_path):
    """The custom layer and activation as a user would keep them: a .py file, imported in the test too."""
    path = tmp_path / "my_layers.py"
    path.write_text(CUSTOM_CODE)
    return path, custom_namespace()


def _custom_model(namespace, path):
    import tf_keras

    tf_keras.utils.set_random_seed(11)
    model = tf_keras.Sequential([
        tf_keras.Input((5,), name="values"),
        namespace["Scale"](factor=1.5, name="scale"),
        tf_keras.layers.Dense(4, activation=namespace["soft_clip"], name="clipped"),
    ])
    model.save(path)
    return model


def _check_matches(result, model):
    inputs = own_inputs(result.inputs, seed=5)
    got = run_frozen(result.output, {s.name: v for s, v in zip(result.inputs, inputs)},
                     [s.name for s in result.outputs])
    np.testing.assert_allclose(got[0], model.predict(inputs[0], verbose=0), atol=1e-5, rtol=0)


def test_custom_objects_file_supplies_layers_and_functions(custom_module, tmp_path):
    code, namespace = custom_module
    model = _custom_model(namespace, tmp_path / "custom.h5")
    result = freezekeras.convert(tmp_path / "custom.h5", freezekeras.ConvertOptions(
        output=tmp_path / "custom.pb", custom_objects=code))
    assert_verified(result)
    _check_matches(result, model)


def test_custom_objects_dict_may_use_any_key(tmp_path):
    """Some tf.keras versions saved a lambda activation by the name '<lambda>'; a dict can supply it."""
    import h5py
    import tensorflow as tf
    import tf_keras

    def capped(x):
        return tf.minimum(x, 0.5)

    tf_keras.utils.set_random_seed(13)
    model = tf_keras.Sequential([tf_keras.Input((5,), name="values"),
                                 tf_keras.layers.Dense(3, activation=capped, name="capped")])
    path = tmp_path / "lambda_activation.h5"
    model.save(path)
    with h5py.File(path, "r+") as handle:  # as such a version wrote it
        config = json.loads(handle.attrs["model_config"])
        config["config"]["layers"][-1]["config"]["activation"] = "<lambda>"
        handle.attrs["model_config"] = json.dumps(config)
    mapping = tmp_path / "mapping.py"
    mapping.write_text("import tensorflow as tf\n\nCUSTOM_OBJECTS = {'<lambda>': lambda x: tf.minimum(x, 0.5)}\n")

    refused = CliRunner().invoke(main, ["convert", str(path)])
    assert refused.exit_code == EXIT_MODEL_ERROR and "'<lambda>'" in refused.stderr
    result = freezekeras.convert(path, freezekeras.ConvertOptions(output=tmp_path / "m.pb", custom_objects=mapping))
    _check_matches(result, model)


def test_custom_objects_missing_a_class_names_both(custom_module, tmp_path):
    code, namespace = custom_module
    _custom_model(namespace, tmp_path / "custom.h5")
    partial = tmp_path / "partial.py"
    partial.write_text("def soft_clip(x):\n    return x\n")
    result = CliRunner().invoke(main, ["convert", str(tmp_path / "custom.h5"), "--custom-objects", str(partial)])
    assert result.exit_code == EXIT_MODEL_ERROR
    assert result.stderr.splitlines() == [
        f"freezekeras: error: {tmp_path / 'custom.h5'}: the model uses layer 'Scale', which Keras does "
        f"not know. {partial} does not define them (it gives: soft_clip); add them or a CUSTOM_OBJECTS dict."
    ]
    assert not (tmp_path / "custom.pb").exists()


def _layer_scale_model(path):
    """The blocks of tf-keras' ConvNeXt: LayerScale and StochasticDepth, which Keras does not load by name."""
    import tf_keras
    from tf_keras.src.applications.convnext import LayerScale, StochasticDepth

    tf_keras.utils.set_random_seed(17)
    x = tf_keras.Input((4, 4, 3), name="image")
    y = tf_keras.layers.Conv2D(6, 1, name="conv")(x)
    y = LayerScale(0.3, 6, name="scale")(y)
    y = StochasticDepth(0.25, name="drop_path")(y)
    model = tf_keras.Model(x, tf_keras.layers.GlobalAveragePooling2D(name="pool")(y))
    model.get_layer("scale").set_weights([np.linspace(-1, 2, 6).astype("float32")])
    model.save(path)
    return model


def test_tf_keras_application_layers_are_supplied(tmp_path):
    model = _layer_scale_model(tmp_path / "convnext_block.h5")
    with pytest.raises(ValueError, match="Unknown layer: 'LayerScale'"):  # what Keras itself does with it
        import tf_keras
        tf_keras.models.load_model(tmp_path / "convnext_block.h5")

    result = CliRunner().invoke(main, ["convert", str(tmp_path / "convnext_block.h5"), "--json"])

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["warnings"] == [
        "LayerScale and StochasticDepth: layers of tf-keras' own applications, which Keras does not load by name; "
        "freezekeras took their definitions from tf-keras"]
    assert data["verification"]["passed"]
    x = np.random.default_rng(3).normal(size=(2, 4, 4, 3)).astype("float32")
    got, = run_frozen(tmp_path / "convnext_block.pb", {"image": x}, [data["outputs"][0]["name"]])
    np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=1e-5, rtol=0)


def test_a_users_own_layer_of_the_same_name_is_not_replaced(tmp_path):
    """A LayerScale from another code base (its config has no projection_dim) still needs --custom-objects."""
    import h5py

    _layer_scale_model(tmp_path / "other.h5")
    with h5py.File(tmp_path / "other.h5", "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        scale, = [layer for layer in config["config"]["layers"] if layer["class_name"] == "LayerScale"]
        scale["config"]["init_value"] = scale["config"].pop("init_values")
        del scale["config"]["projection_dim"]
        handle.attrs["model_config"] = json.dumps(config)

    result = CliRunner().invoke(main, ["convert", str(tmp_path / "other.h5")])

    assert result.exit_code == EXIT_MODEL_ERROR
    assert result.stderr.startswith(f"freezekeras: error: {tmp_path / 'other.h5'}: the model uses layer "
                                    "'LayerScale', which Keras does not know. ")
    assert not (tmp_path / "other.pb").exists()


@pytest.mark.parametrize(("content", "code", "phrase"), [
    ("raise RuntimeError('boom')\n", EXIT_MODEL_ERROR, "running the --custom-objects file failed (RuntimeError: boom)"),
    ("CUSTOM_OBJECTS = ['Scale']\n", EXIT_USAGE_ERROR, "CUSTOM_OBJECTS must be a dict"),
    (None, EXIT_USAGE_ERROR, "no such file (given as --custom-objects)"),
    ("<a folder>", EXIT_USAGE_ERROR, "is a directory (given as --custom-objects). Pass a Python file (.py)."),
    ("import sys\nsys.exit(0)\n", EXIT_MODEL_ERROR, "running the --custom-objects file failed (SystemExit: 0)"),
])
def test_bad_custom_objects_file(dense_h5, tmp_path, content, code, phrase):
    objects = tmp_path / "objects.py"
    if content == "<a folder>":
        objects.mkdir()
    elif content is not None:
        objects.write_text(content)
    result = CliRunner().invoke(main, ["convert", str(dense_h5), "--custom-objects", str(objects)])
    assert result.exit_code == code
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"freezekeras: error: {objects}: ") and phrase in lines[0]
    assert not dense_h5.with_suffix(".pb").exists()


@pytest.fixture
def weights_and_architecture(tmp_path):
    import tf_keras

    tf_keras.utils.set_random_seed(12)
    model = tf_keras.Sequential([
        tf_keras.Input((6,), name="x"),
        tf_keras.layers.Dense(5, activation="relu"),
        tf_keras.layers.BatchNormalization(moving_mean_initializer="ones"),
        tf_keras.layers.Dense(2, activation="softmax", name="probs"),
    ])
    model.save_weights(tmp_path / "weights.h5")
    (tmp_path / "model.json").write_text(model.to_json())
    return model, tmp_path / "weights.h5", tmp_path / "model.json"


def test_weights_only_file_with_json_architecture(weights_and_architecture, tmp_path):
    model, weights, architecture = weights_and_architecture
    result = freezekeras.convert(weights, freezekeras.ConvertOptions(
        output=tmp_path / "m.pb", architecture=architecture))
    assert [s.name for s in result.outputs] == ["probs/Softmax"]
    assert_verified(result)
    _check_matches(result, model)


def test_yaml_architecture(weights_and_architecture, tmp_path):
    import yaml

    model, weights, architecture = weights_and_architecture
    as_yaml = tmp_path / "model.yaml"
    as_yaml.write_text(yaml.safe_dump(json.loads(architecture.read_text())))
    result = freezekeras.convert(weights, freezekeras.ConvertOptions(output=tmp_path / "m.pb", architecture=as_yaml))
    _check_matches(result, model)


def test_architecture_with_a_whole_model_file_takes_its_weights(model_dir, tmp_path):
    import tf_keras

    model = tf_keras.models.load_model(model_dir / "dense.h5", compile=False)
    architecture = tmp_path / "dense.json"
    architecture.write_text(model.to_json())
    result = freezekeras.convert(model_dir / "dense.h5", freezekeras.ConvertOptions(
        output=tmp_path / "m.pb", architecture=architecture))
    _check_matches(result, model)


def test_inspect_takes_the_architecture_too(weights_and_architecture):
    model, weights, architecture = weights_and_architecture
    result = freezekeras.inspect(weights, architecture=architecture)
    assert [s.name for s in result.outputs] == ["probs"] and result.details["param_count"] == model.count_params()


@pytest.mark.parametrize(("architecture_text", "phrase"), [
    ("{not json", "the architecture file is not valid JSON"),
    ('{"layers": []}', "the architecture file is not a Keras model config"),
])
def test_bad_architecture_file(weights_and_architecture, tmp_path, architecture_text, phrase):
    _, weights, _ = weights_and_architecture
    bad = tmp_path / "bad.json"
    bad.write_text(architecture_text)
    result = CliRunner().invoke(main, ["convert", str(weights), "--architecture", str(bad)])
    assert result.exit_code == EXIT_MODEL_ERROR
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"freezekeras: error: {bad}: ") and phrase in lines[0]
    assert not weights.with_suffix(".pb").exists()


def test_weights_that_do_not_fit_the_architecture(weights_and_architecture, model_dir, tmp_path):
    _, _, architecture = weights_and_architecture
    result = CliRunner().invoke(main, ["convert", str(model_dir / "conv_bn.h5"), "--architecture",
                                       str(architecture), "-o", str(tmp_path / "m.pb")])
    assert result.exit_code == EXIT_MODEL_ERROR
    line, = result.stderr.splitlines()
    assert f"Keras could not build the architecture in {architecture} with these weights" in line
    assert not (tmp_path / "m.pb").exists()


def test_lambda_in_the_architecture_is_refused(weights_and_architecture, tmp_path):
    import tf_keras

    model = tf_keras.Sequential([tf_keras.Input((3,)), tf_keras.layers.Lambda(lambda x: x + 1.0, name="plus_one")])
    model.save_weights(tmp_path / "lw.h5")
    (tmp_path / "lambda.json").write_text(model.to_json())
    result = CliRunner().invoke(main, ["convert", str(tmp_path / "lw.h5"), "--architecture", str(tmp_path / "lambda.json")])
    assert result.exit_code == EXIT_MODEL_ERROR
    assert "plus_one" in result.stderr and "--allow-lambda" in result.stderr


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_architecture_path_problems_name_the_option(weights_and_architecture, tmp_path, kind):
    _, weights, _ = weights_and_architecture
    architecture = tmp_path / "arch.json"
    if kind == "folder":
        architecture.mkdir()
    result = CliRunner().invoke(main, ["convert", str(weights), "--architecture", str(architecture)])
    assert result.exit_code == EXIT_USAGE_ERROR
    expected = {"missing": "no such file (given as --architecture). Check the path and try again.",
                "folder": "is a directory (given as --architecture). Pass a JSON or YAML architecture file."}
    assert result.stderr.splitlines() == [f"freezekeras: error: {architecture}: {expected[kind]}"]


def test_invalid_yaml_architecture(weights_and_architecture, tmp_path):
    _, weights, _ = weights_and_architecture
    bad = tmp_path / "bad.yaml"
    bad.write_text("config: [unclosed\n")
    result = CliRunner().invoke(main, ["convert", str(weights), "--architecture", str(bad)])
    assert result.exit_code == EXIT_MODEL_ERROR
    line, = result.stderr.splitlines()
    assert line.startswith(f"freezekeras: error: {bad}: is not valid YAML (") and "model.to_yaml()" in line
