"""How much energy a capped test spends past its cap before the watchdog stops it.

Runs a test that would busy-loop for 30 s under several caps, with the meter this
machine has (``auto``), and prints per cap: the energy measured, the overshoot past
the cap in % and in seconds (time past the moment the average power crossed the cap),
and the reference: what the test would have spent without a cap.

    python benchmarks/bench_live_cap.py [--meter auto] [--interval 0.5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

TEST = textwrap.dedent(
    """
    import time, pytest

    @pytest.mark.energy(cap="{cap}")
    def test_runaway():
        start = time.perf_counter()
        while time.perf_counter() - start < 30:
            sum(range(1000))
    """
)


def run(directory: Path, cap: str, meter: str, interval: float) -> dict:
    (directory / "test_runaway.py").write_text(TEST.format(cap=cap))
    report = directory / "energy.json"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--energy-meter={meter}",
         f"--energy-check-interval={interval}", f"--energy-json={report}", str(directory)],
        capture_output=True, check=False, cwd=directory,
    )
    return json.loads(report.read_text())["tests"][0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--meter", default="auto")
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--caps", default="20J,50J,100J")
    args = parser.parse_args()
    print(f"meter={args.meter} check-interval={args.interval}s; the test would run 30 s without a cap")
    print(f"{'cap':>6} {'measured':>10} {'overshoot':>10} {'past cap':>9} {'duration':>9} {'stopped at':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for cap in args.caps.split(","):
            test = run(Path(tmp), cap, args.meter, args.interval)
            cap_j = test["cap_j"]
            energy, duration = test["energy_j"], test["duration_s"]
            crossing_s = cap_j / (energy / duration)
            stopped = test.get("stopped_early") or {}
            print(
                f"{cap:>6} {energy:>9.1f}J {100 * (energy - cap_j) / cap_j:>9.1f}% {duration - crossing_s:>8.2f}s "
                f"{duration:>8.2f}s {stopped.get('at_s', float('nan')):>9.2f}s"
            )


if __name__ == "__main__":
    main()
