"""Table 6: what training a row costs (its size, seconds per epoch, epochs to its best validation and
in all, and the whole training time), fit on the session-wise training sessions, one cell at a time."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.cells import fitted, load_dataset
from benchmark.document import Document
from benchmark.kinds.base import Grid, TableKind
from benchmark.rows import (
    DELTA,
    NOT_RUN,
    code_versions_line,
    dataset_name,
    label,
    paper_value_key,
    relative_text,
    stopped_by,
    trained_elsewhere_line,
    training_legend,
    vs_paper,
)
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
    trains = True
    shares_training = True
    one_at_a_time = True

    def compute(self, spec: TableSpec, cell: Cell, timings: dict[str, float], artifacts: Path) -> dict[str, Any]:
        split = SessionSplit.from_interactions(load_dataset(cell.dataset))
        info = fitted(spec, cell, split.train, split.queries("valid"), timings).describe()
        name = split.interactions.schema.name
        row = TrainingCost.of(info).as_stored()
        return {"dataset_name": name, "row": row, "model": info, "notes": [f"{name}: {split.filter_report}"]}

    def adopt(self, stored: dict[str, Any], config: dict[str, Any]) -> dict[str, Any] | None:
        """The training record of a retrieval cell that trained this row's model alike: Table 6 is then
        not trained again (its timings are that cell's, which also ran alone or say otherwise)."""
        found = stored["result"]
        result = {"dataset_name": found["dataset_name"], "row": TrainingCost.of(found["model"]).as_stored()}
        return result | {"model": found["model"], "notes": found["notes"][:1]}  # the filter's note

    def reference_values(self, result: dict[str, Any]) -> dict[str, float | int]:
        cost = TrainingCost.stored(result["row"])
        return {TrainingCost.STORED[field]: getattr(cost, field) for field in REPRODUCED}

    def documents(self, spec: TableSpec, cells: list[dict]) -> list[Document]:
        """Per profile: each row's size and training cost, and the MBGen / GAMER time ratio."""
        by_profile: dict[str, list[dict]] = defaultdict(list)
        for cell in cells:
            by_profile[cell["cell"]["profile"]].append(cell)
        documents = []
        for profile, group in sorted(by_profile.items()):
            found = {(c["cell"]["model"], c["cell"].get("variant", "")): c for c in group}
            rows, datasets = [], []
            for row in spec.rows:
                entry = {"model": row.model, "variant": row.variant, "label": row.label}
                cell = found.get((row.model, row.variant))
                if cell is None:
                    rows.append(entry | {c: NOT_RUN for c in spec.columns})
                    continue
                dataset = dataset_name(cell)
                datasets += [dataset] if dataset not in datasets else []
                entry |= {"dataset": dataset} | cell["result"]["row"] | stopped_by([cell])
                rows.append(entry | vs_paper(spec, entry, {"parameters": "parameters", "epochs": "epochs to best"}))
            header = [
                f"Datasets: {', '.join(datasets) or '-'} (paper: {spec.paper_dataset})",
                f"Profile: {profile}; cells run one at a time on one machine; training s includes each epoch's "
                "validation",
                training_time_ratio(rows),
            ] + training_legend(profile, rows)
            header += trained_elsewhere_line(group) + code_versions_line(group)
            if any("vs_paper" in row for row in rows):
                header.append("Δ vs paper = (ours - paper) / paper, for #Parameters and epochs to best")
            documents.append(Document(spec, profile, rows, header))
        return documents

    def grid(self, doc: Document, ci: bool = False, interval_columns: bool = False) -> Grid:
        headers = ["Model", "Source", "#Parameters", "s / epoch", "epochs to best", "epochs run", "training time"]
        paper = {paper_value_key(p): p for p in doc.spec.paper}
        body = []
        for row in doc.rows:
            if row.get("parameters") == NOT_RUN:
                body.append([row["label"], "ours"] + [NOT_RUN] * 5)
            else:
                cost = TrainingCost.stored(row)
                body.append(
                    [label(doc, row), f"ours ({row['dataset']})", f"{cost.parameters / 1e6:.2f}M"]
                    + [f"{cost.seconds_per_epoch:.1f} s", str(cost.epochs_to_best), str(cost.epochs_run)]
                    + [f"{cost.training_s:.0f} s"]
                )
            published = paper.get(paper_value_key(row))
            if published is not None:
                body.append(
                    ["", f"paper ({doc.spec.paper_dataset})", f"{published['parameters'] / 1e6:.2f}M", "-"]
                    + [str(published["epochs"]), "-", f"~{published['hours']} h"]
                )
            if "vs_paper" in row:
                relative = row["vs_paper"]["relative"]
                body.append(
                    ["", DELTA, relative_text(relative["parameters"]), "-", relative_text(relative["epochs"])]
                    + ["-", "-"]
                )
        return headers, body


def training_time_ratio(rows: list[dict[str, Any]]) -> str:
    """The claim of Table 6: MBGen's training time over GAMER's, ours beside the paper's (100 h / 13 h)."""

    def seconds(model: str) -> float | None:
        for row in rows:
            if row["model"] == model and row["variant"] == "aug0" and row.get("parameters") != NOT_RUN:
                return TrainingCost.stored(row).training_s
        return None

    mbgen, gamer = seconds("mbgen_sid"), seconds("gamer_sid")
    ours = f"{mbgen / gamer:.1f}x" if mbgen and gamer else NOT_RUN
    return f"MBGen / GAMER training time without augmentation: ours {ours}; paper about {100 / 13:.1f}x (100 h / 13 h)"
