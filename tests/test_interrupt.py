"""An interrupted parallel run takes its workers down and says how to resume (issue: a trustworthy store).

Before: SIGTERM or SIGKILL of `gamer-bench run --jobs N` left loky workers running; they stored their
cells some 40 s later, possibly over a newer `--force` rerun. These tests start a real run in a
subprocess, find its workers by an environment marker, and signal the parent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from protocols.catalog import REPO_ROOT

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds processes through /proc")


def marked(marker: str) -> list[int]:
    """Pids of live processes whose environment holds ``marker``."""
    needle = f"GAMER_BENCH_TEST_MARK={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":  # a zombie has exited; only its entry waits to be reaped
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def start_run(tmp_path: Path) -> tuple[subprocess.Popen, str]:
    """A two-worker run of two generative rows (about a minute each), once both workers are busy."""
    marker = uuid.uuid4().hex
    env = os.environ | {"GAMER_BENCH_TEST_MARK": marker, "OMP_NUM_THREADS": "1"}
    argv = ["run", "--table", "2", "--models", "gamer_sid,gamer_cid", "--jobs", "2", "--quiet"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmark.cli", *argv, "--results-dir", str(tmp_path / "results")],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "stderr").open("w"),  # a pipe would stay open as long as any worker lives
    )
    assert wait_until(lambda: len(set(marked(marker)) - {proc.pid}) >= 2, 60), "the workers never started"
    time.sleep(8)  # the workers import torch and start their cells
    assert proc.poll() is None
    return proc, marker


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_takes_the_workers_down_and_prints_how_to_resume(tmp_path, signum, code):
    proc, marker = start_run(tmp_path)
    proc.send_signal(signum)
    proc.wait(timeout=60)
    err = (tmp_path / "stderr").read_text()
    assert proc.returncode == code, err
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if "interrupted" in line]
    assert f"interrupted by {signal.Signals(signum).name}: 0 of 2 cell(s) stored" in line
    assert "resume with: gamer-bench run --table 2 --models gamer_sid,gamer_cid --jobs 2" in line
    assert wait_until(lambda: not marked(marker), 10), f"left running: {marked(marker)}"
    assert not list((tmp_path / "results").rglob("*.json"))


def test_workers_do_not_outlive_a_killed_parent(tmp_path):
    proc, marker = start_run(tmp_path)
    proc.kill()
    proc.wait(timeout=30)
    assert wait_until(lambda: not marked(marker), 10), f"left running: {marked(marker)}"


def test_a_killed_training_cell_resumes_from_its_checkpoint_and_stores_the_uninterrupted_result(tmp_path, monkeypatch):
    """In-process (one job): SASRec is killed in its third epoch; the rerun resumes after epoch 2, stores
    what a clean run stores, says so in the provenance, and deletes the checkpoint."""
    from helpers import kill_in_epoch

    from baselines import registry
    from benchmark import runner
    from benchmark.store import Cell, load_cell
    from benchmark.tables import SPECS

    toml = tmp_path / "tiny.toml"
    toml.write_text('name = "tiny"\nformat = "synthetic"\n[synthetic]\nn_users = 60\nn_items = 300\nseed = 5\n')
    spec, kwargs = SPECS["table-2"], {"datasets": [str(toml)], "models": ["sasrec"], "progress": False}
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    runner.run(spec, clean, **kwargs)
    cell = Cell("table-2", str(toml), "sasrec", "smoke", 0)
    with monkeypatch.context() as patch:
        kill_in_epoch(patch, registry.get("sasrec").factory_class(), 3)
        with pytest.raises(runner.Interrupted):
            runner.run(spec, killed, **kwargs)
    assert runner.checkpoint_path(cell, killed).exists() and not cell.path(killed).exists()
    runner.run(spec, killed, **kwargs)
    resumed, whole = load_cell(cell.path(killed)), load_cell(cell.path(clean))
    assert resumed["provenance"].get("resumed_from_checkpoint") is True
    assert "resumed_from_checkpoint" not in whole["provenance"]
    timings = resumed["provenance"]["timings"]  # the killed run's seconds count in the cell's time
    assert timings["before_resume_s"] > 0 and timings["total_s"] > timings["before_resume_s"]
    assert "before_resume_s" not in whole["provenance"]["timings"]
    assert resumed["result"]["evaluations"] == whole["result"]["evaluations"]
    assert not runner.checkpoint_path(cell, killed).exists()
    assert not list(killed.rglob("*.progress.json"))  # a stored cell leaves no progress file


def test_a_checkpoint_survives_a_commit_outside_the_training_code_and_not_one_inside(tmp_path, monkeypatch):
    """A grid runs for days across commits: a killed cell resumes under another code version whose
    training code (`training_code_version`) is the same, and trains afresh when that changed."""
    from helpers import kill_in_epoch

    from baselines import registry
    from benchmark import runner
    from benchmark.store import Cell, load_cell, training_code_version
    from benchmark.tables import SPECS

    toml = tmp_path / "tiny.toml"
    toml.write_text('name = "tiny"\nformat = "synthetic"\n[synthetic]\nn_users = 60\nn_items = 300\nseed = 5\n')
    spec, kwargs = SPECS["table-2"], {"datasets": [str(toml)], "models": ["sasrec"], "progress": False}
    cell = Cell("table-2", str(toml), "sasrec", "smoke", 0)
    for changed, resumes in (("code_version", True), ("training_code_version", False)):
        root = tmp_path / changed
        with monkeypatch.context() as patch:
            kill_in_epoch(patch, registry.get("sasrec").factory_class(), 3)
            with pytest.raises(runner.Interrupted):
                runner.run(spec, root, **kwargs)
        with monkeypatch.context() as patch:
            patch.setattr(runner, changed, lambda *_: "a later commit")
            runner.run(spec, root, **kwargs)
        assert load_cell(cell.path(root))["provenance"].get("resumed_from_checkpoint", False) is resumes, changed
    assert training_code_version() == training_code_version() and len(training_code_version()) == 16


def test_the_bar_names_the_epoch_each_running_cell_has_reached(tmp_path):
    import json

    from benchmark import runner
    from benchmark.store import Cell

    cells = [Cell("table-2", "synthetic", m, "cpu", 0) for m in ("sasrec", "gamer_sid", "gru4rec")]
    for cell, epoch in zip(cells[:2], (12, 3), strict=False):
        path = runner.checkpoint_path(cell, tmp_path).with_suffix(".progress.json")
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"epoch": epoch, "epochs": 200, "best_epoch": epoch - 1, "N@10": 0.1}))
    line = runner._RunningCells(None, cells, tmp_path).line()
    assert line == "sasrec s0 e12/200 best 11; gamer_sid s0 e3/200 best 2"  # gru4rec has not started


def epoch_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """(step, value) per tag from the TensorBoard event files under ``folder``, as TensorBoard shows them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_tensorboard_shows_each_epoch_of_a_cell_once_even_when_it_resumed(tmp_path, monkeypatch):
    """`run --tensorboard DIR`: a cell's event file holds its stored per-epoch record (train loss and
    validation criterion at step = epoch); a cell killed in epoch 3 and resumed shows epochs 1, 2, ...
    once each, with the uninterrupted run's values."""
    from helpers import kill_in_epoch

    from baselines import registry
    from benchmark import runner
    from benchmark.store import Cell, load_cell
    from benchmark.tables import SPECS

    toml = tmp_path / "tiny.toml"
    toml.write_text('name = "tiny"\nformat = "synthetic"\n[synthetic]\nn_users = 60\nn_items = 300\nseed = 5\n')
    spec, cell = SPECS["table-2"], Cell("table-2", str(toml), "sasrec", "smoke", 0)
    kwargs = {"datasets": [str(toml)], "models": ["sasrec"], "progress": False}
    clean_events, resumed_events = tmp_path / "tb-clean", tmp_path / "tb-resumed"
    runner.run(spec, tmp_path / "clean", **kwargs, options=runner.CellOptions(tensorboard=clean_events))
    with monkeypatch.context() as patch:
        kill_in_epoch(patch, registry.get("sasrec").factory_class(), 3)
        with pytest.raises(runner.Interrupted):
            runner.run(spec, tmp_path / "killed", **kwargs, options=runner.CellOptions(tensorboard=resumed_events))
    runner.run(spec, tmp_path / "killed", **kwargs, options=runner.CellOptions(tensorboard=resumed_events))

    epochs = load_cell(cell.path(tmp_path / "clean"))["result"]["model"]["training"]["history"]
    clean = epoch_scalars(runner.tensorboard_folder(cell, clean_events))  # float32 values
    for tag, key in (("train/loss", "train_loss"), ("validation/N@10", "N@10")):
        assert [step for step, _ in clean[tag]] == [e["epoch"] for e in epochs]
        assert [value for _, value in clean[tag]] == pytest.approx([e[key] for e in epochs], rel=1e-6)
    assert {"validation/best N@10", "time/seconds"} <= clean.keys()
    resumed = epoch_scalars(runner.tensorboard_folder(cell, resumed_events))
    assert [step for step, _ in resumed["train/loss"]] == [e["epoch"] for e in epochs]
    assert resumed["validation/N@10"] == clean["validation/N@10"]
