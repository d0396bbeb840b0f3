"""The sharded example workflow (examples/github-actions/energy-gate-sharded.yml) cannot drift.

Its YAML is parsed: every pytest-energy option the shards pass exists and takes the value
given, the merge job's command line is one the ``pytest-energy`` parser accepts, the merge
job runs after every shard (also failed ones) and downloads what they upload. The shell
that selects a shard's tests is run for every shard on a small suite: the shards cover
every test once.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import yaml

from pytest_energy.config import OPTIONS
from pytest_energy.organise.cli import build_parser

WORKFLOW = Path(__file__).resolve().parent.parent / "examples" / "github-actions" / "energy-gate-sharded.yml"
COMMAND_OPTION = re.compile(r"(?<![\w-])(?P<name>--[a-z][a-z-]*)(?:=(?P<value>[^\s\"']+))?")
EXPRESSION = re.compile(r"\$\{\{\s*([\w.-]+)\s*\}\}")


def jobs() -> Dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"]  # type: ignore[no-any-return]


def step_named(job: Dict[str, Any], name: str) -> Dict[str, Any]:
    [step] = [step for step in job["steps"] if step.get("name") == name]
    return step


def script(step: Dict[str, Any], values: Dict[str, str]) -> str:
    """The step's shell, comments left out, with the workflow expressions given in ``values``."""
    code = "\n".join(line.split("#", 1)[0] for line in step["run"].splitlines())
    return EXPRESSION.sub(lambda match: values[match.group(1)], code)


def test_the_shards_use_only_existing_options_with_valid_values() -> None:
    shard_job = jobs()["energy"]
    command = script(step_named(shard_job, "Measure this shard"), {"matrix.shard": "0"})
    used = {match["name"]: match["value"] or "" for match in COMMAND_OPTION.finditer(command)}
    options = {option.cli: option for option in OPTIONS}
    for name, value in used.items():
        assert name in options or name == "--junitxml", f"{WORKFLOW.name} uses {name}, which pytest-energy does not define"
        if name in options and value:
            options[name].parse(value)
    assert "--energy-json" in used and "@shard.txt" in command


def test_the_last_job_merges_every_shard_and_gates() -> None:
    workflow = jobs()
    shard_job, merge_job = workflow["energy"], workflow["merge"]
    assert merge_job["needs"] == "energy" and merge_job["if"] == "always()"
    assert shard_job["strategy"]["fail-fast"] is False
    [line] = [line for line in script(step_named(merge_job, "Merge and gate"), {}).splitlines() if line.strip()]
    words = shlex.split(line)
    assert words[:2] == ["pytest-energy", "merge"]
    args = build_parser().parse_args(words[1:])  # exits (fails this test) on an option merge does not have
    assert args.output == "energy.json" and args.session_cap > 0 and args.reports == ["energy-*.json"]
    upload = step_named(shard_job, "Upload this shard's reports")
    download = step_named(merge_job, "Download the shards' reports")
    assert upload["if"] == "always()"
    assert download["with"]["pattern"] == "energy-shard-*" and download["with"]["merge-multiple"] is True
    assert upload["with"]["name"].startswith("energy-shard-")
    measured = script(step_named(shard_job, "Measure this shard"), {"matrix.shard": "3"})
    assert "--energy-json=energy-3.json" in measured and "energy-${{ matrix.shard }}.json" in upload["with"]["path"]


def test_the_shards_cover_every_test_once(tmp_path: Path) -> None:
    names = [f"test_{index}" for index in range(10)]
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_many.py").write_text("".join(f"def {name}():\n    pass\n" for name in names))
    select = step_named(jobs()["energy"], "Select this shard's tests")
    shards: List[List[str]] = []
    total = len(jobs()["energy"]["strategy"]["matrix"]["shard"])
    for shard in range(total):
        code = script(select, {"strategy.job-total": str(total), "matrix.shard": str(shard)})
        code = code.replace("python -m pytest", f"{shlex.quote(sys.executable)} -m pytest -p no:cacheprovider")
        subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=tmp_path, check=True, timeout=120)
        shards.append((tmp_path / "shard.txt").read_text().split())
    selected = [nodeid.split("::")[-1] for shard in shards for nodeid in shard]
    assert sorted(selected) == sorted(names) and all(shards)
