"""The relative difference to the paper's numbers, in every format (hand-computed cases)."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
from helpers import store_cell, store_ranking_cell

from benchmark.escape import csv_safe
from benchmark.render import render, to_csv, to_latex, to_markdown
from benchmark.report import documents_for
from benchmark.rows import DELTA, relative_difference
from benchmark.stats import bootstrap_interval
from benchmark.store import Cell
from benchmark.tables import SPECS, TABLE2_METRICS


def test_relative_difference_is_signed_and_undefined_against_zero():
    assert relative_difference(0.75, 0.5) == 0.5
    assert relative_difference(0.25, 0.5) == -0.5
    assert relative_difference(0.25, -0.5) == 1.5  # a negative paper value: the sign still says above or below
    assert relative_difference(0.3, 0) is None
    assert relative_difference(math.nan, 0.5) is None
    assert relative_difference("not run", 0.5) is None


def _store_auroc(root, model: str, seed: int, auroc: float) -> None:
    evaluation = {"metrics": {"AUROC": auroc}, "queries": 10}
    result = {"dataset_name": "tiny", "metrics": evaluation["metrics"], "queries": 10, "evaluations": {}}
    result["evaluations"]["conversion"] = evaluation
    store_cell(root, Cell("table-10", "tiny", model, "smoke", seed), result)


def test_table10_puts_the_relative_difference_under_the_paper_line(tmp_path):
    # DLRM 0.70 and 0.72 over two seeds: mean 0.71 against the paper's 0.7975 -> (0.71 - 0.7975) / 0.7975
    _store_auroc(tmp_path, "dlrm", 0, 0.70)
    _store_auroc(tmp_path, "dlrm", 1, 0.72)
    (doc,) = documents_for(SPECS["table-10"], tmp_path)
    dlrm = next(row for row in doc.rows if row["model"] == "dlrm")
    assert dlrm["vs_paper"]["values"] == {"AUROC": 0.7975}
    assert dlrm["vs_paper"]["relative"] == {"AUROC": round((0.71 - 0.7975) / 0.7975, 4)} == {"AUROC": -0.1097}
    gamer = next(row for row in doc.rows if row["model"] == "gamer_rank")
    assert "vs_paper" not in gamer  # not run: the paper's line alone, no difference

    lines = to_markdown(doc).splitlines()
    assert any(line.startswith("- Δ vs paper = (ours - paper) / paper") for line in lines)
    paper_lines = [i for i, line in enumerate(lines) if "| paper (" in line]
    assert len(paper_lines) == 2  # both models' published values are shown
    delta_lines = [line for line in lines if f"| {DELTA}" in line]
    assert len(delta_lines) == 1 and "-11.0 %" in delta_lines[0]
    assert lines.index(delta_lines[0]) == paper_lines[0] + 1  # right under DLRM's paper line

    assert r"$\Delta$ vs paper & -11.0 \%" in to_latex(doc)
    assert any(line.split(",")[3:5] == [DELTA, "-11.0 %"] for line in to_csv(doc).splitlines())
    rows = json.loads(render([doc], "json"))["rows"]
    assert next(row for row in rows if row["model"] == "dlrm")["vs_paper"]["relative"]["AUROC"] == -0.1097


def test_latex_compiles_as_is_with_marks_differences_and_paper_only_tables(tmp_path, compile_latex):
    results = tmp_path / "results"
    rng = np.random.default_rng(0)
    users = np.arange(30)
    base = {column: rng.uniform(0.0, 0.5, len(users)) for column in TABLE2_METRICS}
    for seed in (0, 1):  # GAMER clearly better: bold and ▲; SASRec underlined; mean ± std
        store_ranking_cell(results, "sasrec", seed, {c: v + rng.normal(0, 0.01, 30) for c, v in base.items()}, users)
        store_ranking_cell(results, "gamer_sid", seed, {c: v + 0.3 for c, v in base.items()}, users)
    _store_auroc(results, "dlrm", 0, 0.70)
    documents = [doc for table in ("table-2", "table-10", "table-11") for doc in documents_for(SPECS[table], results)]
    latex = render(documents, "latex")
    assert r"$^{\blacktriangle}$" in latex and r"$\Delta$ vs paper" in latex and "not run" in latex
    compile_latex(latex, "booktabs,amssymb")


def _store_trained(root, model: str, profile: str, seed: int, stop_reason: str, n10: float) -> None:
    evaluation = {"metrics": {c: n10 for c in TABLE2_METRICS}, "queries": 10}
    training = {"epochs_run": 7, "best_epoch": 7 if stop_reason == "epoch cap" else 2, "stop_reason": stop_reason}
    result = {
        "dataset_name": "synthetic",
        "metrics": evaluation["metrics"],
        "queries": 10,
        "evaluations": {"target-behavior": evaluation},
        "model": {"training": training | {"history": []}},
    }
    store_cell(root, Cell("table-2", "synthetic", model, profile, seed), result)


def test_a_row_stopped_at_the_epoch_cap_is_marked_outside_smoke(tmp_path):
    _store_trained(tmp_path, "sasrec", "cpu", 0, "patience", 0.2)
    _store_trained(tmp_path, "gru4rec", "cpu", 0, "patience", 0.1)
    _store_trained(tmp_path, "gru4rec", "cpu", 1, "epoch cap", 0.1)  # one seed of two is enough to flag
    (doc,) = documents_for(SPECS["table-2"], tmp_path)
    rows = {row["model"]: row for row in doc.rows if "stopped_by" in row}
    assert rows["gru4rec"]["stopped_by"] == {"0": "patience", "1": "epoch cap"}
    text = to_markdown(doc)
    assert "GRU4Rec†" in text and "SASRec†" not in text and "stopped at the epoch cap" in text
    assert "pipeline check" not in text
    rendered = json.loads(render([doc], "json"))
    rendered = rendered[0] if isinstance(rendered, list) else rendered
    (gru,) = [row for row in rendered["rows"] if row["model"] == "gru4rec"]
    assert gru["stopped_by"] == {"0": "patience", "1": "epoch cap"}


def test_the_header_says_which_rows_ran_which_seeds_when_they_differ(tmp_path):
    for seed in (0, 1, 2):
        _store_trained(tmp_path, "sasrec", "cpu", seed, "patience", 0.2)
    _store_trained(tmp_path, "gru4rec", "cpu", 0, "patience", 0.1)
    _store_trained(tmp_path, "mbht", "cpu", 0, "patience", 0.1)
    (doc,) = documents_for(SPECS["table-2"], tmp_path)
    assert "Seeds differ by row on synthetic: 0: GRU4Rec, MBHT; 0, 1, 2: SASRec" in doc.header
    for seed in (1, 2):
        _store_trained(tmp_path, "gru4rec", "cpu", seed, "patience", 0.1)
        _store_trained(tmp_path, "mbht", "cpu", seed, "patience", 0.1)
    (doc,) = documents_for(SPECS["table-2"], tmp_path)
    assert not any(line.startswith("Seeds differ") for line in doc.header)


def test_smoke_tables_say_they_are_pipeline_checks(tmp_path):
    _store_trained(tmp_path, "sasrec", "smoke", 0, "epoch cap", 0.2)
    (doc,) = documents_for(SPECS["table-2"], tmp_path)
    text = to_markdown(doc)
    assert "smoke: pipeline check, models undertrained" in text
    assert "SASRec†" not in text  # at smoke every row is undertrained by design: the label says it once


def test_a_sid_row_that_fell_back_to_cids_says_so(tmp_path):
    _store_trained(tmp_path, "gamer_sid", "cpu", 0, "patience", 0.2)
    path = Cell("table-2", "synthetic", "gamer_sid", "cpu", 0).path(tmp_path)
    stored = json.loads(path.read_text())
    stored["result"]["model"]["tokenizer"] = {"name": "cid-64", "cid_fallback": "62 % of distinct inputs collide"}
    path.write_text(json.dumps(stored))
    (doc,) = documents_for(SPECS["table-2"], tmp_path)
    assert "gamer_sid (synthetic, seed 0) ran on chunked IDs, not SIDs: 62 % of distinct inputs collide" in doc.header


HOSTILE = '=HYPERLINK("http://evil")<img src=x onerror=alert(1)>|*x*'


def test_a_hostile_dataset_name_is_escaped_in_markdown_and_csv(tmp_path):
    row = {"dataset": HOSTILE, "users": 3, "items": 5, "sessions": 12, "interactions": 36}
    store_cell(tmp_path, Cell("table-1", "mine.toml"), {"row": row, "filter": {"users_removed": 0}})
    (doc,) = documents_for(SPECS["table-1"], tmp_path)
    markdown = to_markdown(doc)
    assert "<img" not in markdown and "&lt;img src=x onerror=alert(1)&gt;" in markdown
    table_line = next(line for line in markdown.splitlines() if "HYPERLINK" in line)
    assert "\\|\\*x\\*" in table_line  # the | stays inside its cell, the stars are not emphasis
    (line,) = [r for r in csv.reader(io.StringIO(to_csv(doc))) if any("HYPERLINK" in f for f in r)]
    assert next(f for f in line if "HYPERLINK" in f).startswith("'=HYPERLINK")


def test_numbers_and_dashes_stay_as_they_are_in_csv():
    assert [csv_safe(t) for t in ("-0.0123", "+12.3 %", "-", "0.5 ± 0.1")] == ["-0.0123", "+12.3 %", "-", "0.5 ± 0.1"]
    assert [csv_safe(t) for t in ("=1+1", "@SUM(A1)", "-2+3*cmd|' /C calc'!A0", "\t=1")] == [
        "'=1+1",
        "'@SUM(A1)",
        "'-2+3*cmd|' /C calc'!A0",
        "'\t=1",
    ]


def test_values_carry_their_queries_and_bootstrap_interval_in_every_format(tmp_path):
    users = np.arange(40)
    hits = (np.arange(40) % 4 == 0).astype(float)  # N@10-like: 0.25
    store_ranking_cell(tmp_path, "sasrec", 0, {c: hits for c in TABLE2_METRICS}, users, profile="cpu")
    store_ranking_cell(tmp_path, "sasrec", 1, {c: hits for c in TABLE2_METRICS}, users, profile="cpu")
    (doc,) = documents_for(SPECS["table-2"], tmp_path)
    (row,) = [r for r in doc.rows if r["model"] == "sasrec"]
    low, high = row["ci"]["N@10"]
    assert row["queries"] == 40 and low < 0.25 < high
    assert (low, high) == tuple(round(x, 6) for x in bootstrap_interval(hits))  # seeds averaged per query first
    (stored,) = [r for r in json.loads(render([doc], "json"))["rows"] if r["model"] == "sasrec"]
    assert stored["ci"]["N@10"] == [low, high] and stored["queries"] == 40
    lines = list(csv.reader(io.StringIO(render([doc], "csv"))))
    (ours,) = [line for line in lines if line[2] == "SASRec"]
    fields = dict(zip(lines[0], ours, strict=True))
    assert fields["queries"] == "40" and fields["N@10 CI95 low"] == f"{low:.4f}"
    assert f"0.2500 ± {(high - low) / 2:.4f}" in render([doc], "markdown", ci=True)
    assert "0.2500 ± 0.0000" in render([doc], "markdown")  # without --ci: mean ± std over seeds
    assert "bootstrap interval" in render([doc], "latex", ci=True)


def test_a_table_states_the_verdicts_of_the_claims_resting_on_it_outside_smoke(tmp_path):
    ones = dict.fromkeys(TABLE2_METRICS, np.ones(30))
    store_ranking_cell(tmp_path, "gamer_sid", 0, ones, np.arange(30), profile="cpu")
    (doc,) = documents_for(SPECS["table-2"], tmp_path)
    assert "Claim C7 (SIDs beat CIDs), synthetic: not run (gamer-bench claims)" in doc.header
    assert any(line.startswith("Claim C2 ") for line in doc.header)
    store_ranking_cell(tmp_path, "gamer_sid", 0, ones, np.arange(30), profile="smoke")
    smoke = [d for d in documents_for(SPECS["table-2"], tmp_path) if d.profile == "smoke"]
    assert not any(line.startswith("Claim ") for line in smoke[0].header)


def test_a_sampled_dataset_says_so_wherever_the_report_names_it(tmp_path):
    toml = tmp_path / "small.toml"
    toml.write_text('format = "synthetic"\n[synthetic]\nn_users = 80\nn_items = 300\n[sample]\nusers = 50\nseed = 2\n')
    from benchmark import runner

    runner.run(SPECS["table-1"], tmp_path / "results", datasets=[str(toml)], progress=False)
    (doc,) = documents_for(SPECS["table-1"], tmp_path / "results")
    assert doc.rows[0]["dataset"] == "small (sample: 50 users, seed 2)"
