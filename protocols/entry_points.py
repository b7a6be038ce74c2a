"""Installed plugins' entry points (groups ``gamer_bench.models`` and ``gamer_bench.datasets``): listed
without importing anything, and one loaded by name, with the errors a plugin author needs (which
plugin, which distribution, what went wrong). The registry of models and the catalog of datasets both
load theirs through here (`baselines.registry.load_plugin`, `protocols.catalog.resolve`)."""

from __future__ import annotations

from importlib import metadata
from typing import Any


def installed(group: str) -> dict[str, metadata.EntryPoint]:
    """The entry points of ``group`` by name, none of them imported."""
    return {ep.name: ep for ep in metadata.entry_points(group=group)}


def distribution(ep: metadata.EntryPoint) -> str:
    """``"name version"`` of the distribution that declares ``ep`` (its target where that is unknown)."""
    return f"{ep.dist.name} {ep.dist.version}" if ep.dist is not None else ep.value


def load(ep: metadata.EntryPoint, kind: type, what: str) -> Any:
    """The ``kind`` object ``ep`` names (called first if it names a function instead), whose ``name`` is
    the entry point's. ``what`` ("model", "dataset") words the errors."""
    dist = distribution(ep)
    try:
        loaded = ep.load()
        found = loaded() if callable(loaded) and not isinstance(loaded, kind) else loaded
    except Exception as error:
        raise RuntimeError(f"plugin {what} {ep.name!r} ({dist}, {ep.value}) failed to load: {error!r}") from error
    if not isinstance(found, kind):
        raise TypeError(
            f"plugin {what} {ep.name!r} ({dist}, {ep.value}) gave {type(found).__name__}, not a {kind.__name__}"
        )
    if found.name != ep.name:
        raise ValueError(
            f"plugin entry point {ep.name!r} ({dist}) gave a {what} named {found.name!r}: the names must agree"
        )
    return found
