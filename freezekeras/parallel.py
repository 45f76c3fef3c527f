"""Converting a batch in several worker processes (``convert_many(..., jobs=N)``, ``convert --jobs N``).

Each worker is a fresh interpreter (the ``spawn`` start method: forking a
process that has imported TensorFlow is unsafe) that imports TensorFlow once,
quietly, and then converts one model after another with
:func:`freezekeras.api.convert`, exactly as a one-process batch does: the same
bytes, the same outcome per model. A worker returns a picklable
:class:`~freezekeras.results.BatchItem`; the parent reports each as it comes
and returns them in the input order.

Stopping: workers ignore SIGINT (a terminal sends it to the whole process
group; the parent decides). On SIGINT, SIGTERM or SIGHUP the parent's caller
raises an exception out of :func:`convert_parallel`, which then terminates the
workers: a worker's SIGTERM unwinds its conversion (its ``AtomicFile`` removes
the temporary file) and ends the process; a worker still stuck in native code
after a grace period is killed, and the parent removes the temporary files of
the models not done (``.NAME.pb.<hex>.tmp``, see :class:`freezekeras.output.AtomicFile`).
"""

from __future__ import annotations

import concurrent.futures
import glob
import multiprocessing
import os
import pickle
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from freezekeras.api import convert
from freezekeras.errors import FreezeKerasError, InternalError
from freezekeras.output import output_path
from freezekeras.results import BatchItem, ConvertOptions

#: How long terminated workers get to remove their temporary files before they are killed (seconds).
GRACE_SECONDS = 5.0
#: How often the parent looks at the workers' step reports while it waits for results (seconds).
_POLL_SECONDS = 0.05

_steps: multiprocessing.queues.SimpleQueue | None = None  # the worker's channel for step reports
_in_task = False  # the worker is converting a model (SIGTERM unwinds it) rather than waiting for one


class _Stopped(BaseException):
    """SIGTERM in a worker: unwinds the conversion so that no temporary file stays behind."""


def convert_parallel(paths: Sequence[Path], options: ConvertOptions, jobs: int, *,
                     on_result: Callable[[BatchItem], None] | None = None,
                     on_step: Callable[[Path, str, float], None] | None = None) -> list[BatchItem]:
    """Convert ``paths`` in ``jobs`` worker processes; one :class:`BatchItem` per model, in the input order.

    ``on_result`` is called in the parent as each model is done (completion
    order), ``on_step`` with each step a worker reports. An exception raised
    in the parent (a signal, or one of the callbacks) stops the batch: the
    workers are terminated and no temporary file of theirs remains.
    """
    context = multiprocessing.get_context("spawn")
    steps = context.SimpleQueue()  # written synchronously: nothing is lost when a worker ends
    items: list[BatchItem | None] = [None] * len(paths)
    executor = concurrent.futures.ProcessPoolExecutor(
        max_workers=jobs, mp_context=context, initializer=_start_worker, initargs=(steps, options.verbose))
    try:
        futures = {executor.submit(_convert_in_worker, index, path, options): index
                   for index, path in enumerate(paths)}
        pending = set(futures)
        while pending:
            done, pending = concurrent.futures.wait(pending, timeout=_POLL_SECONDS,
                                                    return_when=concurrent.futures.FIRST_COMPLETED)
            _relay_steps(steps, paths, on_step)
            for future in sorted(done, key=futures.__getitem__):
                index = futures[future]
                items[index] = _outcome(future, paths[index])
                if on_result is not None:
                    on_result(items[index])
        _relay_steps(steps, paths, on_step)
    finally:  # done, or stopped: idle workers end at once, without TensorFlow's slow interpreter teardown
        _stop(executor, [path for path, item in zip(paths, items) if item is None], options)
        steps.close()
    return items  # type: ignore[return-value]  # every slot is filled once the loop ends


def _relay_steps(steps, paths: Sequence[Path], on_step) -> None:
    while not steps.empty():
        index, name, seconds = steps.get()
        if on_step is not None:
            on_step(paths[index], name, seconds)


def _outcome(future: concurrent.futures.Future, path: Path) -> BatchItem:
    try:
        return future.result()
    except Exception as exc:  # the worker died (killed, out of memory) or its item could not be sent
        error = InternalError.wrap(path, exc)
        return BatchItem(model=path, error=str(error), exit_code=error.exit_code, exception=exc)


def _stop(executor: concurrent.futures.ProcessPoolExecutor, unfinished: list[Path], options: ConvertOptions) -> None:
    """Terminate the workers, kill any that outlive :data:`GRACE_SECONDS`, remove the unfinished models' temporaries."""
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(GRACE_SECONDS)
        if process.is_alive():
            process.kill()
            process.join()
    for path in unfinished:
        remove_temporaries(path, options)


def remove_temporaries(model: Path, options: ConvertOptions) -> None:
    """Remove the temporary files a writer of ``model``'s output may have left (``.NAME.<hex>.tmp`` beside it)."""
    try:
        target = output_path(model, options.output, text=options.text)
    except (FreezeKerasError, OSError):
        return
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        leftover.unlink(missing_ok=True)


# --------------------------------------------------------------------------- in the worker processes


def _start_worker(steps, verbose: bool) -> None:
    """Set a worker up: SIGINT ignored, SIGTERM unwinding, TensorFlow imported once and quietly."""
    global _steps
    _steps = steps
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the parent gets it too and stops the pool
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        # The stop unwinds a worker wherever it is; "Exception ignored in ..." reports (jax's gc callback,
        # half-built sessions) would follow the parent's one stop line, as the command line keeps them off there.
        sys.unraisablehook = lambda _unraisable: None
    from freezekeras.tf.imports import import_tensorflow, import_tf_keras

    import_tensorflow(verbose=verbose)
    import_tf_keras(verbose=verbose)


def _on_sigterm(signum: int, _frame) -> None:
    if _in_task:
        raise _Stopped(signum)
    os._exit(128 + signum)  # between models: nothing to clean up


def _convert_in_worker(index: int, path: Path, options: ConvertOptions) -> BatchItem:
    global _in_task
    _in_task = True
    try:
        item = _convert_one(index, path, options)
    except _Stopped:  # the temporary file is gone with the unwinding
        os._exit(128 + signal.SIGTERM)
    finally:
        _in_task = False
    return item


def _convert_one(index: int, path: Path, options: ConvertOptions) -> BatchItem:
    def step(name: str, seconds: float) -> None:
        if _steps is not None:
            _steps.put((index, name, seconds))

    try:
        result = convert(path, options, on_step=step)
    except FreezeKerasError as exc:
        return BatchItem(model=path, error=str(exc), exit_code=exc.exit_code, exception=_portable(exc))
    except Exception as exc:  # a bug or an unforeseen failure: this model fails, the others go on
        error = InternalError.wrap(path, exc)
        return BatchItem(model=path, error=str(error), exit_code=error.exit_code, exception=_portable(exc))
    return BatchItem(model=path, result=result)


def _portable(exc: BaseException) -> BaseException | None:
    """``exc`` if it survives pickling as itself (its attributes, ``verification`` among them, kept),
    with its traceback as text in ``remote_traceback``; ``None`` otherwise."""
    try:
        exc.remote_traceback = "".join(traceback.format_exception(exc))
        copy = pickle.loads(pickle.dumps(exc))
    except Exception:
        return None
    if type(copy) is not type(exc) or str(copy) != str(exc):
        return None
    return exc
