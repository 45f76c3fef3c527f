"""The ``freezekeras`` command: parses options, calls the API, renders the result.

Data goes to stdout; messages, progress and warnings go to stderr. Exit codes
are those of :mod:`freezekeras.errors`.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import click

from freezekeras import __version__
from freezekeras.errors import EXIT_MODEL_ERROR, EXIT_OK, EXIT_USAGE_ERROR, FreezeKerasError, error_summary

DEPENDENCIES = ("tensorflow", "tf-keras", "h5py", "protobuf")
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


def _fail(message: str, code: int) -> None:
    click.echo(f"freezekeras: error: {message}", err=True)
    sys.exit(code)


def _reports_errors(command):
    """Run ``command``, turning FreezeKerasError into one stderr line and its exit code."""

    @functools.wraps(command)
    def wrapper(*args, debug: bool, **kwargs):
        try:
            return command(*args, **kwargs)
        except FreezeKerasError as exc:
            if debug:
                traceback.print_exc()
            _fail(str(exc), exc.exit_code)
        except Exception as exc:  # a bug, or a failure nothing anticipated
            if debug:
                traceback.print_exc()
            subject = kwargs.get("model") or kwargs.get("path")
            _fail(f"{subject}: unexpected {type(exc).__name__}: {error_summary(exc)} "
                  "(rerun with --debug and report it)", EXIT_MODEL_ERROR)

    return click.option("--debug", is_flag=True, help="Show tracebacks on errors.")(wrapper)


verbose_option = click.option("--verbose", is_flag=True, help="Show TensorFlow's own log messages.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object (see README).")


def model_options(command):
    """The options that say how to load a Keras model, shared by convert and inspect."""
    for option in reversed([
        click.option("--architecture", type=click.Path(path_type=Path), metavar="FILE",
                     help="The model's architecture as JSON (model.to_json()) or YAML; "
                          "the .h5 then supplies only the weights."),
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


def _terminate(signum: int, _frame) -> None:
    raise _Terminated(signum)


@contextlib.contextmanager
def _terminate_cleanly() -> Iterator[None]:
    """Turn SIGINT, SIGTERM and SIGHUP into an exception for the duration of a command."""
    wanted = [getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)]
    try:
        previous = {signum: signal.signal(signum, _terminate) for signum in wanted}
    except ValueError:  # not the main thread: leave signals alone
        previous = {}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _Group(click.Group):
    """A group whose usage errors are one ``freezekeras: error:`` line, exit code 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            with _terminate_cleanly():
                code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _Terminated as stop:
            name = signal.Signals(stop.args[0]).name
            click.echo(f"freezekeras: stopped by {name}; nothing was written", err=True)
            sys.exit(128 + stop.args[0])
        except _NO_ARGS_IS_HELP as exc:  # bare "freezekeras": the help text, as Click shows it
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            where = f" Run '{exc.ctx.command_path} --help' for usage." if exc.ctx else ""
            _fail(f"{exc.format_message()}{where}", EXIT_USAGE_ERROR)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:  # Click's own answer to an interrupted prompt
            click.echo("freezekeras: aborted; nothing was written", err=True)
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else EXIT_OK)


@click.group(name="freezekeras", cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the versions of freezekeras, TensorFlow, tf-keras, h5py and protobuf.")
def main() -> None:
    """Freeze Keras .h5 models into TensorFlow graphs (.pb) that serve anywhere.

    Exit codes: 0 success, 1 model or conversion error, 2 usage error,
    3 verification failed, 4 inspect --check found problems.
    """


@main.command()
@click.argument("model", type=click.Path(path_type=Path, dir_okay=True))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Output file, or an existing folder. Default: MODEL with .pb (.pbtxt with --text).")
@click.option("--output-node", "output_nodes", multiple=True, metavar="NAME",
              help="Freeze this node instead of the model's outputs (repeatable).")
@click.option("--text", is_flag=True, help="Write protobuf text (pbtxt) instead of binary.")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Compare the frozen graph with Keras' predictions on random inputs.")
@click.option("--atol", type=click.FloatRange(min=0), metavar="FLOAT",
              help="Largest accepted difference. Default: 1e-4 x the largest Keras output (at least 1e-4).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the random verification inputs.")
@model_options
@json_option
@verbose_option
@_reports_errors
def convert(model: Path, output: Path | None, output_nodes: tuple[str, ...], text: bool, verify: bool,
            atol: float | None, seed: int, architecture: Path | None, custom_objects: Path | None,
            allow_lambda: bool, as_json: bool, verbose: bool) -> None:
    """Freeze the Keras model MODEL (.h5) into a TensorFlow graph and print its node names."""
    from freezekeras.api import convert as run_convert
    from freezekeras.rendering import conversion_text, to_json
    from freezekeras.results import ConvertOptions

    options = ConvertOptions(output=output, output_nodes=output_nodes, text=text, verify=verify,
                             atol=atol, seed=seed, architecture=architecture,
                             custom_objects=custom_objects, allow_lambda=allow_lambda, verbose=verbose)
    result = run_convert(model, options, on_step=_progress_printer(model))
    for warning in result.warnings:
        click.echo(f"freezekeras: warning: {result.output}: {warning}", err=True)
    click.echo(to_json(result) if as_json else conversion_text(result))


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--check", is_flag=True,
              help="Exit with code 4 if the graph's lint finds errors (a CI gate for frozen graphs).")
@click.option("--build", is_flag=True,
              help="Build a Keras model in tf-keras (imports TensorFlow) for exact nodes and output shapes. "
                   "Implied by --custom-objects and --allow-lambda.")
@model_options
@json_option
@verbose_option
@_reports_errors
def inspect(path: Path, check: bool, build: bool, architecture: Path | None, custom_objects: Path | None,
            allow_lambda: bool, as_json: bool, verbose: bool) -> None:
    """List the inputs and outputs of PATH (a Keras .h5/.keras model or a frozen graph .pb/.pbtxt); lint a graph."""
    from freezekeras.api import inspect as run_inspect
    from freezekeras.errors import CheckFailedError, UsageError
    from freezekeras.rendering import inspection_text, to_json

    result = run_inspect(path, architecture=architecture, custom_objects=custom_objects,
                         allow_lambda=allow_lambda, verbose=verbose, build=build)
    if check and "lint" not in result.details:
        raise UsageError(f"{path}: --check lints frozen graphs, and this is a Keras model. "
                         f"Convert it and check the .pb, or drop --check.")
    click.echo(to_json(result) if as_json else inspection_text(result))
    errors = result.lint_errors if check else []
    if errors:
        kinds = "; ".join(finding["message"] for finding in errors)
        raise CheckFailedError(f"{path}: the check found {len(errors)} kind{'s' if len(errors) > 1 else ''} "
                               f"of problem: {kinds}. Freeze the model for inference (freezekeras convert) "
                               "or remove these nodes.")


def _progress_printer(model: Path):
    """Report step timings on stderr when it is a terminal; otherwise stay silent."""
    if not sys.stderr.isatty():
        return None

    def report(step: str, seconds: float) -> None:
        click.echo(f"freezekeras: {model}: {step} done in {seconds:.1f} s", err=True)

    return report
