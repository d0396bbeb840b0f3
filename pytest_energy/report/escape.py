"""Escaping per output format, for text that comes from users' files and test suites.

Names, node ids, score names and file names reach terminals, Markdown (trend tables,
the GitHub job summary) and CSV files opened in spreadsheets; each helper makes such
text literal in one format.
"""

from __future__ import annotations

import re
from typing import Any, Optional


def printable(text: str, breaks: Optional[str] = None) -> str:
    """``text`` on one line with no control characters (a terminal would obey them), as Python escapes them.

    ``breaks``: what a line break (``\\n``, ``\\r``) becomes instead of its escape.
    """
    return "".join(
        char if char.isprintable() else breaks if breaks is not None and char in "\r\n" else repr(char)[1:-1]
        for char in text
    )


_MD_ESCAPES = str.maketrans({"&": "&amp;", ">": "&gt;", "|": "\\|", "\\": "\\\\", "[": "\\[", "]": "\\]"})
_MD_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


def md_text(text: str) -> str:
    """``text`` as literal Markdown text, safe in a table cell or a list item.

    Line breaks become spaces; ``&``, ``>`` and a ``<`` that could open a tag or an
    autolink become entities (no raw HTML; ``size < P25`` stays readable); ``|`` (a
    cell border), ``\\`` (which would escape it), ``[`` and ``]`` (links, images) are
    backslash-escaped.
    """
    return _MD_TAG_START.sub("&lt;", printable(text, breaks=" ").translate(_MD_ESCAPES))


def md_code(text: str) -> str:
    """``text`` as a Markdown code span, safe in a table cell.

    The fence is one backtick longer than the longest run of backticks inside; ``|``
    is escaped (GitHub's tables split cells before reading code spans); HTML in a
    code span is shown as written.
    """
    flat = printable(text, breaks=" ").replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall("`+", flat)), default=0) + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A value for a CSV cell; text a spreadsheet would run as a formula gets a leading ``'``.

    OWASP's CSV injection rule: text starting with ``=``, ``+``, ``-``, ``@``, tab or
    carriage return. Numbers are written as numbers, negative ones included.
    """
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value
