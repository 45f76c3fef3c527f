"""The ``freezekeras`` command: parses options, calls the API, renders the result.

Data goes to stdout; messages, progress and warnings go to stderr. Exit codes
are those of :mod:`freezekeras.errors`.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import signal
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import click

from freezekeras import __version__
from freezekeras.errors import (
    EXIT_CODES,
    EXIT_OK,
    EXIT_USAGE_ERROR,
    SEVERITY,
    FreezeKerasError,
    InternalError,
)
from freezekeras.results import TARGET_NAMES

DEPENDENCIES = ("tensorflow", "tf-keras", "keras", "h5py", "protobuf")
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())  # Click 8.2+


def _versions() -> str:
    from importlib import metadata  # here, not at the top: it costs inspect ~25 ms of start-up

    parts = []
    for name in DEPENDENCIES:
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{name} not installed")
    return f"freezekeras {__version__} ({', '.join(parts)})"


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(_versions())
        ctx.exit()


def _error(message: str) -> None:
    click.echo(f"freezekeras: error: {message}", err=True)


def _fail(message: str, code: int) -> None:
    _error(message)
    sys.exit(code)


def _reports_errors(command):
    """Run ``command``, turning FreezeKerasError into one stderr line and its exit code."""

    @functools.wraps(command)
    def wrapper(*args, debug: bool, **kwargs):
        try:
            return command(*args, **kwargs)
        except FreezeKerasError as exc:
            _stop_if_signalled()
            if debug:
                traceback.print_exc()
            _fail(str(exc), exc.exit_code)
        except Exception as exc:  # a bug, or a failure nothing anticipated
            _stop_if_signalled()
            if debug:
                traceback.print_exc()
            models = kwargs.get("models") or ()
            subject = kwargs.get("path") or (models[0] if len(models) == 1 else "convert")
            error = InternalError.wrap(subject, exc)
            _fail(str(error), error.exit_code)

    return click.option("--debug", is_flag=True, help="Show tracebacks on errors.")(wrapper)


verbose_option = click.option("--verbose", is_flag=True, help="Show TensorFlow's own log messages.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object (see docs/json.md).")


def model_options(command):
    """The options that say how to load a Keras model, shared by convert and inspect."""
    for option in reversed([
        click.option("--architecture", type=click.Path(path_type=Path), metavar="FILE",
                     help="The model's architecture as JSON (model.to_json(), or a .keras archive's "
                          "config.json) or YAML (needs PyYAML: pip install '.[yaml]'); the .h5 then supplies "
                          "only the weights."),
        click.option("--custom-objects", type=click.Path(path_type=Path), metavar="FILE.py",
                     help="A Python file defining the model's custom layers and functions "
                          "(or a CUSTOM_OBJECTS dict). It is run: only for files you trust."),
        click.option("--allow-lambda", is_flag=True,
                     help="Load Lambda layers. They hold Python bytecode that runs while loading: "
                          "only for files you trust."),
    ]):
        command = option(command)
    return command


class _Terminated(BaseException):
    """SIGINT, SIGTERM or SIGHUP arrived: unwinds the stack, so no temporary file stays behind."""


#: The signals received during the current command, in order.
_received: list[int] = []
#: Whether a signal also silences TensorFlow's logger (not with --debug); set by :func:`_quiet_unraisable`.
_quiet_after_signal: list[bool] = [True]


def _terminate(signum: int, _frame) -> None:
    _received.append(signum)
    if _quiet_after_signal[0]:
        # A signal that lands while tf-keras builds a recurrent layer leaves TensorFlow objects whose __del__,
        # as the unwinding frees them, logs "Object was never used" through TensorFlow's logger.
        import logging

        logging.getLogger("tensorflow").setLevel(logging.CRITICAL + 1)  # for the rest of the process
    raise _Terminated(signum)


def _stop_if_signalled(converted: int = 0) -> None:
    """Raise :class:`_Terminated` again if a signal came and its exception was swallowed.

    A signal that arrives while TensorFlow's C++ code calls back into Python
    raises there, and pybind11 replaces the exception by a ``RuntimeError``,
    which would otherwise pass for a failure of the model; one that arrives in a
    ``__del__`` is ignored altogether. ``converted`` counts the models written before.
    """
    if _received:
        stop = _Terminated(_received[0])
        stop.converted = converted
        raise stop


@contextlib.contextmanager
def _terminate_cleanly() -> Iterator[None]:
    """Turn SIGINT, SIGTERM and SIGHUP into an exception for the duration of a command."""
    wanted = [getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)]
    _received.clear()
    try:
        previous = {signum: signal.signal(signum, _terminate) for signum in wanted}
    except ValueError:  # not the main thread: leave signals alone
        previous = {}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def _quiet_unraisable(show: bool) -> Iterator[None]:
    """Keep Python's "Exception ignored in ..." reports off stderr, unless ``show`` (``--debug``).

    A signal that lands inside a constructor, TensorFlow's ``Session.__init__`` for one, leaves a
    half-built object whose ``__del__`` fails when the unwinding frees it, after the one-line message
    (TensorFlow's logger is silenced by the signal itself, see :func:`_terminate`).
    After a signal, reference cycles are collected here too, rather than at interpreter exit.
    """
    previous = sys.unraisablehook
    _quiet_after_signal[0] = not show
    if not show:
        sys.unraisablehook = lambda _unraisable: None
    try:
        yield
    finally:
        if _received:
            gc.collect()
        sys.unraisablehook = previous


def _exit_now(code: int) -> None:
    """End the process at once, once stdout and stderr are flushed: the command is over and everything
    it wrote is closed, and tearing down an interpreter that imported TensorFlow takes seconds
    (docs/benchmarks.md). Only for the real process (``args`` from ``sys.argv``), never under a caller's
    Python (``CliRunner``, ``standalone_mode=False``), and not after a signal."""
    if "tensorflow" not in sys.modules or sys.stdout is not sys.__stdout__ or sys.stderr is not sys.__stderr__:
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed or broken pipe: leave it to the normal exit
        return
    os._exit(code)


class _Group(click.Group):
    """A group whose usage errors are one ``freezekeras: error:`` line, exit code 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        debug = "--debug" in (sys.argv[1:] if args is None else args)
        with _quiet_unraisable(debug):
            code = self._exit_code(args, prog_name, complete_var, **extra)
        if args is None and isinstance(code, int) and not _received:
            _exit_now(code)
        if args is None and not debug:  # the real process ends here: its shutdown reports nothing either (a
            sys.unraisablehook = lambda _unraisable: None  # stopped --jobs pool's atexit hook, say)
        sys.exit(code)  # out here, so that nothing the command left behind outlives the quiet hook

    def _exit_code(self, args, prog_name, complete_var, **extra) -> int | str | None:
        """Run the command; report any error on stderr and return the exit code."""
        try:
            with _terminate_cleanly():
                code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except SystemExit as exc:  # a command's own error line, from _fail
            return exc.code
        except _Terminated as stop:
            name = signal.Signals(stop.args[0]).name
            kept = getattr(stop, "converted", 0)  # a batch stopped after converting some models
            plural = ("s", "are") if kept > 1 else ("", "is")
            written = (f"the {kept} model{plural[0]} converted before {plural[1]} kept, nothing else was written"
                       if kept else "nothing was written")
            click.echo(f"freezekeras: stopped by {name}; {written}", err=True)
            return 128 + stop.args[0]
        except _NO_ARGS_IS_HELP as exc:  # bare "freezekeras": the help text, as Click shows it
            exc.show()
            return exc.exit_code
        except click.UsageError as exc:
            where = f" Run '{exc.ctx.command_path} --help' for usage." if exc.ctx else ""
            _error(f"{exc.format_message()}{where}")
            return EXIT_USAGE_ERROR
        except click.ClickException as exc:
            exc.show()
            return exc.exit_code
        except click.Abort:  # Click's own answer to an interrupted prompt
            click.echo("freezekeras: aborted; nothing was written", err=True)
            return 130
        return code if isinstance(code, int) else EXIT_OK


def _exit_codes_epilog() -> str:
    """The exit codes for ``--help``, in short, from :data:`freezekeras.errors.EXIT_CODES`."""
    codes = "; ".join(f"{code} {summary}" for code, summary, _details in EXIT_CODES)
    order = ", then ".join(str(code) for code in SEVERITY if code)
    return f"Exit codes: {codes}. For several models, the most serious of theirs: {order}."


@click.group(name="freezekeras", cls=_Group, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=_exit_codes_epilog())
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the versions of freezekeras, TensorFlow, tf-keras, Keras, h5py and protobuf.")
def main() -> None:
    """Freeze Keras models into TensorFlow graphs (.pb) that serve anywhere."""


@main.command()
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="MODEL...")
@click.option("-o", "--output", type=click.Path(), metavar="PATH",
              help="Output file, or a folder: an existing one, or one ending in '/' (created). "
                   "A folder for several models. Default: MODEL with .pb (.pbtxt with --text). "
                   "'-' writes the graph to stdout, and the report (text or --json) to stderr; one "
                   "model only. An existing output that is not a regular file (/dev/null, a FIFO) "
                   "is written into, never replaced.")
@click.option("--output-node", "output_nodes", multiple=True, metavar="NAME",
              help="Freeze this node (op, or op:N for its output N) instead of the model's outputs "
                   "(repeatable; one model; session route only).")
@click.option("--text", is_flag=True, help="Write protobuf text (pbtxt) instead of binary.")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Compare the frozen graph with Keras' predictions on random inputs.")
@click.option("--atol", type=click.FloatRange(min=0), metavar="FLOAT",
              help="Largest accepted difference. Default: 1e-4 x the largest Keras output (at least 1e-4).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, metavar="INT",
              help="Seed of the random verification inputs.")
@click.option("--reference", type=click.Path(path_type=Path), metavar="FILE",
              help="Also check the frozen graph against recorded inputs and predictions: an .npz "
                   "(x0.., y0.., or keys named by input/output) or an HDF5 file with inputs/ and "
                   "predictions/ groups.")
@click.option("--backend", type=click.Choice(["tensorflow", "theano"]),
              help="The Keras backend that trained the model, for files that do not record it "
                   "(Keras 1). theano: flip convolution kernels.")
@click.option("--keep-nchw", is_flag=True,
              help="Keep channels_first convolutions in NCHW (for OpenCV's dnn module and GPUs) instead of "
                   "rewriting them to NHWC, which TensorFlow's CPU kernels need.")
@click.option("--optimize", is_flag=True,
              help="Simplify the graph for inference with TensorFlow's own tools: BatchNorm folded into "
                   "convolutions, constants folded, Identity chains and no-ops dropped. Verified as written.")
@click.option("--fp16", is_flag=True,
              help="Store float32 weights as float16 with a cast back (about half the file). Verification's "
                   "default tolerance becomes 1e-2 x the largest output (--atol to choose).")
@click.option("--route", type=click.Choice(["session", "function"]),
              help="How to freeze a Keras 1 or 2 file: session (tf-keras in a graph session; the default) or "
                   "function (a traced concrete function; its While loops become native LSTM/GRU in ONNX). "
                   "Keras 3 models and SavedModels always take the function route.")
@click.option("--signature", default="serving_default", show_default=True, metavar="NAME",
              help="The SavedModel signature to freeze.")
@click.option("--input-shape", "input_shapes", multiple=True, metavar="NAME:DIMS",
              help="Fix an input's dimensions in the frozen graph; they propagate to the outputs (repeatable). "
                   "NAME is the input node or its Keras layer; DIMS the batch first, as 1,224,224,3 or 1x224x224x3, "
                   "-1 or ? leaving one unknown; a bare DIMS for a model with one input. Also gives a Sequential "
                   "saved before it was built its input shape.")
@click.option("--verify-shape", "verify_shapes", multiple=True, metavar="NAME:DIMS",
              help="Size verification's random inputs (repeatable; same form as --input-shape); the graph "
                   "keeps its unknown dimensions. Default: batch 2, other unknown dimensions 32 or what the "
                   "model's cropping and pooling need.")
@click.option("--input-name", "input_names", multiple=True, metavar="OLD=NEW",
              help="Rename an input node for serving (repeatable). OLD is the node convert prints or the Keras "
                   "layer; NEW may not be another node's name.")
@click.option("--output-name", "output_names", multiple=True, metavar="OLD=NEW",
              help="Rename an output node for serving (repeatable), as --input-name does.")
@click.option("--batch-size", type=click.IntRange(min=1), metavar="N",
              help="Fix the batch dimension of every input whose batch is unknown (as --input-shape N,... would "
                   "for each).")
@click.option("--target", type=click.Choice(TARGET_NAMES), metavar="RUNTIME",
              help=f"The runtime the graph is for ({', '.join(TARGET_NAMES)}): picks the options it needs where not "
                   "given (see docs/serving.md) and refuses, writing nothing, a graph holding what it cannot run.")
@click.option("-j", "--jobs", type=click.IntRange(min=0), default=1, show_default=True, metavar="N",
              help="Convert a batch in N worker processes (0: one per CPU), each importing TensorFlow once: "
                   "the same files, reports and exit code as with 1.")
@model_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON (see docs/json.md): one object, a list for a batch.")
@verbose_option
@_reports_errors
def convert(models: tuple[Path, ...], output: str | None, output_nodes: tuple[str, ...], text: bool,
            verify: bool, atol: float | None, seed: int, reference: Path | None, backend: str | None,
            keep_nchw: bool, optimize: bool, fp16: bool, route: str | None, signature: str, architecture: Path | None,
            custom_objects: Path | None, allow_lambda: bool, as_json: bool, verbose: bool, jobs: int = 1,
            input_shapes: tuple[str, ...] = (), verify_shapes: tuple[str, ...] = (), input_names: tuple[str, ...] = (),
            output_names: tuple[str, ...] = (), batch_size: int | None = None, target: str | None = None) -> int:
    """Freeze Keras models and SavedModels into TensorFlow graphs and print their node names.

    MODEL is a Keras file (.h5, .keras), a SavedModel folder, a folder (its
    .h5, .hdf5 and .keras files) or a quoted glob pattern ('models/*.h5').
    Several models, a folder or a pattern make a batch: one status line per
    model and a summary on stderr, and with --json a list; one failing model
    does not stop the others.
    """
    from freezekeras.batch import is_pattern, stands_for_itself
    from freezekeras.results import ConvertOptions

    options = ConvertOptions(output=None if output is None else Path(output), output_nodes=output_nodes,
                             text=text, verify=verify, atol=atol, seed=seed, architecture=architecture,
                             custom_objects=custom_objects, allow_lambda=allow_lambda, verbose=verbose,
                             reference=reference, backend=backend, keep_nchw=keep_nchw, route=route,
                             signature=signature, optimize=optimize, fp16=fp16, input_shapes=input_shapes,
                             verify_shapes=verify_shapes, input_names=input_names, output_names=output_names,
                             batch_size=batch_size, target=target)
    new_folder = output is not None and output.endswith(("/", os.sep)) and not Path(output).is_dir()
    if len(models) == 1 and stands_for_itself(models[0]) and not is_pattern(models[0]):
        return _convert_single(models[0], options, as_json=as_json, new_folder=new_folder)
    return _convert_batch(models, options, as_json=as_json, new_folder=new_folder, jobs=jobs)


def _convert_single(model: Path, options, *, as_json: bool, new_folder: bool) -> int:
    """One model: the report on stdout, errors raised for :func:`_reports_errors`."""
    from freezekeras.api import convert as run_convert
    from freezekeras.batch import convert_many
    from freezekeras.cli.rendering import conversion_text, to_json
    from freezekeras.output import is_stdout

    if new_folder:  # "-o out/": the folder is created once the checks pass
        item = convert_many([model], options, create_output=True, on_step=_step_callback(None))[0]
        if item.exception is not None:
            raise item.exception
        result = item.result
    else:
        result = run_convert(model, options, on_step=_step_callback(model))
    for warning in result.warnings:
        click.echo(f"freezekeras: warning: {result.output}: {warning}", err=True)
    # With "-o -" stdout carries the graph itself: the report goes to stderr.
    click.echo(to_json(result) if as_json else conversion_text(result), err=is_stdout(options.output))
    _stop_if_signalled(converted=1)  # swallowed after the last step: the graph is written
    return EXIT_OK


def _convert_batch(models: tuple[Path, ...], options, *, as_json: bool, new_folder: bool, jobs: int = 1) -> int:
    """Several models: a status line each and a summary on stderr; the reports on stdout."""
    from freezekeras.batch import BatchReport, convert_many, expand_models
    from freezekeras.cli.rendering import batch_json, batch_status, batch_text

    debug = click.get_current_context().params.get("debug", False)
    report = BatchReport()

    def done(item) -> None:
        if not item.ok:
            _stop_if_signalled(report.converted)  # the failure may be the signal's, swallowed and replaced
        if debug and item.exception is not None:  # a worker's (--jobs) comes with its traceback as text
            click.echo(getattr(item.exception, "remote_traceback", None)
                       or "".join(traceback.format_exception(item.exception)), err=True, nl=False)
        for warning in item.result.warnings if item.result is not None else ():
            click.echo(f"freezekeras: warning: {item.result.output}: {warning}", err=True)
        click.echo(f"freezekeras: {batch_status(item)}", err=True)
        report.add(item)
        _stop_if_signalled(report.converted)  # swallowed after the model's last step: it is written

    try:
        items = convert_many(expand_models(models), options, create_output=new_folder, on_result=done,
                             on_step=_step_callback(None), jobs=jobs)
    except _Terminated as stop:
        stop.converted = max(getattr(stop, "converted", 0), report.converted)
        raise
    # In the given order: with --jobs, done() saw the models in the order they finished.
    data = batch_json(items) if as_json else batch_text(items)
    if data:
        click.echo(data)
    click.echo(f"freezekeras: {report}", err=True)
    return report.exit_code


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--check", is_flag=True,
              help="Exit with code 4 if the graph's lint finds errors (a CI gate for frozen graphs).")
@click.option("--build", is_flag=True,
              help="Build a Keras model in tf-keras (imports TensorFlow) for exact nodes and output shapes. "
                   "Implied by --custom-objects and --allow-lambda.")
@click.option("--signature", default="serving_default", show_default=True, metavar="NAME",
              help="The signature of a SavedModel folder to list.")
@click.option("--target", type=click.Choice(TARGET_NAMES), metavar="RUNTIME",
              help=f"Also report what this runtime cannot run in the graph ({', '.join(TARGET_NAMES)}); with --check, "
                   "those are errors too.")
@model_options
@json_option
@verbose_option
@_reports_errors
def inspect(path: Path, check: bool, build: bool, signature: str, architecture: Path | None,
            custom_objects: Path | None, allow_lambda: bool, as_json: bool, verbose: bool,
            target: str | None = None) -> None:
    """List the inputs and outputs of PATH (a Keras .h5/.keras model, a SavedModel folder or a frozen graph
    .pb/.pbtxt); lint a graph."""
    from freezekeras.cli.rendering import inspection_text, to_json
    from freezekeras.errors import CheckFailedError, UsageError
    from freezekeras.inspection import inspect as run_inspect

    result = run_inspect(path, architecture=architecture, custom_objects=custom_objects,
                         allow_lambda=allow_lambda, verbose=verbose, build=build, signature=signature,
                         target=target)
    if check and "lint" not in result.details:
        what = "a SavedModel" if result.format == "saved-model" else "a Keras model"
        raise UsageError(f"{path}: --check lints frozen graphs, and this is {what}. "
                         f"Convert it and check the .pb, or drop --check.")
    click.echo(to_json(result) if as_json else inspection_text(result))
    errors = result.lint_errors if check else []
    if errors:
        kinds = "; ".join(finding["message"] for finding in errors)
        advice = "" if all(":" in finding["kind"] for finding in errors) else (
            " Freeze the model for inference (freezekeras convert) or remove these nodes.")
        raise CheckFailedError(f"{path}: the check found {len(errors)} kind{'s' if len(errors) > 1 else ''} "
                               f"of problem: {kinds}.{advice}")


@main.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.File("w", encoding="utf-8", lazy=True), default="-", metavar="FILE.md",
              help="Write the Markdown here (default: stdout).")
@_reports_errors
def report(folder: Path, output) -> None:
    """Convert every Keras .h5 model under FOLDER and write a Markdown compatibility table.

    Each model is converted with the default options; weights-only files get the
    architecture JSON beside them, models their NAME_inputs_and_outputs.h5 as
    --reference. Progress goes to stderr; only the report goes to stdout (or -o).
    """
    from freezekeras.compatibility import report as compatibility_report

    output.write(compatibility_report(folder, on_row=_report_progress))


def _report_progress(number: int, total: int, row, seconds: float) -> None:
    what = "converted + verified" if row.outcome == "converted" else f"{row.outcome}: {row.reason}"
    click.echo(f"[{number}/{total}] {row.case.model}: {what} ({seconds:.1f} s)", err=True)


def _step_callback(model: Path | None):
    """A step callback: it stops the command if a signal came, and reports step timings on stderr
    when that is a terminal.

    Called after each step and before the graph is committed, it keeps a signal
    that TensorFlow swallowed from letting the conversion finish. With ``model``
    ``None`` the callback takes the model as its first argument (a batch).
    """
    progress = sys.stderr.isatty()

    def report(step: str, seconds: float, path: Path | None = model) -> None:
        _stop_if_signalled()
        if progress:
            click.echo(f"freezekeras: {path}: {step} done in {seconds:.1f} s", err=True)

    def report_batch(path: Path, step: str, seconds: float) -> None:
        report(step, seconds, path)

    return report if model is not None else report_batch
