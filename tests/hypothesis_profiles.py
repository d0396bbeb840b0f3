"""Hypothesis settings for the property tests: bounded by default, larger with HYPOTHESIS_PROFILE=nightly.

CI has two cores, so the default profile keeps each property to a few hundred milliseconds;
``HYPOTHESIS_PROFILE=nightly`` runs twenty times the examples. No example database is written
into the repository (it would differ between machines).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=80, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("nightly", max_examples=2000, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
