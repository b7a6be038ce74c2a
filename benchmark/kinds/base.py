"""The contract of a kind of table (`TableKind`): how its cells compute, what a rerun must reproduce,
and how its stored cells become documents. One module per kind implements it (`benchmark.kinds`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from benchmark.store import Cell
from benchmark.tables import TableSpec

# A rerun reproduces data statistics exactly and a model's metrics to this (`gamer-bench check`).
DATA_TOLERANCE = 1e-9
MODEL_TOLERANCE = 1e-4


class TableKind(ABC):
    """One kind of table (``TableSpec.kind`` names it). The runner, `check`, the report and the renderer
    ask a table's kind (`benchmark.kinds.kind_of`) instead of testing its name.

    ``tolerance``: how far a rerun's reference values may move (`gamer-bench check`)."""

    name: ClassVar[str]
    tolerance: ClassVar[float] = MODEL_TOLERANCE

    def config(self, spec: TableSpec) -> dict[str, Any]:
        """What a model cell of this kind computes once trained, in its stored configuration (its protocol)."""
        return {}

    @abstractmethod
    def compute(self, spec: TableSpec, cell: Cell, timings: dict[str, float], artifacts: Path) -> dict[str, Any]:
        """One cell's result (stored as JSON); phases it times go into ``timings``; a trained model may
        save what it wants kept (its tokenizer) under ``artifacts``."""

    @abstractmethod
    def reference_values(self, result: dict[str, Any]) -> dict[str, float | int]:
        """The values of a stored ``result`` that a rerun must reproduce (counts and metrics, no timings)."""


def evaluation_values(result: dict[str, Any], counts: tuple[str, ...] = ()) -> dict[str, float | int]:
    """A metric cell's reference values: each evaluation's metrics and its ``counts`` (those it has). A cell
    with one evaluation names them plainly (``N@10``); with several, by evaluation first
    (``target-behavior/drop-0.5: N@10``)."""
    single = len(result["evaluations"]) == 1
    values: dict[str, float | int] = {}
    for evaluation, scores in result["evaluations"].items():
        found = {name: scores[name] for name in counts if name in scores}
        prefix = "" if single else f"{evaluation}: "
        values |= {prefix + name: value for name, value in (scores["metrics"] | found).items()}
    return values
