"""A regression decided with the noise in it: the ratio of medians, its bootstrap interval, and the noise floor.

``compare(now, before)`` takes every repeat's figure of both runs and gives the ratio of
their medians with a percentile-bootstrap confidence interval. The bootstrap is exact, not
resampled: the distribution of the median of a resample is computed from binomial and
multinomial probabilities over the sorted repeats (``median_distribution``), so the interval
is deterministic without a seed; only for many repeats on both sides (more pairs of medians
than ``EXACT_PAIRS``) is the ratio's distribution sampled, with a fixed seed. ``fails``
applies the rule: a regression fails only when the interval's lower bound is above the
threshold; with one repeat on either side there is no interval and today's rule (the ratio
itself over the threshold) decides, labelled as such. ``noise_floor`` estimates how much the
figure of unchanged code moves on one machine, from its stored runs.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import math
import random
import statistics
from typing import Dict, List, Optional, Sequence, Tuple

from ..account.repeats import spread
from ..store.runs import StoredRun

CONFIDENCE = 0.95  # two-sided: the lower bound is the 2.5 % quantile of the bootstrap ratio
EXACT_PAIRS = 250_000  # above this many (median now, median before) pairs, the ratio's distribution is sampled
SAMPLED = 20_000  # draws of the sampled ratio distribution
SEED = 20261206


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Median now over median before; ``low``/``high`` bound it when both runs have repeats."""

    ratio: float
    low: Optional[float]
    high: Optional[float]
    repeats_now: int
    repeats_before: int
    confidence: float = CONFIDENCE

    @property
    def separates_noise(self) -> bool:
        """Whether there is an interval: both runs have at least two repeats."""
        return self.low is not None

    def describe(self) -> str:
        """``95% interval +3.1% to +40.0%, median of 5 vs 5 repeats``, or what the single-figure fallback is."""
        if self.low is None or self.high is None:
            return (f"{self.repeats_now} vs {self.repeats_before} repeats: one figure on a side cannot separate a "
                    "change from noise, decided on the figures alone")
        return (f"{self.confidence:.0%} interval {self.low - 1:+.1%} to {self.high - 1:+.1%}, "
                f"median of {self.repeats_now} vs {self.repeats_before} repeats")

    def to_json(self) -> Dict[str, object]:
        return {"ratio": self.ratio, "low": self.low, "high": self.high, "repeats": [self.repeats_now, self.repeats_before],
                "confidence": self.confidence, "method": "bootstrap-median" if self.low is not None else "single"}


def median_distribution(values: Sequence[float]) -> List[Tuple[float, float]]:
    """The exact distribution of the median of a resample (with replacement, same size) of ``values``.

    Sorted ``(median, probability)`` pairs. For ``n = 2k + 1`` the median is the (k+1)-th order
    statistic, at or below the j-th value when at least k+1 draws are: a binomial tail. For
    ``n = 2k`` it is the mean of the k-th and (k+1)-th order statistics, whose joint law over
    positions (a, b) is multinomial.
    """
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("no figures")
    weights: Dict[float, float] = {}
    if n % 2:
        k = n // 2
        below = [_at_least(n, j / n, k + 1) for j in range(n + 1)]
        for j in range(1, n + 1):
            weights[ordered[j - 1]] = weights.get(ordered[j - 1], 0.0) + below[j] - below[j - 1]
    else:
        k = n // 2
        for a in range(1, n + 1):
            for b in range(a, n + 1):
                probability = _pair_probability(n, k, a, b)
                if probability > 0:
                    value = (ordered[a - 1] + ordered[b - 1]) / 2
                    weights[value] = weights.get(value, 0.0) + probability
    return sorted(weights.items())


def _at_least(n: int, p: float, k: int) -> float:
    """P(Binomial(n, p) >= k)."""
    return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k, n + 1))


def _pair_probability(n: int, k: int, a: int, b: int) -> float:
    """P(the k-th and (k+1)-th order statistics of a resample are the a-th and b-th values), positions 1..n."""
    if a < b:  # exactly k draws at or below a (one of them a), the rest at or above b (one of them b)
        first = (a / n) ** k - ((a - 1) / n) ** k
        rest = ((n - b + 1) / n) ** (n - k) - ((n - b) / n) ** (n - k)
        return math.comb(n, k) * first * rest
    low, equal, high = (a - 1) / n, 1 / n, (n - a) / n  # fewer than k below a, more than k at or below a
    return sum(math.factorial(n) // (math.factorial(i) * math.factorial(j) * math.factorial(n - i - j))
               * low ** i * equal ** j * high ** (n - i - j)
               for i in range(0, k) for j in range(k + 1 - i, n - i + 1))


def compare(now: Sequence[float], before: Sequence[float], confidence: float = CONFIDENCE) -> Optional[Comparison]:
    """The ratio of medians of ``now`` over ``before``, with its interval when both have two figures or more.

    None when a side has no figure, or the median before is not above zero (no ratio).
    """
    if not now or not before or statistics.median(before) <= 0:
        return None
    ratio = statistics.median(now) / statistics.median(before)
    if len(now) < 2 or len(before) < 2:
        return Comparison(ratio, None, None, len(now), len(before), confidence)
    tail = (1 - confidence) / 2
    low, high = _ratio_quantiles(median_distribution(now), median_distribution(before), (tail, 1 - tail))
    return Comparison(ratio, low, high, len(now), len(before), confidence)


def _ratio_quantiles(now: List[Tuple[float, float]], before: List[Tuple[float, float]],
                     quantiles: Tuple[float, float]) -> Tuple[float, float]:
    """Quantiles of median-now over median-before, the two medians independent."""
    before = [(value, weight) for value, weight in before if value > 0] or [(math.inf, 1.0)]
    if len(now) * len(before) <= EXACT_PAIRS:
        pairs = sorted((x / y, p * q) for x, p in now for y, q in before)
        ratios = [ratio for ratio, _ in pairs]
        cumulative = list(itertools.accumulate(weight for _, weight in pairs))
        total = cumulative[-1]
        found = [ratios[min(bisect.bisect_left(cumulative, q * total - 1e-12), len(ratios) - 1)] for q in quantiles]
        return found[0], found[1]
    rng = random.Random(SEED)
    draws_now = rng.choices([v for v, _ in now], [p for _, p in now], k=SAMPLED)
    draws_before = rng.choices([v for v, _ in before], [p for _, p in before], k=SAMPLED)
    ratios = sorted(x / y for x, y in zip(draws_now, draws_before))
    picked = [ratios[min(int(q * SAMPLED), SAMPLED - 1)] for q in quantiles]
    return picked[0], picked[1]


def fails(comparison: Comparison, threshold: float) -> bool:
    """The gate's rule: with an interval, its lower bound above ``1 + threshold``; without, the ratio itself."""
    bound = comparison.low if comparison.low is not None else comparison.ratio
    return bound > 1 + threshold


@dataclasses.dataclass(frozen=True)
class StoredFigures:
    """One stored run's figures of one test: its commit (if known) and every repeat's energy."""

    commit: Optional[str]
    repeats: Tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class NoiseFloor:
    """How much the figure of unchanged code moves on this machine (0.18 = 18 %), and what it was estimated from."""

    noise: float
    source: str

    def describe(self) -> str:
        return f"{self.noise:.0%} ({self.source})"


def noise_floor(runs: Sequence[StoredFigures]) -> Optional[NoiseFloor]:
    """The run-to-run spread of unchanged code, from stored runs of one test on one machine.

    Runs of the same commit, where some commit was run twice or more: the spread of their
    medians (the largest over commits). Otherwise the spread of the repeats within each run (the
    median over runs with two repeats or more). None when neither is available.
    """
    by_commit: Dict[str, List[float]] = {}
    for run in runs:
        if run.commit and run.repeats:
            by_commit.setdefault(run.commit, []).append(statistics.median(run.repeats))
    same_commit = [(commit, spread(medians)) for commit, medians in by_commit.items() if len(medians) >= 2]
    same_commit = [(commit, value) for commit, value in same_commit if value is not None]
    if same_commit:
        count = sum(len(by_commit[commit]) for commit, _ in same_commit)
        return NoiseFloor(max(value for _, value in same_commit), f"spread of {count} stored runs of one commit")
    within = [value for value in (spread(run.repeats) for run in runs) if value is not None]
    if within:
        return NoiseFloor(statistics.median(within), f"spread of the repeats of {_runs(len(within))}")
    return None


def _runs(count: int) -> str:
    return f"{count} stored run" + ("" if count == 1 else "s")


def floors(runs: Sequence[StoredRun]) -> Dict[str, NoiseFloor]:
    """Each test's noise floor from the stored runs of one machine (tests without enough runs have none)."""
    nodeids = {nodeid for run in runs for nodeid in run.tests}
    found = {nodeid: noise_floor([StoredFigures(run.commit, run.energies(nodeid)) for run in runs if nodeid in run.tests])
             for nodeid in nodeids}
    return {nodeid: floor for nodeid, floor in found.items() if floor is not None}
