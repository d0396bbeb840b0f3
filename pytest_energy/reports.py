"""``SessionReports``: a session's records, collected where the reports are made, accounted once and written.

Every test's record reaches it through ``receive`` (from a test report's payload, made in
this process or an xdist worker). It accounts the records (normalised energies, EW scores)
and writes what was asked for: the JSON report (with checkpoints while the run goes on),
JUnit properties, the GitHub summary and annotations, the CI tools' formats and the
stored run, where the session's peers say this process writes them (not an xdist worker,
global rank 0 of a launch), and the terminal's energy section on every process that
collects records. Nothing here measures or decides a limit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple

from .account.ew import account
from .account.normalize import Normalization
from .account.record import Record
from .config import ConfigError
from .decide.session_cap import session_cap_outcome
from .measure.interrupts import signals_deferred
from .measure.overlap import overlap_warning
from .report import github
from .report.ci_formats import benchmark_entries, openmetrics_text
from .report.gate import emissions_lines
from .report.json_report import Checkpoints, ReportWriter, build_document
from .report.junit import add_accounted_properties
from .report.terminal import accounting_lines, caveats, comparison_lines, condensed, session_cap_line, summary_table
from .store.files import NotARegularFileError, ReportInUseError, claim_report, regular_file_target, write_text_atomically
from .store.runs import commit_info

if TYPE_CHECKING:
    from .session import EnergySession


class SessionReports:
    """The records ``session`` collects and every report made from them."""

    def __init__(self, session: "EnergySession", invocation_dir: Path):
        self._session = session
        self._settings = settings = session.settings
        self._invocation_dir = invocation_dir
        self.collects = session.peers.worker_id is None  # an xdist worker sends its records to the controller
        self.writes_files = session.peers.writes_reports
        self.records: List[Record] = []
        self._baseline_json: List[Dict[str, Any]] = []  # the baseline targets as a worker last saw them
        self._accounted: Tuple[Optional[Normalization], List[Record]] = (None, [])  # see accounted_records
        self._json_error: Optional[str] = None  # why the last write of the JSON report failed
        self._json_tests: Optional[int] = None  # how many tests the report file holds, once one write succeeded
        self._finished = False  # the final report is being written: it says "complete": true
        self._store_error: Optional[str] = None  # why --energy-autosave could not store this run
        self.saved_run: Optional[Path] = None
        self._report: Optional[ReportWriter] = None
        self._checkpoints: Optional[Checkpoints] = None
        self._lock: Any = None
        if settings.json and self.collects and self.writes_files:
            path = Path(invocation_dir, settings.json)
            try:
                regular_file_target(path)
                self._lock = claim_report(path)
            except NotARegularFileError as exc:
                raise ConfigError(f"--energy-json: {exc}") from None
            except ReportInUseError as exc:
                raise ConfigError(f"--energy-json: {exc}; give each session its own report path") from None
            self._report = ReportWriter(path)
            self._checkpoints = Checkpoints(self.write_json)

    # -- collecting ----------------------------------------------------------------------------
    def receive(self, payload: Mapping[str, Any]) -> None:
        """Take in the record of a test report's payload (from this process or a worker)."""
        if "record" not in payload or not self.collects:
            return
        self._baseline_json = self._merged_baseline(payload.get("baseline") or self._baseline_json)
        self.add(Record.from_json(payload["record"]))

    def add(self, record: Record) -> None:
        """A record made here (an interrupted test, a worker's crash), kept like one received."""
        self.records.append(record)
        if self._checkpoints is not None:
            self._checkpoints.changed()

    def _merged_baseline(self, targets: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """The baseline targets a worker reports, keeping a target's energy that another worker measured."""
        known = {target.get("nodeid"): target for target in self._baseline_json if target.get("energy_j") is not None}
        return [target if target.get("energy_j") is not None else known.get(target.get("nodeid"), target)
                for target in targets]

    # -- accounting ----------------------------------------------------------------------------
    def normalization(self) -> Optional[Normalization]:
        """The normalisation for the reports: this process's, else from the targets the tests' reports carried."""
        session = self._session
        if session.normalization is not None or not session.baseline.active:
            return session.normalization
        points = [(t["energy_j"], t["reference_j"]) for t in self._baseline_json if t.get("energy_j") and t.get("reference_j")]
        if not points or len(points) != len(self._baseline_json):
            return None
        try:  # points that give no fit were refused where they were measured
            return Normalization.from_points(tuple(points))
        except ValueError:
            return None

    def accounted_records(self) -> List[Record]:
        """The records with the session's accounting (normalised energies, EW scores).

        Without scores, a record's accounting depends only on itself and the normalisation,
        so while that stays the same the records accounted before are kept: a report
        checkpoint accounts only the tests that finished since the last one.
        """
        normalization = self.normalization()
        records = list(self.records)  # a snapshot: the report thread reads while tests append
        kept_for, accounted = self._accounted
        if normalization != kept_for or any(record.scores for record in records):
            accounted = []
        accounted = accounted + account(records[len(accounted):], normalization, self._settings.reference,
                                        baseline_off=self._settings.baseline_mode == "off")
        self._accounted = (normalization, accounted)
        return accounted

    def session_cap(self) -> Optional[Dict[str, Any]]:
        """The session cap's one verdict over every collected record; None without a cap or records to judge."""
        return session_cap_outcome(self.records, self._settings.session_cap_j) if self.collects else None

    def session_cap_fails_run(self) -> bool:
        """Whether the session cap makes the run fail: reached, or not enforceable (a test not measured fully)."""
        outcome = self.session_cap()
        return outcome is not None and outcome["verdict"] != "pass" and self._settings.cap_mode == "fail"

    # -- the JSON report -----------------------------------------------------------------------
    def document(self) -> Dict[str, Any]:
        return build_document(*self._document_parts())

    def _document_parts(self) -> Tuple[List[Record], Dict[str, Any], Mapping[str, Any], Dict[str, Any], Dict[str, Any]]:
        """What ``build_document`` takes: the accounted records, environment, metadata, session and the rest."""
        settings, session = self._settings, self._session
        header: Dict[str, Any] = {"meter": settings.meter, "caps_j": dict(settings.caps),
                                  "cap_mode": settings.cap_mode, "normalized_caps": settings.normalized}
        stored = session.stored_run()
        if stored is not None:
            header["compared_with"] = str(stored.path)
        session_cap = self.session_cap()
        if session_cap is not None:
            header["session_cap"] = session_cap  # pytest-energy merge checks its cap over all shards
        launch = session.peers.launch
        if launch is not None:
            header.update(ranks=launch.world_size, nodes=launch.nodes, launcher=launch.launcher)
        normalization = self.normalization()
        extra = {
            "normalization": normalization.to_json() if normalization else None,
            "baseline": self._baseline_json or [target.to_json() for target in session.baseline.targets],
            "reference": settings.reference.to_json(),
            "notices": list(session.notices),
            "complete": self._finished,
        }
        environment = session.environment or self._unmeasured_environment()
        return self.accounted_records(), environment, settings.metadata, header, extra

    @staticmethod
    def _unmeasured_environment() -> Dict[str, Any]:
        """The environment of a report whose tests never opened the meter (all skipped at setup, or crashed)."""
        from .measure.machine import environment

        return environment({"sources": {}})

    def write_json(self) -> None:
        """Write the JSON report now: a checkpoint (from ``Checkpoints``) or the final report.

        A write that fails (a full disk, a read-only file system, a value JSON cannot hold) is
        tried again by the next checkpoint; ``report_failure`` says whether the last one failed.
        """
        if self._report is None:
            return
        parts = self._document_parts()
        try:
            with signals_deferred():  # Ctrl-C or SIGTERM now takes effect once the file is complete
                self._report.write(*parts)
        except (OSError, TypeError, ValueError) as exc:
            self._json_error = str(exc)
        else:
            self._json_error, self._json_tests = None, len(parts[0])

    def report_failure(self) -> Optional[str]:
        """Why the JSON report the user asked for is not complete on disk; None when it is (or none was asked for)."""
        if self._report is None or self._json_error is None:
            return None
        held = ("nothing of this session was written there" if self._json_tests is None else
                f"it holds the last checkpoint, {self._json_tests} of {len(self.records)} tests, marked \"complete\": false")
        return f"cannot write the energy JSON report to {self._settings.json}: {self._json_error}; {held}"

    def files_not_written(self) -> bool:
        """Whether a file the user asked for (the JSON report, the stored run) is not complete on disk."""
        return self.report_failure() is not None or self._store_error is not None

    # -- the session's end ---------------------------------------------------------------------
    def finish(self) -> None:
        """Write the final JSON report, the CI tools' formats and the stored run."""
        if not self.collects:
            return
        overlap = overlap_warning(str(record.extra["worker"]) for record in self.records
                                  if "worker" in record.extra and record.energy_j is not None)
        if overlap:
            self._session.notice(overlap)
        if self._checkpoints is not None:
            self._checkpoints.close()
        self._finished = True
        self.write_json()
        if not self.writes_files:
            return
        self._write_ci_formats()
        if self._settings.autosave and self.records:
            try:
                self.saved_run = self._session.comparison.store.save(self.document(), commit_info(self._session.rootpath))
            except OSError as exc:
                self._store_error = f"cannot store this run under {self._settings.storage}: {exc}"
                self._session.notice(self._store_error)

    def _write_ci_formats(self) -> None:
        """github-action-benchmark's JSON and the OpenMetrics report, where asked for; a notice if one cannot be written."""
        for option, path, render in (
            ("--energy-benchmark-json", self._settings.benchmark_json,
             lambda records: json.dumps(benchmark_entries(records), indent=2) + "\n"),
            ("--energy-openmetrics", self._settings.openmetrics, openmetrics_text),
        ):
            if path:
                try:
                    write_text_atomically(Path(self._invocation_dir, path), render(self.accounted_records()))
                except OSError as exc:  # a directory or device at the path, an unwritable directory
                    self._session.notice(f"cannot write {option}={path}: {exc}")

    def flush(self) -> None:
        """Write what is pending now (Ctrl-C, an internal error): the session may not get to its end."""
        if self._checkpoints is not None:
            with signals_deferred():
                self._checkpoints.flush()

    def close(self) -> None:
        if self._checkpoints is not None:
            self._checkpoints.close()
        if self._lock is not None:
            self._lock.release()

    def add_to_junit(self, path: Path, shown_as: str, prefix: Optional[str]) -> None:
        """Normalised energies and EW scores into the ``--junitxml`` file, from the records the JSON report accounts.

        Under xdist a test's EW can depend on a test another worker ran, or one that ran later:
        only the controller, at the end, has every record.
        """
        if not self.records or not self.writes_files:
            return
        try:
            add_accounted_properties(path, self.accounted_records(), prefix)
        except (OSError, ValueError) as exc:
            self._session.notice(f"cannot add normalised energies and EW scores to {shown_as}: {exc}")

    # -- the terminal --------------------------------------------------------------------------
    def summary_lines(self, width: int) -> List[str]:
        """The terminal's energy section (without its title): notices, the table, accounting, where reports went."""
        report_failure = self.report_failure()
        notices = self._session.notices
        if not self.collects or not (self.records or notices or report_failure):
            return []
        settings, unit = self._settings, self._settings.unit
        on_github = github.on_github_actions() and self.writes_files
        records = self.accounted_records()
        lines = [f"pytest-energy: {message}" for message in notices]
        if on_github:
            lines += [github.notice_annotation(message) for message in notices]
        session_cap = session_cap_line(self.session_cap(), unit, settings.cap_mode)
        if session_cap:
            lines.append(session_cap)
        if not records:
            return lines + ([f"pytest-energy: {report_failure}"] if report_failure else [])
        shown, totals = condensed(records, settings.json if self._json_error is None else None, unit)
        lines += summary_table(shown, unit).render_text(width) + totals
        lines += accounting_lines(records, self.normalization(), self._baseline_json, unit)
        lines += [f"  note: {line}" for line in caveats(records)]
        if self._report is not None and self._json_error is None:
            lines.append(f"energy report written to {settings.json}")
        lines += self._comparison_lines(records, width)
        if self.saved_run is not None:
            lines.append(f"energy run stored as {self.saved_run}")
        if on_github:
            lines += github.annotations(records, "warning" if settings.cap_mode == "warn" else "error")
            try:
                github.write_summary(github.summary_markdown(records, unit))
            except OSError as exc:  # said here: a notice now would come after the lines that show notices
                lines.append(f"pytest-energy: cannot write the GitHub job summary: {exc}")
        if report_failure:
            lines.append(f"pytest-energy: {report_failure}")
        return lines

    def _comparison_lines(self, records: List[Record], width: int) -> List[str]:
        """The comparison with the stored run, the regression gate's lines and the emissions."""
        stored = self._session.stored_run()
        lines = []
        if stored is None and self._session.comparison.note:
            lines.append(f"energy comparison: {self._session.comparison.note}")
        elif stored is not None:
            lines += comparison_lines(records, stored, self._session.environment.get("fingerprint"),
                                      self._settings.unit, width)
        return lines + emissions_lines(records)
