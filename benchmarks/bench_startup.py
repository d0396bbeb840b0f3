"""What an installed but unused pytest-energy costs at start-up.

Generates a suite of unmarked tests in a temporary directory, times
``python -m pytest --collect-only -q`` on it with the plugin disabled (``-p no:energy``)
and enabled, interleaved (each round runs both, the first of the pair alternating), and
prints each variant's median with its spread (interquartile range, min-max), the ratio of
the medians, and the median and IQR of the per-round ratios. Then runs
``python -X importtime -c "import pytest_energy.plugin"`` and checks that no heavy
module (torch, CodeCarbon, pynvml, THOP) is imported with the plugin.

    python benchmarks/bench_startup.py [--tests 200] [--runs 15]

Both wall-clock and CPU time (user + system of the child) are shown: on a loaded machine
the wall-clock spread grows, CPU time much less; the per-round ratio is the figure least
disturbed by slow drifts in load.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Tuple

HEAVY_MODULES = ("torch", "codecarbon", "pynvml", "thop")
TESTS_PER_FILE = 10


def write_suite(directory: Path, tests: int) -> None:
    """``tests`` trivial tests, ten to a file, with a pytest.ini so the directory is the rootdir."""
    (directory / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    for first in range(0, tests, TESTS_PER_FILE):
        count = min(TESTS_PER_FILE, tests - first)
        body = "".join(f"def test_{first + index}():\n    assert {first + index} >= 0\n\n\n" for index in range(count))
        (directory / f"test_suite_{first // TESTS_PER_FILE:03d}.py").write_text(body, encoding="utf-8")


def cached_bytecode_environment() -> Dict[str, str]:
    """This environment, but with bytecode written and read (``PYTHONDONTWRITEBYTECODE`` dropped): the warm-up caches it."""
    return {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def time_collection(directory: Path, extra: Sequence[str]) -> Tuple[float, float]:
    """Wall-clock and CPU (user + system) seconds of one collection in a child process."""
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, cwd=directory, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=cached_bytecode_environment())
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def print_comparison(what: str, timings: Mapping[str, Sequence[float]]) -> None:
    """Each variant's median, IQR and min-max, the ratio of the medians, and the per-round ratios."""
    medians = {label: statistics.median(values) for label, values in timings.items()}
    without, with_plugin = medians.values()
    print(f"  {what}:")
    for label, values in timings.items():
        low, high = quartiles(values)
        print(f"    {label:<30} median {1000 * medians[label]:7.1f} ms   IQR {1000 * low:.1f}-{1000 * high:.1f}   "
              f"min-max {1000 * min(values):.1f}-{1000 * max(values):.1f}")
    ratios = [plugged / bare for bare, plugged in zip(*timings.values())]
    low, high = quartiles(ratios)
    print(f"    ratio of medians with/without: {with_plugin / without:.3f}  (+{1000 * (with_plugin - without):.1f} ms)")
    print(f"    per-round ratio: median {statistics.median(ratios):.3f}, IQR {low:.3f}-{high:.3f}, "
          f"min-max {min(ratios):.3f}-{max(ratios):.3f}")


def import_times(module: str) -> Dict[str, int]:
    """Cumulative import time in microseconds of every module imported with ``module``."""
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True, text=True, check=True,
        env=cached_bytecode_environment(),
    )
    times: Dict[str, int] = {}
    for line in completed.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = (part.strip() for part in line[len("import time:"):].split("|"))
        times[name] = int(cumulative)
    return times


def quartiles(values: Sequence[float]) -> Tuple[float, float]:
    """The first and third quartiles (the interquartile range's ends)."""
    first, _, third = statistics.quantiles(values, n=4, method="inclusive")
    return first, third


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=200, help="tests in the generated suite")
    parser.add_argument("--runs", type=int, default=15, help="timed collections per variant (at least 2)")
    options = parser.parse_args(argv or None)

    with tempfile.TemporaryDirectory(prefix="bench-startup-") as name:
        directory = Path(name)
        write_suite(directory, options.tests)
        variants = {"without plugin (-p no:energy)": ["-p", "no:energy"], "with plugin": []}
        for extra in variants.values():  # warm the bytecode (written even under PYTHONDONTWRITEBYTECODE) and file caches
            time_collection(directory, extra)
        wall: Dict[str, List[float]] = {label: [] for label in variants}
        cpu: Dict[str, List[float]] = {label: [] for label in variants}
        for round_index in range(options.runs):
            order = list(variants.items()) if round_index % 2 == 0 else list(reversed(variants.items()))
            for label, extra in order:
                wall_s, cpu_s = time_collection(directory, extra)
                wall[label].append(wall_s)
                cpu[label].append(cpu_s)

    load = f", load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs" if hasattr(os, "getloadavg") else ""
    print(f"pytest --collect-only -q on {options.tests} tests, {options.runs} interleaved rounds ({sys.executable}{load}):")
    print_comparison("wall-clock", wall)
    print_comparison("CPU time (user + system; steadier on a loaded machine)", cpu)

    times = import_times("pytest_energy.plugin")
    own = sorted(((value, name) for name, value in times.items() if name.startswith("pytest_energy")), reverse=True)
    heavy = sorted({name.split(".")[0] for name in times} & set(HEAVY_MODULES))
    plugin_ms, pytest_ms = times.get("pytest_energy.plugin", 0) / 1000, times.get("pytest", 0) / 1000
    print(f"import pytest_energy.plugin: {plugin_ms:.1f} ms cumulative, of which pytest itself {pytest_ms:.1f} ms "
          f"(imported anyway): {plugin_ms - pytest_ms:.1f} ms of its own; slowest own modules:")
    for value, name in own[1:6]:
        print(f"  {name:<40} {value / 1000:6.1f} ms")
    print(f"heavy modules imported with the plugin: {', '.join(heavy) if heavy else 'none'}")
    return 1 if heavy else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
