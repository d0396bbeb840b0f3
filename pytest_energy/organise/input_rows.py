"""What every organisers' input shares: its text read within a size limit, a row as the input
gives it (``RawRow``), and its cells read into values.

Every input is read whole, up to ``MAX_INPUT_BYTES``. A cell that cannot be read raises
ValueError; the readers count it as a field issue and keep the row.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from pytest_energy.organise.dcase_data import parse_count
from pytest_energy.store.files import NotARegularFileError, TooLargeError, read_bytes_bounded

UNSTATED = object()  # a source that has no ensemble field at all
# Inputs are read whole; a larger file is refused (DCASE results files are about 1.4 MB,
# a report of 5000 tests a few MB).
MAX_INPUT_BYTES = 64 * 2**20


class InputError(Exception):
    """An input that cannot be read at all; the message says which and why."""


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


@dataclass
class RawRow:
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


_LEADING_COUNT = re.compile(r"^\s*(\d+)\b")
_YEAR = re.compile(r"(?<!\d)((?:19|20)\d\d)(?!\d)")
TRUE_WORDS = {"true", "yes", "y", "ensemble"}
_FALSE = {"false", "no", "n", "single", "none", "null", "-"}


def blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def parse_number(value: Any) -> Optional[float]:
    """A finite, non-negative plain number or numeric string; raises ValueError if unreadable."""
    if blank(value):
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
    if count is None and not blank(value):
        raise ValueError(value)
    return count


def parse_ensemble(value: Any) -> bool:
    """Whether a system is an ensemble, from a subsystem count, a flag or ``"10 (5 SEDT, ...)"``.

    None, false, 0 and 1 mean a single system; a count of 2 or more an ensemble.
    Raises ValueError if unreadable.
    """
    if blank(value) or value is False:
        return False
    if value is True:
        return True
    if isinstance(value, (int, float)):
        return value >= 2
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in _FALSE:
        return False
    match = _LEADING_COUNT.match(text)
    if match:
        return int(match.group(1)) >= 2
    raise ValueError(value)


def parse_edition(value: Any) -> Optional[str]:
    """An edition label: the year in ``2023``, ``"dcase2023"`` or ``"DCASE2023_Turpault"``, else the text."""
    if blank(value) or isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (int, float)):
        return str(int(value))
    text = str(value).strip()
    match = _YEAR.search(text)
    return match.group(1) if match else text
