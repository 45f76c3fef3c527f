"""A serving contract: --input-shape, --verify-shape, --input-name, --output-name; unbuilt Sequentials;
verification's automatic length for models whose cropping or pooling needs long inputs (issue 10, 3 and 4)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import PREFIX, describe, run_cli, run_frozen, snapshot

from freezekeras.contract import parse_dims, parse_rename, parse_shape_spec
from freezekeras.errors import UsageError
from freezekeras.results import ConvertOptions

# --------------------------------------------------------------------------- models


def _tf_keras():
    import tf_keras

    return tf_keras


def _strip_input_shape(path: Path) -> Path:
    """Rewrite a Sequential's config as a Keras that never recorded its input shape saved it: no InputLayer."""
    import h5py

    with h5py.File(path, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        layers = [layer for layer in config["config"]["layers"] if layer["class_name"] != "InputLayer"]
        for layer in layers:
            layer["config"].pop("batch_input_shape", None)
        config["config"]["layers"] = layers
        handle.attrs["model_config"] = json.dumps(config)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    keras = _tf_keras()
    folder = tmp_path_factory.mktemp("contract")
    keras.utils.set_random_seed(3)
    point = keras.Input((2,), name="point")
    hidden = keras.layers.Dense(4, activation="relu", name="hidden")(point)
    keras.Model(point, keras.layers.Dense(3, activation="softmax", name="class_probs")(hidden)).save(folder / "mlp.h5")

    image = keras.Input((None, None, 3), name="img")
    features = keras.layers.Conv2D(4, 3, name="conv")(image)
    keras.Model(image, keras.layers.GlobalAveragePooling2D(name="pool")(features)).save(folder / "conv.h5")

    # The genomics shape: an unknown time axis, 200 steps cropped away (length 32 leaves nothing).
    seq = keras.Input((None, 4), name="seq")
    x = keras.layers.Conv1D(3, 5, padding="same", name="conv")(seq)
    x = keras.layers.Cropping1D((100, 100), name="crop")(x)
    x = keras.layers.Conv1D(2, 3, name="conv_valid")(x)
    x = keras.layers.GlobalMaxPooling1D(name="gmp")(x)
    keras.Model(seq, keras.layers.Dense(2, name="probs")(x)).save(folder / "genomics.h5")

    x5 = np.random.default_rng(0).normal(size=(4, 5, 3)).astype("float32")
    lstm = keras.Sequential([keras.layers.LSTM(8, name="lstm"), keras.layers.Dense(2, name="dense")])
    lstm.compile("adam", "mse")
    lstm.fit(x5, np.zeros((4, 2)), verbose=0)
    lstm.save(folder / "unbuilt_lstm.h5")
    dense = keras.Sequential([keras.layers.Dropout(0.1, name="dropout"), keras.layers.Dense(4, name="dense_1"),
                                 keras.layers.Dense(2, name="dense_2")])
    dense.compile("adam", "mse")
    dense.fit(x5[:, 0], np.zeros((4, 2)), verbose=0)
    dense.save(folder / "unbuilt_dense.h5")
    flat = keras.Sequential([keras.layers.Flatten(name="flatten"), keras.layers.Dense(2, name="dense")])
    flat.compile("adam", "mse")
    flat.fit(x5, np.zeros((4, 2)), verbose=0)
    flat.save(folder / "unbuilt_flatten.h5")
    for name in ("unbuilt_lstm", "unbuilt_dense", "unbuilt_flatten"):
        _strip_input_shape(folder / f"{name}.h5")
    return folder


@pytest.fixture(scope="module")
def keras3_models(tmp_path_factory) -> Path:
    """Keras 3 models, built in a subprocess: the genomics shape, one no length fits, two inputs."""
    folder = tmp_path_factory.mktemp("contract3")
    code = textwrap.dedent("""
        import keras
        seq = keras.Input((None, 4), name="seq")
        x = keras.layers.Conv1D(3, 5, padding="same")(seq)
        x = keras.layers.Cropping1D((100, 100))(x)
        x = keras.layers.GlobalMaxPooling1D()(x)
        keras.Model(seq, keras.layers.Dense(2, name="probs")(x)).save("genomics.keras")
        seq = keras.Input((None, 4), name="seq")
        x = keras.layers.GlobalMaxPooling1D()(keras.layers.Cropping1D((9000, 9000))(seq))
        keras.Model(seq, x).save("too_short.keras")
        a, b = keras.Input((2,), name="a"), keras.Input((3,), name="b")
        out = keras.layers.Dense(2, name="out")(keras.layers.Concatenate()([a, b]))
        keras.Model([a, b], out).save("two.keras")
    """)
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "0", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", code], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=300)
    if done.returncode != 0:
        pytest.skip(f"cannot build Keras 3 models here: {(done.stderr.strip().splitlines() or [''])[-1]}")
    return folder


def _convert(model: Path, out: Path, **options):
    from freezekeras import convert

    return convert(model, ConvertOptions(output=out, **options))


def _placeholder_shape(pb: Path, name: str):
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef.FromString(pb.read_bytes())
    node = next(node for node in graph_def.node if node.name == name)
    assert node.op == "Placeholder"
    return tf.TensorShape(node.attr["shape"].shape).as_list()


def _keras(model: Path, x):
    return _tf_keras().models.load_model(model, compile=False).predict(x, verbose=0)


# --------------------------------------------------------------------------- parsing (no TensorFlow)


@pytest.mark.parametrize(("text", "expected"), [
    ("1,224,224,3", (None, (1, 224, 224, 3))),
    ("1x224x224x3", (None, (1, 224, 224, 3))),
    ("(1, 224, 224, 3)", (None, (1, 224, 224, 3))),
    ("img:?,-1,3", ("img", (None, None, 3))),
    ("input:0:1,2", ("input:0", (1, 2))),
    ("(3,)", (None, (3,))),
])
def test_shape_specs_parse(text, expected):
    assert parse_shape_spec(text) == expected


def test_options_take_strings_pairs_and_mappings():
    options = ConvertOptions(input_shapes=["point:1,2"], verify_shapes={"seq": (2, -1, 4)},
                             input_names=["point=x"], output_names={"probs": "scores"})
    assert options.input_shapes == (("point", (1, 2)),)
    assert options.verify_shapes == (("seq", (2, None, 4)),)
    assert options.input_names == (("point", "x"),)
    assert options.output_names == (("probs", "scores"),)
    assert parse_dims("-1") == (None,)
    assert parse_rename(" a = b ") == ("a", "b")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("input_shapes", ["point:1,a"], "--input-shape point:1,a: 'a' is not a dimension. Write DIMS as whole numbers "
     "of 1 or more separated by commas (or x), -1 or ? for an unknown one: --input-shape image:1,224,224,3."),
    ("input_shapes", ["point:0,2"], "--input-shape point:0,2: '0' is not a dimension. Write DIMS as whole numbers "
     "of 1 or more separated by commas (or x), -1 or ? for an unknown one: --input-shape image:1,224,224,3."),
    ("input_shapes", ["point:"], "--input-shape point:: gives no dimensions. Write DIMS as whole numbers of 1 or "
     "more separated by commas (or x), -1 or ? for an unknown one: --input-shape image:1,224,224,3."),
    ("input_shapes", [":1,2"], "--input-shape :1,2: the input's name is empty. Write NAME:DIMS, or DIMS alone for "
     "a model with one input: --input-shape image:1,224,224,3."),
    ("verify_shapes", ["seq:2,-5,4"], "--verify-shape seq:2,-5,4: '-5' is not a dimension. Write DIMS as whole "
     "numbers of 1 or more separated by commas (or x), -1 or ? for an unknown one: --verify-shape seq:2,5000,4."),
    ("input_names", ["point"], "--input-name point: write OLD=NEW, the name convert prints (or the Keras layer's) "
     "and the one to serve it under: --input-name image=input."),
    ("output_names", ["probs="], "--output-name probs=: write OLD=NEW, the name convert prints (or the Keras "
     "layer's) and the one to serve it under: --output-name probs=scores."),
    ("output_names", ["probs=my probs"], "--output-name probs=my probs: 'my probs' cannot name a TensorFlow node; "
     "use letters, digits and . (then also _ - / >), no spaces or colons."),
])
def test_malformed_options_are_refused(field, value, message):
    with pytest.raises(UsageError) as caught:
        ConvertOptions(**{field: value})
    assert str(caught.value) == message


# --------------------------------------------------------------------------- --input-shape


@pytest.mark.slow
@pytest.mark.parametrize("route", ["session", "function"])
def test_input_shape_is_fixed_and_propagates(models, tmp_path, route):
    from freezekeras import inspect

    pb = tmp_path / "conv.pb"
    result = _convert(models / "conv.h5", pb, route=route, input_shapes=["img:1,64,48,3"])
    assert result.inputs[0].shape == (1, 64, 48, 3)
    assert result.outputs[0].shape == (1, 4)
    assert _placeholder_shape(pb, "img") == [1, 64, 48, 3]
    seen = inspect(pb)
    assert [spec.shape for spec in seen.inputs] == [(1, 64, 48, 3)]
    assert [spec.shape for spec in seen.outputs] == [(1, 4)]
    assert result.verification.input_shapes == {"img": (1, 64, 48, 3)}
    x = np.random.default_rng(1).normal(size=(1, 64, 48, 3)).astype("float32")
    got = run_frozen(pb, {"img": x}, [result.outputs[0].name])[0]
    np.testing.assert_allclose(got, _keras(models / "conv.h5", x), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize(("spec", "shape"), [("?,64,-1,3", (None, 64, None, 3)), ("1x32x32x3", (1, 32, 32, 3)),
                                             ("conv_input:2,?,?,3", None)])
def test_unknown_dimensions_and_bare_dims(models, tmp_path, spec, shape):
    pb = tmp_path / "conv.pb"
    if shape is None:  # the Keras layer name works as well as the node: here the layer is "img" too
        spec, shape = "img:2,?,?,3", (2, None, None, 3)
    result = _convert(models / "conv.h5", pb, input_shapes=[spec])
    assert result.inputs[0].shape == shape
    assert _placeholder_shape(pb, "img") == list(shape)


# --------------------------------------------------------------------------- verification's length


@pytest.mark.slow
@pytest.mark.parametrize("route", ["session", "function"])
def test_genomics_like_model_verifies_at_a_length_it_takes(models, tmp_path, route):
    pb = tmp_path / "g.pb"
    result = _convert(models / "genomics.h5", pb, route=route)
    assert result.verification.input_shapes == {"seq": (2, 256, 4)}  # 32 leaves nothing after the cropping
    assert np.isfinite(result.verification.max_abs_diff)
    assert _placeholder_shape(pb, "seq") == [None, None, 4]  # the graph stays dynamic
    result = _convert(models / "genomics.h5", pb, route=route, verify_shapes=["seq:1,300,-1"])
    assert result.verification.input_shapes == {"seq": (1, 300, 4)}
    assert result.inputs[0].shape == (None, None, 4)
    assert _placeholder_shape(pb, "seq") == [None, None, 4]


@pytest.mark.slow
def test_keras3_length_is_found_by_doubling(keras3_models, tmp_path):
    result = _convert(keras3_models / "genomics.keras", tmp_path / "g.pb")
    assert result.verification.input_shapes == {"seq": (2, 256, 4)}


@pytest.mark.slow
def test_no_length_fits_names_the_input_and_verify_shape(keras3_models, tmp_path):
    model = keras3_models / "too_short.keras"
    result = run_cli("convert", model, "-o", tmp_path / "t.pb")
    assert result.exit_code == 1, describe(result)
    line = result.stderr.strip()
    assert line.startswith(f"{PREFIX}{model}: running the model on random inputs for verification failed (")
    assert line.endswith("; the unknown dimensions of seq (None, None, 4) were given every size from 32 to 8192, "
                         "the batch 2); nothing was written. Pass --verify-shape seq:2,N,4 with sizes the model "
                         "takes, or --no-verify to convert without checking.")
    assert not (tmp_path / "t.pb").exists()


# --------------------------------------------------------------------------- unbuilt Sequential


@pytest.mark.slow
@pytest.mark.parametrize("route", ["session", "function"])
@pytest.mark.parametrize(("name", "shape", "note"), [
    ("unbuilt_lstm", (None, None, 3), "layer lstm's kernel (3, 32) (the time axis stays unknown)"),
    ("unbuilt_dense", (None, 3), "layer dense_1's kernel (3, 4)"),
])
def test_unbuilt_sequential_gets_its_input_from_its_weights(models, tmp_path, route, name, shape, note):
    result = _convert(models / f"{name}.h5", tmp_path / "u.pb", route=route)
    assert result.inputs[0].shape == shape
    assert result.warnings[0] == (
        "the Sequential model was saved before it was built (its config gives no input shape); freezekeras gave "
        f"it the input shape {str(shape).replace(',)', ')')} from {note}. Pass --input-shape to choose another")
    assert result.verification.passed


def test_inspect_lists_an_unbuilt_sequentials_input_as_convert_will_take_it(models):
    from freezekeras import inspect

    result = inspect(models / "unbuilt_lstm.h5")
    assert [(spec.name, spec.shape) for spec in result.inputs] == [("lstm_input", (None, None, 3))]
    assert result.details["notes"][0].startswith("the Sequential model was saved before it was built")
    clueless = inspect(models / "unbuilt_flatten.h5")  # nothing tells its shape: listed without inputs
    assert clueless.inputs == () and "notes" not in clueless.details


@pytest.mark.slow
def test_unbuilt_sequential_takes_input_shape(models, tmp_path):
    result = _convert(models / "unbuilt_lstm.h5", tmp_path / "u.pb", input_shapes=["1,5,3"])
    assert result.inputs[0].shape == (1, 5, 3)
    assert result.outputs[0].shape == (1, 2)
    assert not result.warnings
    result = _convert(models / "unbuilt_flatten.h5", tmp_path / "f.pb", input_shapes=["-1,5,3"])
    assert result.inputs[0].shape == (None, 5, 3)


@pytest.mark.slow
def test_unbuilt_sequential_without_a_clue_asks_for_input_shape(models, tmp_path):
    model = models / "unbuilt_flatten.h5"
    result = run_cli("convert", model, "-o", tmp_path / "f.pb")
    assert result.exit_code == 2, describe(result)
    assert result.stderr == (
        f"{PREFIX}{model}: is a Sequential model saved before it was built: its config gives no input shape, and "
        "its first layer flatten (Flatten) holds no weights in the file to tell it from. Pass the input's shape "
        "with --input-shape DIMS, the batch first (e.g. --input-shape -1,28,28; -1 for an unknown dimension).\n")
    assert not (tmp_path / "f.pb").exists()


# --------------------------------------------------------------------------- renames


@pytest.mark.slow
@pytest.mark.parametrize("route", ["session", "function"])
def test_renamed_inputs_and_outputs(models, tmp_path, route):
    from freezekeras import inspect

    model, pb = models / "mlp.h5", tmp_path / "mlp.pb"
    result = run_cli("convert", model, "-o", pb, "--route", route, "--input-name", "point=features",
                     "--output-name", "class_probs=scores", "--json")
    assert result.exit_code == 0, describe(result)
    data = json.loads(result.stdout)
    assert [spec["name"] for spec in data["inputs"]] == ["features"]
    assert [spec["name"] for spec in data["outputs"]] == ["scores"]
    assert list(data["verification"]["input_shapes"]) == ["features"]
    assert list(data["verification"]["per_output"]) == ["scores"]
    seen = inspect(pb)
    assert [spec.name for spec in seen.inputs] == ["features"]
    assert [(spec.name, spec.shape) for spec in seen.outputs] == [("scores", (None, 3))]
    x = np.random.default_rng(2).normal(size=(3, 2)).astype("float32")
    got = run_frozen(pb, {"features": x}, ["scores"])[0]
    np.testing.assert_allclose(got, _keras(model, x), atol=1e-6)

    text = run_cli("convert", model, "-o", pb, "--route", route, "--input-name", "point=features",
                   "--output-name", f"{data['outputs'][0]['name']}=probs", "--input-shape", "features:4,2")
    assert text.exit_code == 2, describe(text)  # --input-shape names the model's input, before renames
    text = run_cli("convert", model, "-o", pb, "--route", route, "--input-name", "point=features",
                   "--output-name", "class_probs=probs", "--input-shape", "point:4,2")
    assert text.exit_code == 0, describe(text)
    assert "  features  float32  (4, 2)" in text.stdout
    assert "  probs  float32  (4, 3)" in text.stdout
    assert "random inputs features (4, 2))" in text.stdout


@pytest.mark.slow
def test_renamed_keras3_inputs_of_a_two_input_model(keras3_models, tmp_path):
    pb = tmp_path / "two.pb"
    result = _convert(keras3_models / "two.keras", pb, input_names=["a=x"], output_names=["out=y"],
                      verify_shapes=["x:3,2"])
    assert [spec.name for spec in result.inputs] == ["x", "b"]
    assert [spec.name for spec in result.outputs] == ["y"]
    assert result.verification.input_shapes == {"x": (3, 2), "b": (3, 3)}  # one batch for all inputs


# --------------------------------------------------------------------------- every bad spec, one line each


@pytest.mark.slow
@pytest.mark.parametrize(("args", "message"), [
    (["--input-shape", "img:1,2"], "--input-shape names no input 'img'; the inputs are point (None, 2). Use one of "
                                   "them."),
    (["--input-shape", "1,2,3"], "--input-shape 1,2,3 has 3 dimensions, but input point has 2: (None, 2), the batch "
                                 "first; the inputs are point (None, 2)."),
    (["--input-shape", "point:1,5"], "--input-shape point:1,5 sets dimension 1 of input point to 5, but the model "
                                     "fixes it at 2: (None, 2). Use 2 or -1 there."),
    (["--input-shape", "point:1,2", "--input-shape", "1,2"], "--input-shape gives input point twice. Give each "
                                                             "input once."),
    (["--verify-shape", "seq:1,2"], "--verify-shape names no input 'seq'; the inputs are point (None, 2). Use one "
                                    "of them."),
    (["--input-name", "img=x"], "--input-name names no input 'img'; the inputs are point. Use one of them."),
    (["--output-name", "probs=x"], "--output-name names no output 'probs'; the outputs are class_probs/Softmax. "
                                   "Use one of them."),
    (["--input-name", "point=hidden/MatMul"], "--input-name point=hidden/MatMul clashes with the node hidden/MatMul "
                                              "already in the graph. Pick another name."),
    (["--output-name", "class_probs=point"], "--output-name class_probs/Softmax=point clashes with the node point "
                                             "already in the graph. Pick another name."),
    (["--input-name", "point=x", "--output-name", "class_probs=x"], "--input-name point=x and --output-name "
                                                                    "class_probs/Softmax=x give two nodes the name x. "
                                                                    "Pick different names."),
    (["--input-name", "point=a", "--input-name", "point=b"], "--input-name renames input point twice. Rename each "
                                                             "input once."),
])
def test_bad_specs_are_usage_errors(models, tmp_path, args, message):
    model = models / "mlp.h5"
    before = snapshot(tmp_path)
    result = run_cli("convert", model, "-o", tmp_path / "out.pb", *args)
    assert result.exit_code == 2, describe(result)
    assert result.stdout == ""
    assert result.stderr == f"{PREFIX}{model}: {message}\n"
    assert snapshot(tmp_path) == before
