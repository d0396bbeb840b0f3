"""Read the values of the DCASE task 4 results-page YAML files (per-submission rows).

The files mix plain numbers with strings: scores with a confidence interval
(``"0.327 (0.317 - 0.339)"``), parameter counts with a suffix (``"625K"``), and
missing values (``None``). These helpers turn one cell into a number or ``None``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Optional, Tuple

from ..units import JOULES_PER_UNIT, QuantityError
from ..units import parse_count as parse_count_quantity

_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_SCORE_WITH_INTERVAL = re.compile(rf"^\s*({_NUMBER})\s*(?:\(\s*({_NUMBER})\s*-\s*({_NUMBER})\s*\))?\s*$")
_TRAINABLE_SPLIT = re.compile(r"^\s*trainable\s+(.+?)\s+non-trainable\s+(.+?)\s*$", re.IGNORECASE)
_MISSING = ("", "-", "n/a", "na", "none", "null")

SHIPPED_RESULTS = Path(__file__).with_name("dcase_results")  # public results files, see SOURCES.md there
SHIPPED_EDITIONS = {"2022": "results_task4_entries.yaml", "2023": "submissions_task4a_entries.yaml"}


def shipped_results(edition: str) -> Path:
    """The DCASE task 4 results-page file of ``edition`` (2022 or 2023) that ships with the package."""
    return SHIPPED_RESULTS / SHIPPED_EDITIONS[edition]


def _is_missing(value: object) -> bool:
    """None, an empty cell, or a placeholder; NaN and infinities count as missing too."""
    if isinstance(value, bool):
        raise ValueError(f"invalid cell {value!r}: a boolean, not a number")
    if isinstance(value, float) and not math.isfinite(value):
        return True
    return value is None or (isinstance(value, str) and value.strip().lower() in _MISSING)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_interval(value: object) -> Optional[Tuple[float, Optional[float], Optional[float]]]:
    """``(value, low, high)`` of a score cell; low and high are None without an interval."""
    if _is_missing(value):
        return None
    if _is_number(value):
        return float(value), None, None  # type: ignore[arg-type]
    match = _SCORE_WITH_INTERVAL.match(str(value))
    if not match:
        raise ValueError(f"invalid score {value!r}: expected a number, optionally followed by '(low - high)'")
    low, high = match.group(2), match.group(3)
    return float(match.group(1)), None if low is None else float(low), None if high is None else float(high)


def parse_score(value: object) -> Optional[float]:
    """The score in a cell such as ``0.52``, ``"0.52"`` or ``"0.52 (0.51 - 0.53)"``; None when missing."""
    parsed = parse_interval(value)
    return None if parsed is None else parsed[0]


def parse_count(value: object) -> Optional[float]:
    """A parameter or MAC count such as ``1112420``, ``"625K"`` or ``"1.2M"``; None when missing
    or not a count (``"4.2MB"`` is a size on disk). ``"Trainable 1.7 M non-Trainable 1.7M"``
    is read as the total, 3.4M."""
    if _is_missing(value):
        return None
    if _is_number(value):
        return float(value)  # type: ignore[arg-type]
    text = str(value)
    split = _TRAINABLE_SPLIT.match(text)
    parts = split.groups() if split else (text,)
    try:
        return sum(parse_count_quantity(part.replace(" ", "")) for part in parts)
    except QuantityError:
        return None


def energy_kwh_to_j(value: object) -> Optional[float]:
    """Joules of an energy cell, which the results pages give in kWh; None when missing."""
    if _is_missing(value):
        return None
    kwh = float(value) if _is_number(value) else parse_score(value)  # type: ignore[arg-type]
    return None if kwh is None else kwh * JOULES_PER_UNIT["kWh"]
