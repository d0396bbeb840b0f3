"""`pytest-energy trend | plot | submission` and the GitHub job summary on hostile inputs.

Every reader failure ends in exit 2 with one line on stderr naming the file; the work
is bounded (no alias expansion, a size limit); text from the inputs is escaped for the
format it lands in (CSV formulas, Markdown tables and raw HTML, terminal control
characters, YAML comments in the submission block).
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any, Callable, List, Tuple

import pytest

from pytest_energy.organise.cli import main
from pytest_energy.organise import input_rows, readers
from pytest_energy.report.escape import csv_cell

# Nine levels of nine aliases: about 387 million strings once expanded, in a few hundred bytes.
BILLION_LAUGHS = """\
- a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
  b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
  c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
  d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
  e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
  f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
  g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
  h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
  i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
  code: *i
  anchor: *i
  energy_training: *i
"""
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


def assert_one_line_error(status: int, err: str, *expected: str) -> None:
    assert status == 2, err
    assert err.count("\n") == 1 and err.endswith("\n") and "Traceback" not in err, err
    for text in expected:
        assert text in err, err


COMMANDS: List[Callable[[Path], List[str]]] = [
    lambda path: ["trend", str(path)],
    lambda path: ["plot", str(path), "-o", str(path.with_suffix(".png"))],
]


# -- bounded work ----------------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS, ids=["trend", "plot"])
def test_billion_laughs_yaml_is_refused_without_expanding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: Callable[[Path], List[str]]
):
    """Reading a row used to walk every expanded alias: minutes of CPU for 500 bytes."""
    pytest.importorskip("yaml")
    path = tmp_path / "laughs.yaml"
    path.write_text(BILLION_LAUGHS, encoding="utf-8")
    status, out, err = run_cli(capsys, *command(path))
    assert_one_line_error(status, err, "laughs.yaml: YAML aliases")
    assert out == ""


def test_recursive_yaml_alias_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    pytest.importorskip("yaml")
    path = tmp_path / "loop.yaml"
    path.write_text("- &row {code: x, anchor: DCASE2024_x, energy_training: 1, self: *row}\n", encoding="utf-8")
    status, _, err = run_cli(capsys, "trend", str(path))
    assert_one_line_error(status, err, "loop.yaml: YAML aliases")


def test_yaml_values_python_cannot_build_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """An impossible date and an integer over Python's 4300-digit limit raised ValueError through yaml."""
    pytest.importorskip("yaml")
    (tmp_path / "date.yaml").write_text("- code: x\n  anchor: 2023-02-30\n", encoding="utf-8")
    (tmp_path / "digits.yaml").write_text("- code: x\n  energy_training: " + "1" * 5000 + "\n", encoding="utf-8")
    status, _, err = run_cli(capsys, "trend", str(tmp_path / "date.yaml"))
    assert_one_line_error(status, err, "date.yaml: not valid YAML (day is out of range for month)")
    status, _, err = run_cli(capsys, "trend", str(tmp_path / "digits.yaml"))
    assert_one_line_error(status, err, "digits.yaml: not valid YAML")


@pytest.mark.parametrize("name, content", [
    ("big.json", json.dumps(report())),
    ("big.csv", "system,year,energy_training_kwh\nA,2024,1\n"),
    ("big.yaml", "- code: A\n  anchor: DCASE2024_A\n  energy_training: 1\n"),
])
def test_input_over_the_size_limit_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, name: str, content: str
):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    assert main(["trend", str(path)]) == 0  # readable under the limit
    capsys.readouterr()
    monkeypatch.setattr(input_rows, "MAX_INPUT_BYTES", len(content) - 1)
    status, _, err = run_cli(capsys, "trend", str(path))
    assert_one_line_error(status, err, f"{name}: larger than")


def test_submission_over_the_size_limit_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    path = tmp_path / "energy.json"
    path.write_text(json.dumps(report()), encoding="utf-8")
    monkeypatch.setattr(input_rows, "MAX_INPUT_BYTES", 100)
    status, out, err = run_cli(capsys, "submission", str(path))
    assert_one_line_error(status, err, "energy.json: larger than")
    assert out == ""


# -- numbers and nesting -----------------------------------------------------------------------------


HOSTILE_JSON = [
    pytest.param('{"a": ' * 100_000 + "1" + "}" * 100_000, "JSON nested too deeply", id="deep-object"),
    pytest.param("[" * 100_000 + "]" * 100_000, "JSON nested too deeply", id="deep-array"),
    pytest.param(json.dumps(report()).replace("3600000.0", "1e999"), "tests[0].energy_j: not a finite number",
                 id="1e999"),
    pytest.param(json.dumps(report()).replace("3600000.0", "1" + "0" * 400), "tests[0].energy_j: not a finite",
                 id="int-10**400"),
    pytest.param(json.dumps(report()).replace("3600000.0", "1" * 5000), "tests[0].energy_j: not a finite",
                 id="int-5000-digits"),
    pytest.param(json.dumps(report()).replace("0.5", "NaN"), "tests[1].scores.psds1: not a finite number (NaN)",
                 id="NaN"),
    pytest.param(json.dumps(report(params_note=[-1e400])), "metadata.params_note[0]: not a finite", id="-inf"),
]


@pytest.mark.parametrize("command", ["trend", "submission"])
@pytest.mark.parametrize("content, message", HOSTILE_JSON)
def test_hostile_json_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, content: str, message: str
):
    path = tmp_path / "energy.json"
    path.write_text(content, encoding="utf-8")
    status, out, err = run_cli(capsys, command, str(path))
    assert_one_line_error(status, err, f"energy.json: {message}")
    assert out == ""


@pytest.mark.parametrize("tests", [3.5, "abc", {"phase": "train"}, [{"phase": {"train": 1}, "energy_j": 1.0}]])
def test_report_with_tests_of_the_wrong_type_has_no_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tests: Any
):
    """A ``tests`` that is not a list of records (or a phase that is not text) used to raise TypeError."""
    path = tmp_path / "energy.json"
    path.write_text(json.dumps(dict(report(), tests=tests)), encoding="utf-8")
    status, out, err = run_cli(capsys, "submission", str(path))
    assert status == 0 and "# Missing (7)" in out, err
    status, _, err = run_cli(capsys, "trend", str(path))
    assert_one_line_error(status, err, "energy.json: no training energy")


def test_hostile_json_beside_good_reports_is_rejected_and_counted(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    for index in range(3):
        (tmp_path / f"good{index}.json").write_text(json.dumps(report(f"G{index}")), encoding="utf-8")
    (tmp_path / "nan.json").write_text(json.dumps(report("N")).replace("0.5", "NaN"), encoding="utf-8")
    status, out, _ = run_cli(capsys, "trend", str(tmp_path))
    assert status == 0
    assert "3 usable systems from 4 files" in out
    assert "tests[1].scores.psds1: not a finite number (NaN) (e.g. nan.json)" in out


def test_out_of_range_cells_are_unreadable_fields(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """CSV and YAML cells: 1e999, a float-overflowing integer, .inf, kWh overflowing once in joules."""
    pytest.importorskip("yaml")
    (tmp_path / "subs.csv").write_text(
        "system,year,ensemble,params,macs,energy_training_kwh,energy_test_kwh,psds1\n"
        f"A,2024,1,1e999,{'9' * 400},1e305,1.0,0.5\n"
        "B,2024,1,10,10,1.0,1.0,0.4\n",
        encoding="utf-8",
    )
    (tmp_path / "results.yaml").write_text(
        f"- code: C\n  anchor: DCASE2023_C\n  energy_training: 1.0\n  macs: .inf\n"
        f"  system_complexity_params: {'9' * 400}\n  psds1_eval_full: .nan\n",
        encoding="utf-8",
    )
    collection = readers.collect([str(tmp_path)])
    assert sorted(s.name for s in collection.systems) == ["B", "C"]
    assert [(r.row, r.reason) for r in collection.rejected] == [("line 2", "training energy unreadable")]
    issues = {(issue.row, issue.field) for issue in collection.issues}
    assert {("C", "macs"), ("C", "params"), ("C", "score")} <= issues
    assert all(len(issue.value) <= 60 for issue in collection.issues)
    status, out, err = run_cli(capsys, "trend", str(tmp_path))
    assert status == 0 and "Traceback" not in err


def test_csv_field_over_the_csv_module_limit_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "subs.csv"
    path.write_text("system,year,energy_training_kwh\nA,2024,1\nB,2024," + "1" * 200_000 + "\n", encoding="utf-8")
    collection = readers.collect([str(path)])
    assert [s.name for s in collection.systems] == ["A"]
    assert collection.rejected[0].reason.startswith("not valid CSV (field larger than field limit")


def test_error_naming_a_hostile_file_name_stays_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "bad\nname\x1b[31m.json"
    path.write_text("[1, 2", encoding="utf-8")
    status, _, err = run_cli(capsys, "submission", str(path))
    assert_one_line_error(status, err, "bad\\nname\\x1b[31m.json: not valid JSON")
    status, _, err = run_cli(capsys, "trend", str(path))
    assert_one_line_error(status, err, "bad\\nname\\x1b[31m.json: not valid JSON")


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
    status, out, _ = run_cli(capsys, "trend", str(formula_reports(tmp_path / "r")), "--format", "csv", "--population", "all")
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


def test_pure_python_yaml_loader_refuses_aliases_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    """Without libyaml (no CSafeLoader) the same refusal holds, and deep nesting is one line."""
    yaml = pytest.importorskip("yaml")
    monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
    (tmp_path / "laughs.yaml").write_text(BILLION_LAUGHS, encoding="utf-8")
    (tmp_path / "deep.yaml").write_text("[" * 20_000 + "]" * 20_000, encoding="utf-8")
    status, _, err = run_cli(capsys, "trend", str(tmp_path / "laughs.yaml"))
    assert_one_line_error(status, err, "laughs.yaml: YAML aliases")
    status, _, err = run_cli(capsys, "trend", str(tmp_path / "deep.yaml"))
    assert_one_line_error(status, err, "deep.yaml: not valid YAML")
