"""The plugin door (`benchmark.plugins`): a researcher's model becomes a row without editing gamer-bench,
and `gamer-bench validate-row` tells a plugin author what their row gets wrong."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from baselines import registry
from baselines.registry import ModelEntry
from benchmark.validate import validate_row
from protocols.model import Recommender

EXAMPLE = Path(__file__).with_name("plugin_example")


def gamer_bench(*args: str, path: Path, cwd: Path) -> subprocess.CompletedProcess:
    """``gamer-bench ARGS`` in a fresh process that sees the packages installed under ``path``."""
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(path), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    env |= {"OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "benchmark.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """tests/plugin_example installed with pip into a folder of its own (as `pip install` puts it in
    site-packages), from a copy so that the build leaves nothing in the checkout."""
    pytest.importorskip("setuptools")
    tmp = tmp_path_factory.mktemp("plugin")
    source, target = tmp / "source", tmp / "site"
    shutil.copytree(EXAMPLE, source)
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*pip, "--target", str(target), str(source)], check=True, capture_output=True, timeout=300)
    assert (target / "gamer_bench_example").is_dir()
    return target


def test_an_installed_plugin_is_a_row_of_table_2_beside_the_paper(installed, tmp_path):
    results = tmp_path / "results"
    run = gamer_bench(
        "run", "--table", "2", "--models", "popular", "--dataset", "example-log", "--results-dir", str(results),
        "--quiet", path=installed, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "table-2: 1 cell(s) computed" in run.stdout
    cell = json.loads(next((results / "cells" / "table-2" / "example-log" / "popular").glob("*.json")).read_text())
    assert cell["provenance"]["config"]["source"] == "plugin gamer-bench-example-plugin 0.1.0"
    assert cell["result"]["model"] == {"name": "most popular", "parameters": 0, "target_only": True}
    report = gamer_bench("report", "--table", "2", "--results-dir", str(results), path=installed, cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    ours = [line for line in report.stdout.splitlines() if line.startswith("| MostPop (plugin)")]
    assert len(ours) == 1 and "ours (synthetic)" in ours[0]
    assert "| SASRec" in report.stdout and "paper (ShortVideoAD)" in report.stdout  # beside the paper's rows
    again = gamer_bench(
        "run", "--table", "2", "--models", "popular", "--dataset", "example-log", "--results-dir", str(results),
        "--quiet", path=installed, cwd=tmp_path,
    )  # fmt: skip
    assert "0 cell(s) computed, 1 reused" in again.stdout
    checked = gamer_bench("validate-row", "popular", path=installed, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "popular: the row meets the contract" in checked.stdout


def test_without_the_plugin_its_cells_are_named_not_shown(installed, tmp_path):
    results = tmp_path / "results"
    args = ("run", "--table", "2", "--models", "popular", "--dataset", "example-log", "--results-dir", str(results))
    assert gamer_bench(*args, "--quiet", path=installed, cwd=tmp_path).returncode == 0
    report = gamer_bench("report", "--table", "2", "--results-dir", str(results), path=tmp_path, cwd=tmp_path)
    assert "cells of model 'popular' are not shown: no plugin of that name" in report.stderr
    unknown = gamer_bench("run", "--table", "2", "--models", "popular", path=tmp_path, cwd=tmp_path)
    assert unknown.returncode == 2 and "has no row 'popular'" in unknown.stderr


def _distribution(site: Path, name: str, entry_points: str) -> None:
    """What an installed distribution is to importlib.metadata: a dist-info folder beside its code."""
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)


def test_a_broken_plugin_breaks_only_the_runs_that_ask_for_it(tmp_path):
    site = tmp_path / "site"
    _distribution(site, "broken-plugin", "[gamer_bench.models]\nbroken = broken_plugin:ENTRY\n")
    (site / "broken_plugin.py").write_text("raise RuntimeError('the plugin author forgot a file')\n")
    fine = gamer_bench("run", "--table", "2", "--models", "rule_based", "--results-dir", "r", "--quiet",
                       path=site, cwd=tmp_path)  # fmt: skip
    assert fine.returncode == 0, fine.stderr
    broken = gamer_bench("run", "--table", "2", "--models", "broken", path=site, cwd=tmp_path)
    assert broken.returncode != 0
    assert "plugin model 'broken' (broken-plugin 1.0, broken_plugin:ENTRY) failed to load" in broken.stderr
    assert "the plugin author forgot a file" in broken.stderr


def test_a_plugin_cannot_take_a_built_in_name(tmp_path):
    site = tmp_path / "site"
    _distribution(site, "shadow-plugin", "[gamer_bench.models]\nsasrec = shadow:ENTRY\n")
    listed = gamer_bench("validate-row", "rule_based", path=site, cwd=tmp_path)
    assert listed.returncode == 0
    run = gamer_bench("run", "--table", "2", "--models", "sasrec", "--max-steps", "1", path=site, cwd=tmp_path)
    assert "installed plugin model 'sasrec' (shadow:ENTRY) is ignored: 'sasrec' is a built-in row" in run.stderr


def test_unpublished_code_joins_with_the_plugins_flag_in_every_worker(tmp_path):
    """``--plugins module``: the module's MODELS are registered in the run's process and in each joblib
    worker (two jobs), and its row fills the table it names."""
    (tmp_path / "my_rows.py").write_text(
        "from baselines.registry import ModelEntry\n"
        "from baselines.rule_based import RuleBased\n"
        "MODELS = [ModelEntry('recent_again', 'Recent (mine)', RuleBased, {p: {} for p in ('smoke', 'cpu', 'paper')},"
        " tables=('table-2',))]\n"
    )
    args = ("run", "--table", "2", "--models", "recent_again,rule_based", "--dataset", "synthetic", "--jobs", "2")
    run = gamer_bench(*args, "--plugins", "my_rows", "--results-dir", "r", "--quiet", path=tmp_path, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    cells = {p.parent.name: json.loads(p.read_text()) for p in (tmp_path / "r" / "cells").rglob("*.json")}
    assert cells["recent_again"]["result"]["metrics"] == cells["rule_based"]["result"]["metrics"]
    assert cells["recent_again"]["provenance"]["config"]["source"].startswith("module my_rows (sha256 ")
    missing = gamer_bench("run", "--table", "2", "--plugins", "not_there", path=tmp_path, cwd=tmp_path)
    assert missing.returncode == 2 and "--plugins not_there: cannot import it" in missing.stderr


# -- validate-row: what it catches ---------------------------------------------------------------------


class Peeking(Recommender):
    """Ranks each query's positives first: it reads the held-out session's answers."""

    def fit(self, train, valid):
        self.n_items_ = train.n_items
        return self

    def recommend(self, queries, k):
        return [queries.positives[queries.pos_offsets[q] : queries.pos_offsets[q + 1]][:k] for q in range(len(queries))]


class Unseeded(Peeking):
    """Random items from a generator nobody seeded."""

    def recommend(self, queries, k):
        rng = np.random.default_rng()
        return [rng.choice(self.n_items_, size=k, replace=False) for _ in range(len(queries))]


class Repeating(Peeking):
    def recommend(self, queries, k):
        return [np.array([0, 1, 0]) for _ in range(len(queries))]


@pytest.mark.parametrize(
    ("model", "failed", "says"),
    [
        (Peeking, ["the answers never reach the ranking"], "with other positives, query 0"),
        (Unseeded, ["the same queries rank the same twice", "the same seed ranks the same"], "again: query 0"),
        (Repeating, ["rankings: one per query, distinct valid items"], "query 0: repeats an item: [0, 1, 0]"),
    ],
)
def test_validate_row_names_what_a_row_gets_wrong(monkeypatch, model, failed, says):
    monkeypatch.setattr(registry, "MODELS", dict(registry.MODELS))
    assert registry.register(ModelEntry("mine", "Mine", model, source="a test"))
    checks = {c.name: c for c in validate_row("mine")}
    assert [name for name, c in checks.items() if not c.passed] == failed
    assert says in checks[failed[0]].detail


def test_a_built_in_row_meets_the_contract_and_its_name_cannot_be_taken(monkeypatch):
    assert all(c.passed for c in validate_row("rule_based"))
    monkeypatch.setattr(registry, "MODELS", dict(registry.MODELS))
    with pytest.warns(
        UserWarning, match="plugin model 'rule_based' \\(a test\\) is ignored: the name belongs to a built-in"
    ):
        assert not registry.register(ModelEntry("rule_based", "Mine", Peeking, source="a test"))
    assert registry.MODELS["rule_based"].source == "built-in"
    with pytest.raises(ValueError, match="no profile \\['paper'\\]"):
        registry.register(ModelEntry("x", "X", Peeking, {"smoke": {}, "cpu": {}}, source="a test"))
