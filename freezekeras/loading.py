"""Building a Keras ``.h5`` model in tf-keras, in a TF1-style graph session, in inference mode."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any, Iterator

from freezekeras.errors import ConversionError, UnknownObjectError
from freezekeras.h5file import KerasFileInfo, refuse_lambda_layers
from freezekeras.results import TensorSpec
from freezekeras.tfimport import import_tf_keras, import_tensorflow, quiet_warnings

_UNKNOWN_OBJECT = re.compile(
    r"Unknown (layer|activation|activation function|loss|metric|initializer|regularizer|"
    r"constraint|optimizer|object)[^:]*: '?([A-Za-z0-9_.<>]+)'?"
)


@dataclass
class KerasSession:
    """A tf-keras model built in its own ``tf.Graph`` and ``tf.compat.v1.Session``.

    Attributes:
        model: The tf-keras model.
        graph: The graph it was built in.
        session: The session holding its variables.
    """

    model: Any
    graph: Any
    session: Any

    def inputs(self) -> tuple[TensorSpec, ...]:
        """The model's input placeholders, in its input order.

        ``name`` is the graph node; ``layer`` the Keras input layer.
        """
        return tuple(map(_spec, self.model.inputs, self.model.input_names))

    def outputs(self) -> tuple[TensorSpec, ...]:
        """The ops producing the model's outputs, in its output order.

        ``name`` is the graph node (``op`` or ``op:index`` for an op's later
        outputs); ``layer`` the Keras output layer.
        """
        return tuple(map(_spec, self.model.outputs, self.model.output_names))

    def run(self, fetches: list[str], feeds: dict[str, Any]) -> list[Any]:
        """Run the Keras graph: fetch tensor names, feeding tensor names."""
        return self.session.run(fetches, feed_dict=feeds)


@contextlib.contextmanager
def keras_session(info: KerasFileInfo, *, allow_lambda: bool = False,
                  verbose: bool = False) -> Iterator[KerasSession]:
    """Build the model of ``info`` in a fresh graph and session, learning phase 0.

    The learning phase is set before the model is built, so Dropout and
    BatchNormalization are built in inference mode with no training switch.

    Args:
        info: The file's metadata, from :func:`freezekeras.h5file.read_keras_file`.
        allow_lambda: Load Lambda layers (runs their Python bytecode).
        verbose: Leave TensorFlow's logging on.

    Yields:
        The built model with its graph and session; the session is closed on exit.

    Raises:
        LambdaLayerError: The model has Lambda layers and ``allow_lambda`` is false.
        UnknownObjectError: The model names a layer or function Keras lacks.
        ConversionError: Keras failed to build the model for another reason.
    """
    if not allow_lambda:
        refuse_lambda_layers(info)
    tf = import_tensorflow(verbose=verbose)
    tf_keras = import_tf_keras(verbose=verbose)
    graph = tf.Graph()
    with graph.as_default(), quiet_warnings(verbose):
        session = tf.compat.v1.Session(graph=graph)
        try:
            with session.as_default():
                tf_keras.backend.set_learning_phase(0)
                model = _load_model(tf_keras, info)
                yield KerasSession(model=model, graph=graph, session=session)
        finally:
            session.close()


def _load_model(tf_keras, info: KerasFileInfo):
    path = info.path
    try:
        return tf_keras.models.load_model(str(path), compile=False)
    except Exception as exc:  # Keras raises many types for a model it cannot build
        message = _first_line(exc)
        if (info.keras_version or "").startswith("1."):
            raise ConversionError(
                f"{path}: was saved by Keras {info.keras_version}, whose layer configs tf-keras "
                f"cannot rebuild ({type(exc).__name__}). Keras 1 support is planned; until then, "
                "load the model in Keras 2.0-2.3 and save it again with model.save()."
            ) from exc
        if info.lambda_layers and _is_marshal_error(exc):
            raise ConversionError(
                f"{path}: the bytecode of Lambda layers ({', '.join(info.lambda_layers)}) was written "
                f"by another Python version and cannot be loaded here ({type(exc).__name__}: {message}). "
                "Rebuild the model with the same Lambda functions in this Python and save it again."
            ) from exc
        unknown = _UNKNOWN_OBJECT.search(str(exc))
        if unknown:
            kind, name = unknown.groups()
            raise UnknownObjectError(
                f"{path}: the model uses {kind} '{name}', which Keras does not know. "
                "Its definition is needed: custom objects are not supported yet, so rebuild the "
                "model with standard layers or convert it where the class is importable."
            ) from exc
        raise ConversionError(
            f"{path}: Keras could not build the model ({type(exc).__name__}: {message}). "
            "Check that the file loads with tf_keras.models.load_model, or rerun with --debug."
        ) from exc


def _is_marshal_error(exc: BaseException) -> bool:
    return isinstance(exc, EOFError) or "marshal" in str(exc) or "bad magic" in str(exc)


def _spec(tensor, layer_name: str) -> TensorSpec:
    shape = tensor.shape
    dims = None if shape.rank is None else tuple(shape.as_list())
    node = tensor.op.name if tensor.value_index == 0 else tensor.name
    return TensorSpec(name=node, dtype=tensor.dtype.name, shape=dims, layer=layer_name)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
