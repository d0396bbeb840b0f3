"""The organisers' view: trend tables over many systems, one row per submitted system.

Three inputs become one list of ``System`` values: pytest-energy JSON reports (one per
system), a plain CSV of submissions, and the DCASE task 4 results-page YAML files read
as they are. Rows that cannot be used are rejected with a counted reason; fields that
cannot be read are left empty and counted. From the systems of each edition come the
tables organisers publish: quartiles of complexity and energy, the GPU share of
energy, and, as in Douwes & Serizel's Table VI, the best score among the ranked systems
(single systems by default) at or under the P25 / median of that same population.
Quartiles come from ``statistics.quantiles`` with a stated method ('inclusive', numpy's
default, unless told otherwise).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from pytest_energy.organise.dcase_data import parse_count, parse_score
from pytest_energy.report.escape import csv_cell, md_text, printable
from pytest_energy.report.table import Column, Table
from pytest_energy.units import JOULES_PER_UNIT, energy_unit, format_count, format_energy

REPORT_SCHEMA = "pytest-energy/1"
KWH_J = JOULES_PER_UNIT["kwh"]
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


# ----------------------------------------------------------------------------- values


@dataclass(frozen=True)
class System:
    """One submitted system; energies in joules, None where the source has no figure."""

    name: str
    edition: str
    source: str
    ensemble: Optional[bool]  # None: the source does not say
    baseline: bool = False
    params: Optional[float] = None
    macs: Optional[float] = None
    train_j: Optional[float] = None
    test_j: Optional[float] = None
    train_normalized_j: Optional[float] = None
    test_normalized_j: Optional[float] = None
    train_gpu_j: Optional[float] = None
    test_gpu_j: Optional[float] = None
    score: Optional[float] = None

    def gpu_share(self, phase: str) -> Optional[float]:
        """GPU energy over total energy for ``"train"`` or ``"test"``."""
        total, gpu = (self.train_j, self.train_gpu_j) if phase == "train" else (self.test_j, self.test_gpu_j)
        if total is None or gpu is None or total <= 0:
            return None
        return gpu / total


@dataclass(frozen=True)
class Rejection:
    source: str
    row: str
    reason: str


@dataclass(frozen=True)
class FieldIssue:
    """A field that could not be read; its row was kept with the field empty."""

    source: str
    row: str
    field: str
    value: str


@dataclass
class Collection:
    """Everything read from the inputs."""

    systems: List[System] = field(default_factory=list)  # usable, baselines excluded
    baselines: List[System] = field(default_factory=list)
    rejected: List[Rejection] = field(default_factory=list)
    issues: List[FieldIssue] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    files: int = 0

    def editions(self) -> List[str]:
        return sorted({system.edition for system in self.systems})


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
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_INPUT_BYTES + 1)
    except OSError as error:
        raise ReportError(f"cannot be read ({error.strerror or error})") from None
    if len(data) > MAX_INPUT_BYTES:
        raise ReportError(f"larger than {MAX_INPUT_BYTES / 2**20:g} MiB, the limit for an input file")
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


# ----------------------------------------------------------------------------- statistics

POPULATIONS = {"single": "single systems (ensemble: no)", "all": "all systems (ensembles and unstated included)"}
QUANTILE_METHODS = {
    "inclusive": "numpy.percentile's default, linear",
    "exclusive": "numpy.percentile method='weibull' from 3 values on",
}
LEVELS = ("P25", "median")  # the two thresholds; a third column, "all", has none


def method_text(method: str) -> str:
    """The quartile method as the output states it."""
    return f"quartiles by statistics.quantiles(n=4, method={method!r}) ({QUANTILE_METHODS[method]})"


def quartile_values(values: Sequence[float], method: str = "inclusive") -> Tuple[float, float, float]:
    """P25, median and P75 of ``values`` by ``statistics.quantiles``; a single value is its own quartiles."""
    if not values:
        raise ValueError("quartiles of no values")
    if method not in QUANTILE_METHODS:
        raise ValueError(f"unknown quartile method {method!r}; expected one of {', '.join(QUANTILE_METHODS)}")
    if len(values) == 1:
        only = float(values[0])
        return only, only, only
    p25, median, p75 = statistics.quantiles(values, n=4, method=method)
    return p25, median, p75


@dataclass(frozen=True)
class Metric:
    attribute: str
    label: str
    kind: str  # "count" or "energy"


METRICS = (
    Metric("params", "parameters", "count"),
    Metric("macs", "MACs", "count"),
    Metric("train_j", "training energy", "energy"),
    Metric("train_normalized_j", "training energy, normalised", "energy"),
    Metric("test_j", "test energy", "energy"),
    Metric("test_normalized_j", "test energy, normalised", "energy"),
)
THRESHOLD_METRICS = (METRICS[0], METRICS[1], METRICS[3])


@dataclass(frozen=True)
class Quartiles:
    edition: str
    metric: Metric
    n: int
    p25: Optional[float]
    median: Optional[float]
    p75: Optional[float]


@dataclass(frozen=True)
class ShareSummary:
    edition: str
    phase: str
    n: int
    mean: Optional[float]
    std: Optional[float]  # sample standard deviation (n - 1); None below 2 values
    minimum: Optional[float]
    maximum: Optional[float]


@dataclass(frozen=True)
class ThresholdRow:
    """One cell group of the threshold table: the best score at or under one threshold."""

    edition: str
    metric: Metric
    level: str  # "P25", "median", or "all" (no threshold)
    threshold: Optional[float]  # the paper's "Max"; None for "all" or when no system has the metric
    population: int  # systems of the ranked population that have the metric
    candidates: int  # scored systems at or under the threshold ("all": every scored system)
    best: Optional[System]


@dataclass(frozen=True)
class Trend:
    collection: Collection
    quartiles: List[Quartiles]
    shares: List[ShareSummary]
    thresholds: List[ThresholdRow]
    best_overall: Dict[str, Optional[System]]
    population: str  # a key of POPULATIONS
    score: str
    method: str = "inclusive"
    factor_limit: Optional[float] = None
    unreliable: List[System] = field(default_factory=list)  # left out by factor_limit
    unchecked: int = 0  # systems kept by factor_limit because they have no normalisation factor


def _values(systems: Iterable[System], attribute: str) -> List[float]:
    return [value for value in (getattr(s, attribute) for s in systems) if value is not None]


def quartiles(edition: str, systems: Sequence[System], metric: Metric, method: str = "inclusive") -> Quartiles:
    values = _values(systems, metric.attribute)
    if not values:
        return Quartiles(edition, metric, 0, None, None, None)
    return Quartiles(edition, metric, len(values), *quartile_values(values, method))


def share_summary(edition: str, systems: Sequence[System], phase: str) -> ShareSummary:
    shares = [share for share in (s.gpu_share(phase) for s in systems) if share is not None]
    if not shares:
        return ShareSummary(edition, phase, 0, None, None, None, None)
    mean = sum(shares) / len(shares)
    std = math.sqrt(sum((x - mean) ** 2 for x in shares) / (len(shares) - 1)) if len(shares) > 1 else None
    return ShareSummary(edition, phase, len(shares), mean, std, min(shares), max(shares))


def _best(systems: Iterable[System]) -> Optional[System]:
    scored = [s for s in systems if s.score is not None]
    return max(scored, key=lambda s: s.score) if scored else None  # type: ignore[arg-type,return-value]


def normalization_factor(system: System) -> Optional[float]:
    """Normalised over raw training energy: E_reference / E_baseline as the system's team measured it."""
    if system.train_normalized_j is None or not system.train_j:
        return None
    return system.train_normalized_j / system.train_j


def in_population(system: System, population: str) -> bool:
    return population == "all" or system.ensemble is False


def threshold_rows(
    edition: str, ranked: Sequence[System], metric: Metric, method: str = "inclusive"
) -> List[ThresholdRow]:
    """Best score at or under the P25 and median of ``metric`` over ``ranked``, then with no threshold.

    The thresholds are quartiles of the ranked population itself (the paper's Table VI:
    non-ensemble systems, thresholds from the non-ensemble quartiles).
    """
    with_metric = [s for s in ranked if getattr(s, metric.attribute) is not None]
    values = _values(with_metric, metric.attribute)
    levels = dict(zip(LEVELS, quartile_values(values, method)[:2])) if values else {}
    rows = []
    for level in LEVELS:
        threshold = levels.get(level)
        under = [s for s in with_metric if threshold is not None and getattr(s, metric.attribute) <= threshold]
        scored = [s for s in under if s.score is not None]
        rows.append(ThresholdRow(edition, metric, level, threshold, len(with_metric), len(scored), _best(scored)))
    scored = [s for s in ranked if s.score is not None]
    rows.append(ThresholdRow(edition, metric, "all", None, len(with_metric), len(scored), _best(scored)))
    return rows


def compute(
    collection: Collection,
    *,
    population: str = "single",
    score: str = "psds1",
    method: str = "inclusive",
    factor_limit: Optional[float] = None,
) -> Trend:
    """The trend tables for every edition in ``collection``.

    Quartiles and GPU shares use every usable system of the edition (baselines excluded);
    the threshold table ranks ``population`` ("single" or "all") with thresholds from that
    population's own quartiles. With ``factor_limit`` K, systems whose normalisation factor
    lies outside [1/K, K] (a baseline energy that is not plausibly the baseline's) are left
    out of everything; systems without normalised energy cannot be checked and stay.
    """
    if population not in POPULATIONS:
        raise ValueError(f"unknown population {population!r}; expected one of {', '.join(POPULATIONS)}")
    if factor_limit is not None and not factor_limit >= 1:
        raise ValueError(f"the normalisation factor limit must be at least 1, got {factor_limit!r}")
    unreliable: List[System] = []
    unchecked = 0
    kept = list(collection.systems)
    if factor_limit is not None:
        kept = []
        for system in collection.systems:
            factor = normalization_factor(system)
            unchecked += factor is None
            reliable = factor is None or 1 / factor_limit <= factor <= factor_limit
            (kept if reliable else unreliable).append(system)
    rows: List[Quartiles] = []
    shares: List[ShareSummary] = []
    thresholds: List[ThresholdRow] = []
    best_overall: Dict[str, Optional[System]] = {}
    for edition in sorted({s.edition for s in kept}):
        systems = [s for s in kept if s.edition == edition]
        ranked = [s for s in systems if in_population(s, population)]
        best_overall[edition] = _best(ranked)
        rows.extend(quartiles(edition, systems, metric, method) for metric in METRICS)
        shares.extend(share_summary(edition, systems, phase) for phase in ("train", "test"))
        for metric in THRESHOLD_METRICS:
            thresholds.extend(threshold_rows(edition, ranked, metric, method))
    return Trend(
        collection, rows, shares, thresholds, best_overall, population, score, method, factor_limit, unreliable,
        unchecked,
    )


# ----------------------------------------------------------------------------- rendering


def _format(kind: str, value: Optional[float], unit: Optional[str] = None) -> str:
    if value is None:
        return "-"
    if kind == "energy":
        return format_energy(value, unit)
    if kind == "count":
        return format_count(value)
    if kind == "share":
        return f"{100 * value:.1f}%"
    return f"{value:.3f}"


def _system_label(system: Optional[System]) -> Tuple[str, str]:
    if system is None:
        return "-", "-"
    return f"{system.score:.3f}", system.name


def _threshold_cells(row: ThresholdRow) -> Tuple[str, ...]:
    kind = row.metric.kind
    unit = energy_unit(row.threshold) if kind == "energy" else None
    maximum = () if row.level == "all" else (_format(kind, row.threshold, unit),)
    return maximum + (str(row.candidates),) + _system_label(row.best)


def tables(trend: Trend) -> List[Table]:
    """The trend as display tables (the same content the CSV gives as numbers)."""
    quartile_rows = []
    for row in trend.quartiles:
        unit = energy_unit(row.median) if row.metric.kind == "energy" else None
        quartile_rows.append(
            (row.edition, row.metric.label, str(row.n))
            + tuple(_format(row.metric.kind, value, unit) for value in (row.p25, row.median, row.p75))
        )
    share_rows = []
    for share in trend.shares:
        spread = "" if share.std is None else f" ± {100 * share.std:.1f}"
        mean = "-" if share.mean is None else f"{100 * share.mean:.1f}%{spread}"
        phase = "training" if share.phase == "train" else "test"
        share_rows.append(
            (share.edition, phase, str(share.n), mean, _format("share", share.minimum), _format("share", share.maximum))
        )
    threshold_rows_ = []
    groups: Dict[Tuple[str, str], List[ThresholdRow]] = {}
    for row in trend.thresholds:
        groups.setdefault((row.edition, row.metric.label), []).append(row)
    for (edition, label), cells in groups.items():
        threshold_rows_.append(
            (edition, label, str(cells[0].population)) + tuple(c for cell in cells for c in _threshold_cells(cell))
        )
    score = trend.score
    return [
        Table(
            _columns("edition", "metric", "n", "P25", "median", "P75"),
            quartile_rows,
            "Quartiles per edition (usable systems, baselines excluded)",
        ),
        Table(
            _columns("edition", "phase", "n", "mean ± std", "min", "max"),
            share_rows,
            "GPU share of energy (GPU energy / total energy; std: sample, n-1)",
        ),
        Table(
            _columns("edition", "metric", "n", "25% Max", "under", score, "system", "median Max", "under", score,
                     "system", "All: n", score, "system"),
            threshold_rows_,
            f"Best {score} under thresholds, {POPULATIONS[trend.population]}: Max is the P25 / median of "
            f"the n ranked systems that have the metric; 'under' counts scored systems with a value <= Max",
        ),
    ]


def _columns(*headers: str) -> List[Column]:
    return [Column(header) for header in headers]


def summary_lines(trend: Trend) -> List[str]:
    """Counts, method, rejections, unreadable fields and notes, as plain lines."""
    collection = trend.collection
    per_edition = Counter(s.edition for s in collection.systems)
    editions = ", ".join(f"{edition}: {per_edition[edition]}" for edition in collection.editions())
    ensembles = Counter(
        "single" if s.ensemble is False else "ensemble" if s.ensemble else "ensemble unstated"
        for s in collection.systems
    )
    lines = [
        f"{len(collection.systems)} usable systems from {collection.files} files ({editions or 'none'}); "
        + ", ".join(f"{count} {kind}" for kind, count in sorted(ensembles.items())),
        f"{len(collection.baselines)} baselines kept out of the statistics"
        + (f": {', '.join(f'{b.name} ({b.edition})' for b in collection.baselines)}" if collection.baselines else ""),
    ]
    if trend.factor_limit is not None:
        limit = trend.factor_limit
        left_out = Counter(s.edition for s in trend.unreliable)
        per = ", ".join(f"{edition}: {per_edition[edition] - left_out[edition]} of {per_edition[edition]} kept"
                        for edition in collection.editions())
        lines.append(
            f"Reliable baseline: normalisation factor (normalised / raw training energy) within "
            f"[1/{limit:g}, {limit:g}]; {len(trend.unreliable)} systems left out ({per})"
            + (f"; {trend.unchecked} without normalised energy kept unchecked" if trend.unchecked else "")
        )
        if trend.unreliable:
            shown = ", ".join(f"{s.name} ({normalization_factor(s):.3g})" for s in trend.unreliable)
            lines.append(f"  left out: {shown}")
    lines += [
        f"Method: {method_text(trend.method)}; the threshold table ranks {POPULATIONS[trend.population]} "
        f"by {trend.score}, with thresholds from their own quartiles; 'under' means at most the threshold.",
        f"Rejected rows: {len(collection.rejected)}",
    ]
    by_reason = Counter(r.reason for r in collection.rejected)
    for reason, count in by_reason.most_common():
        examples = [r.row for r in collection.rejected if r.reason == reason][:3]
        lines.append(f"  {count:4d}  {reason} (e.g. {', '.join(examples)})")
    if collection.issues:
        lines.append(f"Unreadable fields, left empty (row kept): {len(collection.issues)}")
        by_field = Counter(issue.field for issue in collection.issues)
        for name, count in by_field.most_common():
            values = Counter(i.value for i in collection.issues if i.field == name)
            shown = ", ".join(f"{value} ×{n}" for value, n in values.most_common(4))
            lines.append(f"  {count:4d}  {name}: {shown}")
    if ensembles.get("ensemble unstated") and trend.population == "single":
        lines.append(
            f"Note: {ensembles['ensemble unstated']} systems do not say whether they are ensembles; "
            "the threshold table leaves them out (set metadata.ensemble, or use --population all)."
        )
    no_share = sorted({s.edition for s in trend.shares} - {s.edition for s in trend.shares if s.n})
    if no_share:
        lines.append(
            f"Note: no GPU energy for {', '.join(no_share)} (it comes from JSON reports or the "
            "energy_*_gpu_kwh CSV columns; the DCASE results files have none)"
        )
    lines.extend(f"Note: {note}" for note in collection.notes)
    return lines


def render_text(trend: Trend) -> str:
    lines = [printable(line) for line in summary_lines(trend)]
    out = [f"pytest-energy trend — {line}" if i == 0 else line for i, line in enumerate(lines)]
    for table in tables(trend):
        out += ["", *table.render_text()]
    return "\n".join(out) + "\n"


def render_markdown(trend: Trend) -> str:
    out = ["## pytest-energy trend", ""]
    for line in summary_lines(trend):
        out.append(f"  - {md_text(line.strip())}" if line.startswith("  ") else f"- {md_text(line)}")
    for table in tables(trend):
        out += ["", *table.render_markdown()]
    return "\n".join(out) + "\n"


CSV_HEADER = ("table", "edition", "row", "column", "value")


def _csv_energy(value: Optional[float]) -> Optional[float]:
    return None if value is None else value / KWH_J


def csv_records(trend: Trend) -> Iterator[Tuple[Any, ...]]:
    """The trend as long-format rows: table, edition, row, column, value (energies in kWh)."""
    yield ("method", "", "quartiles", "method", method_text(trend.method))
    yield ("method", "", "threshold table", "population", POPULATIONS[trend.population])
    if trend.factor_limit is not None:
        yield ("method", "", "reliable baseline", "factor limit", trend.factor_limit)
        for system in trend.unreliable:
            yield ("left_out", system.edition, system.name, "normalisation factor", normalization_factor(system))
    for row in trend.quartiles:
        convert = _csv_energy if row.metric.kind == "energy" else (lambda v: v)
        label = row.metric.label + (" (kWh)" if row.metric.kind == "energy" else "")
        yield ("quartiles", row.edition, label, "n", row.n)
        for column, value in (("p25", row.p25), ("median", row.median), ("p75", row.p75)):
            yield ("quartiles", row.edition, label, column, convert(value))
    for share in trend.shares:
        for column in ("n", "mean", "std", "minimum", "maximum"):
            yield ("gpu_share", share.edition, share.phase, column, getattr(share, column))
    table = f"thresholds_{trend.population}_systems"
    for edition, best in trend.best_overall.items():
        yield (table, edition, "no threshold", trend.score, best.score if best else None)
        yield (table, edition, "no threshold", "system", best.name if best else None)
    for row in (r for r in trend.thresholds if r.level != "all"):
        label = f"{row.metric.label} <= {row.level}"
        threshold = _csv_energy(row.threshold) if row.metric.kind == "energy" else row.threshold
        unit = " (kWh)" if row.metric.kind == "energy" else ""
        yield (table, row.edition, label, "threshold" + unit, threshold)
        yield (table, row.edition, label, "n", row.population)
        yield (table, row.edition, label, "n_under", row.candidates)
        yield (table, row.edition, label, trend.score, row.best.score if row.best else None)
        yield (table, row.edition, label, "system", row.best.name if row.best else None)
    for reason, count in Counter(r.reason for r in trend.collection.rejected).most_common():
        yield ("rejected", "", reason, "count", count)


def render_csv(trend: Trend) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for record in csv_records(trend):
        writer.writerow([csv_cell(value) for value in record])
    return buffer.getvalue()


RENDERERS = {"table": render_text, "md": render_markdown, "csv": render_csv}
