"""The contract of a kind of table (`TableKind`): how its cells compute, what a rerun must reproduce,
and how its stored cells become documents and grids. One module per kind implements it (`benchmark.kinds`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from benchmark.document import Document
from benchmark.store import Cell
from benchmark.tables import TableSpec

Grid = tuple[list[str], list[list[str]]]  # headers, and body lines of cell texts

# A rerun reproduces data statistics exactly and a model's metrics to this (`gamer-bench check`).
DATA_TOLERANCE = 1e-9
MODEL_TOLERANCE = 1e-4


class TableKind(ABC):
    """One kind of table (``TableSpec.kind`` names it). The runner, `check`, the report and the renderer
    ask a table's kind (`benchmark.kinds.kind_of`) instead of testing its name.

    ``trains``: its cells fit a model (one per row, variant and seed) rather than read data only;
    ``shares_training``: its models fit on the session-wise split with the item-prediction validation
    queries, so a cell can take the training of another such table's cell (`adopt`);
    ``metric_rows``: its rows hold evaluated metrics per evaluation (mean ± std over seeds, marks);
    ``tolerance``: how far a rerun's reference values may move (`gamer-bench check`); ``runs``: whether
    there is anything to compute offline (Table 11's online test has not); ``one_at_a_time``: its cells
    time themselves, so they never share the machine (Table 6)."""

    name: ClassVar[str]
    trains: ClassVar[bool] = False
    shares_training: ClassVar[bool] = False
    metric_rows: ClassVar[bool] = False
    tolerance: ClassVar[float] = MODEL_TOLERANCE
    runs: ClassVar[bool] = True
    one_at_a_time: ClassVar[bool] = False

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

    @abstractmethod
    def documents(self, spec: TableSpec, cells: list[dict]) -> list[Document]:
        """The table's documents from its stored cells (one per profile for trained models, one for data)."""

    @abstractmethod
    def grid(self, doc: Document, ci: bool = False, interval_columns: bool = False) -> Grid:
        """A document's headers and lines, ours and the paper's beside each other (`benchmark.render`
        writes them out). ``ci``: values read ``value ± half-width``; ``interval_columns``: the queries
        and each interval get columns of their own (CSV)."""

    def adopt(self, stored: dict[str, Any], config: dict[str, Any]) -> dict[str, Any] | None:
        """The result a cell of configuration ``config`` takes from ``stored``, a retrieval cell of another
        table whose model trained exactly as this cell's would, or None where it cannot (by default)."""
        return None

    def plot(self, doc: Document, path: Path) -> list[Path]:
        """The plots of a figure's document, written at ``path`` (PNG, and PDF beside it); none by default."""
        return []


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
