"""One table, rendered as aligned text for a terminal or as a Markdown table.

The energy summary, the organisers' trend tables and the GitHub job summary all build a
``Table`` of already formatted cells (units are chosen by the caller, through
``units.py``). ``render_text(width)`` fits a terminal: when the table is wider, it
gives repeated long values of a ``legend`` column short keys explained below the
table, then shortens headers, leaves out ``optional`` columns without a figure,
cuts a ``shortenable`` column's cells from the left (a test id keeps its end: the
test's name), and last leaves out the other ``optional`` columns, least needed
first. A line below the table names the columns left out.
"""

from __future__ import annotations

import dataclasses
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
    ``code``: a Markdown code span (test ids), else escaped Markdown text.
    """

    header: str
    short: Optional[str] = None
    optional: Optional[int] = None
    legend: bool = False
    shortenable: bool = False
    numeric: bool = False
    code: bool = False


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
        leave_out([column for column in columns if column.optional is not None])
        widths = [max(len(cell) for cell in cells) for cells in zip(headers, *rows)]

        def line(cells: Sequence[str]) -> str:
            return GAP.join(cell.rjust(size) if column.numeric else cell.ljust(size)
                            for cell, size, column in zip(cells, widths, columns)).rstrip()

        lines = [printable(self.title)] if self.title else []
        lines += [line(headers), GAP.join("-" * size for size in widths), *(line(row) for row in rows)]
        lines += legend
        if left_out:
            lines.append(f"(left out to fit {width} columns: {', '.join(left_out)})")
        return lines

    def render_markdown(self) -> List[str]:
        """A Markdown table (title as a heading); every cell escaped, test ids as code spans."""
        lines = [f"### {md_text(self.title)}", ""] if self.title else []
        lines.append("| " + " | ".join(md_text(column.header) for column in self.columns) + " |")
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        for row in self.rows:
            cells = (md_code(str(cell)) if column.code else md_text(str(cell)) for cell, column in zip(row, self.columns))
            lines.append("| " + " | ".join(cells) + " |")
        return lines


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
