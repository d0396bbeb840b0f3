"""The organisers' inputs read into systems: one ``Collection`` from many files.

Three inputs become one list of ``System`` values: pytest-energy JSON reports (one per
system), a plain CSV of submissions, and the DCASE task 4 results-page YAML files read
as they are. Rows that cannot be used are rejected with a counted reason; fields that
cannot be read are left empty and counted. Every input is read whole, up to
``MAX_INPUT_BYTES``; a JSON report holding NaN or infinities and a YAML file using
aliases are refused whole.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

from pytest_energy.organise.dcase_data import parse_count, parse_score
from pytest_energy.store.files import NotARegularFileError, TooLargeError, read_bytes_bounded
from pytest_energy.organise.systems import KWH_J, Collection, FieldIssue, Rejection, System

REPORT_SCHEMA = "pytest-energy/1"
DEFAULT_SCORE = "psds1"
# Score columns of the DCASE task 4 results-page YAML files, per score name, newest first.
# 2023 (submissions_task4a_entries.yaml) gives "value (CI low - CI high)" strings on the full
# evaluation set; 2022 (results_task4_entries.yaml) gives plain floats.
YAML_SCORE_KEYS = {
    "psds1": ("psds1_eval_full", "PSDS_1_all"),
    "psds2": ("psds2_eval_full", "PSDS_2_all"),
}
UNSTATED = object()  # a source that has no ensemble field at all
REPORT_SUFFIXES = {".json": "json", ".csv": "csv", ".yaml": "yaml", ".yml": "yaml"}
# Inputs are read whole; a larger file is refused (DCASE results files are about 1.4 MB,
# a report of 5000 tests a few MB).
MAX_INPUT_BYTES = 64 * 2**20
# JSON integers of more digits are read as floats (infinity past a float's range, then
# refused like 1e999): Python refuses to convert ints over 4300 digits, and no field needs 300.
MAX_INT_DIGITS = 300


class InputError(Exception):
    """An input that cannot be read at all; the message says which and why."""


@dataclass
class _RawRow:
    """A row as a source gives it, before validation; energies are in ``energy_unit_j``."""

    source: str
    row: str
    name: Any
    edition: Any
    ensemble: Any
    baseline: bool
    energy_unit_j: float
    params: Any = None
    macs: Any = None
    train: Any = None
    test: Any = None
    train_normalized: Any = None
    test_normalized: Any = None
    train_gpu: Any = None
    test_gpu: Any = None
    score: Any = None


# ----------------------------------------------------------------------------- field parsing


_LEADING_COUNT = re.compile(r"^\s*(\d+)\b")
_YEAR = re.compile(r"(?<!\d)((?:19|20)\d\d)(?!\d)")
_TRUE = {"true", "yes", "y", "ensemble"}
_FALSE = {"false", "no", "n", "single", "none", "null", "-"}


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def parse_number(value: Any) -> Optional[float]:
    """A finite, non-negative plain number or numeric string; raises ValueError if unreadable."""
    if _blank(value):
        return None
    if isinstance(value, bool):
        raise ValueError(value)
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(value) from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(value)
    return number


def parse_quantity(value: Any) -> Optional[float]:
    """A count such as ``1112420``, ``625K``, ``1.2M`` or ``"Trainable 1.7 M non-Trainable 1.7M"``.

    None when blank; raises ValueError when the cell holds something else (``4.2MB`` is a size).
    """
    count = parse_count(value)
    if count is None and not _blank(value):
        raise ValueError(value)
    return count


def parse_ensemble(value: Any) -> bool:
    """Whether a system is an ensemble, from a subsystem count, a flag or ``"10 (5 SEDT, ...)"``.

    None, false, 0 and 1 mean a single system; a count of 2 or more an ensemble.
    Raises ValueError if unreadable.
    """
    if _blank(value) or value is False:
        return False
    if value is True:
        return True
    if isinstance(value, (int, float)):
        return value >= 2
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    match = _LEADING_COUNT.match(text)
    if match:
        return int(match.group(1)) >= 2
    raise ValueError(value)


def parse_edition(value: Any) -> Optional[str]:
    """An edition label: the year in ``2023``, ``"dcase2023"`` or ``"DCASE2023_Turpault"``, else the text."""
    if _blank(value) or isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (int, float)):
        return str(int(value))
    text = str(value).strip()
    match = _YEAR.search(text)
    return match.group(1) if match else text


# ----------------------------------------------------------------------------- pytest-energy JSON reports


class ReportError(ValueError):
    """An input file (report, CSV or YAML) that cannot be used; the message is the reason."""


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """The text of an input file of at most ``MAX_INPUT_BYTES``; raises ReportError if unreadable."""
    try:  # a fifo or device is refused, not waited on
        data = read_bytes_bounded(path, MAX_INPUT_BYTES)
    except TooLargeError:
        raise ReportError(f"larger than {MAX_INPUT_BYTES / 2**20:g} MiB, the limit for an input file") from None
    except NotARegularFileError as error:
        raise ReportError(f"cannot be read ({str(error).replace(str(path), 'it', 1)})") from None
    except OSError as error:
        raise ReportError(f"cannot be read ({error.strerror or error})") from None
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        raise ReportError("not a text file") from None


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


def _json_rows(path: Path, score_name: str, collection: Collection) -> Iterator[_RawRow]:
    try:
        report = read_report(path)
    except ReportError as error:
        collection.rejected.append(Rejection(str(path), path.name, str(error)))
        return
    metadata = _mapping(report.get("metadata"))
    edition = metadata.get("year") if metadata.get("year") is not None else metadata.get("edition")
    yield _RawRow(
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


# ----------------------------------------------------------------------------- organisers' CSV

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


def _csv_rows(path: Path, score_name: str, collection: Collection) -> Iterator[_RawRow]:
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
) -> Iterator[_RawRow]:
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

        yield _RawRow(
            source=str(path),
            row=f"line {number}",
            name=(row.get(name_column) or "").strip(),
            edition=cell("edition"),
            ensemble=cell("ensemble") if columns["ensemble"] else UNSTATED,
            baseline=str(cell("baseline") or "").strip().lower() in _TRUE | {"1"},
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


# ----------------------------------------------------------------------------- DCASE results-page YAML


def _yaml_rows(path: Path, score_name: str, collection: Collection) -> Iterator[_RawRow]:
    try:
        import yaml
    except ImportError:
        raise InputError(
            f"{path}: reading DCASE results YAML needs PyYAML: pip install \"pytest-energy[plot]\" (or pyyaml)"
        ) from None
    try:
        rows = yaml.load(read_text(path), Loader=_yaml_loader(yaml))
    except ReportError as error:
        collection.rejected.append(Rejection(str(path), path.name, str(error)))
        return
    except (yaml.YAMLError, ValueError, OverflowError, RecursionError) as error:
        # ValueError and OverflowError: impossible dates, integers over 4300 digits.
        reason = "not valid YAML" + ("" if isinstance(error, yaml.YAMLError) else f" ({str(error).split(':')[0]})")
        collection.rejected.append(Rejection(str(path), path.name, reason))
        return
    if not isinstance(rows, list):
        collection.rejected.append(Rejection(str(path), path.name, "not a list of results rows"))
        return
    if not any(isinstance(row, dict) and "energy_training_normalized" in row for row in rows):
        collection.notes.append(
            f"{path.name}: no normalised energy in this file (energy_training_normalized); "
            "the DCASE 2022 results were not normalised, so its normalised columns stay empty"
        )
    edition = _file_edition(path, rows, collection)
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            collection.rejected.append(Rejection(str(path), f"row {number}", "not a mapping"))
            continue
        score_key = next((key for key in YAML_SCORE_KEYS.get(score_name, ()) if key in row), score_name)
        yield _RawRow(
            source=str(path),
            row=str(row.get("code") or f"row {number}"),
            name=row.get("code"),
            edition=edition,
            ensemble=row.get("system_ensemble_method_subsystem_count"),
            # The results pages draw a line (hline) under their baseline rows.
            baseline=row.get("hline") is True or str(row.get("code") or "").lower().startswith("baseline"),
            energy_unit_j=KWH_J,
            params=row.get("system_complexity_params", row.get("system_complexity")),
            macs=row.get("macs"),
            train=row.get("energy_training"),
            test=row.get("energy_test"),
            train_normalized=row.get("energy_training_normalized"),
            test_normalized=row.get("energy_test_normalized"),
            score=row.get(score_key),
        )


def _yaml_loader(yaml: Any) -> Any:
    """PyYAML's safe loader (the C one when libyaml is there) refusing aliases.

    An alias repeats a node by reference: nine lines of nested aliases (the "billion
    laughs") describe billions of values, which reading a row would walk. The DCASE
    results files use none.
    """
    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class NoAliasLoader(base):  # type: ignore[misc,valid-type]
        def construct_document(self, node: Any) -> Any:
            _refuse_shared_nodes(node)
            return super().construct_document(node)

    return NoAliasLoader


def _refuse_shared_nodes(root: Any) -> None:
    """Raise ReportError if a node of the YAML document is reached twice (an alias)."""
    seen = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            raise ReportError(
                "YAML aliases (*name) are not accepted: a few of them can stand for billions of values"
            )
        seen.add(id(node))
        if isinstance(node.value, list):
            for item in node.value:
                stack.extend(item if isinstance(item, tuple) else (item,))


def _file_edition(path: Path, rows: List[Any], collection: Collection) -> Optional[str]:
    """The edition of a results file: the year most of its rows' anchors (``DCASE2022_Xiao``) name.

    One file is one edition; some 2022 rows carry a ``DCASE2021_`` anchor (their bibtex
    keys say 2022), so a row's own anchor is not trusted alone.
    """
    years = Counter(
        year for year in (parse_edition(row.get("anchor")) for row in rows if isinstance(row, dict)) if year
    )
    if not years:
        return None
    (edition, count), *others = years.most_common()
    if others:
        other_text = ", ".join(f"{year} ×{n}" for year, n in others)
        collection.notes.append(
            f"{path.name}: edition {edition} from the anchors of {count} of {sum(years.values())} rows "
            f"(others name {other_text}; the whole file is read as {edition})"
        )
    return edition


_READERS: Dict[str, Callable[[Path, str, Collection], Iterator[_RawRow]]] = {
    "json": _json_rows,
    "csv": _csv_rows,
    "yaml": _yaml_rows,
}


# ----------------------------------------------------------------------------- validation


def _energy(raw: _RawRow, name: str, issues: List[FieldIssue]) -> Optional[float]:
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


def _read_field(raw: _RawRow, name: str, parse: Callable[[Any], Any], issues: List[FieldIssue]) -> Any:
    value = getattr(raw, name)
    try:
        return _finite(parse(_finite(value)))
    except (ValueError, OverflowError):
        issues.append(FieldIssue(raw.source, raw.row, FIELD_LABELS.get(name, name), _shown(value)))
        return None


def _build(raw: _RawRow, year: Optional[str], collection: Collection) -> Optional[System]:
    """Validate one raw row into a System, or record why it cannot be used."""

    def reject(reason: str) -> None:
        collection.rejected.append(Rejection(raw.source, raw.row, reason))

    name = str(raw.name).strip() if not _blank(raw.name) else ""
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
