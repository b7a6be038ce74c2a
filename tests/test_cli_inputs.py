"""What the command line refuses: empty lists, bad seeds, unknown or missing names (issue: trustworthy inputs).

Before, an empty ``--models``/``--dataset``/``--tables`` (an unset shell variable) meant "everything",
a named dataset that could not be found was "skipped ... 0 computed", and ``~`` stayed a folder name.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark import check, runner
from benchmark.cli import main
from benchmark.tables import SPECS


def refused(capsys, *argv: str) -> str:
    """argparse's error for ``argv``: exit status 2 and its message."""
    with pytest.raises(SystemExit) as exit_:
        main(list(argv))
    assert exit_.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("value", ["", ",", " , ", "rule_based,,sasrec", "rule_based,"])
def test_an_empty_model_list_or_name_is_an_error_not_every_row(capsys, value):
    err = refused(capsys, "run", "--table", "2", "--models", value)
    assert "--models" in err and ("nothing named" in err or "empty name" in err)


def test_an_empty_dataset_or_table_list_is_an_error(capsys):
    assert "--dataset" in refused(capsys, "run", "--table", "1", "--dataset", ",")
    assert "--tables" in refused(capsys, "check", "--tables", ",")


@pytest.mark.parametrize(
    ("option", "value"), [("--seeds", "0"), ("--seeds", "-2"), ("--seed", "-1"), ("--seeds", "1,1")]
)
def test_a_seed_count_below_one_or_a_negative_seed_is_an_error(capsys, option, value):
    assert option in refused(capsys, "run", "--table", "2", option, value)


def test_model_names_match_case_insensitively_and_unknown_ones_get_suggestions():
    cells, _ = runner.expand(SPECS["table-2"], None, ["SASRec", "Rule_Based"], "smoke", [0])
    assert [c.model for c in cells] == ["rule_based", "sasrec"]
    with pytest.raises(ValueError, match="no row 'sasrex'; did you mean sasrec"):
        runner.expand(SPECS["table-2"], None, ["sasrex"], "smoke", [0])


def test_a_row_variant_can_be_chosen_alone():
    """`--models gamer_sid@aug0` runs Table 5's GAMER without augmentation only; `gamer_sid` runs both."""
    cells, _ = runner.expand(SPECS["table-5"], None, ["gamer_sid@aug0", "QWEN3_SID@aug0"], "smoke", [0])
    assert [c.row_key for c in cells] == ["qwen3_sid@aug0", "gamer_sid@aug0"]
    cells, _ = runner.expand(SPECS["table-5"], None, ["gamer_sid"], "smoke", [0])
    assert [c.row_key for c in cells] == ["gamer_sid@aug0", "gamer_sid@aug4"]
    with pytest.raises(ValueError, match="no row gamer_sid@aug3; gamer_sid's variants: aug0, aug4"):
        runner.expand(SPECS["table-5"], None, ["gamer_sid@aug3"], "smoke", [0])


def test_empty_lists_given_to_the_runner_are_errors():
    with pytest.raises(ValueError, match="no model named"):
        runner.expand(SPECS["table-2"], None, [], "smoke", [0])
    with pytest.raises(ValueError, match="no dataset named"):
        runner.expand(SPECS["table-2"], [], None, "smoke", [0])
    with pytest.raises(ValueError, match="seeds"):
        runner.expand(SPECS["table-2"], None, None, "smoke", [])


def test_a_named_dataset_that_cannot_be_found_is_an_error(tmp_path, capsys):
    toml = tmp_path / "gone.toml"
    toml.write_text('path = "missing.csv"\nformat = "csv"\nbehaviors = ["view", "buy"]\n[session]\nrule = "day"\n')
    code = main(["run", "--table", "1", "--dataset", str(toml), "--results-dir", str(tmp_path / "r"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "missing.csv" in err and "not found" in err


def test_a_tables_own_missing_dataset_is_only_skipped(monkeypatch, tmp_path):
    monkeypatch.setenv("GAMER_BENCH_DATA", str(tmp_path / "nowhere"))
    cells, skipped = runner.expand(SPECS["table-3"], None, ["sasrec"], "smoke", [0])
    assert cells == [] and any("retailrocket" in s for s in skipped)


def test_home_is_expanded_in_results_dir_and_toml_paths(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    data = tmp_path / "data"
    data.mkdir()
    lines = ["user_id,item_id,behavior,timestamp"]
    lines += [f"u{u},{s},buy,{1_700_000_000 + s * 86_400}" for u in range(3) for s in range(4)]
    (data / "events.csv").write_text("\n".join(lines) + "\n")
    toml = data / "mine.toml"
    toml.write_text('path = "~/data/events.csv"\nformat = "csv"\nbehaviors = ["buy"]\n[session]\nrule = "day"\n')
    code = main(["run", "--table", "1", "--dataset", "~/data/mine.toml", "--results-dir", "~/results", "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert list((tmp_path / "results" / "cells" / "table-1").iterdir())
    assert not Path("~").exists()


def test_check_names_tables_by_id_or_number():
    assert check.parse_tables(["2", "figure-3"]) == ["table-2", "figure-3"]
