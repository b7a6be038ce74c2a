"""Column conversions shared by the tabular readers: text, ids, behavior levels, timestamps.

Each helper takes a pandas column and a `Rows` that turns a row index into an error location,
works on the whole column at once, and raises `DataFormatError` at the first bad row. Loops run
over *distinct* values (a few behavior names), never over rows.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import lzma
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from protocols.formats.errors import DataFormatError
from protocols.interactions import Schema
from protocols.sessions import tzinfo_from_name

# Unix seconds of the year 5000: a larger number is almost surely in milliseconds or microseconds.
MAX_UNIX_SECONDS = 95_617_584_000
COMPRESSION_SUFFIXES = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
# The decimal spelling str() gives an int64 (at most 19 digits): one text per integer, so ids in
# this form can be stored as int64 without two of them merging ('0101' and '101' would).
CANONICAL_INT64 = r"0|-?[1-9][0-9]{0,18}"


def open_text(path: Path, errors: str = "strict") -> IO[str]:
    """Open a possibly compressed UTF-8 text file (the same suffixes pandas decompresses by itself)."""
    opener = COMPRESSION_SUFFIXES.get(path.suffix.lower(), open)
    return opener(path, "rt", encoding="utf-8", errors=errors)


def not_utf8(path: Path) -> DataFormatError:
    """The error for a text file that does not decode as UTF-8, naming its first line that does not.

    Only runs on the error path, so a Python loop over lines is acceptable.
    """
    opener = COMPRESSION_SUFFIXES.get(path.suffix.lower(), open)
    with opener(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as error:
                if number == 1 and raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                    found, example = "a UTF-16 byte-order mark", "iconv -f UTF-16 -t UTF-8"
                else:
                    found = f"the byte 0x{raw[error.start]:02x} (byte {error.start + 1} of the line)"
                    example = "iconv -f LATIN1 -t UTF-8 for Latin-1"
                return DataFormatError(
                    f"{path}, line {number}: expected UTF-8 text, found {found}; re-encode the file as UTF-8 "
                    f"(e.g. {example})"
                )
    return DataFormatError(f"{path}: expected UTF-8 text; re-encode the file as UTF-8")


def data_lines(path: Path, header_lines: int, first_row: int = 0) -> Iterator[tuple[int, str]]:
    """(1-based line number, text) of data row ``first_row`` onwards.

    Blank lines are skipped, as pandas skips them, so row k here is row k of the parsed frame.
    Used only to name the line of an error, so a Python loop over lines is acceptable.
    """
    row = -header_lines
    with open_text(path, errors="replace") as handle:  # only names a line: not_utf8 reports bad bytes
        for number, text in enumerate(handle, start=1):
            if not text.strip(" \r\n"):  # pandas skips these; a line holding a tab separator is a row
                continue
            if row >= first_row:
                yield number, text.rstrip("\r\n")
            row += 1


@dataclass(frozen=True)
class Rows:
    """Names a data row in an error message: ``file, line N`` for text, ``file, row N`` otherwise.

    ``path`` is the text file to count physical lines in (None for binary formats such as
    parquet); ``header_lines`` are the non-blank lines before the first data row; ``offset`` is
    the number of rows in earlier chunks of a streamed read.
    """

    source: str
    path: Path | None = None
    header_lines: int = 0
    offset: int = 0

    def shifted(self, offset: int) -> Rows:
        return Rows(self.source, self.path, self.header_lines, offset)

    def line_of(self, row: int) -> int | None:
        if self.path is None:
            return None
        for number, _ in data_lines(self.path, self.header_lines, self.offset + row):
            return number
        return None

    def where(self, row: int) -> str:
        line = self.line_of(row)
        if line is None:
            return f"{self.source}, row {self.offset + row + 1}"
        return f"{self.source}, line {line}"


def read_delimited(path: Path, rows: Rows, **options: Any) -> pd.DataFrame:
    """``pd.read_csv`` of every column, with pandas' complaints turned into `DataFormatError`.

    Every column, because with ``usecols`` pandas ignores extra fields in a row; ``index_col=False``
    and an escalated ParserWarning, because otherwise a first row longer than the header becomes
    an index and shifts every column. Only an empty field is missing: pandas' other markers
    ('NA', 'null', 'nan', ...) are ids some files use. A ValueError (a dtype that does not fit) is
    left to the caller.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(path, index_col=False, keep_default_na=False, na_values=[""], **options)
    except UnicodeDecodeError:
        raise not_utf8(path) from None
    except pd.errors.EmptyDataError:
        raise DataFormatError(f"{path}: the file is empty; expected a header line and rows") from None
    except pd.errors.ParserWarning:
        raise DataFormatError(f"{rows.where(0)}: expected as many fields as the header, found more") from None
    except pd.errors.ParserError as error:
        raise DataFormatError(f"{path}: {error}") from None


def shown(value: object) -> str:
    """A value as an error message quotes it: ``7``, not numpy 2's ``np.int64(7)``."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def require_values(values: pd.Series, field: str, rows: Rows) -> None:
    """Raise at the first missing value: no reader drops incomplete rows silently."""
    missing = values.isna().to_numpy()
    if missing.any():
        raise DataFormatError(f"{rows.where(first(missing))}: field {field!r} is empty; expected a value in every row")


def int64_ids(values: pd.Series) -> np.ndarray | None:
    """Text ids as int64 when every one is spelled `CANONICAL_INT64`, else None.

    Parsed from the text, never through float64 (where 12345678901234567 equals the id one above).
    """
    if not values.str.fullmatch(CANONICAL_INT64, na=False).all():
        return None
    try:
        return np.array(values.to_numpy(dtype=object), dtype=np.int64)  # int() of each text, exact
    except OverflowError:  # 19 digits past the int64 range
        return None


def id_column(values: pd.Series, field: str, rows: Rows, *, integers: bool = True) -> np.ndarray:
    """A user or item id column as a numpy array; two ids are one only when the file spells them alike.

    Numbers (a parquet integer column) stay as they are. Text stays text, in an object array: a
    fixed-width unicode array makes every id as wide as the longest one. With ``integers``, text
    ids that all spell int64s canonically become int64: nothing merges, and they sort numerically
    as integer ids read from other formats do (an SSLRec matrix row index, a Taobao id).
    """
    require_values(values, field, rows)
    if pd.api.types.is_numeric_dtype(values):
        return values.to_numpy()
    numbers = int64_ids(values) if integers and pd.api.types.is_string_dtype(values) else None
    return values.to_numpy(dtype=object) if numbers is None else numbers


def _lookup(behavior_map: Mapping, raw: object) -> object:
    # A CSV gives 1 where the caller may have written the key "1" (and the other way round).
    if raw in behavior_map:
        return behavior_map[raw]
    return behavior_map.get(str(raw))


def behavior_levels(
    values: pd.Series,
    schema: Schema,
    field: str,
    rows: Rows,
    behavior_map: Mapping | None = None,
) -> np.ndarray:
    """Level indices of a behavior column: values are schema behavior names, or ``behavior_map`` keys."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    if (codes < 0).any():
        require_values(values, field, rows)
    level_of = {name: level for level, name in enumerate(schema.behaviors)}
    if behavior_map is not None:
        unknown = sorted({str(name) for name in behavior_map.values()} - set(level_of))
        if unknown:
            raise ValueError(
                f"behavior_map maps to {unknown}, which are not behaviors of dataset {schema.name!r}; "
                f"expected names among {list(schema.behaviors)}"
            )
    table = np.full(len(uniques), -1, dtype=np.int16)
    for k, raw in enumerate(uniques):  # one pass per distinct value, not per row
        name = raw if behavior_map is None else _lookup(behavior_map, raw)
        table[k] = level_of.get(name, -1)
    levels = table[codes]
    if (levels < 0).any():
        row = first(levels < 0)
        known = list(schema.behaviors) if behavior_map is None else list(behavior_map)
        hint = "" if behavior_map is not None else " (pass behavior_map to translate raw codes)"
        raise DataFormatError(
            f"{rows.where(row)}: field {field!r} has unknown behavior {shown(values.iloc[row])}; "
            f"expected one of {known}{hint}"
        )
    return levels.astype(np.int8)


def _numbers(values: pd.Series, field: str, rows: Rows, expected: str) -> np.ndarray:
    """A numeric column as float64, naming the first value that is not a number."""
    require_values(values, field, rows)
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.to_numpy(dtype=np.float64)
    else:
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(numbers)
    if bad.any():
        row = first(bad)
        raise DataFormatError(
            f"{rows.where(row)}: field {field!r}: expected {expected}, found {shown(values.iloc[row])}"
        )
    return numbers


def rating_levels(values: pd.Series, edges: Sequence[float], schema: Schema, field: str, rows: Rows) -> np.ndarray:
    """Levels from a numeric rating: level = number of edges <= rating (MovieLens: [3, 4])."""
    edges = np.asarray(edges, dtype=np.float64)
    if len(edges) != len(schema.behaviors) - 1 or (np.diff(edges) <= 0).any():
        raise ValueError(
            f"rating_edges {edges.tolist()} must be {len(schema.behaviors) - 1} increasing numbers, one "
            f"between each pair of neighbouring behaviors {list(schema.behaviors)}"
        )
    ratings = _numbers(values, field, rows, "a numeric rating")
    return np.searchsorted(edges, ratings, side="right").astype(np.int8)


def _is_numeric_text(values: pd.Series) -> bool:
    """True when the column's first value reads as a number (a unix-seconds column with a stray value)."""
    return bool(np.isfinite(pd.to_numeric(values.iloc[:1], errors="coerce").to_numpy(dtype=np.float64)).all())


def _parse_datetimes(values: pd.Series, timestamp_format: str | None) -> pd.Series:
    # Strings with different UTC offsets must be converted to one zone: pandas 3 raises for them,
    # pandas 2 returns an object column (with a FutureWarning). Strings with no offset among them
    # come back as NaT, and are reported as unparseable by the caller.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            parsed = pd.to_datetime(values, format=timestamp_format, errors="coerce")
        if pd.api.types.is_datetime64_any_dtype(parsed):
            return parsed
    except ValueError:
        pass
    return pd.to_datetime(values, format=timestamp_format, errors="coerce", utc=True)


def unix_seconds(
    values: pd.Series,
    field: str,
    rows: Rows,
    *,
    timezone: str = "UTC",
    timestamp_format: str | None = None,
) -> np.ndarray:
    """Unix seconds from a numeric column (already unix seconds) or from date-time strings.

    Strings with a UTC offset are exact; naive strings are wall-clock times in ``timezone``. A
    wall-clock time that a daylight-saving change skips or repeats is an error, not a guess.
    """
    require_values(values, field, rows)
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if timestamp_format is None and (numeric or _is_numeric_text(values)):
        seconds = _numbers(values, field, rows, "unix seconds")
        too_late = np.abs(seconds) >= MAX_UNIX_SECONDS
        if too_late.any():
            row = first(too_late)
            raise DataFormatError(
                f"{rows.where(row)}: field {field!r}: expected unix seconds, found "
                f"{shown(values.iloc[row])}, which is past the year 5000 (milliseconds? divide by 1000 first)"
            )
        return np.floor(seconds).astype(np.int64)
    text = values.astype(str)
    parsed = _parse_datetimes(text, timestamp_format)
    if parsed.isna().any():
        row = first(parsed.isna().to_numpy())
        expected = (
            f"format {timestamp_format!r}" if timestamp_format else f"the format of the first row, {text.iloc[0]!r}"
        )
        raise DataFormatError(
            f"{rows.where(row)}: field {field!r}: cannot parse timestamp {text.iloc[row]!r}; expected unix "
            f"seconds or a date-time in {expected} (timestamp_format='mixed' parses each row on its own)"
        )
    if parsed.dt.tz is None:
        zone = tzinfo_from_name(timezone)
        parsed = parsed.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
        if parsed.isna().any():
            row = first(parsed.isna().to_numpy())
            raise DataFormatError(
                f"{rows.where(row)}: field {field!r}: wall-clock time {text.iloc[row]!r} is skipped or "
                f"repeated by a daylight-saving change in timezone {timezone!r}; "
                "expected an unambiguous time (use a fixed offset such as '+08:00', "
                "or strings with a UTC offset)"
            )
    seconds = (parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(1, "s")
    return seconds.to_numpy(dtype=np.int64)
