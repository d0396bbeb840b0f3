"""A fake ``/sys/class/powercap`` tree, laid out as Linux lays it out.

``FakePowercap(tmp_path).add_package(0)`` gives what an Intel desktop shows:
the ``intel-rapl`` control type, ``intel-rapl:0`` (``package-0``) with sub-zones
``intel-rapl:0:0`` (``core``) and ``intel-rapl:0:1`` (``dram``) inside it, the
same sub-zones linked at the top level, and the ``intel-rapl-mmio:0`` duplicate of
the package. ``add_psys`` adds the platform zone. Counters wrap as the kernel's do.
"""

from __future__ import annotations

import builtins
import io
import os
from pathlib import Path
from typing import Dict, Union

import pytest

# What recent kernels report for an Intel package: about 262 kJ before the counter wraps.
INTEL_MAX_RANGE_UJ = 262_143_328_850


class FakePowercap:
    """A powercap tree under ``root`` whose zones are addressed by directory name (``intel-rapl:0:1``)."""

    def __init__(self, root: Path, prefix: str = "intel-rapl"):
        self.root = Path(root)
        self.prefix = prefix
        self.zones: Dict[str, Path] = {}
        (self.root / prefix).mkdir(parents=True, exist_ok=True)  # the control type, not a zone

    def add_package(self, number: int, *, dram: bool = True, core: bool = True, uncore: bool = False,
                    max_range_uj: int = INTEL_MAX_RANGE_UJ, energy_uj: int = 0) -> "FakePowercap":
        """A CPU package zone with the sub-zones asked for; sub-zone numbers follow kernel order."""
        package = f"{self.prefix}:{number}"
        self._zone(self.root / package, f"package-{number}", max_range_uj, energy_uj)
        subzones = [name for name, wanted in (("core", core), ("uncore", uncore), ("dram", dram)) if wanted]
        for sub_number, name in enumerate(subzones):
            subzone = f"{package}:{sub_number}"
            self._zone(self.root / package / subzone, name, max_range_uj, energy_uj)
            (self.root / subzone).symlink_to(Path(package) / subzone)
        mmio = self.root / f"intel-rapl-mmio:{number}"
        if self.prefix == "intel-rapl" and not mmio.exists():
            self._zone(mmio, f"package-{number}", max_range_uj, energy_uj)
        return self

    def add_psys(self, number: int, max_range_uj: int = INTEL_MAX_RANGE_UJ) -> "FakePowercap":
        """The platform zone, which includes the packages (laptops, recent desktops)."""
        self._zone(self.root / f"{self.prefix}:{number}", "psys", max_range_uj, 0)
        return self

    def _zone(self, path: Path, name: str, max_range_uj: int, energy_uj: int) -> None:
        path.mkdir(parents=True)
        (path / "name").write_text(name + "\n")
        (path / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
        (path / "energy_uj").write_text(f"{energy_uj}\n")
        self.zones[path.name] = path

    # -- counters -----------------------------------------------------------------------

    def energy_uj(self, zone: str) -> int:
        return int((self.zones[zone] / "energy_uj").read_text())

    def max_range_uj(self, zone: str) -> int:
        return int((self.zones[zone] / "max_energy_range_uj").read_text())

    def advance(self, zone: str, joules: float) -> None:
        """The zone uses ``joules``; the counter wraps past ``max_energy_range_uj`` as the kernel's does."""
        self.set_energy_uj(zone, (self.energy_uj(zone) + round(joules * 1e6)) % self.max_range_uj(zone))

    def set_energy_uj(self, zone: str, value: int) -> None:
        """Replace the counter in one step, so a concurrent reader never sees a half-written file."""
        staging = self.zones[zone] / ".energy_uj.new"
        staging.write_text(f"{value}\n")
        os.replace(staging, self.zones[zone] / "energy_uj")

    # -- permissions ----------------------------------------------------------------------

    def deny(self, zone: str, monkeypatch: pytest.MonkeyPatch, file: str = "energy_uj") -> None:
        """Make ``file`` of ``zone`` root-only as kernels since 5.10 do (``chmod 000`` here).

        Root ignores file modes, so when the tests run as root opening that file
        also raises ``PermissionError`` through a patched ``open``, as it would for a user.
        """
        path = self.zones[zone] / file
        path.chmod(0)
        if os.geteuid() == 0:
            _refuse_opening(path, monkeypatch)


def _refuse_opening(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = io.open
    denied = os.path.realpath(path)

    def guarded_open(file: Union[str, os.PathLike, int], *args: object, **kwargs: object):
        if not isinstance(file, int) and os.path.realpath(file) == denied:
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(io, "open", guarded_open)
    monkeypatch.setattr(builtins, "open", guarded_open)
