"""The kinds of table, one module each: how a kind's cells compute, what a rerun must reproduce, and
how its stored cells are reported (`benchmark.kinds.base.TableKind`). A new kind is one module here and
one line in `KINDS`."""

from __future__ import annotations

from benchmark.kinds.base import TableKind
from benchmark.kinds.conversion import Conversion
from benchmark.kinds.cost import TrainingCostKind
from benchmark.kinds.leakage import Leakage
from benchmark.kinds.online import Online
from benchmark.kinds.retrieval import Retrieval
from benchmark.kinds.statistics import DataStatistics
from benchmark.tables import TableSpec

KINDS: dict[str, TableKind] = {
    kind.name: kind for kind in (DataStatistics(), Leakage(), Retrieval(), TrainingCostKind(), Conversion(), Online())
}


def kind_of(spec: TableSpec) -> TableKind:
    try:
        return KINDS[spec.kind]
    except KeyError:
        raise ValueError(f"{spec.id}: unknown kind {spec.kind!r}; known: {', '.join(KINDS)}") from None


__all__ = ["KINDS", "TableKind", "kind_of"]
