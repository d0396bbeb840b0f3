"""The organisers' trend statistics over the systems of each edition.

From the systems of each edition come the tables organisers publish: quartiles of
complexity and energy, the GPU share of energy, and, as in Douwes & Serizel's Table VI,
the best score among the ranked systems (single systems by default) at or under the
P25 / median of that same population. Quartiles come from ``statistics.quantiles`` with
a stated method ('inclusive', numpy's default, unless told otherwise). ``compute`` turns
a ``Collection`` into a ``Trend``; ``organise.trend_render`` shows it.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from pytest_energy.organise.systems import Collection, System

POPULATIONS = {"single": "single systems (ensemble: no)", "all": "all systems (ensembles and unstated included)"}
QUANTILE_METHODS = {
    "inclusive": "numpy.percentile's default, linear",
    "exclusive": "numpy.percentile method='weibull' from 3 values on",
}
LEVELS = ("P25", "median")  # the two thresholds; a third column, "all", has none


def method_text(method: str) -> str:
    """The quartile method as the output states it."""
    return f"quartiles by statistics.quantiles(n=4, method={method!r}) ({QUANTILE_METHODS[method]})"


def quartile_values(values: Sequence[float], method: str = "inclusive") -> Tuple[float, float, float]:
    """P25, median and P75 of ``values`` by ``statistics.quantiles``; a single value is its own quartiles."""
    if not values:
        raise ValueError("quartiles of no values")
    if method not in QUANTILE_METHODS:
        raise ValueError(f"unknown quartile method {method!r}; expected one of {', '.join(QUANTILE_METHODS)}")
    if len(values) == 1:
        only = float(values[0])
        return only, only, only
    p25, median, p75 = statistics.quantiles(values, n=4, method=method)
    return p25, median, p75


@dataclass(frozen=True)
class Metric:
    attribute: str
    label: str
    kind: str  # "count" or "energy"


METRICS = (
    Metric("params", "parameters", "count"),
    Metric("macs", "MACs", "count"),
    Metric("train_j", "training energy", "energy"),
    Metric("train_normalized_j", "training energy, normalised", "energy"),
    Metric("test_j", "test energy", "energy"),
    Metric("test_normalized_j", "test energy, normalised", "energy"),
)
THRESHOLD_METRICS = (METRICS[0], METRICS[1], METRICS[3])


@dataclass(frozen=True)
class Quartiles:
    edition: str
    metric: Metric
    n: int
    p25: Optional[float]
    median: Optional[float]
    p75: Optional[float]


@dataclass(frozen=True)
class ShareSummary:
    edition: str
    phase: str
    n: int
    mean: Optional[float]
    std: Optional[float]  # sample standard deviation (n - 1); None below 2 values
    minimum: Optional[float]
    maximum: Optional[float]


@dataclass(frozen=True)
class ThresholdRow:
    """One cell group of the threshold table: the best score at or under one threshold."""

    edition: str
    metric: Metric
    level: str  # "P25", "median", or "all" (no threshold)
    threshold: Optional[float]  # the paper's "Max"; None for "all" or when no system has the metric
    population: int  # systems of the ranked population that have the metric
    candidates: int  # scored systems at or under the threshold ("all": every scored system)
    best: Optional[System]


@dataclass(frozen=True)
class Trend:
    collection: Collection
    quartiles: List[Quartiles]
    shares: List[ShareSummary]
    thresholds: List[ThresholdRow]
    best_overall: Dict[str, Optional[System]]
    population: str  # a key of POPULATIONS
    score: str
    method: str = "inclusive"
    factor_limit: Optional[float] = None
    unreliable: List[System] = field(default_factory=list)  # left out by factor_limit
    unchecked: int = 0  # systems kept by factor_limit because they have no normalisation factor


def _values(systems: Iterable[System], attribute: str) -> List[float]:
    return [value for value in (getattr(s, attribute) for s in systems) if value is not None]


def quartiles(edition: str, systems: Sequence[System], metric: Metric, method: str = "inclusive") -> Quartiles:
    values = _values(systems, metric.attribute)
    if not values:
        return Quartiles(edition, metric, 0, None, None, None)
    return Quartiles(edition, metric, len(values), *quartile_values(values, method))


def share_summary(edition: str, systems: Sequence[System], phase: str) -> ShareSummary:
    shares = [share for share in (s.gpu_share(phase) for s in systems) if share is not None]
    if not shares:
        return ShareSummary(edition, phase, 0, None, None, None, None)
    mean = sum(shares) / len(shares)
    std = math.sqrt(sum((x - mean) ** 2 for x in shares) / (len(shares) - 1)) if len(shares) > 1 else None
    return ShareSummary(edition, phase, len(shares), mean, std, min(shares), max(shares))


def _best(systems: Iterable[System]) -> Optional[System]:
    scored = [s for s in systems if s.score is not None]
    return max(scored, key=lambda s: s.score) if scored else None  # type: ignore[arg-type,return-value]


def normalization_factor(system: System) -> Optional[float]:
    """Normalised over raw training energy: E_reference / E_baseline as the system's team measured it."""
    if system.train_normalized_j is None or not system.train_j:
        return None
    return system.train_normalized_j / system.train_j


def in_population(system: System, population: str) -> bool:
    return population == "all" or system.ensemble is False


def threshold_rows(
    edition: str, ranked: Sequence[System], metric: Metric, method: str = "inclusive"
) -> List[ThresholdRow]:
    """Best score at or under the P25 and median of ``metric`` over ``ranked``, then with no threshold.

    The thresholds are quartiles of the ranked population itself (the paper's Table VI:
    non-ensemble systems, thresholds from the non-ensemble quartiles).
    """
    with_metric = [s for s in ranked if getattr(s, metric.attribute) is not None]
    values = _values(with_metric, metric.attribute)
    levels = dict(zip(LEVELS, quartile_values(values, method)[:2])) if values else {}
    rows = []
    for level in LEVELS:
        threshold = levels.get(level)
        under = [s for s in with_metric if threshold is not None and getattr(s, metric.attribute) <= threshold]
        scored = [s for s in under if s.score is not None]
        rows.append(ThresholdRow(edition, metric, level, threshold, len(with_metric), len(scored), _best(scored)))
    scored = [s for s in ranked if s.score is not None]
    rows.append(ThresholdRow(edition, metric, "all", None, len(with_metric), len(scored), _best(scored)))
    return rows


def compute(
    collection: Collection,
    *,
    population: str = "single",
    score: str = "psds1",
    method: str = "inclusive",
    factor_limit: Optional[float] = None,
) -> Trend:
    """The trend tables for every edition in ``collection``.

    Quartiles and GPU shares use every usable system of the edition (baselines excluded);
    the threshold table ranks ``population`` ("single" or "all") with thresholds from that
    population's own quartiles. With ``factor_limit`` K, systems whose normalisation factor
    lies outside [1/K, K] (a baseline energy that is not plausibly the baseline's) are left
    out of everything; systems without normalised energy cannot be checked and stay.
    """
    if population not in POPULATIONS:
        raise ValueError(f"unknown population {population!r}; expected one of {', '.join(POPULATIONS)}")
    if factor_limit is not None and not factor_limit >= 1:
        raise ValueError(f"the normalisation factor limit must be at least 1, got {factor_limit!r}")
    unreliable: List[System] = []
    unchecked = 0
    kept = list(collection.systems)
    if factor_limit is not None:
        kept = []
        for system in collection.systems:
            factor = normalization_factor(system)
            unchecked += factor is None
            reliable = factor is None or 1 / factor_limit <= factor <= factor_limit
            (kept if reliable else unreliable).append(system)
    rows: List[Quartiles] = []
    shares: List[ShareSummary] = []
    thresholds: List[ThresholdRow] = []
    best_overall: Dict[str, Optional[System]] = {}
    for edition in sorted({s.edition for s in kept}):
        systems = [s for s in kept if s.edition == edition]
        ranked = [s for s in systems if in_population(s, population)]
        best_overall[edition] = _best(ranked)
        rows.extend(quartiles(edition, systems, metric, method) for metric in METRICS)
        shares.extend(share_summary(edition, systems, phase) for phase in ("train", "test"))
        for metric in THRESHOLD_METRICS:
            thresholds.extend(threshold_rows(edition, ranked, metric, method))
    return Trend(
        collection, rows, shares, thresholds, best_overall, population, score, method, factor_limit, unreliable,
        unchecked,
    )
