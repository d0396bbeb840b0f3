"""JUnit XML properties of a measured test (pytest writes ``user_properties`` as ``<property>``)."""

from __future__ import annotations

from typing import List, Tuple

from ..account.record import Record
from ..units import joules_to_kwh

COMPLEXITY_FIGURES = ("macs", "macs_thop", "params", "params_trainable")


def junit_properties(record: Record) -> List[Tuple[str, object]]:
    """Properties in joules (and kWh for the total); unmeasured figures are left out, never written as 0."""
    figures = {
        "energy_j": record.energy_j,
        "energy_kwh": None if record.energy_j is None else joules_to_kwh(record.energy_j),
        "gpu_energy_j": record.component_j("gpu"),
        "cpu_energy_j": record.component_j("cpu"),
        "ram_energy_j": record.component_j("ram"),
        "energy_cap_j": record.cap_j,
        "energy_normalized_j": record.extra.get("energy_normalized_j"),
    }
    properties: List[Tuple[str, object]] = [(name, f"{value:.6g}") for name, value in figures.items() if value is not None]
    properties.extend((name, record.extra[name]) for name in COMPLEXITY_FIGURES if record.extra.get(name) is not None)
    properties.append(("energy_meter", record.measurement.meter if record.measurement else "none"))
    properties.append(("energy_verdict", record.verdict))
    if record.verdict_message:
        properties.append(("energy_verdict_message", record.verdict_message))
    properties.extend((f"score_{name}", value) for name, value in record.scores.items())
    for phase, weighted in record.extra.get("ew_scores", {}).items():
        properties.extend((f"ew_{name}_{phase}", f"{value:.6g}") for name, value in weighted.items())
    return properties
