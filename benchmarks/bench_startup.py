"""What an installed but unused pytest-energy costs at start-up.

Generates a suite of unmarked tests in a temporary directory, times
``python -m pytest --collect-only -q`` on it with the plugin disabled (``-p no:energy``)
and enabled, alternating the two, and prints the medians and their ratio. Then runs
``python -X importtime -c "import pytest_energy.plugin"`` and checks that no heavy
module (torch, CodeCarbon, pynvml, THOP) is imported with the plugin.

    python benchmarks/bench_startup.py [--tests 200] [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence

HEAVY_MODULES = ("torch", "codecarbon", "pynvml", "thop")
TESTS_PER_FILE = 10


def write_suite(directory: Path, tests: int) -> None:
    """``tests`` trivial tests, ten to a file, with a pytest.ini so the directory is the rootdir."""
    (directory / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    for first in range(0, tests, TESTS_PER_FILE):
        count = min(TESTS_PER_FILE, tests - first)
        body = "".join(f"def test_{first + index}():\n    assert {first + index} >= 0\n\n\n" for index in range(count))
        (directory / f"test_suite_{first // TESTS_PER_FILE:03d}.py").write_text(body, encoding="utf-8")


def time_collection(directory: Path, extra: Sequence[str]) -> float:
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *extra]
    start = time.perf_counter()
    subprocess.run(command, cwd=directory, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def import_times(module: str) -> Dict[str, int]:
    """Cumulative import time in microseconds of every module imported with ``module``."""
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True, text=True, check=True
    )
    times: Dict[str, int] = {}
    for line in completed.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = (part.strip() for part in line[len("import time:"):].split("|"))
        times[name] = int(cumulative)
    return times


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=200, help="tests in the generated suite")
    parser.add_argument("--runs", type=int, default=7, help="timed collections per variant")
    options = parser.parse_args(argv or None)

    with tempfile.TemporaryDirectory(prefix="bench-startup-") as name:
        directory = Path(name)
        write_suite(directory, options.tests)
        variants = {"without plugin (-p no:energy)": ["-p", "no:energy"], "with plugin": []}
        for extra in variants.values():  # warm the bytecode and file caches
            time_collection(directory, extra)
        timings: Dict[str, List[float]] = {label: [] for label in variants}
        for _ in range(options.runs):
            for label, extra in variants.items():
                timings[label].append(time_collection(directory, extra))

    medians = {label: statistics.median(values) for label, values in timings.items()}
    without, with_plugin = medians.values()
    print(f"pytest --collect-only -q on {options.tests} tests, median of {options.runs} runs ({sys.executable}):")
    for label, values in timings.items():
        print(f"  {label:<30} {1000 * medians[label]:7.1f} ms   (min {1000 * min(values):.1f}, max {1000 * max(values):.1f})")
    print(f"  ratio with/without: {with_plugin / without:.3f}  (+{1000 * (with_plugin - without):.1f} ms)")

    times = import_times("pytest_energy.plugin")
    own = sorted(((value, name) for name, value in times.items() if name.startswith("pytest_energy")), reverse=True)
    heavy = sorted({name.split(".")[0] for name in times} & set(HEAVY_MODULES))
    print(f"import pytest_energy.plugin: {times.get('pytest_energy.plugin', 0) / 1000:.1f} ms cumulative "
          f"(pytest itself: {times.get('pytest', 0) / 1000:.1f} ms); slowest own modules:")
    for value, name in own[1:6]:
        print(f"  {name:<40} {value / 1000:6.1f} ms")
    print(f"heavy modules imported with the plugin: {', '.join(heavy) if heavy else 'none'}")
    return 1 if heavy else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
