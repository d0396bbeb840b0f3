"""The organisers' CSV of submissions read into rows: one per line, energies in kWh."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Iterator, Optional

from pytest_energy.organise.input_rows import TRUE_WORDS, UNSTATED, RawRow, ReportError, read_text
from pytest_energy.organise.systems import KWH_J, Collection, Rejection

# Accepted CSV columns (case-insensitive); each tuple lists the accepted spellings.
CSV_COLUMNS = {
    "name": ("system", "name", "code"),
    "edition": ("year", "edition"),
    "ensemble": ("ensemble", "subsystem_count"),
    "baseline": ("baseline",),
    "params": ("params", "parameters", "total_parameters"),
    "macs": ("macs",),
    "train": ("energy_training_kwh",),
    "test": ("energy_test_kwh",),
    "train_normalized": ("energy_training_normalized_kwh",),
    "test_normalized": ("energy_test_normalized_kwh",),
    "train_gpu": ("energy_training_gpu_kwh",),
    "test_gpu": ("energy_test_gpu_kwh",),
}


def csv_rows(path: Path, score_name: str, collection: Collection) -> Iterator[RawRow]:
    try:
        text = read_text(path, "utf-8-sig")
    except ReportError as error:
        collection.rejected.append(Rejection(str(path), path.name, str(error)))
        return
    reader = csv.DictReader(io.StringIO(text))
    try:
        yield from _csv_reader_rows(path, reader, score_name, collection)
    except csv.Error as error:  # e.g. a field over csv.field_size_limit(); the rows before it are kept
        collection.rejected.append(Rejection(str(path), f"line {reader.line_num}", f"not valid CSV ({error})"))


def _csv_reader_rows(
    path: Path, reader: "csv.DictReader[str]", score_name: str, collection: Collection
) -> Iterator[RawRow]:
    headers = {(header or "").strip().lower(): header for header in reader.fieldnames or []}

    def column(key: str) -> Optional[str]:
        return next((headers[name] for name in CSV_COLUMNS[key] if name in headers), None)

    name_column = column("name")
    if name_column is None:
        collection.rejected.append(Rejection(str(path), path.name, "CSV has no 'system' column"))
        return
    score_column = headers.get(score_name) or headers.get("score")
    columns = {key: column(key) for key in CSV_COLUMNS}
    for number, row in enumerate(reader, start=2):

        def cell(key: str) -> Any:
            header = columns[key]
            return row.get(header) if header else None

        yield RawRow(
            source=str(path),
            row=f"line {number}",
            name=(row.get(name_column) or "").strip(),
            edition=cell("edition"),
            ensemble=cell("ensemble") if columns["ensemble"] else UNSTATED,
            baseline=str(cell("baseline") or "").strip().lower() in TRUE_WORDS | {"1"},
            energy_unit_j=KWH_J,
            params=cell("params"),
            macs=cell("macs"),
            train=cell("train"),
            test=cell("test"),
            train_normalized=cell("train_normalized"),
            test_normalized=cell("test_normalized"),
            train_gpu=cell("train_gpu"),
            test_gpu=cell("test_gpu"),
            score=row.get(score_column) if score_column else None,
        )
