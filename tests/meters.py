"""Meters made of the fakes alone, for plugin-level tests: RAPL from a fake powercap tree and nothing else."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from fakes.fake_pynvml import install_no_driver
from fakes.powercap import FakePowercap
from pytest_energy.measure import codecarbon, rapl
from pytest_energy.measure.base import SourceUnavailable


def leave_out_codecarbon(source: codecarbon.CodecarbonSource) -> None:
    """Stands in for ``CodecarbonSource.open``, so ``auto`` uses the fakes alone."""
    raise SourceUnavailable("left out of this test")


def rapl_alone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """RAPL from a fake powercap tree (one package and its DRAM, counters from 0, wrapping at 100 kJ), no NVML
    driver, CodeCarbon left out; the package zone's directory, whose counter ``spend`` advances."""
    install_no_driver(monkeypatch)
    monkeypatch.setattr(codecarbon.CodecarbonSource, "open", leave_out_codecarbon)
    tree = FakePowercap(tmp_path / "powercap").add_package(0, max_range_uj=100_000_000_000, energy_uj=0)
    monkeypatch.setattr(rapl, "RaplSource", functools.partial(rapl.RaplSource, tree.root))
    return tree.root / "intel-rapl:0"


def spend(package: Path, joules: float) -> str:
    """Test code (a function body, ``os`` and ``pathlib`` imported) that advances the package's counter by ``joules``."""
    return (f"    counter = pathlib.Path({str(package)!r}, 'energy_uj')\n"
            f"    staging = counter.with_name('staging')\n"
            f"    staging.write_text(str(int(counter.read_text()) + {int(joules * 1e6)}) + '\\n')\n"
            f"    os.replace(staging, counter)\n")
