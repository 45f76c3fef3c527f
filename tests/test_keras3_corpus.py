"""The shared corpus of real Keras 3 files (../shared/corpus/keras3, 17 files from GitHub): every one converts.

Each file is converted once (module fixture) on the function route and must
verify; its inputs and outputs are the layers MANIFEST.md lists; the written
graph is lint clean and reproduces the model's own ``predict`` (Keras 3.15's
``load_model``) on inputs chosen here. The three files with custom layers get
definitions written below from the MANIFEST's description of each layer, and
without them are refused in a fresh ``freezekeras`` process, naming the class
and ``--custom-objects``. ``inspect`` names every file's nodes as ``convert``
wrote them, without TensorFlow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import CORPUS, FREEZEKERAS, PREFIX, needs_script, run_frozen

import freezekeras
from freezekeras.errors import EXIT_MODEL_ERROR, FreezeKerasError
from freezekeras.graphdef.lint import ERROR, lint
from freezekeras.graphdef.reading import read_graph_def

KERAS3_CORPUS = CORPUS / "keras3"
pytestmark = [
    pytest.mark.corpus,
    pytest.mark.slow,  # the module fixture converts all 17 files (about 15 s)
    pytest.mark.skipif(not (KERAS3_CORPUS / "MANIFEST.md").is_file(),
                       reason=f"the shared corpus of Keras 3 files is absent ({KERAS3_CORPUS})"),
]

# --------------------------------------------------------------------------- custom layers, from MANIFEST.md

#: "weights W (features, 1) and b (steps, 1); output = sum over the time axis of x * softmax(tanh(x W + b), over time)"
ATTENTION_LAYER = textwrap.dedent('''
    import keras


    class AttentionLayer(keras.layers.Layer):
        def build(self, input_shape):
            self.W = self.add_weight(name="att_weight", shape=(input_shape[-1], 1), initializer="normal")
            self.b = self.add_weight(name="att_bias", shape=(input_shape[1], 1), initializer="zeros")

        def call(self, x):
            scores = keras.ops.tanh(keras.ops.matmul(x, self.W) + self.b)
            return keras.ops.sum(x * keras.ops.softmax(scores, axis=1), axis=1)

        def compute_output_shape(self, input_shape):
            return (input_shape[0], input_shape[-1])
''')

#: "no weights: sum over axis 1 of abs(a - b) for its two inputs"
L1_DISTANCE = textwrap.dedent('''
    import keras


    class L1Distance(keras.layers.Layer):
        def call(self, inputs):
            a, b = inputs
            return keras.ops.sum(keras.ops.abs(a - b), axis=1)
''')

#: "registered custom layer Custom>TransformerBlock(embed_dim, num_heads): MultiHeadAttention(num_heads,
#: key_dim=embed_dim) on (x, x); LayerNormalization(epsilon 1e-6) of x + attention; a feed-forward of
#: Dense(embed_dim, relu) then Dense(embed_dim); LayerNormalization(epsilon 1e-6) of the sum."
#: The attribute names are the object paths of the inner layers in the weights file (TRANSFORMER_PATHS).
TRANSFORMER_BLOCK = textwrap.dedent('''
    import keras


    @keras.saving.register_keras_serializable(package="Custom")
    class TransformerBlock(keras.layers.Layer):
        def __init__(self, embed_dim, num_heads, **kwargs):
            super().__init__(**kwargs)
            self.embed_dim = embed_dim
            self.num_heads = num_heads
            self.att = keras.layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
            self.ffn = keras.Sequential([keras.layers.Dense(embed_dim, activation="relu"),
                                         keras.layers.Dense(embed_dim)])
            self.layernorm1 = keras.layers.LayerNormalization(epsilon=1e-6)
            self.layernorm2 = keras.layers.LayerNormalization(epsilon=1e-6)

        def call(self, x, training=None):
            attended = self.layernorm1(x + self.att(x, x, training=training))
            return self.layernorm2(attended + self.ffn(attended, training=training))

        def get_config(self):
            return {**super().get_config(), "embed_dim": self.embed_dim, "num_heads": self.num_heads}
''')
TRANSFORMER_PATHS = ("att", "ffn", "layernorm1", "layernorm2")

#: Corpus file -> (the custom class, its definition).
CUSTOM = {
    "sureshiitp-intent_bilstm_model.keras": ("AttentionLayer", ATTENTION_LAYER),
    "srthk03-speaker_siamese_model.keras": ("L1Distance", L1_DISTANCE),
    "tmp122-arrhythmia_transformer_model.keras": ("TransformerBlock", TRANSFORMER_BLOCK),
}
#: Keras 3.15 cannot load this file itself (a Keras 3.5 RandomRotation takes value_range, 3.15's does not):
#: the model's own predictions come from the file with that one argument dropped.
VALUE_RANGE_FILE = "ssarawagi05-mnist_improved_mnist_cnn_model.keras"


def manifest() -> dict[str, tuple[list[str], str]]:
    """File -> (input layers, output layer), from MANIFEST.md's table."""
    rows = {}
    for line in (KERAS3_CORPUS / "MANIFEST.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0].endswith((".keras", ".h5")):
            rows[cells[0]] = ([part.split()[0] for part in cells[4].split(";")], cells[5])
    return rows


FILES = sorted(manifest()) if (KERAS3_CORPUS / "MANIFEST.md").is_file() else []


@dataclass
class Converted:
    """One corpus file converted: the result (or the error), the graph, seconds, and the model's own check."""

    path: Path
    pb: Path
    result: object = None
    error: BaseException | None = None
    seconds: float = 0.0


@pytest.fixture(scope="module")
def definitions(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("keras3_custom_layers")
    paths = {}
    for name, (cls, code) in CUSTOM.items():
        paths[name] = folder / f"{cls.lower()}.py"
        paths[name].write_text(code)
    return paths


@pytest.fixture(scope="module")
def converted(definitions, tmp_path_factory) -> dict[str, Converted]:
    """Every corpus file converted once, with its custom layers' definition where it needs one."""
    out = tmp_path_factory.mktemp("keras3_corpus_pb")
    done = {}
    for name in FILES:
        item = Converted(KERAS3_CORPUS / name, out / f"{name}.pb")
        start = time.perf_counter()
        try:
            item.result = freezekeras.convert(item.path, freezekeras.ConvertOptions(
                output=item.pb, custom_objects=definitions.get(name)))
        except FreezeKerasError as exc:
            item.error = exc
        item.seconds = time.perf_counter() - start
        done[name] = item
    return done


def test_the_corpus_is_the_manifests_17_files():
    on_disk = sorted(p.name for p in KERAS3_CORPUS.iterdir() if p.suffix in {".keras", ".h5"})
    assert on_disk == FILES and len(FILES) == 17


def test_the_transformer_definition_matches_the_weights_files_object_paths():
    """TransformerBlock's attributes are named as its inner layers are stored (the MANIFEST gives no names)."""
    import h5py

    with zipfile.ZipFile(KERAS3_CORPUS / "tmp122-arrhythmia_transformer_model.keras") as archive, \
            h5py.File(archive.open("model.weights.h5")) as weights:
        stored = []
        weights.visit(stored.append)
    assert {path.split("/")[2] for path in stored if path.startswith("layers/transformer_block/")
            and path.count("/") >= 2} >= set(TRANSFORMER_PATHS)


# --------------------------------------------------------------------------- the model's own predictions

def _own_model(keras, name: str, definitions: dict[str, Path], folder: Path):
    """The model as Keras 3.15 loads it (with the custom layer's definition) to predict with."""
    namespace: dict = {}
    if name in definitions:
        exec(compile(definitions[name].read_text(), str(definitions[name]), "exec"), namespace)
    objects = {CUSTOM[name][0]: namespace[CUSTOM[name][0]]} if name in definitions else {}
    path = KERAS3_CORPUS / name
    if name == VALUE_RANGE_FILE:
        path = _without_value_range(path, folder / name)
    return keras.saving.load_model(path, compile=False, custom_objects=objects)


def _without_value_range(path: Path, target: Path) -> Path:
    """A copy of the archive whose config drops every ``value_range`` argument."""
    with zipfile.ZipFile(path) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            data = old.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                _drop_key(config, "value_range")
                data = json.dumps(config).encode()
            new.writestr(item, data)
    return target


def _drop_key(node, key: str) -> None:
    if isinstance(node, dict):
        node.pop(key, None)
        for value in node.values():
            _drop_key(value, key)
    elif isinstance(node, list):
        for value in node:
            _drop_key(value, key)


def _own_inputs(keras, model, seed: int) -> list[np.ndarray]:
    """Normal floats; token ids (1..vocabulary-1, trailing zeros) where an Embedding reads the input."""
    rng = np.random.default_rng(seed)
    vocabularies = [layer.input_dim for layer in _all_layers(model) if isinstance(layer, keras.layers.Embedding)]
    values = []
    for tensor in model.inputs:
        shape = (3, *tensor.shape[1:])
        if vocabularies:
            tokens = rng.integers(1, min(vocabularies), size=shape)
            tokens[:, -4:] = 0
            values.append(tokens.astype(tensor.dtype))
        else:
            values.append(rng.normal(size=shape).astype(tensor.dtype))
    return values


def _all_layers(model) -> list:
    found = []
    for layer in getattr(model, "layers", []):
        found += [layer, *_all_layers(layer)]
        found += [inner for inner in (getattr(layer, "layer", None), getattr(layer, "forward_layer", None))
                  if inner is not None]
    return found


@pytest.mark.parametrize("name", FILES)
def test_a_corpus_file_converts_and_reproduces_its_models_predictions(converted, definitions, name, tmp_path):
    item = converted[name]
    if item.error is not None:
        raise item.error
    result = item.result
    inputs, output = manifest()[name]
    assert result.route == "function", result.route_reason
    assert [spec.name for spec in result.inputs] == inputs
    assert [spec.name for spec in result.outputs] == [output]
    assert result.verification.passed
    graph_def = read_graph_def(item.pb)
    assert [finding.line for finding in lint(graph_def) if finding.severity == ERROR] == []

    os.environ["KERAS_BACKEND"] = "tensorflow"  # before the first import of Keras 3 in this process
    import keras

    model = _own_model(keras, name, definitions, tmp_path)
    feeds = _own_inputs(keras, model, seed=5)
    expected = model.predict(feeds if len(feeds) > 1 else feeds[0], verbose=0)
    got = run_frozen(item.pb, dict(zip(inputs, feeds)), [output])[0]
    assert got.shape == expected.shape
    difference = float(np.max(np.abs(got.astype("float64") - expected)))
    scale = max(1.0, float(np.max(np.abs(expected))))
    assert difference <= 1e-5 * scale, f"frozen graph vs Keras' predict: {difference} (outputs up to {scale})"
    print(f"\nROW | {name} | {result.route} | {inputs} | {[output]} | {difference:.3g} "
          f"(verification {result.verification.max_abs_diff:.3g}) | {item.seconds:.2f}")


# --------------------------------------------------------------------------- inspect, refusals, determinism

INSPECT_SCRIPT = textwrap.dedent('''
    import json, sys
    import freezekeras

    names = {}
    for label, path, pb in json.loads(sys.argv[1]):
        model, graph = freezekeras.inspect(path), freezekeras.inspect(pb)
        names[label] = [[s.node for s in model.inputs], [s.node for s in model.outputs],
                        [s.name for s in graph.inputs], [s.name for s in graph.outputs]]
    heavy = sorted(name for name in ("tensorflow", "keras", "tf_keras", "jax") if name in sys.modules)
    print(json.dumps({"names": names, "imported": heavy}))
''')


@pytest.mark.subprocess
def test_inspect_predicts_the_names_convert_writes_without_tensorflow(converted):
    """In a fresh interpreter: inspect's ``node`` for each file, and inspect of the written graph, are convert's names."""
    jobs = [[name, str(item.path), str(item.pb)] for name, item in converted.items() if item.error is None]
    assert len(jobs) == len(FILES), "some corpus files did not convert"
    done = subprocess.run([sys.executable, "-c", INSPECT_SCRIPT, json.dumps(jobs)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["imported"] == []
    for name, item in converted.items():
        written = [[spec.name for spec in item.result.inputs], [spec.name for spec in item.result.outputs]]
        assert found["names"][name] == written + written, name


@needs_script
@pytest.mark.subprocess
def test_custom_layers_without_definitions_are_refused_in_a_fresh_process(converted, tmp_path):
    """``freezekeras convert`` on the three files and a plain one: each custom file refused, naming the class and
    --custom-objects, nothing written for it; the plain one, second in the batch, gives the same bytes as in-process.
    """
    plain = "mleye404-autompg_model.keras"
    models = [KERAS3_CORPUS / name for name in sorted(CUSTOM)]
    models.insert(1, KERAS3_CORPUS / plain)
    out = tmp_path / "out"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([str(FREEZEKERAS), "convert", *map(str, models), "-o", f"{out}/", "--json"],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == EXIT_MODEL_ERROR, done.stderr
    items = {Path(item["model"]).name: item for item in json.loads(done.stdout)}
    errors = [line for line in done.stderr.splitlines() if line.startswith(PREFIX)]
    assert len(errors) == 3, done.stderr
    for name, (cls, _) in CUSTOM.items():
        assert items[name]["status"] == "failed" and items[name]["exit_code"] == EXIT_MODEL_ERROR
        assert f"class '{cls}'" in items[name]["error"] and "--custom-objects" in items[name]["error"], items[name]
        assert any(str(KERAS3_CORPUS / name) in line and cls in line and "--custom-objects" in line
                   for line in errors), name
    assert sorted(p.name for p in out.iterdir()) == [f"{Path(plain).stem}.pb"]
    assert items[plain]["route"] == "function"
    assert (out / f"{Path(plain).stem}.pb").read_bytes() == converted[plain].pb.read_bytes()


def test_converting_again_gives_the_same_bytes(converted, definitions, tmp_path):
    """A second conversion in the same process writes the bytes of the first (function names, node order)."""
    for name in ("tmp122-arrhythmia_transformer_model.keras", "alessio1599-ecg_rnn_model_exam.keras",
                 "vasuki2799-aapl_best_model.h5"):
        again = tmp_path / f"{name}.pb"
        freezekeras.convert(KERAS3_CORPUS / name, freezekeras.ConvertOptions(
            output=again, custom_objects=definitions.get(name), verify=False))
        assert again.read_bytes() == converted[name].pb.read_bytes(), name
