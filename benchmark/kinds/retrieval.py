"""The top-K tables (Tables 2 to 5, 7, 8 and Figures 3, 4): fit a row's model on the session-wise
training sessions, rank the whole catalogue for each test query of every evaluation the table asks for
(Table 7's test-time perturbations among them), and score the rankings."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmark.cells import RANKING_KS, evaluation_queries, fitted, load_dataset, rank, scores
from benchmark.document import Document
from benchmark.kinds.base import Grid, TableKind, evaluation_values
from benchmark.rows import metric_documents, metric_grid
from benchmark.store import Cell
from benchmark.tables import TableSpec
from protocols.splits import SessionSplit

PROTOCOL = "session-wise leave-one-out, full ranking"


class Retrieval(TableKind):
    name = "ranking"
    trains = True
    metric_rows = True
    shares_training = True

    def config(self, spec: TableSpec) -> dict[str, Any]:
        return {"ks": list(RANKING_KS), "protocol": PROTOCOL}

    def compute(self, spec: TableSpec, cell: Cell, timings: dict[str, float], artifacts: Path) -> dict[str, Any]:
        inter = load_dataset(cell.dataset)
        start = time.perf_counter()
        split = SessionSplit.from_interactions(inter)
        valid = split.queries("valid")
        tests = [evaluation_queries(split, evaluation, cell.seed) for evaluation in spec.evaluations]
        timings["split_s"] = time.perf_counter() - start
        name = split.interactions.schema.name
        for evaluation, (queries, _) in zip(spec.evaluations, tests, strict=True):
            if len(queries) == 0:
                raise ValueError(f"{cell.describe()}: no test query for {evaluation.key} on {name}")
        model = fitted(spec, cell, split.train, valid, timings)
        if rank() == 0:
            model.save_artifacts(artifacts)  # e.g. the item tokenizer, so the run can be reloaded and inspected
        evaluations = {}
        notes = [f"{name}: {split.filter_report}"]
        for evaluation, (queries, perturbed) in zip(spec.evaluations, tests, strict=True):
            start = time.perf_counter()
            ranked = model.recommend(queries, max(RANKING_KS))
            timings[f"recommend_s[{evaluation.key}]"] = time.perf_counter() - start
            evaluations[evaluation.key] = scores(split, queries, ranked)
            notes.append(
                f"{name}: {evaluation.key}: {len(queries)} test queries" + (f"; {perturbed}" if perturbed else "")
            )
        first = evaluations[spec.evaluations[0].key]
        return {
            "dataset_name": name,
            "metrics": first["metrics"],
            "queries": first["queries"],
            "evaluations": evaluations,
            "model": model.describe(),
            "filter": str(split.filter_report),
            "notes": notes,
        }

    def reference_values(self, result: dict[str, Any]) -> dict[str, float | int]:
        return evaluation_values(result, ("queries",))

    def documents(self, spec: TableSpec, cells: list[dict]) -> list[Document]:
        tasks = sorted({e.task.value for e in spec.evaluations})
        return metric_documents(spec, cells, f"Task: {', '.join(tasks)} item prediction; protocol: {PROTOCOL}")

    def grid(self, doc: Document, ci: bool = False, interval_columns: bool = False) -> Grid:
        return metric_grid(doc, ci, interval_columns)

    def plot(self, doc: Document, path: Path) -> list[Path]:
        if not doc.spec.is_figure:
            return []
        from benchmark.plots import plot_ranking_figure  # matplotlib, only when a plot is asked for

        return plot_ranking_figure(doc, path)

    def adopt(self, stored: dict[str, Any], config: dict[str, Any]) -> dict[str, Any] | None:
        """``stored`` restricted to the evaluations ``config`` asks for, when it ranked every one of them at
        the same cut-offs under the same protocol (Table 5's "GAMER + 4x aug." is Table 2's GAMER (SID))."""
        theirs = stored["provenance"]["config"]
        if any(theirs[key] != config[key] for key in ("ks", "protocol")):
            return None
        if not set(config["evaluations"]) <= set(theirs["evaluations"]):
            return None
        return evaluations_only(stored["result"], config["evaluations"])


def evaluations_only(result: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """A retrieval cell's result restricted to the evaluations ``keys`` (the first gives its headline
    metrics), its notes to theirs. Each evaluation ranks its own queries with the trained model and
    nothing else, so this is what a cell evaluating only ``keys`` computes."""
    name = result["dataset_name"]
    others = [key for key in result["evaluations"] if key not in keys]
    notes = [note for note in result["notes"] if not note.startswith(tuple(f"{name}: {key}: " for key in others))]
    first = result["evaluations"][keys[0]]
    evaluations = {key: result["evaluations"][key] for key in keys}
    return result | {
        "metrics": first["metrics"],
        "queries": first["queries"],
        "evaluations": evaluations,
        "notes": notes,
    }
