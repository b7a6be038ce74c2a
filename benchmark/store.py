"""Stored results: one JSON file per cell, written atomically, with its provenance.

Layout: ``<results>/cells/<table-id>/<dataset>/<model>/<profile>-seed<S>.json`` (``_`` stands for
"no model" or "no profile" in data-only tables). A killed run leaves no torn file: every write goes
to a temporary file in the same folder and is renamed over the target in one step.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from protocols.catalog import REPO_ROOT

SCHEMA_VERSION = 1
PACKAGES = ("gamer-bench", "numpy", "pandas", "scipy", "torch", "recbole", "joblib")


def results_dir(override: str | Path | None = None) -> Path:
    """``--results-dir``, else ``$GAMER_BENCH_RESULTS``, else ``results/`` in the working directory."""
    if override:
        return Path(override)
    return Path(os.environ.get("GAMER_BENCH_RESULTS", "results"))


@dataclass(frozen=True)
class Cell:
    """One unit of work: a table's computation on one dataset, model, profile and seed."""

    table: str
    dataset: str
    model: str | None = None
    profile: str | None = None
    seed: int = 0
    variant: str = ""

    @property
    def row_key(self) -> str:
        """The model and its variant as a table row names them (``gamer_sid@aug0``)."""
        return f"{self.model}@{self.variant}" if self.variant else self.model or "_"

    def path(self, root: Path) -> Path:
        dataset = Path(self.dataset).stem if self.dataset.endswith(".toml") else self.dataset
        return root / "cells" / self.table / dataset / self.row_key / f"{self.profile or '_'}-seed{self.seed}.json"

    def describe(self) -> str:
        model = self.row_key if self.model else None
        parts = [self.table, self.dataset] + [p for p in (model, self.profile) if p] + [f"seed {self.seed}"]
        return " / ".join(parts)


def code_version() -> str:
    """The git commit of the checkout (``-dirty`` when it has uncommitted changes), else the package version."""
    if (REPO_ROOT / ".git").exists():
        try:
            out = subprocess.run(
                ["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty", "--abbrev=12"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            )
            return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        return "gamer-bench " + metadata.version("gamer-bench")
    except metadata.PackageNotFoundError:
        return "unknown"


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def provenance(config: dict[str, Any], seed: int, timings: dict[str, float]) -> dict[str, Any]:
    return {
        "code_version": code_version(),
        "config": config,
        "seed": seed,
        "timings": {k: round(v, 4) for k, v in timings.items()},
        "packages": package_versions(),
        "machine": {"platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count()},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON so that readers see either the old file or the whole new one, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=1, sort_keys=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_cell(root: Path, cell: Cell, result: dict[str, Any], prov: dict[str, Any]) -> Path:
    path = cell.path(root)
    write_atomic(path, {"schema_version": SCHEMA_VERSION, "cell": asdict(cell), "result": result, "provenance": prov})
    return path


def load_cell(path: Path) -> dict[str, Any] | None:
    """A stored cell, or None when the file is unreadable or from another schema version."""
    try:
        payload = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if payload.get("schema_version") != SCHEMA_VERSION:
        return None
    return payload


def stored_cells(root: Path, table: str) -> list[dict[str, Any]]:
    """Every stored cell of a table, in a stable order."""
    folder = root / "cells" / table
    if not folder.is_dir():
        return []
    cells = (load_cell(p) for p in sorted(folder.rglob("*.json")) if not p.name.startswith(".tmp-"))
    return [c for c in cells if c is not None]


def training_record(result: dict[str, Any]) -> dict[str, Any] | None:
    """How a stored cell's model trained: epochs run, best epoch (from 1) and why it stopped; None for
    cells without training (data tables, Rule-Based, the recency rule)."""
    training = result.get("model", {}).get("training")
    if not isinstance(training, dict) or "stop_reason" not in training:
        return None
    return {key: training[key] for key in ("epochs_run", "best_epoch", "stop_reason")}
