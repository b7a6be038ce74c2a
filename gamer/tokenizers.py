"""Item tokenizers: each item becomes a short tuple of codes, the words a generative recommender emits.

Three ways to make them (paper Section 4.1.4):

- **given SIDs**: the semantic IDs a dataset ships with (ShortVideoAD's RQ-VAE codes, 4 x 8192).
- **CIDs** (chunked IDs): the item index written in base 64, most significant digit first.
- **RQ-VAE SIDs** (`gamer.rqvae`): an MLP autoencoder whose latent is residual-quantised, for data
  without released SIDs (its input: modality features, or `gamer.embeddings.collaborative_embeddings`).

Shared vocabulary layout (the decoder, beam search and every generative baseline rely on it)::

    token 0                 pad
    tokens 1 .. |B|         behavior tokens, lowest level first
    offset_0 = 1 + |B|      level-0 code c  ->  token offset_0 + c
    offset_{l+1} = offset_l + codebook_sizes[l]
    vocab_size = 1 + |B| + sum(codebook_sizes)        (levels never share ids)

Collisions (two items with one full code) are resolved as TIGER does: an extra last level numbers
the items of each colliding group 0, 1, 2, ... The authors' code instead re-quantises colliding
groups with Sinkhorn and leaves the rest colliding (reference code, Section 7.3).

A trained RQ-VAE gets its codebook size from the catalogue (`rqvae_codebook_size`): the profile sets
the levels L and a floor and ceiling, and C is the floor doubled until ``C**L >= 16 * n_items``. Fixed
sizes failed: 3 x 16 codes for RetailRocket's 29,905 items left 97 % of them colliding, with 943 items
behind one code. If the trained codes still collide too much (`sid_collision_problem`, judged on
distinct inputs), the run falls back to CIDs and says so in ``meta["cid_fallback"]``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from gamer.embeddings import collaborative_embeddings
from gamer.rqvae import RQVAEConfig, fit_codes
from protocols.interactions import Interactions, Schema

_FORMAT = "gamer-bench item tokenizer"
_FORMAT_VERSION = 1
_META_FILE = "tokenizer.json"
_CODES_FILE = "codes.npy"


def _check_codes(codes: np.ndarray, codebook_sizes: tuple[int, ...], where: str) -> None:
    """Raise ValueError (prefixed by ``where``) unless ``codes`` is ``[n_items >= 1, L]`` within the sizes."""
    if codes.ndim != 2 or codes.shape[0] < 1 or codes.shape[1] < 1:
        raise ValueError(f"{where}: codes must be a [n_items >= 1, levels >= 1] array, got shape {codes.shape}")
    if len(codebook_sizes) != codes.shape[1]:
        raise ValueError(f"{where}: {codes.shape[1]} code levels but {len(codebook_sizes)} codebook sizes")
    if any(size < 1 for size in codebook_sizes):
        raise ValueError(f"{where}: codebook sizes must be >= 1, got {codebook_sizes}")
    low, high = codes.min(axis=0), codes.max(axis=0)
    for level, size in enumerate(codebook_sizes):
        if low[level] < 0 or high[level] >= size:
            raise ValueError(
                f"{where}: level {level} holds codes {int(low[level])}..{int(high[level])}, outside 0..{size - 1}"
            )


def _row_keys(codes: np.ndarray) -> np.ndarray:
    """``[n]`` one opaque key per code row (its bytes), for equality look-ups; the order is not numeric."""
    rows = np.ascontiguousarray(codes, dtype=np.int64)
    return rows.view(np.dtype((np.void, rows.itemsize * rows.shape[1]))).ravel()


def _group_sizes(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[n]`` group index of each row (rows with the same full code) and ``[n_groups]`` group sizes."""
    _, group, sizes = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    return group.ravel(), sizes


def collision_rate_of(codes: np.ndarray) -> float:
    """Share of rows whose full code is shared with at least one other row: ``[n, L]`` -> [0, 1]."""
    group, sizes = _group_sizes(codes)
    return float((sizes[group] > 1).mean())


def largest_group_of(codes: np.ndarray) -> int:
    """Most rows that share one full code: ``[n, L]`` -> 1 .. n (1 when every code is unique)."""
    return int(_group_sizes(codes)[1].max())


@dataclass(frozen=True, eq=False)
class ItemTokenizer:
    """Item index i -> ``codes[i] = (c_0, ..., c_{L-1})``, coarsest level first (module docstring).

    ``codes`` is ``[n_items, L]`` int64 (stored read-only); ``0 <= codes[:, l] < codebook_sizes[l]``.
    ``meta`` records provenance: how the codes were made, seed, collision rates before and after
    disambiguation. It must hold JSON values only, since `save` writes it as JSON.
    """

    name: str
    codes: np.ndarray = field(repr=False)
    codebook_sizes: tuple[int, ...]
    meta: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        codes = np.asarray(self.codes)
        if codes.dtype.kind not in "iu":
            raise ValueError(f"tokenizer {self.name!r}: codes must be integers, got dtype {codes.dtype}")
        codes = np.array(codes, dtype=np.int64)  # a private copy, so freezing it cannot affect the caller
        codes.setflags(write=False)
        sizes = tuple(int(s) for s in self.codebook_sizes)
        _check_codes(codes, sizes, f"tokenizer {self.name!r}")
        object.__setattr__(self, "codes", codes)
        object.__setattr__(self, "codebook_sizes", sizes)
        object.__setattr__(self, "meta", dict(self.meta))

    # -- shape ---------------------------------------------------------------------------------
    @property
    def n_items(self) -> int:
        return self.codes.shape[0]

    @property
    def levels(self) -> int:
        """L, the number of tokens per item."""
        return self.codes.shape[1]

    # -- vocabulary layout -----------------------------------------------------------------------
    def level_offsets(self, n_behaviors: int) -> tuple[int, ...]:
        """Global id of code 0 of each level: ``offset_0 = 1 + |B|``, then cumulative codebook sizes."""
        if n_behaviors < 1:
            raise ValueError(f"n_behaviors must be >= 1, got {n_behaviors}")
        starts = 1 + n_behaviors + np.concatenate([[0], np.cumsum(self.codebook_sizes[:-1])])
        return tuple(int(s) for s in starts)

    def token_ids(self, n_behaviors: int) -> np.ndarray:
        """``[n_items, L]`` int64 global token ids: ``codes[:, l] + offset_l``."""
        return self.codes + np.asarray(self.level_offsets(n_behaviors), dtype=np.int64)

    def vocab_size(self, n_behaviors: int) -> int:
        """``1 + |B| + sum(codebook_sizes)``: pad, behaviors, then every level's codes."""
        if n_behaviors < 1:
            raise ValueError(f"n_behaviors must be >= 1, got {n_behaviors}")
        return 1 + n_behaviors + sum(self.codebook_sizes)

    # -- collisions and look-up ----------------------------------------------------------------
    def collision_rate(self) -> float:
        """Share of items whose full code is shared with another item (0 for a unique tokenizer)."""
        return collision_rate_of(self.codes)

    def is_unique(self) -> bool:
        return self.collision_rate() == 0.0

    @cached_property
    def _sorted_keys(self) -> tuple[np.ndarray, np.ndarray]:
        keys = _row_keys(self.codes)
        order = np.argsort(keys, kind="stable")  # stable: among colliding items the lowest index comes first
        return keys[order], order

    def item_of_codes(self, codes: np.ndarray) -> np.ndarray:
        """``[k, L]`` code rows -> ``[k]`` int64 item index, or -1 where no item has that code.

        Where items collide, the lowest item index is returned. Out-of-range codes give -1.
        """
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != self.levels:
            raise ValueError(f"item_of_codes expects a [k, {self.levels}] array, got shape {codes.shape}")
        if codes.dtype.kind not in "iu":
            raise ValueError(f"item_of_codes expects integer codes, got dtype {codes.dtype}")
        out = np.full(len(codes), -1, dtype=np.int64)
        if len(codes) == 0:
            return out
        sorted_keys, order = self._sorted_keys
        query = _row_keys(codes)
        at = np.minimum(np.searchsorted(sorted_keys, query), len(sorted_keys) - 1)
        found = sorted_keys[at] == query
        out[found] = order[at[found]]
        return out

    def describe(self) -> dict[str, Any]:
        """What a result's provenance records of the item IDs a run used: name, codebook sizes and the
        scalar facts of how they were made (collisions, a fallback to chunked IDs and why)."""
        scalars = {k: v for k, v in self.meta.items() if isinstance(v, int | float | str)}
        return {"name": self.name, "codebook_sizes": list(self.codebook_sizes)} | scalars

    # -- persistence ---------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write ``folder/tokenizer.json`` (name, sizes, meta) and ``folder/codes.npy``; return the folder."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        header = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "name": self.name,
            "n_items": self.n_items,
            "levels": self.levels,
            "codebook_sizes": list(self.codebook_sizes),
            "meta": self.meta,
        }
        text = json.dumps(header, indent=2, default=_json_value)  # before writing: a bad meta leaves no files
        np.save(folder / _CODES_FILE, self.codes, allow_pickle=False)
        (folder / _META_FILE).write_text(text + "\n", encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> ItemTokenizer:
        """Read a folder written by `save`; raise ValueError naming the file on anything malformed."""
        folder = Path(folder)
        meta_path, codes_path = folder / _META_FILE, folder / _CODES_FILE
        try:
            header = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{meta_path}: not valid JSON ({err})") from None
        if not isinstance(header, dict) or header.get("format") != _FORMAT:
            raise ValueError(f"{meta_path}: not a gamer-bench item tokenizer (no 'format': {_FORMAT!r})")
        if header.get("version") != _FORMAT_VERSION:
            raise ValueError(
                f"{meta_path}: format version {header.get('version')!r}, this code reads {_FORMAT_VERSION}"
            )
        for key, kind in (("name", str), ("n_items", int), ("levels", int), ("codebook_sizes", list), ("meta", dict)):
            if not isinstance(header.get(key), kind):
                raise ValueError(f"{meta_path}: field {key!r} must be a JSON {kind.__name__}, got {header.get(key)!r}")
        sizes = header["codebook_sizes"]
        if not all(isinstance(s, int) for s in sizes):
            raise ValueError(f"{meta_path}: codebook_sizes must be integers, got {sizes}")
        try:
            codes = np.load(codes_path, allow_pickle=False)
        except ValueError as err:
            raise ValueError(f"{codes_path}: not a plain numeric .npy array ({err})") from None
        if codes.dtype != np.int64:
            raise ValueError(f"{codes_path}: codes must be int64, got {codes.dtype}")
        expected = (header["n_items"], header["levels"])
        if codes.shape != expected:
            raise ValueError(f"{codes_path}: shape {codes.shape}, but {meta_path.name} says {expected}")
        _check_codes(codes, tuple(sizes), str(codes_path))
        return cls(header["name"], codes, tuple(sizes), header["meta"])


def _json_value(value: Any) -> Any:
    """json.dumps fallback for numpy scalars and arrays in ``meta``."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"tokenizer meta holds a {type(value).__name__}, which JSON cannot store: {value!r}")


# ---- collision handling ----------------------------------------------------------------------------


def add_disambiguation_level(
    codes: np.ndarray, codebook_sizes: tuple[int, ...] | None = None
) -> tuple[np.ndarray, tuple[int, ...]]:
    """TIGER's collision fix: ``[n, L]`` -> ``[n, L + 1]`` codes that are unique, and their sizes.

    Items sharing a full code get an extra last code 0, 1, 2, ... in order of item index; an item
    whose code is unique gets 0. The new level's size is the largest group. ``codebook_sizes``
    default to each level's max code + 1.
    """
    codes = np.asarray(codes, dtype=np.int64)
    sizes = tuple(int(s) for s in (codes.max(axis=0) + 1 if codebook_sizes is None else codebook_sizes))
    _check_codes(codes, sizes, "add_disambiguation_level")
    group, group_sizes = _group_sizes(codes)
    order = np.argsort(group, kind="stable")  # rows by group, item index order inside a group
    first = np.concatenate([[0], np.cumsum(group_sizes)[:-1]])  # where each group starts in `order`
    suffix = np.empty(len(codes), dtype=np.int64)
    suffix[order] = np.arange(len(codes)) - first[group[order]]
    return np.column_stack([codes, suffix]), (*sizes, int(group_sizes.max()))


def _disambiguated(name: str, codes: np.ndarray, sizes: tuple[int, ...], meta: dict[str, Any]) -> ItemTokenizer:
    """The tokenizer of ``codes``, with a disambiguation level only if some items collide."""
    before, largest = collision_rate_of(codes), largest_group_of(codes)
    added = before > 0.0
    if added:
        codes, sizes = add_disambiguation_level(codes, sizes)
    meta = {
        **meta,
        "collision_rate_before": before,
        "largest_group_before": largest,
        "collision_rate_after": 0.0,
        "disambiguation_level": added,
    }
    return ItemTokenizer(name, codes, sizes, meta)


# ---- given semantic IDs and chunked IDs ------------------------------------------------------------


def given_semantic_ids(schema_or_array: Schema | np.ndarray, name: str = "sid-given") -> ItemTokenizer:
    """The SIDs released with the data (``Schema.item_semantic_ids``, ``[n_items, L]``), made unique.

    Codebook sizes are each level's max code + 1. If codes collide, a disambiguation level is
    appended (`add_disambiguation_level`); meta records the collision rate before and after.
    """
    if isinstance(schema_or_array, Schema):
        if schema_or_array.item_semantic_ids is None:
            raise ValueError(
                f"dataset {schema_or_array.name!r} ships no semantic IDs; use kind 'rqvae' or 'cid' instead"
            )
        codes, source = np.asarray(schema_or_array.item_semantic_ids), f"schema {schema_or_array.name!r}"
    else:
        codes, source = np.asarray(schema_or_array), "array"
    if codes.ndim != 2 or codes.dtype.kind not in "iu" or codes.size == 0:
        raise ValueError(
            f"semantic IDs must be a non-empty [n_items, levels] integer array, got {codes.dtype} {codes.shape}"
        )
    if codes.min() < 0:
        raise ValueError(f"semantic IDs from {source} hold a negative code ({int(codes.min())})")
    codes = codes.astype(np.int64)
    sizes = tuple(int(s) for s in codes.max(axis=0) + 1)
    return _disambiguated(name, codes, sizes, {"kind": "sid-given", "source": source})


def chunked_ids(n_items: int, base: int = 64) -> ItemTokenizer:
    """CIDs: item index i written in base ``base``, MOST significant digit first (paper: k = 64).

    ``t = ceil(log_base n_items)`` digits (at least 1), computed in integers: the smallest t with
    ``base**t >= n_items``. Unique by construction. Digit order differs between the codebases: the
    GAMER authors' ``tokenize.py --cid`` is little-endian (first token = least significant digit),
    MBGen's is big-endian; we follow the issue and MBGen, so the first token is the coarsest split,
    as it is for SIDs. Every level has ``base`` codes, though the top digit may use fewer.
    """
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    if base < 2:
        raise ValueError(f"CID base must be >= 2, got {base}")
    digits = 1
    while base**digits < n_items:
        digits += 1
    place = base ** np.arange(digits - 1, -1, -1, dtype=np.int64)  # [t] most significant first
    codes = (np.arange(n_items, dtype=np.int64)[:, None] // place) % base
    meta = {
        "kind": "cid",
        "base": base,
        "digit_order": "most significant first",
        "collision_rate_before": 0.0,
        "largest_group_before": 1,
    }
    return ItemTokenizer(f"cid-{base}", codes, (base,) * digits, meta)


def _input_collisions(embeddings: np.ndarray, codes: np.ndarray) -> dict[str, float | int]:
    """What the input forces and what the tokenizer adds: ``embeddings`` ``[n, d]``, ``codes`` ``[n, L]``.

    Items with identical input rows get one code from any tokenizer (``input_*``: the floor; on
    RetailRocket 55 % of items, 911 behind one row: items seen only by the same one user). The
    ``distinct_input_*`` numbers count each distinct input row once, so they measure only the
    collisions a bigger codebook or longer training could undo.
    """
    first = np.unique(embeddings, axis=0, return_index=True)[1]  # one item per distinct input row
    return {
        "input_collision_rate": collision_rate_of(embeddings),
        "input_largest_group": largest_group_of(embeddings),
        "distinct_input_collision_rate": collision_rate_of(codes[first]),
        "distinct_input_largest_group": largest_group_of(codes[first]),
    }


def train_rqvae(
    embeddings: np.ndarray,
    levels: int,
    codebook_size: int,
    *,
    seed: int = 0,
    config: RQVAEConfig | None = None,
    device: str = "cpu",
    **overrides: Any,
) -> ItemTokenizer:
    """Train an RQ-VAE on ``embeddings`` ``[n_items, d]`` and tokenise every item with it
    (`gamer.rqvae.fit_codes`); ``overrides`` replace fields of ``config``
    (``train_rqvae(x, 3, 16, epochs=50)``). A disambiguation level is appended if any codes collide,
    and the meta records the collisions the input forces and those the codes add (`_input_collisions`).
    """
    config = replace(config or RQVAEConfig(), **overrides)
    codes, meta = fit_codes(embeddings, levels, codebook_size, seed=seed, config=config, device=device)
    meta |= _input_collisions(np.asarray(embeddings, dtype=np.float32), codes)
    return _disambiguated(f"rqvae-{levels}x{codebook_size}", codes, (codebook_size,) * levels, meta)


# ---- codebook size and collision limits ------------------------------------------------------------

# Code space per item: spread uniformly over 16 n cells, 1 - exp(-1/16) = 6 % of items would collide; a
# trained RQ-VAE crowds similar items together and does far worse. On RetailRocket at smoke, 8 n (3 x 64)
# left 45-48 % of distinct inputs colliding and up to 66 behind one code, so one seed in three fell back
# to CIDs; 16 n (3 x 128) left 35 %, at no measurable cost in time.
CODE_SPACE_PER_ITEM = 16
# Above this share of distinct inputs that collide, most of them are told apart by the arbitrary
# disambiguation digit rather than by their learned code: the IDs are no longer semantic, so the run falls
# back to CIDs.
MAX_COLLISION_RATE = 0.5
# What a CID fallback keeps of the RQ-VAE it replaced, prefixed "rqvae_" (CIDs never collide).
_RQVAE_RECORD = (
    "levels",
    "codebook_size",
    "seed",
    "collision_rate_before",
    "largest_group_before",
    "input_collision_rate",
    "input_largest_group",
    "distinct_input_collision_rate",
    "distinct_input_largest_group",
)


def rqvae_codebook_size(n_items: int, levels: int, *, minimum: int = 256, maximum: int = 8192) -> int:
    """Codes per level for an RQ-VAE over ``n_items``: ``minimum`` doubled until ``C**levels`` reaches
    ``CODE_SPACE_PER_ITEM * n_items``, and at most ``maximum``.

    The floor keeps a profile's intent (the paper profile never goes below the authors' 256); the
    ceiling bounds the cost. With the ceiling reached, collisions may exceed `sid_collision_problem`'s
    limits and the run falls back to CIDs. RetailRocket (29,905 items), 3 levels, floor 16: 128 codes,
    since 64**3 = 262,144 < 16 x 29,905 = 478,480 <= 128**3 = 2,097,152.
    """
    if n_items < 1 or levels < 1:
        raise ValueError(f"need n_items >= 1 and levels >= 1, got {n_items} items and {levels} levels")
    if not 1 <= minimum <= maximum:
        raise ValueError(f"need 1 <= rqvae_codebook_min <= rqvae_codebook_max, got {minimum} and {maximum}")
    size = minimum
    while size**levels < CODE_SPACE_PER_ITEM * n_items and size < maximum:
        size *= 2
    return min(size, maximum)


def sid_collision_problem(collision_rate: float, largest_group: int, codebook_size: int) -> str | None:
    """Why trained codes are too colliding to serve as item IDs, or None if they are fit.

    Give the numbers over distinct inputs (`_input_collisions`): items with identical inputs collide
    under any tokenizer, and CIDs would number them no less arbitrarily than the disambiguation level.
    Too colliding: more than ``MAX_COLLISION_RATE`` of them share their code, or one code holds more of
    them than a level has codes, so the disambiguation level needs a longer list of arbitrary numbers
    than any learned level.
    """
    reasons = []
    if collision_rate > MAX_COLLISION_RATE:
        reasons.append(f"{collision_rate:.1%} of distinct inputs share their code (limit {MAX_COLLISION_RATE:.0%})")
    if largest_group > codebook_size:
        reasons.append(f"{largest_group} distinct inputs share one code, more than a level's {codebook_size} codes")
    return "; ".join(reasons) or None


# ---- one entry point -------------------------------------------------------------------------------

KINDS = ("sid", "cid", "rqvae")


def build_tokenizer(
    kind: str,
    train: Interactions,
    *,
    seed: int = 0,
    cid_base: int = 64,
    rqvae_levels: int = 4,
    rqvae_codebook: int | None = None,
    rqvae_codebook_min: int = 256,
    rqvae_codebook_max: int = 8192,
    rqvae_epochs: int | None = None,
    rqvae: RQVAEConfig | None = None,
    embedding_dim: int = 64,
    embeddings: np.ndarray | None = None,
    device: str = "cpu",
) -> ItemTokenizer:
    """The item tokenizer of one run. ``train`` is the training split (`SessionSplit.train`).

    - ``"sid"``: the dataset's released SIDs if its schema has them, else as ``"rqvae"``.
    - ``"cid"``: chunked IDs in base ``cid_base``.
    - ``"rqvae"``: an RQ-VAE of ``rqvae_levels`` levels trained on ``embeddings`` ``[n_items, d]`` if
      given (modality features), else on `collaborative_embeddings` of ``train`` (``embedding_dim``
      dims). Codes per level: ``rqvae_codebook`` if given (an explicit override), else
      `rqvae_codebook_size` of the item count within ``rqvae_codebook_min`` .. ``rqvae_codebook_max``.
      Other knobs in ``rqvae``; ``rqvae_epochs`` overrides its epochs. If the codes collide beyond
      `sid_collision_problem`'s limits, CIDs are returned instead, with the reason in
      ``meta["cid_fallback"]`` and the RQ-VAE's collision numbers in ``meta["rqvae_*"]``.

    CIDs rather than an error, because they are the paper's own IDs for data without SIDs (Table 3's
    Tmall and JData rows), a smoke grid should not stop on one tokenizer, and the note reaches every
    result through the recommenders' ``describe()``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown tokenizer kind {kind!r}; expected one of {list(KINDS)}")
    n_items = train.n_items
    if kind == "cid":
        return chunked_ids(n_items, cid_base)
    if kind == "sid" and train.schema.item_semantic_ids is not None:
        tokenizer = given_semantic_ids(train.schema)
        if tokenizer.n_items != n_items:
            raise ValueError(f"dataset {train.schema.name!r}: {tokenizer.n_items} semantic-ID rows for {n_items} items")
        return tokenizer

    if embeddings is None:
        embeddings = collaborative_embeddings(train, embedding_dim, seed=seed)
        source = f"collaborative_embeddings(train, dim={embedding_dim})"
    else:
        source = "given embeddings"
    if len(embeddings) != n_items:
        raise ValueError(f"embeddings have {len(embeddings)} rows for {n_items} items")
    config = rqvae or RQVAEConfig()
    if rqvae_epochs is not None:
        config = replace(config, epochs=rqvae_epochs)
    if rqvae_codebook is None:
        codebook = rqvae_codebook_size(n_items, rqvae_levels, minimum=rqvae_codebook_min, maximum=rqvae_codebook_max)
        rule = (
            f"{rqvae_codebook_min} doubled until C**{rqvae_levels} >= {CODE_SPACE_PER_ITEM} x {n_items} items, "
            f"at most {rqvae_codebook_max}"
        )
    else:
        codebook, rule = rqvae_codebook, "explicit rqvae_codebook"
    tokenizer = train_rqvae(embeddings, rqvae_levels, codebook, seed=seed, config=config, device=device)
    note = {"embeddings": source, "codebook_rule": rule}
    if kind == "sid":
        note["sid_fallback"] = f"dataset {train.schema.name!r} ships no semantic IDs: RQ-VAE SIDs trained here"
    meta = tokenizer.meta
    problem = sid_collision_problem(
        meta["distinct_input_collision_rate"], meta["distinct_input_largest_group"], codebook
    )
    if problem is None:
        return replace(tokenizer, meta={**meta, **note})
    cids = chunked_ids(n_items, cid_base)
    rqvae_record = {f"rqvae_{key}": meta[key] for key in _RQVAE_RECORD}
    fallback = f"{tokenizer.name} codes too colliding ({problem}): base-{cid_base} chunked IDs used instead"
    return replace(cids, meta={**cids.meta, **note, **rqvae_record, "cid_fallback": fallback})
