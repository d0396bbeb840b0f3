"""How often the regression gate fails unchanged code, and how often it catches a real change.

A synthetic load whose true energy grows by 0, +5, +20 or +50 % between a stored run and the
new one, each figure drawn with multiplicative log-normal noise of a given coefficient of
variation (5 % or 20 %). For every cell, ``--runs`` simulated comparisons at the limit
``--threshold`` (10 %) are decided by:

- today's rule: one figure on each side, fail when the ratio is over the limit;
- the median alone: the ratio of the medians of the repeats over the limit, no interval;
- the interval rule (``pytest_energy.decide.noise``): fail only when the lower bound of the
  95 % bootstrap interval of the ratio of medians is over the limit.

At 0 % change every failure is a false failure; above the limit (+20 %, +50 %) a failure is
a detection. +5 % is under the limit: a failure there is false too. The last column is the
best any rule can do at 1 % false failures: a one-sided z-test on the mean log-energy with
the noise known (``oracle``), an upper bound on the detection rate of any test at that level.

    python benchmarks/bench_gate_noise.py [--runs 2000] [--threshold 10] [--seed 7]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from pathlib import Path
from typing import List

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_energy.decide.noise import compare, fails  # noqa: E402

CHANGES = (0.0, 0.05, 0.20, 0.50)
NOISES = (0.05, 0.20)
REPEATS = (5, 10, 21)
Z_99 = 2.3263  # the one-sided 1 % point of the standard normal


def figures(rng: random.Random, repeats: int, change: float, noise: float) -> List[float]:
    """``repeats`` figures of a load of true energy ``1 + change`` with log-normal noise of CV ``noise`` (mean kept)."""
    sigma = math.sqrt(math.log(1 + noise * noise))
    return [(1 + change) * math.exp(rng.gauss(-sigma * sigma / 2, sigma)) for _ in range(repeats)]


def oracle_detection(repeats: int, change: float, noise: float, threshold: float) -> float:
    """Power of the one-sided z-test at 1 % on mean log-energy, noise known: no rule does better at that level."""
    sigma = math.sqrt(math.log(1 + noise * noise))
    spread = sigma * math.sqrt(2 / repeats)
    margin = math.log(1 + change) - math.log(1 + threshold)
    return 0.5 * math.erfc(-(margin / spread - Z_99) / math.sqrt(2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--threshold", type=float, default=10.0, help="the limit, in percent")
    parser.add_argument("--seed", type=int, default=7)
    arguments = parser.parse_args()
    threshold = arguments.threshold / 100
    rng = random.Random(arguments.seed)
    started = time.perf_counter()
    print(f"limit +{arguments.threshold:g}%, {arguments.runs} simulated comparisons per row; "
          "rate = share of comparisons that fail")
    print(f"{'noise':>5} {'repeats':>7} {'change':>6} | {'today (1 vs 1)':>14} {'median alone':>12} "
          f"{'interval':>8} | {'oracle':>6}")
    for noise in NOISES:
        for repeats in REPEATS:
            for change in CHANGES:
                today = median_only = interval = 0
                for _ in range(arguments.runs):
                    now, before = figures(rng, repeats, change, noise), figures(rng, repeats, 0.0, noise)
                    today += now[0] / before[0] > 1 + threshold
                    median_only += statistics.median(now) / statistics.median(before) > 1 + threshold
                    comparison = compare(now, before)
                    interval += comparison is not None and fails(comparison, threshold)
                runs = arguments.runs
                oracle = oracle_detection(repeats, change, noise, threshold)
                print(f"{noise:>5.0%} {repeats:>7} {change:>+6.0%} | {today / runs:>14.1%} {median_only / runs:>12.1%} "
                      f"{interval / runs:>8.1%} | {oracle:>6.1%}")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
