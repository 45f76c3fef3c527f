"""Parallel batches: ``convert MODEL... -o DIR/ --jobs N`` and ``convert_many(..., jobs=N)``.

Worker processes must change nothing but the time taken: the same bytes, the
same reports (in the given order), the same exit code as one process; a
stopped batch leaves no temporary or partial file; a terminal sees progress.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import (
    FREEZEKERAS,
    build_lambda,
    build_weights_only,
    copy,
    describe,
    files_under,
    needs_script,
    noise_function,
    run_cli,
    run_with_stderr_on_a_terminal,
    user_env,
)

import freezekeras
from freezekeras.errors import EXIT_USAGE_ERROR, UsageError, VerificationError
from freezekeras.graphdef.reading import read_graph_def

STATUS = re.compile(r"^freezekeras: (?P<model>\S+): converted -> (?P<output>\S+) \(")


@pytest.fixture
def mixed(model_dir: Path, tmp_path: Path) -> list[Path]:
    """Good models, a file that is no model, weights only, one whose verification fails, a missing one."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "notes.h5").write_text("not a model\n")
    return [
        copy(model_dir / "dense.h5", src / "dense.h5"),
        src / "notes.h5",
        copy(model_dir / "multi_io.h5", src / "multi_io.h5"),
        build_weights_only(src / "weights.h5"),
        build_lambda(src / "noisy.h5", noise_function(), name="noise"),  # verification fails (exit 3)
        copy(model_dir / "stacked_lstm.h5", src / "stacked_lstm.h5"),
        copy(model_dir / "conv_bn.h5", src / "conv_bn.h5"),
        src / "missing.h5",
    ]


def _without_timings(text: str, out: Path) -> list[dict]:
    """The reports without their timings; noisy.h5's differences and tolerance, drawn afresh by each run
    (no seed), left out."""
    reports = json.loads(text)
    for report in reports:
        report.pop("timings", None)
        if report["model"].endswith("noisy.h5"):
            # The tolerance scales with Keras' largest output, which the noise moves too.
            report["error"] = re.sub(r"(by up to|tolerance) [^\s)]+", r"\1 X", report["error"])
            report["verification"] = {key: value for key, value in report["verification"].items()
                                      if key not in {"max_abs_diff", "per_output", "atol"}}
    return json.loads(json.dumps(reports).replace(str(out), "OUT"))


@pytest.mark.slow
def test_two_jobs_give_the_same_files_reports_and_exit_code_as_one(mixed: list[Path], tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"

    serial = run_cli("convert", *mixed, "--allow-lambda", "-o", f"{one}/", "--json")
    parallel = run_cli("convert", *mixed, "--allow-lambda", "-o", f"{two}/", "--json", "--jobs", "2")

    assert serial.exit_code == EXIT_USAGE_ERROR, describe(serial)  # missing.h5, the most serious
    assert parallel.exit_code == serial.exit_code, describe(parallel)
    assert _without_timings(parallel.stdout, two) == _without_timings(serial.stdout, one)
    assert [r["status"] for r in json.loads(parallel.stdout)] == [
        "converted", "failed", "converted", "failed", "failed", "converted", "converted", "failed"]
    assert files_under(two) == files_under(one) == ["conv_bn.pb", "dense.pb", "multi_io.pb", "stacked_lstm.pb"]
    for name in files_under(one):
        assert (two / name).read_bytes() == (one / name).read_bytes(), name
    # the status lines may come in another order; the lines themselves and the summary do not change
    serial_lines, parallel_lines = serial.stderr.splitlines(), parallel.stderr.splitlines()
    assert parallel_lines[-1] == serial_lines[-1] == "freezekeras: 8 models: 4 converted, 4 failed"
    def same(lines: list[str]) -> list[str]:
        return sorted(re.sub(r"by up to \S+", "by up to X", line) for line in lines)

    assert same(parallel_lines[:-1]) == same(line.replace(str(one), str(two)) for line in serial_lines[:-1])


@pytest.mark.slow
def test_the_api_returns_the_items_in_order_and_reports_each_once(mixed: list[Path], tmp_path: Path) -> None:
    seen, steps = [], []
    options = freezekeras.ConvertOptions(output=tmp_path / "out", allow_lambda=True)

    items = freezekeras.convert_many(mixed, options, create_output=True, jobs=2, on_result=seen.append,
                                     on_step=lambda model, step, seconds: steps.append((model, step)))

    assert [item.model for item in items] == mixed
    assert sorted(map(str, (item.model for item in seen))) == sorted(map(str, mixed))
    assert [item.exit_code for item in items] == [0, 1, 0, 1, 3, 0, 0, 2]
    failed = items[4].exception  # the worker's VerificationError, back in this process with its comparison
    assert isinstance(failed, VerificationError) and failed.verification is not None
    assert {step for model, step in steps if model == mixed[0]} == {"load", "freeze", "write", "verify"}


def test_negative_jobs_are_refused(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="jobs -1"):
        freezekeras.convert_many([model_dir / "dense.h5"], jobs=-1)
    result = run_cli("convert", model_dir / "dense.h5", model_dir / "nested.h5", "-o", f"{tmp_path}/", "--jobs", "-1")
    assert result.exit_code == EXIT_USAGE_ERROR and result.stdout == "", describe(result)
    assert files_under(tmp_path) == []


@pytest.mark.subprocess
@pytest.mark.slow
@needs_script
def test_a_stopped_parallel_batch_leaves_no_temporary_or_partial_file(model_dir: Path, tmp_path: Path) -> None:
    models = [copy(model_dir / "dense.h5", tmp_path / "in" / "a.h5")]
    models += [copy(model_dir / "stacked_lstm.h5", tmp_path / "in" / f"{name}.h5") for name in "bcdefgh"]
    out = tmp_path / "out"
    child = subprocess.Popen([str(FREEZEKERAS), "convert", *map(str, models), "-o", f"{out}/", "--jobs", "2"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=user_env())
    first = child.stderr.readline()  # the first model reported: send SIGINT now
    child.send_signal(signal.SIGINT)
    stdout, rest = child.communicate(timeout=120)

    lines = [first.rstrip("\n"), *rest.splitlines()]
    assert child.returncode == 128 + signal.SIGINT, lines
    reported = [STATUS.match(line) for line in lines[:-1]]
    assert reported and all(reported), lines  # status lines only: no TensorFlow noise from the workers
    count = len(reported)
    assert lines[-1] == (f"freezekeras: stopped by SIGINT; the {count} model{'s' if count > 1 else ''} converted "
                         f"before {'are' if count > 1 else 'is'} kept, nothing else was written")
    kept = files_under(out)
    assert not [name for name in os.listdir(out) if name.endswith(".tmp")], kept
    assert {Path(match["output"]).name for match in reported} <= set(kept)
    for name in kept:  # whole graphs only
        assert read_graph_def(out / name).node, name
    assert stdout == ""
    time.sleep(0.5)  # no worker outlives the command, none writes later
    assert files_under(out) == kept


@pytest.mark.subprocess
@pytest.mark.slow
@needs_script
def test_a_terminal_sees_each_models_steps_and_status(model_dir: Path, tmp_path: Path) -> None:
    models = [copy(model_dir / name, tmp_path / "in" / name) for name in ("dense.h5", "multi_io.h5", "nested.h5")]
    done, lines = run_with_stderr_on_a_terminal([str(FREEZEKERAS), "convert", *map(str, models), "-o",
                                                 f"{tmp_path / 'out'}/", "--jobs", "2"])
    assert done.returncode == 0
    for model in models:
        steps = [line.split(": ")[-1].split(" done")[0] for line in lines
                 if line.startswith(f"freezekeras: {model}: ") and line.endswith(" s")]
        assert steps == ["load", "freeze", "write", "verify"], lines
        assert sum(bool(STATUS.match(line)) and f" {model}:" in line for line in lines) == 1, lines
    assert lines[-1] == "freezekeras: 3 models: 3 converted, 0 failed"
