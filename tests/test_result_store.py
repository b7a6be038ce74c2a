"""The result store never serves a stale, foreign or malformed cell (issue: a trustworthy store).

Each test failed before the store keyed cells by the dataset's full identity and checked every read.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest
from helpers import store_cell

from benchmark import runner
from benchmark.render import render
from benchmark.report import documents_for
from benchmark.store import Cell, CellError, load_cell
from benchmark.tables import SPECS
from protocols.catalog import dataset_key, file_fingerprints, resolve

HOUR = 3600
TABLE1 = SPECS["table-1"]


def write_dataset(folder: Path, *, name: str = "mine", toml_name: str = "mine.toml", body: str = "") -> Path:
    """3 users x 4 sessions of a view/cart/buy CSV, described by a TOML file (``body`` replaces its tail)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["uid,iid,action,when"]
    for user in ("u1", "u2", "u3"):
        for session in range(4):
            t = 1_700_000_000 + session * 5 * HOUR
            lines += [f"{user},{10 + session},1,{t}", f"{user},{10 + session},3,{t + 60}", f"{user},20,2,{t + 120}"]
    (folder / "events.csv").write_text("\n".join(lines) + "\n")
    toml = folder / toml_name
    toml.write_text(
        f'name = "{name}"\npath = "events.csv"\nformat = "csv"\nbehaviors = ["view", "cart", "buy"]\n'
        'behavior_map = { "1" = "view", "2" = "cart", "3" = "buy" }\n'
        '[columns]\nuser = "uid"\nitem = "iid"\nbehavior = "action"\ntimestamp = "when"\n'
        + (body or '[session]\nrule = "gap"\nminutes = 30\n')
    )
    return toml


def run_table1(root: Path, dataset: Path) -> runner.RunReport:
    return runner.run(TABLE1, root, datasets=[str(dataset)], progress=False)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("minutes = 30", "minutes = 600"),  # the session rule
        ('"1" = "view", "2" = "cart"', '"1" = "cart", "2" = "view"'),  # the behavior map
        ('rule = "gap"\nminutes = 30', 'rule = "day"\ntimezone = "Asia/Tokyo"'),  # the rule and its timezone
    ],
)
def test_a_changed_dataset_description_is_recomputed_not_reused(tmp_path, old, new):
    toml = write_dataset(tmp_path / "data")
    assert len(run_table1(tmp_path / "results", toml).computed) == 1
    assert len(run_table1(tmp_path / "results", toml).reused) == 1
    toml.write_text(toml.read_text().replace(old, new))
    report = run_table1(tmp_path / "results", toml)
    assert (len(report.computed), len(report.reused)) == (1, 0)


def test_a_changed_synthetic_size_is_recomputed(tmp_path):
    toml = tmp_path / "small.toml"
    toml.write_text('name = "small"\nformat = "synthetic"\n[synthetic]\nn_users = 40\nn_items = 200\n')
    assert len(run_table1(tmp_path / "results", toml).computed) == 1
    toml.write_text(toml.read_text().replace("n_users = 40", "n_users = 50"))
    assert len(run_table1(tmp_path / "results", toml).computed) == 1


def test_data_rewritten_with_the_same_size_and_mtime_is_recomputed(tmp_path):
    toml = write_dataset(tmp_path / "data")
    data = tmp_path / "data" / "events.csv"
    assert len(run_table1(tmp_path / "results", toml).computed) == 1
    before = data.stat()
    data.write_text(data.read_text().replace("u1,", "u4,"))  # same size, other users
    os.utime(data, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert len(run_table1(tmp_path / "results", toml).computed) == 1


def test_a_file_rewritten_inside_a_data_folder_changes_its_fingerprint(tmp_path):
    folder = tmp_path / "sslrec"
    folder.mkdir()
    (folder / "train_mat_buy.pkl").write_bytes(b"\x00" * 64)
    (folder / "train_mat_view.pkl").write_bytes(b"\x01" * 64)
    before = file_fingerprints(folder)
    mtime = folder.stat().st_mtime_ns
    (folder / "train_mat_view.pkl").write_bytes(b"\x02" * 64)
    os.utime(folder, ns=(mtime, mtime))  # the folder's own mtime says nothing changed
    after = file_fingerprints(folder)
    assert [p["file"] for p in after] == ["train_mat_buy.pkl", "train_mat_view.pkl"]
    assert before[0] == after[0] and before[1]["sha256"] != after[1]["sha256"]


def test_the_generator_defaults_are_part_of_the_embedded_datasets_identity():
    identity = resolve("synthetic").identity()
    assert identity["origin"] == "builtin" and identity["definition"]["generator"]["n_items"] > 0
    assert resolve("retailrocket").identity()["definition"]["schema"]["behaviors"] == ["view", "cart", "buy"]


def test_two_tomls_with_one_stem_in_different_folders_get_their_own_cells(tmp_path):
    first = write_dataset(tmp_path / "a", name="first")
    second = write_dataset(tmp_path / "b", name="second")
    assert dataset_key(str(first)) != dataset_key(str(second))
    assert dataset_key(str(first)).startswith("mine-")
    run_table1(tmp_path / "results", first)
    assert len(run_table1(tmp_path / "results", second).computed) == 1
    assert len(run_table1(tmp_path / "results", first).reused) == 1


def test_a_report_refuses_two_datasets_under_one_name(tmp_path):
    first = write_dataset(tmp_path / "a", name="same")
    second = write_dataset(tmp_path / "b", name="same", body='[session]\nrule = "gap"\nminutes = 60\n')
    for toml in (first, second):
        run_table1(tmp_path / "results", toml)
    with pytest.raises(ValueError, match="two different datasets are both named 'same'") as error:
        documents_for(TABLE1, tmp_path / "results")
    assert str(first.resolve()) in str(error.value) and str(second.resolve()) in str(error.value)


def _stored(root: Path, cell: Cell, version: str) -> None:
    result = {"dataset_name": "synthetic", "row": {"dataset": "synthetic", "users": 1}, "filter": {"users_removed": 0}}
    path = store_cell(root, cell, result)
    payload = json.loads(path.read_text())
    payload["provenance"]["code_version"] = version
    path.write_text(json.dumps(payload))


def test_a_report_says_when_a_table_mixes_code_versions(tmp_path):
    _stored(tmp_path, Cell("table-1", "synthetic"), "aaa")
    assert not any("code versions" in line for line in documents_for(TABLE1, tmp_path)[0].header)
    _stored(tmp_path, Cell("table-1", "retailrocket"), "bbb")
    (doc,) = documents_for(TABLE1, tmp_path)
    assert "computed by 2 versions (aaa, bbb)" in render([doc], "markdown")


MALFORMED = {
    "a list": "[1, 2, 3]",
    "deep nesting": "[" * 100_000 + "]" * 100_000,
    "no result": json.dumps({"schema_version": 2, "cell": {}, "provenance": {}}),
    "another schema": json.dumps({"schema_version": 1, "cell": {}, "result": {}, "provenance": {}}),
    "not UTF-8": b"\xff\xfe{}",
}


def _write_malformed(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_a_malformed_cell_is_named_and_recomputed_by_run(tmp_path, kind):
    toml = write_dataset(tmp_path / "data")
    path = Cell("table-1", str(toml)).path(tmp_path / "results")
    _write_malformed(path, MALFORMED[kind])
    with pytest.raises(CellError, match=str(path)):
        load_cell(path)
    report = run_table1(tmp_path / "results", toml)
    assert len(report.computed) == 1 and any(str(path) in note for note in report.notes)
    assert load_cell(path)["result"]["row"]["users"] == 3
    assert len(run_table1(tmp_path / "results", toml).reused) == 1


def test_a_metric_out_of_range_is_malformed(tmp_path):
    path = store_cell(tmp_path, Cell("table-2", "synthetic", "sasrec", "smoke", 0), {"metrics": {"N@10": 1.5}})
    with pytest.raises(CellError, match=r"N@10.*expected a finite number in \[0, 1\]"):
        load_cell(path)
    nan = store_cell(tmp_path, Cell("table-2", "synthetic", "gru4rec", "smoke", 0), {"metrics": {"N@10": float("nan")}})
    with pytest.raises(CellError, match="N@10"):
        load_cell(nan)


def test_the_report_skips_a_malformed_cell_with_a_warning(tmp_path, caplog):
    _stored(tmp_path, Cell("table-1", "synthetic"), "aaa")
    bad = Cell("table-1", "retailrocket").path(tmp_path)
    _write_malformed(bad, MALFORMED["no result"])
    with caplog.at_level(logging.WARNING, logger="gamer_bench.store"):
        (doc,) = documents_for(TABLE1, tmp_path)
    assert [row["dataset"] for row in doc.rows] == ["synthetic"]
    assert str(bad) in caplog.text and "key 'result'" in caplog.text


def test_cells_are_written_with_the_users_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = store_cell(tmp_path, Cell("table-1", "synthetic"), {})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_run_says_when_it_reuses_cells_of_another_code_version(tmp_path):
    toml = write_dataset(tmp_path / "data")
    run_table1(tmp_path / "results", toml)
    path = Cell("table-1", str(toml)).path(tmp_path / "results")
    payload = json.loads(path.read_text())
    payload["provenance"]["code_version"] = "0123456789ab"
    path.write_text(json.dumps(payload))
    report = run_table1(tmp_path / "results", toml)
    assert len(report.reused) == 1
    assert any("1 reused cell(s) were computed by other code versions (0123456789ab" in n for n in report.notes)
