"""Tables 1 and 9: each dataset's size after the session-wise filter (users with fewer than three
sessions removed), beside the paper's datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark.cells import load_dataset
from benchmark.document import Document
from benchmark.kinds.base import DATA_TOLERANCE, Grid, TableKind
from benchmark.rows import code_versions_line, data_grid, dataset_name
from benchmark.store import Cell
from benchmark.tables import TableSpec
from protocols.splits import SessionSplit


class DataStatistics(TableKind):
    name = "dataset-stats"
    tolerance = DATA_TOLERANCE

    def compute(self, spec: TableSpec, cell: Cell, timings: dict[str, float], artifacts: Path) -> dict[str, Any]:
        split = SessionSplit.from_interactions(load_dataset(cell.dataset))
        report = split.filter_report
        return {
            "row": {"dataset": split.interactions.schema.name} | split.interactions.summary(),
            "filter": {
                "reason": report.reason,
                "users_removed": report.users_removed,
                "interactions_removed": report.interactions_removed,
            },
            "session_rule": split.interactions.schema.session_rule.describe(),
            "notes": [f"{split.interactions.schema.name}: {report}"],
        }

    def reference_values(self, result: dict[str, Any]) -> dict[str, float | int]:
        filtered = {f"filter {k}": v for k, v in result["filter"].items() if k != "reason"}
        return {k: v for k, v in result["row"].items() if k != "dataset"} | filtered

    def documents(self, spec: TableSpec, cells: list[dict]) -> list[Document]:
        if not cells:
            return []
        rows = [
            c["result"]["row"]
            | {"dataset": dataset_name(c), "users removed (< 3 sessions)": c["result"]["filter"]["users_removed"]}
            for c in cells
        ]
        header = ["Users with fewer than three sessions removed; items = distinct items interacted after the filter"]
        return [Document(spec, None, rows, header + code_versions_line(cells))]

    def grid(self, doc: Document, ci: bool = False, interval_columns: bool = False) -> Grid:
        return data_grid(doc)
