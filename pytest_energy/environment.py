"""Facts about the machine and software that make a figure comparable (cheap: no heavy imports)."""

from __future__ import annotations

import os
import platform
from typing import Any, Dict, Mapping

from . import __version__


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_bytes() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def environment(meter_facts: Mapping[str, Any]) -> Dict[str, Any]:
    """The report's ``environment`` block: hardware fingerprint inputs, versions and meter."""
    import pytest

    gpus = []
    driver = None
    for facts in meter_facts.get("sources", {}).values():
        gpus = gpus or list(facts.get("gpus", []))
        driver = driver or facts.get("driver")
    from .baseline_cache import fingerprint, hardware_facts

    meter_label = "+".join(sorted(meter_facts.get("sources", {}))) or "none"
    hardware = hardware_facts([str(gpu.get("name")) for gpu in gpus], driver, cpu_model(), meter_label)
    return {
        "fingerprint": fingerprint(hardware),
        "hardware": hardware,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "ram_bytes": ram_bytes(),
        "gpus": gpus,
        "gpu_count": len(gpus),
        "gpu_driver": driver,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "pytest": pytest.__version__,
        "plugin": __version__,
        "meter": dict(meter_facts),
    }
