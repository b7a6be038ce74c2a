"""Built-in datasets, custom TOML descriptions, and the README's promises to a newcomer."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from protocols.catalog import BUILTIN, data_dir, dataset_from_toml, resolve

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "d.toml"
    path.write_text(text)
    return path


BASE = 'path = "e.csv"\nformat = "csv"\nbehaviors = ["view", "buy"]\n[session]\nrule = "gap"\nminutes = 30\n'


def test_builtins_are_named_and_synthetic_is_always_present():
    assert set(BUILTIN) == {
        "synthetic",
        "ml100k-mb",
        "retailrocket",
        "taobao-sample",
        "synthetic-big",
        "retailrocket-rank",
    }
    assert BUILTIN["synthetic-big"].available() and BUILTIN["synthetic-big"].paper_counterpart == "ShortVideoADbig"
    assert BUILTIN["synthetic"].available()
    assert resolve("synthetic") is BUILTIN["synthetic"]


def test_data_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GAMER_BENCH_DATA", str(tmp_path))
    assert data_dir() == tmp_path
    assert BUILTIN["retailrocket"].locate() == tmp_path / "retailrocket" / "interactions.csv"
    assert not BUILTIN["retailrocket"].available()
    with pytest.raises(FileNotFoundError, match="set GAMER_BENCH_DATA"):
        BUILTIN["retailrocket"].load()


def test_toml_unknown_keys_are_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['colour'\] in the top level"):
        dataset_from_toml(write(tmp_path, 'colour = "red"\n' + BASE))
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['usr'\] in \[columns\]"):
        dataset_from_toml(write(tmp_path, BASE + '[columns]\nusr = "u"\n'))


def test_toml_missing_and_invalid_values_are_errors(tmp_path):
    with pytest.raises(ValueError, match="missing required key 'format'"):
        dataset_from_toml(write(tmp_path, BASE.replace('format = "csv"\n', "")))
    with pytest.raises(ValueError, match="format must be one of"):
        dataset_from_toml(write(tmp_path, BASE.replace('"csv"', '"xls"')))
    with pytest.raises(ValueError, match="must be the highest-level behavior"):
        dataset_from_toml(write(tmp_path, 'target = "view"\n' + BASE))
    with pytest.raises(ValueError, match="rule = 'gap' needs 'minutes'"):
        dataset_from_toml(write(tmp_path, BASE.replace("minutes = 30\n", "")))
    with pytest.raises(ValueError, match="not valid TOML"):
        dataset_from_toml(write(tmp_path, "path = \n"))


def test_toml_paths_are_relative_to_the_file(tmp_path):
    spec = dataset_from_toml(write(tmp_path, BASE))
    assert spec.name == "d" and spec.locate() == tmp_path / "e.csv" and not spec.available()


def test_a_toml_conversion_table_makes_conversion_data_and_synthetic_scales(tmp_path):
    (tmp_path / "e.csv").write_text(
        "user_id,item_id,behavior,timestamp\nu,1,view,0\nu,1,cart,5\nu,1,buy,10\nu,2,view,20\n"
    )
    three = BASE.replace('"buy"]', '"cart", "buy"]')
    view = 'exposure = "view"\nconversion = "buy"\n'
    inter = dataset_from_toml(write(tmp_path, three + "[conversion]\n" + view)).load()
    assert inter.schema.behaviors == ("exposure", "conversion") and inter.behavior.tolist() == [0, 1, 0]
    with pytest.warns(FutureWarning, match=r"\[ranking\] is now named \[conversion\]"):  # the older name
        older = dataset_from_toml(write(tmp_path, three + "[ranking]\n" + view)).load()
    assert older.behavior.tolist() == inter.behavior.tolist()
    with pytest.raises(ValueError, match=r"give one of them, not both"):
        dataset_from_toml(write(tmp_path, three + "[ranking]\n" + view + "[conversion]\n" + view))
    with pytest.raises(ValueError, match="needs both 'exposure' and 'conversion'"):
        dataset_from_toml(write(tmp_path, BASE + '[conversion]\nexposure = "view"\n'))
    small = 'format = "synthetic"\n[synthetic]\nn_users = 40\nn_items = 200\n'
    half = dataset_from_toml(write(tmp_path, small + "scale = 0.5\n")).load()
    assert half.n_users == 20 and half.n_items == 100
    big = dataset_from_toml(write(tmp_path, small.replace('"synthetic"', '"synthetic-big"'))).load()
    assert big.schema.behaviors == ("exposure", "conversion") and big.n_users > 40  # scaled 3x by default


def test_unknown_dataset_name_lists_the_builtins():
    with pytest.raises(ValueError, match="unknown dataset 'nope'.*synthetic"):
        resolve("nope")


def test_readme_opens_with_the_two_commands_and_ci_runs_its_test_command():
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    main_job, tests = blocks[0].strip(), blocks[1].strip()
    assert readme.index(main_job) < 200 and "gamer-bench run" in main_job and "torch==2.13.0" in main_job
    ci = (REPO / ".ci" / "run").read_text()
    for step in tests.split(" && "):
        assert step.replace("pip install", "python -m pip install --quiet") in ci or step in ci, step


def test_a_sample_keeps_n_users_with_whole_histories_and_is_part_of_the_identity(tmp_path):
    small = 'format = "synthetic"\n[synthetic]\nn_users = 60\nn_items = 300\n'
    whole_spec = dataset_from_toml(write(tmp_path, small))
    whole = whole_spec.load()
    sampled_spec = dataset_from_toml(write(tmp_path, small + "[sample]\nusers = 25\nseed = 3\n"))
    sampled = sampled_spec.load()
    assert sampled.n_users == 25 and "a sample of 25 users, seed 3" in sampled_spec.description
    rows_of = {
        uid: count for uid, count in zip(*np.unique(whole.user_ids[whole.user], return_counts=True), strict=True)
    }
    kept, counts = np.unique(sampled.user_ids[sampled.user], return_counts=True)
    assert all(rows_of[uid] == count for uid, count in zip(kept, counts, strict=True))  # histories never cut
    assert sampled_spec.identity() != dataset_from_toml(write(tmp_path, small)).identity()
    again = dataset_from_toml(write(tmp_path, small + "[sample]\nusers = 25\nseed = 3\n")).load()
    assert np.array_equal(again.user_ids, sampled.user_ids)  # the seed fixes the draw
    other = dataset_from_toml(write(tmp_path, small + "[sample]\nusers = 25\nseed = 4\n")).load()
    assert not np.array_equal(other.user_ids, sampled.user_ids)


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        ("users = 60", r"keeps every one of the 60 users"),
        ("users = 0", r"\[sample\] needs users = N"),
        ("seed = 1", r"\[sample\] needs users = N"),
        ('users = "10"', r"users"),
        ("users = 5\nrate = 0.1", r"rate"),
    ],
)
def test_a_bad_sample_is_an_error_naming_the_file(tmp_path, sample, message):
    text = 'format = "synthetic"\n[synthetic]\nn_users = 60\nn_items = 300\n' + f"[sample]\n{sample}\n"
    with pytest.raises(ValueError, match=message) as error:
        dataset_from_toml(write(tmp_path, text)).load()
    assert "d.toml" in str(error.value)
