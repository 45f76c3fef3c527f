"""Shared fixtures and the one copy of each test helper.

Tiny real Keras models built with tf_keras and saved as .h5; running the
command line in-process and reading what it printed; the installed console
script. Nothing here imports TensorFlow at import time: the TensorFlow-free
tests (test_kerasfile.py, test_graphdef.py) load this file too.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

#: The shared corpus of real third-party .h5 files (read-only, outside the repo).
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
#: Skip a test (or, as ``pytestmark``, a module) when the corpus is absent.
needs_corpus = pytest.mark.skipif(not (CORPUS / "MANIFEST.md").is_file(),
                                  reason=f"the shared corpus of real .h5 files is absent ({CORPUS})")

#: The console script pip installed next to this interpreter (what shutil.which finds in the venv).
FREEZEKERAS = Path(sys.executable).parent / "freezekeras"
needs_script = pytest.mark.skipif(
    not FREEZEKERAS.is_file(),
    reason=f"freezekeras is not installed as a console script next to {sys.executable}",
)


def _tf_keras():
    import tf_keras

    return tf_keras


def build_dense(path: Path) -> Path:
    """Sequential Dense + Dropout + softmax, trained a few steps."""
    import numpy as np

    keras = _tf_keras()
    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.layers.Dense(16, activation="relu", input_shape=(8,), name="hidden"),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(3, activation="softmax", name="predictions"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
    model.fit(x, (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0), epochs=2, verbose=0)
    model.save(path)
    return path


def build_multi_io(path: Path) -> Path:
    """Functional model: a float and an int (Embedding) input, two outputs."""
    keras = _tf_keras()
    keras.utils.set_random_seed(2)
    features = keras.Input((6,), name="features")
    tokens = keras.Input((5,), dtype="int32", name="tokens")
    embedded = keras.layers.Flatten()(keras.layers.Embedding(7, 4)(tokens))
    joined = keras.layers.Concatenate()([keras.layers.Dense(8, activation="tanh")(features), embedded])
    score = keras.layers.Dense(1, activation="sigmoid", name="score")(joined)
    classes = keras.layers.Dense(4, activation="softmax", name="classes")(joined)
    keras.Model([features, tokens], [score, classes]).save(path)
    return path


def build_conv_bn(path: Path) -> Path:
    """Conv2D + BatchNormalization (moving statistics far from 0/1) + Dropout."""
    import numpy as np

    keras = _tf_keras()
    keras.utils.set_random_seed(3)
    model = keras.Sequential([
        keras.layers.Conv2D(4, 3, input_shape=(12, 12, 3), name="conv"),
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.Activation("relu"),
        keras.layers.Dropout(0.3),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(2, name="logits"),
    ])
    gamma, beta, _, _ = model.get_layer("bn").get_weights()
    rng = np.random.default_rng(3)
    model.get_layer("bn").set_weights([
        gamma * 1.5, beta + 0.2, rng.normal(2.0, 0.5, size=4).astype("float32"),
        rng.uniform(3.0, 5.0, size=4).astype("float32"),
    ])
    model.save(path)
    return path


def build_stacked_lstm(path: Path) -> Path:
    """Two stacked LSTMs (TensorFlow While loops in the graph) and a Dense head."""
    keras = _tf_keras()
    keras.utils.set_random_seed(4)
    model = keras.Sequential([
        keras.layers.LSTM(8, return_sequences=True, input_shape=(None, 4), name="lstm_a"),
        keras.layers.LSTM(5, name="lstm_b"),
        keras.layers.Dense(2, name="head"),
    ])
    model.save(path)
    return path


def build_nested(path: Path) -> Path:
    """A Sequential feature extractor used as a layer inside a functional model."""
    keras = _tf_keras()
    keras.utils.set_random_seed(5)
    inner = keras.Sequential([
        keras.layers.Dense(6, activation="relu", input_shape=(4,)),
        keras.layers.BatchNormalization(),
    ], name="inner")
    image = keras.Input((4,), name="image")
    out = keras.layers.Dense(3, activation="softmax", name="probs")(inner(image))
    keras.Model(image, out, name="outer").save(path)
    return path


#: A custom layer and a custom activation, as a user keeps them in a .py file.
CUSTOM_CODE = textwrap.dedent('''
    import tensorflow as tf
    import tf_keras


    class Scale(tf_keras.layers.Layer):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, inputs):
            return inputs * self.factor

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}


    def soft_clip(x):
        return 3.0 * tf.tanh(x / 3.0)
''')


def custom_namespace() -> dict:
    """The objects CUSTOM_CODE defines (Scale, soft_clip), run in this process."""
    namespace: dict = {}
    exec(compile(CUSTOM_CODE, "my_layers.py", "exec"), namespace)
    return namespace


BUILDERS = {
    "dense": build_dense,
    "multi_io": build_multi_io,
    "conv_bn": build_conv_bn,
    "stacked_lstm": build_stacked_lstm,
    "nested": build_nested,
}


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A folder holding one .h5 per entry of BUILDERS, built once per test session."""
    folder = tmp_path_factory.mktemp("models")
    for name, build in BUILDERS.items():
        build(folder / f"{name}.h5")
    return folder


@pytest.fixture
def dense_h5(model_dir, tmp_path) -> Path:
    """A private copy of the Sequential Dense model in this test's tmp_path."""
    target = tmp_path / "dense.h5"
    target.write_bytes((model_dir / "dense.h5").read_bytes())
    return target


@pytest.fixture(scope="session")
def keras3_archive(tmp_path_factory) -> Path:
    """A real Keras 3 ``.keras`` archive, built in a subprocess with Keras 3 (package ``keras``)."""
    folder = tmp_path_factory.mktemp("keras3")
    code = textwrap.dedent("""
        import keras
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        model.save("m.keras")
        model.save("m3.h5")  # Keras 3's legacy HDF5: a config tf-keras cannot rebuild
    """)
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "0", "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        done = subprocess.run([sys.executable, "-c", code], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot build a Keras 3 archive here: {exc}")
    archive = folder / "m.keras"
    if done.returncode != 0 or not archive.is_file():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"cannot build a Keras 3 archive here (Keras 3 failed: {last})")
    return archive


def keras_predict(path: Path, inputs: list) -> list:
    """Keras' own predictions for ``inputs``: the model loaded eagerly, as a user would."""
    keras = _tf_keras()
    model = keras.models.load_model(path, compile=False)
    outputs = model.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0)
    return outputs if isinstance(outputs, list) else [outputs]


def assert_verified(result, bound: float = 1e-5) -> None:
    """freezekeras' verification fed every input, compared every output, and measured at most ``bound``.

    ``assert result.verification.passed`` after ``convert()`` cannot fail: convert
    raises VerificationError instead of returning a failed verification. This
    can: it checks what was compared, and holds the difference to ``bound``,
    ten times tighter than the default tolerance (1e-4 times the outputs' scale).
    """
    verification = result.verification
    assert verification is not None, "convert ran without verification"
    assert sorted(verification.input_shapes) == sorted(spec.name for spec in result.inputs)
    assert sorted(verification.per_output) == sorted(spec.name for spec in result.outputs)
    assert 0 <= verification.max_abs_diff <= bound, f"{verification.per_output} over {bound}"


def naive_freeze(path: Path):
    """Freeze ``path`` the way the widely copied ``freeze_session`` recipe does.

    The learning phase is set only after the model is built, so Dropout and
    BatchNormalization keep their training switches. Returns the GraphDef.
    """
    import warnings

    import tensorflow as tf
    import tf_keras

    from freezekeras.tf.freezing import freeze_graph
    from freezekeras.tf.internals import layer_base_classes_restored  # keep later tests' eager models intact

    graph = tf.Graph()
    with layer_base_classes_restored(), graph.as_default(), tf.compat.v1.Session(graph=graph) as session, \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")  # set_learning_phase is deprecated: that is the point
        model = tf_keras.models.load_model(path, compile=False)
        tf_keras.backend.set_learning_phase(0)  # too late: the layers are built
        return freeze_graph(session, graph, [model.outputs[0].op.name]), graph.as_graph_def()


def own_inputs(specs, *, seed: int, batch: int = 3, free_dim: int = 24, int_high: int = 2) -> list:
    """Inputs a test chooses itself (not freezekeras' verification inputs).

    Normal floats; integers below ``int_high`` (valid for any Embedding);
    unknown batch dimension ``batch``, other unknown dimensions ``free_dim``.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    values = []
    for spec in specs:
        shape = [dim if dim is not None else (batch if i == 0 else free_dim) for i, dim in enumerate(spec.shape)]
        if spec.dtype.startswith(("int", "uint")):
            values.append(rng.integers(0, int_high, size=shape).astype(spec.dtype))
        else:
            values.append(rng.normal(size=shape).astype(spec.dtype))
    return values


def run_frozen(pb: Path, feeds: dict, fetches: list[str]) -> list:
    """Load a frozen .pb with plain TensorFlow into a fresh graph and run it."""
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(pb.read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        return session.run([_tensor(name) for name in fetches],
                           {_tensor(name): value for name, value in feeds.items()})


def _tensor(name: str) -> str:
    return name if ":" in name else f"{name}:0"


# --------------------------------------------------------------------------- more small models


def build_weights_only(path: Path) -> Path:
    """``save_weights`` of a Sequential Dense model: an .h5 with weights and no architecture."""
    keras = _tf_keras()
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="out")]).save_weights(path)
    return path


def build_lambda(path: Path, function: Callable = lambda x: x * 2.0, name: str = "my_lambda") -> Path:
    """A Sequential model with one Lambda layer (Python bytecode in the file) before a Dense layer."""
    keras = _tf_keras()
    keras.Sequential([keras.Input((3,)), keras.layers.Lambda(function, name=name),
                      keras.layers.Dense(2, name="out")]).save(path)
    return path


def build_custom_layer(path: Path) -> Path:
    """A Sequential model with CUSTOM_CODE's ``Scale`` layer: loads only with the custom objects."""
    keras = _tf_keras()
    scale = custom_namespace()["Scale"]
    keras.Sequential([keras.Input((3,)), scale(name="scale"), keras.layers.Dense(2, name="out")]).save(path)
    return path


def noise_function() -> Callable:
    """``x + uniform noise``, for a Lambda: Keras and the frozen graph draw different numbers.

    Lambda bytecode names ``tf`` as a global (Keras' loader supplies it); the
    function is compiled here with ``tf`` in its globals, so that no test module
    imports TensorFlow when it is collected.
    """
    import tensorflow as tf

    namespace: dict = {"tf": tf}
    exec(compile("noise = lambda x: x + tf.random.uniform(tf.shape(x))", "noise.py", "exec"), namespace)
    return namespace["noise"]


def randomize(model, seed: int) -> None:
    """Non-trivial weights everywhere (biases, BN statistics included): uniform 0.5-1.5 for variances."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") if "variance" in v.name
                           else rng.normal(0, 0.4, w.shape).astype("float32")
                           for v, w in zip(layer.weights, layer.get_weights())])


def _keras1_weights(layer) -> list:
    """A Keras 2 layer's weights, named and laid out as Keras 1.2 saved them: ``[(name, array), ...]``."""
    import numpy as np

    name, weights, kind = layer.name, layer.get_weights(), type(layer).__name__
    if kind == "LSTM":  # Keras 2: [i, f, c, o] concatenated; Keras 1: W_/U_/b_ per gate, order i, c, f, o
        kernel, recurrent, bias = (np.split(w, 4, axis=-1) for w in weights)
        order = {"i": 0, "c": 2, "f": 1, "o": 3}
        return [(f"{name}_{part}_{gate}", arrays[order[gate]])
                for gate in "icfo" for part, arrays in zip("WUb", (kernel, recurrent, bias))]
    if kind == "GRU":  # [z, r, h]
        kernel, recurrent, bias = (np.split(w, 3, axis=-1) for w in weights)
        return [(f"{name}_{part}_{gate}", arrays[index])
                for index, gate in enumerate("zrh") for part, arrays in zip("WUb", (kernel, recurrent, bias))]
    if kind == "Conv1D":  # Keras 1.2: (filter_length, 1, input_dim, nb_filter)
        return [(f"{name}_W", weights[0][:, None]), (f"{name}_b", weights[1])]
    if kind == "BatchNormalization":
        return [(f"{name}_{part}", w) for part, w in zip(("gamma", "beta", "running_mean", "running_std"), weights)]
    if kind == "Bidirectional":
        return [(f"forward_{n}", w) for n, w in _keras1_weights(layer.forward_layer)] + \
               [(f"backward_{n}", w) for n, w in _keras1_weights(layer.backward_layer)]
    if kind == "TimeDistributed":
        return [(f"{name}_{part}", w) for part, w in zip("Wb", weights)]
    return [(f"{name}_{part}", w) for part, w in zip("WUb" if kind == "SimpleRNN" else "Wb", weights)]


def write_keras1(path, model, config: dict) -> None:
    """Save ``model``'s weights with a Keras 1 ``config``, as Keras 1.2.2's ``model.save`` did."""
    import h5py

    input_layer = _tf_keras().layers.InputLayer
    with h5py.File(path, "w") as handle:
        handle.attrs["keras_version"] = b"1.2.2"
        handle.attrs["model_config"] = json.dumps(config).encode()
        group = handle.create_group("model_weights")
        names = [layer.name for layer in model.layers if not isinstance(layer, input_layer)]
        group.attrs["layer_names"] = [name.encode() for name in names]
        for layer in model.layers:
            if isinstance(layer, input_layer):
                continue
            weights = _keras1_weights(layer) if layer.weights else []
            layer_group = group.create_group(layer.name)
            layer_group.attrs["weight_names"] = [name.encode() for name, _ in weights]
            for name, value in weights:
                layer_group.create_dataset(name, data=value)


# --------------------------------------------------------------------------- the command line and its files

#: How every error line and warning line of the command line starts.
PREFIX = "freezekeras: error: "
WARNING = "freezekeras: warning: "


def run_cli(*args: str | os.PathLike):
    """Run ``freezekeras ARGS`` in-process with Click's runner; stdout and stderr stay separate."""
    from click.testing import CliRunner

    from freezekeras.cli.commands import main

    return CliRunner().invoke(main, [str(arg) for arg in args])


def describe(result) -> str:
    """A CliRunner result, for an assertion message."""
    return f"exit {result.exit_code}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def user_env() -> dict[str, str]:
    """This environment without the variables conftest sets: what a user's shell gives the command."""
    return {k: v for k, v in os.environ.items() if k not in {"TF_CPP_MIN_LOG_LEVEL", "TF_USE_LEGACY_KERAS"}}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(folder: Path) -> dict[str, str | None]:
    """Every entry under ``folder``: relative path -> content hash (``None`` for folders)."""
    return {
        str(entry.relative_to(folder)): (sha256(entry) if entry.is_file() else None)
        for entry in sorted(folder.rglob("*"))
    }


def assert_one_error_line(result, code: int, file: Path | str, *phrases: str) -> str:
    """The exit code, and exactly one ``freezekeras: error:`` line naming ``file`` and ``phrases``."""
    assert result.exit_code == code, describe(result)
    assert isinstance(result.exception, SystemExit), describe(result)
    assert "Traceback" not in result.output, describe(result)
    assert "Traceback" not in result.stderr, describe(result)
    assert result.stdout == "", describe(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, describe(result)
    line = lines[0]
    assert line.startswith(PREFIX), describe(result)
    assert str(file) in line, describe(result)
    for phrase in phrases:
        assert phrase in line, f"{phrase!r} not in {line!r}"
    return line


def assert_nothing_changed(before: dict, folder: Path) -> None:
    """No file appeared (output or ``.*.tmp``), vanished or changed under ``folder``."""
    after = snapshot(folder)
    assert sorted(set(after) - set(before)) == [], "files appeared"
    assert after == before
    assert not [name for name in after if Path(name).name.startswith(".") and name.endswith(".tmp")]


def files_under(folder: Path) -> list[str]:
    """The files under ``folder``, as sorted relative paths."""
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def copy(source: Path, target: Path) -> Path:
    """Copy a file, creating the target's folders; returns ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


_IMPORTED = """
import json, sys
from freezekeras.cli.commands import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def modules_imported(*args: str) -> list[str]:
    """The modules a fresh interpreter has imported after running ``freezekeras ARGS`` (which must succeed)."""
    done = subprocess.run([sys.executable, "-c", _IMPORTED, *args], capture_output=True, text=True, timeout=120)
    report = json.loads(done.stderr.splitlines()[-1])
    assert report["code"] == 0, done.stderr
    return report["modules"]


def modules_under(modules: list[str], *prefixes: str) -> list[str]:
    """The ``modules`` that are one of the ``prefixes`` packages or inside them."""
    return [name for name in modules if any(name == p or name.startswith(p + ".") for p in prefixes)]


def run_with_stderr_on_a_terminal(command: list[str]) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run ``command`` with stderr a pseudo-terminal (stdout a pipe): the process and the lines it wrote there."""
    import pty

    primary, secondary = pty.openpty()
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=secondary, env=user_env(), timeout=300)
        os.close(secondary)
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: the terminal has no writer left
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(primary)
    return done, b"".join(chunks).decode().splitlines()
