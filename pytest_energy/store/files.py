"""The one atomic JSON writer: the report, stored runs and the baseline cache are written through it.

Every write replaces the file in one step (a temporary file beside the target, then a
rename), through symlinks, and refuses a target that is not a regular file.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, Mapping


class NotARegularFileError(OSError):
    """A report or cache path that exists and is a directory, device, fifo or socket."""


def regular_file_target(path: str | os.PathLike) -> Path:
    """Where writing ``path`` lands: the final target of a symlink chain, which must be a regular file or absent."""
    target = Path(os.path.realpath(path))
    try:
        mode = target.stat().st_mode
    except OSError:  # absent, or unreachable: writing it will say why
        return target
    if not stat.S_ISREG(mode):
        kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                 (stat.S_ISFIFO, "a fifo"), (stat.S_ISSOCK, "a socket"))
        kind = next((name for test, name in kinds if test(mode)), "not a file")
        shown = f"{path} (-> {target})" if str(target) != os.path.abspath(path) else str(path)
        raise NotARegularFileError(f"{shown} is {kind}, not a regular file")
    return target


def write_text_atomically(path: str | os.PathLike, text: str, durable: bool = False) -> None:
    """Replace the file at ``path`` (through symlinks) with ``text`` in one step, with an ordinary file's mode.

    Raises NotARegularFileError if it is not a file, OSError if the directory is
    unwritable. ``durable`` also flushes the file to disk before the rename.
    """
    target = regular_file_target(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.parent / f".{target.name}.{os.urandom(6).hex()}.tmp"
    # created 0666 less the umask, like any file the user writes (mkstemp would make it private)
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            if durable:
                stream.flush()
                os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def write_atomically(path: str | os.PathLike, document: Mapping[str, Any]) -> None:
    """Replace ``path`` with ``document`` as indented JSON in one step (see ``write_text_atomically``)."""
    write_text_atomically(path, json.dumps(document, indent=2, allow_nan=False) + "\n")
