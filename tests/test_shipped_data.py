"""The public DCASE results files ship inside the package: a clone or a wheel needs nothing beside it."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pytest_energy.organise.cli import main
from pytest_energy.organise.dcase_data import SHIPPED_EDITIONS, SHIPPED_RESULTS, shipped_results

ROOT = Path(__file__).resolve().parents[1]


def listed_checksums() -> dict:
    text = (SHIPPED_RESULTS / "SOURCES.md").read_text(encoding="utf-8")
    return dict(re.findall(r"^\| `([\w.]+\.yaml)` \| `([0-9a-f]{64})` \|$", text, re.MULTILINE))


def test_every_shipped_file_is_listed_in_sources_with_its_checksum():
    shipped = {path.name for path in SHIPPED_RESULTS.glob("*.yaml")}
    checksums = listed_checksums()
    assert shipped and set(checksums) == shipped
    for name, digest in checksums.items():
        assert hashlib.sha256((SHIPPED_RESULTS / name).read_bytes()).hexdigest() == digest, name


def test_each_edition_names_a_shipped_file():
    assert sorted(SHIPPED_EDITIONS) == ["2022", "2023"]
    assert all(shipped_results(edition).is_file() for edition in SHIPPED_EDITIONS)


def test_the_wheel_carries_the_results_files_and_the_schemas(tmp_path: Path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = tmp_path.glob("pytest_energy-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in listed_checksums():
        assert f"pytest_energy/organise/dcase_results/{name}" in names
    assert "pytest_energy/organise/dcase_results/SOURCES.md" in names
    assert {"pytest_energy/report-schema.json", "pytest_energy/baseline-cache-schema.json"} <= names


def test_trend_dcase_reads_the_shipped_files(capsys: pytest.CaptureFixture[str]):
    assert main(["trend", "--dcase", "2022", "--dcase", "2023", "--format", "csv"]) == 0
    captured = capsys.readouterr()
    assert "2022" in captured.out and "2023" in captured.out


def test_trend_without_inputs_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]):
    assert main(["trend"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--dcase 2022|2023" in err


def test_no_project_file_needs_the_steering_sides_shared_folder():
    """A user's clone has no ../shared: nothing the project runs may point there."""
    offenders = []
    for path in [*ROOT.glob("*.toml"), *ROOT.glob(".ci/*"), *ROOT.glob(".github/**/*.yml"),
                 *(p for folder in ("pytest_energy", "tests", "benchmarks", "examples") for p in (ROOT / folder).rglob("*.py"))]:
        text = path.read_text(encoding="utf-8", errors="replace")
        if re.search(r"shared[\"'/ ,)]+\s*[\"']?data|\.\./shared", text) and path.name != "test_shipped_data.py":
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
