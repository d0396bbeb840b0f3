"""The JSON report: one versioned document, written atomically after every test.

A crash or kill between tests leaves the last complete document on disk, never a
half-written one (write to a temporary file in the same directory, then rename).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional

from ..record import Record

SCHEMA = "pytest-energy/1"
SCHEMA_FILE = Path(__file__).resolve().parent.parent / "report-schema.json"


def phase_totals(records: Iterable[Record]) -> Dict[str, Dict[str, Any]]:
    """Energy per phase, summed over its measured tests, with the GPU part."""
    totals: Dict[str, Dict[str, Any]] = {}
    for record in records:
        entry = totals.setdefault(record.phase, {"tests": 0, "measured": 0, "energy_j": None, "gpu_energy_j": None})
        entry["tests"] += 1
        if record.energy_j is None:
            continue
        entry["measured"] += 1
        entry["energy_j"] = (entry["energy_j"] or 0.0) + record.energy_j
        gpu = record.component_j("gpu")
        if gpu is not None:
            entry["gpu_energy_j"] = (entry["gpu_energy_j"] or 0.0) + gpu
    return totals


def build_document(
    records: Iterable[Record],
    environment: Mapping[str, Any],
    metadata: Mapping[str, Any],
    session: Mapping[str, Any],
    extra: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    records = list(records)
    return {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "plugin_version": environment.get("plugin"),
        "metadata": dict(metadata),
        "environment": dict(environment),
        "session": dict(session),
        "tests": [record.to_json() for record in records],
        "totals": phase_totals(records),
        **(extra or {}),
    }


def write_atomically(path: str | os.PathLike, document: Mapping[str, Any]) -> None:
    """Replace ``path`` with ``document`` in one step; raises OSError if the directory is unwritable."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it private; a report is an ordinary file
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(document, stream, indent=2, allow_nan=False)
            stream.write("\n")
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_schema() -> Dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
