"""Parse and format quantities: energy, and counts such as MACs and parameters.

Energy is carried in joules everywhere inside the plugin; this module is the only
place that turns strings into joules and joules into strings.
"""

from __future__ import annotations

import math
import re
from typing import Iterable, Optional, Tuple

JOULES_PER_UNIT = {"mJ": 1e-3, "J": 1.0, "kJ": 1e3, "MJ": 1e6, "mWh": 3.6, "Wh": 3600.0, "kWh": 3.6e6, "MWh": 3.6e9}
ENERGY_UNITS = "mJ, J, kJ, MJ, mWh, Wh, kWh, MWh"
_PREFIXES = {"m": 1e-3, "": 1.0, "k": 1e3, "K": 1e3, "M": 1e6}  # K: not SI, but it can only mean kilo
_ENERGY_BASES = {"J": 1.0, "Wh": 3600.0}
COUNT_SUFFIXES = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}  # case-blind: a count has no milli
COUNT_FORMS = "a number with an optional SI suffix K, M, G or T (e.g. 20G, 17.4M, 1.2e9)"

_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_QUANTITY = re.compile(rf"^\s*({_NUMBER}|[+-]?(?:inf|nan)\w*)\s*([a-zA-Z]*)\s*$", re.IGNORECASE | re.ASCII)
_POWER_UNITS = {"w", "kw", "mw", "gw"}


class QuantityError(ValueError):
    """A quantity string that cannot be used; the message says what to write instead."""


def _split(text: str, what: str, hint: str) -> tuple[float, str]:
    """The number and the unit as written (case kept); a number too small for a float is refused, not read as 0."""
    match = _QUANTITY.match(str(text))
    if not match:
        raise QuantityError(f"invalid {what} {text!r}; {hint}")
    try:
        value = float(match.group(1))
    except ValueError:
        raise QuantityError(f"invalid {what} {text!r}: not a number; {hint}") from None
    if value == 0 and re.search(r"[1-9]", match.group(1).lower().split("e")[0]):
        raise QuantityError(f"invalid {what} {text!r}: too small to tell from zero; {hint}")
    return value, match.group(2)


def _joules_per(value: float, unit: str, text: str, hint: str) -> float:
    """Joules in one ``unit`` as written: SI case decides m (milli) from M (mega); a unit written
    without SI case (``mwh``, ``MWH``, ``mj``) is read only where that cannot change its meaning."""
    for base, joules in _ENERGY_BASES.items():
        prefix = unit[: len(unit) - len(base)]
        if unit[len(prefix):].lower() != base.lower() or prefix not in _PREFIXES:
            continue
        if unit.endswith(base) or prefix.lower() not in ("m",):
            return _PREFIXES[prefix] * joules
        raise QuantityError(
            f"ambiguous energy {text!r}: write {value:g}m{base} for {value * 1e-3 * joules:g} J (milli) "
            f"or {value:g}M{base} for {value * 1e6 * joules:g} J (mega)"
        )
    if unit.lower() in _POWER_UNITS:
        raise QuantityError(f"invalid energy {text!r}: {unit!r} is a unit of power, not energy; {hint}")
    reason = "no unit" if not unit else f"unknown unit {unit!r}"
    raise QuantityError(f"invalid energy {text!r}: {reason}; {hint}")


def parse_energy(text: str) -> float:
    """Return the joules in an energy string such as ``2kWh``, ``2 kwh``, ``500mJ`` or ``7.2e6J``.

    Case matters where SI gives it meaning: ``mJ``/``mWh`` are milli, ``MJ``/``MWh`` mega;
    ``mwh`` or ``MWH`` could be either and is refused with both readings.
    """
    hint = f"write a number with an energy unit: {ENERGY_UNITS} (e.g. 2kWh)"
    value, unit = _split(text, "energy", hint)
    joules = value * _joules_per(value, unit, text, hint)
    if not math.isfinite(joules) or joules < 0:
        raise QuantityError(f"invalid energy {text!r}: must be finite and not negative; {hint}")
    if joules == 0 and value != 0:
        raise QuantityError(f"invalid energy {text!r}: too small to tell from zero; {hint}")
    return joules


WORK_UNITS = {"samples": "sample", "epochs": "epoch", "tokens": "token", "seconds": "second"}  # record_work's keywords


def work_unit(name: str) -> str:
    """``samples`` or ``sample`` -> ``sample``; ``QuantityError`` for a unit of work not known."""
    unit = WORK_UNITS.get(name.strip().lower(), name.strip().lower())
    if unit not in WORK_UNITS.values():
        raise QuantityError(f"unknown unit of work {name!r}: use one of {', '.join(WORK_UNITS.values())}")
    return unit


def parse_energy_per_unit(text: str) -> tuple[float, str]:
    """``"5 J/sample"`` -> ``(5.0, "sample")``: joules per unit of work (sample, epoch, token, second of audio)."""
    energy, slash, unit = str(text).partition("/")
    if not slash:
        raise QuantityError(f"invalid energy per unit {text!r}; write an energy, a slash and a unit of work "
                            f"({', '.join(WORK_UNITS.values())}), e.g. 5 J/sample")
    return parse_energy(energy), work_unit(unit)


def parse_carbon_intensity(text: str) -> float:
    """``"56g/kWh"`` (or ``0.056 kg/kWh``, ``56 gCO2eq/kWh``) -> grams of CO2eq per kWh."""
    hint = "write a mass of CO2eq per kWh, e.g. 56g/kWh or 0.4kg/kWh"
    match = re.fullmatch(rf"\s*({_NUMBER})\s*(g|kg)(?:co2(?:eq|e)?)?\s*/\s*kwh\s*", str(text), re.IGNORECASE)
    if not match:
        raise QuantityError(f"invalid carbon intensity {text!r}; {hint}")
    grams = float(match.group(1)) * (1000.0 if match.group(2).lower() == "kg" else 1.0)
    if not math.isfinite(grams) or grams < 0:
        raise QuantityError(f"invalid carbon intensity {text!r}: must be finite and not negative; {hint}")
    return grams


def parse_count(text: str | float | int) -> float:
    """Return the number in a count such as ``20G``, ``17.4M``, ``912M``, ``125m`` or ``1.2e9``.

    Suffixes are case-blind: a count of MACs or parameters has no milli, so ``125m`` is
    125 million, as model names write it (``opt-125m``).
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value, suffix = float(text), ""
    else:
        value, suffix = _split(str(text), "count", f"write {COUNT_FORMS}")
    if suffix.lower() not in COUNT_SUFFIXES:
        raise QuantityError(f"invalid count {text!r}: unknown suffix {suffix.lower()!r}; write {COUNT_FORMS}")
    count = value * COUNT_SUFFIXES[suffix.lower()]
    if not math.isfinite(count) or count < 0:
        raise QuantityError(f"invalid count {text!r}: must be finite and not negative; write {COUNT_FORMS}")
    return count


SECONDS_PER_UNIT = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}  # m: minutes, as in Go and systemd
DURATION_FORMS = "a number with s, min (or m), h or d (e.g. 30d)"


def parse_duration(text: str) -> float:
    """Return the seconds in a duration such as ``30d``, ``12h``, ``90min`` or ``3600s``.

    ``m`` is minutes (a duration has no milli- or metre reading); ``M`` could be months or
    minutes and is refused.
    """
    hint = f"write {DURATION_FORMS}"
    value, unit = _split(str(text), "duration", hint)
    if unit == "M":
        raise QuantityError(f"ambiguous duration {text!r}: M could be minutes or months; write min for minutes or d for days")
    if unit.lower() not in SECONDS_PER_UNIT:
        raise QuantityError(f"invalid duration {text!r}: {hint}")
    seconds = value * SECONDS_PER_UNIT[unit.lower()]
    if not math.isfinite(seconds) or seconds <= 0:
        raise QuantityError(f"invalid duration {text!r}: must be finite and more than zero")
    return seconds


def joules_to_kwh(joules: float) -> float:
    return joules / JOULES_PER_UNIT["kWh"]


def energy_unit(joules: Optional[float]) -> str:
    """The unit that reads best for ``joules``: J, Wh or kWh by size."""
    magnitude = abs(joules or 0.0)
    return "J" if magnitude < 360.0 else "Wh" if magnitude < 3.6e6 else "kWh"


def common_energy_unit(energies: Iterable[Optional[float]], unit: Optional[str] = None) -> str:
    """One unit for a column of energies: ``unit`` if given, else the one that reads best for the largest."""
    return unit or energy_unit(max((abs(joules) for joules in energies if joules is not None), default=0.0))


_PERCENTAGE = re.compile(rf"^\s*({_NUMBER})\s*%\s*$", re.ASCII)


def parse_percentage(text: str) -> float:
    """``"10%"`` -> 0.10; the percent sign is required so ``10`` is not read as 1000 %."""
    hint = "expected a percentage such as 10%"
    match = _PERCENTAGE.match(str(text))
    if not match:
        raise QuantityError(f"{hint}, got {text!r}")
    number = _split(match.group(1), "percentage", hint)[0]
    if not number >= 0 or not math.isfinite(number):
        raise QuantityError(f"expected a finite percentage of 0% or more, got {text!r}")
    return number / 100


def format_energy(joules: Optional[float], unit: Optional[str] = None, digits: Optional[int] = None) -> str:
    """Format joules for reading: ``unit`` if given, else J, Wh or kWh by size; ``digits`` significant
    digits if given, else three."""
    if joules is None:
        return "unmeasured"
    unit = unit or energy_unit(joules)
    value = joules / JOULES_PER_UNIT[unit]
    return f"{_significant(value) if digits is None else f'{value:#.{digits}g}'} {unit}"


def format_energies_apart(first_j: float, second_j: float, unit: Optional[str] = None) -> Tuple[str, str]:
    """Two energies in one unit, with enough digits that unequal ones read differently (a figure
    just over its cap never shows as equal to it)."""
    unit = unit or energy_unit(max(abs(first_j), abs(second_j)))
    shown = (format_energy(first_j, unit), format_energy(second_j, unit))
    for digits in range(4, 18):
        if float(shown[0].split()[0]) != float(shown[1].split()[0]) or first_j == second_j:
            break  # "1 J" and "1.00 J" read the same: it is the numbers that must differ
        shown = (format_energy(first_j, unit, digits), format_energy(second_j, unit, digits))
    return shown


def format_count(count: Optional[float]) -> str:
    """Format a count with an SI suffix: ``917.6M``."""
    if count is None:
        return "-"
    for suffix, factor in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(count) >= factor:
            return f"{_significant(count / factor)}{suffix}"
    return _significant(count)


def _significant(value: float) -> str:
    """Three significant figures, without a trailing exponent for everyday sizes."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.01:
        return f"{value:.3g}" if magnitude < 1 else f"{value:.2f}"
    return f"{value:.2e}"
