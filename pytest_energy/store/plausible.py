"""The energies a file read back may hold: a figure outside them is refused, never used.

A stored run or a cached baseline is a file anyone can edit, and one value decides every
verdict that uses it: a cached baseline of 1e308 J makes every normalised figure nought, so
every normalised cap passes; one of 5e-324 J makes the normalisation factor infinite.

- ``MAX_ENERGY_J``, 1 TWh: more than the largest training run published (GPT-4, about
  50 GWh) by a factor of 20; no test, baseline or stored figure can honestly be above it.
- ``MIN_BASELINE_J``, 1 mJ: a reference workload below it is under the resolution of the
  meters (NVML counts millijoules, CodeCarbon's figures are coarser), so dividing by it
  only magnifies noise (a factor of more than a thousand times the reference).
- ``MIN_MEASURED_J``, 1 µJ: a test's stored energy is zero (nothing counted) or at least
  this, the finest step a meter counts (RAPL's energy unit is 15.3 µJ or 61 µJ); a stored
  run's test of 5e-324 J would make any new figure an infinite growth.
"""

from __future__ import annotations

import math
from typing import Optional

MAX_ENERGY_J = 3.6e15
MIN_BASELINE_J = 1e-3
MIN_MEASURED_J = 1e-6


def implausible_energy(value: object, minimum: float, zero_allowed: bool = False) -> Optional[str]:
    """Why ``value`` (joules read from a file) cannot be trusted, or None if it can."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{str(value)[:40]} is not a number of joules"
    try:
        joules = float(value)
    except OverflowError:
        return f"{str(value)[:40]} is not a finite number"
    if not math.isfinite(joules):
        return f"{joules} is not a finite number"
    if zero_allowed and joules == 0:
        return None
    if joules < minimum:
        return f"{joules!r} J is below {minimum:g} J, the least a meter measures for it"
    if joules > MAX_ENERGY_J:
        return f"{joules!r} J is above {MAX_ENERGY_J:g} J (1 TWh), more than any test can spend"
    return None
