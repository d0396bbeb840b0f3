"""One table, rendered as aligned text for a terminal or as a Markdown table.

The energy summary, the organisers' trend tables and the GitHub job summary all build a
``Table`` of already formatted cells (units are chosen by the caller, through
``units.py``). ``render_text(width)`` fits a terminal: when the table is wider, it
gives repeated long values of a ``legend`` column short keys explained below the
table, then shortens headers, leaves out ``optional`` columns without a figure,
cuts a ``shortenable`` column's cells from the left (a test id keeps its end: the
test's name), and last leaves out the other ``optional`` columns, least needed
first. A line below the table names the columns left out. A table too wide even
without them keeps them and is wrapped: its ``key`` columns (else its first) are repeated
beside as many of the other columns as fit, part after part; where not even one
other column fits beside them, each row is stacked as ``header value`` pairs.
No line is wider than ``width``: a longer one is cut, marked with an ellipsis.
"""

from __future__ import annotations

import dataclasses
import textwrap
from typing import Dict, List, Optional, Sequence

from .escape import md_code, md_text, printable

ELLIPSIS = "…"
GAP = "  "
MIN_SHORTENED = 24  # a shortened cell keeps at least this many characters
LEGEND_MIN = 12  # shorter values stay in the table
BLANK_CELLS = ("", "-", "unmeasured")  # an optional column with only these goes first


@dataclasses.dataclass(frozen=True)
class Column:
    """One column: its header and how it may give way on a narrow terminal.

    ``short``: the header when headers are shortened. ``optional``: the column may be
    left out; the lowest number goes first. ``legend``: long values become keys such as
    ``[1]``. ``shortenable``: cells may be cut from the left. ``numeric``: right-aligned.
    ``code``: a Markdown code span (test ids), else escaped Markdown text. ``key``: repeated
    in each part of a wrapped table (it names the row).
    """

    header: str
    short: Optional[str] = None
    optional: Optional[int] = None
    legend: bool = False
    shortenable: bool = False
    numeric: bool = False
    code: bool = False
    key: bool = False


@dataclasses.dataclass(frozen=True)
class Table:
    columns: Sequence[Column]
    rows: Sequence[Sequence[str]]
    title: str = ""

    def render_text(self, width: Optional[int] = None) -> List[str]:
        """Aligned lines (title, headers, rule, rows, then any legend), fitted to ``width`` when given.

        Cells are made printable (a terminal would obey control characters).
        """
        columns = list(self.columns)
        rows = [[printable(str(cell)) for cell in row] for row in self.rows]
        headers = [printable(column.header) for column in columns]
        legend: List[str] = []
        left_out: List[str] = []

        def fits() -> bool:
            return width is None or _width(headers, rows) <= width

        if not fits():
            for index, column in enumerate(columns):
                if column.legend:
                    legend += _keyed(rows, index, headers[index])
        if not fits():
            headers = [printable(column.short or column.header) for column in columns]

        def leave_out(candidates: Sequence[Column]) -> None:
            for column in sorted(candidates, key=lambda c: c.optional):  # type: ignore[arg-type, return-value]
                if fits():
                    return
                index = columns.index(column)
                left_out.append(column.header)
                del columns[index], headers[index]
                for row in rows:
                    del row[index]

        leave_out([column for index, column in enumerate(columns)
                   if column.optional is not None and all(row[index] in BLANK_CELLS for row in rows)])
        if not fits():
            _shorten(columns, headers, rows, width)  # type: ignore[arg-type]
        kept = [index for index, column in enumerate(columns) if column.optional is None]
        if fits() or _width([headers[i] for i in kept], [[row[i] for i in kept] for row in rows]) <= width:  # type: ignore[operator]
            leave_out([column for column in columns if column.optional is not None])  # one table, less wide
        notes = legend + ([f"(left out to fit {width} columns: {', '.join(left_out)})"] if left_out else [])
        if width is None:
            return ([printable(self.title)] if self.title else []) + _aligned(columns, headers, rows) + notes
        if fits():
            return _wrap_lines([printable(self.title)] if self.title else [], width) + _aligned(columns, headers, rows) \
                + _wrap_lines(notes, width)
        return _wrapped(printable(self.title), columns, headers, rows, notes, width)  # type: ignore[arg-type]

    def render_markdown(self) -> List[str]:
        """A Markdown table (title as a heading); every cell escaped, test ids as code spans."""
        lines = [f"### {md_text(self.title)}", ""] if self.title else []
        lines.append("| " + " | ".join(md_text(column.header) for column in self.columns) + " |")
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        for row in self.rows:
            cells = (md_code(str(cell)) if column.code else md_text(str(cell)) for cell, column in zip(row, self.columns))
            lines.append("| " + " | ".join(cells) + " |")
        return lines


def _aligned(columns: Sequence[Column], headers: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
    """Headers, a rule and the rows, each column as wide as its widest cell."""
    widths = [max(len(cell) for cell in cells) for cells in zip(headers, *rows)]

    def line(cells: Sequence[str]) -> str:
        return GAP.join(cell.rjust(size) if column.numeric else cell.ljust(size)
                        for cell, size, column in zip(cells, widths, columns)).rstrip()

    return [line(headers), GAP.join("-" * size for size in widths), *(line(row) for row in rows)]


def _wrapped(title: str, columns: Sequence[Column], headers: Sequence[str], rows: Sequence[Sequence[str]],
             notes: Sequence[str], width: int) -> List[str]:
    """The table in parts that repeat its key columns, or stacked row by row; no line wider than ``width``."""
    keys = [index for index, column in enumerate(columns) if column.key] or [0]
    others = [index for index in range(len(columns)) if index not in keys]

    def part_width(indices: Sequence[int]) -> int:
        return _width([headers[i] for i in indices], [[row[i] for i in indices] for row in rows])

    parts: List[List[int]] = []
    for index in others:
        if parts and part_width(keys + parts[-1] + [index]) <= width:
            parts[-1].append(index)
        else:
            parts.append([index])
    lines = textwrap.wrap(title, width) if title else []
    if parts and part_width(keys) <= width // 2 and all(part_width(keys + part) <= width for part in parts):
        for number, part in enumerate(parts):
            chosen = keys + part
            if number:
                lines.append("")
            lines += _aligned([columns[i] for i in chosen], [headers[i] for i in chosen], [[row[i] for i in chosen] for row in rows])
    else:
        for row in rows:
            named = GAP.join(row[i] for i in keys)
            lines.append(ELLIPSIS + named[-(width - 1):] if len(named) > width and columns[keys[0]].shortenable
                         else _cut(named, width))
            pairs = [f"{headers[i]} {row[i]}" for i in others]
            lines += [_cut(line, width) for line in textwrap.wrap(" · ".join(pairs), width, initial_indent="  ",
                                                                  subsequent_indent="  ", break_on_hyphens=False)]
    return lines + _wrap_lines(notes, width)


def _wrap_lines(lines: Sequence[str], width: int) -> List[str]:
    """Each line wrapped to ``width``, its continuation indented two more spaces."""
    wrapped: List[str] = []
    for line in lines:
        indent = " " * (len(line) - len(line.lstrip(" ")) + 2)
        wrapped += textwrap.wrap(line, width, subsequent_indent=indent, break_on_hyphens=False) or [""]
    return wrapped


def _cut(line: str, width: int) -> str:
    """``line``, or its start and an ellipsis when it is wider than ``width``."""
    return line if len(line) <= width else line[: max(width - 1, 0)] + ELLIPSIS


def _width(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> int:
    widths = [max(len(cell) for cell in cells) for cells in zip(headers, *rows)]
    return sum(widths) + len(GAP) * (len(widths) - 1)


def _keyed(rows: List[List[str]], index: int, header: str) -> List[str]:
    """Replace the values of column ``index`` of ``LEGEND_MIN`` characters or more by keys ``[n]``; the legend lines."""
    keys: Dict[str, str] = {}
    for row in rows:
        value = row[index]
        if value not in keys and len(value) >= LEGEND_MIN:
            keys[value] = f"[{len(keys) + 1}]"
        row[index] = keys.get(value, value)
    return [f"{header} {key}: {value}" for value, key in keys.items()]


def _shorten(columns: Sequence[Column], headers: Sequence[str], rows: List[List[str]], width: int) -> None:
    """Cut the cells of the shortenable columns from the left, to no fewer than ``MIN_SHORTENED`` characters;
    a cell keeps its part after its last ``::`` (a test id keeps the test's name)."""
    for index, column in enumerate(columns):
        excess = _width(headers, rows) - width
        if not column.shortenable or excess <= 0:
            continue
        widest = max(len(row[index]) for row in rows) if rows else 0
        keep = max(MIN_SHORTENED, len(headers[index]), widest - excess)
        for row in rows:
            cell = row[index]
            if len(cell) > keep:
                name = cell.rsplit("::", 1)[-1]
                row[index] = ELLIPSIS + cell[-max(keep - 1, len(name) + 2):]
