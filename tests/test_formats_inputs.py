"""Importers (protocols.formats) on hostile input: ids that pandas would turn into numbers, one huge id,
millisecond timestamps, text that is not UTF-8, JSON nested too deep. Tiny hand-made files, as in
test_formats."""

from __future__ import annotations

import gzip
import json
import re
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_formats import HEAD, MOVIES, RECBOLE_HEAD, T0, TAOBAO, VCB, make_release, write

from protocols.formats import (
    DataFormatError,
    read_gamer_release,
    read_recbole_inter,
    read_table,
    read_taobao_userbehavior,
)

BIG = 12345678901234567  # 17 digits: as a float64 it equals BIG + 1


# -- ids are text -------------------------------------------------------------------------------
def test_table_ids_are_compared_as_text(tmp_path):
    # '4e2' would make pandas read the item column as float64, where BIG and BIG + 1 are one number.
    text = HEAD + f"00101,{BIG},view,{T0}\n101,{BIG + 1},view,{T0}\n101,4e2,view,{T0}\n"
    inter = read_table(write(tmp_path / "x.csv", text), schema=VCB)
    assert inter.user_ids.tolist() == ["00101", "101"]
    assert inter.item_ids.tolist() == [str(BIG), str(BIG + 1), "4e2"]


def test_table_ids_that_spell_integers_become_exact_integers(tmp_path):
    inter = read_table(write(tmp_path / "x.csv", HEAD + f"7,{BIG},view,{T0}\n-3,{BIG + 1},view,{T0}\n"), schema=VCB)
    assert inter.user_ids.tolist() == [-3, 7] and inter.item_ids.tolist() == [BIG, BIG + 1]
    assert inter.item_ids.dtype == np.int64


def test_table_ids_that_pandas_takes_for_missing_values_are_ids(tmp_path):
    text = HEAD + f"NA,null,view,{T0}\nnan,None,view,{T0}\n"
    inter = read_table(write(tmp_path / "x.csv", text), schema=VCB)
    assert inter.user_ids.tolist() == ["NA", "nan"] and inter.item_ids.tolist() == ["None", "null"]
    with pytest.raises(DataFormatError, match=r"x.csv, line 3: field 'user_id' is empty"):
        read_table(write(tmp_path / "x.csv", HEAD + f"NA,1,view,{T0}\n,1,view,{T0}\n"), schema=VCB)


def test_parquet_integer_ids_stay_exact(tmp_path):
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame({"user_id": ["00101", "101"], "item_id": [BIG, BIG + 1], "behavior": "view", "timestamp": T0})
    frame.to_parquet(tmp_path / "x.parquet")
    inter = read_table(tmp_path / "x.parquet", schema=VCB)
    assert inter.user_ids.tolist() == ["00101", "101"] and inter.item_ids.tolist() == [BIG, BIG + 1]


def test_recbole_float_typed_id_field_keeps_long_ids_apart(tmp_path):
    head = "user_id:token\titem_id:float\trating:float\ttimestamp:float\n"
    path = write(tmp_path / "m.inter", head + f"1\t{BIG}\t4\t{T0}\n1\t{BIG + 1}\t4\t{T0}\n")
    inter = read_recbole_inter(path, schema=MOVIES, rating_edges=[3, 4])
    assert inter.item_ids.tolist() == [str(BIG), str(BIG + 1)]


def test_taobao_long_integer_ids_stay_exact(tmp_path):
    path = write(tmp_path / "u.csv", f"{BIG},{BIG},1,pv,{T0}\n{BIG + 1},{BIG + 1},1,pv,{T0}\n")
    inter = read_taobao_userbehavior(path)
    assert inter.user_ids.tolist() == [BIG, BIG + 1] and inter.item_ids.tolist() == [BIG, BIG + 1]


def test_taobao_id_with_a_leading_zero_is_refused_not_merged(tmp_path):
    path = write(tmp_path / "u.csv", TAOBAO + f"4,13,102,pv,{T0}\n04,13,102,pv,{T0}\n")
    with pytest.raises(
        DataFormatError,
        match=r"u.csv, line 7: field 'user_id': expected an integer id without leading zeros, '\+' or spaces, "
        r"found '04', the same integer as '4'; to keep such ids apart, read the file with read_table",
    ):
        read_taobao_userbehavior(path, chunksize=2)


# -- one huge id does not widen every id --------------------------------------------------------
LONG = "x" * 20_000
MEMORY_LIMIT = 50 * 2**20  # a fixed-width array of 2,000 ids of 20,000 characters takes 160 MB


def peak_memory(read) -> tuple[object, int]:
    """(what ``read()`` returns or raises, the peak of traced memory while it ran; numpy reports its arrays)."""
    tracemalloc.start()
    try:
        result = read()
    except DataFormatError as error:
        result = error
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return result, peak


@pytest.mark.parametrize("reader", ["csv", "recbole"])
def test_one_long_id_loads_in_little_memory(tmp_path, reader):
    ids = [f"u{k}" for k in range(1_999)] + [LONG]
    if reader == "csv":
        path = write(tmp_path / "x.csv", HEAD + "".join(f"{u},1,view,{T0}\n" for u in ids))
        inter, peak = peak_memory(lambda: read_table(path, schema=VCB))
    else:
        path = write(tmp_path / "x.inter", RECBOLE_HEAD + "".join(f"{u}\t1\t4\t{T0}\n" for u in ids))
        inter, peak = peak_memory(lambda: read_recbole_inter(path, schema=MOVIES, rating_edges=[3, 4]))
    assert inter.n_users == 2_000 and LONG in inter.user_ids.tolist()
    assert peak < MEMORY_LIMIT


def long_release(folder: Path, user: str = "0", item: int | str = 3, token: str = "<b_2>") -> Path:
    """2,000 users with one interaction each; ``user`` is the first user's key, ``item`` the last user's item,
    ``token`` item 0's second token."""
    keys = [user] + [str(k) for k in range(1, 2_000)]
    return make_release(
        folder,
        **{
            "SMB.inter": dict.fromkeys(keys, [3]) | {keys[-1]: [item]},
            "SMB.behavior": dict.fromkeys(keys, ["buy"]),
            "SMB.session": dict.fromkeys(keys, [0]),
            "SMB.time": dict.fromkeys(keys, ["2024-03-01 10:00:00"]),
            "index": {str(i): ["<a_1>", "<b_2>"] for i in range(2_000)} | {"0": ["<a_1>", token]},
        },
    )


def test_release_long_user_key_loads_in_little_memory(tmp_path):
    inter, peak = peak_memory(lambda: read_gamer_release(long_release(tmp_path, user=LONG)))
    assert inter.n_users == 2_000 and inter.user_ids[-1] == LONG  # 'x...' sorts after the digits
    assert peak < MEMORY_LIMIT


@pytest.mark.parametrize(
    ("field", "file", "message"),
    [
        pytest.param("item", "Toy.SMB.inter.json", "user '1999', position 0: expected an integer item id", id="item"),
        pytest.param("token", "Toy.index.json", "item 0: token 1 is 'xxx", id="token"),
    ],
)
def test_release_long_item_or_token_is_an_error_in_little_memory(tmp_path, field, file, message):
    error, peak = peak_memory(lambda: read_gamer_release(long_release(tmp_path, **{field: LONG})))
    assert isinstance(error, DataFormatError) and str(error).startswith(f"{tmp_path / file}: {message}")
    assert peak < MEMORY_LIMIT


# -- millisecond timestamps -----------------------------------------------------------------------
def test_taobao_refuses_milliseconds_as_the_csv_reader_does(tmp_path):
    with pytest.raises(DataFormatError) as taobao:
        read_taobao_userbehavior(write(tmp_path / "u.csv", TAOBAO + f"4,14,103,pv,{T0 * 1000}\n"), chunksize=2)
    with pytest.raises(DataFormatError) as table:
        read_table(write(tmp_path / "x.csv", HEAD + f"1,2,view,{T0}\n1,2,view,{T0 * 1000}\n"), schema=VCB)
    assert str(taobao.value).startswith(f"{tmp_path / 'u.csv'}, line 6: ")
    assert str(table.value).startswith(f"{tmp_path / 'x.csv'}, line 3: ")
    assert str(taobao.value).split(": ", 1)[1] == str(table.value).split(": ", 1)[1]
    assert "past the year 5000 (milliseconds? divide by 1000 first)" in str(taobao.value)


# -- text that is not UTF-8 -----------------------------------------------------------------------
def encoded(path: Path, text: str, encoding: str) -> Path:
    data = text.encode(encoding)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def read_any(path: Path):
    if path.suffix == ".inter":
        return read_recbole_inter(path, schema=MOVIES, rating_edges=[3, 4])
    if path.name.startswith("UserBehavior"):
        return read_taobao_userbehavior(path, chunksize=2)
    return read_table(path, schema=VCB)


LATIN1_ROW = f"1,caf\xe9,view,{T0}\n"
E9 = "the byte 0xe9 (byte {} of the line)"


@pytest.mark.parametrize(
    ("name", "text", "encoding", "line", "found"),
    [
        pytest.param("x.csv", HEAD + LATIN1_ROW, "latin-1", 2, E9.format(6), id="csv"),
        pytest.param("x.csv.gz", HEAD + LATIN1_ROW, "latin-1", 2, E9.format(6), id="csv.gz"),
        pytest.param("x.tsv", HEAD.replace(",", "\t"), "utf-16", 1, "a UTF-16 byte-order mark", id="tsv-utf-16"),
        pytest.param("UserBehavior.csv", TAOBAO + "6,14,103,p\xe9,1\n", "latin-1", 6, E9.format(11), id="taobao"),
        pytest.param("m.inter", RECBOLE_HEAD + f"caf\xe9\t2\t4\t{T0}\n", "latin-1", 2, E9.format(4), id="recbole"),
        pytest.param("h.inter", RECBOLE_HEAD.replace("user_id", "us\xe9r"), "latin-1", 1, E9.format(3), id="header"),
    ],
)
def test_text_that_is_not_utf8_is_refused_naming_file_line_and_fix(tmp_path, name, text, encoding, line, found):
    path = encoded(tmp_path / name, text, encoding)
    expected = f"{name}, line {line}: expected UTF-8 text, found {found}; re-encode the file as UTF-8 (e.g. iconv -f "
    with pytest.raises(DataFormatError, match=re.escape(expected)):
        read_any(path)


@pytest.mark.parametrize("kind", ["behavior_level", "SMB.inter", "SMB.time", "index", "item"])
@pytest.mark.parametrize("encoding", ["latin-1", "utf-16"])
def test_release_json_that_is_not_utf8_is_refused(tmp_path, kind, encoding):
    make_release(tmp_path)
    data = {"0": ["caf\xe9"]} if kind != "behavior_level" else {"caf\xe9": 0}
    encoded(tmp_path / f"Toy.{kind}.json", json.dumps(data, ensure_ascii=False), encoding)
    with pytest.raises(
        DataFormatError, match=rf"Toy.{kind}.json, line 1: expected UTF-8 text, .*re-encode the file as UTF-8"
    ):
        read_gamer_release(tmp_path)


# -- JSON nested too deep -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["behavior_level", "SMB.inter", "index", "item"])
def test_release_json_nested_too_deep_is_an_error_naming_the_file(tmp_path, kind):
    make_release(tmp_path)
    (tmp_path / f"Toy.{kind}.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(
        DataFormatError, match=rf"Toy.{kind}.json: the JSON is nested too deep to be a GAMER release file"
    ):
        read_gamer_release(tmp_path)
