"""What the JSON report costs per test, as the suite grows.

Generates suites of trivial marked tests (ten to a file; 500, 2000 and 5000 by default)
and times whole ``python -m pytest -q --energy-meter=none`` runs of each in subprocesses,
without and with ``--energy-json`` (``--energy-meter=none`` so that no meter's cost hides
the report's). The report must hold every test, or the script stops. After a warm-up run
of each, the two variants run in turn ``--runs`` times and the best run of each is kept.
It prints ms per test of wall-clock time and of CPU time (user + system of the pytest
process, which a busy machine disturbs less), and the ratios of the two variants; a report
whose cost per test is constant keeps the ratios flat as the suite grows.

    python benchmarks/bench_json_report.py [--tests 500 2000 5000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_overhead import write_suite  # noqa: E402

REPORT = "energy.json"
VARIANTS = {"no report": (), "--energy-json": (f"--energy-json={REPORT}",)}


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_run(directory: Path, options: Sequence[str], tests: int) -> Tuple[float, float]:
    """Wall-clock and CPU seconds of one pytest run; fails loudly if a test failed or the report misses a test."""
    (directory / REPORT).unlink(missing_ok=True)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--energy-meter=none", *options]
    start, start_cpu = time.perf_counter(), children_cpu_s()
    completed = subprocess.run(command, cwd=directory, capture_output=True, text=True, env=dict(os.environ))
    elapsed, cpu = time.perf_counter() - start, children_cpu_s() - start_cpu
    if completed.returncode != 0 or f"{tests} passed" not in completed.stdout:
        raise RuntimeError(f"unexpected run (exit {completed.returncode}):\n{completed.stdout[-3000:]}{completed.stderr[-2000:]}")
    if options:
        reported = len(json.loads((directory / REPORT).read_text(encoding="utf-8"))["tests"])
        if reported != tests:
            raise RuntimeError(f"the report holds {reported} tests, not {tests}")
    return elapsed, cpu


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, nargs="+", default=[500, 2000, 5000], help="suite sizes")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per variant and size; the best is kept")
    options = parser.parse_args(argv or None)

    print(f"python -m pytest -q --energy-meter=none on trivial marked tests, best of {options.runs} runs ({sys.executable}):")
    print(f"  {'':>6} {'wall ms/test':>28} {'CPU ms/test':>28}")
    print(f"  {'tests':>6} {'no report':>10} {'--energy-json':>13} {'ratio':>5} {'no report':>10} {'--energy-json':>13} {'ratio':>5}")
    with tempfile.TemporaryDirectory(prefix="bench-json-report-") as name:
        for tests in options.tests:
            directory = Path(name, f"suite-{tests}")
            write_suite(directory, tests, marked=True)
            timings: Dict[str, List[Tuple[float, float]]] = {label: [] for label in VARIANTS}
            for variant in VARIANTS.values():  # warm the bytecode and file caches
                time_run(directory, variant, tests)
            for _ in range(options.runs):
                for label, variant in VARIANTS.items():
                    timings[label].append(time_run(directory, variant, tests))
            columns = []
            for kind in (0, 1):  # wall, CPU
                plain, report = (min(run[kind] for run in timings[label]) for label in VARIANTS)
                columns.append(f"{1000 * plain / tests:10.2f} {1000 * report / tests:13.2f} {report / plain:5.2f}")
            print(f"  {tests:>6} {' '.join(columns)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
