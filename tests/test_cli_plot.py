"""`pytest-energy plot`: a PNG of score against normalised training energy."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict, Optional

import pytest

from pytest_energy.cli import main

KWH = 3.6e6
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def report(system: str, year: int, ensemble: Any, normalized_kwh: Optional[float], score: float,
           baseline: bool = False) -> Dict[str, Any]:
    metadata = {"system": system, "year": year, "ensemble": ensemble, "baseline": baseline}
    normalized_j = None if normalized_kwh is None else normalized_kwh * KWH
    return {
        "schema": "pytest-energy/1",
        "metadata": metadata,
        "tests": [{"nodeid": "t::eval", "phase": "test", "energy_j": 0.01 * KWH, "scores": {"psds1": score}}],
        "totals": {"train": {"energy_j": 2 * KWH, "energy_normalized_j": normalized_j}},
    }


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    directory = tmp_path / "reports"
    directory.mkdir()
    rows = [
        ("Base", 2024, False, 1.4, 0.33, True),
        ("Cheap", 2024, False, 0.7, 0.40, False),
        ("Big", 2024, 6, 12.0, 0.55, False),
        ("Mid", 2023, False, 3.0, 0.30, False),
        ("Raw", 2023, False, None, 0.35, False),
    ]
    for name, year, ensemble, normalized, score, baseline in rows:
        (directory / f"{name}.json").write_text(json.dumps(report(name, year, ensemble, normalized, score, baseline)))
    return directory


def test_plot_written_as_png(reports: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    pytest.importorskip("matplotlib")
    output = tmp_path / "trend.png"
    assert main(["plot", str(reports), "-o", str(output)]) == 0
    data = output.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    captured = capsys.readouterr()
    assert "2023: 1 systems without a score or a normalized training energy" in captured.err


def test_plot_needs_matplotlib(reports: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import raises ImportError
    assert main(["plot", str(reports), "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert 'pip install "pytest-energy[plot]"' in err and err.count("\n") == 1
    assert not (tmp_path / "x.png").exists()


def test_plot_bad_inputs(reports: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    pytest.importorskip("matplotlib")
    only_raw = tmp_path / "raw.json"
    only_raw.write_text(json.dumps(report("Raw", 2023, False, None, 0.35)))
    assert main(["plot", str(only_raw), "-o", str(tmp_path / "x.png")]) == 2
    assert "nothing to plot" in capsys.readouterr().err
    assert main(["plot", str(only_raw), "-o", str(tmp_path / "x.png"), "--energy", "raw"]) == 0

    assert main(["plot", str(reports), "-o", str(tmp_path / "y.png"), "--baseline", "Nobody"]) == 2
    assert "--baseline 'Nobody'" in capsys.readouterr().err
    assert main(["plot", str(reports), "-o", str(tmp_path / "no" / "dir.png")]) == 2
    assert main(["plot", str(reports)]) == 2  # -o is required
