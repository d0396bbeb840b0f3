"""Quantities mean what they say: generated round trips and fuzzed strings for units.py (guarantee 2).

Each property states the meaning independently of the parser: a unit's SI reading comes from
its spelling here (m milli, M mega, k or K kilo, J and Wh case-blind only where no m/M prefix
depends on case), so a parser that read ``mwh`` as mega, or ``500mJ`` as 500 MJ, fails.
"""

from __future__ import annotations

import math
import re
from typing import Optional

import hypothesis_profiles  # noqa: F401  (loads the bounded or the nightly profile)
from hypothesis import assume, example, given, strategies as st

from pytest_energy.units import (JOULES_PER_UNIT, QuantityError, format_count, format_energies_apart, format_energy,
                                 parse_count, parse_duration, parse_energy, parse_percentage)

ENERGIES = st.floats(min_value=1e-9, max_value=1e15, allow_nan=False, allow_infinity=False)
UNITS = st.sampled_from(sorted(JOULES_PER_UNIT))
PREFIX_MEANING = {"": 1.0, "k": 1e3, "K": 1e3, "m": 1e-3, "M": 1e6}
BASE_MEANING = {"j": 1.0, "wh": 3600.0}


def si_meaning(unit: str) -> Optional[float]:
    """Joules in ``unit`` when it can mean one thing only; None when it is ambiguous or no energy unit."""
    for base, joules in BASE_MEANING.items():
        if unit.lower().endswith(base):
            prefix, written = unit[: len(unit) - len(base)], unit[len(unit) - len(base):]
            if prefix not in PREFIX_MEANING:
                return None
            si_cased = written == {"j": "J", "wh": "Wh"}[base]
            if prefix in ("m", "M") and not si_cased:
                return None  # milli or mega: the user's case does not say
            return PREFIX_MEANING[prefix] * joules
    return None


@given(ENERGIES, UNITS)
def test_an_energy_formatted_in_any_unit_parses_back_to_itself_to_the_printed_precision(joules: float, unit: str) -> None:
    assert math.isclose(parse_energy(format_energy(joules, unit)), joules, rel_tol=5e-3)


@given(ENERGIES, UNITS)
def test_an_energy_formatted_with_full_precision_parses_back_exactly(joules: float, unit: str) -> None:
    assert math.isclose(parse_energy(format_energy(joules, unit, digits=17)), joules, rel_tol=1e-15)


@given(ENERGIES)
def test_an_energy_in_its_chosen_unit_parses_back(joules: float) -> None:
    assert math.isclose(parse_energy(format_energy(joules)), joules, rel_tol=5e-3)


@example(0.99999, 4.5527945954288275e-05, None)  # "1.00 J" and "1 J": different strings, one value
@given(ENERGIES, st.floats(min_value=-1e-3, max_value=1e-3), st.one_of(st.none(), UNITS))
def test_a_figure_and_a_cap_that_differ_never_read_the_same(cap_j: float, offset: float, unit: Optional[str]) -> None:
    figure_j = cap_j * (1 + offset)
    assume(figure_j != cap_j)
    figure, cap = format_energies_apart(figure_j, cap_j, unit)
    assert parse_energy(figure) != parse_energy(cap)
    assert (parse_energy(figure) > parse_energy(cap)) == (figure_j > cap_j)


@given(st.floats(min_value=0, max_value=1e15))
def test_a_count_parses_back_to_itself_to_the_printed_precision(count: float) -> None:
    assert math.isclose(parse_count(format_count(count)), count, rel_tol=5e-3, abs_tol=5e-3)


NUMBERS = st.one_of(
    st.integers(min_value=0, max_value=10**6).map(str),
    st.floats(min_value=0, max_value=1e12, allow_nan=False).map(repr),
    st.sampled_from(["1e-400", "5e-324", "0.5", ".5", "5.", "1e3", "1E3", "-1", "+2", "inf", "nan", "1_0", "0x10", "١", "1e999"]),
)
UNIT_SPELLINGS = st.one_of(
    st.builds(lambda prefix, base: prefix + base, st.sampled_from(["", "m", "M", "k", "K", "G", "u", "µ"]),
              st.sampled_from(["J", "j", "Wh", "wh", "WH", "wH", "W", "w", "cal", "h", ""])),
    st.text(alphabet="jJwWhHmMkK%s ", max_size=4),
)
SPACES = st.sampled_from(["", " ", "  ", "\t"])


@given(SPACES, NUMBERS, SPACES, UNIT_SPELLINGS, SPACES)
def test_a_fuzzed_energy_either_means_what_it_says_or_is_one_line_saying_what_to_write(
    before: str, number: str, between: str, unit: str, after: str
) -> None:
    text = before + number + between + unit + after
    try:
        joules = parse_energy(text)
    except QuantityError as error:
        message = str(error)
        assert "\n" not in message and repr(text) in message
        assert "write" in message
        return
    meaning = si_meaning(unit.strip())
    assert meaning is not None, f"{text!r} was read as {joules} J though its unit is ambiguous or unknown"
    written = float(number)
    assert re.fullmatch(r"[+-]?[0-9.]+(e[+-]?[0-9]+)?", number.lower()), f"{number!r} is not a plain number"
    assert written == 0 or joules != 0, "a number too small for a float was read as zero"
    assert math.isclose(joules, written * meaning, rel_tol=1e-12)


@given(st.text(max_size=12))
def test_any_string_is_an_energy_or_a_one_line_usage_error(text: str) -> None:
    for parse in (parse_energy, parse_count, parse_duration, parse_percentage):
        try:
            value = parse(text)
        except QuantityError as error:
            assert "\n" not in str(error)
        else:
            assert math.isfinite(value) and value >= 0


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False).map(repr), SPACES)
def test_a_percentage_means_its_number_over_a_hundred(number: str, space: str) -> None:
    assert math.isclose(parse_percentage(number + space + "%"), float(number) / 100)
