"""JUnit XML properties of a measured test.

A test's own figures go on its report as ``user_properties`` (pytest writes them as
``<property>``, also from xdist workers). The accounted figures (normalised energy, EW
scores) depend on other tests, which may run later or on another worker: the controller
adds them to the file pytest wrote, at the end of the session, from the same accounted
records as the JSON report.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

from ..account.record import Record
from ..units import joules_to_kwh

COMPLEXITY_FIGURES = ("macs", "macs_thop", "params", "params_trainable")


def junit_properties(record: Record) -> List[Tuple[str, object]]:
    """The test's own figures in joules (and kWh for the total); unmeasured ones are left out, never written as 0."""
    figures = {
        "energy_j": record.energy_j,
        "energy_kwh": None if record.energy_j is None else joules_to_kwh(record.energy_j),
        "gpu_energy_j": record.component_j("gpu"),
        "cpu_energy_j": record.component_j("cpu"),
        "ram_energy_j": record.component_j("ram"),
        "energy_cap_j": record.cap_j,
    }
    properties: List[Tuple[str, object]] = [(name, f"{value:.6g}") for name, value in figures.items() if value is not None]
    properties.extend((name, record.extra[name]) for name in COMPLEXITY_FIGURES if record.extra.get(name) is not None)
    properties.append(("energy_meter", record.measurement.meter if record.measurement else "none"))
    properties.append(("energy_verdict", record.verdict))
    if record.verdict_message:
        properties.append(("energy_verdict_message", record.verdict_message))
    properties.extend((f"score_{name}", value) for name, value in record.scores.items())
    return properties


def accounted_properties(record: Record) -> List[Tuple[str, str]]:
    """The figures of an accounted record that depend on the session: normalised energy and EW scores."""
    properties = []
    normalized_j = record.extra.get("energy_normalized_j")
    if normalized_j is not None:
        properties.append(("energy_normalized_j", f"{normalized_j:.6g}"))
    for phase, weighted in record.extra.get("ew_scores", {}).items():
        properties.extend((f"ew_{name}_{phase}", f"{value:.6g}") for name, value in weighted.items())
    return properties


def junit_test_address(nodeid: str, prefix: Optional[str] = None) -> Tuple[str, str]:
    """The ``(classname, name)`` pytest's junitxml gives the test ``nodeid`` (with ``--junitprefix``)."""
    path, bracket, parameters = nodeid.partition("[")
    names = path.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    names[-1] += bracket + parameters
    classnames = ([prefix] if prefix else []) + names[:-1]
    return ".".join(classnames), names[-1]


def add_accounted_properties(path: Path, records: Iterable[Record], prefix: Optional[str] = None) -> int:
    """Add (or replace) the accounted properties of ``records`` in the JUnit file at ``path``; how many tests got some.

    Raises OSError when the file cannot be read or replaced, ValueError when it is not JUnit XML.
    """
    from xml.etree.ElementTree import ParseError

    from junitparser import JUnitXml, Properties, Property, TestSuite

    wanted: Dict[Tuple[str, str], List[Tuple[str, str]]] = {}
    for record in records:
        properties = accounted_properties(record)
        if properties:
            wanted[junit_test_address(record.nodeid, prefix)] = properties
    if not wanted:
        return 0
    try:
        xml = JUnitXml.fromfile(str(path))
    except ParseError as exc:
        raise ValueError(f"not JUnit XML: {exc}") from None
    suites = [xml] if isinstance(xml, TestSuite) else list(xml)
    changed = set()
    for suite in suites:
        for case in suite:
            properties = wanted.get((case.classname, case.name))
            if properties is None:
                continue
            element = case.child(Properties)
            if element is None:
                element = Properties()
                case.append(element)
            names = {name for name, _ in properties}
            for old in [prop for prop in element if prop.name in names]:
                element.remove(old)
            for name, value in properties:
                element.add_property(Property(name, value))
            changed.add((case.classname, case.name))
    if changed:
        partial = path.with_name(f".{path.name}.energy-partial")
        xml.write(str(partial))
        os.replace(partial, path)
    return len(changed)
