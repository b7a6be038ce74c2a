"""Importers (protocols.formats): tiny hand-made files of every format, their error messages, and
the real files of the data folder when present."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import Interactions, Schema, SessionRule, sessionize
from protocols.formats import (
    DataFormatError,
    read_gamer_release,
    read_recbole_inter,
    read_sslrec,
    read_table,
    read_taobao_userbehavior,
    restricted_load,
    write_gamer_release,
)

VCB = Schema("hand", ("view", "cart", "buy"), SessionRule.gap(30))
MOVIES = Schema("movies", ("dislike", "neutral", "like"), SessionRule.day("UTC"))
T0 = 1_700_000_000  # 2023-11-14 22:13:20 UTC


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def rows(inter: Interactions) -> list[tuple]:
    """(user id, item id, behavior name, timestamp) in canonical order, with the original ids."""
    return list(
        zip(
            inter.user_ids[inter.user].tolist(),
            inter.item_ids[inter.item].tolist(),
            inter.behavior_names().tolist(),
            inter.timestamp.tolist(),
            strict=True,
        )
    )


# -- table: CSV / TSV / parquet -------------------------------------------------------------------
def test_csv_with_default_columns(tmp_path):
    path = write(
        tmp_path / "log.csv",
        f"user_id,item_id,behavior,timestamp,extra\n2,7,buy,{T0 + 5},x\n1,7,view,{T0},y\n2,7,view,{T0 + 5},z\n",
    )
    inter = read_table(path, schema=VCB)
    assert rows(inter) == [(1, 7, "view", T0), (2, 7, "view", T0 + 5), (2, 7, "buy", T0 + 5)]
    assert inter.behavior.dtype == np.int8


def test_tsv_with_renamed_columns_and_behavior_codes(tmp_path):
    path = write(tmp_path / "log.txt", f"who\twhat\tcode\twhen\nu1\ti9\t1\t{T0}\nu1\ti8\t3\t{T0 + 1}\n")
    inter = read_table(
        path,
        schema=VCB,
        columns={"user": "who", "item": "what", "behavior": "code", "timestamp": "when"},
        behavior_map={"1": "view", "2": "cart", "3": "buy"},
    )
    assert rows(inter) == [("u1", "i9", "view", T0), ("u1", "i8", "buy", T0 + 1)]


def test_headerless_csv_by_position(tmp_path):
    path = write(tmp_path / "log.csv", f"{T0},5,1,cart\n{T0 + 9},6,1,buy\n")
    inter = read_table(path, schema=VCB, header=False, columns={"user": 2, "item": 1, "behavior": 3, "timestamp": 0})
    assert rows(inter) == [(1, 5, "cart", T0), (1, 6, "buy", T0 + 9)]


def test_gzip_csv_is_recognised_by_its_suffixes(tmp_path):
    path = tmp_path / "log.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(f"user_id,item_id,behavior,timestamp\n1,2,view,{T0}\n")
    assert len(read_table(path, schema=VCB)) == 1


def test_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame({"user_id": [3, 3], "item_id": [1, 2], "behavior": ["cart", "view"], "timestamp": [T0, T0]})
    frame.to_parquet(tmp_path / "log.parquet")
    inter = read_table(tmp_path / "log.parquet", schema=VCB)
    assert rows(inter) == [(3, 2, "view", T0), (3, 1, "cart", T0)]  # equal times: lower level first


def test_parquet_missing_column_lists_found_columns(tmp_path):
    pytest.importorskip("pyarrow")
    pd.DataFrame({"user_id": [1], "item_id": [2], "behavior": ["view"]}).to_parquet(tmp_path / "log.parquet")
    with pytest.raises(DataFormatError, match=r"log.parquet: missing column\(s\) \['timestamp'\]; found columns"):
        read_table(tmp_path / "log.parquet", schema=VCB)


def test_rating_edges_make_movielens_behaviors(tmp_path):
    path = write(
        tmp_path / "r.csv",
        "user_id,item_id,rating,timestamp\n" + "".join(f"1,{r},{r},{T0 + r}\n" for r in range(1, 6)),
    )
    inter = read_table(path, schema=MOVIES, columns={"behavior": "rating"}, rating_edges=[3, 4])
    assert inter.behavior_names().tolist() == ["dislike", "dislike", "neutral", "like", "like"]


def test_datetime_strings_naive_in_timezone_and_with_offsets(tmp_path):
    naive = write(tmp_path / "a.csv", "user_id,item_id,behavior,timestamp\n1,1,view,2023-11-15 06:13:20\n")
    offset = write(tmp_path / "b.csv", "user_id,item_id,behavior,timestamp\n1,1,view,2023-11-15T06:13:20+08:00\n")
    assert read_table(naive, schema=VCB, timezone="Asia/Shanghai").timestamp.tolist() == [T0]
    assert read_table(naive, schema=VCB, timezone="+08:00").timestamp.tolist() == [T0]
    assert read_table(naive, schema=VCB).timestamp.tolist() == [T0 + 8 * 3600]
    assert read_table(offset, schema=VCB, timezone="America/New_York").timestamp.tolist() == [T0]


def test_mixed_utc_offsets_are_each_exact(tmp_path):
    text = HEAD + "1,1,view,2023-11-15 06:13:20+08:00\n1,2,view,2023-11-14 23:13:20+01:00\n"
    assert read_table(write(tmp_path / "m.csv", text), schema=VCB).timestamp.tolist() == [T0, T0]


def test_timestamp_format(tmp_path):
    path = write(tmp_path / "d.csv", "user_id,item_id,behavior,timestamp\n1,1,view,20231114\n")
    inter = read_table(path, schema=VCB, timestamp_format="%Y%m%d")
    assert inter.timestamp.tolist() == [T0 - (T0 % 86400)]


# -- table: error messages ------------------------------------------------------------------------
HEAD = "user_id,item_id,behavior,timestamp\n"


def test_missing_column_names_the_columns_found(tmp_path):
    path = write(tmp_path / "x.csv", "user_id,item_id,behavior,time\n1,2,view,3\n")
    with pytest.raises(
        DataFormatError,
        match=r"x.csv, line 1 \(header\): missing column\(s\) \['timestamp'\]; "
        r"found columns \['user_id', 'item_id', 'behavior', 'time'\]",
    ):
        read_table(path, schema=VCB)


def test_unknown_behavior_names_line_value_and_known_ones(tmp_path):
    path = write(tmp_path / "x.csv", HEAD + f"1,2,view,{T0}\n1,2,clik,{T0}\n")
    with pytest.raises(
        DataFormatError,
        match=r"x.csv, line 3: field 'behavior' has unknown behavior 'clik'; "
        r"expected one of \['view', 'cart', 'buy'\]",
    ):
        read_table(path, schema=VCB)


def test_unknown_behavior_code_lists_the_map_keys(tmp_path):
    path = write(tmp_path / "x.csv", HEAD + f"1,2,1,{T0}\n1,2,7,{T0}\n")
    with pytest.raises(DataFormatError, match=r"line 3: .*unknown behavior 7; expected one of \[1, 2\]"):
        read_table(path, schema=VCB, behavior_map={1: "view", 2: "buy"})


def test_line_numbers_count_blank_lines(tmp_path):
    path = write(tmp_path / "x.csv", HEAD + f"1,2,view,{T0}\n\n\n1,2,view,yesterday\n")
    with pytest.raises(
        DataFormatError, match=r"x.csv, line 5: field 'timestamp': expected unix seconds, found 'yesterday'"
    ):
        read_table(path, schema=VCB)


def test_milliseconds_are_not_taken_for_seconds(tmp_path):
    path = write(tmp_path / "x.csv", HEAD + f"1,2,view,{T0 * 1000}\n")
    with pytest.raises(DataFormatError, match=r"line 2: field 'timestamp': .* past the year 5000 \(milliseconds"):
        read_table(path, schema=VCB)


def test_unparseable_datetime_string(tmp_path):
    path = write(tmp_path / "x.csv", HEAD + "1,2,view,2023-11-14 10:00:00\n1,2,view,2023-13-45 10:00:00\n")
    with pytest.raises(
        DataFormatError, match=r"line 3: field 'timestamp': cannot parse timestamp '2023-13-45 10:00:00'"
    ):
        read_table(path, schema=VCB)


def test_timestamp_repeated_by_daylight_saving_is_an_error(tmp_path):
    path = write(tmp_path / "x.csv", HEAD + "1,2,view,2023-11-05 01:30:00\n")
    with pytest.raises(DataFormatError, match=r"line 2: .*'2023-11-05 01:30:00' is skipped or repeated"):
        read_table(path, schema=VCB, timezone="America/New_York")


def test_empty_id_is_an_error_not_a_dropped_row(tmp_path):
    path = write(tmp_path / "x.csv", HEAD + f"1,2,view,{T0}\n1,,view,{T0}\n")
    with pytest.raises(DataFormatError, match=r"x.csv, line 3: field 'item_id' is empty"):
        read_table(path, schema=VCB)


def test_empty_file_and_header_only(tmp_path):
    with pytest.raises(DataFormatError, match=r"empty.csv: the file is empty"):
        read_table(write(tmp_path / "empty.csv", ""), schema=VCB)
    with pytest.raises(DataFormatError, match=r"head.csv: no data rows after the header"):
        read_table(write(tmp_path / "head.csv", HEAD), schema=VCB)


def test_row_with_too_many_fields_names_the_line(tmp_path):
    path = write(tmp_path / "x.csv", HEAD + f"1,2,view,{T0}\n1,2,view,{T0},9\n")
    with pytest.raises(DataFormatError, match=r"x.csv: .*Expected 4 fields in line 3, saw 5"):
        read_table(path, schema=VCB)


def test_first_row_longer_than_the_header_is_an_error_not_a_shift(tmp_path):
    # pandas would otherwise take the first field as an index and shift every column by one.
    path = write(tmp_path / "x.csv", HEAD + f"1,2,view,{T0},9\n1,2,view,{T0},9\n")
    with pytest.raises(DataFormatError, match=r"x.csv, line 2: expected as many fields as the header, found more"):
        read_table(path, schema=VCB)


def test_unknown_suffix_asks_for_a_format(tmp_path):
    with pytest.raises(DataFormatError, match=r"cannot tell the table format from the suffix '.dat'"):
        read_table(write(tmp_path / "x.dat", HEAD), schema=VCB)


# -- GAMER release --------------------------------------------------------------------------------
def make_release(folder: Path, name: str = "Toy", **override) -> Path:
    """The example of the reference notes (section 1.2), with one item (99) that no user touched."""
    files = {
        "SMB.inter": {"0": [17, 17, 4, 9, 17], "1": [3, 8, 8]},
        "SMB.behavior": {"0": ["click", "cart", "click", "click", "buy"], "1": ["click", "click", "buy"]},
        "SMB.session": {"0": [5, 5, 6, 6, 7], "1": [0, 1, 2]},
        "SMB.time": {
            "0": [
                "2024-03-01 10:00:00",
                "2024-03-01 10:02:13",
                "2024-03-02 09:00:00",
                "2024-03-02 09:01:00",
                "2024-03-03 20:00:00",
            ],
            "1": ["2024-03-01 08:00:00", "2024-03-02 08:00:00", "2024-03-03 08:00:00"],
        },
        "behavior_level": {"buy": 2, "click": 0, "cart": 1},  # key order is irrelevant
        "index": {str(i): [f"<a_{i % 5}>", f"<b_{i * 10}>", f"<c_{i + 1}>"] for i in (3, 4, 8, 9, 17, 99)},
    } | override
    folder.mkdir(parents=True, exist_ok=True)
    for kind, data in files.items():
        if data is not None:
            (folder / f"{name}.{kind}.json").write_text(json.dumps(data))
    return folder


def test_read_release(tmp_path):
    inter = read_gamer_release(make_release(tmp_path), timezone="+01:00")
    assert inter.schema.name == "Toy" and inter.schema.behaviors == ("click", "cart", "buy")
    assert inter.schema.session_rule.kind == "file"
    assert inter.user_ids.tolist() == [0, 1] and inter.item_ids.tolist() == [3, 4, 8, 9, 17, 99]
    assert inter.item_ids[inter.item].tolist() == [17, 17, 4, 9, 17, 3, 8, 8]
    assert inter.behavior_names().tolist() == [
        "click",
        "cart",
        "click",
        "click",
        "buy",
        "click",
        "click",
        "buy",
    ]
    assert inter.session.tolist() == [0, 0, 1, 1, 2, 0, 1, 2]
    march_1_10h = int(pd.Timestamp("2024-03-01 09:00:00", tz="UTC").timestamp())
    assert inter.timestamp[0] == march_1_10h
    sid = inter.schema.item_semantic_ids
    assert sid.shape == (6, 3) and sid[inter.item_ids.tolist().index(17)].tolist() == [2, 170, 18]


def test_release_without_index_has_no_semantic_ids(tmp_path):
    inter = read_gamer_release(make_release(tmp_path, index=None), "Toy")
    assert inter.schema.item_semantic_ids is None and inter.n_items == 5


def test_release_round_trip_of_hand_file(tmp_path):
    original = read_gamer_release(make_release(tmp_path / "a"))
    write_gamer_release(original, tmp_path / "b", "Copy")
    again = read_gamer_release(tmp_path / "b")
    assert_same(original, again)


def assert_same(a: Interactions, b: Interactions) -> None:
    for column in ("user", "item", "behavior", "timestamp", "session"):
        np.testing.assert_array_equal(getattr(a, column), getattr(b, column), err_msg=column)
    assert a.n_items == b.n_items and a.schema.behaviors == b.schema.behaviors
    if a.schema.item_semantic_ids is None:
        assert b.schema.item_semantic_ids is None
    else:
        np.testing.assert_array_equal(a.schema.item_semantic_ids, b.schema.item_semantic_ids)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 9), st.integers(0, 2), st.integers(0, 20_000)),
        min_size=1,
        max_size=40,
    ),
    st.integers(1, 4),
    st.booleans(),
)
def test_release_round_trip_reproduces_the_arrays(events, levels, with_ids):
    user, item, behavior, ts = (np.array(column) for column in zip(*events, strict=True))
    inter = Interactions.from_columns(
        user * 7 + 100, item, behavior, T0 + ts, VCB, item_catalogue=np.arange(12), source="hypothesis"
    )
    inter = sessionize(inter)
    if with_ids:
        codes = np.random.default_rng(len(events)).integers(0, 300, size=(inter.n_items, levels))
        inter = replace(inter, schema=replace(inter.schema, item_semantic_ids=codes))
    with tempfile.TemporaryDirectory() as folder:
        write_gamer_release(inter, folder, "H")
        assert_same(inter, read_gamer_release(folder))


def test_write_needs_sessions(tmp_path):
    inter = Interactions.from_columns([1], [2], np.array([0]), np.array([T0]), VCB)
    with pytest.raises(ValueError, match="apply protocols.sessions.sessionize first"):
        write_gamer_release(inter, tmp_path, "X")


def test_release_lists_of_unequal_length(tmp_path):
    make_release(tmp_path, **{"SMB.behavior": {"0": ["click", "cart", "click", "click", "buy"], "1": ["click", "buy"]}})
    with pytest.raises(
        DataFormatError,
        match=r"Toy.SMB.behavior.json: user '1': 2 entries, but Toy.SMB.inter.json has 3 for this user",
    ):
        read_gamer_release(tmp_path)


def test_release_unknown_behavior(tmp_path):
    make_release(
        tmp_path,
        **{"SMB.behavior": {"0": ["click", "cart", "click", "click", "buy"], "1": ["click", "fav", "buy"]}},
    )
    with pytest.raises(
        DataFormatError,
        match=r"Toy.SMB.behavior.json: user '1', position 1: unknown behavior 'fav'; "
        r"expected one of \['click', 'cart', 'buy'\]",
    ):
        read_gamer_release(tmp_path)


def test_release_bad_time(tmp_path):
    times = {
        "0": ["2024-03-01 10:00:00"] * 5,
        "1": ["2024-03-01 08:00:00", "2024-03-02T08:00", "2024-03-03 08:00:00"],
    }
    make_release(tmp_path, **{"SMB.time": times})
    with pytest.raises(
        DataFormatError,
        match=r"Toy.SMB.time.json: user '1', position 1: "
        r"expected a time 'YYYY-MM-DD HH:MM:SS', found '2024-03-02T08:00'",
    ):
        read_gamer_release(tmp_path)


def test_release_time_going_back_is_an_error(tmp_path):
    times = {
        "0": ["2024-03-01 10:00:00"] * 5,
        "1": ["2024-03-02 08:00:00", "2024-03-01 08:00:00", "2024-03-03 08:00:00"],
    }
    make_release(tmp_path, **{"SMB.time": times})
    with pytest.raises(DataFormatError, match=r"user '1', position 1: time goes back"):
        read_gamer_release(tmp_path)


def test_release_session_going_back_is_an_error(tmp_path):
    make_release(tmp_path, **{"SMB.session": {"0": [5, 5, 6, 6, 7], "1": [1, 0, 2]}})
    with pytest.raises(
        DataFormatError, match=r"Toy.SMB.session.json: user '1', position 1: session id goes back from 1 to 0"
    ):
        read_gamer_release(tmp_path)


def test_release_item_without_semantic_id(tmp_path):
    index = {str(i): ["<a_1>", "<b_2>"] for i in (3, 4, 8, 17)}
    make_release(tmp_path, index=index)
    with pytest.raises(DataFormatError, match=r"Toy.index.json: item 9 has no semantic ID \(1 items lack one\)"):
        read_gamer_release(tmp_path)


def test_release_semantic_ids_of_unequal_length(tmp_path):
    index = {str(i): ["<a_1>", "<b_2>"] for i in (3, 4, 8, 9, 17)} | {"8": ["<a_1>"]}
    make_release(tmp_path, index=index)
    with pytest.raises(DataFormatError, match=r"Toy.index.json: item 8: 1 tokens, item 3 has 2"):
        read_gamer_release(tmp_path)


def test_release_malformed_token(tmp_path):
    index = {str(i): ["<a_1>", "<b_2>"] for i in (3, 4, 8, 9, 17)} | {"9": ["<a_1>", "<c_2>"]}
    make_release(tmp_path, index=index)
    with pytest.raises(DataFormatError, match=r"item 9: token 1 is '<c_2>'; expected '<b_N>'"):
        read_gamer_release(tmp_path)


def test_release_levels_must_be_distinct(tmp_path):
    make_release(tmp_path, behavior_level={"click": 0, "cart": 1, "buy": 1})
    with pytest.raises(DataFormatError, match=r"behaviors 'cart' and 'buy' share level 1; expected distinct levels"):
        read_gamer_release(tmp_path)


def test_release_name_must_be_found(tmp_path):
    with pytest.raises(DataFormatError, match=r"expected exactly one '<D>.SMB.inter.json', found 0"):
        read_gamer_release(tmp_path)


def test_release_item_ids_must_be_integers(tmp_path):
    make_release(tmp_path, **{"SMB.inter": {"0": [17, 17, 4, 9, 17], "1": [3, "8", 8]}})
    with pytest.raises(
        DataFormatError,
        match=r"Toy.SMB.inter.json: user '1', position 1: expected an integer item id, found '8'",
    ):
        read_gamer_release(tmp_path)


# -- SSLRec pickled matrices ----------------------------------------------------------------------
def dump(path: Path, obj: object, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def make_sslrec(folder: Path) -> Path:
    view = sp.csr_matrix(np.array([[T0, T0 + 1, 0, 0], [0, 0, 0, 0], [0, T0 + 5, 0, 0]]))
    buy = sp.csr_matrix(np.array([[0, T0 + 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]))
    dump(folder / "train_mat_view.pkl", view)
    dump(folder / "train_mat_buy.pkl", buy, protocol=2)
    dump(folder / "test_mat.pkl", sp.coo_matrix(np.ones((3, 4))))  # never read
    return folder


def test_read_sslrec(tmp_path):
    inter = read_sslrec(make_sslrec(tmp_path), ["view", "buy"], name="tiny", session_rule=SessionRule.gap(30))
    assert inter.schema.behaviors == ("view", "buy") and inter.schema.name == "tiny"
    assert rows(inter) == [
        (0, 0, "view", T0),
        (0, 1, "view", T0 + 1),
        (0, 1, "buy", T0 + 2),
        (2, 1, "view", T0 + 5),
    ]
    assert inter.item_ids.tolist() == [0, 1, 2, 3]  # every column, touched or not
    assert inter.user_ids.tolist() == [0, 2]  # rows with an entry


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize("kind", ["csr_matrix", "csc_matrix", "coo_matrix", "lil_matrix", "dok_matrix", "csr_array"])
def test_restricted_load_admits_sparse_matrices(tmp_path, kind, protocol):
    matrix = getattr(sp, kind)(np.array([[0, T0], [T0 + 1, 0]]))
    dump(tmp_path / "m.pkl", matrix, protocol)
    loaded = restricted_load(tmp_path / "m.pkl")
    assert type(loaded) is type(matrix) and (loaded != matrix).nnz == 0


class Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "pwned"
    dump(tmp_path / "train_mat_view.pkl", Evil(marker))
    with pytest.raises(pickle.UnpicklingError, match=r"train_mat_view.pkl: refused to load (posix|os|nt)\.system"):
        read_sslrec(tmp_path, ["view"], session_rule=SessionRule.gap(30))
    assert not marker.exists()


def test_other_scipy_sparse_names_are_refused(tmp_path):
    # scipy.sparse.load_npz opens a file: only the matrix classes themselves are admitted.
    (tmp_path / "m.pkl").write_bytes(b"cscipy.sparse\nload_npz\n(S'/etc/passwd'\ntR.")
    with pytest.raises(pickle.UnpicklingError, match=r"m.pkl: refused to load scipy.sparse.load_npz"):
        restricted_load(tmp_path / "m.pkl")


def test_indicator_matrix_is_not_a_timestamp_matrix(tmp_path):
    dump(tmp_path / "train_mat_buy.pkl", sp.csr_matrix(np.array([[0, 1], [1, 0]])))
    with pytest.raises(
        DataFormatError,
        match=r"train_mat_buy.pkl: entry \(row 0, column 1\) holds 1; expected a unix timestamp",
    ):
        read_sslrec(tmp_path, ["buy"], session_rule=SessionRule.gap(30))


def test_sslrec_errors_name_file_and_what_was_found(tmp_path):
    make_sslrec(tmp_path)
    with pytest.raises(
        DataFormatError,
        match=r"missing train_mat_cart.pkl for behavior 'cart'; "
        r"found \['train_mat_buy.pkl', 'train_mat_view.pkl'\]",
    ):
        read_sslrec(tmp_path, ["view", "cart", "buy"], session_rule=SessionRule.gap(30))
    dump(tmp_path / "train_mat_buy.pkl", sp.csr_matrix((3, 5)))
    with pytest.raises(DataFormatError, match=r"train_mat_buy.pkl: expected shape \(3, 4\) .*found \(3, 5\)"):
        read_sslrec(tmp_path, ["view", "buy"], session_rule=SessionRule.gap(30))
    dump(tmp_path / "train_mat_buy.pkl", np.zeros((3, 4)))
    with pytest.raises(DataFormatError, match=r"train_mat_buy.pkl: expected a scipy.sparse matrix, found ndarray"):
        read_sslrec(tmp_path, ["view", "buy"], session_rule=SessionRule.gap(30))


# -- Taobao UserBehavior --------------------------------------------------------------------------
TAOBAO = (
    "1,10,100,pv,1511544070\n1,11,100,buy,1511544071\n2,10,100,fav,1511544072\n"
    "2,12,101,cart,1511544073\n3,13,102,pv,1511544074\n"
)


@pytest.mark.parametrize("chunksize", [2, 1000])
def test_taobao(tmp_path, chunksize):
    inter = read_taobao_userbehavior(write(tmp_path / "UserBehavior.csv", TAOBAO), chunksize=chunksize)
    assert inter.schema.behaviors == ("pv", "fav", "cart", "buy")
    assert inter.schema.session_rule == SessionRule.day("Asia/Shanghai")
    assert rows(inter)[:2] == [(1, 10, "pv", 1511544070), (1, 11, "buy", 1511544071)]
    assert len(inter) == 5 and inter.n_users == 3


def test_taobao_unknown_behavior_in_a_later_chunk(tmp_path):
    path = write(tmp_path / "u.csv", TAOBAO + "4,14,103,click,1511544075\n")
    with pytest.raises(
        DataFormatError,
        match=r"u.csv, line 6: field 'behavior_type': "
        r"expected one of \['pv', 'fav', 'cart', 'buy'\], found 'click'",
    ):
        read_taobao_userbehavior(path, chunksize=2)


def test_taobao_bad_integer_and_field_count(tmp_path):
    path = write(tmp_path / "u.csv", TAOBAO + "\n4,1x4,103,pv,1511544075\n")
    with pytest.raises(DataFormatError, match=r"u.csv, line 7: field 'item_id': expected an integer, found '1x4'"):
        read_taobao_userbehavior(path, chunksize=2)
    path = write(tmp_path / "v.csv", "1,10,100,pv\n" + TAOBAO)
    with pytest.raises(DataFormatError, match=r"v.csv, line 1: expected 5 comma-separated fields .* found 4"):
        read_taobao_userbehavior(path)


def test_taobao_extra_field_is_an_error(tmp_path):
    for name, text in (
        ("first.csv", "1,10,100,pv,1511544070,7\n" + TAOBAO),
        ("later.csv", TAOBAO + "3,1,1,pv,1,7\n"),
    ):
        line = 1 if name == "first.csv" else 6
        with pytest.raises(DataFormatError, match=rf"{name}, line {line}: expected 5 comma-separated fields"):
            read_taobao_userbehavior(write(tmp_path / name, text), chunksize=2)


def test_taobao_empty_file(tmp_path):
    with pytest.raises(DataFormatError, match=r"e.csv: the file is empty"):
        read_taobao_userbehavior(write(tmp_path / "e.csv", ""))


# -- RecBole atomic files -------------------------------------------------------------------------
RECBOLE_HEAD = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"


def test_recbole_with_rating_edges(tmp_path):
    path = write(tmp_path / "m.inter", RECBOLE_HEAD + f"196\t242\t3\t{T0}\n196\t302\t5\t{T0 + 1}\n7\t1\t1\t{T0}\n")
    inter = read_recbole_inter(path, schema=MOVIES, rating_edges=[3, 4])
    assert rows(inter) == [
        ("196", "242", "neutral", T0),
        ("196", "302", "like", T0 + 1),
        ("7", "1", "dislike", T0),
    ]


def test_recbole_behavior_field_and_single_behavior(tmp_path):
    head = "uid:token\tiid:token\tact:token\tts:float\n"
    path = write(tmp_path / "b.inter", head + f"a\tx\tbuy\t{T0}\na\ty\tview\t{T0 - 1}\n")
    inter = read_recbole_inter(
        path, schema=VCB, behavior_field="act", user_field="uid", item_field="iid", timestamp_field="ts"
    )
    assert rows(inter) == [("a", "y", "view", T0 - 1), ("a", "x", "buy", T0)]
    single = Schema("one", ("rate",), SessionRule.gap(30))
    plain = read_recbole_inter(write(tmp_path / "p.inter", RECBOLE_HEAD + f"1\t2\t4\t{T0}\n"), schema=single)
    assert plain.behavior.tolist() == [0]


def test_recbole_malformed_header(tmp_path):
    path = write(tmp_path / "h.inter", f"user_id:token\titem_id\trating:float\n1\t2\t{T0}\n")
    with pytest.raises(
        DataFormatError, match=r"h.inter, line 1: malformed header field 2 'item_id'; expected 'name:type'"
    ):
        read_recbole_inter(path, schema=MOVIES, rating_edges=[3, 4])
    path = write(tmp_path / "k.inter", "user_id:token\titem_id:integer\n1\t2\n")
    with pytest.raises(DataFormatError, match=r"k.inter, line 1: malformed header field 2 'item_id:integer'"):
        read_recbole_inter(path, schema=MOVIES, rating_edges=[3, 4])


def test_recbole_missing_field_lists_the_header(tmp_path):
    path = write(tmp_path / "m.inter", f"user_id:token\titem_id:token\trating:float\n1\t2\t{T0}\n")
    with pytest.raises(
        DataFormatError,
        match=r"m.inter, line 1: missing timestamp field 'timestamp'; found header fields "
        r"\['user_id:token', 'item_id:token', 'rating:float'\]",
    ):
        read_recbole_inter(path, schema=MOVIES, rating_edges=[3, 4])


def test_recbole_bad_float_names_the_line(tmp_path):
    path = write(tmp_path / "f.inter", RECBOLE_HEAD + f"1\t2\t4\t{T0}\n1\t3\tgood\t{T0}\n")
    with pytest.raises(
        DataFormatError, match=r"f.inter, line 3: field 'rating': expected a numeric rating, found 'good'"
    ):
        read_recbole_inter(path, schema=MOVIES, rating_edges=[3, 4])
    path = write(tmp_path / "g.inter", RECBOLE_HEAD + f"1\t2\t4\t{T0}\n1\t3\t4\tsoon\n")
    with pytest.raises(
        DataFormatError, match=r"g.inter, line 3: field 'timestamp': expected unix seconds, found 'soon'"
    ):
        read_recbole_inter(path, schema=MOVIES, rating_edges=[3, 4])


def test_recbole_row_with_extra_field(tmp_path):
    path = write(tmp_path / "x.inter", RECBOLE_HEAD + f"1\t2\t4\t{T0}\n1\t3\t4\t{T0}\t9\n")
    with pytest.raises(DataFormatError, match=r"x.inter: .*Expected 4 fields in line 3, saw 5"):
        read_recbole_inter(path, schema=MOVIES, rating_edges=[3, 4])


def test_recbole_empty_file(tmp_path):
    with pytest.raises(DataFormatError, match=r"e.inter: the file is empty"):
        read_recbole_inter(write(tmp_path / "e.inter", ""), schema=MOVIES, rating_edges=[3, 4])


# -- the real files of the data folder ------------------------------------------------------------
def test_real_retailrocket_csv(real_file):
    """Its speed is `gamer-bench perf` 's ("table (csv)"), not a timed assertion that fails on a busy machine."""
    inter = read_table(real_file("retailrocket/interactions.csv"), schema=VCB)
    assert len(inter) == 97_381 and inter.n_users == 2_174 and inter.n_items == 29_905
    assert np.bincount(inter.behavior).tolist() == [75_374, 12_456, 9_551]


def test_real_sslrec_matrices_equal_the_csv(real_file):
    folder = real_file("retailrocket/sslrec-format")
    csv = read_table(real_file("retailrocket/interactions.csv"), schema=VCB)
    mats = read_sslrec(folder, ["view", "cart", "buy"], name="hand", session_rule=SessionRule.gap(30))
    # Same interactions, even in the same canonical order; the matrices also list 208 items
    # (30,113 columns) that no training interaction touches.
    assert rows(mats) == rows(csv)
    assert mats.n_items == 30_113 and csv.n_items == 29_905


def test_real_taobao_sample(real_file):
    inter = read_taobao_userbehavior(real_file("taobao-userbehavior-sample/UserBehavior.csv"))
    assert len(inter) == 4_321 and inter.n_users == 43
    assert np.bincount(inter.behavior).tolist() == [3_926, 128, 190, 77]


def test_real_ml100k(ml100k_inter):
    inter = read_recbole_inter(ml100k_inter, schema=MOVIES, rating_edges=[3, 4])
    assert len(inter) == 100_000 and inter.n_users == 943 and inter.n_items == 1_682


def test_real_retailrocket_release_round_trip(real_file, tmp_path):
    inter = sessionize(read_table(real_file("retailrocket/interactions.csv"), schema=VCB))
    write_gamer_release(inter, tmp_path, "RetailRocket")
    assert_same(inter, read_gamer_release(tmp_path))
