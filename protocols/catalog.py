"""Built-in datasets and custom datasets described by a TOML file.

Built-ins: ``synthetic`` (embedded, generated from a seed), ``ml100k-mb`` (the MovieLens-100K file
the recbole package ships), ``retailrocket`` and ``taobao-sample`` (read from the data folder:
``$GAMER_BENCH_DATA``, else ``../shared/data`` beside the repository). The conversion scenario of
Appendix D has its own, with the behaviors exposure < conversion: ``synthetic-big`` (embedded) and
``retailrocket-rank`` (view = exposure, buy = conversion).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, get_args, get_type_hints

import numpy as np

from protocols import entry_points
from protocols.interactions import Interactions, Schema, SessionRule

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """Where real datasets live: ``$GAMER_BENCH_DATA``, else ``../shared/data`` from the repo root."""
    env = os.environ.get("GAMER_BENCH_DATA")
    if env:
        return Path(env)
    for root in (REPO_ROOT, Path.cwd()):
        candidate = root.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return REPO_ROOT.parent / "shared" / "data"


def recbole_ml100k_path() -> Path | None:
    """The ml-100k atomic file inside the installed recbole package (found without importing it)."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "dataset_example" / "ml-100k" / "ml-100k.inter"


# A file up to this size is hashed whole; a larger one by its size, mtime and its first and last
# PARTIAL_HASH_BYTES (hashing 256 MiB takes ~0.3 s, once per process: fingerprints are cached).
FULL_HASH_LIMIT = 256 * 2**20
PARTIAL_HASH_BYTES = 16 * 2**20


@lru_cache(maxsize=256)
def _file_digest(path: str, size: int, mtime_ns: int, ctime_ns: int, inode: int) -> str:
    """sha256 of a file's content (of its head and tail above `FULL_HASH_LIMIT`); cached per path, size,
    mtime, ctime and inode (a write moves ctime even when mtime is set back), so a run hashes each data
    file once however many cells it has."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        if size <= FULL_HASH_LIMIT:
            for block in iter(lambda: handle.read(2**20), b""):
                digest.update(block)
        else:
            digest.update(handle.read(PARTIAL_HASH_BYTES))
            handle.seek(size - PARTIAL_HASH_BYTES)
            digest.update(handle.read(PARTIAL_HASH_BYTES))
    return digest.hexdigest()


def file_fingerprints(path: Path | None) -> list[dict[str, Any]]:
    """What identifies the content a reader of ``path`` sees: for a file, its size and sha256; for a
    folder (the SSLRec and GAMER-release formats read several files), the same for every file below it,
    by relative path. Files above `FULL_HASH_LIMIT` are identified by size, mtime, head and tail."""
    if path is None or not path.exists():
        return []
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    prints = []
    for file in files:
        stat = file.stat()
        entry: dict[str, Any] = {
            "file": file.name if file == path else str(file.relative_to(path)),
            "bytes": stat.st_size,
            "sha256": _file_digest(str(file.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino),
        }
        if stat.st_size > FULL_HASH_LIMIT:
            entry |= {"mtime_ns": stat.st_mtime_ns, "hashed": "first and last 16 MiB"}
        prints.append(entry)
    return prints


def _json_safe(value: Any) -> Any:
    """``value`` as JSON would give it back (TOML dates become strings, tuples lists)."""
    return json.loads(json.dumps(value, default=str))


def _schema_definition(schema: Schema) -> dict[str, Any]:
    return {"name": schema.name, "behaviors": list(schema.behaviors), "session_rule": asdict(schema.session_rule)}


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset: where it is read from, and how to load it into `Interactions`.

    ``origin`` says which description it comes from (``builtin`` or the TOML file's absolute path) and
    ``definition`` returns everything besides the files that decides what `load` gives (the parsed
    TOML, the generator's settings, the schema): with the files' fingerprints it is the dataset's
    `identity`, on which stored results are reused or not.
    """

    name: str
    description: str
    locate: Callable[[], Path | None]
    read: Callable[[Path | None], Interactions]
    paper_counterpart: str = ""
    origin: str = "builtin"
    definition: Callable[[], dict[str, Any]] = dict

    def identity(self) -> dict[str, Any]:
        """Name, origin, definition and the content fingerprints of every file the reader reads."""
        path = self.locate()
        return {
            "name": self.name,
            "origin": self.origin,
            "location": self.location(),
            "definition": _json_safe(self.definition()),
            "files": file_fingerprints(path),
        }

    def location(self) -> str:
        path = self.locate()
        return "embedded (generated from a seed)" if path is None else str(path)

    def available(self) -> bool:
        path = self.locate()
        return path is None or path.exists()

    def load(self) -> Interactions:
        path = self.locate()
        if path is not None and not path.exists():
            raise FileNotFoundError(
                f"dataset {self.name!r} expects {path}, which does not exist; set GAMER_BENCH_DATA "
                "to the folder holding the data (see the README)"
            )
        return self.read(path)


def _synthetic(_: Path | None) -> Interactions:
    from protocols.synthetic import SyntheticConfig, generate

    return generate(SyntheticConfig())


def _synthetic_definition() -> dict[str, Any]:
    from protocols.synthetic import SyntheticConfig

    return {"generator": asdict(SyntheticConfig())}


# Appendix D's ShortVideoADbig is ~10x ShortVideoAD; ours is 3x the embedded set, so that the smoke
# profile trains in minutes on two cores. A TOML with ``format = "synthetic-big"`` scales it. Ads
# retarget: conversions follow recent clicks (recency_bias 3) and fall on the clicked item itself
# more often (retarget_share 0.6) than in the retrieval set, so that earlier behavior predicts
# them: a recency-weighted "seen before" count reaches AUROC 0.75 on its test candidates (0.62 at
# the retrieval set's 0.3 / 1), below the paper's 0.80-0.84 and far from saturated.
SYNTHETIC_BIG_SCALE = 3.0
# The retrieval set was recalibrated to ShortVideoAD's published statistics later; the conversion set keeps
# the generator settings it was built and checked with (Table 9's statistics, Table 10's AUROCs).
SYNTHETIC_BIG_DEFAULTS = {
    "retarget_share": 0.6,
    "recency_bias": 3.0,
    "n_items": 3000,
    "mean_interactions_per_session": 4.2,
    "leaves_per_subtopic": 3,
    "drift": 0.5,
    "subtopic_share": 0.25,
    "click_rate": 0.06,
    "conversion_rate": 0.08,
    "direct_conversion_share": 0.0,
    "appeal_exponent": None,
}


def _synthetic_big_log(settings: dict, name: str) -> Interactions:
    """The embedded generator at ``settings`` (scaled by ``settings["scale"]``, default 3), seen as
    conversion data: p3s = exposure, conversion = conversion, clicks removed."""
    from protocols.conversion import conversion_view
    from protocols.synthetic import generate

    log = generate(_synthetic_big_config(settings))
    return conversion_view(log, exposure="p3s", conversion="conversion", name=name)[0]


def _synthetic_big_config(settings: dict):
    from protocols.synthetic import SyntheticConfig

    settings = SYNTHETIC_BIG_DEFAULTS | dict(settings)
    scale = float(settings.pop("scale", SYNTHETIC_BIG_SCALE))
    return SyntheticConfig(**settings).scale(scale)


def _ml100k_location() -> Path:
    found = recbole_ml100k_path()
    if found is None:
        # A path that cannot exist, so `available()` says no and `load()` names the missing package.
        return Path("<recbole not installed: pip install --no-deps recbole==1.2.1 (README)>")
    return found


# The multi-behavior literature (MB-GMN, KHGT) splits MovieLens ratings into three behaviors.
_ML100K_SCHEMA = Schema("ml100k-mb", ("dislike", "neutral", "like"), SessionRule.day("UTC"))
_ML100K_EDGES = [3, 4]
_RETAILROCKET_SCHEMA = Schema("retailrocket", ("view", "cart", "buy"), SessionRule.gap(30))
_RETAILROCKET_COLUMNS = {"user": "user_id", "item": "item_id", "behavior": "behavior", "timestamp": "timestamp"}
# The UserBehavior timestamps are unix seconds; its days are China days (UTC+8).
_TAOBAO_SCHEMA = Schema("taobao-sample", ("pv", "fav", "cart", "buy"), SessionRule.day("Asia/Shanghai"))


def _ml100k(path: Path | None) -> Interactions:
    from protocols.formats import read_recbole_inter

    return read_recbole_inter(path, schema=_ML100K_SCHEMA, behavior_field="rating", rating_edges=_ML100K_EDGES)


def _retailrocket(path: Path | None) -> Interactions:
    from protocols.formats import read_table

    return read_table(path, schema=_RETAILROCKET_SCHEMA, columns=_RETAILROCKET_COLUMNS)


def _taobao(path: Path | None) -> Interactions:
    from protocols.formats import read_taobao_userbehavior

    return read_taobao_userbehavior(path, schema=_TAOBAO_SCHEMA)


def _retailrocket_rank(path: Path | None) -> Interactions:
    from protocols.conversion import conversion_view

    view, _ = conversion_view(_retailrocket(path), exposure="view", conversion="buy", name="retailrocket-rank")
    return view


BUILTIN: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "synthetic",
            "ShortVideoAD-like synthetic log: p3s < click < conversion, 15-min sessions, 4-level SIDs",
            lambda: None,
            _synthetic,
            "ShortVideoAD",
            definition=_synthetic_definition,
        ),
        DatasetSpec(
            "ml100k-mb",
            "MovieLens-100K as multi-behavior: dislike (<=2) < neutral (3) < like (>=4), daily sessions (UTC)",
            _ml100k_location,
            _ml100k,
            definition=lambda: {"schema": _schema_definition(_ML100K_SCHEMA), "rating_edges": _ML100K_EDGES},
        ),
        DatasetSpec(
            "retailrocket",
            "RetailRocket: view < cart < buy, new session after 30 min of inactivity",
            lambda: data_dir() / "retailrocket" / "interactions.csv",
            _retailrocket,
            "Tmall (stand-in)",
            definition=lambda: {"schema": _schema_definition(_RETAILROCKET_SCHEMA), "columns": _RETAILROCKET_COLUMNS},
        ),
        DatasetSpec(
            "taobao-sample",
            "Taobao UserBehavior sample: pv < fav < cart < buy, daily sessions (UTC+8)",
            lambda: data_dir() / "taobao-userbehavior-sample" / "UserBehavior.csv",
            _taobao,
            "JData (stand-in)",
            definition=lambda: {"schema": _schema_definition(_TAOBAO_SCHEMA)},
        ),
        DatasetSpec(
            "synthetic-big",
            "conversion data (Appendix D): the synthetic generator at 3x, p3s = exposure, conversion = conversion",
            lambda: None,
            lambda _: _synthetic_big_log({}, "synthetic-big"),
            "ShortVideoADbig",
            definition=lambda: {"generator": asdict(_synthetic_big_config({})), "view": "p3s -> conversion"},
        ),
        DatasetSpec(
            "retailrocket-rank",
            "conversion data (Appendix D): RetailRocket with view = exposure and buy = conversion (cart rows removed)",
            lambda: data_dir() / "retailrocket" / "interactions.csv",
            _retailrocket_rank,
            "ShortVideoADbig (stand-in)",
            definition=lambda: {
                "schema": _schema_definition(_RETAILROCKET_SCHEMA),
                "columns": _RETAILROCKET_COLUMNS,
                "view": "view -> buy",
            },
        ),
    )
}


@dataclass(frozen=True)
class _Type:
    """What a TOML value must be: ``description`` says it in an error message, ``admits`` checks it."""

    description: str
    admits: Callable[[Any], bool]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)  # TOML's true is a Python int


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_STRING = _Type("a string", lambda value: isinstance(value, str))
_NUMBER = _Type("a number", _is_number)
_INTEGER = _Type("an integer", _is_integer)
_BOOLEAN = _Type("a boolean (true or false)", lambda value: isinstance(value, bool))
_TABLE = _Type("a table", lambda value: isinstance(value, dict))
_STRINGS = _Type("a list of strings", lambda value: isinstance(value, list) and all(isinstance(v, str) for v in value))
_NUMBERS = _Type("a list of numbers", lambda value: isinstance(value, list) and all(map(_is_number, value)))
_STRING_TABLE = _Type(
    "a table of strings", lambda value: isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
)
_POSITION = _Type("a 0-based column position (header = false)", lambda value: _is_integer(value) and value >= 0)
# What a TOML value is, as its error message names it (dates and times are the only other TOML values).
_TOML_KINDS = {
    bool: "a boolean",
    int: "an integer",
    float: "a float",
    str: "a string",
    list: "an array",
    dict: "a table",
}

_TOML_TYPES = {
    "name": _STRING,
    "path": _STRING,
    "format": _STRING,
    "description": _STRING,
    "behaviors": _STRINGS,
    "target": _STRING,
    "timezone": _STRING,
    "columns": _TABLE,
    "session": _TABLE,
    "behavior_map": _STRING_TABLE,
    "rating_edges": _NUMBERS,
    "separator": _STRING,
    "header": _BOOLEAN,
    "synthetic": _TABLE,
    "conversion": _TABLE,
    "ranking": _TABLE,  # the older name of [conversion], still read
    "sample": _TABLE,
}
_SAMPLE_TYPES = {"users": _INTEGER, "seed": _INTEGER}
_SESSION_TYPES = {"rule": _STRING, "minutes": _NUMBER, "timezone": _STRING}
# The [session] keys each rule reads. Rule 'file' (session ids from the data) is no choice here: only the
# GAMER release carries session ids, and its format takes no [session] table.
_SESSION_READS = {"gap": {"rule", "minutes"}, "day": {"rule", "timezone"}}
_COLUMN_ROLES = ("user", "item", "behavior", "timestamp")
_CONVERSION_TYPES = {"exposure": _STRING, "conversion": _STRING}


@dataclass(frozen=True)
class _Format:
    """The top-level keys a format reads besides ``name``, ``format`` and ``description``, those it needs,
    and what the data brings itself in place of the keys it does not read."""

    reads: frozenset[str]
    needs: tuple[str, ...] = ("path", "behaviors", "session")
    brings: str = ""


_FILE_KEYS = frozenset({"path", "conversion", "ranking", "behaviors", "target", "session", "timezone"})
_TABLE_KEYS = _FILE_KEYS | {"columns", "behavior_map", "rating_edges"}
_SYNTHETIC_FORMAT = _Format(frozenset({"synthetic"}), (), "the generator makes the data from the [synthetic] table")
_FORMAT_KEYS = {
    "csv": _Format(_TABLE_KEYS | {"separator", "header"}),
    "tsv": _Format(_TABLE_KEYS | {"separator", "header"}),
    "parquet": _Format(_TABLE_KEYS, brings="a parquet file names its columns itself"),
    # `read_gamer_release` takes the behaviors and their levels from <D>.behavior_level.json and the
    # sessions from <D>.SMB.session.json, so 'behaviors', 'target' and [session] would go unread; 'name'
    # is the release's <D> (by default, the one the folder holds).
    "gamer": _Format(
        frozenset({"path", "conversion", "ranking", "timezone"}),
        ("path",),
        "the release brings its behaviors (<D>.behavior_level.json) and sessions (<D>.SMB.session.json)",
    ),
    "sslrec": _Format(_FILE_KEYS, brings="one matrix train_mat_<behavior>.pkl per behavior, of unix seconds"),
    "taobao": _Format(
        _FILE_KEYS | {"behavior_map"},
        brings="fixed columns user_id,item_id,category_id,behavior_type,timestamp (unix seconds), no header line",
    ),
    "recbole": _Format(_TABLE_KEYS, brings="a tab-separated file with a typed header line"),
    "synthetic": _SYNTHETIC_FORMAT,
    "synthetic-big": _SYNTHETIC_FORMAT,
}
_FORMATS = tuple(_FORMAT_KEYS)
# These formats hold unix seconds, so a time zone only decides the calendar days of [session] rule = 'day'.
_UNIX_SECONDS_FORMATS = ("sslrec", "taobao")


def _unknown(found: set[str], allowed: set[str], where: str, toml: Path) -> None:
    extra = sorted(found - allowed)
    if extra:
        raise ValueError(f"{toml}: unknown key(s) {extra} in {where}; allowed keys: {sorted(allowed)}")


def _typed(table: dict, types: dict[str, _Type], where: str, toml: Path) -> dict:
    """``table``, once every key is one of ``types`` and every value has its key's type."""
    _unknown(set(table), set(types), where, toml)
    for key, value in table.items():
        expected = types[key]
        if not expected.admits(value):
            found = f"{json.dumps(value, default=str)} ({_TOML_KINDS.get(type(value), 'a date or time')})"
            hint = "; write it without quotes" if isinstance(value, str) and _admits_unquoted(expected, value) else ""
            raise ValueError(f"{toml}: {key!r} in {where} must be {expected.description}; found {found}{hint}")
    return table


def _admits_unquoted(expected: _Type, text: str) -> bool:
    """Whether ``text`` without its quotes is a TOML value of the ``expected`` type ("30" for a number)."""
    try:
        return expected.admits(tomllib.loads(f"value = {text}")["value"])
    except tomllib.TOMLDecodeError:
        return False


def _synthetic_types() -> dict[str, _Type]:
    """[synthetic]'s keys: each `protocols.synthetic.SyntheticConfig` field by its annotation, and ``scale``."""
    from protocols.synthetic import SyntheticConfig

    by_annotation = {int: _INTEGER, float: _NUMBER, bool: _BOOLEAN, str: _STRING}
    hints = get_type_hints(SyntheticConfig)
    types = {}
    for field in fields(SyntheticConfig):
        # ``float | None`` is a number: TOML has no null, so only the default can be None.
        annotation = next(a for a in get_args(hints[field.name]) or (hints[field.name],) if a is not type(None))
        types[field.name] = by_annotation[annotation]
    return types | {"scale": _NUMBER}


def _check_format_keys(config: dict, fmt: str, toml: Path) -> None:
    """Raise for a key the format does not read (it would be silently ignored) or a key it needs."""
    spec = _FORMAT_KEYS[fmt]
    reads = spec.reads | {"name", "format", "description", "sample"}
    unread = sorted(set(config) - reads)
    if unread:
        brings = f" ({spec.brings})" if spec.brings else ""
        raise ValueError(
            f"{toml}: key(s) {unread} have no effect with format {fmt!r}, which reads only {sorted(reads)}"
            f"{brings}; remove them"
        )
    for key in spec.needs:
        if key not in config:
            raise ValueError(f"{toml}: missing required key {key!r} (format {fmt!r})")


def _session_rule(table: dict, toml: Path, timezone: str) -> SessionRule:
    """The [session] table's rule: ``gap`` reads ``minutes``, ``day`` reads ``timezone`` (by default the
    top-level one); a key its rule does not read is an error, not ignored."""
    _typed(table, _SESSION_TYPES, "[session]", toml)
    rule = table.get("rule")
    if rule == "file":
        raise ValueError(
            f"{toml}: [session] rule = 'file' keeps the session ids of the data, and only format 'gamer' has "
            "them (it takes no [session] table); use rule = 'gap' or 'day'"
        )
    if rule not in _SESSION_READS:
        raise ValueError(f"{toml}: [session] rule must be 'gap' or 'day', found {rule!r}")
    unread = sorted(set(table) - _SESSION_READS[rule])
    if unread:
        raise ValueError(
            f"{toml}: key(s) {unread} in [session] have no effect with rule {rule!r}, which reads only "
            f"{sorted(_SESSION_READS[rule])}; remove them"
        )
    if rule == "day":
        return SessionRule.day(table.get("timezone", timezone))
    if "minutes" not in table:
        raise ValueError(f"{toml}: [session] rule = 'gap' needs 'minutes' (e.g. minutes = 30)")
    if table["minutes"] < 0:
        raise ValueError(f"{toml}: [session] minutes must be >= 0, found {table['minutes']}")
    return SessionRule.gap(table["minutes"])


def _schema_from_toml(config: dict, name: str, toml: Path) -> Schema:
    """Behaviors (lowest level first, the target last) and the session rule of a format that takes them."""
    behaviors = tuple(config["behaviors"])
    target = config.get("target", behaviors[-1] if behaviors else None)
    if not behaviors or target != behaviors[-1]:
        raise ValueError(
            f"{toml}: 'target' ({target!r}) must be the highest-level behavior, i.e. the last of "
            f"'behaviors' (lowest level first): {list(behaviors)}"
        )
    rule = _session_rule(config["session"], toml, config.get("timezone", "UTC"))
    fmt = config["format"]
    if (
        fmt in _UNIX_SECONDS_FORMATS
        and "timezone" in config
        and (rule.kind != "day" or "timezone" in config["session"])
    ):
        raise ValueError(
            f"{toml}: 'timezone' has no effect with format {fmt!r}: its timestamps are unix seconds, and the "
            "zone only sets the calendar days of a [session] rule = 'day' that names none; remove it"
        )
    unmapped = sorted(set(config.get("behavior_map", {}).values()) - set(behaviors))
    if unmapped:
        raise ValueError(
            f"{toml}: behavior_map maps to {unmapped}, which are not in 'behaviors' {list(behaviors)}; map each "
            "raw value to one of them"
        )
    if "behavior_map" in config and "rating_edges" in config:
        raise ValueError(
            f"{toml}: 'behavior_map' has no effect with 'rating_edges' (the behavior column then holds ratings, "
            "cut into levels at the edges); keep one of them"
        )
    try:
        return Schema(name, behaviors, rule)
    except ValueError as error:
        raise ValueError(f"{toml}: {error}") from None


def _columns(config: dict, toml: Path) -> dict[str, str | int]:
    """[columns]: each role's column name; with ``header = false``, every role's 0-based position."""
    columns = config.get("columns", {})
    if config.get("header", True):
        return _typed(columns, dict.fromkeys(_COLUMN_ROLES, _STRING), "[columns]", toml)
    _typed(columns, dict.fromkeys(_COLUMN_ROLES, _POSITION), "[columns]", toml)
    missing = [role for role in _COLUMN_ROLES if role not in columns]
    if missing:
        raise ValueError(
            f"{toml}: with header = false, columns are 0-based positions and [columns] must give every role; "
            f"{missing} missing (e.g. user = 0, item = 1, behavior = 2, timestamp = 3)"
        )
    return columns


def _report_absent_behaviors(inter: Interactions, data: Path | None, toml: Path, conversion: str | None) -> None:
    """Raise when the target behavior (the conversion view's ``conversion``, if any) never occurs in the loaded
    data: no target-behavior query could be built. Warn about any other behavior that never occurs."""
    counts = np.bincount(inter.behavior, minlength=len(inter.schema.behaviors))
    absent = [name for name, count in zip(inter.schema.behaviors, counts, strict=True) if count == 0]
    target, role = (
        (conversion, "the target: [conversion] conversion") if conversion else (inter.schema.target, "the target")
    )
    if target in absent:
        raise ValueError(
            f"{toml}: behavior {target!r} ({role}) never occurs in {data}; check the behavior names, "
            "behavior_map or rating_edges against the data"
        )
    if absent:
        warnings.warn(
            f"{toml}: behavior(s) {absent} never occur in {data}; they keep their levels but hold no interaction "
            "(remove them from 'behaviors' if the data has none)",
            stacklevel=3,
        )


def _synthetic_from_toml(config: dict, toml: Path) -> DatasetSpec:
    """The embedded generator at another size or seed: ``format = "synthetic"`` (or ``"synthetic-big"``,
    the conversion view) and a ``[synthetic]`` table of `protocols.synthetic.SyntheticConfig` fields
    (``n_users``, ``n_items``, ``seed``, ...; each of its annotated type, a float field taking an
    integer too) and ``scale`` (a factor on users and items)."""
    from protocols.synthetic import SyntheticConfig, generate

    fmt = config["format"]
    settings = dict(_typed(config.get("synthetic", {}), _synthetic_types(), "[synthetic]", toml))
    name = config.get("name", toml.stem)

    def generator() -> SyntheticConfig:
        if fmt == "synthetic-big":
            return _synthetic_big_config(settings)
        options = dict(settings)
        scale = float(options.pop("scale", 1.0))
        return SyntheticConfig(**options).scale(scale)

    def read(_: Path | None) -> Interactions:
        if fmt == "synthetic-big":
            return _synthetic_big_log(settings, name)
        inter = generate(generator())
        return replace(inter, schema=replace(inter.schema, name=name))

    return DatasetSpec(
        name,
        config.get("description", f"synthetic data from {toml}"),
        lambda: None,
        read,
        origin=str(toml.resolve()),
        definition=lambda: {"toml": config, "generator": asdict(generator())},
    )


def dataset_from_toml(toml: Path) -> DatasetSpec:
    """A custom dataset from a TOML description (every key is in the README).

    Errors, each naming the TOML file: an unknown key; a value not of its key's type (``minutes = "30"``);
    a key the format does not read, so that nothing is silently ignored: ``gamer`` reads only ``path``,
    ``timezone``, ``name`` (the release's <D>) and ``[conversion]``, since the release brings its own
    behaviors and sessions and so needs neither ``behaviors`` nor ``[session]``; ``parquet``, ``sslrec``,
    ``taobao`` and ``recbole`` read no ``separator`` or ``header``; ``sslrec`` and ``taobao`` no
    ``[columns]`` or ``rating_edges`` (``taobao`` reads ``behavior_map``), and their ``timezone`` only sets
    a day session rule's zone. At load, a behavior that never occurs in the data is warned about, and
    is an error when it is the target.
    """
    toml = Path(toml)
    try:
        config = tomllib.loads(toml.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{toml}: not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset {error.start}); TOML files "
            "are UTF-8: re-encode it (e.g. iconv -f LATIN1 -t UTF-8)"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{toml}: not valid TOML: {error}") from error
    _typed(config, _TOML_TYPES, "the top level", toml)
    if "format" not in config:
        raise ValueError(f"{toml}: missing required key 'format'")
    fmt = config["format"]
    if fmt not in _FORMATS:
        raise ValueError(f"{toml}: format must be one of {list(_FORMATS)}, found {fmt!r}")
    _check_format_keys(config, fmt, toml)
    if fmt in ("synthetic", "synthetic-big"):
        return _sampled(_synthetic_from_toml(config, toml), config, toml)
    return _sampled(_file_dataset(config, fmt, toml), config, toml)


def _sampled(spec: DatasetSpec, config: dict, toml: Path) -> DatasetSpec:
    """``spec`` reduced to ``[sample] users = N`` users (``seed``, default 0) drawn before the protocol
    runs, whole histories kept (`Interactions.sample_users`). The [sample] table is in the definition, so
    a sampled dataset never shares stored results with the whole one."""
    if "sample" not in config:
        return spec
    sample = _typed(config["sample"], _SAMPLE_TYPES, "[sample]", toml)
    if "users" not in sample or sample["users"] < 1 or sample.get("seed", 0) < 0:
        raise ValueError(f"{toml}: [sample] needs users = N (an integer >= 1) and takes seed = S (>= 0, default 0)")
    users, seed = sample["users"], sample.get("seed", 0)

    def read(path: Path | None) -> Interactions:
        inter = spec.read(path)
        if users >= inter.n_users:
            raise ValueError(
                f"{toml}: [sample] users = {users} keeps every one of the {inter.n_users} users; remove [sample] "
                "or ask for fewer"
            )
        return inter.sample_users(users, seed)

    description = f"{spec.description} (a sample of {users} users, seed {seed})"
    return replace(spec, read=read, description=description)


def _conversion_table(config: dict, toml: Path) -> dict[str, str]:
    """The ``[conversion]`` table (Appendix D's view: which behavior is the exposure, which the conversion),
    or ``{}``. ``[ranking]``, its name before, is read alike with a warning; both at once is an error."""
    if "conversion" in config and "ranking" in config:
        raise ValueError(f"{toml}: [ranking] is the older name of [conversion]; give one of them, not both")
    key = "ranking" if "ranking" in config else "conversion"
    if key == "ranking":
        warnings.warn(f"{toml}: [ranking] is now named [conversion]; read as [conversion]", FutureWarning, stacklevel=3)
    table = _typed(config.get(key, {}), _CONVERSION_TYPES, f"[{key}]", toml)
    if table and set(table) != set(_CONVERSION_TYPES):
        raise ValueError(f"{toml}: [{key}] needs both 'exposure' and 'conversion' (behavior names of the file)")
    return table


def _file_dataset(config: dict, fmt: str, toml: Path) -> DatasetSpec:
    """A dataset read from files (every format but the generator's)."""
    name = config.get("name", toml.stem)
    timezone = config.get("timezone", "UTC")
    schema = None if fmt == "gamer" else _schema_from_toml(config, name, toml)
    columns = _columns(config, toml)
    path = Path(config["path"]).expanduser()
    if not path.is_absolute():
        path = toml.parent / path
    conversion = _conversion_table(config, toml)
    if conversion and schema is not None and not set(conversion.values()) <= set(schema.behaviors):
        raise ValueError(
            f"{toml}: [conversion] names {sorted(set(conversion.values()) - set(schema.behaviors))}, which are not "
            f"in 'behaviors' {list(schema.behaviors)}"
        )

    def read(p: Path | None) -> Interactions:
        inter = read_file(p)
        _report_absent_behaviors(inter, p, toml, conversion.get("conversion"))
        if not conversion:
            return inter
        from protocols.conversion import conversion_view

        return conversion_view(inter, exposure=conversion["exposure"], conversion=conversion["conversion"], name=name)[
            0
        ]

    def read_file(p: Path | None) -> Interactions:
        from protocols import formats

        if fmt in ("csv", "tsv", "parquet"):
            return formats.read_table(
                p,
                schema=schema,
                columns=columns,
                format=fmt,
                separator=config.get("separator"),
                header=config.get("header", True),
                behavior_map=config.get("behavior_map"),
                rating_edges=config.get("rating_edges"),
                timezone=timezone,
            )
        if fmt == "gamer":
            return formats.read_gamer_release(p, name=config.get("name"), timezone=timezone)
        if fmt == "sslrec":
            return formats.read_sslrec(p, schema.behaviors, name=name, session_rule=schema.session_rule)
        if fmt == "taobao":
            return formats.read_taobao_userbehavior(p, schema=schema, behavior_map=config.get("behavior_map"))
        return formats.read_recbole_inter(
            p,
            schema=schema,
            rating_edges=config.get("rating_edges"),
            behavior_map=config.get("behavior_map"),
            timezone=timezone,
            **{f"{role}_field": column for role, column in columns.items()},  # user = "uid" -> user_field="uid"
        )

    return DatasetSpec(
        name,
        config.get("description", f"custom dataset from {toml}"),
        lambda: path,
        read,
        origin=str(toml.resolve()),
        definition=lambda: {"toml": config, "path": str(path.resolve())},
    )


def dataset_key(name_or_path: str) -> str:
    """The folder name of a dataset's stored results: a built-in's name, or a TOML's stem and a hash of its
    absolute path, so that two ``mydata.toml`` in different folders never share results."""
    if not name_or_path.endswith(".toml"):
        return name_or_path
    toml = Path(name_or_path).expanduser().resolve()
    return f"{toml.stem}-{hashlib.sha256(str(toml).encode()).hexdigest()[:10]}"


DATASET_ENTRY_POINTS = "gamer_bench.datasets"
PLUGIN_DATASETS: dict[str, DatasetSpec] = {}  # registered by `gamer-bench ... --plugins module` or loaded


def register_dataset(spec: DatasetSpec) -> bool:
    """Add a plugin's dataset; False, with a warning, where the name is taken (built-in names win, and a
    name registered first stays). Its ``origin`` is part of its results' identity."""
    if not isinstance(spec, DatasetSpec):
        raise TypeError(f"a plugin must give a protocols.catalog.DatasetSpec, got {type(spec).__name__}: {spec!r}")
    taken = BUILTIN.get(spec.name) or PLUGIN_DATASETS.get(spec.name)
    if taken is not None:
        if taken is not spec:
            warnings.warn(
                f"plugin dataset {spec.name!r} ({spec.origin}) is ignored: the name belongs to {taken.origin}",
                stacklevel=2,
            )
        return False
    PLUGIN_DATASETS[spec.name] = spec
    return True


def _installed_plugin_dataset(name: str) -> DatasetSpec | None:
    """The installed plugin dataset ``name`` (entry point group ``gamer_bench.datasets``: a DatasetSpec
    or a function returning one), imported and registered now; None where no plugin has that name."""
    ep = entry_points.installed(DATASET_ENTRY_POINTS).get(name)
    if ep is None:
        return None
    spec = entry_points.load(ep, DatasetSpec, "dataset")
    origin = f"plugin {entry_points.distribution(ep)}"
    register_dataset(replace(spec, origin=origin) if spec.origin == "builtin" else spec)
    return PLUGIN_DATASETS[name]


def resolve(name_or_path: str) -> DatasetSpec:
    """A built-in name, the path of a TOML file describing a custom dataset, or a plugin's dataset."""
    if name_or_path in BUILTIN:
        return BUILTIN[name_or_path]
    if name_or_path in PLUGIN_DATASETS:
        return PLUGIN_DATASETS[name_or_path]
    if name_or_path.endswith(".toml"):
        toml = Path(name_or_path).expanduser()
        if not toml.exists():
            raise FileNotFoundError(f"dataset description {name_or_path} does not exist")
        return dataset_from_toml(toml)
    spec = _installed_plugin_dataset(name_or_path)
    if spec is not None:
        return spec
    raise ValueError(
        f"unknown dataset {name_or_path!r}: use one of {sorted(BUILTIN | PLUGIN_DATASETS)}, a path to a .toml file, "
        "or an installed plugin's dataset"
    )
