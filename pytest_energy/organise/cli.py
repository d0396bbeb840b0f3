"""The ``pytest-energy`` command: tools for challenge participants and organisers.

``submission`` prints the energy and complexity block of a DCASE task 4 system
meta-information file from one JSON report; ``trend`` prints the organisers' tables
over many reports, CSV rows and DCASE results-page YAML files; ``plot`` draws score
against normalised training energy, or energy-weighted score against score; ``merge``
combines the reports of a suite split over several jobs into one and gates it. Exit
status: 0 done, 1 the merged run failed its energy gate, 2 bad usage or unreadable input
(one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

from pytest_energy import __version__
from pytest_energy.report.escape import printable
from pytest_energy.organise.dcase_data import SHIPPED_EDITIONS, shipped_results
from pytest_energy.organise.input_rows import InputError
from pytest_energy.organise.plot import KINDS
from pytest_energy.organise.readers import DEFAULT_SCORE
from pytest_energy.organise.systems import Collection
from pytest_energy.organise.trend_statistics import POPULATIONS, QUANTILE_METHODS
from pytest_energy.units import QuantityError, format_energy, parse_energy

USAGE_ERROR = 2
GATE_FAILED = 1


class CliError(Exception):
    """A problem the user can fix; the message is printed as one line."""


def _no_usable_systems(collection: Collection) -> CliError:
    """The error for inputs that gave no system: each reason once, with the first file or row it rejected."""
    examples: Dict[str, str] = {}
    for rejection in collection.rejected:
        name = Path(rejection.source).name
        examples.setdefault(rejection.reason, name if rejection.row == name else f"{name} {rejection.row}")
    reasons = [f"{where}: {reason}" for reason, where in examples.items()]
    shown = "; ".join(reasons[:3]) + (f"; {len(reasons) - 3} more reasons" if len(reasons) > 3 else "")
    notes = "".join(f"; {note}" for note in collection.notes)  # e.g. the inputs skipped as not reports
    return CliError(f"no usable systems in the inputs ({len(collection.rejected)} rejected: {shown or 'no rows'}{notes})")


def _one_line(text: str, limit: int = 1000) -> str:
    """``text`` without line breaks or control characters (file names and values come from the inputs)."""
    flat = printable(text)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _submission(args: argparse.Namespace) -> int:
    from pytest_energy.organise.submission import SubmissionError, render_submission

    try:
        sys.stdout.write(render_submission(Path(args.report)))
    except SubmissionError as error:
        raise CliError(str(error)) from None
    return 0


def _collect(args: argparse.Namespace) -> Tuple[Collection, str]:
    """The inputs read with ``--score``; without it, psds1, else the score the JSON reports record."""
    from pytest_energy.organise.dcase_yaml import YAML_SCORE_KEYS
    from pytest_energy.organise.json_reports import recorded_scores
    from pytest_energy.organise.readers import collect

    score = args.score or DEFAULT_SCORE
    args.inputs = list(args.inputs) + [str(shipped_results(edition)) for edition in args.dcase or ()]
    if not args.inputs:
        raise CliError("no inputs: name reports, CSV or YAML files or directories, or --dcase 2022|2023")
    collection = collect(args.inputs, year=args.year, score=score)
    if args.score is not None and collection.systems + collection.baselines \
            and all(s.score is None for s in collection.systems + collection.baselines):
        sources = {s.source.lower() for s in collection.systems + collection.baselines}
        known = recorded_scores(collection)
        if any(source.endswith((".yaml", ".yml")) for source in sources):
            known += [name for name in YAML_SCORE_KEYS if name not in known]
        raise CliError(f"no system in the inputs has a score called {args.score!r}; "
                       + (f"choose one they have: {', '.join(known)}" if known else "they record no score"))
    if args.score is None and all(s.score is None for s in collection.systems + collection.baselines):
        recorded = recorded_scores(collection)
        if recorded:
            score = recorded[0]
            collection = collect(args.inputs, year=args.year, score=score)
            others = f" (also recorded: {', '.join(recorded[1:])})" if recorded[1:] else ""
            collection.notes.append(
                f"no {DEFAULT_SCORE} in the inputs: using {score}, the score the reports record{others}; "
                "choose with --score"
            )
    return collection, score


def _trend(args: argparse.Namespace) -> int:
    from pytest_energy.organise.trend_render import RENDERERS, render_text
    from pytest_energy.organise.trend_statistics import compute

    collection, score = _collect(args)
    if not collection.systems:
        raise _no_usable_systems(collection)
    trend = compute(
        collection, population=args.population, score=score, method=args.quartiles,
        factor_limit=args.reliable_baseline,
    )
    if args.format == "table":
        sys.stdout.write(render_text(trend, _terminal_width()))
    else:
        sys.stdout.write(RENDERERS[args.format](trend))
    return 0


def _terminal_width() -> Optional[int]:
    """The terminal's width (``COLUMNS`` wins), or None when the output is not a terminal: a file keeps whole rows."""
    if os.environ.get("COLUMNS", "").isdigit() or sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def _plot(args: argparse.Namespace) -> int:
    from pytest_energy.organise.plot import PlotError, plot_trend

    collection, score = _collect(args)
    if not collection.systems and not collection.baselines:
        raise _no_usable_systems(collection)
    try:
        notes = plot_trend(
            collection, Path(args.output), kind=args.kind, score=score, energy=args.energy, baseline=args.baseline
        )
    except PlotError as error:
        raise CliError(f"{error}; nothing was written") from None
    for note in collection.notes + notes:
        print(note, file=sys.stderr)
    print(f"wrote {args.output}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from pytest_energy.organise.merge import MergeError, load_shard, merge
    from pytest_energy.store.files import write_atomically

    try:
        merged = merge([(path, load_shard(Path(path))) for path in args.reports], args.session_cap)
    except MergeError as error:
        raise CliError(str(error)) from None
    try:
        write_atomically(args.output, merged.document)
    except (OSError, ValueError) as error:
        raise CliError(f"cannot write {args.output}: {error}") from None
    tests, shards = len(merged.document["tests"]), len(merged.document["shards"])
    print(f"merged {shards} shard(s), {tests} test(s), {format_energy(merged.energy_j)} into {args.output}")
    for failure in merged.failures:
        print(f"pytest-energy merge: FAILED: {_one_line(failure)}", file=sys.stderr)
    return GATE_FAILED if merged.failures else 0


def _energy(text: str) -> float:
    try:
        return parse_energy(text)
    except QuantityError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _factor_limit(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1 (e.g. 3), got {text!r}")
    return value


def _add_inputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs", nargs="*", metavar="DIR_OR_FILE",
        help="pytest-energy JSON reports, organisers' CSV files, DCASE results YAML files, or directories of them",
    )
    parser.add_argument(
        "--dcase", action="append", choices=tuple(SHIPPED_EDITIONS), metavar="YEAR",
        help="add the DCASE task 4 results of YEAR (2022 or 2023), shipped with pytest-energy; may be repeated",
    )
    parser.add_argument("--year", type=int, help="edition year for rows and reports that do not state one")
    parser.add_argument(
        "--score", metavar="NAME",
        help="score to rank systems by: psds1, psds2, or any name given to record_score "
        "(default: psds1, else the score the JSON reports record)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pytest-energy", description="Energy reports for challenge participants and organisers."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    submission = commands.add_parser(
        "submission", help="print the energy and complexity block of a DCASE task 4 meta-information file"
    )
    submission.add_argument("report", help="a pytest-energy JSON report (e.g. energy.json)")
    submission.set_defaults(run=_submission)

    trend = commands.add_parser("trend", help="organisers' tables: quartiles, GPU share, best score under thresholds")
    _add_inputs(trend)
    trend.add_argument("--format", choices=("table", "md", "csv"), default="table", help="output format")
    trend.add_argument(
        "--population", choices=tuple(POPULATIONS), default="single",
        help="systems the threshold table ranks and takes its quartiles from "
        "(default: single, the non-ensemble systems, as Douwes & Serizel's Table VI)",
    )
    trend.add_argument(
        "--quartiles", choices=tuple(QUANTILE_METHODS), default="inclusive",
        help="statistics.quantiles method (default: inclusive, numpy.percentile's default)",
    )
    trend.add_argument(
        "--reliable-baseline", type=_factor_limit, metavar="K",
        help="leave out systems whose normalisation factor (normalised / raw training energy) is outside "
        "[1/K, K]: their baseline energy is not plausibly the baseline's (see docs/organisers.md)",
    )
    trend.set_defaults(run=_trend)

    plot = commands.add_parser("plot", help="PNG of score against training energy, or against EW score")
    _add_inputs(plot)
    plot.add_argument("-o", "--output", required=True, help="the figure to write; its suffix picks the format (.png, .svg, .pdf)")
    plot.add_argument(
        "--kind", choices=KINDS, default="energy-score",
        help="energy-score: score against training energy (the paper's Fig. 1); "
        "ew: energy-weighted score against score, with the baseline's quadrants (Fig. 2)",
    )
    plot.add_argument(
        "--energy", choices=("normalized", "raw"), default="normalized",
        help="training energy on the x axis (default: normalized)",
    )
    plot.add_argument("--baseline", help="system name whose energy and score draw the quadrant lines")
    plot.set_defaults(run=_plot)

    merge = commands.add_parser(
        "merge", help="combine the JSON reports of a suite split over several jobs into one, and gate it"
    )
    merge.add_argument("reports", nargs="+", metavar="REPORT", help="the shards' JSON reports (--energy-json)")
    merge.add_argument("-o", "--output", required=True, help="the merged JSON report to write")
    merge.add_argument(
        "--session-cap", type=_energy, metavar="ENERGY",
        help="cap on the energy of all shards together, e.g. 10kWh (default: the session cap the shards recorded)",
    )
    merge.set_defaults(run=_merge)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else USAGE_ERROR
    try:
        return int(args.run(args))
    except (CliError, InputError) as error:
        print(f"pytest-energy {args.command}: error: {_one_line(str(error))}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
