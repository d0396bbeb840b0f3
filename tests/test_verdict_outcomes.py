"""Guarantee 9 of issue 19: a test's energy verdict agrees with its outcome.

A test that skips itself in its body tested nothing: its verdict is ``skipped`` (it was
``over-cap`` when it had spent more than its cap first). A test of an empty parameter set
never ran: ``skipped``, not ``unmeasured``. A test whose xdist worker crashed is in the
report, an ``error`` with the worker's message (it was missing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict

import jsonschema
import pytest

from meters import rapl_alone, spend


def test_a_test_that_spends_over_its_cap_then_skips_itself_is_skipped_not_over_cap(
    run_energy: Callable, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    report_schema: Dict[str, Any],
) -> None:
    package = rapl_alone(monkeypatch, tmp_path)
    pytester.makepyfile(
        "import os\nimport pathlib\n\nimport pytest\n\n@pytest.mark.energy(cap='10J')\ndef test_skips():\n"
        + spend(package, 20.0)  # twice the cap
        + "    pytest.skip('no GPU here')\n"
    )
    run = run_energy("--energy-meter=rapl", "--energy-check-interval=30")  # no live stop before the skip
    run.result.assert_outcomes(skipped=1)
    jsonschema.validate(run.report, report_schema)
    entry = run.entry("test_skips")
    assert (entry["outcome"], entry["verdict"], entry["energy_j"]) == ("skipped", "skipped", pytest.approx(20.0))
    assert "verdict_message" not in entry


def test_an_empty_parameter_set_under_a_cap_is_skipped_not_unmeasured(
    run_energy: Callable, pytester: pytest.Pytester, report_schema: Dict[str, Any]
) -> None:
    pytester.makepyfile("import pytest\n\n@pytest.mark.energy(cap='1 J')\n@pytest.mark.parametrize('size', [])\n"
                        "def test_sizes(size):\n    pass\n")
    run = run_energy("--energy-meter=none")
    run.result.assert_outcomes(skipped=1)
    [entry] = run.report["tests"]
    assert (entry["outcome"], entry["verdict"]) == ("skipped", "skipped")
    jsonschema.validate(run.report, report_schema)  # its environment too, though no meter was opened


def test_a_test_whose_xdist_worker_crashed_is_an_error_with_the_workers_message(
    run_energy: Callable, pytester: pytest.Pytester, report_schema: Dict[str, Any]
) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile("import os\n\nimport pytest\n\n@pytest.mark.energy(cap='1 J')\ndef test_crashes():\n"
                        "    os._exit(3)\n\n\n@pytest.mark.energy\ndef test_fine():\n    pass\n")
    run = run_energy("--energy-meter=none", "-n", "1", "-p", "xdist", subprocess=True)
    run.result.assert_outcomes(passed=1, failed=1)
    jsonschema.validate(run.report, report_schema)
    crashed = run.entry("test_crashes")
    assert (crashed["outcome"], crashed["verdict"]) == ("error", "unmeasured")
    assert crashed["verdict_message"].startswith("worker 'gw0' crashed while running ")
    assert crashed["verdict_message"].endswith("::test_crashes': not measured")
    assert run.entry("test_fine")["outcome"] == "passed"
