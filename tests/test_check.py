"""`gamer-bench check`: comparison against the reference, the reference file format, and a real rerun."""

from __future__ import annotations

import argparse
import json
import math

import pytest

from benchmark import check
from benchmark.check import Finding, ReferencePlan, compare, read_reference, reference_values, write_reference
from benchmark.tables import SPECS

KEY = "table-2/synthetic/sasrec/seed0"


def test_values_within_tolerance_pass():
    reference = {KEY: {"N@10": 0.1, "queries": 133}}
    assert compare(reference, {KEY: {"N@10": 0.1 + 0.9e-4, "queries": 133}}, tolerance=1e-4) == []


def test_a_value_beyond_tolerance_fails_naming_its_cell_and_metric():
    reference = {KEY: {"N@10": 0.1, "HR@10": 0.2}}
    [finding] = compare(reference, {KEY: {"N@10": 0.1 + 1.1e-4, "HR@10": 0.2}}, tolerance=1e-4)
    assert (finding.key, finding.metric, finding.reference, finding.new) == (KEY, "N@10", 0.1, 0.1 + 1.1e-4)
    assert finding.columns() == ["table-2", "synthetic", "sasrec", "0", "N@10", "0.1"]


def test_a_cell_or_value_on_one_side_only_fails():
    other = "table-2/synthetic/rule_based/seed0"
    findings = compare({KEY: {"N@10": 0.1, "N@5": 0.1}, other: {"N@10": 0.2}}, {KEY: {"N@10": 0.1, "R@5": 0.3}}, 1e-4)
    problems = {(f.key, f.metric): f.problem for f in findings}
    assert problems[(other, "*")].startswith("missing")
    assert problems[(KEY, "N@5")] == "missing in the rerun"
    assert problems[(KEY, "R@5")].startswith("new")
    [new_cell] = compare({}, {KEY: {"N@10": 0.1}}, 1e-4)
    assert (new_cell.key, new_cell.problem) == (KEY, "new: not in the reference (refresh it with --update)")


def test_nan_matches_only_nan():
    assert compare({KEY: {"AUROC": math.nan}}, {KEY: {"AUROC": math.nan}}, 1e-4) == []
    assert len(compare({KEY: {"AUROC": math.nan}}, {KEY: {"AUROC": 0.5}}, 1e-4)) == 1


def test_reference_file_round_trips_one_value_per_line_in_key_order(tmp_path):
    path = tmp_path / "table-2.json"
    cells = {KEY: {"N@5": 0.25, "HR@1": 0.125}, "table-2/synthetic/mbstr/seed0": {"N@5": 0.5}}
    write_reference(path, {"profile": "smoke", "tolerance": 1e-4}, cells)
    assert read_reference(path) == ({"profile": "smoke", "tolerance": 1e-4}, cells)
    assert path.read_text() == (
        "{\n"
        ' "header": {\n'
        '  "profile": "smoke",\n'
        '  "tolerance": 0.0001\n'
        " },\n"
        ' "cells": {\n'
        '  "table-2/synthetic/mbstr/seed0": {\n'
        '   "N@5": 0.5\n'
        "  },\n"
        '  "table-2/synthetic/sasrec/seed0": {\n'
        '   "HR@1": 0.125,\n'
        '   "N@5": 0.25\n'
        "  }\n"
        " }\n"
        "}\n"
    )
    path.write_text('{"cells": {}}')
    with pytest.raises(ValueError, match="not a reference file"):
        read_reference(path)


def test_reference_values_keep_metrics_and_counts_not_timings():
    ranking = {"evaluations": {"target-behavior": {"metrics": {"N@10": 0.12345678}, "queries": 9, "by_behavior": {}}}}
    assert reference_values(SPECS["table-2"], ranking) == {"N@10": 0.123457, "queries": 9}
    two = {key: {"metrics": {"N@10": 0.5}, "queries": 9} for key in ("target-behavior", "target-behavior/gt")}
    assert reference_values(SPECS["table-7"], {"evaluations": two}) == {
        "target-behavior: N@10": 0.5,
        "target-behavior: queries": 9,
        "target-behavior/gt: N@10": 0.5,
        "target-behavior/gt: queries": 9,
    }
    cost = {"row": {"parameters": 10, "seconds per epoch": 1.5, "epochs to best": 3, "epochs run": 4, "training s": 6}}
    assert reference_values(SPECS["table-6"], cost) == {"epochs run": 4, "epochs to best": 3, "parameters": 10}
    leakage = {"rows": [{"variant": "original", "k": 1, "ratio": 2 / 3}], "targets": 3, "processed_removed": 1}
    assert reference_values(SPECS["figure-2"], leakage) == {
        "original HR@1": 0.666667,
        "processed removed": 1,
        "targets": 3,
    }


def test_every_table_is_planned_or_left_out_with_a_reason():
    assert set(check.PLANS) | set(check.LEFT_OUT) == set(SPECS)
    assert not set(check.PLANS) & set(check.LEFT_OUT)
    for plan in check.PLANS.values():
        check.selected_spec(plan, every_row=False)  # every default row is a row of its spec


def test_the_header_says_which_rows_a_file_covers_and_how_to_refresh_it():
    plan = check.PLANS["table-2"]
    default = check.header_for(plan, check.selected_spec(plan, every_row=False), 1e-4)
    assert (default["set"], sorted(default["rows"])) == ("default", sorted(plan.default_rows))
    assert default["refresh_with"] == "gamer-bench check --update --tables table-2"
    every = check.header_for(plan, check.selected_spec(plan, every_row=True), 1e-4)
    assert (every["set"], len(every["rows"])) == ("all", len(SPECS["table-2"].rows))
    assert every["refresh_with"] == "gamer-bench check --update --all --tables table-2"


def test_a_default_check_compares_only_the_cells_it_reran(capsys):
    spec = check.selected_spec(check.PLANS["table-2"], every_row=False)
    assert check.in_selection("table-2/synthetic/sasrec/seed0", spec, ["synthetic"])
    assert not check.in_selection("table-2/synthetic/tiger/seed0", spec, ["synthetic"])  # an --all row
    assert not check.in_selection("table-2/retailrocket/sasrec/seed0", spec, ["synthetic"])  # an absent dataset
    assert check.check(["table-6"]) == 0  # no default rows: nothing to rerun
    out = capsys.readouterr().out
    assert "table-6: not in the default set (run with --all)\ncheck: every value of 0 table(s)" in out


def test_tables_are_named_by_id_or_number():
    assert check.parse_tables(["1", "figure-2"]) == ["table-1", "figure-2"]
    assert _parse(["check", "--tables", "1, figure-2"]).tables == ["1", "figure-2"]
    with pytest.raises(ValueError, match="no reference for"):
        check.parse_tables(["table-99"])


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gamer-bench")
    check.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def _table_rows(text: str) -> list[list[str]]:
    """The cells of each row of a printed (github-style) table."""
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("|")]


def test_table_1_passes_against_its_own_update_and_fails_after_an_edit(tmp_path, monkeypatch, capsys):
    # synthetic only, so that the test does not depend on the real data being present
    monkeypatch.setitem(check.PLANS, "table-1", ReferencePlan("table-1", ("synthetic",)))
    argv = ["check", "--tables", "1", "--reference-dir", str(tmp_path)]
    args = _parse([*argv, "--update"])
    assert args.func(args) == 0
    header, cells = read_reference(tmp_path / "table-1.json")
    assert (header["profile"], header["seed"], header["set"], header["tolerance"]) == ("smoke", 0, "all", 1e-9)
    assert cells["table-1/synthetic/_/seed0"]["users"] > 0

    args = _parse(argv)
    assert args.func(args) == 0
    payload = json.loads((tmp_path / "table-1.json").read_text())
    payload["cells"]["table-1/synthetic/_/seed0"]["users"] += 1
    (tmp_path / "table-1.json").write_text(json.dumps(payload))
    capsys.readouterr()
    assert args.func(args) == 1
    assert ["table-1", "synthetic", "_", "0", "users"] in [r[:5] for r in _table_rows(capsys.readouterr().out)]


def test_an_absent_dataset_is_skipped_by_check_and_refused_by_update(tmp_path, monkeypatch, capsys):
    (tmp_path / "gone.toml").write_text(
        'path = "gone.csv"\nformat = "csv"\nbehaviors = ["view", "buy"]\n[session]\nrule = "gap"\nminutes = 30\n'
    )
    monkeypatch.setitem(check.PLANS, "figure-2", ReferencePlan("figure-2", ("gone.toml",)))
    write_reference(tmp_path / "figure-2.json", {"tolerance": 1e-9}, {"figure-2/gone/_/seed0": {"targets": 3}})
    assert check.check(["figure-2"], reference_dir=tmp_path) == 0
    assert "skipped dataset" in capsys.readouterr().err
    with pytest.raises(ValueError, match="needs every cell"):
        check.check(["figure-2"], update=True, reference_dir=tmp_path)


def test_a_default_update_refuses_to_shrink_a_file_that_covers_every_row(tmp_path):
    write_reference(tmp_path / "table-2.json", {"set": "all"}, {KEY: {"N@10": 0.1}})
    with pytest.raises(ValueError, match="--update --all"):
        check.check(["table-2"], update=True, reference_dir=tmp_path)


def test_findings_are_named_in_the_report(capsys):
    check._print_findings({"table-2": [Finding(KEY, "N@10", 0.1, 0.2, "moved by 0.1")]})
    out = capsys.readouterr().out
    assert ["table-2", "synthetic", "sasrec", "0", "N@10", "0.1", "0.2", "moved by 0.1"] in _table_rows(out)
    assert "gamer-bench check --update" in out


def test_published_cells_rerun_at_their_own_profile_and_seed_and_fail_when_edited(tmp_path, capsys):
    from benchmark import runner
    from benchmark.store import Cell

    published = tmp_path / "published"
    runner.run(SPECS["figure-2"], published, datasets=["synthetic"], progress=False)
    runner.run(SPECS["table-2"], published, datasets=["synthetic"], models=["rule_based"], profile="cpu", seeds=(1,),
               progress=False)  # fmt: skip
    argv = ["check", "--published", "--published-dir", str(published)]
    args = _parse([*argv, "--tables", "figure-2,2", "--dataset", "synthetic", "--seeds", "0,1"])
    assert args.func(args) == 0
    assert "table-2: 1 published cell(s) rerun, 0 finding(s)" in capsys.readouterr().out

    path = Cell("table-2", "synthetic", "rule_based", "cpu", 1).path(published)
    payload = json.loads(path.read_text())
    payload["result"]["evaluations"]["target-behavior"]["metrics"]["N@10"] += 0.01
    path.write_text(json.dumps(payload))
    args = _parse(argv)  # every table with published cells
    assert args.func(args) == 1
    rows = [r[:5] for r in _table_rows(capsys.readouterr().out)]
    assert ["table-2", "synthetic", "rule_based", "1", "N@10"] in rows
    args = _parse([*argv, "--seeds", "0"])  # the edited cell is seed 1's
    assert args.func(args) == 0
    with pytest.raises(ValueError, match="use them with --published"):
        args = _parse(["check", "--seeds", "0"])
        args.func(args)
