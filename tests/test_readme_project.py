"""The README's "Your own project" section, built from its own code blocks and run as a user runs it.

Each fenced block of the section whose first line is ``# <file name>`` is written to that file;
``# two-point: <file name>`` blocks are the section's two-point variant. The project runs in a
subprocess (a fresh torch, as a user's ``pytest`` has), measured for real with CodeCarbon.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, Tuple

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## Your own project"
FILE_LINE = re.compile(r"^# (?:(two-point): )?([\w./-]+\.(?:py|toml))$")
BLOCK = re.compile(r"^```(?:python|toml)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def section_blocks() -> Dict[Tuple[str, str], str]:
    """``(variant, file name) -> text`` of every file block of the section; variant is "" or "two-point"."""
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    blocks: Dict[Tuple[str, str], str] = {}
    for body in BLOCK.findall(text[start:end]):
        first, _, rest = body.partition("\n")
        match = FILE_LINE.match(first)
        if match:
            blocks[(match.group(1) or "", match.group(2))] = body
    return blocks


def write_project(pytester: pytest.Pytester, two_point: bool) -> None:
    blocks = section_blocks()
    files = {name: body for (variant, name), body in blocks.items() if not variant}
    assert sorted(files) == ["conftest.py", "pyproject.toml", "test_energy.py", "tiny.py"]
    if two_point:
        one_point = re.compile(r"@pytest\.mark\.energy_baseline\n.*?(?=\n\n\n)", re.DOTALL)
        assert len(one_point.findall(files["test_energy.py"])) == 1
        files["test_energy.py"] = one_point.sub(blocks[("two-point", "test_energy.py")], files["test_energy.py"])
        files["pyproject.toml"] += 'normalization = "two-point"\n'
    for name, body in files.items():
        Path(pytester.path, name).write_text(body, encoding="utf-8")


def run_project(pytester: pytest.Pytester) -> Tuple[pytest.RunResult, Dict]:
    result = pytester.runpytest_subprocess("-p", "no:xdist")
    report = json.loads(Path(pytester.path, "energy.json").read_text(encoding="utf-8"))
    return result, report


def by_name(report: Dict) -> Dict[str, Dict]:
    return {test["nodeid"].split("::")[-1]: test for test in report["tests"]}


def test_the_readme_project_is_gated_normalised_and_energy_weighted(pytester: pytest.Pytester) -> None:
    write_project(pytester, two_point=False)
    result, report = run_project(pytester)
    result.assert_outcomes(passed=3)
    tests = by_name(report)
    assert list(tests) == ["test_reference_workload", "test_train", "test_inference"]
    local_j = tests["test_reference_workload"]["energy_j"]
    assert report["normalization"]["factor"] == pytest.approx(20.0 / local_j)
    train, inference = tests["test_train"], tests["test_inference"]
    assert train["cap_j"] == pytest.approx(3600.0) and inference["cap_j"] == pytest.approx(100.0)
    assert inference["scores"]["accuracy"] > 0.8 and inference["macs"] == 16 * 32 + 32 * 2
    for phase, phase_test, baseline_j in (("train", train, 40.0), ("test", inference, 1.0)):
        weighted = inference["ew_scores"][phase]
        expected = inference["scores"]["accuracy"] * baseline_j / phase_test["energy_normalized_j"]
        assert weighted["accuracy"] == pytest.approx(expected)
        assert weighted["ranking_score"] == pytest.approx(expected / 0.80)  # the mean of score / baseline score
    assert "ew_scores_missing" not in inference
    result.stdout.fnmatch_lines(["*EW (test energy) test_energy.py::test_inference: accuracy *, ranking_score *"])

    again, report = run_project(pytester)
    again.assert_outcomes(passed=2, skipped=1)  # the cached baseline: its test is skipped
    assert report["normalization"]["factor"] == pytest.approx(20.0 / local_j)


def test_the_readme_two_point_variant_fits_a_line(pytester: pytest.Pytester) -> None:
    write_project(pytester, two_point=True)
    result, report = run_project(pytester)
    result.assert_outcomes(passed=4)
    normalization = report["normalization"]
    assert normalization["rule"] == "two-point"
    assert [point["reference_j"] for point in normalization["points"]] == [20.0, 60.0]
    inference = by_name(report)["test_inference"]
    on_the_line = normalization["a"] * inference["energy_j"] + normalization["b_j"]
    if on_the_line > 0:
        assert inference["energy_normalized_j"] == pytest.approx(on_the_line)
    else:  # a test far smaller than both baselines falls below the line's zero: no figure, never a negative one
        assert inference["energy_normalized_j"] is None


def test_the_files_the_readme_commands_write_are_ignored_by_git() -> None:
    """Every report file a README command writes (--energy-json=, --junitxml=) is in .gitignore."""
    ignored = set((README.parent / ".gitignore").read_text(encoding="utf-8").split())
    written = set(re.findall(r"--(?:energy-json|junitxml)=([\w-]+\.\w+)", README.read_text(encoding="utf-8")))
    assert written and written <= ignored, written - ignored


def test_the_readmes_stand_in_keeps_tests_that_use_the_fixture_running_without_the_plugin(
    pytester: pytest.Pytester,
) -> None:
    text = README.read_text(encoding="utf-8")
    [stand_in] = [body for body in BLOCK.findall(text) if body.startswith("# conftest.py: an `energy` fixture")]
    pytester.makeconftest(stand_in)
    pytester.makeini("[pytest]\naddopts = --strict-markers\n")
    pytester.makepyfile(
        """
import pytest

@pytest.mark.energy(phase="test")
def test_scored(energy):
    energy.record_score("psds1", 0.5)
"""
    )
    pytester.runpytest_subprocess("-p", "no:energy", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    on = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--energy-json=energy.json")
    on.assert_outcomes(passed=1)  # with the plugin on, its own fixture measures and records the score
    report = json.loads(Path(pytester.path, "energy.json").read_text(encoding="utf-8"))
    assert report["tests"][0]["scores"] == {"psds1": 0.5}
