"""Small tables laid out side by side, in time linear in their cells.

``inspect`` shows one table per namespace, as many across as the terminal
holds. rich's ``Columns`` of ``Table`` measures and renders every table many
times over (about 20 ms a table, 55 s for a lab of 500 nodes); these plain
tables are measured once, as text, and come out looking the same: a title,
a bold header, columns two spaces apart.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text

GAP = "  "
"""Between two columns of a table."""
PADDING = 4
"""Between two tables side by side."""


class Panel:
    """A table of text cells, with a title unless it is empty."""

    def __init__(self, title: str, *columns: str) -> None:
        self.title = title
        self.columns = columns
        self.rows: list[tuple[str, ...]] = []

    def add_row(self, *cells: str) -> None:
        self.rows.append(cells)

    def lines(self) -> list[tuple[str, str]]:
        """The panel's lines (style, text), each as wide as the panel."""
        widths = [cell_len(c) for c in self.columns]
        for row in self.rows:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], cell_len(cell))

        def line(cells: tuple[str, ...]) -> str:
            return GAP.join(c + " " * (w - cell_len(c)) for c, w in zip(cells, widths, strict=True))

        body = [("bold", line(self.columns)), *(("", line(r)) for r in self.rows)]
        width = max(cell_len(self.title), cell_len(body[0][1]))
        out = [("bold cyan", self.title), *body] if self.title else body
        return [(style, text + " " * (width - cell_len(text))) for style, text in out]


def side_by_side(panels: list[Panel], width: int) -> Text:
    """The panels in rows, as many to a row as fit in ``width`` columns (at least one)."""
    rendered = [p.lines() for p in panels]
    widths = [cell_len(lines[0][1]) for lines in rendered]
    across = _across(widths, width)
    text = Text(no_wrap=True, overflow="ignore", end="")
    columns = [max(widths[i::across]) for i in range(across)]
    for start in range(0, len(rendered), across):
        group = rendered[start : start + across]
        for n in range(max(len(lines) for lines in group)):
            for col, lines in enumerate(group):
                if col:
                    text.append(" " * PADDING)
                style, line = lines[n] if n < len(lines) else ("", "")
                text.append(line, style or None)
                text.append(" " * (columns[col] - cell_len(line)))
            text.append("\n")
    return text


def _across(widths: list[int], width: int) -> int:
    """The most panels to a row whose columns (each as wide as its widest panel) fit in ``width``."""
    fits, total = 0, -PADDING
    for w in sorted(widths):  # no more than the narrowest ones could fit
        total += w + PADDING
        if total > width:
            break
        fits += 1
    for across in range(max(fits, 1), 1, -1):
        if sum(max(widths[i::across]) for i in range(across)) + PADDING * (across - 1) <= width:
            return across
    return 1
