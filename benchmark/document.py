"""What a report is made of, between building it (`benchmark.report`: grouping, marks, the paper's
numbers) and writing it out (`benchmark.render`: Markdown, LaTeX, CSV, JSON): one table at one
profile as a `Document`, and our values with their marks as `Marked`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from benchmark.tables import TableSpec

SIGNIFICANCE = {"better": "▲", "worse": "▼"}


@dataclass
class Document:
    """One rendered unit: a table spec, a profile, our rows and the paper's rows."""

    spec: TableSpec
    profile: str | None
    rows: list[dict[str, Any]]
    header: list[str] = field(default_factory=list)

    @property
    def stem(self) -> str:
        """``table-2-cpu``, ``figure-2``: the document's file name without its suffix."""
        return self.spec.id + (f"-{self.profile}" if self.profile else "")

    def as_json(self) -> dict[str, Any]:
        paper = [{k: v for k, v in row.items() if k != "model"} for row in self.spec.paper]
        return {
            "id": self.spec.id,
            "title": self.spec.title,
            "profile": self.profile,
            "rows": self.rows,
            "paper": paper,
        }


class Marked(str):
    """One of our values with its marks. It is the plain value as a ``str``, so whatever ignores the
    marks (CSV cells, ``tabulate``) prints the number; the Markdown and LaTeX renderers draw them."""

    bold: bool
    underline: bool
    verdict: str  # against the column's best baseline: "better", "worse", "n.s." or "" (not tested)

    def __new__(cls, text: str, bold: bool = False, underline: bool = False, verdict: str = "") -> Marked:
        cell = super().__new__(cls, text)
        cell.bold, cell.underline, cell.verdict = bold, underline, verdict
        return cell

    @property
    def words(self) -> list[str]:
        """The marks as CSV words: ``bold``, ``underline``, ``better``, ``worse``."""
        flags = [("bold", self.bold), ("underline", self.underline)]
        return [word for word, on in flags if on] + ([self.verdict] if self.verdict in SIGNIFICANCE else [])
