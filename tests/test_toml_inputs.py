"""What a dataset TOML may hold: typed values, only the keys its format reads, behaviors its data has."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from protocols.catalog import dataset_from_toml
from protocols.formats import write_gamer_release
from protocols.interactions import Interactions, Schema, SessionRule
from protocols.sessions import sessionize

BASE = 'path = "e.csv"\nformat = "csv"\nbehaviors = ["view", "buy"]\n[session]\nrule = "gap"\nminutes = 30\n'
SYNTHETIC = 'format = "synthetic"\n[synthetic]\nn_users = 40\nn_items = 200\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "d.toml"
    path.write_text(text)
    return path


def events(tmp_path: Path, *rows: str) -> None:
    """``e.csv``: the default header, then ``rows`` of user,item,behavior,timestamp."""
    (tmp_path / "e.csv").write_text("\n".join(["user_id,item_id,behavior,timestamp", *rows]) + "\n")


def write_release(
    folder: Path, behaviors: tuple[str, ...], user: list[int], level: list[int], seconds: list[int]
) -> Interactions:
    """A GAMER release ``tiny`` of these rows (item i on row i), its sessions cut at 30-minute gaps."""
    schema = Schema("tiny", behaviors, SessionRule.gap(30))
    log = sessionize(Interactions.from_columns(np.array(user), np.arange(len(user)), np.array(level), seconds, schema))
    write_gamer_release(log, folder, "tiny")
    return log


def rejected(tmp_path: Path, text: str, message: str) -> None:
    """``text`` as a TOML is refused with an error that starts with the TOML's path and holds ``message``."""
    toml = write(tmp_path, text)
    with pytest.raises(ValueError, match=re.escape(f"{toml}: ") + ".*" + message):
        dataset_from_toml(toml)


# -- 1. every value has the type its key expects ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BASE.replace("minutes = 30", 'minutes = "30"'), r"'minutes' in \[session\] must be a number; found \"30\""),
        (BASE.replace("minutes = 30", "minutes = true"), r"'minutes' in \[session\] must be a number; found true"),
        (
            'header = "false"\n' + BASE,
            r"'header' in the top level must be a boolean \(true or false\); found \"false\"",
        ),
        (BASE.replace('["view", "buy"]', '"a,b,c"'), r"'behaviors' in the top level must be a list of strings"),
        (BASE.split("[session]")[0] + 'session = "gap"\n', r"'session' in the top level must be a table"),
        (BASE.replace('"e.csv"', "5"), r"'path' in the top level must be a string; found 5 \(an integer\)"),
        ("name = 1\n" + BASE, r"'name' in the top level must be a string"),
        (BASE.replace('"csv"', "1"), r"'format' in the top level must be a string"),
        ('target = ["buy"]\n' + BASE, r"'target' in the top level must be a string"),
        ("timezone = 8\n" + BASE, r"'timezone' in the top level must be a string"),
        ("separator = 44\n" + BASE, r"'separator' in the top level must be a string"),
        ("description = false\n" + BASE, r"'description' in the top level must be a string"),
        ('columns = "uid"\n' + BASE, r"'columns' in the top level must be a table"),
        (BASE + "[columns]\nuser = 0\n", r"'user' in \[columns\] must be a string"),
        ('behavior_map = ["view"]\n' + BASE, r"'behavior_map' in the top level must be a table of strings"),
        ('behavior_map = { "1" = 1 }\n' + BASE, r"'behavior_map' in the top level must be a table of strings"),
        ("rating_edges = 3\n" + BASE, r"'rating_edges' in the top level must be a list of numbers"),
        ('rating_edges = ["3"]\n' + BASE, r"'rating_edges' in the top level must be a list of numbers"),
        ("rating_edges = [true]\n" + BASE, r"'rating_edges' in the top level must be a list of numbers"),
        (BASE + "[conversion]\nexposure = 0\nconversion = 1\n", r"'exposure' in \[conversion\] must be a string"),
        ('ranking = "view"\n' + BASE, r"'ranking' in the top level must be a table"),
        (BASE.replace('rule = "gap"', "rule = 1"), r"'rule' in \[session\] must be a string"),
    ],
)
def test_a_value_of_the_wrong_type_names_the_key_and_the_expected_type(tmp_path, text, message):
    rejected(tmp_path, text, message)


def test_a_string_where_a_number_or_boolean_belongs_says_to_drop_the_quotes(tmp_path):
    rejected(tmp_path, BASE.replace("minutes = 30", 'minutes = "30"'), r"\(a string\); write it without quotes")
    rejected(tmp_path, 'header = "false"\n' + BASE, r"\(a string\); write it without quotes")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('n_users = "60"', r"'n_users' in \[synthetic\] must be an integer; found \"60\" \(a string\)"),
        ("n_users = 60.0", r"'n_users' in \[synthetic\] must be an integer; found 60.0 \(a float\)"),
        ("seed = true", r"'seed' in \[synthetic\] must be an integer; found true \(a boolean\)"),
        ('drift = "0.5"', r"'drift' in \[synthetic\] must be a number"),
        ("appeal_exponent = false", r"'appeal_exponent' in \[synthetic\] must be a number"),
        ('scale = "2"', r"'scale' in \[synthetic\] must be a number"),
    ],
)
def test_synthetic_fields_are_checked_against_their_annotated_types(tmp_path, line, message):
    for fmt in ("synthetic", "synthetic-big"):
        rejected(tmp_path, f'format = "{fmt}"\n[synthetic]\n{line}\n', message)


def test_a_float_field_of_the_generator_takes_an_integer(tmp_path):
    inter = dataset_from_toml(write(tmp_path, SYNTHETIC + "drift = 1\nappeal_exponent = 1\n")).load()
    assert inter.n_users > 0


def test_behavior_map_must_name_behaviors(tmp_path):
    rejected(
        tmp_path,
        'behavior_map = { "1" = "view", "2" = "bought" }\n' + BASE,
        r"behavior_map maps to \['bought'\], which are not in 'behaviors' \['view', 'buy'\]",
    )


def test_repeated_behaviors_name_the_toml(tmp_path):
    rejected(tmp_path, BASE.replace('["view", "buy"]', '["buy", "view", "buy"]'), "behaviors repeat")


# -- 2. every key has an effect on the format it is given with ----------------------------------------------


SESSION = '[session]\nrule = "gap"\nminutes = 30\n'


@pytest.mark.parametrize(
    ("fmt", "key", "text"),
    [
        ("gamer", "behaviors", 'behaviors = ["view", "buy"]\n'),
        ("gamer", "session", SESSION),
        ("gamer", "target", 'target = "buy"\n'),
        ("gamer", "columns", '[columns]\nuser = "uid"\n'),
        ("gamer", "behavior_map", 'behavior_map = { "1" = "buy" }\n'),
        ("gamer", "rating_edges", "rating_edges = [3]\n"),
        ("parquet", "separator", 'separator = ";"\n'),
        ("parquet", "header", "header = false\n"),
        ("taobao", "columns", '[columns]\nuser = "uid"\n'),
        ("taobao", "separator", 'separator = ";"\n'),
        ("taobao", "header", "header = false\n"),
        ("taobao", "rating_edges", "rating_edges = [3]\n"),
        ("sslrec", "behavior_map", 'behavior_map = { "1" = "buy" }\n'),
        ("sslrec", "columns", '[columns]\nuser = "uid"\n'),
        ("sslrec", "rating_edges", "rating_edges = [3]\n"),
        ("sslrec", "separator", 'separator = ";"\n'),
        ("recbole", "separator", 'separator = ";"\n'),
        ("recbole", "header", "header = false\n"),
        ("csv", "synthetic", "[synthetic]\nseed = 1\n"),
        ("synthetic", "path", 'path = "data"\n'),
        ("synthetic-big", "conversion", '[conversion]\nexposure = "p3s"\nconversion = "conversion"\n'),
    ],
)
def test_a_key_the_format_does_not_read_is_an_error(tmp_path, fmt, key, text):
    if fmt in ("synthetic", "synthetic-big"):
        head = f'format = "{fmt}"\n'
    elif fmt == "gamer":
        head = f'path = "data"\nformat = "{fmt}"\n'
    else:
        head = f'path = "data"\nformat = "{fmt}"\nbehaviors = ["view", "buy"]\n' + SESSION
    # top-level keys before the first table, tables after it
    toml = text + head if not text.startswith("[") else head + text
    rejected(tmp_path, toml, rf"\['{key}'\] ha(s|ve) no effect with format '{fmt}', which reads only \[")


def test_the_gamer_format_takes_its_behaviors_and_sessions_from_the_release(tmp_path):
    rejected(
        tmp_path,
        'path = "r"\nformat = "gamer"\nbehaviors = ["view", "buy"]\n[session]\nrule = "file"\n',
        r"\['behaviors', 'session'\] .*format 'gamer'.*behavior_level.json.*SMB.session.json",
    )
    log = write_release(tmp_path / "release", ("view", "buy"), [0, 0, 0, 1, 1], [0, 0, 1, 0, 1], [0, 60, 120, 0, 7200])
    toml = write(tmp_path, 'name = "tiny"\npath = "release"\nformat = "gamer"\ntimezone = "UTC"\n')
    inter = dataset_from_toml(toml).load()  # no 'behaviors' nor [session] needed
    assert inter.schema.behaviors == ("view", "buy") and inter.schema.session_rule.kind == "file"
    assert inter.session.tolist() == [0, 0, 0, 0, 1] and inter.timestamp.tolist() == log.timestamp.tolist()


def test_the_taobao_format_honours_behavior_map(tmp_path):
    (tmp_path / "UserBehavior.csv").write_text("1,10,7,pv,1511544070\n1,10,7,buy,1511544170\n2,11,7,pv,1511544070\n")
    toml = write(
        tmp_path,
        'path = "UserBehavior.csv"\nformat = "taobao"\nbehaviors = ["view", "buy"]\n'
        'behavior_map = { "pv" = "view", "buy" = "buy" }\n[session]\nrule = "day"\ntimezone = "Asia/Shanghai"\n',
    )
    assert dataset_from_toml(toml).load().behavior.tolist() == [0, 1, 0]


def test_the_recbole_format_honours_every_column_and_the_timezone(tmp_path):
    (tmp_path / "d.inter").write_text(
        "uid:token\tiid:token\taction:token\twhen:token\n"
        "u1\t1\tview\t2024-01-01 08:00:00\nu1\t1\tbuy\t2024-01-01 08:01:00\n"
    )
    toml = write(
        tmp_path,
        'path = "d.inter"\nformat = "recbole"\nbehaviors = ["view", "buy"]\ntimezone = "+08:00"\n'
        '[columns]\nuser = "uid"\nitem = "iid"\nbehavior = "action"\ntimestamp = "when"\n'
        '[session]\nrule = "gap"\nminutes = 30\n',
    )
    inter = dataset_from_toml(toml).load()
    assert inter.user_ids.tolist() == ["u1"] and inter.behavior.tolist() == [0, 1]
    assert inter.timestamp.tolist() == [1_704_067_200, 1_704_067_260]  # 08:00 at +08:00 is 00:00 UTC


def test_rating_edges_and_behavior_map_exclude_each_other(tmp_path):
    rejected(
        tmp_path,
        'rating_edges = [3]\nbehavior_map = { "1" = "view" }\n' + BASE,
        "'behavior_map' has no effect with 'rating_edges'",
    )


@pytest.mark.parametrize("fmt", ["sslrec", "taobao"])
def test_timezone_of_a_unix_seconds_format_only_sets_the_day_rule(tmp_path, fmt):
    head = f'path = "data"\nformat = "{fmt}"\nbehaviors = ["view", "buy"]\ntimezone = "Asia/Shanghai"\n'
    rejected(
        tmp_path, head + '[session]\nrule = "gap"\nminutes = 30\n', f"'timezone' has no effect with format '{fmt}'"
    )
    rejected(
        tmp_path,
        head + '[session]\nrule = "day"\ntimezone = "UTC"\n',
        f"'timezone' has no effect with format '{fmt}'",
    )
    spec = dataset_from_toml(write(tmp_path, head + '[session]\nrule = "day"\n'))
    assert spec.definition()["toml"]["timezone"] == "Asia/Shanghai"


@pytest.mark.parametrize(
    ("session", "message"),
    [
        ('rule = "day"\nminutes = 30', r"key\(s\) \['minutes'\] in \[session\] have no effect with rule 'day'"),
        (
            'rule = "gap"\nminutes = 30\ntimezone = "UTC"',
            r"key\(s\) \['timezone'\] in \[session\] have no effect with rule 'gap'",
        ),
        ('rule = "file"', r"rule = 'file' .*only format 'gamer'"),
        ('rule = "gap"\nminutes = -5', r"\[session\] minutes must be >= 0, found -5"),
    ],
)
def test_session_keys_the_rule_does_not_read_are_errors(tmp_path, session, message):
    rejected(tmp_path, BASE.split("[session]")[0] + "[session]\n" + session + "\n", message)


def test_a_headerless_table_names_every_column_by_position(tmp_path):
    (tmp_path / "e.csv").write_text("u,1,view,0\nu,1,buy,10\n")
    rejected(tmp_path, "header = false\n" + BASE, r"header = false.*\[columns\] must give")
    rejected(
        tmp_path,
        "header = false\n" + BASE + '[columns]\nuser = "u"\nitem = 1\nbehavior = 2\ntimestamp = 3\n',
        r"'user' in \[columns\] must be a 0-based column position",
    )
    positions = "header = false\n" + BASE + "[columns]\nuser = 0\nitem = 1\nbehavior = 2\ntimestamp = 3\n"
    assert dataset_from_toml(write(tmp_path, positions)).load().behavior.tolist() == [0, 1]


# -- 3. every behavior the TOML names occurs in the data ------------------------------------------------------


def test_a_behavior_that_never_occurs_is_reported_and_a_missing_target_is_an_error(tmp_path):
    events(tmp_path, "u,1,view,0", "u,1,buy,10")
    toml = write(tmp_path, BASE.replace('"buy"]', '"cart", "buy"]'))
    with pytest.warns(
        UserWarning, match=re.escape(f"{toml}: behavior(s) ['cart'] never occur in {tmp_path / 'e.csv'}")
    ):
        dataset_from_toml(toml).load()
    events(tmp_path, "u,1,view,0", "u,2,view,10")
    with pytest.raises(
        ValueError, match=re.escape(f"behavior 'buy' (the target) never occurs in {tmp_path / 'e.csv'}")
    ):
        dataset_from_toml(write(tmp_path, BASE)).load()


def test_every_behavior_that_occurs_loads_quietly(tmp_path):
    events(tmp_path, "u,1,view,0", "u,1,buy,10")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dataset_from_toml(write(tmp_path, BASE)).load().behavior.tolist() == [0, 1]


def test_the_conversion_of_a_conversion_view_is_its_target(tmp_path):
    events(tmp_path, "u,1,view,0", "u,1,buy,10")
    text = BASE.replace('"buy"]', '"cart", "buy"]') + '[conversion]\nexposure = "view"\nconversion = "cart"\n'
    with pytest.raises(ValueError, match=r"behavior 'cart' \(the target: \[conversion\] conversion\) never occurs"):
        dataset_from_toml(write(tmp_path, text)).load()


def test_a_release_behavior_that_never_occurs_is_reported(tmp_path):
    write_release(tmp_path / "release", ("view", "cart", "buy"), [0, 0], [0, 2], [0, 60])
    with pytest.warns(UserWarning, match=r"behavior\(s\) \['cart'\] never occur"):
        dataset_from_toml(write(tmp_path, 'name = "tiny"\npath = "release"\nformat = "gamer"\n')).load()


def test_a_toml_that_is_not_utf8_is_named_with_what_to_do(tmp_path):
    toml = tmp_path / "latin.toml"
    toml.write_bytes('name = "caf\u00e9"\nformat = "synthetic"\n'.encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin\.toml: not UTF-8 text \(byte 0xe9.*re-encode"):
        dataset_from_toml(toml)
