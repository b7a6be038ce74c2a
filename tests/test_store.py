"""Stored results: atomic writes, provenance, and what a rerun may reuse."""

from __future__ import annotations

import json
import subprocess

import pytest
from helpers import store_cell

from benchmark.store import Cell, code_version, load_cell, stored_cells, write_atomic


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path):
    path = tmp_path / "cell.json"
    write_atomic(path, {"value": 1})

    class Unserialisable:
        pass

    with pytest.raises(TypeError):
        write_atomic(path, {"value": Unserialisable()})
    assert json.loads(path.read_text()) == {"value": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["cell.json"]  # no temporary file left behind


def test_cells_round_trip_and_torn_files_are_ignored(tmp_path):
    cell = Cell("table-2", "synthetic", "rule_based", "smoke", 7)
    path = store_cell(tmp_path, cell, {"metrics": {"HR@1": 0.5}})
    assert path == tmp_path / "cells" / "table-2" / "synthetic" / "rule_based" / "smoke-seed7.json"
    assert load_cell(path)["result"]["metrics"]["HR@1"] == 0.5
    (path.parent / "smoke-seed8.json").write_text('{"schema_version": 1, "cell":')  # a torn file
    assert [c["cell"]["seed"] for c in stored_cells(tmp_path, "table-2")] == [7]


def test_code_version_is_recorded():
    assert code_version() not in ("", None)


def test_code_version_is_dirty_for_code_changes_not_for_results(tmp_path):
    """`check --update` rewrites results/reference/ before its later tables run: that must not mark
    the code that computed them as modified."""

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "results").mkdir()
    (tmp_path / "model.py").write_text("x = 1\n")
    (tmp_path / "results" / "table.json").write_text("{}\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "start")
    clean = code_version(tmp_path)
    assert len(clean) == 12 and not clean.endswith("-dirty")
    (tmp_path / "results" / "table.json").write_text('{"a": 1}\n')
    (tmp_path / "notes.txt").write_text("untracked\n")
    assert code_version(tmp_path) == clean
    (tmp_path / "model.py").write_text("x = 2\n")
    assert code_version(tmp_path) == clean + "-dirty"
