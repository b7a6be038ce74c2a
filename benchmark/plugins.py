"""The plugin door: a researcher's model becomes a row of a paper table without editing this package.

Two ways in, both giving a `baselines.registry.ModelEntry` (and, for data, a `protocols.catalog.DatasetSpec`):

- an installed distribution declares entry points, ``gamer_bench.models`` (``name = "pkg.module:ENTRY"``,
  a ModelEntry or a function returning one) and ``gamer_bench.datasets``; a run imports a plugin only
  when it asks for its name, so a broken plugin breaks only the runs that ask for it;
- ``--plugins pkg.module`` (unpublished code, importable from the current folder or ``PYTHONPATH``):
  the module's ``MODELS`` and ``DATASETS`` lists are registered.

A built-in name always wins over a plugin's (a warning says so). A plugin model fills the tables its
entry names (``tables=("table-2",)``): its row is added to them, after the paper's rows, under
``group`` (default "Plugins"). Its entry's ``source`` (distribution and version, or the module and a
hash of its file) is part of every one of its cells' configuration, so results of an older plugin
are never reused. ``gamer-bench validate-row NAME`` checks a row against the contract every built-in
row meets (`benchmark.validate`); docs/adding-a-model.md goes from nothing to a row in Table 2.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from baselines import registry
from baselines.registry import ModelEntry
from benchmark.kinds import kind_of
from benchmark.tables import SPECS, Row
from protocols import catalog

PLUGIN_GROUP = "Plugins"


def add_rows(entry: ModelEntry) -> None:
    """Give ``entry``'s model a row in each table it names (once), after the table's own rows."""
    for table_id in entry.tables:
        spec = SPECS.get(table_id)
        if spec is None or not kind_of(spec).trains:
            trained = sorted(t for t, s in SPECS.items() if kind_of(s).trains)
            raise ValueError(
                f"plugin model {entry.name!r} ({entry.source}) names table {table_id!r}; the tables a model can "
                f"fill are {trained}"
            )
        if not any(row.model == entry.name for row in spec.rows):
            row = Row(entry.name, entry.label, entry.group or PLUGIN_GROUP)
            SPECS[table_id] = replace(spec, rows=(*spec.rows, row))


def _module_source(module) -> str:
    path = getattr(module, "__file__", None)
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12] if path else "no file"
    return f"module {module.__name__} (sha256 {digest})"


def load_modules(names: Iterable[str]) -> list[str]:
    """``--plugins``: import each module and register its ``MODELS`` and ``DATASETS``; the names of
    what was registered. Loading the same module again (a worker process does) changes nothing."""
    registered: list[str] = []
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # a console script does not see the current folder by itself
    for name in names:
        try:
            module = importlib.import_module(name)
        except ImportError as error:
            raise ValueError(f"--plugins {name}: cannot import it ({error}); is it on PYTHONPATH or here?") from None
        models, datasets = list(getattr(module, "MODELS", ())), list(getattr(module, "DATASETS", ()))
        if not models and not datasets:
            raise ValueError(f"--plugins {name}: the module defines neither MODELS nor DATASETS (lists)")
        source = _module_source(module)
        for entry in models:
            if not isinstance(entry, ModelEntry):
                raise ValueError(f"--plugins {name}: MODELS holds {entry!r}, not a baselines.registry.ModelEntry")
            entry = replace(entry, source=source) if entry.source == "built-in" else entry
            if registry.register(entry) or registry.MODELS.get(entry.name) == entry:
                add_rows(entry)
                registered.append(entry.name)
        for spec in datasets:
            if not isinstance(spec, catalog.DatasetSpec):
                raise ValueError(f"--plugins {name}: DATASETS holds {spec!r}, not a protocols.catalog.DatasetSpec")
            spec = replace(spec, origin=source) if spec.origin == "builtin" else spec
            if catalog.register_dataset(spec):
                registered.append(spec.name)
    return registered


def ensure_models(names: Iterable[str]) -> None:
    """Load the installed plugins among ``names`` (``model`` or ``model@variant``) that are not known yet,
    and give them their rows; names no plugin has are left for the caller's own error."""
    for name in names:
        model = name.partition("@")[0]
        entry = registry.MODELS.get(model) or registry.load_plugin(model)
        if entry is not None and entry.source != "built-in":
            add_rows(entry)


def ensure_stored(root: Path) -> list[str]:
    """Before a report: load the installed plugins whose models have stored cells under ``root``, so
    their rows are shown; the models whose plugin is absent (their cells are not shown), by name."""
    absent = []
    for folder in sorted((root / "cells").glob("*/*/*")):
        spec, model = SPECS.get(folder.parent.parent.name), folder.name.partition("@")[0]
        if spec is not None and kind_of(spec).trains and folder.is_dir() and model not in registry.MODELS:
            if registry.load_plugin(model) is None:
                absent.append(model)
            else:
                add_rows(registry.MODELS[model])
    return sorted(set(absent))
