"""Parsing and formatting of quantities: energies in joules, counts such as MACs."""

from __future__ import annotations

import pytest

from pytest_energy.units import ENERGY_UNITS, QuantityError, format_count, format_energy, parse_count, parse_energy


@pytest.mark.parametrize(
    ("text", "joules"),
    [
        ("2kWh", 7.2e6),
        ("2 kwh", 7.2e6),
        ("  2 KWH ", 7.2e6),
        ("7.2e6J", 7.2e6),
        ("1.5MWh", 5.4e9),
        ("500mJ", 0.5),
        ("100mWh", 360.0),
        ("2 j", 2.0),
        ("3KJ", 3e3),
        ("500J", 500.0),
        ("3 kJ", 3e3),
        ("0.25MJ", 2.5e5),
        ("10Wh", 3.6e4),
        (".5 Wh", 1800.0),
        ("0J", 0.0),
    ],
)
def test_parse_energy_returns_joules(text: str, joules: float) -> None:
    assert parse_energy(text) == pytest.approx(joules)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2kW", "unit of power"),
        ("2 W", "unit of power"),
        ("3MW", "unit of power"),
        ("2", "no unit"),
        ("-1J", "not negative"),
        ("-2 kWh", "not negative"),
        ("inf J", "finite"),
        ("1e400 J", "finite"),
        ("nan kWh", "finite"),
        ("2 calories", "unknown unit 'calories'"),
        ("2kWhh", "unknown unit 'kWhh'"),
    ],
)
def test_parse_energy_rejects_with_the_value_and_the_accepted_units(text: str, reason: str) -> None:
    with pytest.raises(QuantityError) as raised:
        parse_energy(text)
    message = str(raised.value)
    assert reason in message
    assert repr(text) in message
    assert ENERGY_UNITS in message


@pytest.mark.parametrize("text", ["kWh", "", "2 k Wh", "infJ", "two kWh"])
def test_unparsable_energy_also_names_the_accepted_units(text: str) -> None:
    """Strings that are not a number and a unit at all still get the list of units."""
    with pytest.raises(QuantityError) as raised:
        parse_energy(text)
    assert repr(text) in str(raised.value)
    assert ENERGY_UNITS in str(raised.value)


def test_a_power_is_named_as_such() -> None:
    with pytest.raises(QuantityError, match=r"'2kW'.*'kW' is a unit of power, not energy.*mJ, J, kJ, MJ, mWh, Wh, kWh, MWh"):
        parse_energy("2kW")


@pytest.mark.parametrize(
    ("joules", "unit", "text"),
    [
        (None, None, "unmeasured"),
        (0.0, None, "0 J"),
        (1.0, None, "1.00 J"),
        (4.909, None, "4.91 J"),
        (359.0, None, "359 J"),
        (1000.0, None, "0.278 Wh"),
        (3600.0, None, "1.00 Wh"),
        (8.316e6, None, "2.31 kWh"),
        (7.2e6, None, "2.00 kWh"),
        (7.2e6, "Wh", "2000 Wh"),
        (3.6e9, "MWh", "1.00 MWh"),
        (1500.0, "kJ", "1.50 kJ"),
        (0.001, None, "1.00e-03 J"),
    ],
)
def test_format_energy_picks_a_readable_unit(joules: float, unit: str, text: str) -> None:
    assert format_energy(joules, unit) == text


def test_format_energy_round_trips_through_parse_energy() -> None:
    for joules in (12.5, 5400.0, 8.316e6):
        assert parse_energy(format_energy(joules).replace(" ", "")) == pytest.approx(joules, rel=5e-3)


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("20G", 2e10),
        ("17.4M", 1.74e7),
        ("912M", 9.12e8),
        ("912m", 9.12e8),
        ("1.2e9", 1.2e9),
        ("1.5K", 1500.0),
        ("2T", 2e12),
        ("12", 12.0),
        (3, 3.0),
        (2.5e6, 2.5e6),
    ],
)
def test_parse_count(text: object, count: float) -> None:
    assert parse_count(text) == pytest.approx(count)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("20X", "unknown suffix 'x'"),
        ("20 GB", "unknown suffix 'gb'"),
        ("-5M", "not negative"),
        ("inf", "finite"),
        ("many", "invalid count"),
        (True, "invalid count"),
    ],
)
def test_parse_count_rejects_bad_counts(text: object, reason: str) -> None:
    with pytest.raises(QuantityError, match=reason):
        parse_count(text)  # type: ignore[arg-type]


@pytest.mark.parametrize(("count", "text"), [(None, "-"), (1.2e9, "1.20G"), (2e10, "20.0G"), (17.4e6, "17.4M"), (999.0, "999")])
def test_format_count(count: float, text: str) -> None:
    assert format_count(count) == text


@pytest.mark.parametrize(
    ("text", "milli", "mega"),
    [("100mwh", "100mWh for 360 J", "100MWh for 3.6e+11 J"), ("1MWH", "1mWh for 3.6 J", "1MWh for 3.6e+09 J"),
     ("5mj", "5mJ for 0.005 J", "5MJ for 5e+06 J"), ("2Mj", "2mJ", "2MJ")],
)
def test_an_energy_whose_case_leaves_milli_or_mega_open_is_refused_with_both_readings(text: str, milli: str, mega: str) -> None:
    """Before, ``mwh`` and ``mj`` were read as mega whatever the user meant: a cap 10^9 too high."""
    with pytest.raises(QuantityError) as raised:
        parse_energy(text)
    message = str(raised.value)
    assert message.startswith(f"ambiguous energy {text!r}") and milli in message and mega in message
    assert "\n" not in message


@pytest.mark.parametrize(("text", "joules"), [("500mJ", 0.5), ("100mWh", 360.0), ("500MJ", 5e8), ("100MWh", 3.6e11)])
def test_milli_and_mega_are_told_apart_by_their_si_case(text: str, joules: float) -> None:
    """Before, ``500mJ`` parsed as 500 MJ and ``100mWh`` as 100 MWh."""
    assert parse_energy(text) == pytest.approx(joules)


@pytest.mark.parametrize("text", ["1e-400J", "1e-400 kWh", "0.1e-330 Wh", "5e-324 mJ"])
def test_an_energy_too_small_for_a_float_is_refused_not_read_as_zero(text: str) -> None:
    with pytest.raises(QuantityError, match="too small to tell from zero"):
        parse_energy(text)


def test_durations_read_m_as_minutes_and_refuse_a_capital_m() -> None:
    from pytest_energy.units import parse_duration

    assert parse_duration("90m") == parse_duration("90min") == 5400.0
    assert parse_duration("2D") == 172800.0
    with pytest.raises(QuantityError, match="ambiguous duration '1M': M could be minutes or months"):
        parse_duration("1M")


@pytest.mark.parametrize("text", ["1_0%", "١٠%", "inf%", "nan%", "10", "%", "1e999%"])
def test_a_percentage_is_a_plain_ascii_number_and_a_sign(text: str) -> None:
    """Before, Python's float() accepted ``1_0%`` and Arabic-Indic digits."""
    from pytest_energy.units import parse_percentage

    with pytest.raises(QuantityError, match="percentage"):
        parse_percentage(text)


@pytest.mark.parametrize("text", ["٣J", "３ kWh"])
def test_an_energy_is_written_in_ascii_digits(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_energy(text)
