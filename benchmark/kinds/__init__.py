"""The kinds of table, one module each: how a kind's cells compute, what a rerun must reproduce, and
how its stored cells are reported (`benchmark.kinds.base.TableKind`). A new kind is one new module in
this package defining a `TableKind` subclass with its ``name``: every module here is imported, and each
concrete subclass is registered under its name (a name given twice is an error)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from benchmark.kinds.base import TableKind
from benchmark.tables import TableSpec


def _discovered() -> dict[str, TableKind]:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    kinds: dict[str, TableKind] = {}
    todo = list(TableKind.__subclasses__())
    while todo:
        kind = todo.pop(0)
        todo += kind.__subclasses__()
        if inspect.isabstract(kind):
            continue
        if kind.name in kinds:
            raise TypeError(
                f"two table kinds are named {kind.name!r}: {type(kinds[kind.name]).__name__} and {kind.__name__}"
            )
        kinds[kind.name] = kind()
    return dict(sorted(kinds.items()))


KINDS: dict[str, TableKind] = _discovered()


def kind_of(spec: TableSpec) -> TableKind:
    try:
        return KINDS[spec.kind]
    except KeyError:
        raise ValueError(f"{spec.id}: unknown kind {spec.kind!r}; known: {', '.join(KINDS)}") from None


__all__ = ["KINDS", "TableKind", "kind_of"]
