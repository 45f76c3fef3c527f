"""The function route (issue 9): Keras 3 files, Keras 3 weights, SavedModels, and Keras 2 with ``--route function``.

Every model is built here, in this process with Keras 3 (``import keras`` on the
TensorFlow backend; ``tf.keras`` is tf-keras) or, for the JAX-saved file, in a
fresh interpreter with ``KERAS_BACKEND=jax``. Expected values are always the
model's own ``predict`` on inputs this file chooses (not freezekeras' seed-0
random inputs), compared with the written ``.pb`` run by plain TensorFlow,
OpenCV's dnn module or onnxruntime (through tf2onnx). Expected names are the
Keras input and output layer names (or SavedModel signature keys), written
down here, and ``inspect`` must predict them without importing TensorFlow.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    assert_nothing_changed,
    assert_one_error_line,
    describe,
    files_under,
    run_cli,
    run_frozen,
    snapshot,
)

import freezekeras
from freezekeras.errors import (
    EXIT_MODEL_ERROR,
    EXIT_OK,
    EXIT_USAGE_ERROR,
    EXIT_VERIFICATION_FAILED,
    LambdaLayerError,
    UnknownObjectError,
)
from freezekeras.graphdef.lint import ERROR, lint

#: Largest difference accepted between the frozen graph and the model's own predictions.
ATOL = 1e-5

#: A Keras 3 custom layer as a user keeps it in a .py file, registered with Keras' own decorator.
CUSTOM_LAYER = textwrap.dedent('''
    import keras


    @keras.saving.register_keras_serializable(package="FreezekerasTests")
    class GatedScale(keras.layers.Layer):
        """``x * sigmoid(gate) * factor``: one learned gate per feature."""

        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def build(self, input_shape):
            self.gate = self.add_weight(name="gate", shape=(input_shape[-1],), initializer="random_normal")

        def call(self, x):
            return x * keras.ops.sigmoid(self.gate) * self.factor

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}
''')
CUSTOM_KEY = "FreezekerasTests>GatedScale"


def keras3():
    """Keras 3 on its TensorFlow backend (KERAS_BACKEND must be set before the first ``import keras``)."""
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import keras

    assert keras.backend.backend() == "tensorflow", "Keras 3 was imported with another backend before this test"
    return keras


@dataclass
class Case:
    """A saved model, the names convert must give it, inputs of our own and the model's predictions for them."""

    path: Path
    inputs: list[str]
    outputs: list[str]
    feeds: list[np.ndarray]
    expected: list[np.ndarray]
    options: dict = field(default_factory=dict)


def _predict(model, feeds: list[np.ndarray]) -> list[np.ndarray]:
    outputs = model.predict(feeds if len(feeds) > 1 else feeds[0], verbose=0)
    return [np.asarray(y) for y in (outputs if isinstance(outputs, list | tuple) else [outputs])]


def _shift_batchnorm(keras, model, seed: int) -> None:
    """Moving statistics far from 0 and 1, so that a graph left in training mode would show."""
    rng = np.random.default_rng(seed)
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.3, beta.shape),
                               rng.normal(1.0, 0.5, mean.shape), rng.uniform(2.0, 4.0, variance.shape)])


def _all_layers(model) -> list:
    found = []
    for layer in getattr(model, "layers", []):
        found += [layer, *_all_layers(layer)]
    return found


def _tokens(rng, rows: int, steps: int, vocab: int) -> np.ndarray:
    """Token ids 1..vocab-1, the last few of each row 0 (padding a mask_zero Embedding masks out)."""
    values = rng.integers(1, vocab, size=(rows, steps))
    for row in range(rows):
        values[row, steps - row - 1:] = 0
    return values.astype("int32")


# --------------------------------------------------------------------------- the Keras 3 models

def build_cnn(keras):
    keras.utils.set_random_seed(10)
    image = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv_a")(image)
    x = keras.layers.BatchNormalization(name="bn_a")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv_b")(x)
    x = keras.layers.BatchNormalization(name="bn_b")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.5)(x)
    model = keras.Model(image, keras.layers.Dense(4, activation="softmax", name="probs")(x), name="cnn")
    _shift_batchnorm(keras, model, 10)
    rng = np.random.default_rng(110)
    return model, ["image"], ["probs"], [rng.uniform(0, 1, (3, 16, 16, 3)).astype("float32")]


def build_multi_io(keras):
    keras.utils.set_random_seed(11)
    features = keras.Input((6,), name="features")
    tokens = keras.Input((5,), dtype="int32", name="tokens")
    embedded = keras.layers.Flatten()(keras.layers.Embedding(7, 4, name="embed")(tokens))
    joined = keras.layers.Concatenate()([keras.layers.Dense(8, activation="tanh")(features), embedded])
    score = keras.layers.Dense(1, activation="sigmoid", name="score")(joined)
    classes = keras.layers.Dense(3, activation="softmax", name="classes")(joined)
    model = keras.Model([features, tokens], [score, classes], name="multi_io")
    rng = np.random.default_rng(111)
    feeds = [rng.normal(size=(4, 6)).astype("float32"), rng.integers(0, 7, size=(4, 5)).astype("int32")]
    return model, ["features", "tokens"], ["score", "classes"], feeds


def build_stacked_lstm(keras):
    keras.utils.set_random_seed(12)
    model = keras.Sequential([
        keras.Input((None, 4), name="seq"),
        keras.layers.LSTM(8, return_sequences=True, name="lstm_a"),
        keras.layers.LSTM(5, name="lstm_b"),
        keras.layers.Dense(3, activation="softmax", name="probs"),
    ], name="stacked_lstm")
    return model, ["seq"], ["probs"], [np.random.default_rng(112).normal(size=(3, 9, 4)).astype("float32")]


def build_text(keras):
    """Embedding (mask_zero) + LSTM with dropout and recurrent_dropout: both must vanish at inference."""
    keras.utils.set_random_seed(13)
    tokens = keras.Input((12,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(40, 8, mask_zero=True, name="embed")(tokens)
    x = keras.layers.LSTM(6, dropout=0.3, recurrent_dropout=0.3, name="lstm")(x)
    model = keras.Model(tokens, keras.layers.Dense(2, activation="softmax", name="sentiment")(x), name="text")
    return model, ["tokens"], ["sentiment"], [_tokens(np.random.default_rng(113), 4, 12, 40)]


def build_gru(keras):
    keras.utils.set_random_seed(14)
    model = keras.Sequential([
        keras.Input((7, 3), name="series"),
        keras.layers.GRU(6, name="gru"),
        keras.layers.Dense(1, name="value"),
    ], name="gru_model")
    return model, ["series"], ["value"], [np.random.default_rng(114).normal(size=(3, 7, 3)).astype("float32")]


def build_nested(keras):
    """A Functional encoder inside a Functional model, whose output is also a model output (named after it)."""
    keras.utils.set_random_seed(15)
    inner_input = keras.Input((4,), name="inner_input")
    hidden = keras.layers.BatchNormalization(name="inner_bn")(
        keras.layers.Dense(6, activation="relu", name="inner_dense")(inner_input))
    encoder = keras.Model(inner_input, hidden, name="encoder")
    point = keras.Input((4,), name="point")
    encoded = encoder(point)
    probs = keras.layers.Dense(3, activation="softmax", name="probs")(encoded)
    model = keras.Model(point, [probs, encoded], name="outer")
    _shift_batchnorm(keras, model, 15)
    return model, ["point"], ["probs", "encoder"], [np.random.default_rng(115).normal(size=(3, 4)).astype("float32")]


def build_seq_base(keras):
    """A Sequential around a Functional base: the transfer-learning shape of keras-team/keras#20084."""
    keras.utils.set_random_seed(16)
    base_input = keras.Input((8, 8, 3))
    base_output = keras.layers.BatchNormalization(name="base_bn")(
        keras.layers.Conv2D(4, 3, activation="relu", name="base_conv")(base_input))
    base = keras.Model(base_input, base_output, name="base")
    model = keras.Sequential([
        keras.Input((8, 8, 3), name="pixels"),
        base,
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(3, activation="softmax", name="probs"),
    ], name="classifier")
    _shift_batchnorm(keras, model, 16)
    return model, ["pixels"], ["probs"], [np.random.default_rng(116).uniform(size=(3, 8, 8, 3)).astype("float32")]


def build_custom(keras):
    keras.utils.set_random_seed(17)
    namespace: dict = {}
    exec(compile(CUSTOM_LAYER, "gated_scale.py", "exec"), namespace)
    x = keras.Input((5,), name="x")
    gated = namespace["GatedScale"](factor=3.0, name="gated")(keras.layers.Dense(4, name="hidden")(x))
    model = keras.Model(x, keras.layers.Dense(2, name="out")(gated), name="custom")
    return model, ["x"], ["out"], [np.random.default_rng(117).normal(size=(3, 5)).astype("float32")]


def build_lambda(keras):
    keras.utils.set_random_seed(18)
    model = keras.Sequential([
        keras.Input((3,), name="x"),
        keras.layers.Lambda(lambda v: v * 2.0 + 1.0, name="affine"),
        keras.layers.Dense(2, name="out"),
    ], name="with_lambda")
    return model, ["x"], ["out"], [np.random.default_rng(118).normal(size=(3, 3)).astype("float32")]


BUILDERS = {
    "cnn": build_cnn,
    "multi_io": build_multi_io,
    "stacked_lstm": build_stacked_lstm,
    "text": build_text,
    "gru": build_gru,
    "nested": build_nested,
    "seq_base": build_seq_base,
    "custom": build_custom,
}


def as_keras38(config: dict) -> dict:
    """``config`` as Keras 3.4-3.8 wrote it: a nested Functional's single input and output as ``[[name, 0, 0]]``."""
    config = json.loads(json.dumps(config))
    changed = 0
    for layer in config["config"]["layers"]:
        if layer["class_name"] in ("Functional", "Model"):
            for key in ("input_layers", "output_layers"):
                value = layer["config"][key]
                if isinstance(value[0], str):  # a bare [name, 0, 0] leaf, as Keras 3.15 writes it
                    layer["config"][key] = [value]
                    changed += 1
    assert changed == 2, "the Sequential holds no Functional with a single input and output"
    return config


def rewrite_archive(source: Path, target: Path, *, config: dict | None = None, drop: str | None = None,
                    replace: dict[str, bytes] | None = None) -> Path:
    """Copy a .keras archive, with its config.json replaced, a member dropped or members' bytes replaced."""
    replace = dict(replace or {})
    if config is not None:
        replace["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            if item.filename != drop:
                new.writestr(item, replace.get(item.filename, old.read(item.filename)))
    return target


@pytest.fixture(scope="session")
def k3(tmp_path_factory) -> dict[str, Case]:
    """Every Keras 3 case: saved as ``.keras`` and ``.h5``, weights with two architectures, the 3.8-era config."""
    keras = keras3()
    folder = tmp_path_factory.mktemp("keras3_models")
    custom_file = folder / "gated_scale.py"
    custom_file.write_text(CUSTOM_LAYER)
    cases: dict[str, Case] = {}
    for name, build in BUILDERS.items():
        model, inputs, outputs, feeds = build(keras)
        expected = _predict(model, feeds)
        options = {"custom_objects": custom_file} if name == "custom" else {}
        for suffix in ("keras", "h5"):
            path = folder / f"{name}.{suffix}"
            model.save(path)
            cases[f"{name}.{suffix}"] = Case(path, inputs, outputs, feeds, expected, options)
        if name == "nested":  # weights only, with the architecture as model.to_json() and as the archive's config.json
            weights = folder / "nested.weights.h5"
            model.save_weights(weights)
            (folder / "nested.json").write_text(model.to_json())
            with zipfile.ZipFile(folder / "nested.keras") as archive:
                (folder / "config.json").write_bytes(archive.read("config.json"))
            for arch in ("nested.json", "config.json"):
                cases[f"nested.weights.h5+{arch}"] = Case(weights, inputs, outputs, feeds, expected,
                                                          {"architecture": folder / arch})
        if name == "seq_base":
            with zipfile.ZipFile(folder / "seq_base.keras") as archive:
                config = json.loads(archive.read("config.json"))
            path = rewrite_archive(folder / "seq_base.keras", folder / "seq_base_k38.keras", config=as_keras38(config))
            cases["seq_base_k38.keras"] = Case(path, inputs, outputs, feeds, expected)
    # The file must bring its own definition: forget the registration building the model made.
    keras.saving.get_custom_objects().pop(CUSTOM_KEY, None)
    return cases


@pytest.fixture(scope="session")
def lambda_case(tmp_path_factory) -> Case:
    keras = keras3()
    model, inputs, outputs, feeds = build_lambda(keras)
    path = tmp_path_factory.mktemp("keras3_lambda") / "with_lambda.keras"
    model.save(path)
    return Case(path, inputs, outputs, feeds, _predict(model, feeds))


def row(label: str, result, difference: float, seconds: float) -> None:
    """One line of the summary table (shown with ``pytest -s``)."""
    names = [[spec.name for spec in result.inputs], [spec.name for spec in result.outputs]]
    print(f"\nROW | {label} | {result.route} | {names[0]} | {names[1]} | {difference:.3g} | {seconds:.2f}")


def max_difference(got: list, expected: list) -> float:
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert np.shape(g) == np.shape(e), f"{np.shape(g)} != {np.shape(e)}"
    return max(float(np.max(np.abs(np.asarray(g, "float64") - np.asarray(e, "float64")))) for g, e in zip(got, expected))


def assert_lint_clean(pb: Path) -> None:
    """No error-level finding (variables, ReadVariableOp, random ops, training switches...) in the written graph."""
    from freezekeras.graphdef.reading import read_graph_def

    graph_def = read_graph_def(pb)
    errors = [finding.line for finding in lint(graph_def) if finding.severity == ERROR]
    assert errors == [], errors
    ops = {node.op for node in graph_def.node} | {node.op for f in graph_def.library.function for node in f.node_def}
    assert not ops & {"VarHandleOp", "ReadVariableOp", "RandomUniform", "RandomStandardNormal"}, ops


def convert_and_compare(case: Case, out: Path, label: str, **options):
    """Convert ``case`` to ``out``; the names, the model's own predictions, a clean graph. Returns the result."""
    start = time.perf_counter()
    result = freezekeras.convert(case.path, freezekeras.ConvertOptions(output=out, **{**case.options, **options}))
    seconds = time.perf_counter() - start
    assert result.route == "function", result.route_reason
    assert [spec.name for spec in result.inputs] == case.inputs
    assert [spec.name for spec in result.outputs] == case.outputs
    if result.verification is not None:
        assert result.verification.passed
    got = run_frozen(out, dict(zip(case.inputs, case.feeds)), case.outputs)
    difference = max_difference(got, case.expected)
    assert difference <= ATOL, f"frozen graph vs the model's predict: {difference}"
    assert_lint_clean(out)
    row(label, result, difference, seconds)
    return result


# --------------------------------------------------------------------------- converting Keras 3 files

#: text.h5: Keras 3's legacy .h5 writes the mask of Embedding(mask_zero=True) as a NotEqual operation without its
#: module, which Keras 3.15's own load_model cannot find; freezekeras supplies it.
KERAS3_CASES = [f"{name}.{suffix}" for name in BUILDERS for suffix in ("keras", "h5")] + [
    "nested.weights.h5+nested.json", "nested.weights.h5+config.json", "seq_base_k38.keras"]


@pytest.mark.parametrize("name", KERAS3_CASES)
def test_keras3_file_converts_with_the_models_predictions(k3, tmp_path, name):
    """Each Keras 3 file (and weights file with its architecture) converts, verifies and reproduces ``predict``."""
    case = k3[name]
    result = convert_and_compare(case, tmp_path / "model.pb", name)
    assert result.verification.max_abs_diff <= ATOL
    assert "Keras 3" in result.route_reason
    if name == "seq_base_k38.keras":  # the 3.8-era config was repaired, and said so
        assert any("keras-team/keras#20084" in warning for warning in result.warnings), result.warnings


def test_a_custom_layer_is_refused_without_its_definition(k3, tmp_path):
    """Without --custom-objects the registered custom class is refused, named, nothing written; with it, it converts."""
    keras = keras3()
    # Converting with --custom-objects runs the file, whose decorator registers the class in Keras' global
    # registry for the rest of this process (a fresh process, as each freezekeras command is, has none).
    keras.saving.get_custom_objects().pop(CUSTOM_KEY, None)
    model = _private_copy(k3["custom.keras"].path, tmp_path)
    work = model.parent
    before = snapshot(work)
    result = run_cli("convert", model, "-o", work / "custom.pb")
    assert_one_error_line(result, EXIT_MODEL_ERROR, model, "GatedScale", "--custom-objects")
    assert_nothing_changed(before, work)
    with pytest.raises(UnknownObjectError):
        freezekeras.convert(model, freezekeras.ConvertOptions(output=work / "custom.pb"))
    convert_and_compare(k3["custom.keras"], tmp_path / "ok.pb", "custom.keras again")


# --------------------------------------------------------------------------- a JAX-saved model

JAX_SAVER = textwrap.dedent('''
    import sys
    import numpy as np
    import keras

    assert keras.backend.backend() == "jax", keras.backend.backend()
    keras.utils.set_random_seed(20)
    pixels = keras.Input((12, 12, 3), name="pixels")
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(pixels)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    seq = keras.Input((7, 2), name="seq")
    y = keras.layers.GRU(5, name="gru")(seq)
    out = keras.layers.Dense(3, activation="softmax", name="probs")(keras.layers.Concatenate()([x, y]))
    model = keras.Model([pixels, seq], out)
    bn = model.get_layer("bn")
    bn.set_weights([w + 0.7 for w in bn.get_weights()])
    rng = np.random.default_rng(120)
    xs = [rng.uniform(size=(3, 12, 12, 3)).astype("float32"), rng.normal(size=(3, 7, 2)).astype("float32")]
    np.save("x0.npy", xs[0]); np.save("x1.npy", xs[1])
    np.save("y.npy", np.asarray(model.predict(xs, verbose=0)))
    model.save("jax_model.keras")
''')


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_jax_saved_keras_file_converts(tmp_path):
    """A model built and saved on JAX converts on TensorFlow and reproduces JAX's own predictions."""
    pytest.importorskip("jax", reason="jax is not installed (it is in the test extras)")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", JAX_SAVER], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with zipfile.ZipFile(tmp_path / "jax_model.keras") as archive:
        assert json.loads(archive.read("metadata.json")).get("keras_version", "").startswith("3.")
    case = Case(tmp_path / "jax_model.keras", ["pixels", "seq"], ["probs"],
                [np.load(tmp_path / "x0.npy"), np.load(tmp_path / "x1.npy")], [np.load(tmp_path / "y.npy")])
    convert_and_compare(case, tmp_path / "jax.pb", "jax_model.keras (saved on JAX)")


# --------------------------------------------------------------------------- SavedModels

@pytest.fixture(scope="session")
def tf_keras_saved_model(tmp_path_factory) -> Case:
    """tf-keras ``model.save(dir, save_format="tf")``: two inputs, two outputs."""
    import tf_keras

    tf_keras.utils.set_random_seed(21)
    features = tf_keras.Input((6,), name="features")
    extra = tf_keras.Input((3,), name="extra")
    hidden = tf_keras.layers.Dense(8, activation="relu")(tf_keras.layers.Concatenate()([features, extra]))
    model = tf_keras.Model([features, extra], [tf_keras.layers.Dense(2, name="score")(hidden),
                                               tf_keras.layers.Dense(1, name="aux")(hidden)])
    folder = tmp_path_factory.mktemp("tfk_saved_model") / "tfk_sm"
    model.save(folder, save_format="tf")
    rng = np.random.default_rng(121)
    feeds = {"features": rng.normal(size=(3, 6)).astype("float32"), "extra": rng.normal(size=(3, 3)).astype("float32")}
    score, aux = model.predict([feeds["features"], feeds["extra"]], verbose=0)
    # the signature's keys, sorted: inputs extra, features; outputs aux, score
    return Case(folder, ["extra", "features"], ["aux", "score"], [feeds["extra"], feeds["features"]], [aux, score])


@pytest.fixture(scope="session")
def keras3_export(k3, tmp_path_factory) -> Case:
    """Keras 3 ``model.export(dir)`` of the CNN: input ``image``, output ``output_0`` (Keras' own key)."""
    keras = keras3()
    model = keras.saving.load_model(k3["cnn.keras"].path, compile=False)
    folder = tmp_path_factory.mktemp("k3_export") / "k3_sm"
    model.export(folder, verbose=False)
    case = k3["cnn.keras"]
    return Case(folder, ["image"], ["output_0"], case.feeds, _predict(model, case.feeds))


@pytest.mark.slow
def test_a_tf_keras_saved_model_converts(tf_keras_saved_model, tmp_path):
    result = convert_and_compare(tf_keras_saved_model, tmp_path / "sm.pb", "tf_keras SavedModel")
    assert "SavedModel, signature serving_default" in result.route_reason


@pytest.mark.slow
def test_a_keras3_export_saved_model_converts(keras3_export, tmp_path):
    result = convert_and_compare(keras3_export, tmp_path / "sm.pb", "Keras 3 model.export SavedModel")
    assert "serving_default (also: serve)" in result.route_reason
    # the other signature Keras 3 exports
    convert_and_compare(keras3_export, tmp_path / "serve.pb", "Keras 3 export, --signature serve", signature="serve")


@pytest.mark.slow
def test_a_saved_model_without_the_signature_is_refused(keras3_export, tmp_path):
    """Exit 2, listing the signatures it has; nothing written, the folder untouched."""
    work = tmp_path / "work"
    shutil.copytree(keras3_export.path, work / "k3_sm")
    before = snapshot(work)
    result = run_cli("convert", work / "k3_sm", "-o", work / "out.pb", "--signature", "predict")
    assert_one_error_line(result, EXIT_USAGE_ERROR, work / "k3_sm", "'predict'", "serve", "serving_default")
    assert_nothing_changed(before, work)


# --------------------------------------------------------------------------- Keras 2 with --route function, ONNX, OpenCV

@pytest.fixture(scope="session")
def keras2_lstm(tmp_path_factory) -> Case:
    """A tf-keras stacked LSTM (.h5), input ``seq``, softmax output ``probs``."""
    import tf_keras

    tf_keras.utils.set_random_seed(22)
    model = tf_keras.Sequential([
        tf_keras.Input((None, 4), name="seq"),
        tf_keras.layers.LSTM(8, return_sequences=True, name="lstm_a"),
        tf_keras.layers.LSTM(5, name="lstm_b"),
        tf_keras.layers.Dense(3, activation="softmax", name="probs"),
    ])
    path = tmp_path_factory.mktemp("keras2_lstm") / "keras2_lstm.h5"
    model.save(path)
    feeds = [np.random.default_rng(122).normal(size=(3, 9, 4)).astype("float32")]
    return Case(path, ["seq"], ["probs/Softmax"], feeds, _predict(model, feeds), {"route": "function"})


@pytest.mark.slow
def test_a_keras2_file_takes_the_function_route_with_the_session_routes_names(keras2_lstm, tmp_path):
    result = convert_and_compare(keras2_lstm, tmp_path / "function.pb", "Keras 2 LSTM --route function")
    assert "--route function" in result.route_reason
    session = freezekeras.convert(keras2_lstm.path, freezekeras.ConvertOptions(output=tmp_path / "session.pb"))
    assert session.route == "session"
    assert [spec.name for spec in session.inputs] == [spec.name for spec in result.inputs]
    assert [spec.name for spec in session.outputs] == [spec.name for spec in result.outputs]


@pytest.mark.slow
@pytest.mark.parametrize("which", ["keras2 --route function", "keras3"])
def test_onnxruntime_runs_the_function_routes_stacked_lstm(which, keras2_lstm, k3, tmp_path):
    """tf2onnx turns the While loops into native ONNX LSTM nodes; onnxruntime gives Keras' numbers."""
    onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[clients]')")
    tf2onnx = pytest.importorskip("tf2onnx", reason="tf2onnx is not installed (pip install -e '.[clients]')")
    import tensorflow as tf

    case = keras2_lstm if which.startswith("keras2") else k3["stacked_lstm.keras"]
    pb = tmp_path / "lstm.pb"
    convert_and_compare(case, pb, f"stacked LSTM ({which}) for ONNX")
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(pb.read_bytes())
    proto, _ = tf2onnx.convert.from_graph_def(graph_def, input_names=["seq:0"],
                                               output_names=[f"{case.outputs[0]}:0"], opset=17)
    ops = [node.op_type for node in proto.graph.node]
    assert ops.count("LSTM") == 2, sorted(set(ops))
    assert "Loop" not in ops
    session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"seq:0": case.feeds[0]})
    difference = max_difference(got, case.expected)
    assert difference <= ATOL
    print(f"\nROW | onnxruntime: stacked LSTM ({which}) | function | ['seq:0'] | "
          f"['{case.outputs[0]}:0'] | {difference:.3g} | -")


def test_opencv_runs_the_frozen_keras3_cnn(k3, tmp_path):
    """OpenCV's dnn module (its classic engine) runs the frozen Keras 3 CNN with Keras' numbers.

    OpenCV drops Identity nodes, so the output is the net's only unconnected one
    (``forward()`` without a name); its blobs are NCHW. OpenCV 5.0's default
    (new) engine fails on this graph in ``cv::dnn::total`` ("expected: 'end <=
    dims', where 'end' is 5, 'dims' is 4") as soon as a BatchNormalization that
    cannot fold into a convolution leaves a ``Mul``/``AddV2`` by a per-channel
    constant that is not uniform (it runs the same CNN with uniform statistics):
    an OpenCV importer bug, not the graph's; the classic engine runs it.
    """
    cv2 = pytest.importorskip("cv2", reason="opencv-python-headless is not installed (it is in the test extras)")
    case = k3["cnn.keras"]
    pb = tmp_path / "cnn.pb"
    convert_and_compare(case, pb, "cnn.keras for OpenCV")
    net = cv2.dnn.readNetFromTensorflow(str(pb), "", cv2.dnn.ENGINE_CLASSIC)
    net.setInput(np.ascontiguousarray(case.feeds[0].transpose(0, 3, 1, 2)))
    difference = max_difference([net.forward()], case.expected)
    assert difference <= ATOL
    print(f"\nROW | OpenCV {cv2.__version__} ENGINE_CLASSIC: cnn.keras | function | ['image'] | "
          f"(unconnected output) | {difference:.3g} | -")


# --------------------------------------------------------------------------- inspect predicts convert's names

INSPECT_SCRIPT = textwrap.dedent('''
    import json, sys
    import freezekeras

    names = {}
    for label, path, architecture in json.loads(sys.argv[1]):
        result = freezekeras.inspect(path, architecture=architecture)
        names[label] = [[spec.node for spec in result.inputs], [spec.node for spec in result.outputs],
                        result.details.get("route")]
    heavy = sorted(name for name in ("tensorflow", "keras", "tf_keras", "jax") if name in sys.modules)
    print(json.dumps({"names": names, "imported": heavy}))
''')


@pytest.mark.subprocess
def test_inspect_predicts_convert_names_without_tensorflow(k3):
    """In a fresh interpreter, inspect names each Keras 3 file's nodes as convert writes them, importing no TensorFlow.

    The names compared are those test_keras3_file_converts_with_the_models_predictions
    holds convert to.
    """
    jobs = [[name, str(case.path), str(case.options.get("architecture") or "") or None] for name, case in k3.items()]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", INSPECT_SCRIPT, json.dumps(jobs)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["imported"] == []
    for name, case in k3.items():
        assert found["names"][name] == [case.inputs, case.outputs, "function"], name


# --------------------------------------------------------------------------- determinism

@pytest.mark.slow
def test_the_same_model_gives_the_same_bytes_twice_and_second_in_a_batch(k3, tmp_path):
    """Converting a Keras 3 model again, or after another model in a batch, writes identical bytes."""
    for name in ("cnn.keras", "stacked_lstm.keras"):
        first = tmp_path / "first" / name
        second = tmp_path / "second" / name
        for out in (first, second):
            out.parent.mkdir(exist_ok=True)
            freezekeras.convert(k3[name].path, freezekeras.ConvertOptions(output=out.with_suffix(".pb")))
        assert first.with_suffix(".pb").read_bytes() == second.with_suffix(".pb").read_bytes(), name
    batch = tmp_path / "batch"
    items = freezekeras.convert_many([k3["gru.keras"].path, k3["cnn.keras"].path, k3["stacked_lstm.keras"].path],
                                     freezekeras.ConvertOptions(output=batch), create_output=True)
    assert [item.ok for item in items] == [True, True, True], [item.error for item in items]
    for name in ("cnn.keras", "stacked_lstm.keras"):
        pb = Path(name).with_suffix(".pb").name
        assert (batch / pb).read_bytes() == (tmp_path / "first" / pb).read_bytes(), name


# --------------------------------------------------------------------------- the command line on the function route

def _convert_json(*args) -> dict:
    result = run_cli("convert", *args, "--json")
    assert result.exit_code == EXIT_OK, describe(result)
    return json.loads(result.stdout)


def test_json_reports_the_route_names_and_verification(k3, tmp_path):
    case = k3["multi_io.keras"]
    data = _convert_json(case.path, "-o", tmp_path / "m.pb")
    assert data["route"] == "function"
    assert data["route_reason"].startswith("a Keras 3")
    assert [spec["name"] for spec in data["inputs"]] == case.inputs
    assert [spec["layer"] for spec in data["outputs"]] == case.outputs
    assert data["verification"]["passed"] is True
    assert sorted(data["verification"]["per_output"]) == sorted(case.outputs)
    assert data["output"] == str(tmp_path / "m.pb")


def test_the_text_output_prints_the_route(k3, tmp_path):
    result = run_cli("convert", k3["gru.keras"].path, "-o", tmp_path / "g.pb")
    assert result.exit_code == EXIT_OK, describe(result)
    assert "route: function (a Keras 3" in result.stdout
    assert "verification: passed" in result.stdout


def test_text_writes_a_pbtxt_that_runs(k3, tmp_path):
    import tensorflow as tf
    from google.protobuf import text_format

    case = k3["text.keras"]
    data = _convert_json(case.path, "--text", "-o", tmp_path / "t.pbtxt")
    assert data["route"] == "function"
    graph_def = text_format.Parse((tmp_path / "t.pbtxt").read_text(), tf.compat.v1.GraphDef())
    (tmp_path / "t.pb").write_bytes(graph_def.SerializeToString())
    got = run_frozen(tmp_path / "t.pb", dict(zip(case.inputs, case.feeds)), case.outputs)
    assert max_difference(got, case.expected) <= ATOL


def test_reference_atol_and_no_verify(k3, tmp_path):
    """--reference with the model's own predictions passes (and fails, exit 3, when they are off); --atol; --no-verify."""
    case = k3["multi_io.keras"]
    np.savez(tmp_path / "ref.npz", **dict(zip(case.inputs, case.feeds)), **dict(zip(case.outputs, case.expected)))
    data = _convert_json(case.path, "-o", tmp_path / "r.pb", "--reference", tmp_path / "ref.npz", "--atol", "1e-5")
    assert data["reference"]["passed"] is True
    assert data["reference"]["max_abs_diff"] <= ATOL
    assert data["reference"]["atol"] == data["verification"]["atol"] == 1e-5
    shifted = [y + 0.01 for y in case.expected]
    np.savez(tmp_path / "bad.npz", **dict(zip(case.inputs, case.feeds)), **dict(zip(case.outputs, shifted)))
    result = run_cli("convert", case.path, "-o", tmp_path / "bad.pb", "--reference", tmp_path / "bad.npz",
                     "--atol", "1e-3")
    assert result.exit_code == EXIT_VERIFICATION_FAILED, describe(result)
    assert not (tmp_path / "bad.pb").exists()
    data = _convert_json(case.path, "-o", tmp_path / "n.pb", "--no-verify")
    assert data["verification"] is None
    assert "verify" not in data["timings"]
    got = run_frozen(tmp_path / "n.pb", dict(zip(case.inputs, case.feeds)), case.outputs)
    assert max_difference(got, case.expected) <= ATOL


@pytest.mark.slow
def test_a_batch_folder_of_h5_and_keras_files(k3, keras2_lstm, tmp_path):
    """A folder holding a Keras 2 .h5, a Keras 3 .h5 and a .keras: each takes its route, each graph runs."""
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(keras2_lstm.path, folder / "keras2_lstm.h5")
    shutil.copy(k3["gru.h5"].path, folder / "gru.h5")
    shutil.copy(k3["cnn.keras"].path, folder / "cnn.keras")
    result = run_cli("convert", folder, "-o", f"{tmp_path / 'out'}/", "--json")
    assert result.exit_code == EXIT_OK, describe(result)
    items = {Path(item["model"]).name: item for item in json.loads(result.stdout)}
    assert {name: item["route"] for name, item in items.items()} == {
        "cnn.keras": "function", "gru.h5": "function", "keras2_lstm.h5": "session"}
    assert files_under(tmp_path / "out") == ["cnn.pb", "gru.pb", "keras2_lstm.pb"]
    for name, case in (("cnn", k3["cnn.keras"]), ("gru", k3["gru.h5"])):
        got = run_frozen(tmp_path / "out" / f"{name}.pb", dict(zip(case.inputs, case.feeds)), case.outputs)
        assert max_difference(got, case.expected) <= ATOL


# --------------------------------------------------------------------------- refusals

def _refused(model: Path, code: int, *args, phrases=()) -> str:
    """Convert ``model`` (in a folder of its own) with ``args``: one error line, exit ``code``, nothing changed."""
    work = model.parent
    before = snapshot(work)
    result = run_cli("convert", model, "-o", work / "out.pb", *args)
    line = assert_one_error_line(result, code, model, *phrases)
    assert_nothing_changed(before, work)
    return line


def _private_copy(source: Path, tmp_path: Path) -> Path:
    (tmp_path / "work").mkdir(parents=True)
    return Path(shutil.copy(source, tmp_path / "work" / source.name))


def test_route_session_is_refused_for_a_keras3_file(k3, tmp_path):
    _refused(_private_copy(k3["cnn.keras"].path, tmp_path), EXIT_USAGE_ERROR, "--route", "session",
             phrases=("--route session",))


def test_output_node_is_refused_on_the_function_route(k3, keras2_lstm, tmp_path):
    _refused(_private_copy(k3["cnn.keras"].path, tmp_path), EXIT_USAGE_ERROR, "--output-node", "probs",
             phrases=("--output-node",))
    _refused(_private_copy(keras2_lstm.path, tmp_path / "k2"), EXIT_USAGE_ERROR, "--route", "function",
             "--output-node", "probs/Softmax", phrases=("--output-node",))


def test_a_lambda_layer_is_refused_unless_allowed(lambda_case, tmp_path):
    model = _private_copy(lambda_case.path, tmp_path)
    _refused(model, EXIT_MODEL_ERROR, phrases=("affine", "--allow-lambda"))
    with pytest.raises(LambdaLayerError):
        freezekeras.convert(model, freezekeras.ConvertOptions(output=tmp_path / "x.pb"))
    convert_and_compare(lambda_case, tmp_path / "allowed.pb", "with_lambda.keras --allow-lambda", allow_lambda=True)


@pytest.mark.parametrize("damage", ["no weights file", "broken weights file", "truncated archive"])
def test_a_damaged_archive_is_refused(k3, tmp_path, damage):
    source = k3["cnn.keras"].path
    (tmp_path / "work").mkdir()
    model = tmp_path / "work" / "cnn.keras"
    if damage == "no weights file":
        rewrite_archive(source, model, drop="model.weights.h5")
    elif damage == "broken weights file":
        with zipfile.ZipFile(source) as archive:
            weights = archive.read("model.weights.h5")
        rewrite_archive(source, model, replace={"model.weights.h5": weights[: len(weights) // 2]})
    else:
        model.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    _refused(model, EXIT_MODEL_ERROR)
