"""Converting many models in one process: folders and glob patterns, one outcome per model.

TensorFlow is imported once; each model is built in its own ``tf.Graph`` and
``Session`` by :func:`freezekeras.api.convert`, so nothing of one model reaches
the next. One model's failure is recorded and the next model is converted.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from freezekeras.api import convert
from freezekeras.errors import FreezeKerasError, InternalError, OutputError, UsageError, most_serious
from freezekeras.output import is_stdout
from freezekeras.paths import KERAS_SUFFIXES, is_saved_model_dir
from freezekeras.results import BatchItem, ConvertOptions

#: The error for an empty list of models.
NO_MODEL = "no model given. Pass one or more .h5 or .keras files, SavedModel folders, folders or quoted glob patterns."
#: Called after each model with its outcome, before the next model starts.
ResultCallback = Callable[[BatchItem], None]

#: Called after each step of each model with the model, the step's name and its duration in seconds.
BatchStepCallback = Callable[[Path, str, float], None]


@dataclass
class BatchReport:
    """The outcomes of a batch, counted as they come (after black's ``Report``).

    :meth:`add` each model's :class:`~freezekeras.results.BatchItem` when it is
    done; :attr:`converted`, :attr:`failed` and :attr:`exit_code` tell where the
    batch stands, and ``str()`` is its summary line, ``3 models: 2 converted, 1 failed``.
    """

    items: list[BatchItem] = field(default_factory=list)

    def add(self, item: BatchItem) -> None:
        """Count one model's outcome."""
        self.items.append(item)

    @property
    def converted(self) -> int:
        """How many models were converted (and written)."""
        return sum(item.ok for item in self.items)

    @property
    def failed(self) -> int:
        """How many models failed, for whatever reason."""
        return len(self.items) - self.converted

    @property
    def exit_code(self) -> int:
        """The most serious exit code of the models so far (:func:`~freezekeras.errors.most_serious`)."""
        return most_serious(item.exit_code for item in self.items)

    def __str__(self) -> str:
        count = len(self.items)
        return f"{count} model{'' if count == 1 else 's'}: {self.converted} converted, {self.failed} failed"


def is_pattern(given: str | os.PathLike) -> bool:
    """``given`` is a glob pattern: it holds ``*``, ``?`` or ``[`` and no such path exists."""
    text = os.fspath(given)
    return glob.escape(text) != text and not os.path.lexists(text)


def stands_for_itself(path: Path) -> bool:
    """``path`` is one model: a file, a SavedModel folder (``saved_model.pb`` inside), or a path that does not exist."""
    return not path.is_dir() or is_saved_model_dir(path)


def expand_models(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """The models that ``paths`` name, in order.

    A file, a SavedModel folder (or a path that does not exist) stands for
    itself; another folder for its ``*.h5``, ``*.hdf5`` and ``*.keras`` files,
    sorted, not those of its subfolders and not hidden ones; a glob pattern
    (see :func:`is_pattern`) for the files it matches, sorted, ``**`` matching
    any depth of folders.

    Raises:
        UsageError: ``paths`` is empty, or a folder or pattern names no model file.
    """
    if not paths:
        raise UsageError(NO_MODEL)
    models: list[Path] = []
    for given in paths:
        if is_pattern(given):
            models += _matches(os.fspath(given))
        elif not stands_for_itself(Path(given)):
            models += _folder_models(Path(given))
        else:
            models.append(Path(given))
    return models


def _matches(pattern: str) -> list[Path]:
    found = [Path(name) for name in sorted(glob.glob(pattern, recursive=True)) if os.path.isfile(name)]
    if not found:
        raise UsageError(f"{pattern}: no such file, and no file matches it as a pattern. "
                         "Check the path or pattern and try again.")
    return found


def _folder_models(folder: Path) -> list[Path]:
    found = sorted(entry for entry in folder.iterdir()
                   if entry.suffix.lower() in KERAS_SUFFIXES and not entry.name.startswith(".") and entry.is_file())
    if not found:
        raise UsageError(f"{folder}: is a directory with no .h5, .hdf5 or .keras file in it. Pass a Keras model "
                         f"file, a SavedModel folder, a folder holding models, or a quoted pattern such as "
                         f"'{folder}/**/*.h5'.")
    return found


def convert_many(models: Sequence[str | os.PathLike], options: ConvertOptions | None = None, *,
                 create_output: bool = False, on_result: ResultCallback | None = None,
                 on_step: BatchStepCallback | None = None, jobs: int = 1) -> list[BatchItem]:
    """Convert each model with :func:`freezekeras.convert`, going on after a failure.

    Everything that concerns the whole call is checked first, before any model
    is converted: ``options.output`` must be a folder; ``output_nodes``,
    ``architecture`` and ``reference``, which name things of one model, need exactly one model;
    and no two models may be written to the same file.

    Args:
        models: The ``.h5`` files (see :func:`expand_models` for folders and patterns).
        options: The options of every conversion; ``output``, when given, is a
            folder, and each graph is named after its model. Default: beside each model.
        create_output: Create the ``options.output`` folder (and its parents) if
            missing, after the checks pass.
        on_result: Called with each model's outcome as soon as it is known.
        on_step: Called with ``(model, step, seconds)`` after each step of each model.
        jobs: Worker processes (:mod:`freezekeras.parallel`); 0: one per CPU. With 1 (the default),
            or one model, the models are converted in this process, one after the other. With more,
            each worker imports TensorFlow once and converts model after model: the same files and
            items as with 1, ``on_result`` called in the order the models finish, the items
            returned in the given order.

    Returns:
        One item per model, in the given order: the result, or the error message
        with its exit code. An exception that is not a ``FreezeKerasError`` is
        reported as that model's internal error (:class:`~freezekeras.errors.InternalError`, exit code 70).

    Raises:
        UsageError: One of the checks above failed, or ``jobs`` is negative; nothing was converted.
        OutputError: The output folder is missing (without ``create_output``),
            is a file, or cannot be created.
    """
    options = options or ConvertOptions()
    paths = [Path(model) for model in models]
    if not isinstance(jobs, int) or jobs < 0:
        raise UsageError(f"jobs {jobs!r}: use a whole number of 0 (one per CPU) or more (--jobs).")
    _check_batch(paths, options, create_output=create_output)
    if options.output is not None and create_output:
        _make_folder(options.output)
    workers = (os.cpu_count() or 1) if jobs == 0 else jobs
    if min(workers, len(paths)) > 1:
        from freezekeras.parallel import convert_parallel  # multiprocessing only when asked for

        return convert_parallel(paths, options, min(workers, len(paths)), on_result=on_result, on_step=on_step)
    items = []
    for path in paths:
        item = _convert_one(path, options, on_step)
        items.append(item)
        if on_result is not None:
            on_result(item)
    return items


def _check_batch(paths: list[Path], options: ConvertOptions, *, create_output: bool) -> None:
    if not paths:
        raise UsageError(NO_MODEL)
    one_model = (("--output-node", options.output_nodes), ("--architecture", options.architecture),
                 ("--reference", options.reference))
    for option, value in one_model:
        if value and len(paths) > 1:
            raise UsageError(f"{option} applies to one model, and {len(paths)} were given; "
                             "convert that model on its own.")
    folder = options.output
    if is_stdout(folder):
        raise UsageError(f"-o - (stdout) takes one model file, not a batch (several models, a folder or a "
                         f"pattern: {len(paths)} model{'s' if len(paths) != 1 else ''} here). Pass a folder "
                         "with -o, or convert one model file at a time.")
    if folder is not None and not folder.is_dir():
        if folder.exists():
            raise OutputError(f"{folder}: is not a folder; -o for a batch of models is a folder. "
                              "Pass an existing folder, or a new one ending in '/'.")
        if not create_output:
            raise OutputError(f"{folder}: no such folder; -o for a batch of models is a folder. "
                              "Create it, or end the path with '/' to have it created.")
    _refuse_collisions(paths, options)


def _refuse_collisions(paths: list[Path], options: ConvertOptions) -> None:
    """Raise UsageError if two models would be written to the same file."""
    suffix = ".pbtxt" if options.text else ".pb"
    first: dict[Path, Path] = {}
    for path in paths:
        target = path.with_suffix(suffix) if options.output is None else options.output / (path.stem + suffix)
        key = Path(os.path.realpath(target))
        if key in first:
            raise UsageError(f"{path}: would be written to {target}, as {first[key]} would; nothing was converted. "
                             "Give each model once, rename one, or convert them separately.")
        first[key] = path


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the output folder ({exc.strerror}); choose another -o.") from exc


def _convert_one(path: Path, options: ConvertOptions, on_step: BatchStepCallback | None) -> BatchItem:
    step = None if on_step is None else (lambda name, seconds: on_step(path, name, seconds))
    try:
        result = convert(path, options, on_step=step)
    except FreezeKerasError as exc:
        return BatchItem(model=path, error=str(exc), exit_code=exc.exit_code, exception=exc)
    except Exception as exc:  # a bug or an unforeseen failure: this model fails, the others go on
        error = InternalError.wrap(path, exc)
        return BatchItem(model=path, error=str(error), exit_code=error.exit_code, exception=exc)
    return BatchItem(model=path, result=result)
