"""The batch's report object: counts, exit code and summary line, as models come (no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from freezekeras.batch import BatchReport
from freezekeras.errors import EXIT_INTERNAL_ERROR, EXIT_MODEL_ERROR, EXIT_OK, EXIT_VERIFICATION_FAILED
from freezekeras.results import BatchItem, ConversionResult


def _converted(name: str) -> BatchItem:
    result = ConversionResult(model=Path(f"{name}.h5"), output=Path(f"{name}.pb"), inputs=(), outputs=(),
                              node_count=3, size_bytes=10, verification=None)
    return BatchItem(model=Path(f"{name}.h5"), result=result)


def _failed(name: str, code: int) -> BatchItem:
    return BatchItem(model=Path(f"{name}.h5"), error=f"{name}.h5: bad", exit_code=code)


def test_an_empty_report():
    report = BatchReport()
    assert (report.converted, report.failed, report.exit_code, str(report)) == (0, 0, EXIT_OK,
                                                                                 "0 models: 0 converted, 0 failed")


@pytest.mark.parametrize(("items", "counts", "code", "line"), [
    ([_converted("a")], (1, 0), EXIT_OK, "1 model: 1 converted, 0 failed"),
    ([_converted("a"), _failed("b", EXIT_VERIFICATION_FAILED)], (1, 1), EXIT_VERIFICATION_FAILED,
     "2 models: 1 converted, 1 failed"),
    ([_failed("a", EXIT_VERIFICATION_FAILED), _failed("b", EXIT_MODEL_ERROR), _converted("c")], (1, 2),
     EXIT_MODEL_ERROR, "3 models: 1 converted, 2 failed"),
    ([_failed("a", EXIT_MODEL_ERROR), _failed("b", EXIT_INTERNAL_ERROR)], (0, 2), EXIT_INTERNAL_ERROR,
     "2 models: 0 converted, 2 failed"),
])
def test_the_report_counts_as_models_come(items, counts, code, line):
    report = BatchReport()
    seen = []
    for item in items:
        report.add(item)
        seen.append(report.converted + report.failed)

    assert seen == list(range(1, len(items) + 1))
    assert (report.converted, report.failed) == counts
    assert report.exit_code == code
    assert str(report) == line
    assert report.items == items
