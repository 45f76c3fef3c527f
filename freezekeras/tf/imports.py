"""Importing TensorFlow and tf-keras lazily, quietly and in the right mode.

TensorFlow costs seconds and hundreds of MB to import, so no module imports it
at import time; the functions that need it call :func:`import_tensorflow`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from types import ModuleType


def import_tensorflow(*, verbose: bool = False) -> ModuleType:
    """Import and return ``tensorflow``, set up for tf-keras (Keras 2).

    Only the first import is set up; a TensorFlow the caller imported
    already is used as it is, its logging untouched. Before that first
    import, ``TF_USE_LEGACY_KERAS=1`` is set so that ``tf.keras`` is tf-keras,
    ``TF_ENABLE_ONEDNN_OPTS=0`` (unless the caller set it) so that TensorFlow's
    CPU allocator gives freed memory back (oneDNN's pools it for the process's
    life: the model freed before verification stayed resident, 2 GB for a
    1 GB model; the written bytes are the same either way), and unless
    ``verbose`` TensorFlow's log is quieted: ``TF_CPP_MIN_LOG_LEVEL=3``
    (unless the caller set it), the lines its native libraries print while
    loading are dropped, and its Python logger shows errors only. Whatever
    the import prints goes to stderr, never to stdout, which carries data.

    Args:
        verbose: Leave TensorFlow's logging as it is.

    Returns:
        The ``tensorflow`` module.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _native_stderr_silenced(not verbose), contextlib.redirect_stdout(sys.stderr):
        import tensorflow as tf  # it may print (a failed "import ssl"): never onto our stdout
    if not verbose:
        tf.get_logger().setLevel(logging.ERROR)
        logging.getLogger("absl").setLevel(logging.ERROR)
    return tf


def import_tf_keras(*, verbose: bool = False) -> ModuleType:
    """Import and return ``tf_keras`` (after :func:`import_tensorflow`)."""
    import_tensorflow(verbose=verbose)
    with _native_stderr_silenced(not verbose and "tf_keras" not in sys.modules), contextlib.redirect_stdout(sys.stderr):
        import tf_keras

    return tf_keras


def import_keras(*, verbose: bool = False) -> ModuleType:
    """Import and return Keras 3 (the ``keras`` package) on its TensorFlow backend (after :func:`import_tensorflow`).

    ``KERAS_BACKEND=tensorflow`` is set unless the caller set a backend; a
    Keras already imported on another backend cannot freeze a TensorFlow graph.

    Raises:
        ConversionError: Keras 3 runs on another backend in this process.
    """
    import_tensorflow(verbose=verbose)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    with _native_stderr_silenced(not verbose and "keras" not in sys.modules), contextlib.redirect_stdout(sys.stderr):
        import keras
    if keras.backend.backend() != "tensorflow":
        from freezekeras.errors import ConversionError

        raise ConversionError(
            f"Keras 3 runs on the {keras.backend.backend()} backend in this process; freezing needs TensorFlow's. "
            "Run freezekeras with KERAS_BACKEND=tensorflow (a model saved with any backend converts)."
        )
    return keras


@contextlib.contextmanager
def quiet(verbose: bool) -> Iterator[None]:
    """Hide the warnings TensorFlow and Keras give while we build and freeze, unless ``verbose``.

    Python warnings (Keras' "HDF5 is legacy") and TensorFlow's deprecation
    notices (``convert_variables_to_constants`` and friends), which it logs
    even when the caller set up TensorFlow's logging, are hidden within the
    block only.
    """
    if verbose:
        yield
        return
    from freezekeras.tf.internals import deprecation_notices_silenced  # internals imports this module

    with warnings.catch_warnings(), deprecation_notices_silenced():
        warnings.simplefilter("ignore")
        yield


@contextlib.contextmanager
def _native_stderr_silenced(silence: bool) -> Iterator[None]:
    """Point file descriptor 2 at /dev/null while TensorFlow's libraries load.

    Its native libraries log lines such as "Could not find cuda drivers"
    before any log level applies; Python's own ``sys.stderr`` is restored, so
    an import error still shows.
    """
    if not silence:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable descriptor 2
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
