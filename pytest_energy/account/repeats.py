"""What a record carries of a test's repeats, its work and its emissions, accounted from its figures.

``repeats_entry`` makes the record's ``repeats`` (every measured repeat's energy, their median:
the test's energy, and their robust ``spread``); ``account_work_and_emissions`` adds the energy per
unit of recorded work and, where a carbon intensity is given, the emissions.
"""

from __future__ import annotations

import statistics
from typing import Any, Dict, MutableMapping, Optional, Sequence

from ..units import joules_to_kwh


def spread(values: Sequence[float]) -> Optional[float]:
    """Robust relative spread of ``values``: 1.4826 x the median absolute deviation over the median (a CV for normal noise)."""
    if len(values) < 2:
        return None
    middle = statistics.median(values)
    if middle <= 0:
        return None
    return 1.4826 * statistics.median(abs(value - middle) for value in values) / middle


def repeats_entry(figures: Sequence[Optional[float]], lost: Sequence[str], warmup: int, cooldown_s: float) -> Dict[str, Any]:
    """The record's ``repeats``: the median and spread only when every repeat was measured."""
    measured = [energy for energy in figures if energy is not None]
    complete = len(measured) == len(figures)
    return {
        "energy_j": list(figures),
        "median_j": statistics.median(measured) if complete else None,
        "spread": spread(measured) if complete else None,
        "warmup": warmup,
        "cooldown_s": cooldown_s,
        **({"lower_bound": list(lost)} if lost else {}),
    }


def account_work_and_emissions(extra: MutableMapping[str, Any], energy_j: Optional[float],
                               carbon_intensity_g_per_kwh: Optional[float]) -> None:
    """Energy per unit of the work recorded (``extra["work"]``), and emissions where an intensity is given."""
    if carbon_intensity_g_per_kwh is not None and energy_j is not None:
        extra["emissions"] = {"kg_co2eq": joules_to_kwh(energy_j) * carbon_intensity_g_per_kwh / 1000,
                              "carbon_intensity_g_per_kwh": carbon_intensity_g_per_kwh, "source": "carbon-intensity setting"}
    if "work" in extra:
        extra["work"]["energy_per_unit_j"] = None if energy_j is None else energy_j / extra["work"]["amount"]
