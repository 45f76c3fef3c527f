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


def alternating(commands: dict[str, list[str]], runs: int, label: str) -> dict[str, list[tuple[float, float]]]:
    """Run every command ``runs`` times, taking turns (each goes first in turn); (seconds, peak MB) per run.

    Each run is reported on stderr as it ends, prefixed with ``label``.
    """
    import sys

    tools = list(commands)
    results: dict[str, list[tuple[float, float]]] = {tool: [] for tool in tools}
    for index in range(runs):
        shift = index % len(tools)
        for tool in tools[shift:] + tools[:shift]:
            results[tool].append(run(commands[tool]))
            seconds, mb = results[tool][-1]
            print(f"  {label} run {index + 1} {tool}: {seconds:.2f} s {mb:.0f} MB", file=sys.stderr)
    return results
