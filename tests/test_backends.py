"""Cells run on a Ray or a Dask cluster and are stored (`gamer-bench run --backend ray|dask`).

Before: `import ray` failed (recbole's pin held Ray at 2.6.3, which imports the removed
``pkg_resources``); a working Ray failed at once too (joblib refuses ``return_as="generator"``, how
`run` streams cells, on Ray's backend); and the Dask backend left the local cluster it started
running (two worker processes per run). Each test here lets
`benchmark.runner.backend_context` start a local cluster, as `gamer-bench run --backend X` does
without an address, and runs two cheap cells with two jobs: Table 2's Rule-Based row on two tiny
synthetic datasets. Both cells must be stored, and the cluster and every process it started must be
gone afterwards. The run starts in a scratch folder, so the workers import the project as installed
(README), not through the working directory. A test is skipped only when its extra is not installed;
an extra that is installed but does not import fails.
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import pytest

from benchmark.runner import run
from benchmark.store import load_cell
from benchmark.tables import SPECS

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds processes through /proc")

TINY_SYNTHETIC = 'name = "{name}"\nformat = "synthetic"\n[synthetic]\nn_users = 60\nn_items = 300\nseed = {seed}\n'


def skip_unless_installed(extra: str, *modules: str) -> None:
    """Skip when the extra is absent; an installed but broken one then fails at its import."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: pip install -e '.[{extra}]'")


def descendants() -> set[int]:
    """Pids of the live processes below this one, however deep, less the resource trackers: the first
    pool of a process starts multiprocessing's or loky's, which then lives as long as the process."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
        except OSError:
            continue  # it exited while we read
        if state != "Z":  # a zombie has exited; only its entry waits to be reaped
            children.setdefault(int(ppid), []).append(int(entry.name))
    found, todo = set(), [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return {pid for pid in found if b"resource_tracker import main" not in cmdline(pid)}


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def run_two_cells_on(backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = []
    for name, seed in (("tiny-a", 0), ("tiny-b", 1)):
        path = tmp_path / f"{name}.toml"
        path.write_text(TINY_SYNTHETIC.format(name=name, seed=seed))
        datasets.append(str(path))
    root = tmp_path / "results"
    monkeypatch.chdir(tmp_path)
    before = descendants()

    report = run(
        SPECS["table-2"], root, datasets=datasets, models=["rule_based"], jobs=2, backend=backend, progress=False
    )

    assert report.failed == [] and len(report.computed) == 2
    assert sorted(cell.dataset for cell in report.computed) == sorted(datasets)
    for cell in report.computed:
        stored = load_cell(cell.path(root))
        assert stored is not None and stored["cell"]["dataset"] == cell.dataset
        assert 0 <= stored["result"]["metrics"]["HR@10"] <= 1
    deadline = time.monotonic() + 30  # a shut-down cluster's processes take a moment to exit
    while (left := descendants() - before) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, f"the {backend} cluster left processes running: {sorted(left)}"


def test_ray_runs_the_cells_on_a_local_cluster_and_shuts_it_down(tmp_path, monkeypatch):
    skip_unless_installed("ray", "ray")
    import ray

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert not ray.is_initialized()
    run_two_cells_on("ray", tmp_path, monkeypatch)
    assert not ray.is_initialized()


def test_dask_runs_the_cells_on_a_local_cluster_and_closes_it(tmp_path, monkeypatch):
    skip_unless_installed("dask", "dask", "distributed")
    from dask.distributed import Client

    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    run_two_cells_on("dask", tmp_path, monkeypatch)
    with pytest.raises(ValueError, match="No clients found"):
        Client.current()
