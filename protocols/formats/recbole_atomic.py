"""RecBole atomic ``.inter`` files (https://recbole.io/docs/user_guide/data/atomic_files.html).

The format: tab separated, one interaction per line, and a typed header whose fields are
``name:type`` with type ``token`` (a string id), ``token_seq``, ``float`` or ``float_seq``, e.g.
``user_id:token<TAB>item_id:token<TAB>rating:float<TAB>timestamp:float``. Tokens stay strings, as RecBole
keeps them, and so do the user and item fields whatever their type; a ``float`` timestamp is unix
seconds. Multi-behavior data either has a behavior field (token) or derives the behavior from the
rating (MovieLens: rating <= 2 dislike, 3 neutral, >= 4 like, i.e. ``rating_edges=[3, 4]``).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from protocols.formats._columns import (
    Rows,
    behavior_levels,
    id_column,
    not_utf8,
    open_text,
    rating_levels,
    read_delimited,
    unix_seconds,
)
from protocols.formats.errors import DataFormatError
from protocols.interactions import Interactions, Schema

FIELD_TYPES = ("token", "token_seq", "float", "float_seq")
PANDAS_TYPES = {"token": str, "token_seq": str, "float": np.float64, "float_seq": str}


def parse_header(path: Path, line: str) -> dict[str, str]:
    """``{field name: type}`` from the header line, in file order."""
    fields: dict[str, str] = {}
    for position, text in enumerate(line.rstrip("\r\n").split("\t"), start=1):
        name, colon, kind = text.rpartition(":")
        if not colon or not name or kind not in FIELD_TYPES:
            raise DataFormatError(
                f"{path}, line 1: malformed header field {position} {text!r}; expected 'name:type' with type "
                f"one of {list(FIELD_TYPES)}, tab separated"
            )
        if name in fields:
            raise DataFormatError(f"{path}, line 1: header field {name!r} appears twice")
        fields[name] = kind
    return fields


def _read_header(path: Path) -> tuple[str, dict[str, str]]:
    try:
        with open_text(path) as handle:
            line = handle.readline()
    except UnicodeDecodeError:
        raise not_utf8(path) from None
    if not line.strip():
        raise DataFormatError(f"{path}: the file is empty; expected a typed header such as 'user_id:token<TAB>...'")
    return line.rstrip("\r\n"), parse_header(path, line.lstrip("\ufeff"))


def _require_fields(path: Path, fields: dict[str, str], wanted: dict[str, str]) -> None:
    """Every role's field exists and is not a sequence type."""
    found = [f"{name}:{kind}" for name, kind in fields.items()]
    for role, name in wanted.items():
        if name not in fields:
            raise DataFormatError(f"{path}, line 1: missing {role} field {name!r}; found header fields {found}")
        if fields[name].endswith("_seq"):
            raise DataFormatError(
                f"{path}, line 1: {role} field {name!r} has type {fields[name]!r}; expected token or float"
            )


def _read_fields(path: Path, raw: dict[str, str], types: dict[str, type]) -> pd.DataFrame:
    """The wanted fields, renamed to their bare names.

    A float field that does not parse is read again as text, so that the column conversions can
    name the line of the bad value.
    """
    rows = Rows(str(path), path, header_lines=1)

    def load(dtypes: dict[str, type]) -> pd.DataFrame:
        frame = read_delimited(
            path,
            rows,
            sep="\t",
            header=0,
            dtype={raw[name]: dtypes[name] for name in raw},
            quoting=csv.QUOTE_NONE,  # RecBole files are plain TSV: a quote is data
            encoding="utf-8-sig",
        )
        return frame[list(raw.values())].rename(columns={column: name for name, column in raw.items()})

    try:
        return load(types)
    except DataFormatError:
        raise
    except ValueError:
        try:
            return load(dict.fromkeys(raw, str))
        except ValueError as error:
            if isinstance(error, DataFormatError):
                raise
            raise DataFormatError(f"{path}: {error}") from None


def read_recbole_inter(
    path: str | os.PathLike,
    *,
    schema: Schema,
    behavior_field: str | None = None,
    rating_edges: Sequence[float] | None = None,
    behavior_map: Mapping | None = None,
    user_field: str = "user_id",
    item_field: str = "item_id",
    timestamp_field: str = "timestamp",
    timezone: str = "UTC",
) -> Interactions:
    """Read a RecBole ``.inter`` file.

    The behavior comes from ``behavior_field`` (names or ``behavior_map`` keys), or with
    ``rating_edges`` from a numeric field (``behavior_field``, default ``rating``): level = number
    of edges <= rating. Single-behavior schemas need neither: every row is level 0. A ``token``
    timestamp is parsed as a date-time string, naive ones in ``timezone``.
    """
    path = Path(path)
    header, fields = _read_header(path)
    if rating_edges is not None:
        behavior_field = behavior_field or "rating"
    elif behavior_field is None and len(schema.behaviors) != 1:
        raise ValueError(
            f"dataset {schema.name!r} has behaviors {list(schema.behaviors)}: pass behavior_field, "
            "or rating_edges to derive them from the rating"
        )
    wanted = {"user": user_field, "item": item_field, "timestamp": timestamp_field}
    if behavior_field is not None:
        wanted["behavior"] = behavior_field
    _require_fields(path, fields, wanted)
    raw = {name: f"{name}:{fields[name]}" for name in wanted.values()}
    # Ids as text whatever the header says: as floats, 12345678901234567 and the id above it are one.
    types = {name: PANDAS_TYPES[fields[name]] for name in raw} | {user_field: str, item_field: str}
    frame = _read_fields(path, raw, types)
    if frame.empty:
        raise DataFormatError(f"{path}: no data rows after the header {header!r}; expected at least one interaction")
    rows = Rows(str(path), path, header_lines=1)
    if behavior_field is None:
        behavior = np.zeros(len(frame), dtype=np.int8)
    elif rating_edges is not None:
        behavior = rating_levels(frame[behavior_field], rating_edges, schema, behavior_field, rows)
    else:
        behavior = behavior_levels(frame[behavior_field], schema, behavior_field, rows, behavior_map)
    return Interactions.from_columns(
        id_column(frame[user_field], user_field, rows, integers=False),
        id_column(frame[item_field], item_field, rows, integers=False),
        behavior,
        unix_seconds(frame[timestamp_field], timestamp_field, rows, timezone=timezone),
        schema,
        source=str(path),
    )
