"""One small adapter per serving runtime, all with the same two functions (not a test file).

``available() -> str | None``: ``None`` when the runtime can run here, else why not (the test is
skipped with it). ``run(pb, feeds, inputs, outputs, *, workdir) -> list[np.ndarray]``: load the
frozen graph ``pb`` the way a user of that runtime would, feed ``feeds`` (arrays by input node
name, as freezekeras printed them), and return the outputs in the order of ``outputs`` (node names).
``inputs`` are the graph's inputs (anything with ``name``, ``dtype`` and ``shape``, e.g. freezekeras'
``TensorSpec``). Nothing here imports TensorFlow or a runtime at import time.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

#: The runtimes, in the matrix's column order.
RUNTIMES = ("tensorflow", "tf_c_api", "opencv", "onnxruntime", "openvino", "tflite")
#: How the docs name each runtime.
TITLES = {
    "tensorflow": "TensorFlow",
    "tf_c_api": "TF C API",
    "opencv": "OpenCV dnn",
    "onnxruntime": "tf2onnx + onnxruntime",
    "openvino": "OpenVINO",
    "tflite": "TFLite (LiteRT)",
}
REPO = Path(__file__).resolve().parents[1]
C_SOURCE = REPO / "examples" / "c" / "freeze_run.c"
#: The ONNX opset tf2onnx writes.
OPSET = 17


def tensor(name: str) -> str:
    """A node name as a tensor name (``point`` -> ``point:0``)."""
    return name if ":" in name else f"{name}:0"


def _missing(*modules: str) -> str | None:
    for module in modules:
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install -e '.[clients]')"
    return None


def _read_graph_def(pb: Path):
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(pb.read_bytes())
    return graph_def


def _by_name(names: list[str], wanted: list[str], values: list[Any], what: str) -> list[Any]:
    """Reorder ``values`` (named ``names`` by a runtime) into the order of ``wanted``.

    A runtime names a tensor ``node``, ``node:0`` or ``serving_default_node:0``; the match takes the
    first of those forms found.
    """
    ordered = []
    for want in wanted:
        forms = [want, tensor(want), want.split(":")[0]]
        hit = next((i for form in forms for i, name in enumerate(names) if name == form), None)
        if hit is None:
            raise KeyError(f"{what}: no tensor named {want!r} among {names}")
        ordered.append(values[hit])
    return ordered


# --------------------------------------------------------------------------- TensorFlow (Python)


class tensorflow:  # noqa: N801 - one namespace per runtime, named as the matrix names it
    """tf.import_graph_def into a fresh graph and a tf.compat.v1.Session."""

    @staticmethod
    def available() -> str | None:
        return _missing("tensorflow")

    @staticmethod
    def run(pb: Path, feeds: dict[str, np.ndarray], inputs, outputs: list[str], *, workdir: Path) -> list[np.ndarray]:
        import tensorflow as tf

        graph = tf.Graph()
        with graph.as_default():
            tf.import_graph_def(_read_graph_def(pb), name="")
        with tf.compat.v1.Session(graph=graph) as session:
            return session.run([tensor(name) for name in outputs], {tensor(k): v for k, v in feeds.items()})


# --------------------------------------------------------------------------- TensorFlow C API (examples/c)


def tensorflow_dir() -> Path | None:
    """The installed tensorflow package (headers in include/, libtensorflow_*.so.2), without importing it."""
    spec = importlib.util.find_spec("tensorflow")
    return Path(spec.origin).parent if spec and spec.origin else None


def c_build_command(source: Path, binary: Path, tf_dir: Path) -> list[str]:
    """The command examples/c/README.md gives: cc against the wheel's headers and libraries."""
    return [shutil.which("cc") or "cc", "-O2", "-std=c11", "-o", str(binary), str(source), f"-I{tf_dir / 'include'}",
            f"-L{tf_dir}", "-l:libtensorflow_cc.so.2", "-l:libtensorflow_framework.so.2", f"-Wl,-rpath,{tf_dir}"]


_C_BINARY: Path | None = None


def c_binary() -> Path:
    """examples/c/freeze_run.c built once per process (in a temporary folder)."""
    global _C_BINARY
    if _C_BINARY is None:
        binary = Path(tempfile.mkdtemp(prefix="freeze_run-")) / "freeze_run"
        done = subprocess.run(c_build_command(C_SOURCE, binary, tensorflow_dir()), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"building {C_SOURCE.name} failed:\n{done.stderr}")
        _C_BINARY = binary
    return _C_BINARY


def parse_c_output(text: str) -> dict[str, np.ndarray]:
    """freeze_run's stdout: ``output NAME DTYPE D0,D1,...`` then one value per line, per output."""
    results: dict[str, np.ndarray] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        _, name, dtype, dims = lines[i].split(" ")
        shape = tuple(int(d) for d in dims.split(",")) if dims else ()
        count = int(np.prod(shape)) if shape else 1
        values = np.array([float(v) for v in lines[i + 1:i + 1 + count]])
        results[name] = values.astype(dtype).reshape(shape)
        i += 1 + count
    return results


class tf_c_api:  # noqa: N801
    """examples/c/freeze_run on the TensorFlow C API of the installed wheel, run as a subprocess."""

    @staticmethod
    def available() -> str | None:
        tf_dir = tensorflow_dir()
        if tf_dir is None:
            return "tensorflow is not installed"
        if not (tf_dir / "include" / "tensorflow" / "c" / "c_api.h").is_file():
            return f"the tensorflow wheel has no C headers ({tf_dir / 'include'})"
        if not (tf_dir / "libtensorflow_cc.so.2").is_file():
            return f"the tensorflow wheel has no libtensorflow_cc.so.2 ({tf_dir})"
        if shutil.which("cc") is None:
            return "no C compiler (cc) on PATH"
        return None

    @staticmethod
    def run(pb: Path, feeds: dict[str, np.ndarray], inputs, outputs: list[str], *, workdir: Path) -> list[np.ndarray]:
        command = [str(c_binary()), str(pb)]
        for index, (name, value) in enumerate(feeds.items()):
            path = workdir / f"input{index}.bin"
            np.ascontiguousarray(value).tofile(path)
            command += ["--in", name, str(value.dtype), ",".join(map(str, value.shape)), str(path)]
        for name in outputs:
            command += ["--out", name]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"freeze_run exited with {done.returncode}: {done.stderr.strip().splitlines()[-1:]}")
        results = parse_c_output(done.stdout)
        return [results[name] for name in outputs]


# --------------------------------------------------------------------------- OpenCV dnn


def _nchw_graph(pb: Path) -> bool:
    """Whether the graph's convolutions are NCHW (a channels_first model frozen with --keep-nchw)."""
    graph_def = _read_graph_def(pb)
    return any(node.attr["data_format"].s == b"NCHW" for node in graph_def.node if "data_format" in node.attr)


class opencv:  # noqa: N801
    """cv2.dnn.readNetFromTensorflow with ENGINE_CLASSIC; images as NCHW blobs; forward() without names."""

    @staticmethod
    def available() -> str | None:
        return _missing("cv2")

    @staticmethod
    def load(pb: Path):
        import cv2

        return cv2.dnn.readNetFromTensorflow(str(pb), "", cv2.dnn.ENGINE_CLASSIC)

    @staticmethod
    def run(pb: Path, feeds: dict[str, np.ndarray], inputs, outputs: list[str], *, workdir: Path) -> list[np.ndarray]:
        net = opencv.load(pb)
        nchw = _nchw_graph(pb)
        for name, value in feeds.items():
            blob = value if value.ndim != 4 or nchw else value.transpose(0, 3, 1, 2)  # OpenCV blobs are NCHW
            blob = np.ascontiguousarray(blob.astype(np.float32))
            if len(feeds) == 1:
                net.setInput(blob)
            else:
                net.setInput(blob, name)
        if len(outputs) == 1:
            return [net.forward()]  # OpenCV drops Identity nodes: the one unconnected output, unnamed
        names = list(net.getUnconnectedOutLayersNames())
        return _by_name(names, outputs, list(net.forward(names)), "OpenCV")


# --------------------------------------------------------------------------- tf2onnx + onnxruntime


class onnxruntime:  # noqa: N801
    """tf2onnx.convert.from_graph_def (opset 17) with the name:0 tensors, then an onnxruntime CPU session."""

    @staticmethod
    def available() -> str | None:
        return _missing("tf2onnx", "onnxruntime")

    @staticmethod
    def convert(pb: Path, inputs, outputs: list[str]):
        import tf2onnx

        proto, _ = tf2onnx.convert.from_graph_def(_read_graph_def(pb), input_names=[tensor(s.name) for s in inputs],
                                                  output_names=[tensor(name) for name in outputs], opset=OPSET)
        return proto

    @staticmethod
    def run(pb: Path, feeds: dict[str, np.ndarray], inputs, outputs: list[str], *, workdir: Path) -> list[np.ndarray]:
        import onnxruntime as ort

        proto = onnxruntime.convert(pb, inputs, outputs)
        session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run([tensor(name) for name in outputs], {tensor(k): v for k, v in feeds.items()})


# --------------------------------------------------------------------------- OpenVINO


class openvino:  # noqa: N801
    """openvino.convert_model on the .pb, compiled for the CPU with INFERENCE_PRECISION_HINT f32."""

    CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}  # else bf16 on CPUs with AMX: MobileNetV2 off by 0.3

    @staticmethod
    def available() -> str | None:
        return _missing("openvino")

    @staticmethod
    def run(pb: Path, feeds: dict[str, np.ndarray], inputs, outputs: list[str], *, workdir: Path) -> list[np.ndarray]:
        import openvino as ov

        model = ov.convert_model(str(pb))
        compiled = ov.Core().compile_model(model, "CPU", openvino.CONFIG)
        request = compiled.create_infer_request()
        port_names = [sorted(port.get_names()) for port in compiled.inputs]
        feed = {}
        for name, value in feeds.items():
            index = next(i for i, names in enumerate(port_names) if name in names or tensor(name) in names)
            feed[index] = value
        result = request.infer(feed)
        names, values = [], []
        for port in compiled.outputs:
            for name in port.get_names():
                names.append(name)
                values.append(result[port])
        return _by_name(names, outputs, values, "OpenVINO")


# --------------------------------------------------------------------------- TFLite (TensorFlow's converter, LiteRT)


class tflite:  # noqa: N801
    """tf.compat.v1.lite.TFLiteConverter.from_frozen_graph with the batch fixed to the feeds', run in LiteRT."""

    @staticmethod
    def available() -> str | None:
        return _missing("tensorflow", "ai_edge_litert")

    @staticmethod
    def convert(pb: Path, input_shapes: dict[str, list[int]], outputs: list[str]) -> bytes:
        import tensorflow as tf

        converter = tf.compat.v1.lite.TFLiteConverter.from_frozen_graph(
            str(pb), list(input_shapes), list(outputs), input_shapes=input_shapes)
        return converter.convert()

    @staticmethod
    def run(pb: Path, feeds: dict[str, np.ndarray], inputs, outputs: list[str], *, workdir: Path) -> list[np.ndarray]:
        from ai_edge_litert.interpreter import Interpreter

        flatbuffer = tflite.convert(pb, {name: list(value.shape) for name, value in feeds.items()}, outputs)
        interpreter = Interpreter(model_content=flatbuffer)
        interpreter.allocate_tensors()
        details = interpreter.get_input_details()  # TFLite orders inputs and outputs its own way: by name here
        for name, value in feeds.items():
            (index,) = _by_name([d["name"] for d in details], [name], [d["index"] for d in details], "TFLite inputs")
            interpreter.set_tensor(index, value)
        interpreter.invoke()
        out = interpreter.get_output_details()
        indices = _by_name([d["name"] for d in out], outputs, [d["index"] for d in out], "TFLite outputs")
        return [interpreter.get_tensor(index) for index in indices]


ADAPTERS = {name: getattr(sys.modules[__name__], name) for name in RUNTIMES}
