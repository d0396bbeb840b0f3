"""Facts about the machine and software that make a figure comparable (cheap: no heavy imports)."""

from __future__ import annotations

import hashlib
import json
import os
import platform
from typing import Any, Dict, Mapping, Optional, Sequence

from .. import __version__

FINGERPRINT_KEYS = ("gpu_models", "gpu_count", "gpu_driver", "cpu_model", "meter")


def hardware_facts(
    gpu_models: Sequence[str], gpu_driver: Optional[str], cpu_model: Optional[str], meter: str
) -> Dict[str, object]:
    """The facts the fingerprint covers, in the shape ``fingerprint`` expects."""
    return {
        "gpu_models": sorted(gpu_models),
        "gpu_count": len(gpu_models),
        "gpu_driver": gpu_driver,
        "cpu_model": cpu_model,
        "meter": meter,
    }


def fingerprint(hardware: Mapping[str, object]) -> str:
    """A stable 16-hex-digit hash of the GPU models and count, driver, CPU model and meter.

    Other keys of ``hardware`` are ignored; GPU order does not matter.
    """
    facts = {key: hardware.get(key) for key in FINGERPRINT_KEYS}
    if isinstance(facts["gpu_models"], (list, tuple)):
        facts["gpu_models"] = sorted(str(model) for model in facts["gpu_models"])
    canonical = json.dumps(facts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


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
