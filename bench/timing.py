"""Timing one child process, shared by the bench scripts (run them as ``python bench/NAME.py``)."""

from __future__ import annotations

import os
import subprocess
import time


def run(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process; exits if it fails."""
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(command)} exited with {code}")
    return seconds, usage.ru_maxrss / 1024  # KB on Linux
