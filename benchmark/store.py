"""Stored results: one JSON file per cell, written atomically, with its provenance.

Layout: ``<results>/cells/<table-id>/<dataset>/<model>/<profile>-seed<S>.json`` (``_`` stands for
"no model" or "no profile" in data-only tables; ``<dataset>`` is a built-in's name, or a TOML's stem
and a hash of its absolute path: `protocols.catalog.dataset_key`). A killed run leaves no torn file:
every write goes to a temporary file in the same folder and is renamed over the target in one step,
with the mode an ordinary file gets under the user's umask.

Every read is checked (`check_cell`): a file that is not a cell of this schema version, lacks a key,
or holds a metric that is not a finite number in [0, 1] raises `CellError` naming the file and the
defect; `benchmark.runner.run` recomputes such a cell and the report skips it with a warning.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import platform
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from protocols.catalog import REPO_ROOT, dataset_key

# 2: the configuration records the dataset's identity (definition and file hashes), cells of TOML
# datasets are stored under `dataset_key`. Cells of version 1 are recomputed by `run`.
SCHEMA_VERSION = 2
log = logging.getLogger("gamer_bench.store")
PACKAGES = ("gamer-bench", "numpy", "pandas", "scipy", "torch", "recbole", "joblib")


def results_dir(override: str | Path | None = None) -> Path:
    """``--results-dir``, else ``$GAMER_BENCH_RESULTS``, else ``results/`` in the working directory."""
    if override:
        return Path(override).expanduser()
    return Path(os.environ.get("GAMER_BENCH_RESULTS", "results")).expanduser()


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
        folder = root / "cells" / self.table / dataset_key(self.dataset) / self.row_key
        return folder / f"{self.profile or '_'}-seed{self.seed}.json"

    def describe(self) -> str:
        model = self.row_key if self.model else None
        parts = [self.table, self.dataset] + [p for p in (model, self.profile) if p] + [f"seed {self.seed}"]
        return " / ".join(parts)


def code_version(root: Path = REPO_ROOT) -> str:
    """The git commit of the checkout, ``-dirty`` when tracked code has uncommitted changes (changes under
    ``results/``, such as the reference files a ``check --update`` rewrites, do not count), else the
    package version."""
    if (root / ".git").exists():
        try:
            commit = _git(root, "rev-parse", "--short=12", "HEAD")
            changed = _git(root, "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results")
            return commit + ("-dirty" if changed else "")
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        return "gamer-bench " + metadata.version("gamer-bench")
    except metadata.PackageNotFoundError:
        return "unknown"


# The packages whose source trains a model: what a training checkpoint must have been written under.
TRAINING_CODE = ("protocols", "gamer", "baselines")


@functools.cache
def training_code_version(root: Path = REPO_ROOT) -> str:
    """A hash of the source that trains models (``*.py`` and ``*.toml`` under `TRAINING_CODE`) and of the
    numeric libraries' versions. A training checkpoint resumes under any code version that leaves this
    unchanged, so a grid of hours goes on across commits that touch only the runner's reports, the CLI,
    tests or documentation; a change to a model, a loss or the protocol starts its training afresh.
    Read once per process: every training cell asks for it, and the source does not change under it."""
    import hashlib

    digest = hashlib.sha256()
    for package in TRAINING_CODE:
        for path in sorted((root / package).rglob("*")):
            if path.suffix in (".py", ".toml") and path.is_file():
                digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    versions = package_versions()
    digest.update(json.dumps({name: versions.get(name) for name in ("python", "torch", "numpy")}).encode())
    return digest.hexdigest()[:16]


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True
    ).stdout.strip()


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
        "machine": {"platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count()} | _load(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _load() -> dict[str, list[float]]:
    """The machine's load averages over 1, 5 and 15 minutes when the cell is stored, where the system
    keeps them: a cell's timings mean little without what else ran beside it."""
    try:
        return {"load_average": [round(x, 2) for x in os.getloadavg()]}
    except (AttributeError, OSError):  # not on this platform
        return {}


def _file_mode() -> int:
    """The mode `open` gives a new file: 0666 less the process's umask (mkstemp's own is 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON so that readers see either the old file or the whole new one, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
    try:
        os.fchmod(fd, _file_mode())
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


class CellError(ValueError):
    """A stored cell that cannot be used, with its path and what is wrong with it."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = path, problem


_CELL_FIELDS = {
    "table": str,
    "dataset": str,
    "model": (str, type(None)),
    "profile": (str, type(None)),
    "seed": int,
    "variant": str,
}
_PROVENANCE_FIELDS = {"config": dict, "code_version": str, "timings": dict}


_JSON_NAMES = {
    dict: "an object",
    list: "a list",
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def _type_name(value: Any) -> str:
    return _JSON_NAMES.get(type(value), type(value).__name__)


def _check_metrics(metrics: Any, where: str, path: Path) -> None:
    if not isinstance(metrics, dict):
        raise CellError(path, f"{where} is {_type_name(metrics)}, expected an object of metric values")
    for name, value in metrics.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise CellError(path, f"{where}[{name!r}] = {value!r}, expected a finite number in [0, 1]")


def _tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def check_cell(payload: Any, path: Path) -> dict[str, Any]:
    """``payload`` if it is a well-formed cell of this schema version, else `CellError`: an object with
    ``cell`` (its table, dataset, model, profile and integer seed), ``result`` (with its ``notes``, and
    every ``metrics`` finite and in [0, 1], ``queries`` a count) and ``provenance`` (configuration, code
    version, timings)."""
    if not isinstance(payload, dict):
        raise CellError(path, f"the file holds {_type_name(payload)}, expected a cell object")
    version = payload.get("schema_version")
    if version != SCHEMA_VERSION:
        raise CellError(path, f"schema version {version!r}, this code reads version {SCHEMA_VERSION}")
    for key in ("cell", "result", "provenance"):
        if not isinstance(payload.get(key), dict):
            raise CellError(path, f"key {key!r} is {_type_name(payload.get(key))}, expected an object")
    for part, fields in (("cell", _CELL_FIELDS), ("provenance", _PROVENANCE_FIELDS)):
        for key, kind in fields.items():
            value = payload[part].get(key)
            if not isinstance(value, kind) or isinstance(value, bool):
                expected = " or ".join(_JSON_NAMES[k] for k in _tuple(kind))
                raise CellError(path, f"{part}.{key} is {_type_name(value)}, expected {expected}")
    result = payload["result"]
    if not isinstance(result.get("notes"), list):
        raise CellError(path, f"result.notes is {_type_name(result.get('notes'))}, expected a list")
    if "metrics" in result:
        _check_metrics(result["metrics"], "result.metrics", path)
    evaluations = result.get("evaluations", {})
    if not isinstance(evaluations, dict):
        raise CellError(path, f"result.evaluations is {_type_name(evaluations)}, expected an object")
    for key, evaluation in evaluations.items():
        if not isinstance(evaluation, dict):
            raise CellError(path, f"result.evaluations[{key!r}] is {_type_name(evaluation)}, expected an object")
        _check_metrics(evaluation.get("metrics"), f"result.evaluations[{key!r}].metrics", path)
    for where, holder in [("result", result)] + [(f"result.evaluations[{k!r}]", e) for k, e in evaluations.items()]:
        queries = holder.get("queries", 0)
        if not isinstance(queries, int) or isinstance(queries, bool) or queries < 0:
            raise CellError(path, f"{where}.queries = {queries!r}, expected a count")
    return payload


def load_cell(path: Path) -> dict[str, Any] | None:
    """The stored cell at ``path``, None when there is none; `CellError` when the file is unreadable,
    not JSON, nested too deep or not a well-formed cell (`check_cell`)."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise CellError(path, f"cannot be read ({error.strerror or error})") from None
    try:
        payload = json.loads(text)
    except UnicodeDecodeError:
        raise CellError(path, "is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise CellError(path, f"is not valid JSON ({error})") from None
    except RecursionError:
        raise CellError(path, "is JSON nested too deep to be a cell") from None
    return check_cell(payload, path)


def stored_cells(root: Path, table: str) -> list[dict[str, Any]]:
    """Every well-formed stored cell of a table, in a stable order; each malformed one is skipped with
    a warning naming its file and its defect (``gamer-bench run`` recomputes it)."""
    folder = root / "cells" / table
    if not folder.is_dir():
        return []
    cells = []
    for path in sorted(folder.rglob("*.json")):
        if path.name.startswith(".tmp-"):
            continue
        try:
            cell = load_cell(path)
        except CellError as error:
            log.warning("skipped a malformed result: %s", error)
            continue
        if cell is not None:
            cells.append(cell)
    return cells


def training_record(result: dict[str, Any]) -> dict[str, Any] | None:
    """How a stored cell's model trained: epochs run, best epoch (from 1) and why it stopped; None for
    cells without training (data tables, Rule-Based, the recency rule)."""
    training = result.get("model", {}).get("training")
    if not isinstance(training, dict) or "stop_reason" not in training:
        return None
    return {key: training[key] for key in ("epochs_run", "best_epoch", "stop_reason")}
