"""Figure 2: how often classic leave-one-out's target is among the k most recent distinct history
items, on the original data and after removing the most recent history interaction when it is a
lower-level behavior on the target item (processed). Rule-Based ranks the history by recency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from baselines.rule_based import RuleBased
from benchmark.cells import load_dataset
from benchmark.kinds.base import DATA_TOLERANCE, TableKind
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
