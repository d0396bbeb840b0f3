"""The energy and complexity block of a DCASE task 4 system meta-information file.

A participant pastes it under ``system:`` in ``<label>.meta.yaml``. Energies are in kWh,
as the challenge asks; a field the report cannot fill is written as ``!!null`` and
listed at the end, so the participant knows what is left to measure.

Where the field names come from:
- ``system.complexity.total_parameters`` and ``system.description.ensemble_method_subsystem_count``
  are read by DCASE task 4's submission validator (DESED_task, 2024 ``validate_submissions``).
- ``complexity.macs`` and ``energy_consumption.training`` / ``.test`` follow the task 4
  results pages, built from these files (``macs``, ``energy_training``, ``energy_test``
  in the 2023 results YAML).
- ``training_gpu``, ``test_gpu`` and ``baseline_10_epochs`` name what the task page asks in
  prose (GPU energy; energy of 10 baseline epochs on the same hardware); no template
  spelling of them was found, so check them against the year's template.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Mapping, Optional, Tuple

from pytest_energy.report.escape import printable
from pytest_energy.organise.input_rows import ReportError, parse_ensemble
from pytest_energy.organise.json_reports import read_report, report_first, report_phase_energy
from pytest_energy.organise.systems import KWH_J


class SubmissionError(Exception):
    """The report cannot be read; the message says which file and why."""


@dataclass(frozen=True)
class Field:
    """One line of the block: its dotted path under ``system``, YAML value (None: missing), comment."""

    path: str
    value: Optional[str]
    comment: str = ""


@dataclass(frozen=True)
class SubmissionBlock:
    fields: Tuple[Field, ...]
    notes: Tuple[str, ...]

    @property
    def missing(self) -> List[str]:
        return [f"system.{field.path}" for field in self.fields if field.value is None]


def _kwh(joules: Any) -> Optional[str]:
    if isinstance(joules, bool) or not isinstance(joules, (int, float)) or joules < 0:
        return None
    return f"{joules / KWH_J:.6g}"


def _factor(value: Any) -> str:
    """``, factor 0.4254`` (four significant digits), or nothing for a rule without one (two-point)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return ""
    return f", factor {value:.4g}"


def _integer(value: Any) -> Optional[str]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return None
    return str(int(round(value)))


def _ensemble(metadata: Mapping[str, Any]) -> Field:
    path = "description.ensemble_method_subsystem_count"
    if "ensemble" not in metadata:
        return Field(path, None, "set metadata ensemble = false or the subsystem count")
    raw = metadata["ensemble"]
    try:
        is_ensemble = parse_ensemble(raw)
    except ValueError:
        return Field(path, None, f"metadata ensemble {raw!r} is not a count")
    if not is_ensemble:
        return Field(path, "!!null", "single system")
    count = _integer(raw)
    return Field(path, count, "") if count else Field(path, None, "ensemble: give the subsystem count")


def submission_block(report: Mapping[str, Any]) -> SubmissionBlock:
    """The block's fields from a pytest-energy report (already read)."""
    metadata = report.get("metadata") if isinstance(report.get("metadata"), dict) else {}
    targets = report.get("baseline") if isinstance(report.get("baseline"), list) else []
    baseline = targets[0] if len(targets) == 1 and isinstance(targets[0], dict) else {}  # two-point has no one figure
    fields = (
        _ensemble(metadata),
        Field("complexity.total_parameters", _integer(report_first(report, "params"))),
        Field("complexity.macs", _integer(report_first(report, "macs")), "MACs for 10 s of audio"),
        Field("energy_consumption.training", _kwh(report_phase_energy(report, "train", "energy_j")), "kWh"),
        Field("energy_consumption.training_gpu", _kwh(report_phase_energy(report, "train", "gpu_energy_j")), "kWh"),
        Field("energy_consumption.test", _kwh(report_phase_energy(report, "test", "energy_j")), "kWh"),
        Field("energy_consumption.test_gpu", _kwh(report_phase_energy(report, "test", "gpu_energy_j")), "kWh"),
        Field(
            "energy_consumption.baseline_10_epochs",
            _kwh(baseline.get("energy_j")),
            f"kWh, the reference workload on the same hardware: {baseline.get('nodeid')} "
            "(the challenge asks for 10 epochs of its baseline)" if baseline.get("nodeid") else
            "kWh, 10 epochs of the baseline on the same hardware",
        ),
    )
    notes = []
    if baseline.get("contended") or baseline.get("source") == "contended":
        notes.append("the baseline was measured while another process measured on this machine (contended): "
                     "its energy may read high; measure it alone (no -n, no other session) before submitting")
    normalization = report.get("normalization")
    normalized = _kwh(report_phase_energy(report, "train", "energy_normalized_j"))
    if isinstance(normalization, dict) and normalized is not None:
        notes.append(
            f"pytest-energy's normalised training energy: {normalized} kWh "
            f"(rule {normalization.get('rule')}{_factor(normalization.get('factor'))}); not a meta-file field"
        )
    return SubmissionBlock(fields, tuple(notes))


def render_block(block: SubmissionBlock, source: str, report: Mapping[str, Any]) -> str:
    """The block as YAML, with comments naming the report and the missing fields.

    Text from the report goes only into comments, made one line each (a line break in
    it would otherwise start a YAML line of its own in the pasted block).
    """
    metadata = report.get("metadata") if isinstance(report.get("metadata"), dict) else {}
    system = printable(repr(metadata.get("system", "unnamed")))
    created = printable(str(report.get("created", "unknown")))
    version = printable(str(report.get("plugin_version", "unknown")))
    lines = [
        f"# DCASE task 4 meta-information, energy and complexity: from {printable(source)}",
        f"# (system {system}, report created {created}, "
        f"pytest-energy {version}). Paste under `system:` in <label>.meta.yaml;",
        "# check the field names against this year's template (see pytest_energy/organise/submission.py).",
        "system:",
    ]
    written: List[str] = []
    for field in block.fields:
        *parents, leaf = field.path.split(".")
        for depth, parent in enumerate(parents):
            prefix = ".".join(parents[: depth + 1])
            if prefix not in written:
                written.append(prefix)
                lines.append("  " * (depth + 1) + f"{parent}:")
        value = "!!null" if field.value is None else field.value
        comment = ("MISSING" + (f": {field.comment}" if field.comment else "")) if field.value is None else field.comment
        lines.append("  " * (len(parents) + 1) + f"{leaf}: {value}" + (f"  # {printable(comment)}" if comment else ""))
    lines += [f"# {printable(note)}" for note in block.notes]
    if block.missing:
        lines.append(f"# Missing ({len(block.missing)}), still to measure or fill in by hand:")
        lines += [f"#   - {path}" for path in block.missing]
    else:
        lines.append("# Missing: none")
    return "\n".join(lines) + "\n"


def render_submission(path: Path) -> str:
    """Read ``path`` and return the block; raises SubmissionError for an unusable report."""
    if not path.is_file():
        raise SubmissionError(f"{path}: no such file")
    try:
        report = read_report(path)
    except ReportError as error:
        raise SubmissionError(f"{path}: {error}") from None
    return render_block(submission_block(report), path.name, report)
