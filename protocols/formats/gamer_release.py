"""The GAMER data release (``data/<D>/`` of the GAMER code): per-user JSON lists.

The format (reference notes, section 1): every file is a JSON object keyed by user id strings
``"0" .. "N-1"``; the four ``<D>.SMB.*.json`` files hold one list per user, aligned one to one and
in chronological order:

- ``<D>.SMB.inter.json``: item ids (0-based integers; an item may repeat);
- ``<D>.SMB.behavior.json``: behavior names;
- ``<D>.SMB.session.json``: integer session ids, non-decreasing along the list;
- ``<D>.SMB.time.json``: ``"YYYY-MM-DD HH:MM:SS"`` strings (local time of the data; the release
  does not say which zone, so the reader takes ``timezone``).

``<D>.behavior_level.json`` maps behavior name -> level (0 lowest; exactly one maximum, the
target). The optional ``<D>.index.json`` maps item id -> semantic-ID tokens ``["<a_12>", "<b_7051>",
...]`` (all lists of one length) and ``<D>.item.json`` maps item id -> metadata (only its keys are
read: they complete the item catalogue).
"""

from __future__ import annotations

import json
import os
import string
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from protocols.formats._columns import int64_ids, not_utf8, tzinfo_from_name
from protocols.formats.errors import DataFormatError
from protocols.interactions import Interactions, Schema, SessionRule

LISTS = ("inter", "behavior", "session", "time")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
LEVEL_LETTERS = string.ascii_lowercase
TOKEN_MAX = len("<a_>") + 18  # at most 18 digits: the code fits int64


def _file(folder: Path, name: str, kind: str) -> Path:
    suffix = {"level": "behavior_level.json", "index": "index.json", "item": "item.json"}.get(kind, f"SMB.{kind}.json")
    return folder / f"{name}.{suffix}"


def release_name(folder: Path) -> str:
    """The dataset name ``D`` of the single ``<D>.SMB.inter.json`` in ``folder``."""
    names = sorted(p.name[: -len(".SMB.inter.json")] for p in folder.glob("*.SMB.inter.json"))
    if len(names) != 1:
        found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else "no such folder"
        raise DataFormatError(
            f"{folder}: expected exactly one '<D>.SMB.inter.json', found {len(names)} datasets {names} "
            f"(files: {found}); pass name="
        )
    return names[0]


def _load_object(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found; the GAMER release needs it")
    with open(path, encoding="utf-8") as handle:
        try:
            data = json.load(handle)
        except json.JSONDecodeError as error:
            raise DataFormatError(f"{path}, line {error.lineno}: not valid JSON: {error.msg}") from None
        except UnicodeDecodeError:
            raise not_utf8(path) from None
        except RecursionError:
            raise DataFormatError(
                f"{path}: the JSON is nested too deep to be a GAMER release file; expected an object keyed "
                "by id whose values are lists of plain values (or, in item.json, shallow objects)"
            ) from None
    if not isinstance(data, dict):
        raise DataFormatError(f"{path}: expected a JSON object keyed by id, found a JSON {type(data).__name__}")
    return data


def read_behavior_levels(path: Path) -> tuple[str, ...]:
    """Behavior names ordered by level (lowest first); the levels, not the key order, decide."""
    levels = _load_object(path)
    if not levels:
        raise DataFormatError(f"{path}: the file is empty; expected behavior name -> level")
    for behavior, level in levels.items():
        if type(level) is not int:
            raise DataFormatError(f"{path}: field {behavior!r}: expected an integer level, found {level!r}")
    ordered = sorted(levels, key=levels.__getitem__)
    for low, high in zip(ordered, ordered[1:], strict=False):
        if levels[low] == levels[high]:
            # Schema orders behaviors strictly; GAMER asserts only a unique maximum.
            raise DataFormatError(
                f"{path}: behaviors {low!r} and {high!r} share level {levels[low]}; expected distinct levels"
            )
    return tuple(ordered)


def _aligned_lists(folder: Path, name: str) -> tuple[list[str], dict[str, list[list]], np.ndarray]:
    """User keys, each file's per-user lists in key order, and the list lengths; checks alignment."""
    maps = {kind: _load_object(_file(folder, name, kind)) for kind in LISTS}
    keys = list(maps["inter"])
    for kind in LISTS[1:]:
        if maps[kind].keys() != maps["inter"].keys():
            missing = [k for k in keys if k not in maps[kind]][:3]
            extra = [k for k in maps[kind] if k not in maps["inter"]][:3]
            raise DataFormatError(
                f"{_file(folder, name, kind)}: expected the users of {_file(folder, name, 'inter').name}; "
                f"missing users {missing}, extra users {extra}"
            )
    lists = {kind: [maps[kind][key] for key in keys] for kind in LISTS}
    lengths = {}
    for kind in LISTS:
        bad = [k for k, value in zip(keys, lists[kind], strict=True) if not isinstance(value, list)]
        if bad:
            raise DataFormatError(f"{_file(folder, name, kind)}: field {bad[0]!r}: expected a list per user")
        lengths[kind] = np.fromiter(map(len, lists[kind]), dtype=np.int64, count=len(keys))
    for kind in LISTS[1:]:
        differ = lengths[kind] != lengths["inter"]
        if differ.any():
            u = int(np.flatnonzero(differ)[0])
            raise DataFormatError(
                f"{_file(folder, name, kind)}: user {keys[u]!r}: {lengths[kind][u]} entries, but "
                f"{_file(folder, name, 'inter').name} has {lengths['inter'][u]} for this user; "
                "the lists must align"
            )
    return keys, lists, lengths["inter"]


class _Positions:
    """Turns a flat position back into (user key, list position) for error messages."""

    def __init__(self, keys: list[str], lengths: np.ndarray) -> None:
        self.keys = keys
        self.offsets = np.concatenate([[0], np.cumsum(lengths)])

    def where(self, path: Path, flat: int) -> str:
        u = int(np.searchsorted(self.offsets, flat, side="right") - 1)
        return f"{path}: user {self.keys[u]!r}, position {flat - int(self.offsets[u])}"


def _integers(values: list, path: Path, positions: _Positions, what: str) -> np.ndarray:
    # Types first: np.array of a list holding one long string makes every entry that wide.
    if set(map(type, values)) <= {int}:
        try:
            return np.array(values, dtype=np.int64)
        except OverflowError:
            pass
    # Error path only: find the first entry that is not an integer (or does not fit int64).
    k = next((k for k, v in enumerate(values) if type(v) is not int or abs(v) >= 2**63), 0)
    raise DataFormatError(f"{positions.where(path, k)}: expected an integer {what}, found {values[k]!r}")


def _levels(values: list, behaviors: tuple[str, ...], path: Path, positions: _Positions) -> np.ndarray:
    codes, uniques = pd.factorize(np.array(values, dtype=object))
    level_of = {b: level for level, b in enumerate(behaviors)}
    table = np.array([level_of.get(u, -1) for u in uniques], dtype=np.int16)  # per distinct name
    levels = table[codes]
    if (levels < 0).any():
        k = int(np.flatnonzero(levels < 0)[0])
        raise DataFormatError(
            f"{positions.where(path, k)}: unknown behavior {values[k]!r}; expected one of {list(behaviors)} "
            "(the keys of the behavior_level file)"
        )
    return levels.astype(np.int8)


def _seconds(values: list, timezone: str, path: Path, positions: _Positions) -> np.ndarray:
    text = pd.Series(values, dtype=object)
    parsed = pd.to_datetime(text, format=TIME_FORMAT, errors="coerce")
    if parsed.isna().any():
        k = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise DataFormatError(f"{positions.where(path, k)}: expected a time 'YYYY-MM-DD HH:MM:SS', found {values[k]!r}")
    local = parsed.dt.tz_localize(tzinfo_from_name(timezone), ambiguous="NaT", nonexistent="NaT")
    if local.isna().any():
        k = int(np.flatnonzero(local.isna().to_numpy())[0])
        raise DataFormatError(
            f"{positions.where(path, k)}: time {values[k]!r} is skipped or repeated by a daylight-saving "
            f"change in timezone {timezone!r}; expected an unambiguous local time"
        )
    return ((local - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(1, "s")).to_numpy(dtype=np.int64)


def _id_keys(path: Path, keys: list[str], what: str) -> np.ndarray:
    """Decimal id strings as int64: the release keys items by their integer id."""
    bad = [k for k in keys if not (k.isascii() and k.isdigit())]
    if bad:
        raise DataFormatError(f"{path}: field {bad[0]!r}: expected a decimal {what} id as the key")
    return np.array([int(k) for k in keys], dtype=np.int64)


def _user_ids(keys: list[str]) -> np.ndarray:
    """Integer user ids when the keys spell integers ("0".."N-1"), so users sort numerically, else the keys."""
    ids = int64_ids(pd.Series(keys, dtype=object))
    return np.array(keys, dtype=object) if ids is None else ids


def parse_tokens(tokens: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(letter code point, integer code, well-formed) of each semantic-ID token ``<x_N>``.

    Vectorised over the UTF-32 code points of a numpy string array: a regex per token took
    seconds on ShortVideoAD's 674 k tokens. That array is as wide as its longest entry in every
    row, so a token longer than `TOKEN_MAX` (malformed anyway) enters it as "".
    """
    text = np.array([t if isinstance(t, str) and len(t) <= TOKEN_MAX else "" for t in tokens], dtype=str)
    width = max(text.dtype.itemsize // 4, 5)
    points = np.zeros((len(text), width), dtype=np.int64)
    points[:, : text.dtype.itemsize // 4] = text.view(np.uint32).reshape(len(text), -1)
    length = (points != 0).sum(axis=1)
    columns = np.arange(width)
    in_code = (columns >= 3) & (columns < (length - 1)[:, None])  # the N of <x_N>
    is_digit = (points >= ord("0")) & (points <= ord("9"))
    ok = (
        (length >= 5)
        & (points[:, 0] == ord("<"))
        & (points[:, 2] == ord("_"))
        & (points[np.arange(len(text)), length - 1] == ord(">"))
        & ~(in_code & ~is_digit).any(axis=1)
    )
    place = np.where(in_code & ok[:, None], (length - 2)[:, None] - columns, 0)
    digits = np.where(in_code & ok[:, None], points - ord("0"), 0)
    return points[:, 1], (digits * 10**place).sum(axis=1), ok


def read_semantic_ids(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(item ids, codes ``[n, levels]``) from an index file of tokens ``<a_12>``, ``<b_7051>``, ..."""
    index = _load_object(path)
    items = _id_keys(path, list(index), "item")
    tokens = list(index.values())
    if not tokens:
        raise DataFormatError(f"{path}: the file is empty; expected item id -> list of tokens")
    not_list = [k for k, value in enumerate(tokens) if not isinstance(value, list)]
    if not_list:
        raise DataFormatError(f"{path}: item {int(items[not_list[0]])}: expected a list of tokens")
    lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
    if (lengths != lengths[0]).any() or lengths[0] == 0:
        k = int(np.flatnonzero(lengths != lengths[0])[0]) if (lengths != lengths[0]).any() else 0
        raise DataFormatError(
            f"{path}: item {int(items[k])}: {lengths[k]} tokens, item {int(items[0])} has {lengths[0]}; "
            "expected the same non-zero number of tokens for every item"
        )
    levels = int(lengths[0])
    flat = list(chain.from_iterable(tokens))
    letter, code, ok = parse_tokens(flat)
    expected = np.tile(np.array([ord(c) for c in LEVEL_LETTERS[:levels]]), len(tokens))
    bad = ~ok | (letter != expected)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            f"{path}: item {int(items[k // levels])}: token {k % levels} is {flat[k]!r}; "
            f"expected '<{chr(expected[k])}_N>' with an integer code N"
        )
    return items, code.reshape(len(tokens), levels)


def _align_codes(path: Path, keys: np.ndarray, codes: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
    """Rows of ``codes`` in ``item_ids`` order; an item without an entry is an error."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    where = np.minimum(np.searchsorted(sorted_keys, item_ids), len(keys) - 1)
    lacking = sorted_keys[where] != item_ids
    if lacking.any():
        raise DataFormatError(
            f"{path}: item {int(item_ids[lacking][0])} has no semantic ID "
            f"({int(lacking.sum())} items lack one); expected an entry for every item of the release"
        )
    return codes[order][where]


def _first_step_back(values: np.ndarray, lengths: np.ndarray) -> int | None:
    """Flat position of the first entry smaller than the previous entry of the same user's list."""
    starts = np.zeros(len(values), dtype=bool)
    starts[(np.cumsum(lengths) - lengths)[lengths > 0]] = True
    back = ~starts & (np.diff(values, prepend=values[:1]) < 0)
    return int(np.flatnonzero(back)[0]) if back.any() else None


def _check_chronological(timestamp: np.ndarray, lengths: np.ndarray, path: Path, positions: _Positions) -> None:
    """The lists are the sequences GAMER trains on: a time going back would be silently reordered."""
    k = _first_step_back(timestamp, lengths)
    if k is not None:
        raise DataFormatError(
            f"{positions.where(path, k)}: time goes back from the previous entry; "
            "expected each user's lists in chronological order"
        )


def _check_sessions(session: np.ndarray, lengths: np.ndarray, path: Path, positions: _Positions) -> None:
    """GAMER takes a user's last session id as the test session: ids must not go back along the list."""
    k = _first_step_back(session, lengths)
    if k is not None:
        raise DataFormatError(
            f"{positions.where(path, k)}: session id goes back from {int(session[k - 1])} to "
            f"{int(session[k])}; expected non-decreasing session ids along each user's list"
        )


def _catalogue(paths: dict[str, Path], item: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(item ids, semantic IDs in that order or None): items of the lists, item.json and index.json."""
    parts = [item]
    if paths["item"].is_file():
        parts.append(_id_keys(paths["item"], list(_load_object(paths["item"])), "item"))
    index = read_semantic_ids(paths["index"]) if paths["index"].is_file() else None
    if index is not None:
        parts.append(index[0])
    item_ids = np.unique(np.concatenate(parts))
    semantic = None if index is None else _align_codes(paths["index"], *index, item_ids)
    return item_ids, semantic


def read_gamer_release(folder: str | os.PathLike, name: str | None = None, *, timezone: str = "UTC") -> Interactions:
    """Read a GAMER release folder; sessions come from the session file (rule ``file``).

    User ids become integers (the keys ``"0".."N-1"``), item ids the release's integers. The item
    catalogue is every item in the inter lists and the keys of ``index.json`` / ``item.json``. A
    user with empty lists has no interactions and so no row. Times are local times in ``timezone``.
    """
    folder = Path(folder)
    name = name or release_name(folder)
    paths = {kind: _file(folder, name, kind) for kind in (*LISTS, "level", "index", "item")}
    behaviors = read_behavior_levels(paths["level"])
    keys, lists, lengths = _aligned_lists(folder, name)
    positions = _Positions(keys, lengths)
    flat = {kind: list(chain.from_iterable(lists[kind])) for kind in LISTS}
    if not flat["inter"]:
        raise DataFormatError(f"{paths['inter']}: no interactions; expected a list of items per user")
    item = _integers(flat["inter"], paths["inter"], positions, "item id")
    session = _integers(flat["session"], paths["session"], positions, "session id")
    behavior = _levels(flat["behavior"], behaviors, paths["behavior"], positions)
    timestamp = _seconds(flat["time"], timezone, paths["time"], positions)
    _check_chronological(timestamp, lengths, paths["time"], positions)
    _check_sessions(session, lengths, paths["session"], positions)
    item_ids, semantic = _catalogue(paths, item)
    return Interactions.from_columns(
        np.repeat(_user_ids(keys), lengths),
        item,
        behavior,
        timestamp,
        Schema(name, behaviors, SessionRule.from_file(), item_semantic_ids=semantic),
        session=session,
        item_catalogue=item_ids,
        source=str(paths["session"]),
    )


# -- writing -------------------------------------------------------------------------------------


def _per_user(values: np.ndarray, cuts: np.ndarray) -> list[list]:
    return [part.tolist() for part in np.split(values, cuts)]


def _dump(path: Path, data: Any) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        # json.dumps runs the C encoder; json.dump to a file runs the pure-Python one (4x slower).
        handle.write(json.dumps(data, separators=(",", ":")))
    return path


def _tokens(codes: np.ndarray, n_items: int) -> list[list[str]]:
    if codes.ndim != 2 or len(codes) != n_items or (codes < 0).any():
        raise ValueError(
            f"semantic IDs must be non-negative integers of shape [n_items={n_items}, levels]; got shape {codes.shape}"
        )
    if codes.shape[1] > len(LEVEL_LETTERS):
        raise ValueError(
            f"semantic IDs have {codes.shape[1]} levels; the token format has letters for {len(LEVEL_LETTERS)}"
        )
    letters = LEVEL_LETTERS[: codes.shape[1]]
    return [[f"<{letter}_{code}>" for letter, code in zip(letters, row, strict=True)] for row in codes.tolist()]


def write_gamer_release(inter: Interactions, folder: str | os.PathLike, name: str) -> dict[str, Path]:
    """Write ``inter`` as a GAMER release; `read_gamer_release` reads back the same arrays.

    Users with rows are keyed ``"0".."N-1"`` in user index order; items are written as their item
    index; session ids are ``inter.session`` (apply `sessionize` first); times are UTC. Also writes
    ``<name>.item.json`` (``{}`` per item, as ShortVideoAD does) so items without rows stay in the
    catalogue, and ``<name>.index.json`` when the schema carries semantic IDs. Returns the paths.
    """
    if inter.session is None:
        raise ValueError(
            f"dataset {inter.schema.name!r}: no sessions to write; apply protocols.sessions.sessionize first"
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    counts = np.bincount(inter.user, minlength=inter.n_users)
    counts = counts[counts > 0]
    keys = [str(k) for k in range(len(counts))]
    cuts = np.cumsum(counts)[:-1]
    stamps = np.datetime_as_string(inter.timestamp.astype("datetime64[s]"), unit="s")
    columns = {
        "inter": inter.item,
        "behavior": inter.behavior_names(),
        "session": inter.session,
        "time": np.char.replace(stamps, "T", " "),
    }
    written = {}
    for kind in LISTS:
        per_user = dict(zip(keys, _per_user(columns[kind], cuts), strict=True))
        written[kind] = _dump(_file(folder, name, kind), per_user)
    levels = {behavior: level for level, behavior in enumerate(inter.schema.behaviors)}
    written["level"] = _dump(_file(folder, name, "level"), levels)
    written["item"] = _dump(_file(folder, name, "item"), {str(i): {} for i in range(inter.n_items)})
    if inter.schema.item_semantic_ids is not None:
        tokens = _tokens(np.asarray(inter.schema.item_semantic_ids), inter.n_items)
        written["index"] = _dump(_file(folder, name, "index"), {str(i): row for i, row in enumerate(tokens)})
    return written
