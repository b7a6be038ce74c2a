"""Generic interaction tables: CSV, TSV and parquet files with one interaction per row.

The format: one row per interaction with (at least) a user id, an item id, a behavior and a
timestamp column; other columns are ignored. Text files have a header line unless
``header=False``. A behavior is a schema behavior name, a raw code translated by
``behavior_map`` (Taobao's ``pv``, numeric codes), or a numeric rating cut into levels by
``rating_edges``. A timestamp is unix seconds (a numeric column) or a date-time string.

RetailRocket's ``interactions.csv`` (``user_id,item_id,behavior,timestamp``) is this format with
the default column names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from protocols.formats._columns import (
    COMPRESSION_SUFFIXES,
    Rows,
    behavior_levels,
    id_column,
    rating_levels,
    read_delimited,
    unix_seconds,
)
from protocols.formats.errors import DataFormatError
from protocols.interactions import Interactions, Schema

TableFormat = Literal["csv", "tsv", "parquet"]
ROLES = ("user", "item", "behavior", "timestamp")
DEFAULT_COLUMNS: dict[str, str] = {
    "user": "user_id",
    "item": "item_id",
    "behavior": "behavior",
    "timestamp": "timestamp",
}
SUFFIX_FORMATS: dict[str, TableFormat] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".txt": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
SEPARATORS = {"csv": ",", "tsv": "\t"}


def infer_format(path: Path) -> TableFormat:
    """The format from the suffix, looking through a compression suffix (``.csv.gz`` is csv)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSION_SUFFIXES:
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in SUFFIX_FORMATS:
        return SUFFIX_FORMATS[suffixes[-1]]
    raise DataFormatError(
        f"{path}: cannot tell the table format from the suffix {''.join(path.suffixes)!r}; expected one of "
        f"{sorted(SUFFIX_FORMATS)} or pass format='csv', 'tsv' or 'parquet'"
    )


def resolve_columns(columns: Mapping[str, str | int | None] | None, header: bool) -> dict[str, str | int | None]:
    """The column of each role: the defaults overridden by ``columns``.

    ``None`` for ``behavior`` means "no behavior column" (single-behavior data, all level 0).
    Without a header, columns are named by 0-based position.
    """
    unknown = sorted(set(columns or {}) - set(ROLES))
    if unknown:
        raise ValueError(f"columns has unknown roles {unknown}; expected keys among {list(ROLES)}")
    resolved: dict[str, str | int | None] = {**DEFAULT_COLUMNS, **(columns or {})}
    absent = [role for role in ("user", "item", "timestamp") if resolved[role] is None]
    if absent:
        raise ValueError(f"columns must name a column for {absent}; only 'behavior' may be None")
    if not header:
        named = {role: col for role, col in resolved.items() if col is not None and not isinstance(col, int)}
        if named:
            raise ValueError(f"a file without a header names its columns by 0-based position; got names {named}")
    return resolved


def _read_text(
    path: Path, separator: str, header: bool, wanted: list[str | int], ids: list[str | int], rows: Rows
) -> pd.DataFrame:
    try:
        # Ids as text: pandas would make '00101' and '101' one number, and long ones one float.
        frame = read_delimited(path, rows, sep=separator, header=0 if header else None, dtype=dict.fromkeys(ids, str))
    except ValueError as error:
        if isinstance(error, DataFormatError):
            raise
        raise DataFormatError(f"{path}: {error}") from None
    columns = list(frame.columns)
    missing = [col for col in wanted if (col not in columns if header else col >= len(columns))]
    if missing:
        where = f"{rows.where(-1)} (header)" if header else str(path)
        raise DataFormatError(
            f"{where}: missing column(s) {missing}; "
            f"found columns {columns} (separator {separator!r}"
            f"{'' if header else ', no header: columns are positions'})"
        )
    return frame[wanted]


def _read_parquet(path: Path, wanted: list[str | int]) -> pd.DataFrame:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(f"{path}: reading parquet needs pyarrow: pip install 'gamer-bench[parquet]'") from None

    columns = pq.read_schema(path).names
    missing = [col for col in wanted if col not in columns]
    if missing:
        raise DataFormatError(f"{path}: missing column(s) {missing}; found columns {columns}")
    return pd.read_parquet(path, columns=wanted)


def _behavior(
    frame: pd.DataFrame,
    column: str | int | None,
    schema: Schema,
    rows: Rows,
    behavior_map: Mapping | None,
    rating_edges: Sequence[float] | None,
) -> np.ndarray:
    if column is None:
        if len(schema.behaviors) != 1:
            raise ValueError(f"dataset {schema.name!r} has behaviors {list(schema.behaviors)}; name a behavior column")
        return np.zeros(len(frame), dtype=np.int8)
    if rating_edges is not None:
        return rating_levels(frame[column], rating_edges, schema, str(column), rows)
    return behavior_levels(frame[column], schema, str(column), rows, behavior_map)


def read_table(
    path: str | os.PathLike,
    *,
    schema: Schema,
    columns: Mapping[str, str | int | None] | None = None,
    format: TableFormat | None = None,
    separator: str | None = None,
    header: bool = True,
    behavior_map: Mapping | None = None,
    rating_edges: Sequence[float] | None = None,
    timezone: str = "UTC",
    timestamp_format: str | None = None,
) -> Interactions:
    """Read a CSV / TSV / parquet interaction table.

    ``columns`` maps the roles ``user``, ``item``, ``behavior``, ``timestamp`` to column names (to
    0-based positions when ``header=False``); missing roles keep the defaults ``user_id``,
    ``item_id``, ``behavior``, ``timestamp``. ``format`` defaults to the suffix (``.csv``;
    ``.tsv``/``.txt`` tab separated; ``.parquet``; optionally compressed ``.gz``/``.bz2``/``.xz``).

    Ids in a text file are text: ``00101`` and ``101`` are two users. A column whose ids all spell
    integers as ``str(int)`` does becomes int64, exactly (a parquet integer column stays int64).

    Behaviors: values are schema behavior names, or keys of ``behavior_map`` (raw value -> name).
    With ``rating_edges`` the behavior column holds numbers and level = the number of edges <=
    the value (``[3, 4]``: rating <= 2 is level 0, 3 is level 1, >= 4 is level 2).

    Timestamps: a numeric column is unix seconds. A string column is date-times, parsed by pandas
    (``timestamp_format`` if given); strings with a UTC offset are exact, naive ones are local
    times in ``timezone`` (an IANA name or an offset such as ``'+08:00'``).

    Error messages count lines from 1 including the header, and assume one record per line (a
    quoted field spanning lines shifts them).
    """
    path = Path(path)
    table_format = format or infer_format(path)
    if table_format not in ("csv", "tsv", "parquet"):
        raise ValueError(f"format must be 'csv', 'tsv' or 'parquet', got {table_format!r}")
    roles = resolve_columns(columns, header)
    wanted = list(dict.fromkeys(col for col in roles.values() if col is not None))
    if table_format == "parquet":
        frame, rows = _read_parquet(path, wanted), Rows(str(path))
    else:
        rows = Rows(str(path), path, header_lines=int(header))
        ids = [roles["user"], roles["item"]]
        frame = _read_text(path, separator or SEPARATORS[table_format], header, wanted, ids, rows)
    if frame.empty:
        raise DataFormatError(
            f"{path}: no data rows{' after the header' if header else ''}; expected at least one interaction"
        )
    return Interactions.from_columns(
        id_column(frame[roles["user"]], str(roles["user"]), rows),
        id_column(frame[roles["item"]], str(roles["item"]), rows),
        _behavior(frame, roles["behavior"], schema, rows, behavior_map, rating_edges),
        unix_seconds(
            frame[roles["timestamp"]],
            str(roles["timestamp"]),
            rows,
            timezone=timezone,
            timestamp_format=timestamp_format,
        ),
        schema,
        source=str(path),
    )
