"""End-to-end runs of the `gamer-bench` CLI on small data: run, store, reuse, report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.store import Cell, load_cell

HOUR = 3600


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def custom_dataset(tmp_path: Path) -> Path:
    """A hand-made CSV of 3 users x 4 sessions, described by a TOML file."""
    lines = ["uid,iid,action,when"]
    for user in ("u1", "u2", "u3"):
        for session in range(4):
            t = 1_700_000_000 + session * 5 * HOUR
            lines += [
                f"{user},{10 + session},view,{t}",
                f"{user},{10 + session},buy,{t + 60}",
                f"{user},{20 + session},view,{t + 120}",
            ]
    (tmp_path / "events.csv").write_text("\n".join(lines) + "\n")
    toml = tmp_path / "mine.toml"
    toml.write_text(
        'name = "mine"\npath = "events.csv"\nformat = "csv"\nbehaviors = ["view", "buy"]\n'
        '[columns]\nuser = "uid"\nitem = "iid"\nbehavior = "action"\ntimestamp = "when"\n'
        '[session]\nrule = "gap"\nminutes = 30\n'
    )
    return toml


def test_datasets_lists_the_builtins(capsys):
    code, out, _ = cli(capsys, "datasets")
    assert code == 0
    for name in ("synthetic", "ml100k-mb", "retailrocket", "taobao-sample"):
        assert name in out


def test_table1_runs_stores_and_reports_json(tmp_path, capsys, custom_dataset):
    results = str(tmp_path / "results")
    code, out, err = cli(
        capsys, "run", "--table", "1", "--dataset", str(custom_dataset), "--results-dir", results, "--quiet"
    )
    assert code == 0 and "1 cell(s) computed" in out
    assert "mine: users with fewer than 3 sessions: removed 0 users" in err  # every filter says what it removed
    code, out, _ = cli(capsys, "report", "--table", "1", "--format", "json", "--results-dir", results)
    doc = json.loads(out)
    assert doc["id"] == "table-1" and doc["profile"] is None
    row = doc["rows"][0]
    assert (row["dataset"], row["users"], row["items"], row["sessions"], row["interactions"]) == ("mine", 3, 8, 12, 36)
    assert doc["paper"][0]["dataset"] == "ShortVideoAD"


def test_rerun_reuses_and_force_recomputes(tmp_path, capsys, custom_dataset):
    results = str(tmp_path / "results")
    args = (
        "run",
        "--table",
        "2",
        "--dataset",
        str(custom_dataset),
        "--models",
        "rule_based",
        "--results-dir",
        results,
        "--quiet",
    )
    assert "1 cell(s) computed, 0 reused" in cli(capsys, *args)[1]
    assert "0 cell(s) computed, 1 reused" in cli(capsys, *args)[1]
    assert "1 cell(s) computed, 0 reused" in cli(capsys, *args, "--force")[1]
    stored = load_cell(Cell("table-2", str(custom_dataset), "rule_based", "smoke", 0).path(Path(results)))
    prov = stored["provenance"]
    assert prov["seed"] == 0 and prov["config"]["hyperparameters"] == {} and prov["code_version"]
    assert {"numpy", "torch", "python"} <= set(prov["packages"])
    assert "fit_s" in prov["timings"]
    # Each user's last-session buy is item 13, which no earlier session holds: the rule cannot find it.
    assert stored["result"]["metrics"]["HR@10"] == 0.0
    assert stored["result"]["queries"] == 3


def test_table2_report_shows_paper_beside_ours_and_not_run_rows(tmp_path, capsys, custom_dataset):
    results = str(tmp_path / "results")
    cli(
        capsys,
        "run",
        "--table",
        "2",
        "--dataset",
        str(custom_dataset),
        "--models",
        "rule_based",
        "--results-dir",
        results,
        "--quiet",
    )
    code, out, _ = cli(capsys, "report", "--table", "2", "--results-dir", results)
    assert code == 0
    assert "ours (mine)" in out and "paper (ShortVideoAD)" in out and "not run" in out
    assert "0.0158" in out  # the paper's Rule-Based HR@1
    code, out, _ = cli(capsys, "report", "--table", "2", "--format", "latex", "--results-dir", results)
    assert "\\toprule" in out and "\\bottomrule" in out and "Rule-Based" in out
    code, out, _ = cli(capsys, "report", "--table", "2", "--format", "csv", "--results-dir", results)
    assert out.splitlines()[0].startswith("table,profile,Model,Source,HR@1")


def test_figure2_writes_rows_and_plots(tmp_path, capsys, custom_dataset):
    results = tmp_path / "results"
    cli(capsys, "run", "--figure", "2", "--dataset", str(custom_dataset), "--results-dir", str(results), "--quiet")
    output = tmp_path / "report" / "figure-2.json"
    code, _, err = cli(
        capsys, "report", "--figure", "2", "--format", "json", "--output", str(output), "--results-dir", str(results)
    )
    assert code == 0
    doc = json.loads(output.read_text())
    ratios = {(r["variant"], r["k"]): r["ratio"] for r in doc["rows"]}
    # Each user's last buy (item 13) follows a view of 13 one minute earlier: found at k=1, until processed.
    assert ratios[("original", 1)] == 1.0
    assert ratios[("processed", 1)] == 0.0
    assert (tmp_path / "report" / "figure-2.png").stat().st_size > 0
    assert (tmp_path / "report" / "figure-2.pdf").exists()


def test_errors_are_reported_not_raised(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('path = "x.csv"\nformat = "csv"\nbehaviors = ["a"]\n[session]\nrule = "day"\ncolour = "red"\n')
    code, _, err = cli(capsys, "run", "--table", "1", "--dataset", str(bad), "--results-dir", str(tmp_path), "--quiet")
    assert code == 2 and "unknown key(s) ['colour'] in [session]" in err
    code, _, err = cli(capsys, "run", "--table", "99", "--results-dir", str(tmp_path))
    assert code == 2 and "table-99 is not in the registry" in err
    code, _, err = cli(capsys, "report", "--table", "2", "--results-dir", str(tmp_path / "empty"))
    assert code == 1 and "no stored results" in err


def test_table1_and_figure2_on_real_retailrocket(tmp_path, capsys, real_file):
    """Regression on the real RetailRocket file: the 30-minute rule and the 3-session filter."""
    real_file("retailrocket/interactions.csv")
    results = str(tmp_path / "results")
    for target in (("--table", "1"), ("--figure", "2")):
        assert cli(capsys, "run", *target, "--dataset", "retailrocket", "--results-dir", results, "--quiet")[0] == 0
    row = json.loads(cli(capsys, "report", "--table", "1", "--format", "json", "--results-dir", results)[1])["rows"][0]
    assert (row["users"], row["items"], row["sessions"], row["interactions"]) == (980, 28430, 14225, 87615)
    assert row["users removed (< 3 sessions)"] == 2174 - 980
    doc = json.loads(cli(capsys, "report", "--figure", "2", "--format", "json", "--results-dir", results)[1])
    ratio = {(r["variant"], r["k"]): r["ratio"] for r in doc["rows"]}
    # Leave-one-out leaks: most buys were viewed or carted just before; the processed variant leaks less.
    assert ratio[("original", 5)] > 0.8 > ratio[("processed", 5)] > 0.6
    assert all(ratio[("original", k)] >= ratio[("processed", k)] for k in range(1, 11))


def test_cells_run_in_two_processes_give_the_same_results(tmp_path, capsys, custom_dataset):
    datasets = f"synthetic,{custom_dataset}"
    serial, parallel = str(tmp_path / "serial"), str(tmp_path / "parallel")
    for root, jobs in ((serial, "1"), (parallel, "2")):
        code, out, _ = cli(
            capsys, "run", "--table", "1", "--dataset", datasets, "--jobs", jobs, "--results-dir", root, "--quiet"
        )
        assert code == 0 and "2 cell(s) computed" in out
    reports = [
        json.loads(cli(capsys, "report", "--table", "1", "--format", "json", "--results-dir", r)[1])
        for r in (serial, parallel)
    ]
    assert reports[0]["rows"] == reports[1]["rows"]


@pytest.fixture()
def tiny_synthetic(tmp_path: Path) -> Path:
    toml = tmp_path / "tiny.toml"
    toml.write_text('name = "tiny"\nformat = "synthetic"\n[synthetic]\nn_users = 60\nn_items = 300\nseed = 5\n')
    return toml


def test_a_cell_of_another_table_that_is_the_same_computation_is_adopted(tmp_path, capsys, tiny_synthetic):
    """Table 5's "GAMER + 4x aug." is Table 2's GAMER (SID) and Table 8's GAMER rows are Table 5's: stored
    once, each later table adopts them (with ``adopted_from``) instead of training them again; Table 5's
    GAMER without augmentation, a different configuration, is trained."""
    results = tmp_path / "results"
    common = ("--models", "gamer_sid", "--dataset", str(tiny_synthetic), "--results-dir", str(results), "--quiet")
    code, out, err = cli(capsys, "run", "--table", "2", *common)
    assert code == 0 and "1 cell(s) computed, 0 reused" in out, err
    code, out, err = cli(capsys, "run", "--table", "5", *common)
    assert code == 0 and "1 cell(s) computed, 1 reused" in out, err
    assert "gamer_sid@aug4 / smoke / seed 0: the same training as table-2 / " in out + err
    code, out, err = cli(capsys, "run", "--table", "8", *common)
    assert code == 0 and "0 cell(s) computed, 2 reused" in out, err
    cells = results / "cells"
    table2 = json.loads(next((cells / "table-2").rglob("*.json")).read_text())
    table5 = {p.parent.name: json.loads(p.read_text()) for p in (cells / "table-5").rglob("smoke-seed0.json")}
    table8 = {p.parent.name: json.loads(p.read_text()) for p in (cells / "table-8").rglob("smoke-seed0.json")}
    assert table5["gamer_sid@aug4"]["result"] == table2["result"]
    assert table5["gamer_sid@aug4"]["provenance"]["adopted_from"]["table"] == "table-2"
    assert "adopted_from" not in table5["gamer_sid@aug0"]["provenance"]
    assert table8["gamer_sid@aug0"]["result"] == table5["gamer_sid@aug0"]["result"]
    assert table8["gamer_sid@aug0"]["provenance"]["config"]["table"] == "table-8"
    code, out, err = cli(capsys, "run", "--table", "8", *common)  # adopted cells are reused like any other
    assert code == 0 and "0 cell(s) computed, 2 reused" in out and "the same training" not in out + err


def test_a_cell_is_adopted_from_one_that_evaluated_more(tmp_path, capsys, tiny_synthetic):
    """Table 7 trains TIGER_MB once and evaluates it clean and under six perturbations; Table 2's TIGER_MB
    is its clean evaluation, stored from it, and equals what Table 2 computes by itself. The other way
    round (Table 7 from Table 2) there is nothing to adopt: the perturbed evaluations are missing."""
    common = ("--models", "tiger_mb", "--dataset", str(tiny_synthetic), "--quiet")
    adopted, alone = str(tmp_path / "adopted"), str(tmp_path / "alone")
    assert cli(capsys, "run", "--table", "7", *common, "--results-dir", adopted)[0] == 0
    code, out, err = cli(capsys, "run", "--table", "2", *common, "--results-dir", adopted)
    assert code == 0 and "0 cell(s) computed, 1 reused" in out and "the same training as table-7" in out + err
    code, out, err = cli(capsys, "run", "--table", "2", *common, "--results-dir", alone)
    assert code == 0 and "1 cell(s) computed" in out, err
    stored = {
        root: json.loads(next(Path(root, "cells", "table-2").rglob("*.json")).read_text()) for root in (adopted, alone)
    }
    adopted_result, alone_result = stored[adopted]["result"], stored[alone]["result"]
    for key in ("evaluations", "metrics", "queries", "notes", "filter"):
        assert adopted_result[key] == alone_result[key], key
    history = [
        [epoch | {"seconds": 0} for epoch in r["model"]["training"]["history"]] for r in (adopted_result, alone_result)
    ]
    assert history[0] == history[1]  # the same training, epoch by epoch (but its wall times)
    assert stored[adopted]["provenance"]["adopted_from"]["table"] == "table-7"
    assert stored[adopted]["provenance"]["config"] == stored[alone]["provenance"]["config"]
    code, out, err = cli(capsys, "run", "--table", "7", *common, "--results-dir", alone)
    assert code == 0 and "1 cell(s) computed" in out and "the same training" not in out + err


def test_table_6_takes_the_training_record_of_a_ranking_cell_that_trained_the_same(tmp_path, capsys, tiny_synthetic):
    """Table 6's "GAMER" (no augmentation) trains as Table 5's GAMER without augmentation: once Table 5
    stored it, Table 6 stores its training record (parameters, epochs, seconds) instead of training again,
    and everything but the seconds equals what Table 6 computes by itself."""
    common = ("--models", "gamer_sid@aug0", "--dataset", str(tiny_synthetic), "--quiet")
    adopted, alone = str(tmp_path / "adopted"), str(tmp_path / "alone")
    assert cli(capsys, "run", "--table", "5", *common, "--results-dir", adopted)[0] == 0
    code, out, err = cli(capsys, "run", "--table", "6", *common, "--results-dir", adopted)
    assert code == 0 and "0 cell(s) computed, 1 reused" in out and "the same training as table-5" in out + err
    assert cli(capsys, "run", "--table", "6", *common, "--results-dir", alone)[0] == 0
    rows = {}
    for root in (adopted, alone):
        stored = json.loads(next(Path(root, "cells", "table-6").rglob("*.json")).read_text())
        rows[root] = stored["result"]["row"]
        assert stored["provenance"]["config"]["kind"] == "training-cost"
    untimed = ("parameters", "epochs to best", "epochs run")
    assert [rows[adopted][k] for k in untimed] == [rows[alone][k] for k in untimed]
    report = cli(capsys, "report", "--table", "6", "--results-dir", adopted)[1]
    assert "Trained for another table: gamer\\_sid@aug0 (stored from table-5 gamer\\_sid@aug0)" in report
    assert "Trained for another table" not in cli(capsys, "report", "--table", "6", "--results-dir", alone)[1]
    assert rows[adopted]["epochs run"] == rows[alone]["epochs run"] > 0


def test_training_identity_writes_out_the_defaults_a_row_leaves_implicit():
    """MBGen's augment_times defaults to 0: Table 7's MBGen (no override) and Table 6's "MBGen" (augment_times
    0) train alike; Table 6's "MBGen + 1x aug." does not, nor does another table's name change anything."""
    from benchmark.runner import _training_identity, cell_config
    from benchmark.store import Cell
    from benchmark.tables import SPECS

    def identity(table: str, variant: str = "") -> dict:
        return _training_identity(cell_config(SPECS[table], Cell(table, "synthetic", "mbgen_sid", "cpu", 0, variant)))

    assert (
        "augment_times"
        not in cell_config(SPECS["table-7"], Cell("table-7", "synthetic", "mbgen_sid", "cpu"))["hyperparameters"]
    )
    assert identity("table-7") == identity("table-6", "aug0") == identity("table-5", "aug0") == identity("table-2")
    assert identity("table-6", "aug1") != identity("table-6", "aug0")
    conversion = cell_config(SPECS["table-7"], Cell("table-7", "synthetic", "mbgen_sid", "cpu")) | {
        "kind": "conversion"
    }
    assert _training_identity(conversion) != identity("table-7")  # Appendix D fits on a split of its own


def test_a_kept_checkpoint_trains_the_same_model_for_another_table(tmp_path, capsys, tiny_synthetic):
    """Table 2's GAMER run with --keep-checkpoints leaves its training's checkpoint; Table 7's GAMER trains
    alike, so it goes on from it (redoing at most the last epoch) instead of training from scratch: its
    clean evaluation and training record are Table 2's, its provenance names the checkpoint's cell.
    Table 5's GAMER without augmentation trains otherwise and does not take it."""
    results = str(tmp_path / "results")
    common = ("--dataset", str(tiny_synthetic), "--results-dir", results, "--quiet")
    assert cli(capsys, "run", "--table", "2", "--models", "gamer_sid", "--keep-checkpoints", *common)[0] == 0
    code, out, err = cli(capsys, "run", "--table", "7", "--models", "gamer_sid", *common)
    assert code == 0 and "1 cell(s) computed" in out and "from the checkpoint table-2 / " in out + err, err
    code, out, err = cli(capsys, "run", "--table", "5", "--models", "gamer_sid@aug0", *common)
    assert code == 0 and "from the checkpoint" not in out + err
    cells = Path(results, "cells")
    table2, table7, table5 = (
        json.loads(next((cells / table).rglob("*seed0.json")).read_text())
        for table in ("table-2", "table-7", "table-5")
    )
    assert table7["provenance"]["checkpoint_from"]["table"] == "table-2"
    assert "checkpoint_from" not in table5["provenance"]
    assert table7["result"]["evaluations"]["target-behavior"] == table2["result"]["evaluations"]["target-behavior"]
    history = [[e | {"seconds": 0} for e in t["result"]["model"]["training"]["history"]] for t in (table2, table7)]
    assert history[0] == history[1]
    assert not list((cells / "table-7").rglob("*.ckpt"))  # not kept unless asked


def test_a_checkpoint_is_borrowed_only_when_readable_and_of_the_same_training(tmp_path):
    """`_borrow_checkpoint` takes another table's checkpoint for the same key, skips one of another key
    and one that is not a checkpoint at all (torn, or any file), and copies rather than moves."""
    import torch

    from benchmark.runner import _borrow_checkpoint, checkpoint_path
    from benchmark.store import Cell
    from benchmark.tables import SPECS

    table7 = Cell("table-7", "synthetic", "gamer_sid", "cpu", 0)
    table2, table4 = (Cell(t, "synthetic", "gamer_sid", "cpu", 0) for t in ("table-2", "table-4"))
    path = checkpoint_path(table7, tmp_path)
    for cell, payload in ((table2, b"not a checkpoint"), (table4, None)):
        checkpoint_path(cell, tmp_path).parent.mkdir(parents=True)
        if payload is None:
            torch.save({"key": "another training"}, checkpoint_path(cell, tmp_path))
        else:
            checkpoint_path(cell, tmp_path).write_bytes(payload)
    assert _borrow_checkpoint(SPECS["table-7"], table7, tmp_path, "this training", path) is None
    assert not path.exists()
    torch.save({"key": "this training", "epoch": 3}, checkpoint_path(table4, tmp_path))
    assert _borrow_checkpoint(SPECS["table-7"], table7, tmp_path, "this training", path) == table4
    assert torch.load(path, weights_only=True)["epoch"] == 3 and checkpoint_path(table4, tmp_path).exists()


def test_generative_rows_run_end_to_end_with_variants_and_perturbations(tmp_path, capsys, tiny_synthetic):
    """Table 5's augmentation variants and Table 7's test-time dropout, smoke profile, tiny synthetic data."""
    results = str(tmp_path / "results")
    common = ("--dataset", str(tiny_synthetic), "--results-dir", results, "--quiet")
    code, out, err = cli(capsys, "run", "--table", "5", "--models", "gamer_sid", *common)
    assert code == 0 and "2 cell(s) computed" in out, err
    code, out, err = cli(capsys, "run", "--table", "7", "--models", "gamer_sid", *common)
    assert code == 0 and "1 cell(s) computed" in out, err
    assert "drop rate 0.5: removed" in err and "gt: removed" in err
    table5 = json.loads(cli(capsys, "report", "--table", "5", "--format", "json", "--results-dir", results)[1])
    gamer = {r["variant"]: r for r in table5["rows"] if r["model"] == "gamer_sid"}
    assert set(gamer) == {"aug0", "aug4"} and all(isinstance(r["N@10"], float) for r in gamer.values())
    assert [r["N@10"] for r in table5["rows"] if r["model"] == "qwen3_sid"] == ["not run", "not run"]
    table7 = json.loads(cli(capsys, "report", "--table", "7", "--format", "json", "--results-dir", results)[1])
    evaluations = [r["evaluation"] for r in table7["rows"] if r["model"] == "gamer_sid"]
    assert evaluations[0] == "target-behavior" and evaluations[-1] == "target-behavior/gt" and len(evaluations) == 6
    cell = next(Path(results).rglob("table-5/*/gamer_sid@aug4/*.json"))
    stored = json.loads(cell.read_text())
    model = stored["result"]["model"]
    assert stored["provenance"]["tokenizer"]["name"] == "sid-given"
    assert model["tokenizer"]["name"] == "sid-given" and "4x augmentation" in model["augmentation"]
    from gamer.tokenizers import ItemTokenizer

    saved = ItemTokenizer.load(cell.with_suffix("") / "tokenizer")  # the run's tokenizer, reloaded
    assert saved.name == "sid-given" and saved.n_items == 300


DISCRIMINATIVE_ROWS = (
    "gru4rec",
    "sasrec",
    "bert4rec",
    "sasrec_b",
    "bert4rec_b",
    "pbat",
    "mbht",
    "mbstr",
    "mbgmn",
    "smbrec",
)


def test_discriminative_rows_run_table2_end_to_end_on_real_retailrocket(tmp_path, capsys, real_file):
    """Every discriminative and graph row of Table 2, smoke profile, two processes, real RetailRocket."""
    real_file("retailrocket/interactions.csv")
    results = str(tmp_path / "results")
    rows = ",".join(DISCRIMINATIVE_ROWS)
    code, out, err = cli(
        capsys, "run", "--table", "2", "--dataset", "retailrocket", "--models", rows, "--jobs", "2",
        "--results-dir", results, "--quiet",
    )  # fmt: skip
    assert code == 0 and f"{len(DISCRIMINATIVE_ROWS)} cell(s) computed" in out, err
    doc = json.loads(cli(capsys, "report", "--table", "2", "--format", "json", "--results-dir", results)[1])
    ours = {r["model"]: r for r in doc["rows"] if r["model"] in DISCRIMINATIVE_ROWS}
    assert set(ours) == set(DISCRIMINATIVE_ROWS)
    for row in ours.values():
        assert row["queries"] == 202 and all(0.0 <= row[m] <= 1.0 for m in ("HR@1", "HR@10", "R@10", "N@10"))
        assert row["HR@1"] <= row["HR@5"] <= row["HR@10"]
    stored = load_cell(Cell("table-2", "retailrocket", "sasrec_b", "smoke", 0).path(Path(results)))
    config, training = stored["provenance"]["config"], stored["result"]["model"]["training"]
    assert config["hyperparameters"]["behavior_as_token"] is True and config["hyperparameters"]["max_len"] == 50
    assert 1 <= training["best_epoch"] <= training["epochs_run"] == len(training["history"])


def test_table3_labels_the_paper_dataset_each_of_ours_stands_in_for(tmp_path, capsys, real_file):
    real_file("taobao-userbehavior-sample/UserBehavior.csv")
    results = str(tmp_path / "results")
    common = ("--results-dir", results, "--quiet")
    assert cli(capsys, "run", "--table", "3", "--dataset", "taobao-sample", "--models", "sasrec", *common)[0] == 0
    out = cli(capsys, "report", "--table", "3", "--results-dir", results)[1]
    sasrec = [line for line in out.splitlines() if "SASRec " in line or "paper (JData)" in line]
    assert "ours (taobao-sample)" in sasrec[0] and "paper (JData)" in out and "paper (Tmall)" not in out
    assert "0.5217" in out  # SASRec's JData HR@10 from the paper, beside ours


def test_encoder_decoder_rows_run_tables_2_and_5_end_to_end(tmp_path, capsys, tiny_synthetic):
    """TIGER, TIGER_MB and MBGen (with and without 1x augmentation), smoke profile, tiny synthetic data."""
    results = str(tmp_path / "results")
    common = ("--dataset", str(tiny_synthetic), "--results-dir", results, "--quiet", "--jobs", "2")
    code, out, err = cli(capsys, "run", "--table", "2", "--models", "tiger,tiger_mb,mbgen_cid", *common)
    assert code == 0 and "3 cell(s) computed" in out, err
    code, out, err = cli(capsys, "run", "--table", "5", "--models", "mbgen_sid", *common)
    assert code == 0 and "2 cell(s) computed" in out, err
    table2 = json.loads(cli(capsys, "report", "--table", "2", "--format", "json", "--results-dir", results)[1])
    rows = {r["model"]: r for r in table2["rows"]}
    assert all(isinstance(rows[m]["HR@10"], float) for m in ("tiger", "tiger_mb", "mbgen_cid"))
    stored = load_cell(next(Path(results).rglob("table-5/*/mbgen_sid@aug1/*.json")))
    assert "1x augmentation" in stored["result"]["model"]["augmentation"]
    assert stored["provenance"]["config"]["hyperparameters"]["augment_times"] == 1


def test_table6_times_training_and_reports_the_ratio(tmp_path, capsys):
    toml = tmp_path / "tinier.toml"  # Table 6 trains MBGen on every sample: keep the data small
    toml.write_text('name = "tinier"\nformat = "synthetic"\n[synthetic]\nn_users = 20\nn_items = 300\nseed = 5\n')
    results = str(tmp_path / "results")
    common = ("--dataset", str(toml), "--results-dir", results, "--quiet", "--jobs", "2")
    code, out, err = cli(capsys, "run", "--table", "6", "--models", "mbgen_sid,gamer_sid", *common)
    assert code == 0 and "5 cell(s) computed" in out and "one at a time (--jobs 2 ignored)" in err, err
    doc = json.loads(cli(capsys, "report", "--table", "6", "--format", "json", "--results-dir", results)[1])
    rows = {(r["model"], r["variant"]): r for r in doc["rows"]}
    mbgen = rows[("mbgen_sid", "aug0")]
    assert mbgen["parameters"] > 0 and 1 <= mbgen["epochs to best"] <= mbgen["epochs run"]
    assert mbgen["training s"] > 0 and mbgen["seconds per epoch"] * mbgen["epochs run"] == pytest.approx(
        mbgen["training s"]
    )
    # the paper's MBGen: 26.80M parameters, 154 epochs (Table 6)
    expected = {"parameters": mbgen["parameters"] / 26.80e6 - 1, "epochs": mbgen["epochs to best"] / 154 - 1}
    assert mbgen["vs_paper"]["relative"] == pytest.approx(expected, abs=1e-4)
    text = cli(capsys, "report", "--table", "6", "--results-dir", results)[1]
    assert "MBGen / GAMER training time without augmentation: ours " in text and "~100 h" in text
    delta = next(line for line in text.splitlines() if line.startswith("|") and "Δ vs paper" in line)
    assert f"{100 * expected['parameters']:+.1f} %" in delta and f"{100 * expected['epochs']:+.1f} %" in delta


def test_table10_scores_conversions_with_every_row_and_reports_mean_and_std(tmp_path, capsys):
    toml = tmp_path / "tiny-big.toml"
    toml.write_text(
        'name = "tiny-big"\nformat = "synthetic-big"\n[synthetic]\nn_users = 60\nn_items = 300\nscale = 1\n'
    )
    results = str(tmp_path / "results")
    common = ("--dataset", str(toml), "--results-dir", results, "--quiet")
    code, out, err = cli(capsys, "run", "--table", "10", "--seeds", "2", "--jobs", "2", *common)
    assert code == 0 and "6 cell(s) computed" in out, err
    assert "test queries" in err and "candidates" in err
    stored = load_cell(Cell("table-10", str(toml), "gamer_rank", "smoke", 1).path(Path(results)))
    assert (
        stored["provenance"]["seed"] == 1 and "candidates = items exposed" in stored["provenance"]["config"]["protocol"]
    )
    conversion = stored["result"]["evaluations"]["conversion"]
    assert 0.0 <= conversion["metrics"]["AUROC"] <= 1.0 and conversion["candidates_per_s"] > 0
    assert conversion["candidates"] > conversion["conversions"] > 0
    doc = json.loads(cli(capsys, "report", "--table", "10", "--format", "json", "--results-dir", results)[1])
    rows = {r["model"]: r for r in doc["rows"]}
    assert rows["dlrm"]["seeds"] == [0, 1] and "AUROC std" in rows["gamer_rank"]
    assert rows["recency_rule"]["AUROC std"] == 0.0 and "vs_paper" not in rows["recency_rule"]  # learns nothing
    text = cli(capsys, "report", "--table", "10", "--results-dir", results)[1]
    assert "paper (ShortVideoADbig) | 0.8353" in text and " ± " in text
    # A retrieval dataset is refused with the reason, not scored.
    code, _, err = cli(
        capsys,
        "run",
        "--table",
        "10",
        "--models",
        "dlrm",
        "--dataset",
        "synthetic",
        "--seed",
        "0",
        "--results-dir",
        results,
        "--quiet",
    )
    assert code == 2 and "needs ['exposure', 'conversion']" in err


def test_table9_counts_the_ranking_datasets(tmp_path, capsys):
    toml = tmp_path / "tiny-big.toml"
    toml.write_text('name = "tiny-big"\nformat = "synthetic-big"\n[synthetic]\nn_users = 40\nscale = 1\n')
    results = str(tmp_path / "results")
    code, out, _ = cli(capsys, "run", "--table", "9", "--dataset", str(toml), "--results-dir", results, "--quiet")
    assert code == 0
    doc = json.loads(cli(capsys, "report", "--table", "9", "--format", "json", "--results-dir", results)[1])
    (row,) = doc["rows"]
    assert row["dataset"] == "tiny-big" and row["users"] <= 40 and row["interactions"] > 0
    assert any(p["dataset"] == "ShortVideoADbig" for p in doc["paper"])


def test_a_failing_cell_does_not_stop_the_run_and_a_rerun_does_only_what_is_missing(tmp_path, capsys, custom_dataset):
    broken = tmp_path / "broken.toml"
    broken.write_text(custom_dataset.read_text().replace('"mine"', '"broken"').replace("events.csv", "later.csv"))
    good_rows = (tmp_path / "events.csv").read_text()
    (tmp_path / "later.csv").write_text(good_rows + "u9,10,view,yesterday\n")
    results = str(tmp_path / "results")
    args = ("run", "--table", "1", "--dataset", f"{custom_dataset},{broken}", "--results-dir", results, "--quiet")
    code, out, err = cli(capsys, *args)
    # The bad row is an error of its cell; the other cell is computed and stored all the same.
    assert code == 2 and "1 cell(s) computed" in out and "1 failed" in out
    assert "failed: table-1 / " in err and "broken" in err and "found 'yesterday'" in err
    (tmp_path / "later.csv").write_text(good_rows)
    code, out, _ = cli(capsys, *args)
    assert code == 0 and "1 cell(s) computed, 1 reused" in out


def test_run_all_and_the_offline_only_table(tmp_path, capsys, monkeypatch):
    code, _, err = cli(capsys, "run", "--table", "11", "--results-dir", str(tmp_path), "--quiet")
    assert code == 0 and "cannot be reproduced offline" in err
    with pytest.raises(SystemExit, match="--all runs every table"):
        cli(capsys, "run", "--all", "--table", "2", "--results-dir", str(tmp_path))
    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # as if the [dask] extra were not installed
    code, _, err = cli(capsys, "run", "--table", "1", "--backend", "dask", "--results-dir", str(tmp_path), "--quiet")
    assert code == 2 and "pip install 'gamer-bench[dask]'" in err


def test_report_all_writes_a_browsable_page(tmp_path, capsys, custom_dataset):
    results = str(tmp_path / "results")
    cli(capsys, "run", "--table", "1", "--dataset", str(custom_dataset), "--results-dir", results, "--quiet")
    cli(capsys, "run", "--figure", "2", "--dataset", str(custom_dataset), "--results-dir", results, "--quiet")
    site = tmp_path / "site"
    code, out, _ = cli(capsys, "report", "--all", "--output-dir", str(site), "--results-dir", results)
    assert code == 0 and str(site / "index.md") in out
    index = (site / "index.md").read_text()
    for name in ("table-1.md", "table-1.tex", "table-1.csv", "table-1.json", "figure-2.png", "table-11.md"):
        assert f"({name})" in index and (site / name).stat().st_size > 0, name
    assert "cannot be reproduced offline" in (site / "table-11.md").read_text()
    assert "+2.5%" in (site / "table-11.md").read_text()


def test_a_rehearsal_step_is_one_micro_batch_of_a_paper_step():
    """A paper step (4096 sequences) is hours on a CPU; its peak memory is one micro-batch's."""
    from benchmark.runner import _step_batch, with_max_steps

    paper = {"training": {"batch_size": 4096, "micro_batch": 128, "lr": 5e-4}}
    rehearsed = with_max_steps(paper, 2)
    assert rehearsed["training"] == {"batch_size": 128, "micro_batch": 128, "lr": 5e-4, "max_steps": 2}
    assert paper["training"]["batch_size"] == 4096  # the profile is not changed in place
    assert _step_batch(paper, rehearsed) == "128 (profile: 4096)"
    assert with_max_steps({"batch_size": 256}, 3) == {"batch_size": 256, "max_steps": 3}  # no accumulation
    assert _step_batch({"batch_size": 256}, {"batch_size": 256, "max_steps": 3}) == "256"
    assert with_max_steps({}, 3) == {}  # Rule-Based does not train


def test_max_steps_rehearses_every_family_and_stores_nothing(tmp_path, capsys, tiny_synthetic):
    """`run --max-steps N`: a decoder, an encoder-decoder, a discriminative and a graph row trained N
    steps and tested on a few users, in one table of what each cost; no result is written."""
    results = tmp_path / "results"
    models = "rule_based,sasrec,mbgmn,gamer_sid,tiger_mb"
    code, out, err = cli(
        capsys, "run", "--table", "2", "--models", models, "--dataset", str(tiny_synthetic), "--max-steps", "2",
        "--results-dir", str(results),
    )  # fmt: skip
    assert code == 0, err
    assert "rehearsal at smoke, seed 0: at most 2 step(s), nothing stored" in out
    lines = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    assert set(models.split(",")) <= set(lines)
    assert all("max_steps" in lines[m] for m in ("sasrec", "mbgmn", "gamer_sid", "tiger_mb"))
    header = next(line for line in out.splitlines() if line.startswith("| row"))
    assert "sequences per step" in header and "process peak RSS GB" in header
    assert not results.exists() or not any(results.rglob("*.json"))
