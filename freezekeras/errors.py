"""The exceptions freezekeras raises, and the exit code each maps to.

Every error the library raises on purpose derives from :class:`FreezeKerasError`.
Messages are one line: the file concerned, what is wrong with it, and what to
do next. The command line catches the base class once and exits with
:attr:`FreezeKerasError.exit_code`; any other exception is a bug in
freezekeras and becomes an :class:`InternalError` (exit code 70).

:data:`EXIT_CODES` is the one table of exit codes; ``docs/cli.md`` and the
README render it (``tools/generate_docs.py``). A batch (several models in one
call) exits with the most serious code any of its models gave, in the order
of :data:`SEVERITY`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from freezekeras.results import Verification

EXIT_OK = 0
EXIT_MODEL_ERROR = 1
EXIT_USAGE_ERROR = 2
EXIT_VERIFICATION_FAILED = 3
EXIT_CHECK_FAILED = 4
#: An unexpected exception: a bug in freezekeras (sysexits' EX_SOFTWARE).
EXIT_INTERNAL_ERROR = 70

#: Every exit code the command line gives: (code, what it means in short, the details). The one table.
EXIT_CODES = (
    ("0", "success", "the command did what it was asked"),
    (str(EXIT_MODEL_ERROR), "model or conversion error",
     "the input cannot be converted or read: not a Keras model or SavedModel, a damaged file, weights only "
     "without --architecture, Lambda layers without --allow-lambda, an unknown custom layer or function, a "
     "--custom-objects file that raises, lookup tables (StringLookup, IntegerLookup), Keras or TensorFlow "
     "failed, verification inputs the model cannot run on, a graph of 2 GiB or more, a graph holding what the "
     "--target runtime cannot run"),
    (str(EXIT_USAGE_ERROR), "usage error",
     "a path or option on the command line is wrong: a missing input, --custom-objects or --architecture "
     "file, a folder that holds no model, an output equal to the input, in a missing folder or not writable, "
     "an unknown --output-node or --signature, an option the model's route does not take, a bad option "
     "value, a --reference file that does not fit the model"),
    (str(EXIT_VERIFICATION_FAILED), "verification failed",
     "the frozen graph does not compute what the Keras model computes, or does not reproduce the "
     "--reference predictions; nothing is written"),
    (str(EXIT_CHECK_FAILED), "check failed",
     "inspect --check found errors in the graph's lint; the report is still printed"),
    (str(EXIT_INTERNAL_ERROR), "internal error",
     "an unexpected exception, a bug in freezekeras: rerun with --debug and report it with the traceback"),
    ("128+N", "stopped by signal N",
     "130 for Ctrl-C (SIGINT), 143 for SIGTERM, 129 for SIGHUP; nothing is left half-written"),
)

#: Exit codes from most to least serious. An internal error says freezekeras itself is broken;
#: a usage error (a missing file, an option that cannot apply) that the command line needs
#: fixing; a model error that a file cannot be converted; a failed verification that it
#: converted but computes something else.
SEVERITY = (EXIT_INTERNAL_ERROR, EXIT_USAGE_ERROR, EXIT_MODEL_ERROR, EXIT_VERIFICATION_FAILED, EXIT_OK)


def most_serious(codes: Iterable[int]) -> int:
    """The exit code of a batch: the most serious of ``codes`` by :data:`SEVERITY` (0 for none).

    A code outside :data:`SEVERITY` ranks above all of them.
    """
    return min(codes, key=lambda code: SEVERITY.index(code) if code in SEVERITY else -1, default=EXIT_OK)


def error_summary(exc: BaseException) -> str:
    """The first line of an error that says what went wrong.

    TensorFlow's errors start with "Graph execution error:" and carry node
    names and stack traces; those lines are skipped.
    """
    noise = ("[[", "Graph execution error", "Detected at node", "Node:", "Original stack trace", "File ")
    for line in str(getattr(exc, "message", None) or exc).splitlines():
        if line.strip() and not line[0].isspace() and not line.startswith(noise):
            return line.strip()[:300]
    return type(exc).__name__


class FreezeKerasError(Exception):
    """Base class of every error freezekeras raises on purpose; never raised itself.

    The message is a single line naming the file, the problem and the next
    step. ``exit_code`` is the command line's exit code for it.
    """

    exit_code = EXIT_MODEL_ERROR


class UsageError(FreezeKerasError):
    """Raised when a path or option given by the caller cannot be used.

    Examples: an input, ``--architecture`` or ``--custom-objects`` path that
    does not exist, is a directory or cannot be read; an output node that is
    not in the graph or gives no values; an invalid ``seed`` or ``atol``; a
    ``CUSTOM_OBJECTS`` that is not a dict; YAML without PyYAML.
    """

    exit_code = EXIT_USAGE_ERROR


class OutputError(UsageError):
    """Raised when the output file cannot be written where the caller asked.

    The folder is missing or not writable, or the output path is the input.
    Nothing is left behind at the output path.
    """


class ModelFileError(FreezeKerasError):
    """Raised when the input file is not a readable Keras HDF5 model or GraphDef.

    Empty, truncated or non-HDF5 files, HDF5 files without Keras metadata,
    a malformed ``model_config`` or architecture file, Keras 3 files, and
    files given to ``inspect`` that are neither a Keras model nor a GraphDef.
    """


class WeightsOnlyError(ModelFileError):
    """Raised when an ``.h5`` holds weights but no architecture.

    Such files come from ``model.save_weights()``; the architecture has to be
    supplied separately.
    """


class LambdaLayerError(FreezeKerasError):
    """Raised when a model holds Lambda layers and the caller did not opt in.

    A Lambda layer's config holds marshalled Python bytecode that Keras runs
    while loading; freezekeras refuses to run it without ``allow_lambda``.
    """


class UnknownObjectError(FreezeKerasError):
    """Raised when the model names a layer or function Keras does not know.

    Custom layers, activations or losses whose definitions were not supplied.
    """


class ConversionError(FreezeKerasError):
    """Raised when a readable model cannot be turned into a working frozen graph.

    Keras could not build it (Keras 1 configs, Lambda bytecode from another
    Python, weights that do not fit the architecture), a ``--custom-objects``
    file failed, the model needs lookup tables or holds Theano-flipped
    convolution kernels, TensorFlow could not freeze it, or verification
    could not run it (string inputs, inputs too small for the model).
    """


class GraphTooLargeError(ConversionError):
    """Raised when the frozen graph would reach protobuf's 2 GiB limit.

    A larger GraphDef is written without complaint but cannot be read back.
    """


class TargetError(ConversionError):
    """Raised when the frozen graph holds what the ``--target`` runtime cannot run; nothing is written.

    The message names the nodes and what to do (another route, a fixed batch,
    another runtime); :mod:`freezekeras.graphdef.targets` lists what each runtime lacks.
    """


class VerificationError(FreezeKerasError):
    """Raised when the frozen graph's outputs differ from the Keras model's.

    Carries the :class:`~freezekeras.results.Verification` result so a
    caller can report the difference; nothing has been written.
    """

    exit_code = EXIT_VERIFICATION_FAILED

    def __init__(self, message: str, verification: Verification | None = None):
        """Keep ``verification``, the comparison that failed, for the caller."""
        super().__init__(message)
        self.verification = verification


class ReferenceMismatchError(VerificationError):
    """Raised when the frozen graph does not reproduce the predictions recorded in a reference file.

    The file is the one given as ``--reference``; ``verification`` holds the
    comparison with it. Nothing has been written.
    """


class CheckFailedError(FreezeKerasError):
    """Raised by the command line when ``inspect --check`` finds errors in a graph.

    The graph was read and reported; its lint found what a serving runtime
    may reject (variables, training switches, random ops, device strings,
    unused placeholders). A distinct exit code lets CI tell this from a file
    that could not be read (1).
    """

    exit_code = EXIT_CHECK_FAILED


class InternalError(FreezeKerasError):
    """An exception nothing anticipated, wrapped: a bug in freezekeras, never a verdict on the model.

    :meth:`wrap` makes the one message the command line and batches print for it;
    the original exception is the ``__cause__``.
    """

    exit_code = EXIT_INTERNAL_ERROR

    @classmethod
    def wrap(cls, subject: object, exc: BaseException) -> InternalError:
        """The internal error for ``exc``, raised while working on ``subject`` (a path or a command)."""
        error = cls(f"{subject}: unexpected {type(exc).__name__}: {error_summary(exc)}. This is a freezekeras bug: "
                    "rerun with --debug and report it with the traceback.")
        error.__cause__ = exc
        return error


class MovedInternalError(InternalError):
    """Raised when a private TensorFlow or tf-keras entry point freezekeras relies on is not where it was.

    The installed TensorFlow or tf-keras is not the one freezekeras was made
    for (see :mod:`freezekeras.tf.internals`); the message names the versions
    and the entry point. Exit code 70, as for any fault of freezekeras' own.
    """
