"""Alibaba's Taobao "UserBehavior" dataset (``UserBehavior.csv``, about 100 M rows, 3.5 GB).

The format: no header; five comma-separated columns ``user_id,item_id,category_id,
behavior_type,timestamp``; integer ids; ``behavior_type`` one of ``pv`` (page view), ``fav``,
``cart``, ``buy``; ``timestamp`` in unix seconds. The data covers 2017-11-25 .. 2017-12-03 in China
time (UTC+8), so the default schema cuts sessions by calendar day in Asia/Shanghai. The reader
keeps unix seconds as they are: time zones only matter to the session rule.

Ids are kept as int64 (a string per row would not fit 100 M rows), so an id spelled otherwise than
``str(int)`` spells it (``0101``, ``+101``) is refused, not merged with ``101``; `read_table` reads
such a file with its ids as text.

The category id is checked to be an integer but not kept: an `Interactions` has no field for it.
Timestamps outside the documented period (the first 4,321 rows already hold one from 2017-09-11)
are kept: filtering is a protocol step.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from protocols.formats._columns import Rows, data_lines, int64_ids, not_utf8, shown, unix_seconds
from protocols.formats.errors import DataFormatError
from protocols.interactions import Interactions, Schema, SessionRule

FIELDS = ("user_id", "item_id", "category_id", "behavior_type", "timestamp")
USED = ("user_id", "item_id", "behavior_type", "timestamp")
BEHAVIORS = ("pv", "fav", "cart", "buy")


def taobao_schema(name: str = "Taobao") -> Schema:
    """pv < fav < cart < buy, one session per calendar day in China time (paper Section 4.1.1)."""
    return Schema(name, BEHAVIORS, SessionRule.day("Asia/Shanghai"))


def _level_table(categories: pd.Index, schema: Schema, behavior_map: Mapping[str, str] | None) -> np.ndarray:
    """Level of each category of a chunk's behavior column (-1 = unknown); a few entries, not rows."""
    level_of = {name: level for level, name in enumerate(schema.behaviors)}
    names = [raw if behavior_map is None else behavior_map.get(raw) for raw in categories]
    return np.array([level_of.get(name, -1) for name in names], dtype=np.int16)


def _chunk_levels(codes: np.ndarray, table: np.ndarray, raw: pd.Series, rows: Rows, known: list) -> np.ndarray:
    levels = np.append(table, -1)[codes]  # code -1 (an empty field) picks the appended -1
    bad = levels < 0
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        found = "an empty value" if codes[row] < 0 else shown(raw.iloc[row])
        raise DataFormatError(f"{rows.where(row)}: field 'behavior_type': expected one of {known}, found {found}")
    return levels.astype(np.int8)


def _chunk_arrays(
    chunk: pd.DataFrame, schema: Schema, behavior_map: Mapping[str, str] | None, rows: Rows, known: list
) -> dict[str, np.ndarray]:
    """One parsed chunk as int arrays: only these are kept, never the chunk's strings."""
    behavior = chunk["behavior_type"]
    table = _level_table(behavior.cat.categories, schema, behavior_map)
    arrays = {name: int64_ids(chunk[name]) for name in ("user_id", "item_id")}
    if arrays["user_id"] is None or arrays["item_id"] is None:
        raise ValueError("an id is not an integer written as str(int) writes it")  # _stream names the line
    arrays["behavior_type"] = _chunk_levels(behavior.cat.codes.to_numpy(), table, behavior, rows, known)
    arrays["timestamp"] = unix_seconds(chunk["timestamp"], "timestamp", rows)  # refuses milliseconds
    return arrays


def _check_line(number: int, text: str, path: Path) -> None:
    """Raise if one line is not ``int,int,int,text,int``: names the line, the field and the value."""
    fields = text.split(",")
    if len(fields) != len(FIELDS):
        raise DataFormatError(
            f"{path}, line {number}: expected {len(FIELDS)} comma-separated fields {list(FIELDS)}, "
            f"found {len(fields)}: {text!r}"
        )
    for index in (0, 1, 2, 4):
        where = f"{path}, line {number}: field {FIELDS[index]!r}"
        try:
            value = int(fields[index])
        except ValueError:
            raise DataFormatError(f"{where}: expected an integer, found {fields[index]!r}") from None
        if not -(2**63) <= value < 2**63:
            raise DataFormatError(f"{where}: expected an integer of at most 64 bits, found {fields[index]!r}")
        if index < 2 and str(value) != fields[index]:
            raise DataFormatError(
                f"{where}: expected an integer id without leading zeros, '+' or spaces, found {fields[index]!r}, "
                f"the same integer as {str(value)!r}; to keep such ids apart, read the file with read_table"
                "(header=False), which keeps them as text"
            )


def _diagnose(path: Path, first_row: int, error: Exception) -> DataFormatError:
    """pandas stopped inside the chunk starting at ``first_row``: find the offending line.

    Only runs on the error path, so a Python scan of the lines is acceptable.
    """
    for number, text in data_lines(path, 0, first_row):
        _check_line(number, text, path)  # raises at the first bad line
    return DataFormatError(f"{path}: could not parse the rows from data row {first_row + 1} on: {error}")


def _stream(
    path: Path, schema: Schema, chunksize: int, behavior_map: Mapping[str, str] | None
) -> dict[str, list[np.ndarray]]:
    """The used columns as lists of per-chunk int arrays, parsed ``chunksize`` rows at a time."""
    known = list(behavior_map) if behavior_map is not None else list(schema.behaviors)
    # Ids as text, checked and converted by int64_ids: pandas' int64 parser reads '0101' as 101.
    dtypes = {name: np.int64 for name in FIELDS} | {"user_id": str, "item_id": str, "behavior_type": "category"}
    parts: dict[str, list[np.ndarray]] = {name: [] for name in USED}
    done = 0
    try:
        # All five columns and index_col=False: with usecols pandas would ignore extra fields, and
        # with an implicit index it would shift a longer first row; the warning it gives is an error.
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            with pd.read_csv(
                path,
                header=None,
                names=list(FIELDS),
                index_col=False,
                dtype=dtypes,
                keep_default_na=False,  # only an empty field is missing, as in read_table
                na_values=[""],
                chunksize=chunksize,
            ) as reader:  # closes the file when a chunk raises
                for chunk in reader:
                    rows = Rows(str(path), path).shifted(done)
                    for name, array in _chunk_arrays(chunk, schema, behavior_map, rows, known).items():
                        parts[name].append(array)
                    done += len(chunk)
    except UnicodeDecodeError:
        raise not_utf8(path) from None
    except pd.errors.EmptyDataError:
        raise DataFormatError(f"{path}: the file is empty; expected rows {','.join(FIELDS)}") from None
    except DataFormatError:
        raise
    except (pd.errors.ParserError, pd.errors.ParserWarning, ValueError) as error:
        raise _diagnose(path, done, error) from None
    if done == 0:
        raise DataFormatError(f"{path}: the file is empty; expected rows {','.join(FIELDS)}")
    return parts


def read_taobao_userbehavior(
    path: str | os.PathLike,
    *,
    schema: Schema | None = None,
    chunksize: int = 5_000_000,
    behavior_map: Mapping[str, str] | None = None,
) -> Interactions:
    """Stream ``UserBehavior.csv`` in chunks of ``chunksize`` rows into an `Interactions`.

    Each chunk is parsed with text ids, integer columns and a categorical behavior column, then
    reduced to int arrays (int64 ids and timestamps, int8 levels), so only one chunk at a time
    holds a string per row. ``schema`` defaults to `taobao_schema`; ``behavior_map`` translates the raw
    ``pv``/``fav``/``cart``/``buy`` codes when the schema names its behaviors differently.
    """
    path = Path(path)
    schema = schema or taobao_schema()
    if behavior_map is not None and not set(behavior_map.values()) <= set(schema.behaviors):
        raise ValueError(
            f"behavior_map values {sorted(set(behavior_map.values()))} must be behaviors of dataset "
            f"{schema.name!r}: {list(schema.behaviors)}"
        )
    parts = _stream(path, schema, chunksize, behavior_map)
    columns = (np.concatenate(parts[name]) for name in USED)
    return Interactions.from_columns(*columns, schema, source=str(path))
