"""The serving matrix: frozen graphs run in each runtime they are for, compared with Keras' predictions.

Models x runtimes. Each cell converts the model with ``--target`` for that runtime (``TARGET_OF``),
asserts that it picked the options ``CHOICES`` lists (what a user of that runtime needs), runs the
runtime on the frozen graph (``tests/runtimes.py``) and compares what it computes with the Keras
model's own predictions on inputs of our own. Cells a runtime cannot do at all are in
``IMPOSSIBLE``; their test asserts that ``--target`` refuses the graph and that the runtime itself
refuses it (converted without ``--target``), so the claim fails the day the runtime learns to run
it; cells waiting for a freezekeras option being
built are in ``PENDING`` (expected to fail with the runtime's converter error, and failing the day
they pass). docs/serving.md shows the matrix
(``tools/serving_matrix.py`` regenerates it; ``test_the_documented_matrix_is_the_tested_one`` fails
while it claims other cells than these tables).

Nothing here imports TensorFlow at import time (the documentation test and the tool read the tables).
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import runtimes

REPO = Path(__file__).resolve().parents[1]
SERVING_DOC = REPO / "docs" / "serving.md"
#: Where the cells append what they measured (one JSON line each), when set: tools/serving_matrix.py sets it.
RESULTS_ENV = "FREEZEKERAS_SERVING_RESULTS"

#: The models, in the matrix's row order, with how the docs describe each.
MODELS = {
    "cnn_bn": "CNN: Conv2D, BatchNormalization, Dropout (Keras 2 .h5)",
    "cnn_nchw": "channels_first CNN (Keras 2 .h5)",
    "multi_io": "two inputs (float, int Embedding), two outputs (Keras 2 .h5)",
    "stacked_lstm": "stacked LSTM (Keras 2 .h5)",
    "gru": "GRU (Keras 2 .h5)",
    "bidir_text": "Embedding + Bidirectional LSTM text model (Keras 2 .h5)",
    "k3_cnn": "Keras 3 CNN (.keras)",
    "k3_lstm": "Keras 3 stacked LSTM (.keras)",
    "mobilenetv2": "MobileNetV2 (alpha 0.35, 96x96, Keras 2 .h5)",
}
RNN_MODELS = ("stacked_lstm", "gru", "bidir_text", "k3_lstm")

#: The ``--target`` for each runtime of the matrix.
TARGET_OF = {"tensorflow": "tf", "tf_c_api": "tf", "opencv": "opencv", "onnxruntime": "onnx", "openvino": "openvino",
             "tflite": "tflite"}

#: The freezekeras options (ConvertOptions fields) a runtime needs for a model, which ``--target`` picks;
#: absent: none beyond the defaults.
CHOICES: dict[tuple[str, str], dict] = {
    ("opencv", "cnn_nchw"): {"keep_nchw": True},  # OpenCV's importer wants the model's own NCHW nodes
    # Keras 2 RNNs: the function route's While loops keep their functions, which tf2onnx makes native
    # LSTM/GRU nodes of, and which OpenVINO's and TFLite's converters read (the session route's graph
    # fails in OpenVINO's graph rewrite and in TFLite's "EmptyTensorList ... element_shape" check).
    **{(runtime, model): {"route": "function"}
       for runtime in ("onnxruntime", "openvino") for model in ("stacked_lstm", "gru", "bidir_text")},
    # TensorFlow's TFLite converter needs the recurrent loops' TensorList element shapes static, so the batch
    # fixed when the model is traced (the converter's own input_shapes come too late); the time axis stays free.
    ("tflite", "stacked_lstm"): {"route": "function", "batch_size": 1},
    ("tflite", "gru"): {"route": "function", "batch_size": 1},
    ("tflite", "bidir_text"): {"route": "function", "batch_size": 1},
    ("tflite", "k3_lstm"): {"batch_size": 1},
}

#: Cells the runtime cannot do at all, with the reason; their test asserts that the runtime refuses.
IMPOSSIBLE: dict[tuple[str, str], str] = {
    **{("opencv", model): "OpenCV's dnn has no While loops (recurrent layers)" for model in RNN_MODELS},
    ("opencv", "multi_io"): "OpenCV's TensorFlow importer has no GatherV2 (Embedding), in either engine",
    ("opencv", "bidir_text"): "OpenCV's dnn has no While loops (recurrent layers) nor GatherV2 (Embedding)",
}
#: What an IMPOSSIBLE cell's reason names, as ``--target`` gap kinds (freezekeras.graphdef.targets.GAPS):
#: ``--target`` refuses the graph for them (the reason is about this graph).
IMPOSSIBLE_GAPS = {key: {kind for kind, word in (("loops", "While"), ("gathers", "GatherV2")) if word in reason}
                   for key, reason in IMPOSSIBLE.items()}

#: Cells that fail for want of a freezekeras option still being built, with the reason; strict xfail
#: (their runtime's error is asserted), so that they are moved to CHOICES as soon as they pass.
PENDING: dict[tuple[str, str], str] = {}

#: Cells compared looser than DEFAULT_RTOL x the output scale, with the reason.
LOOSER: dict[tuple[str, str], tuple[float, str]] = {}
#: The accepted difference, relative to the output scale (max |keras|, at least 1).
DEFAULT_RTOL = 1e-4


def options_label(kwargs: dict) -> str:
    """The command-line form of a CHOICES entry (``--route function --keep-nchw``); '' for the defaults."""
    parts = []
    for key, value in sorted(kwargs.items()):
        flag = "--" + key.removesuffix("s").replace("_", "-") if key == "input_shapes" else "--" + key.replace("_", "-")
        if value is True:
            parts.append(flag)
        else:
            parts += [f"{flag} {item}" for item in (value if isinstance(value, tuple) else (value,))]
    return " ".join(parts)


def claim(runtime: str, model: str) -> str:
    """The matrix cell for a runtime and model, with ``{diff}`` where the measured difference goes."""
    if (runtime, model) in IMPOSSIBLE:
        return f"✗ {IMPOSSIBLE[runtime, model]}"
    if (runtime, model) in PENDING:
        return f"… {PENDING[runtime, model]}"
    label = options_label(CHOICES.get((runtime, model), {}))
    return "✓ {diff}" + (f" `{label}`" if label else "")


# --------------------------------------------------------------------------- the models, built once


@dataclass
class Built:
    """A saved model, inputs of our own (in the model's input order) and the model's predictions for them."""

    path: Path
    feeds: list[np.ndarray]
    expected: list[np.ndarray]


def _keras3():
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import keras

    assert keras.backend.backend() == "tensorflow"
    return keras


def _randomize_batch_norms(model, rng) -> None:
    """BatchNormalization statistics far from 0/1, so that a runtime that gets them wrong shows."""
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([gamma * rng.uniform(0.5, 1.5, gamma.shape).astype("float32"),
                               rng.normal(0.2, 0.3, beta.shape).astype("float32"),
                               rng.normal(0.5, 0.5, mean.shape).astype("float32"),
                               rng.uniform(0.5, 2.0, variance.shape).astype("float32")])


def _inputs(model, rng, *, batch: int = 3, steps: int = 7, int_high: int = 5) -> list[np.ndarray]:
    feeds = []
    for spec in model.inputs:
        shape = [batch] + [steps if dim is None else dim for dim in spec.shape[1:]]
        dtype = np.dtype(spec.dtype.name if hasattr(spec.dtype, "name") else spec.dtype)
        if dtype.kind in "iu":
            feeds.append(rng.integers(0, int_high, size=shape).astype(dtype))
        else:
            feeds.append(rng.normal(size=shape).astype(dtype))
    return feeds


def _predict(model, feeds) -> list[np.ndarray]:
    out = model.predict(feeds if len(feeds) > 1 else feeds[0], verbose=0)
    return [np.asarray(y) for y in (out if isinstance(out, list | tuple) else [out])]


def _keras2_model(name: str):
    import tf_keras as keras

    layers = keras.layers
    if name == "cnn_bn":
        return keras.Sequential([
            keras.Input((16, 16, 3), name="image"), layers.Conv2D(8, 3, name="conv1"), layers.BatchNormalization(),
            layers.Activation("relu"), layers.Dropout(0.3), layers.MaxPooling2D(), layers.Conv2D(6, 3, name="conv2"),
            layers.BatchNormalization(), layers.Activation("relu"), layers.GlobalAveragePooling2D(),
            layers.Dropout(0.5), layers.Dense(4, activation="softmax", name="probs")])
    if name == "cnn_nchw":
        first = {"data_format": "channels_first"}
        return keras.Sequential([
            keras.Input((3, 12, 12), name="image"), layers.Conv2D(6, 3, activation="relu", name="conv", **first),
            layers.BatchNormalization(axis=1), layers.MaxPooling2D(**first), layers.Conv2D(4, 3, **first),
            layers.Flatten(), layers.Dense(3, name="logits")])
    if name == "multi_io":
        features = keras.Input((6,), name="features")
        tokens = keras.Input((5,), dtype="int32", name="tokens")
        embedded = layers.Flatten()(layers.Embedding(7, 4)(tokens))
        joined = layers.Concatenate()([layers.Dense(8, activation="tanh")(features), embedded])
        score = layers.Dense(1, activation="sigmoid", name="score")(joined)
        classes = layers.Dense(4, activation="softmax", name="classes")(joined)
        return keras.Model([features, tokens], [score, classes])
    if name == "stacked_lstm":
        return keras.Sequential([keras.Input((None, 4), name="seq"), layers.LSTM(8, return_sequences=True),
                                 layers.LSTM(5), layers.Dense(2, name="head")])
    if name == "gru":
        return keras.Sequential([keras.Input((None, 4), name="seq"), layers.GRU(6), layers.Dense(3, name="head")])
    if name == "bidir_text":
        return keras.Sequential([keras.Input((10,), dtype="int32", name="words"), layers.Embedding(50, 8),
                                 layers.Bidirectional(layers.LSTM(6)), layers.Dense(1, activation="sigmoid",
                                                                                     name="sentiment")])
    if name == "mobilenetv2":
        return keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10,
                                              classifier_activation=None)
    raise KeyError(name)


def _keras3_model(name: str):
    keras = _keras3()
    layers = keras.layers
    if name == "k3_cnn":
        return keras.Sequential([
            keras.Input((16, 16, 3), name="image"), layers.Conv2D(8, 3, activation="relu"),
            layers.BatchNormalization(), layers.Dropout(0.3), layers.MaxPooling2D(), layers.Conv2D(6, 3),
            layers.GlobalAveragePooling2D(), layers.Dense(4, activation="softmax", name="probs")])
    if name == "k3_lstm":
        return keras.Sequential([keras.Input((None, 4), name="seq"), layers.LSTM(8, return_sequences=True),
                                 layers.LSTM(5), layers.Dense(2, name="head")])
    raise KeyError(name)


def build(name: str, folder: Path) -> Built:
    """Build, save and predict one model of MODELS (seeded: the same numbers every run)."""
    rng = np.random.default_rng(sorted(MODELS).index(name))
    if name.startswith("k3_"):
        keras = _keras3()
        keras.utils.set_random_seed(11)
        model = _keras3_model(name)
        path = folder / f"{name}.keras"
    else:
        import tf_keras

        tf_keras.utils.set_random_seed(11)
        model = _keras2_model(name)
        path = folder / f"{name}.h5"
    _randomize_batch_norms(model, rng)
    model.save(path)
    feeds = _inputs(model, rng)
    return Built(path, feeds, _predict(model, feeds))


@pytest.fixture(scope="session")
def serving_models(tmp_path_factory) -> dict[str, Built]:
    """Every model of MODELS, built lazily, once per session."""
    folder = tmp_path_factory.mktemp("serving_models")

    class Lazy(dict):
        def __missing__(self, name):
            self[name] = build(name, folder)
            return self[name]

    return Lazy()


@pytest.fixture(scope="session")
def frozen(serving_models, tmp_path_factory):
    """``frozen(model, options)``: the model converted with those ConvertOptions fields, once per option set.

    With a ``target``, runtimes whose target picks the same options share one conversion: the
    first runs ``convert`` with its ``--target``; the others get that result with their own
    ``target_options`` once the graph passes their target's check, which is what ``convert``
    would have run (:func:`freezekeras.graphdef.targets.target_gaps`).
    """
    import dataclasses

    import freezekeras
    from freezekeras.api import plan_route
    from freezekeras.graphdef.reading import read_graph_def
    from freezekeras.graphdef.targets import target_gaps
    from freezekeras.target import choose

    folder = tmp_path_factory.mktemp("serving_frozen")
    cache: dict = {}

    def get(model: str, options: dict):
        path = serving_models[model].path
        given = freezekeras.ConvertOptions(**options)
        chosen, choice = given, None
        if given.target is not None:
            plan = plan_route(path, given)
            chosen, choice = choose(given, kind=plan.kind, config=plan.config, source=path)
        defaults = dataclasses.asdict(freezekeras.ConvertOptions())
        key = (model, tuple(sorted((name, value) for name, value in dataclasses.asdict(chosen).items()
                                   if name != "target" and value != defaults[name])))
        if key not in cache:
            output = folder / f"{model}-{len(cache)}.pb"
            cache[key] = freezekeras.convert(path, dataclasses.replace(given, output=output))
        result = cache[key]
        if choice is not None and result.target != choice.target:
            assert target_gaps(read_graph_def(result.output), choice.target) == []
            result = dataclasses.replace(result, target=choice.target, target_options=choice.options)
        return result

    return get


def _record(runtime: str, model: str, **fields) -> None:
    target = os.environ.get(RESULTS_ENV)
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"runtime": runtime, "model": model, **fields}) + "\n")


def _cells():
    for model in MODELS:
        for runtime in runtimes.RUNTIMES:
            marks = [pytest.mark.slow]
            if runtime == "tf_c_api":
                marks.append(pytest.mark.subprocess)
            yield pytest.param(runtime, model, marks=marks, id=f"{runtime}-{model}")


#: The error each runtime's PENDING cells fail with today (its converter refusing the graph), by class name.
PENDING_ERRORS = {"tflite": "ConverterError"}


def _skip_if_unavailable(runtime: str) -> None:
    reason = runtimes.ADAPTERS[runtime].available()
    if reason:
        pytest.skip(f"{runtimes.TITLES[runtime]}: {reason}")


def _refusal(runtime: str) -> type[BaseException]:
    """The exception a runtime raises when it cannot take a graph."""
    if runtime == "opencv":
        import cv2

        return cv2.error
    raise KeyError(runtime)


@pytest.mark.parametrize(("runtime", "model"), list(_cells()))
def test_serving_cell(runtime, model, serving_models, frozen, tmp_path):
    """The runtime runs the frozen graph and computes Keras' predictions (or, in IMPOSSIBLE, refuses it)."""
    _skip_if_unavailable(runtime)
    adapter = runtimes.ADAPTERS[runtime]
    built = serving_models[model]
    if (runtime, model) in IMPOSSIBLE:
        from freezekeras.graphdef.reading import read_graph_def
        from freezekeras.graphdef.targets import target_gaps

        result = frozen(model, {})
        feeds = {spec.name: value for spec, value in zip(result.inputs, built.feeds)}
        outputs = [spec.name for spec in result.outputs]
        found = {gap.kind for gap, _ in target_gaps(read_graph_def(result.output), TARGET_OF[runtime])}
        assert found == IMPOSSIBLE_GAPS[runtime, model], "--target would not refuse the graph for the reason given"
        with pytest.raises(_refusal(runtime)):
            adapter.run(result.output, feeds, list(result.inputs), outputs, workdir=tmp_path)
        _record(runtime, model, status="impossible", reason=IMPOSSIBLE[runtime, model])
        return
    result = frozen(model, {"target": TARGET_OF[runtime]})
    assert " ".join(sorted(result.target_options)) == options_label(CHOICES.get((runtime, model), {}))
    feeds, expected = _batch_of(result.inputs, built.feeds, built.expected)
    outputs = [spec.name for spec in result.outputs]
    started = time.perf_counter()
    if (runtime, model) in PENDING:  # a strict expected failure: the runtime's own error, and none other
        try:
            adapter.run(result.output, feeds, list(result.inputs), outputs, workdir=tmp_path)
        except Exception as exc:
            if type(exc).__name__ != PENDING_ERRORS[runtime]:
                raise
            _record(runtime, model, status="pending", reason=PENDING[runtime, model])
            pytest.xfail(f"{PENDING[runtime, model]}: {str(exc).splitlines()[0][:200]}")
        pytest.fail(f"{runtime} now runs {model}: move the cell from PENDING to CHOICES")
    got = adapter.run(result.output, feeds, list(result.inputs), outputs, workdir=tmp_path)
    seconds = time.perf_counter() - started
    assert len(got) == len(expected)
    scale = max(1.0, *(float(np.max(np.abs(want))) for want in expected))
    rtol = LOOSER.get((runtime, model), (DEFAULT_RTOL, ""))[0]
    differences = []
    for name, have, want in zip(outputs, got, expected):
        have = np.asarray(have, dtype=np.float64).reshape(want.shape)
        differences.append(float(np.max(np.abs(have - want))))
        assert differences[-1] <= rtol * scale, f"{name}: max |{runtime} - keras| = {differences[-1]:.3g}"
    _record(runtime, model, status="pass", max_diff=max(differences), atol=rtol * scale, seconds=round(seconds, 3))


def _batch_of(inputs, feeds: list[np.ndarray], expected: list[np.ndarray]):
    """The feeds by input name and the expected outputs, cut to the batch the graph fixes (``--batch-size``)."""
    batches = {spec.shape[0] for spec in inputs if spec.shape and spec.shape[0] is not None}
    batch = batches.pop() if batches else None
    return ({spec.name: value[:batch] for spec, value in zip(inputs, feeds)}, [want[:batch] for want in expected])


# --------------------------------------------------------------------------- the C example, on its own


@pytest.mark.slow
@pytest.mark.subprocess
def test_the_c_example_builds_and_runs_a_frozen_model_as_keras_does(serving_models, frozen, tmp_path):
    """examples/c/freeze_run.c builds with cc against the wheel (README's command) and gives Keras' numbers."""
    _skip_if_unavailable("tf_c_api")
    import subprocess

    binary = tmp_path / "freeze_run"
    command = runtimes.c_build_command(runtimes.C_SOURCE, binary, runtimes.tensorflow_dir())
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith("TensorFlow 2.")
    built = serving_models["multi_io"]  # two inputs, one of them int32, two outputs
    result = frozen("multi_io", {})
    args = [str(binary), str(result.output)]
    for index, (spec, value) in enumerate(zip(result.inputs, built.feeds)):
        value.tofile(tmp_path / f"{index}.bin")
        args += ["--in", spec.name, str(value.dtype), ",".join(map(str, value.shape)), str(tmp_path / f"{index}.bin")]
    for spec in result.outputs:
        args += ["--out", spec.name]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    printed = runtimes.parse_c_output(done.stdout)
    assert list(printed) == [spec.name for spec in result.outputs]
    for spec, want in zip(result.outputs, built.expected):
        np.testing.assert_allclose(printed[spec.name], want, atol=1e-5, rtol=0)
    refused = subprocess.run([str(binary), str(result.output), "--out", "no_such_node"], capture_output=True, text=True)
    assert refused.returncode == 1 and "no node no_such_node" in refused.stderr


def test_the_readme_build_command_is_the_tested_one():
    """examples/c/README.md gives the compiler flags the test builds with."""
    text = (REPO / "examples" / "c" / "README.md").read_text(encoding="utf-8")
    for flag in ("-l:libtensorflow_cc.so.2", "-l:libtensorflow_framework.so.2", "-Wl,-rpath,", "-I", "-std=c11"):
        assert flag in text


# --------------------------------------------------------------------------- the documented matrix

BEGIN = "<!-- serving-matrix: generated by tools/serving_matrix.py -->"
END = "<!-- end serving-matrix -->"
_MEASURED = re.compile(r"^✓ (?:\?|[0-9][0-9.e+-]*)")


def documented_cells(text: str) -> dict[tuple[str, str], str]:
    """The cells of the generated matrix in docs/serving.md, the measured numbers replaced by ``{diff}``."""
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    rows = [line for line in block.splitlines() if line.startswith("| `")]
    cells = {}
    for row in rows:
        parts = [part.strip() for part in row.strip().strip("|").split(" | ")]
        model = parts[0].split("`")[1]
        for runtime, cell in zip(runtimes.RUNTIMES, parts[1:]):
            cells[runtime, model] = _MEASURED.sub("✓ {diff}", cell)
    return cells


def test_the_documented_matrix_is_the_tested_one():
    """docs/serving.md claims exactly the cells CHOICES and IMPOSSIBLE say (python tools/serving_matrix.py)."""
    cells = documented_cells(SERVING_DOC.read_text(encoding="utf-8"))
    expected = {(runtime, model): claim(runtime, model) for model in MODELS for runtime in runtimes.RUNTIMES}
    stale = {key: (cells.get(key), want) for key, want in expected.items() if cells.get(key) != want}
    assert not stale, f"docs/serving.md is stale (python tools/serving_matrix.py): {stale}"
