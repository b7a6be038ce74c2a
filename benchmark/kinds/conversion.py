"""Table 10 (Appendix D): fit a conversion model on the conversion log's training sessions, select on
validation AUROC, and score each test query's exposed candidates (`protocols.conversion`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.cells import fitted, load_dataset, rank
from benchmark.document import Document
from benchmark.kinds.base import Grid, TableKind, evaluation_values
from benchmark.rows import metric_documents, metric_grid
from benchmark.store import Cell
from benchmark.tables import TableSpec
from protocols import metrics
from protocols.conversion import PROTOCOL, check_conversion_log, conversion_queries
from protocols.splits import SessionSplit

# What a rerun reproduces besides the AUROC: how many queries, candidates and conversions it scored.
COUNTS = ("queries", "candidates", "conversions")


class Conversion(TableKind):
    name = "conversion"
    trains = True
    metric_rows = True

    def config(self, spec: TableSpec) -> dict[str, Any]:
        return {"protocol": PROTOCOL}

    def compute(self, spec: TableSpec, cell: Cell, timings: dict[str, float], artifacts: Path) -> dict[str, Any]:
        start = time.perf_counter()
        split = SessionSplit.from_interactions(load_dataset(cell.dataset))
        check_conversion_log(split.interactions)
        valid, test = conversion_queries(split, "valid"), conversion_queries(split, "test")
        timings["split_s"] = time.perf_counter() - start
        name = split.interactions.schema.name
        model = fitted(spec, cell, split.train, valid, timings)
        if rank() == 0:
            model.save_artifacts(artifacts)
        start = time.perf_counter()
        scores = model.score(test)
        timings["score_s"] = time.perf_counter() - start
        if scores.shape != test.labels.shape or not np.isfinite(scores).all():
            raise ValueError(f"{cell.describe()}: score() must give one finite probability per test candidate")
        summary = test.summary()
        result = {
            "metrics": {"AUROC": metrics.auroc(scores, test.labels)},
            "queries": len(test),
            "candidates": summary["candidates"],
            "conversions": summary["conversions"],
            "candidates_per_s": summary["candidates"] / max(timings["score_s"], 1e-9),
        }
        unexposed = test.unexposed_conversions
        notes = [
            f"{name}: {split.filter_report}",
            f"{name}: {len(test)} test queries, {summary['candidates']} candidates, {summary['conversions']} converted"
            + (f"; {unexposed} conversions on unexposed items have no candidate" if unexposed else ""),
        ]
        return {
            "dataset_name": name,
            "metrics": result["metrics"],
            "queries": len(test),
            "evaluations": {spec.evaluations[0].key: result},
            "model": model.describe(),
            "filter": str(split.filter_report),
            "notes": notes,
        }

    def reference_values(self, result: dict[str, Any]) -> dict[str, float | int]:
        return evaluation_values(result, COUNTS)

    def documents(self, spec: TableSpec, cells: list[dict]) -> list[Document]:
        return metric_documents(spec, cells, f"Task: conversion prediction (Appendix D); protocol: {PROTOCOL}")

    def grid(self, doc: Document, ci: bool = False, interval_columns: bool = False) -> Grid:
        return metric_grid(doc, ci, interval_columns)
