"""What checking a stored run against the report schema costs, against reading it.

``--energy-compare`` reads the newest stored run of this hardware once per session and
checks it against the shipped ``report-schema.json`` (``store/runs.py``). This builds stored
runs of 100, 1000 and 5000 tests (each test with CPU and DRAM readings, as RAPL gives them),
writes them to a temporary directory, and times, best of ``--runs``: ``json.loads`` of the
file (the reference) and ``check_run_document`` on the parsed document. The first check in
the process (jsonschema's import and the validator's build) is timed apart.

    python benchmarks/bench_stored_run.py [--tests 100 1000 5000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Sequence

from pytest_energy.account.record import Record
from pytest_energy.measure.base import Measurement, Reading
from pytest_energy.report.json_report import build_document
from pytest_energy.store.runs import check_run_document

ENVIRONMENT = {"fingerprint": "0123456789abcdef", "cpu_model": "x", "cpu_count": 2, "ram_bytes": 1, "gpus": [],
               "gpu_count": 0, "gpu_driver": None, "python": "3.11", "pytest": "9", "plugin": "0.1.0",
               "meter": {"choice": "rapl"}}


def stored_run(tests: int) -> Dict[str, Any]:
    """A valid stored run of ``tests`` measured tests."""
    records = [
        Record(f"tests/test_m{index // 10}.py::test_{index % 10}", "test", "passed",
               Measurement(0.5, (Reading("cpu", "package-0", 20.0, "rapl-counter"), Reading("ram", "dram-0", 2.0, "rapl-counter"))),
               cap_j=100.0, verdict="pass", extra={"energy_normalized_j": 9.0})
        for index in range(tests)
    ]
    return {**build_document(records, ENVIRONMENT, {}, {"meter": "rapl", "caps_j": {}}), "commit": {}}


def best_ms(action: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times) * 1000


def main(argv: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--runs", type=int, default=5)
    arguments = parser.parse_args(argv or None)
    start = time.perf_counter()
    check_run_document(stored_run(1))
    print(f"first check in this process (jsonschema import, validator build): {(time.perf_counter() - start) * 1000:.0f} ms")
    print(f"{'tests':>6}  {'file':>9}  {'json.loads ms':>13}  {'check ms':>9}  {'ms/test':>8}  {'ratio':>6}")
    with tempfile.TemporaryDirectory() as directory:
        for tests in arguments.tests:
            path = Path(directory, f"run-{tests}.json")
            path.write_text(json.dumps(stored_run(tests)), encoding="utf-8")
            document = json.loads(path.read_text(encoding="utf-8"))
            read = best_ms(lambda: json.loads(path.read_text(encoding="utf-8")), arguments.runs)
            checked = best_ms(lambda: check_run_document(document), arguments.runs)
            size = f"{path.stat().st_size / 1024:.0f} KiB"
            print(f"{tests:>6}  {size:>9}  {read:>13.1f}  {checked:>9.1f}  {checked / tests:>8.3f}  {checked / read:>6.1f}")


if __name__ == "__main__":
    main()
