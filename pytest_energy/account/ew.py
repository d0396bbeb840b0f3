"""Account for a whole session: normalised energies and energy-weighted scores per record.

Each score is weighted per phase by its system's energy in that phase: a score
recorded in a test of phase P is weighted by that test's energy for P, and by the
energy of the test of the other phase that shares its ``system`` name (markers
``energy(system=...)``). A system without a linked test gets no EW for that phase.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterable, List, Optional, Tuple

from .record import Record
from .normalize import Normalization, ew_scores, ranking_score_missing
from .presets import ReferenceValues

PHASES = ("train", "test")


def normalized_energy(record: Record, normalization: Optional[Normalization]) -> Optional[float]:
    if normalization is None or record.energy_j is None or record.phase not in PHASES:
        return None
    return normalization.normalize(record.energy_j)


NOT_MEASURED = ("no baseline measured on this machine: mark the reference workload with "
                "@pytest.mark.energy_baseline (or set baseline = \"<test id>\") to get energy-weighted scores")
TURNED_OFF = ("no normalisation: the baseline is off (--energy-baseline=off), and with reference-energy set "
              "energy-weighted scores weight normalised energies; run with --energy-baseline=use to get them")


def account(records: Iterable[Record], normalization: Optional[Normalization], reference: ReferenceValues,
            baseline_off: bool = False) -> List[Record]:
    """The records with ``energy_normalized_j`` and ``ew_scores`` filled in (or why not).

    EW scores are computed only when baseline phase energies are configured (a preset or
    ``baseline-train-energy`` / ``baseline-test-energy``). ``baseline_off``: the user turned
    the baseline off, which is why there is no normalisation."""
    records = list(records)
    phase_energy: Dict[Tuple[str, str], float] = {}
    for record in records:
        energy = normalized_energy(record, normalization) if reference.normalizes else record.energy_j
        if record.system and energy is not None and record.phase in PHASES:
            key = (record.system, record.phase)
            phase_energy[key] = phase_energy.get(key, 0.0) + energy
    wants_ew = reference.baseline_train_energy_j is not None or reference.baseline_test_energy_j is not None
    accounted = []
    for record in records:
        extra = dict(record.extra)
        extra["energy_normalized_j"] = normalized_energy(record, normalization)
        if record.scores and wants_ew:
            extra["ew_scores"], why = _weighted(record, normalization, reference, phase_energy, baseline_off)
            if why:
                extra["ew_scores_missing"] = why
        accounted.append(dataclasses.replace(record, extra=extra))
    return accounted


def _weighted(
    record: Record,
    normalization: Optional[Normalization],
    reference: ReferenceValues,
    phase_energy: Dict[Tuple[str, str], float],
    baseline_off: bool,
) -> Tuple[Dict[str, Dict[str, float]], Optional[str]]:
    if reference.normalizes and normalization is None:
        return {}, TURNED_OFF if baseline_off else NOT_MEASURED
    weighted: Dict[str, Dict[str, float]] = {}
    missing = []
    for phase in PHASES:
        if record.phase == phase:
            energy = normalized_energy(record, normalization) if reference.normalizes else record.energy_j
        else:
            energy = phase_energy.get((record.system, phase)) if record.system else None
        try:
            if energy is None:
                raise ValueError(f"no {phase} energy for this system (link tests with energy(system=...))")
            weighted[phase] = ew_scores(record.scores, phase, energy, reference)
        except ValueError as exc:
            missing.append(f"{phase}: {exc}")
    ranking_missing = ranking_score_missing(record.scores, reference) if weighted else None
    if ranking_missing:
        missing.append(ranking_missing)
    return weighted, "; ".join(missing) or None
