"""Shared fixtures: tiny real Keras models, built with tf_keras and saved as .h5."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

#: The shared corpus of real third-party .h5 files (read-only, outside the repo).
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


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
