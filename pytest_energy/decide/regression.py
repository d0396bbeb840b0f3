"""The regression gate: a test whose energy grew by more than a limit over a stored run fails."""

from __future__ import annotations

from typing import Optional

from ..store.runs import StoredRun
from ..units import format_energy
from .limits import CapFailure


def check_regression(
    nodeid: str,
    energy_j: Optional[float],
    normalized_j: Optional[float],
    fingerprint: Optional[str],
    stored: StoredRun,
    limit: float,
    unit: Optional[str] = None,
) -> Optional[CapFailure]:
    """A failure when the test's energy grew by more than ``limit`` (0.10 = 10 %) over the stored run."""
    previous = stored.tests.get(nodeid)
    if previous is None or energy_j is None:
        return None
    if fingerprint == stored.fingerprint:
        now, before, kind = energy_j, previous.get("energy_j"), "energy"
    else:
        now, before, kind = normalized_j, previous.get("energy_normalized_j"), "normalised energy"
        if now is None or before is None:
            return CapFailure(
                f"cannot compare with {stored.path.name}: it was measured on other hardware (fingerprint "
                f"{stored.fingerprint} vs {fingerprint}) and without normalisation; run a baseline "
                "(@pytest.mark.energy_baseline) in both runs or compare on the same machine",
                "not-comparable",
            )
    if not before:
        return None
    growth = now / before - 1
    if growth <= limit:
        return None
    return CapFailure(
        f"{kind} {format_energy(now, unit)} grew {growth:+.1%} over {format_energy(before, unit)} in "
        f"{stored.path.name} (limit +{limit * 100:g}%)",
        "regression",
    )
