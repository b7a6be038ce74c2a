"""Table 6: what training a row costs (its size, seconds per epoch, epochs to its best validation and
in all, and the whole training time), fit on the session-wise training sessions, one cell at a time."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.cells import build_model, load_dataset
from benchmark.kinds.base import TableKind
from benchmark.store import Cell
from benchmark.tables import TableSpec
from protocols.splits import SessionSplit


@dataclass(frozen=True)
class TrainingCost:
    """Table 6's row of one trained model. Stored in a cell's ``result["row"]`` under the names of
    `STORED` (the table's columns, ``benchmark.tables.TRAINING_COST_COLUMNS``)."""

    parameters: int
    seconds_per_epoch: float
    epochs_to_best: int  # epochs are counted from 1 in the training log
    epochs_run: int
    training_s: float  # includes each epoch's validation

    STORED = {
        "parameters": "parameters",
        "seconds_per_epoch": "seconds per epoch",
        "epochs_to_best": "epochs to best",
        "epochs_run": "epochs run",
        "training_s": "training s",
    }

    @classmethod
    def of(cls, info: dict[str, Any]) -> TrainingCost:
        """The row of a trained model from what it describes of itself (`describe()`)."""
        training = info["training"]
        return cls(
            parameters=info["parameters"],
            seconds_per_epoch=training["seconds"] / max(training["epochs_run"], 1),
            epochs_to_best=training["best_epoch"],
            epochs_run=training["epochs_run"],
            training_s=training["seconds"],
        )

    @classmethod
    def stored(cls, row: dict[str, Any]) -> TrainingCost:
        return cls(**{field: row[name] for field, name in cls.STORED.items()})

    def as_stored(self) -> dict[str, Any]:
        return {name: getattr(self, field) for field, name in self.STORED.items()}


# A rerun reproduces the model's size and where its training stopped; its timings change on every run.
REPRODUCED = ("parameters", "epochs_to_best", "epochs_run")


class TrainingCostKind(TableKind):
    name = "training-cost"

    def compute(self, spec: TableSpec, cell: Cell, timings: dict[str, float], artifacts: Path) -> dict[str, Any]:
        split = SessionSplit.from_interactions(load_dataset(cell.dataset))
        model = build_model(spec, cell)
        start = time.perf_counter()
        model.fit(split.train, split.queries("valid"))
        timings["fit_s"] = time.perf_counter() - start
        info = model.describe()
        name = split.interactions.schema.name
        row = TrainingCost.of(info).as_stored()
        return {"dataset_name": name, "row": row, "model": info, "notes": [f"{name}: {split.filter_report}"]}

    def reference_values(self, result: dict[str, Any]) -> dict[str, float | int]:
        cost = TrainingCost.stored(result["row"])
        return {TrainingCost.STORED[field]: getattr(cost, field) for field in REPRODUCED}
