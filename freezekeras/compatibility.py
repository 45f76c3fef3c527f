"""The compatibility report: convert every Keras model in a folder and tabulate what happened.

Run it as ``freezekeras report FOLDER [-o FILE.md]``. Each model is
converted with :func:`freezekeras.convert` and the default options (no
``allow_lambda``, no custom objects), so models needing them are refused with
their reason. A weights-only ``.h5`` is given the architecture JSON beside it;
a model with recorded predictions beside it (``NAME_inputs_and_outputs.h5``)
is also checked against them (``ConvertOptions.reference``).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from freezekeras.api import convert
from freezekeras.errors import (
    ConversionError,
    FreezeKerasError,
    LambdaLayerError,
    ModelFileError,
    ReferenceMismatchError,
    UnknownObjectError,
    UsageError,
    VerificationError,
    WeightsOnlyError,
    error_summary,
)
from freezekeras.kerasfile.h5file import text_attribute
from freezekeras.paths import H5_SUFFIXES
from freezekeras.results import ConvertOptions

#: A reference case counts as reproducing the recorded predictions within this difference.
REFERENCE_ATOL = 1e-5
RECORDING_SUFFIX = "_inputs_and_outputs.h5"
#: How the summary line counts refusals, most specific class first.
REFUSAL_KINDS = (
    (WeightsOnlyError, "weights only"),
    (LambdaLayerError, "Lambda layers"),
    (UnknownObjectError, "unknown custom layers"),
    (ModelFileError, "not a readable Keras model"),
    (ConversionError, "cannot be built or converted"),
    (UsageError, "usage errors"),
)


@dataclass(frozen=True)
class Case:
    """One model to convert.

    Attributes:
        model: The ``.h5`` file.
        architecture: The architecture JSON for a weights-only file, or ``None``.
        reference: The recorded inputs and predictions for it, or ``None``.
    """

    model: Path
    architecture: Path | None = None
    reference: Path | None = None


@dataclass(frozen=True)
class Row:
    """What converting one :class:`Case` gave.

    Attributes:
        case: The model.
        keras_version: The file's ``keras_version`` (or its architecture's), or ``None``.
        backend: The file's ``backend`` (or its architecture's), or ``None``.
        outcome: ``"converted"``, ``"refused"`` (a FreezeKerasError: the
            model is not convertible as it is) or ``"failed"`` (verification
            failed, or an unexpected exception).
        reason: Why it was refused or failed (the error's first sentence).
        kind: The refusal's kind, for the summary line; ``""`` otherwise.
        live_diff: The largest difference from Keras on random inputs, if compared.
        reference_diff: The largest difference from the recorded predictions, if compared.
    """

    case: Case
    keras_version: str | None
    backend: str | None
    outcome: str
    reason: str = ""
    kind: str = ""
    live_diff: float | None = None
    reference_diff: float | None = None

    @property
    def reproduces_reference(self) -> bool:
        """The frozen graph reproduced the recorded predictions within :data:`REFERENCE_ATOL`."""
        return self.reference_diff is not None and self.reference_diff <= REFERENCE_ATOL


def find_cases(folder: Path) -> list[Case]:
    """Every model under ``folder`` (recursively), in path order.

    ``*_inputs_and_outputs.h5`` files are recordings, not models: each is the
    reference of ``NAME_model.h5`` or ``NAME_weights.h5`` beside it. A file
    without a model config gets the architecture JSON beside it, if any:
    ``X.json`` for ``X.h5``, or ``NAME_config.json`` for ``NAME_weights.h5``.
    """
    models = sorted(path for path in folder.rglob("*")
                    if path.suffix.lower() in H5_SUFFIXES and not path.name.endswith(RECORDING_SUFFIX)
                    and path.is_file())
    return [Case(model, _architecture_for(model), _recording_for(model)) for model in models]


def run_case(case: Case, workdir: Path) -> Row:
    """Convert one model into ``workdir`` and say what happened; never raises but for KeyboardInterrupt."""
    version, backend = read_versions(case)
    options = ConvertOptions(output=workdir / "model.pb", architecture=case.architecture, reference=case.reference)
    facts = {"case": case, "keras_version": version, "backend": backend}
    try:
        result = convert(case.model, options)
    except ReferenceMismatchError as exc:
        return Row(**facts, outcome="failed", reason=short_reason(exc, case),
                   live_diff=_live_diff(case, workdir), reference_diff=exc.verification.max_abs_diff)
    except VerificationError as exc:
        return Row(**facts, outcome="failed", reason=short_reason(exc, case),
                   live_diff=exc.verification.max_abs_diff if exc.verification else None)
    except FreezeKerasError as exc:
        return Row(**facts, outcome="refused", reason=short_reason(exc, case), kind=_refusal_kind(exc))
    except Exception as exc:  # a freezekeras bug: recorded, and the report goes on
        return Row(**facts, outcome="failed", reason=f"unexpected {type(exc).__name__}: {error_summary(exc)}")
    finally:
        (workdir / "model.pb").unlink(missing_ok=True)
    return Row(**facts, outcome="converted",
               live_diff=result.verification.max_abs_diff if result.verification else None,
               reference_diff=result.reference.max_abs_diff if result.reference else None)


def compatibility_report(folder: Path, *, on_row: Callable[[int, int, Row, float], None] | None = None
                         ) -> list[Row]:
    """Convert every model under ``folder`` (see :func:`find_cases`) and return one row each.

    Args:
        folder: The folder to search.
        on_row: Called after each model with ``(number, total, row, seconds)``.
    """
    cases = find_cases(folder)
    rows = []
    with tempfile.TemporaryDirectory(prefix="freezekeras-report-") as workdir:
        for number, case in enumerate(cases, 1):
            start = time.perf_counter()
            rows.append(run_case(case, Path(workdir)))
            if on_row is not None:
                on_row(number, len(cases), rows[-1], time.perf_counter() - start)
    return rows


def report(folder: Path, *, on_row: Callable[[int, int, Row, float], None] | None = None) -> str:
    """Convert every Keras ``.h5`` model under ``folder`` and return the Markdown compatibility report.

    Args:
        folder: The folder of models (subfolders included).
        on_row: Called after each model with its number, the count of models, its row and
            the seconds it took.

    Returns:
        The report: a table with a row per model and the summary line.
    """
    return markdown(folder, compatibility_report(folder, on_row=on_row), versions())


def read_versions(case: Case) -> tuple[str | None, str | None]:
    """``keras_version`` and ``backend`` of the file (with h5py), else of its architecture JSON."""
    found: dict[str, str | None] = {"keras_version": None, "backend": None}
    try:
        import h5py

        with h5py.File(case.model, "r") as handle:
            for key in found:
                found[key] = text_attribute(handle.attrs.get(key))
    except Exception:  # not HDF5, damaged: the conversion will say why
        pass
    if case.architecture is not None:
        try:
            config = json.loads(case.architecture.read_text(encoding="utf-8"))
            for key in found:
                found[key] = found[key] or text_attribute(config.get(key))
        except (OSError, ValueError, AttributeError):
            pass
    return found["keras_version"], found["backend"]


def short_reason(exc: BaseException, case: Case) -> str:
    """The error's first sentence, without the model's path and with paths shortened to file names."""
    message = str(exc)
    prefix = f"{case.model}: "
    if message.startswith(prefix):
        message = message[len(prefix):]
    for path in (case.model, case.architecture, case.reference):
        if path is not None:
            message = message.replace(str(path), path.name)
    first, dot, _rest = message.partition(". ")
    return first + ("." if dot else "")


def markdown(folder: Path, rows: Sequence[Row], versions: str) -> str:
    """The report as Markdown: a title, what was done, the table and the summary line.

    Args:
        folder: The folder searched, as it should appear (files are named relative to it).
        rows: What :func:`compatibility_report` returned.
        versions: The versions that converted them (see :func:`versions`).
    """
    lines = [
        "# Compatibility report",
        "",
        f"Every Keras model in `{folder}`, converted by {versions} with the default options "
        "(no `--allow-lambda`, no `--custom-objects`). *live*: the largest difference from Keras' own "
        "predictions on random inputs; *reference*: the largest difference from the predictions the "
        f"original Keras recorded (`NAME{RECORDING_SUFFIX}`), where the folder holds them.",
        "",
        "| file | keras_version | backend | outcome | max diff (live) | max diff (reference) |",
        "|---|---|---|---|---|---|",
        *(table_row(row, folder) for row in rows),
        "",
        f"**Summary:** {summary(rows)}",
    ]
    return "\n".join(lines) + "\n"


def table_row(row: Row, folder: Path) -> str:
    """One Markdown table row; files are named relative to ``folder``."""
    case = row.case
    names = [case.model] + ([case.architecture] if case.architecture else [])
    files = " + ".join(f"`{_relative(path, folder)}`" for path in names)
    if row.outcome == "converted":
        outcome = "converted + verified"
    else:
        outcome = f"{row.outcome}: {row.reason}"
    if case.reference is None:
        reference = "—"
    elif row.reference_diff is None:
        reference = "not run"
    else:
        reference = _number(row.reference_diff)
    cells = [files, row.keras_version or "—", row.backend or "—", outcome,
             "—" if row.live_diff is None else _number(row.live_diff), reference]
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def summary(rows: Sequence[Row]) -> str:
    """One line: how many models converted, were refused (by kind) and failed; how many references reproduced."""
    outcomes = Counter(row.outcome for row in rows)
    kinds = Counter(row.kind for row in rows if row.outcome == "refused")
    refused = f"{outcomes['refused']} refused"
    if kinds:
        refused += " (" + ", ".join(f"{count} {kind}" for kind, count in
                                    sorted(kinds.items(), key=lambda item: (-item[1], item[0]))) + ")"
    references = [row for row in rows if row.case.reference is not None]
    line = (f"{len(rows)} model{'' if len(rows) == 1 else 's'}: {outcomes['converted']} converted and verified, "
            f"{refused}, {outcomes['failed']} failed")
    if references:
        reproduced = sum(row.reproduces_reference for row in references)
        line += (f"; reference cases: {reproduced} of {len(references)} reproduce the recorded "
                 f"predictions to {_number(REFERENCE_ATOL)}")
    return line


def versions() -> str:
    """``freezekeras X (TensorFlow Y, tf-keras Z)``, as installed."""
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    from freezekeras import __version__

    return f"freezekeras {__version__} (TensorFlow {version('tensorflow')}, tf-keras {version('tf-keras')})"


def _architecture_for(model: Path) -> Path | None:
    if _has_model_config(model):
        return None
    candidates = [model.with_suffix(".json")]
    if model.stem.endswith("_weights"):
        candidates.append(model.with_name(model.stem[: -len("_weights")] + "_config.json"))
    return next((path for path in candidates if path.is_file()), None)


def _recording_for(model: Path) -> Path | None:
    for suffix in ("_model", "_weights"):
        if model.stem.endswith(suffix):
            recording = model.with_name(model.stem[: -len(suffix)] + RECORDING_SUFFIX)
            if recording.is_file():
                return recording
    return None


def _has_model_config(model: Path) -> bool:
    try:
        import h5py

        with h5py.File(model, "r") as handle:
            return "model_config" in handle.attrs
    except Exception:  # not HDF5 or damaged: converted as it is, and refused with the reason
        return True


def _live_diff(case: Case, workdir: Path) -> float | None:
    """The live comparison of a conversion whose reference check failed: rerun without the reference."""
    try:
        result = convert(case.model, ConvertOptions(output=workdir / "model.pb", architecture=case.architecture))
    except Exception:
        return None
    finally:
        (workdir / "model.pb").unlink(missing_ok=True)
    return result.verification.max_abs_diff if result.verification else None


def _refusal_kind(exc: FreezeKerasError) -> str:
    return next((kind for cls, kind in REFUSAL_KINDS if isinstance(exc, cls)), type(exc).__name__)


def _relative(path: Path, folder: Path) -> str:
    try:
        return str(path.relative_to(folder))
    except ValueError:
        return path.name


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _number(value: float) -> str:
    """Two significant digits, exponents without padding: ``1.9e-6``, ``0.012``, ``0``."""
    return "NaN" if math.isnan(value) else f"{value:.2g}".replace("e-0", "e-").replace("e+0", "e+")
