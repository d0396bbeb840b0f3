"""What measuring costs per test: the plugin's overhead on a suite of trivial tests.

Generates trivial tests (ten to a file) in a temporary directory and times whole
``python -m pytest -q`` runs of them in subprocesses, in six variants:

  a. ``-p no:energy``: the reference;
  b. the plugin loaded, no test marked;
  c. every test marked, ``--energy-meter=none`` (the plugin's own bookkeeping);
  d. every test marked, ``--energy-meter=codecarbon`` (what ``auto`` gives without NVML or RAPL);
  e. every test marked, ``--energy-meter=nvml`` on the fake pynvml of ``tests/fakes``
     (put in place by a conftest.py), so the NVML path is timed without a GPU;
  f. no plugin, and an autouse fixture that starts and stops a CodeCarbon
     ``OfflineEmissionsTracker`` around each test: what a user would write by hand.

The variants run in turn, one warm-up run each, then ``--runs`` rounds; the best
(shortest) run of each is kept. It prints ms per test, the ratio to (a), and the
added ms per test over (a).

    python benchmarks/bench_overhead.py [--tests 500] [--runs 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Dict, List, Sequence

TESTS_PER_FILE = 10
FAKES_DIR = Path(__file__).resolve().parent.parent / "tests"

FAKE_NVML_CONFTEST = textwrap.dedent(
    f"""
    import sys

    import pytest

    sys.path.insert(0, {str(FAKES_DIR)!r})
    from fakes import fake_pynvml

    fake_pynvml.install(pytest.MonkeyPatch(), fake_pynvml.gpus(250.0))
    """
)

NAIVE_CONFTEST = textwrap.dedent(
    """
    import pytest
    from codecarbon import OfflineEmissionsTracker


    @pytest.fixture(autouse=True)
    def energy_tracker():
        tracker = OfflineEmissionsTracker(country_iso_code="USA", save_to_file=False, log_level="error")
        tracker.start()
        yield tracker
        tracker.stop()
    """
)


@dataclasses.dataclass(frozen=True)
class Variant:
    """One way to run the suite, and a text its output must contain (so a broken set-up is not timed)."""

    label: str
    suite: str
    options: Sequence[str]
    expect: str = ""


VARIANTS = (
    Variant("a. -p no:energy (reference)", "plain", ("-p", "no:energy")),
    Variant("b. plugin, no test marked", "plain", ()),
    Variant("c. all marked, meter none", "marked", ("--energy-meter=none",), "= energy ="),
    Variant("d. all marked, meter codecarbon", "marked", ("--energy-meter=codecarbon",), "codecarbon-"),
    Variant("e. all marked, meter nvml (fake)", "marked-nvml", ("--energy-meter=nvml",), "nvml-counter"),
    Variant("f. hand-written CodeCarbon fixture", "naive", ("-p", "no:energy")),
)


def write_suite(directory: Path, tests: int, marked: bool, conftest: str = "") -> None:
    """``tests`` trivial tests, ten to a file (all marked ``energy`` if ``marked``), with a pytest.ini."""
    directory.mkdir()
    (directory / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    if conftest:
        (directory / "conftest.py").write_text(conftest, encoding="utf-8")
    header = "import pytest\n\npytestmark = pytest.mark.energy\n\n\n" if marked else ""
    for first in range(0, tests, TESTS_PER_FILE):
        count = min(TESTS_PER_FILE, tests - first)
        body = "".join(f"def test_{first + index}():\n    assert {first + index} >= 0\n\n\n" for index in range(count))
        (directory / f"test_suite_{first // TESTS_PER_FILE:03d}.py").write_text(header + body, encoding="utf-8")


def time_run(directory: Path, variant: Variant, tests: int) -> float:
    """Wall-clock seconds of one pytest run; fails loudly if the run did not do what the variant says."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *variant.options]
    environment = {**os.environ, "CODECARBON_LOG_LEVEL": "error"}
    start = time.perf_counter()
    completed = subprocess.run(command, cwd=directory, capture_output=True, text=True, env=environment)
    elapsed = time.perf_counter() - start
    if completed.returncode != 0 or f"{tests} passed" not in completed.stdout or variant.expect not in completed.stdout:
        raise RuntimeError(f"{variant.label}: unexpected run (exit {completed.returncode}):\n{completed.stdout[-3000:]}{completed.stderr[-2000:]}")
    return elapsed


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=500, help="tests in the generated suite")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per variant; the best is kept")
    options = parser.parse_args(argv or None)

    timings: Dict[str, List[float]] = {variant.label: [] for variant in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as name:
        root = Path(name)
        write_suite(root / "plain", options.tests, marked=False)
        write_suite(root / "marked", options.tests, marked=True)
        write_suite(root / "marked-nvml", options.tests, marked=True, conftest=FAKE_NVML_CONFTEST)
        write_suite(root / "naive", options.tests, marked=False, conftest=NAIVE_CONFTEST)
        for variant in VARIANTS:  # warm the bytecode and file caches
            time_run(root / variant.suite, variant, options.tests)
        for _ in range(options.runs):
            for variant in VARIANTS:
                timings[variant.label].append(time_run(root / variant.suite, variant, options.tests))

    best = {label: min(values) for label, values in timings.items()}
    reference = best[VARIANTS[0].label]
    print(f"python -m pytest -q on {options.tests} trivial tests, best of {options.runs} runs ({sys.executable}):")
    print(f"  {'variant':<38} {'run':>8} {'ms/test':>8} {'ratio':>7} {'added ms/test':>14}")
    for variant in VARIANTS:
        seconds = best[variant.label]
        added = 1000 * (seconds - reference) / options.tests
        print(f"  {variant.label:<38} {seconds:7.2f}s {1000 * seconds / options.tests:8.2f} "
              f"{seconds / reference:7.2f} {added:+14.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
