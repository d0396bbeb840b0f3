"""The composite GitHub Action (``action.yml``): its YAML, the options it passes, the command it builds."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml

from pytest_energy.config import OPTIONS

ACTION = Path(__file__).resolve().parent.parent / "action.yml"
SUPPORTED_ACTIONS = {"actions/cache/restore": {"v4"}, "actions/cache/save": {"v4"}, "actions/upload-artifact": {"v4"}}
OPTION = re.compile(r"(?<![\w-])(--(?:energy|macs|params)-[a-z-]+)")


@pytest.fixture(scope="module")
def action() -> Dict[str, Any]:
    return yaml.safe_load(ACTION.read_text(encoding="utf-8"))


def steps(action: Dict[str, Any]) -> List[Dict[str, Any]]:
    assert action["runs"]["using"] == "composite"
    return action["runs"]["steps"]


def test_every_option_the_action_passes_exists(action: Dict[str, Any]) -> None:
    known = {option.cli for option in OPTIONS}
    used = {name for step in steps(action) for name in OPTION.findall(step.get("run", ""))}
    assert used and used <= known, used - known
    assert {"--energy-compare-fail", "--energy-repeats", "--energy-autosave", "--energy-json"} <= used


def test_every_input_used_is_declared_and_scripts_read_them_from_the_environment(action: Dict[str, Any]) -> None:
    text = ACTION.read_text(encoding="utf-8")
    used = set(re.findall(r"inputs\.([\w-]+)", text))
    assert used <= set(action["inputs"]), used - set(action["inputs"])
    for step in steps(action):
        assert "${{" not in step.get("run", ""), f"{step['name']}: an input pasted into the script"
        assert "shell" in step or "uses" in step


def test_the_actions_used_are_released_majors(action: Dict[str, Any]) -> None:
    for step in steps(action):
        if "uses" in step:
            name, version = step["uses"].split("@")
            assert version in SUPPORTED_ACTIONS[name], step["uses"]


def test_the_gate_step_builds_a_command_pytest_accepts(action: Dict[str, Any], tmp_path: Path,
                                                      pytester: pytest.Pytester) -> None:
    """The step's script, run with the action's defaults and a stand-in ``python`` that prints its arguments;
    pytest then runs with those arguments (CodeCarbon), so every value parses."""
    [gate] = [step for step in steps(action) if step["name"] == "Measure and gate"]
    shim = tmp_path / "bin" / "python"
    shim.parent.mkdir()
    shim.write_text("#!/bin/sh\nfor argument in \"$@\"; do printf '%s\\n' \"$argument\"; done\n", encoding="utf-8")
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    defaults = {name: str(spec.get("default", "")) for name, spec in action["inputs"].items()}
    environment = {key: re.sub(r"\$\{\{ inputs\.([\w-]+) \}\}", lambda m: defaults[m[1]], value)
                   for key, value in gate["env"].items()}
    environment.update(CAP="2kWh", PYTEST_ARGS="-p no:cacheprovider --energy-meter=codecarbon", REPEATS="3")
    run = subprocess.run(["bash", "-e", "-c", gate["run"]], env={**os.environ, **environment,
                         "PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}"},
                         capture_output=True, text=True, check=True)
    arguments = run.stdout.splitlines()
    assert arguments[:3] == ["-m", "pytest", "tests"]
    assert {"--energy-cap=2kWh", "--energy-compare-fail=10%", "--energy-repeats=3", "--energy-autosave"} <= set(arguments)
    assert "--energy-benchmark-json=" not in " ".join(arguments)  # empty inputs pass nothing
    pytester.makepyfile(tests="import pytest\n\n@pytest.mark.energy\ndef test_x():\n    pass\n")
    result = pytester.runpytest("tests.py", *arguments[3:])
    result.assert_outcomes(passed=1)
