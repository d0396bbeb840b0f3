"""The session cap's one verdict over a whole run, from every test's record (``pytest-energy merge`` checks the same over shards)."""

from __future__ import annotations

from typing import Any, Dict, Iterable, Optional

from ..account.record import Record
from .figures import lower_bound_reasons


def session_cap_outcome(records: Iterable[Record], cap_j: Optional[float]) -> Optional[Dict[str, Any]]:
    """What the session spent, whether and by which test the cap was reached (in the order the tests
    finished), or which test was not measured fully, so that what was spent is unknown ("unmeasured")."""
    if cap_j is None:
        return None
    spent_j, reached_by, unmeasured_by = 0.0, None, None
    for record in records:
        if record.measurement is None:  # it never reached its call phase
            continue
        if unmeasured_by is None and (record.energy_j is None or lower_bound_reasons(record.measurement)):
            unmeasured_by = record.nodeid
        spent_j += record.energy_j or 0.0
        if reached_by is None and spent_j >= cap_j:
            reached_by = record.nodeid
    verdict = "over-cap" if reached_by else "unmeasured" if unmeasured_by else "pass"
    return {"cap_j": cap_j, "spent_j": spent_j, "reached": reached_by is not None, "reached_by": reached_by,
            "unmeasured_by": unmeasured_by, "verdict": verdict}
