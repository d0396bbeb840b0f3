"""`pytest-energy plot`: PNGs of score against normalised training energy and of EW score against score."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict, Optional

import pytest

from pytest_energy.organise.cli import main
from suites import BURN

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


PARTICIPANT_SUITE = BURN + """

@pytest.mark.energy_baseline
def test_reference_workload():
    burn(0.2)


@pytest.mark.energy(phase="train", system="crnn")
def test_train():
    burn(0.2)


@pytest.mark.energy(phase="test", system="crnn")
def test_inference(energy):
    burn(0.1)
    energy.record_score("event_f1", 0.7)
"""

# As examples/dcase_sed/pyproject.toml: the challenge's reference values and the system's metadata.
PARTICIPANT_CONFIG = """
[tool.pytest-energy]
reference-energy = "10 J"
baseline-train-energy = "20 J"
baseline-test-energy = "5 J"
baseline-scores = { event_f1 = 0.6 }

[tool.pytest-energy.metadata]
system = "crnn"
year = 2026
ensemble = false
"""


@pytest.fixture
def participant_report(run_energy, pytester: pytest.Pytester) -> Path:
    """A report written by the plugin for one participant's system, scored with event F1."""
    pytester.makepyprojecttoml(PARTICIPANT_CONFIG)
    pytester.makepyfile(test_system=PARTICIPANT_SUITE)
    run = run_energy()
    assert run.result.ret == 0
    assert run.entry("test_inference")["scores"] == {"event_f1": 0.7}
    return Path(pytester.path, "energy.json")


@pytest.mark.parametrize("kind", ["energy-score", "ew"])
def test_plot_of_one_participant_report(participant_report: Path, tmp_path: Path, kind: str,
                                        capsys: pytest.CaptureFixture[str]):
    pytest.importorskip("matplotlib")
    output = tmp_path / f"{kind}.png"
    assert main(["plot", str(participant_report), "-o", str(output), "--kind", kind]) == 0
    data = output.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    err = capsys.readouterr().err
    assert "no psds1 in the inputs: using event_f1" in err
    assert "no quadrant lines" not in err  # the configured baseline (20 J, event_f1 0.6) draws them


def test_plot_ew_kind(reports: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    pytest.importorskip("matplotlib")
    output = tmp_path / "ew.png"
    assert main(["plot", str(reports), "-o", str(output), "--kind", "ew"]) == 0
    assert output.read_bytes().startswith(PNG_MAGIC) and output.stat().st_size > 10_000

    no_baseline = tmp_path / "no_baseline"
    no_baseline.mkdir()
    (no_baseline / "Cheap.json").write_text(json.dumps(report("Cheap", 2024, False, 0.7, 0.40)))
    assert main(["plot", str(no_baseline), "-o", str(tmp_path / "x.png"), "--kind", "ew"]) == 2
    assert "the ew plot weighs scores by a baseline's energy" in capsys.readouterr().err
    assert main(["plot", str(no_baseline), "-o", str(tmp_path / "x.png"), "--kind", "ew",
                 "--baseline", "Cheap"]) == 0


def test_plot_ew_position_is_score_times_baseline_over_system_energy():
    from pytest_energy.organise.plot import _ew
    from pytest_energy.organise.systems import System

    baseline = System("B", "2023", "b", False, baseline=True, train_j=KWH, train_normalized_j=1.39 * KWH, score=0.326)
    system = System("S", "2023", "s", False, train_j=KWH, train_normalized_j=0.695 * KWH, score=0.5)
    assert _ew(system, baseline, "normalized") == pytest.approx(1.0)  # 0.5 x 1.39 / 0.695
    assert _ew(baseline, baseline, "normalized") == pytest.approx(0.326)
    assert _ew(system, baseline, "raw") == pytest.approx(0.5)


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list:
    """The figures ``plot`` saves, drawn, for their layout."""
    matplotlib_figure = pytest.importorskip("matplotlib.figure")
    figures: list = []
    save = matplotlib_figure.Figure.savefig

    def keep(figure: Any, *args: Any, **kwargs: Any) -> None:
        save(figure, *args, **kwargs)
        figures.append(figure)

    monkeypatch.setattr(matplotlib_figure.Figure, "savefig", keep)
    return figures


def points_clear_of_edges_and_legend(figure: Any) -> None:
    [axes] = figure.axes
    legend = axes.get_legend().get_window_extent()
    box = axes.get_window_extent()
    for collection in axes.collections:
        if type(collection).__name__ != "PathCollection":  # the quadrant's shading
            continue
        for x, y in collection.get_offsets():
            px, py = axes.transData.transform((x, y))
            assert box.x0 + 0.1 * box.width <= px <= box.x1 - 0.1 * box.width, (x, y)
            assert box.y0 + 0.1 * box.height <= py <= box.y1 - 0.1 * box.height, (x, y)
            assert not legend.contains(px, py), f"({x}, {y}) is under the legend"


@pytest.mark.parametrize("kind", ["energy-score", "ew"])
def test_a_single_system_sits_inside_the_axes_and_clear_of_the_labels(
    tmp_path: Path, kind: str, drawn: list
) -> None:
    directory = tmp_path / "one"
    directory.mkdir()
    (directory / "Base.json").write_text(json.dumps(report("Base", 2024, False, 1.4, 0.33, baseline=True)))
    (directory / "Mine.json").write_text(json.dumps(report("Mine", 2024, False, 0.7, 0.40)))
    assert main(["plot", str(directory), "-o", str(tmp_path / "one.png"), "--kind", kind]) == 0
    [figure] = drawn
    points_clear_of_edges_and_legend(figure)
    [axes] = figure.axes
    assert len(axes.texts) == 0  # the quadrant is named in the legend, not written over the points
    labels = [text.get_text() for text in axes.get_legend().get_texts()]
    assert "baseline Base (2024)" in labels and any(label.startswith("better") for label in labels)


def test_baselines_close_together_are_named_in_the_legend_not_over_each_other(
    tmp_path: Path, drawn: list
) -> None:
    directory = tmp_path / "three"
    directory.mkdir()
    for name, year in (("Baseline_2022", 2022), ("Baseline_2023", 2023), ("Baseline_2024", 2024)):
        (directory / f"{name}.json").write_text(json.dumps(report(name, year, False, 1.4, 0.33, baseline=True)))
    (directory / "Mine.json").write_text(json.dumps(report("Mine", 2024, False, 0.7, 0.40)))
    assert main(["plot", str(directory), "-o", str(tmp_path / "raw.svg"), "--energy", "raw"]) == 0
    assert (tmp_path / "raw.svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")  # -o picks the format
    [figure] = drawn
    [axes] = figure.axes
    assert len(axes.texts) == 0
    labels = [text.get_text() for text in axes.get_legend().get_texts()]
    assert {"baseline Baseline_2022 (2022)", "baseline Baseline_2023 (2023)", "baseline Baseline_2024 (2024)"} <= set(labels)
