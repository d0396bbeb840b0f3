"""`pytest-energy trend | plot | submission` and the GitHub job summary on hostile inputs.

Text from the inputs is escaped for the format it lands in (CSV formulas, Markdown
tables and raw HTML, terminal control characters, YAML comments in the submission block).
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any, Callable, Tuple

import pytest

from pytest_energy.cli import main
from pytest_energy.report.escape import csv_cell

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
HOSTILE_NAME = "<img src=x onerror=alert(1)>|evil\nline [link](javascript:alert(1)) a\\|b"


def report(system: str = "S", train_j: Any = 3.6e6, score: Any = 0.5, **metadata: Any) -> dict:
    """A minimal pytest-energy/1 report: one training and one test record."""
    return {
        "schema": "pytest-energy/1",
        "created": "2024-06-01T00:00:00Z",
        "plugin_version": "0.1.0",
        "metadata": {"system": system, "year": 2024, "ensemble": False, **metadata},
        "tests": [
            {"nodeid": "t::train", "phase": "train", "energy_j": train_j, "scores": {}, "params": 1000},
            {"nodeid": "t::test", "phase": "test", "energy_j": 1.0, "scores": {"psds1": score}, "params": 1000},
        ],
    }


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> Tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# -- escaping per format ---------------------------------------------------------------------------


def formula_reports(directory: Path) -> Path:
    """Reports whose system names and edition a spreadsheet would run as formulas."""
    directory.mkdir()
    names = ["=cmd|' /C calc'!A0", "+SUM(1)", "-2+3", "@SUM(A1)", "\tTAB", "\rCR"]
    for index, name in enumerate(names):
        content = report(name, score=0.9 - index / 10, year="@edition")
        (directory / f"r{index}.json").write_text(json.dumps(content), encoding="utf-8")
    return directory


def test_csv_output_neutralises_formulas(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    status, out, _ = run_cli(capsys, "trend", str(formula_reports(tmp_path / "r")), "--format", "csv", "--all-systems")
    assert status == 0
    rows = list(csv.reader(io.StringIO(out)))
    cells = [cell for row in rows for cell in row]
    assert not [cell for cell in cells if cell.startswith(FORMULA_STARTS)]
    assert "'=cmd|' /C calc'!A0" in cells and "'@edition" in cells
    [best] = [row for row in rows if row[2] == "no threshold" and row[3] == "system"]
    assert best == ["thresholds_all_systems", "'@edition", "no threshold", "system", "'=cmd|' /C calc'!A0"]


def test_csv_cell_keeps_numbers_as_numbers():
    assert csv_cell(-1.5) == -1.5 and csv_cell(-3) == -3 and csv_cell(None) == ""
    assert csv_cell("-1.5") == "'-1.5"  # text: a spreadsheet reads it as a formula
    assert csv_cell("a=b") == "a=b"


def markdown_html(markdown: str) -> str:
    """The HTML a CommonMark renderer with GitHub tables and raw HTML on makes of ``markdown``."""
    markdown_it = pytest.importorskip("markdown_it")
    return markdown_it.MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)


def assert_table_rows_keep_their_cells(html: str) -> None:
    tables = re.findall(r"<table>.*?</table>", html, re.DOTALL)
    assert tables, html
    for table in tables:
        widths = {row.count("<td") or row.count("<th") for row in re.findall(r"<tr>.*?</tr>", table, re.DOTALL)}
        assert len(widths) == 1, table


def test_markdown_output_escapes_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """A system name with a pipe, a newline, raw HTML and a link stays one literal cell."""
    reports = tmp_path / "r"
    reports.mkdir()
    (reports / "a.json").write_text(json.dumps(report(HOSTILE_NAME, score=0.9)), encoding="utf-8")
    (reports / "b.json").write_text(json.dumps(report("<script>alert(2)</script>", baseline=True)), encoding="utf-8")
    status, out, _ = run_cli(capsys, "trend", str(reports), "--format", "md")
    assert status == 0
    assert "<img" not in out and "<script" not in out
    lines = [line for line in out.splitlines() if line.startswith("| ") and "evil" in line]
    assert lines and all(
        line.endswith(" | &lt;img src=x onerror=alert(1)&gt;\\|evil line \\[link\\](javascript:alert(1)) a\\\\\\|b |")
        for line in lines
    ), lines
    html = markdown_html(out)
    assert "<img" not in html and "<script" not in html and "<a " not in html
    assert "&lt;img src=x onerror=alert(1)&gt;|evil line [link](javascript:alert(1)) a\\|b</td>" in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt; (2024)" in html
    assert_table_rows_keep_their_cells(html)


def test_text_output_escapes_control_characters(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    reports = tmp_path / "r"
    reports.mkdir()
    (reports / "a.json").write_text(json.dumps(report("A\x1b[2J\nB", score=0.9)), encoding="utf-8")
    status, out, _ = run_cli(capsys, "trend", str(reports))
    assert status == 0
    assert "\x1b" not in out and "A\\x1b[2J\\nB" in out


def test_submission_comments_stay_comments(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    yaml = pytest.importorskip("yaml")
    content = report("S\nsystem: {evil: 1}")
    content.update(created="2024\nsystem:\n  evil: 1", plugin_version="0.1\r\nevil: 2")
    path = tmp_path / "energy.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    status, out, _ = run_cli(capsys, "submission", str(path))
    assert status == 0
    block = yaml.safe_load(out)
    assert list(block) == ["system"] and "evil" not in block["system"]
    assert all(line.startswith(("#", "system:", "  ")) for line in out.splitlines())


GITHUB_SUITE = """
import pytest


@pytest.mark.energy
@pytest.mark.parametrize("x", [1], ids=["a|b<img src=x>`c``"])
def test_hostile_id(x, energy):
    energy.record_score("<script>alert(1)</script>|score\\nnext", 0.5)
"""


def test_github_job_summary_escapes_node_ids_and_score_names(
    run_energy: Callable, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    summary = tmp_path / "step_summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    pytester.makepyfile(test_hostile=GITHUB_SUITE)
    run = run_energy("--energy-meter=none")
    run.result.assert_outcomes(passed=1)
    markdown = summary.read_text(encoding="utf-8")
    [line] = [line for line in markdown.splitlines() if "test_hostile_id" in line]
    assert line.startswith("| ```test_hostile.py::test_hostile_id[a\\|b<img src=x>`c``]``` | ")
    assert "| &lt;script&gt;alert(1)&lt;/script&gt;\\|score next 0.5 |" in line
    html = markdown_html(markdown)
    assert "<img" not in html and "<script" not in html
    assert "<code>test_hostile.py::test_hostile_id[a|b&lt;img src=x&gt;`c``]</code>" in html
    assert_table_rows_keep_their_cells(html)
