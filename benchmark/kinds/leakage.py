"""Figure 2: how often classic leave-one-out's target is among the k most recent distinct history
items, on the original data and after removing the most recent history interaction when it is a
lower-level behavior on the target item (processed). Rule-Based ranks the history by recency."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from baselines.rule_based import RuleBased
from benchmark.cells import load_dataset
from benchmark.document import Document
from benchmark.kinds.base import DATA_TOLERANCE, Grid, TableKind
from benchmark.rows import code_versions_line, fmt
from benchmark.store import Cell
from benchmark.tables import TableSpec
from protocols import metrics
from protocols.splits import classic_leave_one_out, processed_leave_one_out

LEAKAGE_KS = tuple(range(1, 11))


class Leakage(TableKind):
    name = "leakage"
    tolerance = DATA_TOLERANCE

    def compute(self, spec: TableSpec, cell: Cell, timings: dict[str, float], artifacts: Path) -> dict[str, Any]:
        inter = load_dataset(cell.dataset)
        original = classic_leave_one_out(inter)
        processed, removed = processed_leave_one_out(original, inter.schema.target_level)
        rows = []
        for variant, queries in (("original", original), ("processed", processed)):
            ranked = RuleBased().recommend(queries, max(LEAKAGE_KS))
            scores = metrics.evaluate(ranked, queries.positive_sets(), ks=LEAKAGE_KS)
            rows += [
                {"dataset": inter.schema.name, "variant": variant, "k": k, "ratio": scores[f"HR@{k}"]}
                for k in LEAKAGE_KS
            ]
        notes = [
            f"{inter.schema.name}: {len(original)} leave-one-out targets; the processed variant removed the "
            f"last history interaction of {removed} of them"
        ]
        return {"rows": rows, "targets": len(original), "processed_removed": removed, "notes": notes}

    def reference_values(self, result: dict[str, Any]) -> dict[str, float | int]:
        values = {f"{r['variant']} HR@{r['k']}": r["ratio"] for r in result["rows"]}
        return values | {"targets": result["targets"], "processed removed": result["processed_removed"]}

    def documents(self, spec: TableSpec, cells: list[dict]) -> list[Document]:
        if not cells:
            return []
        rows = [row for c in cells for row in c["result"]["rows"]]
        header = [
            "Classic leave-one-out on the whole dataset (no session filter); target = last target-behavior interaction"
        ]
        return [Document(spec, None, rows, header + code_versions_line(cells))]

    def grid(self, doc: Document, ci: bool = False, interval_columns: bool = False) -> Grid:
        headers = ["dataset", "variant"] + [f"k={k}" for k in sorted({r["k"] for r in doc.rows})]
        table: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
        for r in doc.rows:
            table[(r["dataset"], r["variant"])][r["k"]] = r["ratio"]
        body = [[d, v] + [fmt(ratios[k]) for k in sorted(ratios)] for (d, v), ratios in table.items()]
        return headers, body

    def plot(self, doc: Document, path: Path) -> list[Path]:
        from benchmark.plots import plot_leakage  # matplotlib, only when a plot is asked for

        return plot_leakage(doc, path)
