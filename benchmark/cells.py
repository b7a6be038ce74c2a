"""What every kind of table's cells share while they compute: the dataset a cell names (loaded once per
process), the hyperparameters of its row, the test queries of an evaluation, and a ranking's scores.
The kinds (`benchmark.kinds`) compute their cells from these; the runner schedules and stores them."""

from __future__ import annotations

import sys
import time
from functools import lru_cache
from typing import Any

import numpy as np

from baselines import registry
from benchmark.store import Cell
from benchmark.tables import Evaluation, Row, TableSpec
from protocols import metrics
from protocols.catalog import resolve
from protocols.interactions import Interactions
from protocols.queries import Queries
from protocols.splits import SessionSplit
from protocols.tasks import drop_lower_behaviors, drop_session_items

RANKING_KS = (1, 5, 10)


def dataset_identity(dataset: str) -> dict[str, Any]:
    """What decides the data a cell sees (`protocols.catalog.DatasetSpec.identity`: the resolved TOML
    or the built-in's definition, and a content hash of every file its reader reads). A stored cell is
    reused only when this is unchanged."""
    return resolve(dataset).identity()


@lru_cache(maxsize=8)
def load_dataset(dataset: str) -> Interactions:
    return resolve(dataset).load()


def row_of(spec: TableSpec, cell: Cell) -> Row:
    for row in spec.rows:
        if (row.model, row.variant) == (cell.model, cell.variant):
            return row
    raise ValueError(f"{spec.id} has no row {cell.row_key!r}")


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied; nested dicts (``training``, ``model``) merge key by key."""
    merged = dict(base)
    for key, value in overrides.items():
        merged[key] = (
            merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    return merged


def hyperparameters(spec: TableSpec, cell: Cell) -> dict[str, Any]:
    return merge(registry.get(cell.model).hyperparameters(cell.profile), dict(row_of(spec, cell).overrides))


def build_model(spec: TableSpec, cell: Cell) -> Any:
    """The cell's model, built from its row's hyperparameters and its seed (`baselines.registry.ModelEntry.build`)."""
    return registry.get(cell.model).build(hyperparameters(spec, cell), cell.seed)


def fitted(spec: TableSpec, cell: Cell, train: Interactions, valid: Any, timings: dict[str, float]) -> Any:
    """The cell's model (`build_model`) fit on ``train``, selected on ``valid``; ``timings["fit_s"]`` says how long."""
    model = build_model(spec, cell)
    start = time.perf_counter()
    model.fit(train, valid)
    timings["fit_s"] = time.perf_counter() - start
    return model


def evaluation_queries(split: SessionSplit, evaluation: Evaluation, seed: int) -> tuple[Queries, str]:
    """The test queries of an evaluation, with its test-time perturbation applied (Table 7), and what the
    perturbation did ("" without one)."""
    queries = evaluation.task.queries(split, "test")
    perturbation = evaluation.perturbation
    if not perturbation:
        return queries, ""
    if perturbation == "gt":
        queries, report = drop_session_items(split, queries)
    elif perturbation.startswith("drop-"):
        rate = float(perturbation.removeprefix("drop-"))
        target = split.interactions.schema.target_level
        queries, report = drop_lower_behaviors(queries, rate, target_level=target, seed=seed)
    else:
        raise ValueError(f"unknown test-time perturbation {perturbation!r}; use 'drop-<rate>' or 'gt'")
    return queries, str(report)


def scores(split: SessionSplit, queries: Queries, ranked) -> dict[str, Any]:
    """A ranking's metrics at `RANKING_KS`: their means, per behavior of the query, and per query."""
    per_query = metrics.evaluate_per_query(ranked, queries.positive_sets(), ks=RANKING_KS)
    behaviors = split.interactions.schema.behaviors
    by_behavior = {}
    for level in np.unique(queries.behavior):
        mask = queries.behavior == level
        by_behavior[behaviors[level]] = {"queries": int(mask.sum())} | {
            key: float(values[mask].mean()) for key, values in per_query.items()
        }
    return {
        "metrics": {key: float(values.mean()) for key, values in per_query.items()},
        "queries": len(queries),
        "by_behavior": by_behavior,
        "per_query": {"user": queries.user.tolist(), "behavior": queries.behavior.tolist()}
        | {key: np.round(values, 6).tolist() for key, values in per_query.items()},
    }


def rank() -> int:
    """This process's rank under torchrun (0 alone): every rank computes a cell, rank 0 stores it."""
    distributed = sys.modules.get("torch.distributed")  # never import torch just to ask
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        return distributed.get_rank()
    return 0
