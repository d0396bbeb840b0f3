"""Settings from the command line, ``[tool.pytest-energy]`` in pyproject.toml and ini keys.

Precedence: command line, then pyproject.toml, then ini keys, then defaults. Every
bad value raises ``ConfigError`` with one line naming the key, the file and the fix;
the plugin turns it into a pytest usage error (exit code 4).
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .account.presets import PRESETS, REFERENCE_KEYS, ReferenceValues, resolve_reference
from .measure import METER_CHOICES, RANK_PORT_ENV
from .store.files import read_bytes_bounded
from .units import (COUNT_FORMS, ENERGY_UNITS, QuantityError, parse_carbon_intensity, parse_count, parse_duration, parse_energy,
                    parse_energy_per_unit, parse_percentage)

PHASES = ("train", "test")
DISPLAY_UNITS = ("auto", "J", "kJ", "MJ", "Wh", "kWh", "MWh")
CAP_MODES = ("fail", "warn")
BASELINE_MODES = ("use", "refresh", "off")
NORMALIZATION_RULES = ("one-point", "two-point")
MAX_PYPROJECT_BYTES = 16 * 2**20  # a pyproject.toml is a few kilobytes
CAP_ON = ("median", "max", "each")


class ConfigError(Exception):
    """A setting that cannot be used; the message is the one line shown to the user."""


def shown(value: Any) -> str:
    """A setting's value as the user wrote it: dates and times in ISO form, anything else as Python shows it."""
    if isinstance(value, (datetime.date, datetime.time)):
        return f"{value.isoformat()} (a TOML {type(value).__name__})"
    return repr(value)


def _energy(value: Any) -> float:
    if not isinstance(value, str):
        raise QuantityError(f"expected an energy string such as \"2kWh\" (units: {ENERGY_UNITS}), got {shown(value)}")
    return parse_energy(value)


def _choice(choices: tuple) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {shown(value)}")
        return value

    return parse


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = value.strip().lower() if isinstance(value, str) else None
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {shown(value)}")


def _positive(value: Any) -> float:
    try:
        number = float(value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else math.nan
    except ValueError:  # a string that is not a number
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"expected a positive number, got {shown(value)}")
    return number


def _within(parse: Callable[[Any], float], low: float, high: float, unit: str) -> Callable[[Any], float]:
    """``parse``, refusing a value outside ``[low, high]`` with the range (a 10^20 Hz sampler is a typo)."""
    def bounded(value: Any) -> float:
        number = parse(value)
        if not low <= number <= high:
            raise ValueError(f"{shown(value)} is out of range: allowed {low:g} to {high:g}{unit}")
        return number

    return bounded


def _count_at_least_one(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit() or int(value) < 1:
        raise ValueError(f"expected a whole number of at least 1, got {shown(value)}")
    return int(value)


def _count_at_least_zero(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit():
        raise ValueError(f"expected a whole number of 0 or more, got {shown(value)}")
    return int(value)


def _regression_limit(value: Any) -> Union[float, str]:
    """``--energy-compare-fail``: a percentage, or ``auto`` (the noise floor)."""
    if isinstance(value, str) and value.strip() == "auto":
        return "auto"
    if not isinstance(value, str):
        raise ValueError(f"expected a percentage such as 10% or auto, got {shown(value)}")
    return parse_percentage(value)


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected {COUNT_FORMS}, got {shown(value)}")
    return round(parse_count(value))


def _duration(value: Any) -> float:
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as \"30d\" or \"12h\", got {shown(value)}")
    return parse_duration(value)


def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit():
        raise ValueError(f"expected a TCP port (a whole number from 1 to 65535), got {shown(value)}")
    if not 1 <= int(value) <= 65535:
        raise ValueError(f"{shown(value)} is out of range: allowed 1 to 65535")
    return int(value)


_repeats = _within(_count_at_least_one, 1, 1000, "")  # type: ignore[arg-type]
_warmup = _within(_count_at_least_zero, 0, 1000, "")  # type: ignore[arg-type]
_cooldown = _within(_duration, 0, 3600, " s")


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {shown(value)}")
    if not value.strip():
        raise ValueError(f"expected a path or name, got only white space {shown(value)}")
    return value


@dataclasses.dataclass(frozen=True)
class Option:
    """One setting: its pyproject key, command-line flag, and parser."""

    key: str
    help: str
    parse: Callable[[Any], Any]
    default: Any = None
    flag: bool = False  # a command-line switch without a value
    const: Optional[str] = None  # the value of a flag given without one (--energy-compare)
    name: Optional[str] = None  # command-line and ini name when it differs from the key
    prefix: str = "energy-"  # of the command-line flag: --energy-cap, but --macs-cap

    @property
    def dest(self) -> str:
        return (self.prefix + (self.name or self.key)).replace("-", "_")

    @property
    def cli(self) -> str:
        return "--" + self.prefix + (self.name or self.key)


OPTIONS: List[Option] = [
    Option("cap", f"cap on each measured test's energy, e.g. 2kWh (units: {ENERGY_UNITS})", _energy),
    Option("meter", "energy meter: " + "|".join(METER_CHOICES), _choice(METER_CHOICES), "auto"),
    Option("json", "write the JSON energy report to this path", _text),
    Option("all", "measure every test, not only marked ones", _bool, False, flag=True),
    Option("unit", "unit of energies in the terminal: " + "|".join(DISPLAY_UNITS), _choice(DISPLAY_UNITS), "auto"),
    Option("sampling-hz", "power sampling rate where no energy counter exists (Hz)", _within(_positive, 0.01, 1000, " Hz"), 10.0),
    Option("cap-mode", "fail: a test over its cap fails; warn: it is reported, not failed", _choice(CAP_MODES), "fail"),
    Option("session-cap", "cap on the whole session's measured energy; tests left once it is crossed are skipped", _energy),
    Option("check-interval", "seconds between live cap checks while a capped test runs", _within(_positive, 0.001, 3600, " s"),
           0.5),
    Option("autosave", "store this run's report under the storage directory", _bool, False, flag=True),
    Option("compare", "compare with the latest stored run, or the one named", _text, const="latest"),
    Option("compare-fail", "fail a test whose energy grew by more than this over the compared run (the lower bound of "
           "its interval, with repeats), e.g. 10%, or auto: this runner's noise floor from its stored runs",
           _regression_limit),
    Option("storage", "directory of stored runs", _text, ".energy"),
    Option("baseline-mode", "use: reuse the cached baseline; refresh: measure it again; off: no normalisation",
           _choice(BASELINE_MODES), "use", name="baseline"),
    Option("baseline-repeats", "run the baseline test this many times and use the mean", _within(_count_at_least_one, 1, 100, ""), 1),
    Option("baseline-max-age", "re-measure a cached baseline older than this, e.g. 30d", _duration),
    Option("normalized", "energy caps compare normalised energy (needs a baseline)", _bool, False, flag=True),
    Option("preset", "reference values of a challenge: " + "|".join(PRESETS), _choice(tuple(PRESETS))),
    Option("normalization", "one-point (the challenge's rule) or two-point", _choice(NORMALIZATION_RULES), "one-point"),
    Option("macs-cap", "cap on the MACs a test counts with energy.count_macs or macs_input, e.g. 1.2G", _count, prefix=""),
    Option("params-cap", "cap on the parameters of a model a test counts, e.g. 17.4M", _count, prefix=""),
    # repeats and the noise-aware regression gate (decide/noise.py)
    Option("repeats", "run each measured test's body this many times, each measured; the record keeps every figure",
           _repeats, 1),
    Option("warmup", "run each measured test's body this many times unmeasured before its repeats", _warmup, 0),
    Option("cooldown", "pause between a test's repeats (and after its warm-up), e.g. 5s", _cooldown, 0.0),
    Option("cap-on", "with repeats, what a cap applies to: " + "|".join(CAP_ON), _choice(CAP_ON), "median"),
    Option("benchmark-json", "write github-action-benchmark's customSmallerIsBetter JSON to this path", _text),
    Option("openmetrics", "write a GitLab metrics report (OpenMetrics text) to this path", _text),
    Option("carbon-intensity", "grams of CO2eq per kWh of this grid, e.g. 56g/kWh: every record gets its emissions "
           "(none without it)", lambda value: parse_carbon_intensity(_text(value))),
    # distributed launches (measure/ranks.py, measure/rank_exchange.py)
    Option("rank-port", "under torchrun or srun: the TCP port of the ranks' energy exchange (default: "
           f"${RANK_PORT_ENV}, else MASTER_PORT + 1)", _port),
    Option("rank-timeout", "under torchrun or srun: how long rank 0 waits for a rank's figure of a test before "
           "counting it lost (a lower bound), e.g. 60s", _within(_duration, 0.1, 3600, " s"), 60.0),
    Option("macs-compare-fail", "fail a test whose counted MACs or parameters grew by more than this over the "
           "compared run, e.g. 0% (counts are exact: no noise)", parse_percentage, prefix=""),
]
PYPROJECT_ONLY = {"metadata", "baseline", *REFERENCE_KEYS}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the plugin needs to know, validated."""

    caps: Mapping[str, Optional[float]]  # "default", "train", "test" -> joules
    meter: str = "auto"
    json: Optional[str] = None
    all: bool = False
    unit: Optional[str] = None
    sampling_hz: float = 10.0
    cap_mode: str = "fail"
    session_cap_j: Optional[float] = None
    check_interval_s: float = 0.5
    autosave: bool = False
    compare: Optional[str] = None  # "latest" or a stored run's name
    compare_fail: Union[float, str, None] = None  # 0.10 for 10 %, or "auto"
    storage: str = ".energy"
    baseline_mode: str = "use"
    baseline_nodeid: Optional[str] = None
    baseline_repeats: int = 1
    baseline_max_age_s: Optional[float] = None
    normalized: bool = False
    normalization: str = "one-point"
    reference: ReferenceValues = dataclasses.field(default_factory=ReferenceValues)
    macs_cap: Optional[int] = None
    params_cap: Optional[int] = None
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    source: str = ""  # the pyproject.toml read, if any
    repeats: int = 1
    warmup: int = 0
    cooldown_s: float = 0.0
    cap_on: str = "median"  # with repeats: "median", "max" or "each"
    benchmark_json: Optional[str] = None
    openmetrics: Optional[str] = None
    macs_compare_fail: Optional[float] = None  # 0.0: any growth of MACs or parameters fails
    carbon_intensity_g_per_kwh: Optional[float] = None
    rank_port: Optional[int] = None  # the option, else $PYTEST_ENERGY_RANK_PORT; None: MASTER_PORT + 1
    rank_timeout_s: float = 60.0

    def cap_for(self, phase: str, marker_cap: Optional[float] = None) -> Optional[float]:
        if marker_cap is not None:
            return marker_cap
        return self.caps.get(phase) if self.caps.get(phase) is not None else self.caps.get("default")


def add_options(parser: Any) -> None:
    """Register the command-line options and ini keys with pytest."""
    group = parser.getgroup("energy", "energy measurement (pytest-energy)")
    for option in OPTIONS:
        cli_help = option.help.replace("%", "%%")  # argparse %-formats option help; ini help is shown as written
        if option.flag:
            group.addoption(option.cli, action="store_true", default=None, dest=option.dest, help=cli_help)
        elif option.const is not None:
            group.addoption(option.cli, nargs="?", const=option.const, default=None, dest=option.dest, metavar="RUN", help=cli_help)
        else:
            group.addoption(option.cli, action="store", default=None, dest=option.dest, metavar="VALUE", help=cli_help)
        parser.addini(option.dest, option.help, default=None)


def read_pyproject(path: Path) -> Dict[str, Any]:
    """The ``[tool.pytest-energy]`` table of a pyproject.toml, or {} if it has none."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    try:  # a fifo or device is refused, not waited on; UnicodeDecodeError is a ValueError
        document = tomllib.loads(read_bytes_bounded(path, MAX_PYPROJECT_BYTES).decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read [tool.pytest-energy]: {exc}") from None
    table = document.get("tool", {}).get("pytest-energy", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.pytest-energy] must be a table")
    return table


def find_pyproject(rootpath: Path, inipath: Optional[Path]) -> Optional[Path]:
    if inipath is not None and inipath.name == "pyproject.toml":
        return inipath
    candidate = rootpath / "pyproject.toml"
    return candidate if candidate.is_file() else None


def _preset_conflict(preset: str, pyproject: Mapping[str, Any], source: str) -> None:
    """A preset chosen on the command line and a pyproject value it also sets: the run cannot tell which
    was meant (in pyproject, a key beside ``preset`` replaces the preset's value), so it stops."""
    values = PRESETS.get(preset)
    if values is None:
        return
    both = [key for key in REFERENCE_KEYS if pyproject.get(key) is not None and key in values.origins]
    if both:
        raise ConfigError(
            f"option --energy-preset={preset} and {source} [tool.pytest-energy] key {both[0]!r} both set "
            f"{both[0]}: remove the key, or write preset = \"{preset}\" beside it in {source} to override the preset's value"
        )


def build_settings(
    cli: Mapping[str, Any], pyproject: Mapping[str, Any], ini: Mapping[str, Any], source: str = "pyproject.toml",
    environ: Optional[Mapping[str, str]] = None,
) -> Settings:
    """Merge the three layers and validate every value. ``environ``'s ``PYTEST_ENERGY_RANK_PORT`` comes
    between the command line and the files for ``rank-port``."""
    environ = {} if environ is None else environ
    known = {option.key for option in OPTIONS} | PYPROJECT_ONLY
    for key in pyproject:
        if key not in known:
            raise ConfigError(f"{source} [tool.pytest-energy]: unknown key {key!r} (known keys: {', '.join(sorted(known))})")
    values: Dict[str, Any] = {}
    pyproject_caps: Dict[str, Optional[float]] = {}
    for option in OPTIONS:
        if cli.get(option.dest) == "":
            raise ConfigError(f"option {option.cli} is empty (an unset variable?): give it a value or remove the option")
        layers = [
            (cli.get(option.dest), f"option {option.cli}"),
            ((environ.get(RANK_PORT_ENV) or None) if option.key == "rank-port" else None,
             f"environment variable {RANK_PORT_ENV}"),
            (None if option.key == "cap" else pyproject.get(option.key), f"{source} [tool.pytest-energy] key {option.key!r}"),
            (ini.get(option.dest), f"ini key {option.dest!r}"),
        ]
        for value, where in layers[1:]:  # an empty ini key stays unset: pytest < 8 reports an absent one as ""
            if isinstance(value, str) and not value.strip() and (value or where.startswith(source)):
                raise ConfigError(f"{where} is empty: give it a value or remove the key")
        raw, where = next(((value, where) for value, where in layers if value not in (None, "")), (None, ""))
        try:
            values[option.key] = option.default if raw is None else option.parse(raw)
        except (QuantityError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
    if "cap" in pyproject:
        pyproject_caps = _pyproject_caps(pyproject["cap"], source)
    metadata = _metadata(pyproject.get("metadata", {}), f"{source} [tool.pytest-energy] key 'metadata'")
    caps: Dict[str, Optional[float]] = {"default": None, "train": None, "test": None}
    if cli.get("energy_cap") is not None or not pyproject_caps:
        caps["default"] = values["cap"]  # from the command line, or else the ini key
    else:
        caps.update(pyproject_caps)
    unit = values["unit"]
    if cli.get("energy_preset") not in (None, ""):
        _preset_conflict(str(cli["energy_preset"]), pyproject, source)
    try:
        reference = resolve_reference(values["preset"], pyproject)
    except (QuantityError, ValueError) as exc:
        raise ConfigError(f"{source} [tool.pytest-energy]: {exc}") from None
    baseline = pyproject.get("baseline")
    if baseline is not None and (not isinstance(baseline, str) or not baseline.strip()):
        raise ConfigError(f"{source} [tool.pytest-energy] key 'baseline': expected a test id such as "
                          f"\"tests/test_baseline.py::test_ten_epochs\", got {baseline!r}")
    return Settings(
        caps=caps,
        meter=values["meter"],
        json=values["json"],
        all=values["all"],
        unit=None if unit == "auto" else unit,
        sampling_hz=values["sampling-hz"],
        cap_mode=values["cap-mode"],
        session_cap_j=values["session-cap"],
        check_interval_s=values["check-interval"],
        autosave=values["autosave"],
        compare=values["compare"],
        compare_fail=values["compare-fail"],
        storage=values["storage"],
        baseline_mode=values["baseline-mode"],
        baseline_nodeid=baseline,
        baseline_repeats=values["baseline-repeats"],
        baseline_max_age_s=values["baseline-max-age"],
        normalized=values["normalized"],
        normalization=values["normalization"],
        reference=reference,
        macs_cap=values["macs-cap"],
        params_cap=values["params-cap"],
        metadata=metadata,
        source=source,
        repeats=values["repeats"],
        warmup=values["warmup"],
        cooldown_s=values["cooldown"],
        cap_on=values["cap-on"],
        benchmark_json=values["benchmark-json"],
        openmetrics=values["openmetrics"],
        macs_compare_fail=values["macs-compare-fail"],
        carbon_intensity_g_per_kwh=values["carbon-intensity"],
        rank_port=values["rank-port"],
        rank_timeout_s=values["rank-timeout"],
    )


def _metadata(table: Any, where: str) -> Dict[str, Any]:
    """The ``metadata`` table as JSON can hold it: TOML dates and times become ISO strings."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table, got {shown(table)}")

    def plain(value: Any, key: str) -> Any:
        if isinstance(value, dict):
            return {name: plain(item, f"{key}.{name}") for name, item in value.items()}
        if isinstance(value, list):
            return [plain(item, key) for item in value]
        if isinstance(value, (datetime.date, datetime.time)):
            return value.isoformat()
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where}: {key} = {value!r} cannot go into a JSON report; write a finite number or a string")
        return value

    return {name: plain(value, name) for name, value in table.items()}


def _pyproject_caps(raw: Any, source: str) -> Dict[str, Optional[float]]:
    where = f"{source} [tool.pytest-energy] key 'cap'"
    entries = {"default": raw} if not isinstance(raw, dict) else dict(raw)
    caps: Dict[str, Optional[float]] = {}
    for phase, value in entries.items():
        if phase not in ("default",) + PHASES:
            raise ConfigError(f"{where}: unknown phase {phase!r} (use cap = \"2kWh\" or cap.train / cap.test)")
        try:
            caps[phase] = _energy(value)
        except QuantityError as exc:
            raise ConfigError(f"{where}{'' if phase == 'default' else '.' + phase}: {exc}") from None
    return caps


def parse_marker_cap(value: Any, nodeid: str, argument: str = "energy marker cap") -> Optional[float]:
    """The ``cap=`` of an energy marker (or another energy argument of a marker), in joules."""
    if value is None:
        return None
    try:
        return _energy(value)
    except QuantityError as exc:
        raise ConfigError(f"{nodeid}: {argument}: {exc}") from None


ENERGY_MARKER_ARGUMENTS = ("phase", "cap", "system", "macs_input", "macs_model", "repeats", "warmup", "cooldown",
                           "cap_per_unit")
MARKER_PARSERS = {"repeats": _repeats, "warmup": _warmup, "cooldown": _cooldown,
                  "cap_per_unit": lambda value: parse_energy_per_unit(_text(value))}


@dataclasses.dataclass(frozen=True)
class EnergyMarker:
    """The arguments of ``@pytest.mark.energy``, validated."""

    phase: str = "test"
    cap_j: Optional[float] = None
    system: Optional[str] = None
    macs_input: Optional[Tuple[int, ...]] = None
    macs_model: Optional[str] = None
    repeats: Optional[int] = None  # None: the session's setting
    warmup: Optional[int] = None
    cooldown_s: Optional[float] = None
    cap_per_unit: Optional[Tuple[float, str]] = None  # "5 J/sample": (5.0, "sample")


def parse_energy_marker(args: Sequence[Any], kwargs: Mapping[str, Any], nodeid: str) -> EnergyMarker:
    """Validate ``@pytest.mark.energy(...)`` of ``nodeid``; a bad argument raises ConfigError naming it."""
    _keywords_only("energy", args, kwargs, ENERGY_MARKER_ARGUMENTS, nodeid, 'energy(phase="train", cap="2kWh")')
    phase = kwargs.get("phase", "test")
    if phase not in PHASES:
        raise ConfigError(f"{nodeid}: energy marker phase must be 'train' or 'test', got {phase!r}")
    for name in ("system", "macs_model"):
        if kwargs.get(name) is not None and not isinstance(kwargs[name], str):
            raise ConfigError(f"{nodeid}: energy marker {name} must be a string, got {kwargs[name]!r}")
    shape = kwargs.get("macs_input")
    if shape is not None:
        from .account.complexity import input_shape  # only for a marker that counts MACs

        try:
            shape = input_shape(shape)
        except ValueError as exc:
            raise ConfigError(f"{nodeid}: energy marker macs_input: {exc}") from None
    parsed: Dict[str, Any] = {}
    for name, parse in MARKER_PARSERS.items():
        if kwargs.get(name) is not None:
            try:
                parsed[name] = parse(kwargs[name])
            except (QuantityError, ValueError) as exc:
                raise ConfigError(f"{nodeid}: energy marker {name}: {exc}") from None
    return EnergyMarker(phase, parse_marker_cap(kwargs.get("cap"), nodeid), kwargs.get("system"), shape, kwargs.get("macs_model"),
                        parsed.get("repeats"), parsed.get("warmup"), parsed.get("cooldown"), parsed.get("cap_per_unit"))


def parse_baseline_marker(args: Sequence[Any], kwargs: Mapping[str, Any], nodeid: str) -> Optional[float]:
    """Validate ``@pytest.mark.energy_baseline(...)``; returns its ``reference=`` energy in joules, if any."""
    _keywords_only("energy_baseline", args, kwargs, ("reference",), nodeid, 'energy_baseline(reference="5.2kJ")')
    reference = parse_marker_cap(kwargs.get("reference"), nodeid, "energy_baseline marker reference")
    if reference is not None and reference <= 0:
        raise ConfigError(f"{nodeid}: energy_baseline marker reference: must be more than zero, got {kwargs['reference']!r}")
    return reference


def _keywords_only(marker: str, args: Sequence[Any], kwargs: Mapping[str, Any], known: Sequence[str], nodeid: str,
                   example: str) -> None:
    if args:
        raise ConfigError(f"{nodeid}: {marker} marker takes keyword arguments only, e.g. @pytest.mark.{example}; "
                          f"got {', '.join(repr(arg) for arg in args)}")
    unknown = [name for name in kwargs if name not in known]
    if unknown:
        raise ConfigError(f"{nodeid}: {marker} marker has no argument {unknown[0]!r} (its arguments: {', '.join(known)})")
