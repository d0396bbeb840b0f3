"""The DCASE task 4 results-page YAML files read into rows, as they are published.

One file is one edition; a file using YAML aliases is refused whole. Reading them needs
PyYAML, imported on first use.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Iterator, List, Optional

from pytest_energy.organise.input_rows import InputError, RawRow, ReportError, parse_edition, read_text
from pytest_energy.organise.systems import KWH_J, Collection, Rejection

# Score columns of the DCASE task 4 results-page YAML files, per score name, newest first.
# 2023 (submissions_task4a_entries.yaml) gives "value (CI low - CI high)" strings on the full
# evaluation set; 2022 (results_task4_entries.yaml) gives plain floats.
YAML_SCORE_KEYS = {
    "psds1": ("psds1_eval_full", "PSDS_1_all"),
    "psds2": ("psds2_eval_full", "PSDS_2_all"),
}


def yaml_rows(path: Path, score_name: str, collection: Collection) -> Iterator[RawRow]:
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
        yield RawRow(
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
