"""`pytest-energy merge`: the reports of a suite split over several jobs, as one report and one gate.

The shards are real: one suite run as two jobs (each selecting its tests by node id, as
pytest-split does), plus a job whose test fails its cap. Hostile inputs end in exit 2 with
one line; a merged run over its session cap, or with a shard that failed, ends in exit 1.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import jsonschema
import pytest

from pytest_energy.measure.overlap import STATE_DIR_ENV
from pytest_energy.organise.cli import main
from pytest_energy.store.schemas import REPORT_SCHEMA, check

SUITE = """
import pytest

def burn(seconds):
    import time
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass

@pytest.mark.energy
def test_a1():
    burn(0.05)

@pytest.mark.energy
def test_a2():
    burn(0.05)

@pytest.mark.energy
def test_b1():
    burn(0.05)

def test_b2_unmeasured():
    pass

@pytest.mark.energy(cap="0.000001J")
def test_over_its_cap():
    burn(0.05)
"""
JOBS = {"a": ("test_a1", "test_a2"), "b": ("test_b1", "test_b2_unmeasured"), "over": ("test_over_its_cap",)}


def _environment(temp: Path) -> Dict[str, str]:
    kept = {key: value for key, value in os.environ.items()
            if not key.startswith(("PYTEST_", "GITHUB_")) or key == STATE_DIR_ENV}  # the suite's own machine state
    return {**kept, "CODECARBON_LOG_LEVEL": "error", "TMPDIR": str(temp),
            "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}


@pytest.fixture(scope="module")
def shard_files(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    """Each job of ``JOBS`` run as its own pytest process; its JSON report."""
    work = tmp_path_factory.mktemp("suite")
    (work / "test_suite.py").write_text(SUITE, encoding="utf-8")
    reports = {}
    for job, tests in JOBS.items():
        report = work / f"energy-{job}.json"
        subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-q", "--energy-meter=codecarbon", "--energy-session-cap=1MJ",
             f"--energy-json={report.name}", *(f"test_suite.py::{name}" for name in tests)],
            cwd=work, capture_output=True, text=True, timeout=300, env=_environment(tmp_path_factory.mktemp("tmp")),
        )
        reports[job] = report
    return reports


def run_merge(capsys: pytest.CaptureFixture[str], *argv: Any) -> Tuple[int, str, str]:
    status = main(["merge", *map(str, argv)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def read(path: Path) -> Dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def edited(shard: Path, target: Path, edit: Any) -> Path:
    """A copy of ``shard`` at ``target`` after ``edit(document)``."""
    document = copy.deepcopy(read(shard))
    edit(document)
    target.write_text(json.dumps(document), encoding="utf-8")
    return target


def test_two_shards_make_one_valid_report(shard_files: Dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          report_schema: Dict[str, Any]) -> None:
    status, out, err = run_merge(capsys, shard_files["a"], shard_files["b"], "-o", tmp_path / "all.json")
    assert (status, err) == (0, ""), err
    merged = read(tmp_path / "all.json")
    jsonschema.validate(merged, report_schema)
    check(merged, REPORT_SCHEMA)
    a, b = read(shard_files["a"]), read(shard_files["b"])
    assert [test["nodeid"] for test in merged["tests"]] == [t["nodeid"] for t in a["tests"] + b["tests"]]
    assert [test["shard"] for test in merged["tests"]] == [0] * len(a["tests"]) + [1] * len(b["tests"])
    measured = [test["energy_j"] for test in merged["tests"] if test["energy_j"] is not None]
    assert measured and merged["totals"]["test"]["energy_j"] == pytest.approx(sum(measured))
    assert merged["totals"]["test"]["tests"] == len(a["tests"]) + len(b["tests"])
    assert [shard["source"] for shard in merged["shards"]] == [str(shard_files["a"]), str(shard_files["b"])]
    assert [shard["environment"] for shard in merged["shards"]] == [a["environment"], b["environment"]]
    assert merged["environment"]["fingerprint"] == a["environment"]["fingerprint"]
    assert a["session"]["session_cap"]["cap_j"] == merged["session"]["session_cap"]["cap_j"] == 1e6  # each job records it
    assert f"merged 2 shard(s), {len(merged['tests'])} test(s)" in out


def test_a_merged_report_merges_again_keeping_its_shards(shard_files: Dict[str, Path], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert run_merge(capsys, shard_files["a"], "-o", tmp_path / "a-only.json")[0] == 0
    status, _, err = run_merge(capsys, tmp_path / "a-only.json", shard_files["over"], "-o", tmp_path / "all.json")
    merged = read(tmp_path / "all.json")
    check(merged, REPORT_SCHEMA)
    assert [shard["source"] for shard in merged["shards"]] == [str(shard_files["a"]), str(shard_files["over"])]
    assert merged["tests"][-1]["shard"] == 1 and merged["tests"][0]["shard"] == 0
    assert status == 1 and "shard 1" in err


def test_a_shard_whose_test_failed_its_cap_fails_the_merge(shard_files: Dict[str, Path], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run_merge(capsys, shard_files["a"], shard_files["over"], "-o", tmp_path / "all.json")
    assert status == 1
    [line] = err.splitlines()
    assert f"shard 1 ({shard_files['over']})" in line and "test_over_its_cap" in line
    assert read(tmp_path / "all.json")["shards"][1]["failed_tests"] == ["test_suite.py::test_over_its_cap"]


def test_in_warn_mode_a_shard_over_its_cap_does_not_fail(shard_files: Dict[str, Path], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    warned = edited(shard_files["over"], tmp_path / "warned.json", lambda d: d["session"].update(cap_mode="warn"))
    assert run_merge(capsys, shard_files["a"], warned, "-o", tmp_path / "all.json")[:3:2] == (0, "")


def test_the_session_cap_is_checked_over_all_shards(shard_files: Dict[str, Path], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    a, b = read(shard_files["a"]), read(shard_files["b"])
    each = [t["energy_j"] or 0.0 for t in a["tests"]] + [t["energy_j"] or 0.0 for t in b["tests"]]
    total = sum(each)
    between = (max(sum(t["energy_j"] or 0.0 for t in a["tests"]), sum(t["energy_j"] or 0.0 for t in b["tests"])) + total) / 2
    assert max(sum(each[:2]), sum(each[2:])) < between < total  # under it shard by shard, over it together
    status, _, err = run_merge(capsys, shard_files["a"], shard_files["b"], "-o", tmp_path / "all.json",
                               f"--session-cap={between}J")
    assert status == 1 and "over the session cap" in err and len(err.splitlines()) == 1
    assert read(tmp_path / "all.json")["session"]["session_cap"]["cap_j"] == pytest.approx(between)
    assert run_merge(capsys, shard_files["a"], shard_files["b"], "-o", tmp_path / "all.json",
                     f"--session-cap={total * 2}J")[0] == 0


def test_a_test_that_ran_without_a_figure_leaves_the_session_cap_over_the_shards_unenforced(
    shard_files: Dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No figure is not 0 J: the shards' sum is then only a lower bound, so the cap cannot pass."""
    def lose_a_figure(document: Dict[str, Any]) -> None:
        document["tests"][0]["energy_j"] = None
        document["session"].pop("session_cap", None)  # the shard itself recorded no cap: the merge's alone decides

    spoiled = edited(shard_files["a"], tmp_path / "a.json", lose_a_figure)
    status, _, err = run_merge(capsys, spoiled, shard_files["b"], "-o", tmp_path / "all.json", "--session-cap=1MJ")
    assert status == 1 and "cannot be enforced" in err, err
    outcome = read(tmp_path / "all.json")["session"]["session_cap"]
    assert (outcome["verdict"], outcome["unmeasured_by"]) == ("unmeasured", read(spoiled)["tests"][0]["nodeid"])


def test_the_session_cap_the_shards_recorded_applies_and_must_agree(shard_files: Dict[str, Path], tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    tiny = [edited(shard_files[job], tmp_path / f"{job}.json", lambda d: d["session"]["session_cap"].update(cap_j=1e-9))
            for job in ("a", "b")]
    status, _, err = run_merge(capsys, *tiny, "-o", tmp_path / "all.json")
    assert status == 1 and "over the session cap" in err
    other = edited(shard_files["b"], tmp_path / "other.json", lambda d: d["session"]["session_cap"].update(cap_j=5.0))
    status, _, err = run_merge(capsys, tiny[0], other, "-o", tmp_path / "all.json")
    assert status == 2 and "different session caps" in err and "--session-cap" in err
    assert run_merge(capsys, tiny[0], other, "-o", tmp_path / "all.json", "--session-cap=1MJ")[0] == 0


def test_shards_on_different_hardware_leave_no_fingerprint_at_the_top(shard_files: Dict[str, Path], tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    other = edited(shard_files["b"], tmp_path / "b.json", lambda d: d["environment"].update(fingerprint="0" * 16))
    assert run_merge(capsys, shard_files["a"], other, "-o", tmp_path / "all.json")[0] == 0
    merged = read(tmp_path / "all.json")
    assert "fingerprint" not in merged["environment"]
    assert [s["environment"]["fingerprint"] for s in merged["shards"]][1] == "0" * 16
    assert any("2 kinds of hardware" in notice for notice in merged["notices"])


def _hostile_inputs(shard: Path, tmp_path: Path) -> List[Tuple[str, List[Any], str]]:
    """(case, merge arguments before -o, what the one line must say)."""
    not_json = tmp_path / "not.json"
    not_json.write_text("{not json", encoding="utf-8")
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    nan = tmp_path / "nan.json"
    nan.write_text(shard.read_text(encoding="utf-8").replace('"duration_s":', '"duration_s":NaN,"x":', 1), encoding="utf-8")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    array = tmp_path / "array.json"
    array.write_text("[]", encoding="utf-8")
    wrong_schema = edited(shard, tmp_path / "schema.json", lambda d: d["tests"][0].pop("energy_j"))
    other_kind = edited(shard, tmp_path / "kind.json", lambda d: d.update(schema="something-else/2"))
    duplicate = edited(shard, tmp_path / "dup.json", lambda d: None)
    return [
        ("missing", [tmp_path / "absent.json"], "absent.json"),
        ("directory", [tmp_path], str(tmp_path)),
        ("not JSON", [not_json], "not valid JSON"),
        ("binary", [binary], "not a text file"),
        ("NaN", [nan], "not a finite number"),
        ("too deep", [deep], "nested too deeply"),
        ("not an object", [array], "not a JSON object"),
        ("wrong schema", [wrong_schema], "energy_j"),
        ("another kind of document", [other_kind], "something-else/2"),
        ("the same test in two shards", [shard, duplicate], "in both"),
        ("the same shard twice", [shard, shard], "twice in"),
    ]


def test_hostile_inputs_are_one_line_and_exit_2(shard_files: Dict[str, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    for case, arguments, expected in _hostile_inputs(shard_files["a"], tmp_path):
        status, out, err = run_merge(capsys, *arguments, "-o", tmp_path / "all.json")
        assert status == 2, case
        assert len(err.strip().splitlines()) == 1 and expected in err, (case, err)
        assert "Traceback" not in err and not (tmp_path / "all.json").exists(), case


def test_a_session_cap_that_is_not_an_energy_is_a_usage_error(shard_files: Dict[str, Path], tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run_merge(capsys, shard_files["a"], "--session-cap=10W", "-o", tmp_path / "all.json")
    assert status == 2 and "unit of power, not energy" in err.splitlines()[-1]  # under argparse's usage lines


def test_an_unwritable_output_is_one_line_and_exit_2(shard_files: Dict[str, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run_merge(capsys, shard_files["a"], "-o", tmp_path)
    assert status == 2 and len(err.splitlines()) == 1 and "cannot write" in err
