"""Table 11: the paper's online A/B test. Nothing can run offline: the table shows the paper's numbers
and says why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark.document import Document
from benchmark.kinds.base import Grid, TableKind
from benchmark.rows import data_grid
from benchmark.store import Cell
from benchmark.tables import TableSpec


class Online(TableKind):
    name = "online"
    runs = False

    def compute(self, spec: TableSpec, cell: Cell, timings: dict[str, float], artifacts: Path) -> dict[str, Any]:
        raise ValueError(f"{spec.id}: {spec.note}")

    def reference_values(self, result: dict[str, Any]) -> dict[str, float | int]:
        raise ValueError("an online table stores no cells")

    def documents(self, spec: TableSpec, cells: list[dict]) -> list[Document]:
        return [Document(spec, None, [], [spec.note])]

    def grid(self, doc: Document, ci: bool = False, interval_columns: bool = False) -> Grid:
        return data_grid(doc)
