"""Expands a table spec into cells, runs them (joblib across processes), and stores each result.

A cell is reused when a stored result with the same configuration exists (``force`` recomputes).
Each cell loads its dataset itself, so cells are independent and can run in any process.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from tqdm import tqdm

from baselines import registry
from benchmark.store import Cell, load_cell, provenance, save_cell
from benchmark.tables import TableSpec
from protocols import metrics
from protocols.catalog import resolve
from protocols.interactions import Interactions
from protocols.splits import SessionSplit, classic_leave_one_out, processed_leave_one_out

LEAKAGE_KS = tuple(range(1, 11))
RANKING_KS = (1, 5, 10)


@dataclass(frozen=True)
class RunReport:
    computed: list[Cell]
    reused: list[Cell]
    skipped: list[str]
    notes: list[str]


def _source_signature(dataset: str) -> dict[str, Any]:
    """What identifies a dataset's content cheaply: its location, and size and mtime when a file."""
    spec = resolve(dataset)
    path = spec.locate()
    signature: dict[str, Any] = {"name": spec.name, "location": spec.location()}
    if path is not None and path.exists():
        stat = path.stat()
        signature |= {"bytes": stat.st_size, "mtime": int(stat.st_mtime)}
    return signature


@lru_cache(maxsize=8)
def load_dataset(dataset: str) -> Interactions:
    return resolve(dataset).load()


def cell_config(spec: TableSpec, cell: Cell) -> dict[str, Any]:
    config: dict[str, Any] = {"table": spec.id, "kind": spec.kind, "dataset": _source_signature(cell.dataset)}
    if spec.kind == "ranking":
        config |= {
            "task": spec.task.value,
            "model": cell.model,
            "profile": cell.profile,
            "hyperparameters": registry.get(cell.model).hyperparameters(cell.profile),
            "ks": list(RANKING_KS),
            "protocol": "session-wise leave-one-out, full ranking",
        }
    return config


def _dataset_stats(cell: Cell) -> dict[str, Any]:
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


def _leakage(cell: Cell) -> dict[str, Any]:
    from baselines.rule_based import RuleBased

    inter = load_dataset(cell.dataset)
    original = classic_leave_one_out(inter)
    processed, removed = processed_leave_one_out(original, inter.schema.target_level)
    rows = []
    for variant, queries in (("original", original), ("processed", processed)):
        ranked = RuleBased().recommend(queries, max(LEAKAGE_KS))
        scores = metrics.evaluate(ranked, queries.positive_sets(), ks=LEAKAGE_KS)
        rows += [
            {"dataset": inter.schema.name, "variant": variant, "k": k, "ratio": scores[f"HR@{k}"]} for k in LEAKAGE_KS
        ]
    notes = [
        f"{inter.schema.name}: {len(original)} leave-one-out targets; the processed variant removed the "
        f"last history interaction of {removed} of them"
    ]
    return {"rows": rows, "targets": len(original), "processed_removed": removed, "notes": notes}


def _ranking(spec: TableSpec, cell: Cell, timings: dict[str, float]) -> dict[str, Any]:
    inter = load_dataset(cell.dataset)
    start = time.perf_counter()
    split = SessionSplit.from_interactions(inter)
    valid = split.queries("valid")
    test = spec.task.queries(split, "test")
    timings["split_s"] = time.perf_counter() - start
    if len(test) == 0:
        raise ValueError(f"{cell.describe()}: no test query (no user's last session holds the evaluated behavior)")
    model = registry.get(cell.model).build(cell.profile, cell.seed)
    start = time.perf_counter()
    model.fit(split.train, valid)
    timings["fit_s"] = time.perf_counter() - start
    start = time.perf_counter()
    ranked = model.recommend(test, max(RANKING_KS))
    timings["recommend_s"] = time.perf_counter() - start
    per_query = metrics.evaluate_per_query(ranked, test.positive_sets(), ks=RANKING_KS)
    behaviors = split.interactions.schema.behaviors
    by_behavior = {}
    for level in np.unique(test.behavior):
        mask = test.behavior == level
        by_behavior[behaviors[level]] = {"queries": int(mask.sum())} | {
            key: float(values[mask].mean()) for key, values in per_query.items()
        }
    return {
        "dataset_name": split.interactions.schema.name,
        "metrics": {key: float(values.mean()) for key, values in per_query.items()},
        "queries": len(test),
        "by_behavior": by_behavior,
        "per_query": {"user": test.user.tolist(), "behavior": test.behavior.tolist()}
        | {key: np.round(values, 6).tolist() for key, values in per_query.items()},
        "filter": str(split.filter_report),
        "notes": [f"{split.interactions.schema.name}: {split.filter_report}; {len(test)} test queries"],
    }


def run_cell(spec: TableSpec, cell: Cell, root: Path) -> list[str]:
    """Compute one cell, store it with its provenance, and return its notes (what filters removed)."""
    timings: dict[str, float] = {}
    config = cell_config(spec, cell)
    start = time.perf_counter()
    if spec.kind == "dataset-stats":
        result = _dataset_stats(cell)
    elif spec.kind == "leakage":
        result = _leakage(cell)
    else:
        result = _ranking(spec, cell, timings)
    timings["total_s"] = time.perf_counter() - start
    save_cell(root, cell, result, provenance(config, cell.seed, timings))
    return result["notes"]


def expand(
    spec: TableSpec,
    datasets: Iterable[str] | None,
    models: Iterable[str] | None,
    profile: str,
    seeds: Iterable[int],
) -> tuple[list[Cell], list[str]]:
    """The cells a table needs, and the reasons anything asked for was left out."""
    skipped: list[str] = []
    chosen = list(datasets) if datasets else list(spec.datasets)
    available = []
    for name in chosen:
        ds = resolve(name)
        if ds.available():
            available.append(name)
        else:
            skipped.append(f"dataset {name}: not found at {ds.location()}")
    if spec.kind != "ranking":
        return [Cell(spec.id, name) for name in available], skipped
    wanted = list(models) if models else [row.model for row in spec.rows]
    unknown = [m for m in wanted if m not in {row.model for row in spec.rows}]
    if unknown:
        raise ValueError(f"{spec.id} has no row(s) {unknown}; its rows: {[row.model for row in spec.rows]}")
    runnable = [m for m in wanted if m in registry.MODELS]
    missing = [m for m in wanted if m not in registry.MODELS]
    if missing:
        skipped.append(f"not built yet, shown as 'not run': {', '.join(missing)}")
    cells = [Cell(spec.id, d, m, profile, s) for d in available for m in runnable for s in seeds]
    return cells, skipped


def run(
    spec: TableSpec,
    root: Path,
    *,
    datasets: Iterable[str] | None = None,
    models: Iterable[str] | None = None,
    profile: str = "smoke",
    seeds: Iterable[int] = (0,),
    jobs: int = 1,
    force: bool = False,
    progress: bool = True,
) -> RunReport:
    """Run every cell of ``spec`` that is not already stored with the same configuration."""
    cells, skipped = expand(spec, datasets, models, profile, list(seeds))
    todo, reused = [], []
    for cell in cells:
        stored = None if force else load_cell(cell.path(root))
        if stored is not None and stored["provenance"]["config"] == _json_roundtrip(cell_config(spec, cell)):
            reused.append(cell)
        else:
            todo.append(cell)
    notes: list[str] = []
    if todo:
        tasks = (delayed(run_cell)(spec, cell, root) for cell in todo)
        results = Parallel(n_jobs=jobs, return_as="generator")(tasks)
        for cell_notes in tqdm(results, total=len(todo), desc=spec.id, unit="cell", disable=not progress):
            notes += [note for note in cell_notes if note not in notes]
    return RunReport(todo, reused, skipped, notes)


def _json_roundtrip(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value))
