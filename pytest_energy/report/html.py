"""Energy columns in pytest-html's report, through its own hooks (registered only when pytest-html is loaded)."""

from __future__ import annotations

import html
from typing import Any, List, Optional

import pytest

from ..units import format_energy

HEADERS = ("Energy", "Normalised energy", "Energy verdict")
COLUMN = 2  # after pytest-html's Result and Test columns


class HtmlColumns:
    """Adds energy, normalised energy and verdict to each row of pytest-html's results table."""

    def __init__(self, unit: Optional[str]):
        self.unit = unit

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_header(self, cells: List[str]) -> None:
        for offset, header in enumerate(HEADERS):
            cells.insert(COLUMN + offset, f"<th>{header}</th>")

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_row(self, report: Any, cells: List[str]) -> None:
        record = (getattr(report, "energy_payload", None) or {}).get("record") or {}  # see EnergySession.payload
        values = (
            format_energy(record["energy_j"], self.unit) if record else "-",
            format_energy(record["energy_normalized_j"], self.unit) if record.get("energy_normalized_j") is not None else "-",
            record.get("verdict", "-"),
        )
        for offset, value in enumerate(values):
            cells.insert(COLUMN + offset, f"<td>{html.escape(value)}</td>")
