"""The organisers' inputs read into systems: one ``Collection`` from many files.

Three inputs become one list of ``System`` values: pytest-energy JSON reports (one per
system, ``json_reports.py``), a plain CSV of submissions (``csv_rows.py``), and the DCASE
task 4 results-page YAML files read as they are (``dcase_yaml.py``). Rows that cannot be
used are rejected with a counted reason; fields that cannot be read are left empty and counted.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from pytest_energy.organise.csv_rows import csv_rows
from pytest_energy.organise.dcase_data import parse_score
from pytest_energy.organise.dcase_yaml import yaml_rows
from pytest_energy.organise.input_rows import (UNSTATED, InputError, RawRow, blank, parse_edition, parse_ensemble,
                                               parse_number, parse_quantity)
from pytest_energy.organise.json_reports import json_rows
from pytest_energy.organise.systems import Collection, FieldIssue, Rejection, System

DEFAULT_SCORE = "psds1"
REPORT_SUFFIXES = {".json": "json", ".csv": "csv", ".yaml": "yaml", ".yml": "yaml"}


_READERS: Dict[str, Callable[[Path, str, Collection], Iterator[RawRow]]] = {
    "json": json_rows,
    "csv": csv_rows,
    "yaml": yaml_rows,
}


def _energy(raw: RawRow, name: str, issues: List[FieldIssue]) -> Optional[float]:
    def joules(value: Any) -> Optional[float]:
        number = parse_number(value)
        return None if number is None else number * raw.energy_unit_j

    return _read_field(raw, name, joules, issues)


FIELD_LABELS = {
    "train": "training energy",
    "test": "test energy",
    "train_normalized": "normalised training energy",
    "test_normalized": "normalised test energy",
    "train_gpu": "training GPU energy",
    "test_gpu": "test GPU energy",
}


def _finite(value: Any) -> Any:
    """``value``, unless it is a number that is NaN, infinite or beyond a float (ValueError, OverflowError)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(value)
    if isinstance(value, int) and not isinstance(value, bool):
        float(value)
    return value


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _read_field(raw: RawRow, name: str, parse: Callable[[Any], Any], issues: List[FieldIssue]) -> Any:
    value = getattr(raw, name)
    try:
        return _finite(parse(_finite(value)))
    except (ValueError, OverflowError):
        issues.append(FieldIssue(raw.source, raw.row, FIELD_LABELS.get(name, name), _shown(value)))
        return None


def _build(raw: RawRow, year: Optional[str], collection: Collection) -> Optional[System]:
    """Validate one raw row into a System, or record why it cannot be used."""

    def reject(reason: str) -> None:
        collection.rejected.append(Rejection(raw.source, raw.row, reason))

    name = str(raw.name).strip() if not blank(raw.name) else ""
    if not name:
        reject("no system name")
        return None
    edition = parse_edition(raw.edition) or year
    if edition is None:
        reject("no edition or year (set metadata.year, a year column, or pass --year)")
        return None
    issues: List[FieldIssue] = []
    train_j = _energy(raw, "train", issues)
    if train_j is None:
        reject("training energy unreadable" if issues else "no training energy")
        return None
    ensemble = None if raw.ensemble is UNSTATED else _read_field(raw, "ensemble", parse_ensemble, issues)
    system = System(
        name=name,
        edition=edition,
        source=raw.source,
        ensemble=ensemble,
        baseline=raw.baseline,
        params=_read_field(raw, "params", parse_quantity, issues),
        macs=_read_field(raw, "macs", parse_quantity, issues),
        train_j=train_j,
        test_j=_energy(raw, "test", issues),
        train_normalized_j=_energy(raw, "train_normalized", issues),
        test_normalized_j=_energy(raw, "test_normalized", issues),
        train_gpu_j=_energy(raw, "train_gpu", issues),
        test_gpu_j=_energy(raw, "test_gpu", issues),
        score=_read_field(raw, "score", parse_score, issues),
    )
    collection.issues.extend(issues)
    return system


def input_files(paths: Iterable[str], notes: List[str]) -> List[Path]:
    """The report files named or found (recursively, sorted) in the named directories.

    A named file that is not a report (a README among the inputs) is skipped with a note.
    """
    files: List[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in REPORT_SUFFIXES)
            if not found:
                raise InputError(f"{path}: no .json, .csv or .yaml files in this directory")
            files.extend(found)
        elif path.is_file():
            if path.suffix.lower() not in REPORT_SUFFIXES:
                notes.append(f"{path}: not a report (expected .json, .csv, .yaml or .yml), skipped")
                continue
            files.append(path)
        else:
            raise InputError(f"{path}: no such file or directory")
    return files


def collect(paths: Iterable[str], *, year: Optional[int] = None, score: str = "psds1") -> Collection:
    """Read every input into systems, baselines, rejections and field issues.

    ``year`` is used for rows and reports that do not state their edition. The same
    system (edition and name) read twice is kept once; later copies are rejected.
    """
    collection = Collection()
    files = input_files(paths, collection.notes)
    collection.files = len(files)
    fallback = str(year) if year is not None else None
    seen: Dict[Tuple[str, str], str] = {}
    for path in files:
        for raw in _READERS[REPORT_SUFFIXES[path.suffix.lower()]](path, score, collection):
            system = _build(raw, fallback, collection)
            if system is None:
                continue
            key = (system.edition, system.name)
            if key in seen:
                collection.rejected.append(Rejection(raw.source, raw.row, f"duplicate of a row in {seen[key]}"))
                continue
            seen[key] = Path(raw.source).name
            (collection.baselines if system.baseline else collection.systems).append(system)
    return collection
