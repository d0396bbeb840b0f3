"""Hardware normalisation and energy-weighted (EW) scores, as DCASE task 4 applies them.

One-point rule (what the challenge ranks with): ``factor = E_ref / E_local``, where
``E_ref`` is the reference workload (10 baseline epochs) on the organisers' machine and
``E_local`` the same workload here; ``E_norm = E × factor`` for training and inference.
Two-point rule: two reference workloads of different size fit ``E_ref = a·E_local + b``.

``EW = score × E_baseline_phase / E_norm_phase``, not clipped. The organisers' published
figures round ``E_norm`` to 0.001 kWh before weighting; here nothing is rounded.
Pure functions, no I/O; energies in joules.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, Mapping, Optional, Tuple

from .presets import ReferenceValues

RULES = ("one-point", "two-point")
RANKING_SCORE = "ranking_score"
EnergyPair = Tuple[float, float]  # (E_local, E_ref) of one reference workload, joules


def _positive(name: str, value: Optional[float]) -> float:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} is missing: got {value!r}, need an energy in joules more than zero")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be finite and more than zero, got {value!r} J")
    return float(value)


def one_point_factor(reference_j: Optional[float], local_j: Optional[float]) -> float:
    """``E_ref / E_local``: what one joule here is worth on the reference machine."""
    reference = _positive("reference energy (the reference workload on the reference machine)", reference_j)
    local = _positive("local baseline energy (the reference workload on this machine)", local_j)
    return reference / local


@dataclasses.dataclass(frozen=True)
class TwoPointFit:
    """The line ``E_ref = a·E_local + b`` through two reference workloads."""

    a: float
    b: float

    @classmethod
    def fit(cls, first: EnergyPair, second: EnergyPair) -> "TwoPointFit":
        """Fit through two ``(local_j, reference_j)`` pairs of workloads of different size."""
        local_1 = _positive("local energy of the first reference workload", first[0])
        ref_1 = _positive("reference energy of the first reference workload", first[1])
        local_2 = _positive("local energy of the second reference workload", second[0])
        ref_2 = _positive("reference energy of the second reference workload", second[1])
        if math.isclose(local_1, local_2, rel_tol=1e-9):
            raise ValueError(
                f"two-point normalisation needs two workloads of different size; both measured {local_1:.6g} J here"
            )
        a = (ref_2 - ref_1) / (local_2 - local_1)
        if a <= 0:
            raise ValueError(
                "two-point normalisation: the larger workload must cost more on both machines; got "
                f"local {local_1:.6g} J -> reference {ref_1:.6g} J and local {local_2:.6g} J -> reference {ref_2:.6g} J"
            )
        return cls(a=a, b=ref_1 - a * local_1)

    def normalize(self, energy_j: float) -> float:
        """The line's value at ``energy_j``; may be <= 0 below the fitted range when ``b`` < 0."""
        return self.a * energy_j + self.b


@dataclasses.dataclass(frozen=True)
class Normalization:
    """The rule in use and its parameters; ``normalize`` maps local joules to reference joules."""

    rule: str
    factor: Optional[float] = None  # one-point
    fit: Optional[TwoPointFit] = None  # two-point
    points: Tuple[EnergyPair, ...] = ()  # the (local_j, reference_j) it was built from
    caveat: str = ""  # why its figures cannot decide a verdict (a baseline measured beside other work)

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"unknown normalization rule {self.rule!r}; expected one of {', '.join(RULES)}")
        needs_factor = self.rule == "one-point"
        if needs_factor != (self.factor is not None) or needs_factor == (self.fit is not None):
            wanted = "a factor" if needs_factor else "a fit"
            raise ValueError(f"{self.rule} normalization takes {wanted} and nothing else")

    @classmethod
    def one_point(cls, reference_j: Optional[float], local_j: Optional[float]) -> "Normalization":
        factor = one_point_factor(reference_j, local_j)
        point = (float(local_j), float(reference_j))  # type: ignore[arg-type]
        return cls(rule="one-point", factor=factor, points=(point,))

    @classmethod
    def two_point(cls, first: EnergyPair, second: EnergyPair) -> "Normalization":
        fit = TwoPointFit.fit(first, second)
        points = ((float(first[0]), float(first[1])), (float(second[0]), float(second[1])))
        return cls(rule="two-point", fit=fit, points=points)

    def normalize(self, energy_j: float) -> Optional[float]:
        """``energy_j`` on the reference machine; None where that is not more than zero (below a
        two-point line's zero), since an energy is never negative: zero only from zero."""
        value = self.fit.normalize(energy_j) if self.fit is not None else energy_j * self.factor  # type: ignore[operator]
        return value if value > 0 or value == energy_j == 0 else None

    def why_not_normalized(self, energy_j: float) -> str:
        """Why ``normalize(energy_j)`` is None, in one clause."""
        fit = self.fit
        line = "" if fit is None else f" (E_ref = {fit.a:.4g} E_local {'+' if fit.b >= 0 else '-'} {abs(fit.b):.4g} J)"
        return f"the {self.rule} normalisation gives no energy more than zero for {energy_j:.4g} J here{line}"

    def local_energy_for(self, normalized_j: float) -> float:
        """The local energy that normalises to ``normalized_j`` (to enforce a normalised cap live)."""
        if self.fit is not None:
            return (normalized_j - self.fit.b) / self.fit.a
        return normalized_j / self.factor  # type: ignore[operator]

    @classmethod
    def from_points(cls, points: "Tuple[EnergyPair, ...]") -> "Normalization":
        """One point: the one-point rule; two: the two-point rule."""
        if len(points) == 1:
            local, reference = points[0]
            return cls.one_point(reference, local)
        if len(points) == 2:
            return cls.two_point(points[0], points[1])
        raise ValueError(f"normalisation takes one or two reference workloads, got {len(points)}")

    def to_json(self) -> Dict[str, object]:
        return {
            "rule": self.rule,
            "factor": self.factor,
            "a": None if self.fit is None else self.fit.a,
            "b_j": None if self.fit is None else self.fit.b,
            "points": [{"local_j": local, "reference_j": reference} for local, reference in self.points],
        }


def energy_weighted(
    score: float, baseline_phase_energy_j: Optional[float], normalized_phase_energy_j: Optional[float]
) -> float:
    """``score × E_baseline_phase / E_norm_phase``: above the raw score when cheaper than the baseline."""
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
        raise ValueError(f"score must be a finite number, got {score!r}")
    baseline = _positive("baseline system's phase energy", baseline_phase_energy_j)
    normalized = _positive("normalised energy of the phase", normalized_phase_energy_j)
    return score * baseline / normalized


def relative_ranking_score(scores: Mapping[str, float], baseline_scores: Mapping[str, float]) -> float:
    """``mean(score_i / baseline_score_i)`` over the baseline's score names that ``scores`` has."""
    shared = [name for name in baseline_scores if name in scores]
    if not shared:
        raise ValueError(
            f"no score to rank against the baseline: recorded {sorted(scores) or 'none'}, "
            f"baseline-scores has {sorted(baseline_scores) or 'none'}"
        )
    ratios = []
    for name in shared:
        baseline = baseline_scores[name]
        if not baseline or not math.isfinite(baseline) or baseline <= 0:
            raise ValueError(f"baseline score {name} must be more than zero, got {baseline!r}")
        ratios.append(scores[name] / baseline)
    return sum(ratios) / len(ratios)


def ranking_score_missing(scores: Mapping[str, float], reference: ReferenceValues) -> Optional[str]:
    """Why ``ranking_score`` cannot be computed from ``scores``, or None when it can (or is not asked for).

    The challenge's ranking score averages *every* baseline score (DCASE 2023: PSDS1 and
    PSDS2); one computed from some of them would be another figure under the same name,
    so a test that recorded only some of the baseline's scores gets none.
    """
    if RANKING_SCORE in scores or not any(name in scores for name in reference.baseline_scores):
        return None
    absent = [name for name in reference.baseline_scores if name not in scores]
    if not absent:
        return None
    origin = reference.origins.get("baseline-scores", "baseline-scores")
    return (f"no {RANKING_SCORE}: it averages every baseline score ({', '.join(reference.baseline_scores)}, "
            f"from {origin}); record {', '.join(absent)} too, or set baseline-scores to the scores you record")


def ew_scores(scores: Mapping[str, float], phase: str, energy_j: float, reference: ReferenceValues) -> Dict[str, float]:
    """EW of every score for one phase, plus ``ranking_score`` when every baseline score
    was recorded (and no score of that name was): see ``ranking_score_missing``.

    The organisers weight each score twice: by the system's training energy (phase
    "train") and by its inference energy (phase "test"). A score recorded in a training
    test is weighted by that test's energy with phase "train"; one recorded in an
    inference test by that test's energy with phase "test"; giving a system both needs
    its two tests linked (e.g. by a ``system`` name), which is the caller's concern.
    ``energy_j`` is the phase's energy after normalisation, or the raw energy when
    ``reference.normalizes`` is false (DCASE 2022).
    """
    baseline_j = reference.baseline_energy_j(phase)
    weighted = {name: energy_weighted(score, baseline_j, energy_j) for name, score in scores.items()}
    if reference.baseline_scores and RANKING_SCORE not in scores \
            and all(name in scores for name in reference.baseline_scores):
        ranking = relative_ranking_score(scores, reference.baseline_scores)
        weighted[RANKING_SCORE] = energy_weighted(ranking, baseline_j, energy_j)
    return weighted
