"""CPU package and DRAM energy from the Linux powercap RAPL counters.

Each top-level ``intel-rapl:N`` zone (AMD uses the same control type; some kernels
``amd-rapl:N``) named ``package-*`` is a CPU package, and its ``dram`` sub-zone is
the memory. ``core``/``uncore`` sub-zones are parts of the package and ``psys``
covers the whole platform, so they are skipped rather than counted twice.
``energy_uj`` wraps at ``max_energy_range_uj``: every read adds the wrap-aware
delta, and a light daemon thread reads often enough that no wrap is missed.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from pathlib import Path
from typing import Dict, FrozenSet, List, Mapping, Optional, Union

from .base import DeviceTotal, Source, SourceUnavailable

WRAP_SAFE_POWER_W = 500.0  # the default poll period keeps a package this hungry within one wrap
MAX_POLL_S = 60.0
MIN_POLL_S = 0.01  # only reached with an implausibly small counter range; keeps the thread light
_ZONE = re.compile(r"^(intel-rapl|amd-rapl):(\d+)$")


@dataclasses.dataclass
class _Zone:
    """One counted RAPL zone and the energy it has added up since ``open``."""

    path: Path
    component: str  # "cpu" | "ram"
    device: str  # "package-0", "dram-0"
    label: str  # "package-0", "package-0/dram"
    max_range_uj: int
    last_uj: int = 0
    total_uj: int = 0
    partial: str = ""


def wrapped_delta(old_uj: int, new_uj: int, max_range_uj: int) -> int:
    """Energy between two reads of a counter that wraps at ``max_range_uj``."""
    return new_uj - old_uj if new_uj >= old_uj else new_uj + max_range_uj - old_uj


class RaplSource(Source):
    name = "rapl"

    def __init__(self, root: Union[str, Path] = "/sys/class/powercap", poll_s: Optional[float] = None):
        self._root = Path(root)
        self.poll_s = poll_s  # seconds between background reads; chosen at ``open`` when None
        self._zones: List[_Zone] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: Optional[threading.Thread] = None

    def open(self) -> None:
        if not self._root.is_dir():
            raise SourceUnavailable(f"no RAPL powercap interface at {self._root}")
        zones = _find_zones(self._root)
        if not zones:
            raise SourceUnavailable(f"no RAPL package zone under {self._root}")
        for zone in zones:
            try:
                zone.max_range_uj = _read_int(zone.path / "max_energy_range_uj")
                zone.last_uj = _read_int(zone.path / "energy_uj")
            except PermissionError as exc:
                raise SourceUnavailable(
                    f"cannot read {exc.filename or zone.path / 'energy_uj'}: permission denied "
                    "(Linux >= 5.10 lets only root read RAPL counters); run as root or "
                    f"`sudo chmod o+r {self._root}/*-rapl:*/energy_uj` (reset at reboot)"
                ) from exc
            except (OSError, ValueError) as exc:
                raise SourceUnavailable(f"cannot read RAPL zone {zone.path}: {exc}") from exc
        self._zones = zones
        if self.poll_s is None:
            self.poll_s = _default_poll_s(zones)
        self._poller = threading.Thread(
            target=self._poll_forever, args=(self.poll_s,), name="pytest-energy-rapl-poller", daemon=True
        )
        self._poller.start()

    @property
    def components(self) -> FrozenSet[str]:
        return frozenset(zone.component for zone in self._zones)

    def totals(self) -> Mapping[str, DeviceTotal]:
        with self._lock:
            self._read_all()
            return {
                zone.device: DeviceTotal(
                    zone.component, zone.device, zone.total_uj / 1e6, "rapl-counter", zone.label, zone.partial
                )
                for zone in self._zones
            }

    def _read_all(self) -> None:
        for zone in self._zones:
            if zone.partial:
                continue
            try:
                now_uj = _read_int(zone.path / "energy_uj")
            except (OSError, ValueError) as exc:
                zone.partial = f"{zone.label} stopped reporting mid-run ({exc}); its last total is kept"
                continue
            zone.total_uj += wrapped_delta(zone.last_uj, now_uj, zone.max_range_uj)
            zone.last_uj = now_uj

    def _poll_forever(self, poll_s: float) -> None:
        while not self._stop.wait(poll_s):
            with self._lock:
                self._read_all()

    def describe(self) -> Dict[str, object]:
        return {"rapl_zones": [zone.label for zone in self._zones]}

    @property
    def update_period_s(self) -> float:
        return 0.001  # RAPL counters advance about every millisecond

    def close(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5.0)
            self._poller = None


def _find_zones(root: Path) -> List[_Zone]:
    """The package and DRAM zones under ``root``, in counter order; core, uncore and psys left out."""
    zones: List[_Zone] = []
    for path in sorted(_numbered(root, _ZONE), key=_zone_order):
        prefix, number = _ZONE.match(path.name).groups()  # type: ignore[union-attr]
        name = _read_name(path)
        if name.startswith("package"):
            zones.append(_Zone(path, "cpu", name, name, 0))
            subzone = re.compile(rf"^{prefix}:{number}:(\d+)$")
            for child in sorted(_numbered(path, subzone), key=_zone_order):
                if _read_name(child) == "dram":
                    zones.append(_Zone(child, "ram", f"dram-{number}", f"{name}/dram", 0))
        elif name == "dram":  # a platform that exposes DRAM as its own top-level zone
            zones.append(_Zone(path, "ram", f"dram-{number}", name, 0))
    return zones


def _numbered(directory: Path, pattern: "re.Pattern[str]") -> List[Path]:
    return [path for path in directory.iterdir() if pattern.match(path.name) and path.is_dir()]


def _zone_order(path: Path) -> tuple:
    prefix, *numbers = path.name.split(":")
    return (prefix, *(int(n) for n in numbers))


def _read_name(zone: Path) -> str:
    try:
        return (zone / "name").read_text().strip()
    except OSError:
        return ""


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


def _default_poll_s(zones: List[_Zone]) -> float:
    """Half the time the smallest counter takes to wrap at ``WRAP_SAFE_POWER_W``, at most a minute."""
    wrap_s = min(zone.max_range_uj for zone in zones) / 1e6 / WRAP_SAFE_POWER_W
    return min(MAX_POLL_S, max(MIN_POLL_S, wrap_s / 2.0))
