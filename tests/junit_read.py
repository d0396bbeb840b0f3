"""Read the ``<property>`` elements of a JUnit XML file back with junitparser, as CI tools do."""

from __future__ import annotations

from pathlib import Path
from typing import Dict

from junitparser import JUnitXml, Properties


def junit_properties_by_test(path: Path) -> Dict[str, Dict[str, str]]:
    """``{test name: {property: value}}`` of every test case in the file."""
    return {
        case.name: {prop.name: prop.value for properties in case.iterchildren(Properties) for prop in properties}
        for suite in JUnitXml.fromfile(str(path))
        for case in suite
    }
