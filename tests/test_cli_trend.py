"""`pytest-energy trend`: quartiles, GPU share and thresholds on hand-made reports and on the DCASE files."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path
from typing import Any, Dict, Optional

import pytest

from pytest_energy.organise.cli import main
from pytest_energy.organise.dcase_data import SHIPPED_RESULTS
from pytest_energy.organise.input_rows import parse_ensemble, parse_quantity
from pytest_energy.organise.readers import collect
from pytest_energy.organise.trend_statistics import Trend, compute, quartile_values

KWH = 3.6e6
DCASE_DIR = SHIPPED_RESULTS  # the public results files that ship with the package


def make_report(
    system: str,
    *,
    year: Optional[int] = 2024,
    ensemble: Any = False,
    params: Optional[float] = None,
    macs: Optional[float] = None,
    train_kwh: Optional[float] = None,
    normalized_kwh: Optional[float] = None,
    gpu_share: Optional[float] = None,
    score: Optional[float] = None,
    baseline: bool = False,
) -> Dict[str, Any]:
    """A pytest-energy/1 report with one train and one test record; ensemble "unstated" leaves it out."""
    metadata: Dict[str, Any] = {"system": system}
    if ensemble != "unstated":
        metadata["ensemble"] = ensemble
    if year is not None:
        metadata["year"] = year
    if baseline:
        metadata["baseline"] = True
    train_j = None if train_kwh is None else train_kwh * KWH
    normalized_j = None if normalized_kwh is None else normalized_kwh * KWH
    gpu_j = None if gpu_share is None or train_j is None else gpu_share * train_j
    record = {"outcome": "passed", "duration_s": 1.0, "components": {}, "cap_j": None, "verdict": "pass"}
    return {
        "schema": "pytest-energy/1",
        "created": "2024-06-01T00:00:00Z",
        "plugin_version": "0.1.0",
        "metadata": metadata,
        "environment": {"fingerprint": "f"},
        "normalization": None,
        "baseline": None,
        "tests": [
            dict(record, nodeid="t::train", phase="train", energy_j=train_j, energy_normalized_j=normalized_j,
                 scores={}, macs=None, params=params),
            dict(record, nodeid="t::eval", phase="test", energy_j=0.01 * KWH, energy_normalized_j=None,
                 scores={} if score is None else {"psds1": score}, macs=macs, params=params),
        ],
        "totals": {
            "train": {"energy_j": train_j, "energy_normalized_j": normalized_j, "gpu_energy_j": gpu_j, "tests": 1},
            "test": {"energy_j": 0.01 * KWH, "energy_normalized_j": None, "gpu_energy_j": None, "tests": 1},
        },
    }


def write(directory: Path, name: str, report: Any) -> Path:
    path = directory / name
    path.write_text(report if isinstance(report, str) else json.dumps(report), encoding="utf-8")
    return path


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    """Six 2024 systems (one ensemble), one baseline, two 2023 systems, two unusable files.

    Parameters sorted: 0.5, 1, 2, 4, 8, 16 M -> positions 1.25, 2.5, 3.75 -> P25 1.25M, median 3M, P75 7M.
    MACs on four systems: 10, 20, 40, 80 G -> positions 0.75, 1.5, 2.25 -> 17.5G, 30G, 50G.
    Normalised training energy: 0.25 .. 8 kWh -> 0.625, 1.5, 3.5 kWh; raw is twice that.
    GPU share of training on five systems: 0.5 .. 0.9 -> mean 0.7, sample std sqrt(0.1/4), min 0.5, max 0.9.
    """
    rows = [
        # name, params (M), macs (G), normalised kWh, gpu share, score, ensemble
        ("E", 0.5, None, 0.25, None, 0.70, 3),
        ("A", 1, 10, 0.5, 0.5, 0.30, False),
        ("B", 2, 20, 1, 0.6, 0.40, False),
        ("C", 4, 40, 2, 0.7, 0.50, False),
        ("D", 8, 80, 4, 0.8, 0.60, False),
        ("F", 16, None, 8, 0.9, 0.65, "unstated"),
    ]
    for name, params, macs, normalized, share, score, ensemble in rows:
        report = make_report(
            name, params=params * 1e6, macs=None if macs is None else macs * 1e9, train_kwh=2 * normalized,
            normalized_kwh=normalized, gpu_share=share, score=score, ensemble=ensemble,
        )
        write(tmp_path, f"{name}.json", report)
    write(tmp_path, "base.json", make_report("Base", params=1e5, train_kwh=0.1, normalized_kwh=0.1, score=0.9,
                                             baseline=True))
    write(tmp_path, "old1.json", make_report("Old1", year=2023, params=1e6, train_kwh=1, score=0.2))
    write(tmp_path, "old2.json", make_report("Old2", year=2023, params=3e6, train_kwh=3, score=0.3))
    write(tmp_path, "broken.json", "{not json")
    write(tmp_path, "noyear.json", make_report("NoYear", year=None, train_kwh=1))
    return tmp_path


@pytest.mark.parametrize(("method", "numpy_method"), [("inclusive", "linear"), ("exclusive", "weibull")])
def test_quartiles_match_numpy(method: str, numpy_method: str):
    import numpy
    generator = random.Random(7)
    for size in (2, 3, 4, 5, 10, 37) if method == "inclusive" else (3, 4, 5, 10, 37):  # 'exclusive' extrapolates at 2
        values = [generator.uniform(0, 100) for _ in range(size)]
        expected = numpy.percentile(values, [25, 50, 75], method=numpy_method)
        assert quartile_values(values, method) == pytest.approx(list(expected))


def test_quartiles_hand_computed_and_errors():
    assert quartile_values([1, 2, 4, 8]) == pytest.approx((1.75, 3.0, 5.0))  # positions 0.75, 1.5, 2.25
    assert quartile_values([8, 4, 2, 1], "exclusive") == pytest.approx((1.25, 3.0, 7.0))  # positions 1.25, 2.5, 3.75
    assert quartile_values([5.0]) == (5.0, 5.0, 5.0)
    with pytest.raises(ValueError):
        quartile_values([])
    with pytest.raises(ValueError):
        quartile_values([1.0, 2.0], "nearest")


def test_field_parsing_of_dcase_quirks():
    assert parse_quantity("625K") == 625_000
    assert parse_quantity("1.2M") == pytest.approx(1.2e6)
    assert parse_quantity("Trainable 1.7 M non-Trainable 1.7M") == pytest.approx(3.4e6)
    assert parse_quantity(None) is None and parse_quantity(" ") is None
    with pytest.raises(ValueError):
        parse_quantity("4.2MB")  # a size on disk, not a count
    assert parse_ensemble(None) is False
    assert parse_ensemble(1) is False
    assert parse_ensemble(5) is True
    assert parse_ensemble("10 (5 SEDT, 5 frame-wise model)") is True
    with pytest.raises(ValueError):
        parse_ensemble("several")


def test_quartiles_on_hand_made_reports(reports: Path):
    collection = collect([str(reports)])
    result = compute(collection)
    rows = {(q.edition, q.metric.attribute): q for q in result.quartiles}

    params = rows[("2024", "params")]
    assert (params.n, params.p25, params.median, params.p75) == (6, pytest.approx(1.25e6), pytest.approx(3e6),
                                                                 pytest.approx(7e6))
    macs = rows[("2024", "macs")]
    assert (macs.n, macs.p25, macs.median, macs.p75) == (4, pytest.approx(17.5e9), pytest.approx(30e9),
                                                         pytest.approx(50e9))
    normalized = rows[("2024", "train_normalized_j")]
    assert [normalized.p25, normalized.median, normalized.p75] == pytest.approx([0.625 * KWH, 1.5 * KWH, 3.5 * KWH])
    raw = rows[("2024", "train_j")]
    assert [raw.p25, raw.median, raw.p75] == pytest.approx([1.25 * KWH, 3 * KWH, 7 * KWH])
    old = rows[("2023", "params")]
    assert (old.n, old.median) == (2, pytest.approx(2e6))


def test_gpu_share_summary(reports: Path):
    result = compute(collect([str(reports)]))
    train = next(s for s in result.shares if s.edition == "2024" and s.phase == "train")
    assert train.n == 5
    assert train.mean == pytest.approx(0.7)
    assert train.std == pytest.approx((0.1 / 4) ** 0.5)
    assert (train.minimum, train.maximum) == (pytest.approx(0.5), pytest.approx(0.9))
    test = next(s for s in result.shares if s.edition == "2024" and s.phase == "test")
    assert test.n == 0 and test.mean is None


def test_threshold_table_single_systems_by_default(reports: Path):
    collection = collect([str(reports)])

    def best(result: Trend, attribute: str, level: str) -> Optional[str]:
        row = next(r for r in result.thresholds
                   if r.edition == "2024" and r.metric.attribute == attribute and r.level == level)
        return row.best.name if row.best else None

    single = compute(collection)
    # E (ensemble) and F (ensemble unstated) are left out; strictly under P25 = 1.25M leaves A only.
    assert best(single, "params", "P25") == "A"
    assert best(single, "params", "median") == "B"
    assert best(single, "macs", "median") == "B"  # under 30G: A (10G, 0.30) and B (20G, 0.40)
    assert best(single, "macs", "P25") == "A"  # under 17.5G: A only
    assert best(single, "train_normalized_j", "median") == "B"
    assert single.best_overall["2024"].name == "D"

    everyone = compute(collection, population="all")
    assert best(everyone, "params", "P25") == "E"
    assert everyone.best_overall["2024"].name == "E"


def test_rejections_baselines_and_year_fallback(reports: Path):
    collection = collect([str(reports)])
    assert sorted(s.name for s in collection.systems if s.edition == "2024") == ["A", "B", "C", "D", "E", "F"]
    assert [b.name for b in collection.baselines] == ["Base"]
    reasons = sorted(r.reason for r in collection.rejected)
    assert len(reasons) == 2
    assert reasons[0].startswith("no edition or year")
    assert reasons[1].startswith("not valid JSON")

    with_year = collect([str(reports)], year=2022)
    assert [s.name for s in with_year.systems if s.edition == "2022"] == ["NoYear"]
    assert len(with_year.rejected) == 1


def test_organisers_csv(tmp_path: Path):
    path = write(tmp_path, "subs.csv", "\n".join([
        "System,Year,Ensemble,Params,MACs,energy_training_kwh,energy_test_kwh,energy_training_normalized_kwh,psds1",
        "one,2024,,1.5M,20G,2.0,0.02,1.8,0.41",
        "two,2024,4,abc,,3.0,,2.5,0.52 (0.50 - 0.54)",
        "three,2024,,2M,,,,,0.3",
        ",2024,,,,1.0,,,",
    ]))
    collection = collect([str(path)])
    systems = {s.name: s for s in collection.systems}
    assert set(systems) == {"one", "two"}
    assert systems["one"].params == pytest.approx(1.5e6)
    assert systems["one"].train_normalized_j == pytest.approx(1.8 * KWH)
    assert systems["one"].ensemble is False
    assert systems["two"].ensemble is True and systems["two"].score == pytest.approx(0.52)
    assert systems["two"].params is None
    assert [(i.row, i.field) for i in collection.issues] == [("line 3", "params")]
    assert sorted(r.reason for r in collection.rejected) == ["no system name", "no training energy"]


def test_dcase_2022_results_yaml_as_is():
    collection = collect([str(DCASE_DIR / "results_task4_entries.yaml")])
    assert {s.edition for s in collection.systems} == {"2022"}  # 7 rows carry a DCASE2021_ anchor
    assert len(collection.systems) == 79
    assert sorted(b.name for b in collection.baselines) == ["Baseline", "Baseline (AudioSet)"]
    assert [r.reason for r in collection.rejected] == ["no training energy"] * 20
    assert [(i.field, i.value) for i in collection.issues] == [("params", "'4.2MB'")] * 4
    assert all(s.train_normalized_j is None and s.macs is None for s in collection.systems)
    assert any("no normalised energy" in note for note in collection.notes)
    assert next(s for s in collection.systems if s.name == "Zhang_UCAS_task4_2").ensemble is True


def test_dcase_2023_results_yaml_and_duplicates():
    only_2023 = collect([str(DCASE_DIR / "submissions_task4a_entries.yaml")])
    assert (len(only_2023.systems), len(only_2023.baselines), len(only_2023.rejected)) == (82, 2, 0)
    baseline = next(b for b in only_2023.baselines if b.name == "Baseline_task4a_1")
    assert baseline.score == pytest.approx(0.326)  # "0.326 (0.325 - 0.327)"
    assert baseline.train_normalized_j == pytest.approx(1.39 * KWH)
    assert baseline.macs == 930902000

    everything = collect([str(DCASE_DIR)])
    reasons = [r.reason for r in everything.rejected]
    assert len(everything.systems) == 79 + 82
    assert sum(reason.startswith("duplicate") for reason in reasons) == 39  # the non-ensemble subset file
    assert reasons.count("no training energy") == 20


def test_cli_trend_table_names_the_method(reports: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["trend", str(reports)]) == 0
    out = capsys.readouterr().out
    assert "statistics.quantiles(n=4, method='inclusive')" in out
    assert "Rejected rows: 2" in out
    assert "Best psds1 under thresholds, single systems" in out
    assert "no GPU energy for 2023" in out


def test_cli_trend_markdown(reports: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["trend", str(reports), "--format", "md"]) == 0
    out = capsys.readouterr().out
    assert "| edition | metric | n | P25 | median | P75 |" in out
    assert "| 2024 | parameters | 6 | 1.25M | 3.00M | 7.00M |" in out
    assert "| 2024 | training | 5 | 70.0% ± 15.8 | 50.0% | 90.0% |" in out
    # single systems A-D: parameters 1, 2, 4, 8M -> P25 1.75M (A), median 3M (A, B); All: D
    assert "| 2024 | parameters | 4 | 1.75M | 1 | 0.300 | A | 3.00M | 2 | 0.400 | B | 4 | 0.600 | D |" in out


def test_cli_trend_csv(reports: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["trend", str(reports), "--format", "csv", "--population", "all"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert list(rows[0]) == ["table", "edition", "row", "column", "value"]

    def value(table: str, row: str, column: str) -> str:
        return next(r["value"] for r in rows
                    if r["table"] == table and r["edition"] == "2024" and r["row"] == row and r["column"] == column)

    assert float(value("quartiles", "parameters", "p25")) == pytest.approx(1.25e6)
    assert float(value("quartiles", "training energy, normalised (kWh)", "median")) == pytest.approx(1.5)
    assert value("thresholds_all_systems", "parameters <= P25", "system") == "E"
    assert float(value("thresholds_all_systems", "parameters <= P25", "threshold")) == pytest.approx(1.25e6)
    assert value("thresholds_all_systems", "parameters <= P25", "n_under") == "2"  # E (0.5M) and A (1M)
    assert any(r["table"] == "rejected" and r["value"] == "1" for r in rows)


def test_cli_trend_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["trend", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file or directory" in err and "Traceback" not in err

    write(tmp_path, "broken.json", "[1, 2")
    assert main(["trend", str(tmp_path / "broken.json")]) == 2
    assert "no usable systems" in capsys.readouterr().err

    write(tmp_path, "notes.txt", "hello")
    assert main(["trend", str(tmp_path / "notes.txt")]) == 2
    assert "notes.txt: not a report" in capsys.readouterr().err

    assert main(["trend", str(tmp_path), "--format", "xml"]) == 2


def test_thresholds_are_quartiles_of_the_ranked_population(reports: Path):
    """Table VI's rule: Max is the P25 / median of the ranked systems themselves, and a system at Max counts."""
    result = compute(collect([str(reports)]))
    cells = {(r.metric.attribute, r.level): r for r in result.thresholds if r.edition == "2024"}
    # single systems A-D: 1, 2, 4, 8M; all systems (the quartile table) would give P25 1.25M
    p25 = cells[("params", "P25")]
    assert (p25.threshold, p25.population, p25.candidates) == (pytest.approx(1.75e6), 4, 1)
    assert cells[("params", "median")].threshold == pytest.approx(3e6)
    assert cells[("params", "all")].threshold is None and cells[("params", "all")].best.name == "D"
    # MACs 10, 20, 40, 80G over the same four
    assert cells[("macs", "P25")].threshold == pytest.approx(17.5e9)

    exclusive = compute(collect([str(reports)]), method="exclusive")
    assert next(r for r in exclusive.thresholds if r.edition == "2024" and r.metric.attribute == "params"
                and r.level == "P25").threshold == pytest.approx(1.25e6)  # positions (n+1)/4 = 1.25


def test_a_system_at_the_threshold_is_under_it(tmp_path: Path):
    for name, params, score in (("low", 1e6, 0.2), ("mid", 2e6, 0.5), ("high", 3e6, 0.9)):
        write(tmp_path, f"{name}.json", make_report(name, params=params, train_kwh=1, score=score))
    median = next(r for r in compute(collect([str(tmp_path)])).thresholds
                  if r.metric.attribute == "params" and r.level == "median")
    assert (median.threshold, median.candidates, median.best.name) == (pytest.approx(2e6), 2, "mid")


def test_reliable_baseline_leaves_out_implausible_normalisation_factors(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]):
    # normalised / raw training energy: 1.0, 2.5, 0.2; one system without normalised energy
    for name, raw, normalized in (("same", 2, 2), ("slower", 2, 5), ("odd", 10, 2), ("raw", 3, None)):
        write(tmp_path, f"{name}.json", make_report(name, params=1e6, train_kwh=raw, normalized_kwh=normalized,
                                                    score=0.5))
    result = compute(collect([str(tmp_path)]), factor_limit=3)
    assert [s.name for s in result.unreliable] == ["odd"]
    assert result.unchecked == 1
    assert next(q for q in result.quartiles if q.metric.attribute == "params").n == 3

    assert main(["trend", str(tmp_path), "--reliable-baseline", "3"]) == 0
    out = capsys.readouterr().out
    assert "within [1/3, 3]; 1 systems left out (2024: 3 of 4 kept); 1 without normalised energy kept unchecked" in out
    assert "left out: odd (0.2)" in out
    assert main(["trend", str(tmp_path), "--reliable-baseline", "0.5"]) == 2
    assert "at least 1" in capsys.readouterr().err


def test_a_readme_among_the_inputs_is_skipped_with_a_note(reports: Path, capsys: pytest.CaptureFixture[str]):
    readme = write(reports, "README.md", "# submissions\n")
    assert main(["trend", str(readme), str(reports / "A.json"), str(reports / "B.json")]) == 0
    out = capsys.readouterr().out
    assert "2 usable systems from 2 files" in out
    assert "Note: " + str(readme) + ": not a report (expected .json, .csv, .yaml or .yml), skipped" in out


def test_any_recorded_score_ranks_the_systems(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """record_score("event_f1", ...) lands in tests[].scores; --score takes that name, and without
    --score a report that records no psds1 is ranked by the score it records."""
    for name, f1 in (("a", 0.61), ("b", 0.72)):
        report = make_report(name, params=1e6, train_kwh=1)
        report["tests"][1]["scores"] = {"event_f1": f1}
        write(tmp_path, f"{name}.json", report)
    assert main(["trend", str(tmp_path), "--score", "event_f1", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    best = {r["column"]: r["value"] for r in rows if r["row"] == "no threshold"}
    assert best == {"event_f1": "0.72", "system": "b"}

    assert main(["trend", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "no psds1 in the inputs: using event_f1, the score the reports record" in out
    assert "Best event_f1 under thresholds" in out
