"""pytest-energy JSON reports read back: refused whole when they hold NaN, infinities or
another schema; their figures (the system's records, test phase first) and their one row.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Tuple

from pytest_energy.organise.input_rows import UNSTATED, RawRow, ReportError, read_text
from pytest_energy.organise.systems import Collection, Rejection

REPORT_SCHEMA = "pytest-energy/1"
# JSON integers of more digits are read as floats (infinity past a float's range, then
# refused like 1e999): Python refuses to convert ints over 4300 digits, and no field needs 300.
MAX_INT_DIGITS = 300


def _json_int(text: str) -> Any:
    return int(text) if len(text) <= MAX_INT_DIGITS else float(text)


def _json_key(key: str) -> str:
    return f".{key}" if key.isidentifier() else f"[{json.dumps(key)[:40]}]"


def _refuse_non_finite(data: Any) -> None:
    """Raise ReportError naming the first NaN, infinity or out-of-range number (the plugin writes none)."""
    stack: List[Tuple[str, Any]] = [("", data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((where + _json_key(key), item) for key, item in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend((f"{where}[{index}]", item) for index, item in reversed(list(enumerate(value))))
        elif isinstance(value, float) and not math.isfinite(value):
            shown = "NaN" if math.isnan(value) else "infinite or out of range"
            raise ReportError(f"{where.lstrip('.') or 'the document'}: not a finite number ({shown})")


def read_report(path: Path) -> Dict[str, Any]:
    """Load a pytest-energy JSON report, checking only what every reader needs.

    Refused: files over ``MAX_INPUT_BYTES``, nesting deeper than Python's recursion
    limit, and NaN, Infinity or numbers beyond a float's range anywhere in the file.
    """
    text = read_text(path)
    try:
        data = json.loads(text, parse_int=_json_int)
    except json.JSONDecodeError as error:
        raise ReportError(f"not valid JSON ({error.msg}, line {error.lineno})") from None
    except RecursionError:
        raise ReportError("JSON nested too deeply to read") from None
    if not isinstance(data, dict):
        raise ReportError("not a JSON object")
    _refuse_non_finite(data)
    if data.get("schema") != REPORT_SCHEMA:
        raise ReportError(f"schema is {data.get('schema')!r}, not {REPORT_SCHEMA!r}")
    return data


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _test_records(report: Mapping[str, Any]) -> List[Mapping[str, Any]]:
    """The report's test records; a ``tests`` that is not a list of objects gives none."""
    tests = report.get("tests")
    return [record for record in tests if isinstance(record, dict)] if isinstance(tests, list) else []


def report_records(report: Mapping[str, Any]) -> List[Mapping[str, Any]]:
    """The report's test records that belong to the system: test phase first, then train."""
    order = {"test": 0, "train": 1}
    records = [r for r in _test_records(report) if isinstance(r.get("phase"), str) and r["phase"] in order]
    return sorted(records, key=lambda r: order[r["phase"]])


def report_first(report: Mapping[str, Any], key: str) -> Any:
    """The first non-null ``key`` among the system's records (test phase first)."""
    for record in report_records(report):
        if record.get(key) is not None:
            return record[key]
    return None


def report_score(report: Mapping[str, Any], name: str) -> Any:
    """The first score called ``name`` among the system's records (test phase first)."""
    for record in report_records(report):
        value = _mapping(record.get("scores")).get(name)
        if value is not None:
            return value
    return None


def report_phase_energy(report: Mapping[str, Any], phase: str, kind: str) -> Any:
    """Energy of a phase from ``totals``, else summed over the phase's records.

    ``kind`` is ``"energy_j"``, ``"energy_normalized_j"`` or ``"gpu_energy_j"``.
    """
    total = _mapping(_mapping(report.get("totals")).get(phase)).get(kind)
    if total is not None:
        return total
    values = []
    for record in _test_records(report):
        if record.get("phase") != phase:
            continue
        if kind == "gpu_energy_j":
            value = _mapping(_mapping(record.get("components")).get("gpu")).get("energy_j")
        else:
            value = record.get(kind)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            values.append(float(value))
    return sum(values) if values else None


def json_rows(path: Path, score_name: str, collection: Collection) -> Iterator[RawRow]:
    try:
        report = read_report(path)
    except ReportError as error:
        collection.rejected.append(Rejection(str(path), path.name, str(error)))
        return
    metadata = _mapping(report.get("metadata"))
    edition = metadata.get("year") if metadata.get("year") is not None else metadata.get("edition")
    yield RawRow(
        source=str(path),
        row=path.name,
        name=metadata.get("system") or report_first(report, "system") or path.stem,
        edition=edition,
        ensemble=metadata.get("ensemble", UNSTATED),
        baseline=metadata.get("baseline") is True,
        energy_unit_j=1.0,
        params=report_first(report, "params"),
        macs=report_first(report, "macs"),
        train=report_phase_energy(report, "train", "energy_j"),
        test=report_phase_energy(report, "test", "energy_j"),
        train_normalized=report_phase_energy(report, "train", "energy_normalized_j"),
        test_normalized=report_phase_energy(report, "test", "energy_normalized_j"),
        train_gpu=report_phase_energy(report, "train", "gpu_energy_j"),
        test_gpu=report_phase_energy(report, "test", "gpu_energy_j"),
        score=report_score(report, score_name),
    )


def recorded_scores(collection: Collection) -> List[str]:
    """The score names the JSON reports among the inputs record (``record_score``), most common first."""
    names: Counter = Counter()
    sources = {s.source for s in collection.systems + collection.baselines if s.source.lower().endswith(".json")}
    for source in sorted(sources):
        try:
            report = read_report(Path(source))
        except (ReportError, OSError):
            continue
        names.update({name for record in report_records(report) for name in _mapping(record.get("scores"))})
    return [name for name, _ in names.most_common()]
