"""Energy per unit of work, as ``cap_per_unit`` writes it (``units.parse_energy_per_unit``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_energy.units import QuantityError, WORK_UNITS, parse_energy_per_unit, work_unit


@pytest.mark.parametrize(("text", "expected"), [
    ("5 J/sample", (5.0, "sample")), ("5J/samples", (5.0, "sample")), ("2 kJ / epoch", (2000.0, "epoch")),
    ("1Wh/token", (3600.0, "token")), ("0.5 J/second", (0.5, "second")),
])
def test_energy_per_unit_is_joules_and_a_singular_unit(text: str, expected: tuple) -> None:
    assert parse_energy_per_unit(text) == expected


@pytest.mark.parametrize("text", ["5 J", "5/sample", "5 kW/sample", "5 J/parrot", "-1 J/sample", "inf J/sample"])
def test_what_is_not_an_energy_per_unit_is_refused(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_energy_per_unit(text)


@given(st.floats(min_value=0, max_value=1e12, allow_nan=False), st.sampled_from(sorted(WORK_UNITS.items())))
def test_every_work_unit_reads_in_either_number(joules: float, names: tuple) -> None:
    plural, singular = names
    assert work_unit(plural) == work_unit(singular) == singular
    assert parse_energy_per_unit(f"{joules!r} J/{plural}") == (joules, singular)
