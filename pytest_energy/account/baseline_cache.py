"""The baseline's measured energy, cached per hardware fingerprint.

One JSON file per fingerprint (``<fingerprint>.json``) in a directory the plugin
chooses (pytest's cache: ``config.cache.mkdir("energy-baseline")``), so a cache shared
by machines of different kinds keeps one entry for each. Writes go to a temporary
file that replaces the entry atomically, under a ``filelock.FileLock``; reads take
the same lock, so a reader never discards an entry another process is writing. An
entry that cannot be read, is not valid JSON, breaks ``baseline-cache-schema.json`` (which
also refuses an energy that is not a finite number of joules more than zero), holds an
energy outside the plausible range of a baseline (``store/plausible.py``: 1 mJ to 1 TWh), or
is dated in the future, is deleted and reported, never used. An entry is read without
blocking: a fifo or device in its place is refused, not waited on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import math
import os
import shutil
import statistics
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union, cast

from .. import __version__
from ..measure.machine import fingerprint
from ..store.files import read_bytes_bounded, write_text_atomically
from ..store.plausible import MIN_BASELINE_J, implausible_energy
from ..store.schemas import BASELINE_CACHE_SCHEMA, check
from ..units import format_energy

SCHEMA = "pytest-energy/baseline/1"
SPREAD_WARNING_CV = 0.20  # coefficient of variation above which repeats are called unstable
LOCK_TIMEOUT_S = 60.0
STATUSES = ("hit", "miss", "expired", "fingerprint-changed", "baseline-changed", "corrupt")
CLOCK_SKEW_S = 300.0  # an entry dated later than this in the future is not trusted
MAX_ENTRY_BYTES = 2**20  # an entry is about a kilobyte; more is not an entry


class BaselineCacheError(Exception):
    """The cache directory cannot be used; the message says why."""


def summarize_repeats(energies_j: Sequence[float]) -> Tuple[float, float, Optional[str]]:
    """``(mean, sample std, warning)`` of repeated baseline measurements.

    The warning is set when the coefficient of variation exceeds ``SPREAD_WARNING_CV``.
    """
    if not energies_j:
        raise ValueError("no baseline measurement to summarise")
    for energy in energies_j:
        if not _positive_finite(energy):
            raise ValueError(f"baseline energy must be a finite number of joules more than zero, got {str(energy)[:40]}")
    mean = statistics.fmean(energies_j)
    std = statistics.stdev(energies_j) if len(energies_j) > 1 else 0.0
    if not (math.isfinite(mean) and math.isfinite(std)):
        raise ValueError("baseline energies too large to average")
    if std / mean <= SPREAD_WARNING_CV:
        return mean, std, None
    warning = (
        f"baseline energy varies by {std / mean:.0%} across {len(energies_j)} repeats "
        f"({format_energy(mean)} ± {format_energy(std)}); every normalised figure inherits this spread "
        f"(the DCASE organisers saw 0.030 ± 0.020 kWh for the same reference workload across participants' "
        f"setups). Check for other load on the machine, or raise baseline-repeats."
    )
    return mean, std, warning


def _positive_finite(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value)) and value > 0
    except OverflowError:  # an int too large for a float
        return False


def _discard(path: Path) -> str:
    """Remove a cache entry that cannot be used (a file, or a directory in its place); why not, if it stays."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    except OSError as error:
        return f" (it stays: cannot remove it: {error})"
    return ""


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _parse_time(text: str) -> datetime.datetime:
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"measured_at {text!r} has no time zone")
    return moment


@dataclasses.dataclass(frozen=True)
class BaselineEntry:
    """One cached baseline measurement, explaining where and how it was taken."""

    fingerprint: str
    hardware: Mapping[str, object]
    energy_j: float  # mean of energies_j
    energies_j: Tuple[float, ...]
    std_j: float
    measured_at: str  # ISO 8601, UTC
    meter: str
    nodeid: str
    plugin_version: str = __version__
    schema: str = SCHEMA

    @classmethod
    def from_repeats(cls, hardware: Mapping[str, object], energies_j: Sequence[float], meter: str, nodeid: str,
                     measured_at: Optional[datetime.datetime] = None) -> "BaselineEntry":
        """An entry for ``hardware`` from one or more measurements of the baseline test."""
        mean, std, _ = summarize_repeats(energies_j)
        moment = (measured_at or _utc_now()).astimezone(datetime.timezone.utc)
        return cls(
            fingerprint=fingerprint(hardware),
            hardware=dict(hardware),
            energy_j=mean,
            energies_j=tuple(float(energy) for energy in energies_j),
            std_j=std,
            measured_at=moment.isoformat(timespec="seconds"),
            meter=meter,
            nodeid=nodeid,
        )

    @property
    def spread_warning(self) -> Optional[str]:
        return summarize_repeats(self.energies_j)[2]

    def age_s(self, now: Optional[datetime.datetime] = None) -> float:
        return ((now or _utc_now()) - _parse_time(self.measured_at)).total_seconds()

    def to_json(self) -> Dict[str, object]:
        data = dataclasses.asdict(self)
        data["hardware"] = dict(self.hardware)
        data["energies_j"] = list(self.energies_j)
        return data

    @classmethod
    def from_json(cls, data: object) -> "BaselineEntry":
        """Validate strictly; ``ValueError`` says what is wrong.

        ``baseline-cache-schema.json`` checks the fields, their types and that every energy is
        a finite number of joules more than zero; this checks what a schema cannot say.
        """
        check(data, BASELINE_CACHE_SCHEMA)
        data = cast(Dict[str, Any], data)  # the schema says it is an object
        for index, energy in enumerate(data["energies_j"]):
            why = implausible_energy(energy, MIN_BASELINE_J)
            if why is not None:
                raise ValueError(f"$.energies_j[{index}]: {why} (a baseline is between 1 mJ and 1 TWh)")
        if fingerprint(data["hardware"]) != data["fingerprint"]:
            raise ValueError("fingerprint does not match the hardware it describes")
        mean, std, _ = summarize_repeats(data["energies_j"])
        for name, expected in (("energy_j", mean), ("std_j", std)):
            if not math.isclose(data[name], expected, rel_tol=1e-9, abs_tol=1e-12):
                raise ValueError(f"{name} {data[name]!r} does not agree with energies_j ({expected!r})")
        _parse_time(data["measured_at"])
        return cls(**{**data, "energies_j": tuple(float(energy) for energy in data["energies_j"])})


@dataclasses.dataclass(frozen=True)
class Lookup:
    """What ``BaselineCache.load`` found: ``entry`` only on a hit; ``message`` says why otherwise."""

    entry: Optional[BaselineEntry]
    status: str  # one of STATUSES
    message: str


class BaselineCache:
    """Baseline entries in ``directory``, one file per hardware fingerprint."""

    def __init__(self, directory: Union[str, "os.PathLike[str]"]):
        self.directory = Path(directory)

    def path(self, fingerprint: str) -> Path:
        return self.directory / f"{fingerprint}.json"

    @contextlib.contextmanager
    def _locked(self, fingerprint: str) -> Iterator[None]:
        """Hold the lock of one fingerprint's entry; creates the directory."""
        import filelock  # only when a baseline is read or written, like measure.overlap.claim_machine

        lock = filelock.FileLock(str(self.directory / f"{fingerprint}.json.lock"), timeout=LOCK_TIMEOUT_S)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            lock.acquire()
        except filelock.Timeout:
            raise BaselineCacheError(
                f"could not lock {self.path(fingerprint)} within {LOCK_TIMEOUT_S:.0f} s: another pytest run holds it"
            ) from None
        except OSError as error:
            raise BaselineCacheError(f"cannot use the baseline cache in {self.directory}: {error}") from None
        try:
            yield
        finally:
            lock.release()

    def load(self, fingerprint: str, max_age_s: Optional[float] = None, nodeid: Optional[str] = None,
             now: Optional[datetime.datetime] = None) -> Lookup:
        """The entry for ``fingerprint`` when it can be reused; else why not.

        ``max_age_s`` None means entries never expire; ``nodeid``, when given, must be
        the baseline test the entry was measured with.
        """
        path = self.path(fingerprint)
        with self._locked(fingerprint):
            try:
                raw = read_bytes_bounded(path, MAX_ENTRY_BYTES)
            except FileNotFoundError:
                return self._miss(fingerprint)
            except OSError as error:  # a directory, fifo or device in its place, no permission to read it
                message = f"discarded the unreadable baseline cache entry {path}: {error}{_discard(path)}"
                return Lookup(None, "corrupt", message)
            try:  # UnicodeDecodeError and JSONDecodeError are ValueErrors too
                entry = BaselineEntry.from_json(json.loads(raw.decode("utf-8")))
                if entry.fingerprint != fingerprint:
                    raise ValueError(f"it is filed under {fingerprint} but describes {entry.fingerprint}")
                age = entry.age_s(now)
                if age < -CLOCK_SKEW_S:
                    raise ValueError(f"it is dated {entry.measured_at}, in the future")
            except (ValueError, TypeError, OverflowError, RecursionError) as error:
                message = f"discarded the corrupt or foreign baseline cache entry {path}: {error}{_discard(path)}"
                return Lookup(None, "corrupt", message)
        if nodeid is not None and entry.nodeid != nodeid:
            return Lookup(None, "baseline-changed", f"cached baseline was measured by {entry.nodeid}, not {nodeid}")
        if max_age_s is not None and age > max_age_s:
            message = f"cached baseline from {entry.measured_at} is {age:.0f} s old (limit {max_age_s:.0f} s)"
            return Lookup(None, "expired", message)
        message = f"reused baseline measured {entry.measured_at} with {entry.meter} by {entry.nodeid}"
        return Lookup(entry, "hit", message)

    def _miss(self, fingerprint: str) -> Lookup:
        others = sorted(path.stem for path in self.directory.glob("*.json") if path.stem != fingerprint)
        if others:
            cached = ", ".join(others)
            message = f"no baseline for this hardware (fingerprint {fingerprint}); cached ones are for {cached}"
            return Lookup(None, "fingerprint-changed", message)
        return Lookup(None, "miss", f"no cached baseline for fingerprint {fingerprint}")

    def store(self, entry: BaselineEntry) -> Path:
        """Write ``entry`` atomically, replacing any entry for its fingerprint."""
        text = json.dumps(entry.to_json(), indent=2, sort_keys=True)
        BaselineEntry.from_json(json.loads(text))  # never write what load would discard
        with self._locked(entry.fingerprint):
            write_text_atomically(self.path(entry.fingerprint), text, durable=True)
        return self.path(entry.fingerprint)

    def clear(self, fingerprint: Optional[str] = None) -> List[Path]:
        """Remove the entry for ``fingerprint`` (every entry when None); return what was removed."""
        targets = [self.path(fingerprint)] if fingerprint else sorted(self.directory.glob("*.json"))
        removed = []
        for path in targets:
            with self._locked(path.stem):
                if (path.exists() or path.is_symlink()) and not _discard(path):
                    removed.append(path)
        return removed
