"""Trie-constrained beam search over item ID tokens (Section 4.1.3: 20 beams, top 10 items).

An item is generated as its L ID tokens after the behavior prompt token. Level l draws its token
from its own id range ``[offset_l, offset_l + C_l)`` of the model vocabulary, so a code is the
token minus that level's offset. Only token paths that spell an item of the catalogue are allowed.

The flattened trie
------------------
The authors walk a nested-dict trie in Python for every beam at every step (``SeqRec/generation/
trie.py``, via HF's per-beam ``prefix_allowed_tokens_fn``). Here the trie is flattened once into
tensors, per depth, and each beam carries the id of its trie node:

- the nodes at depth ``d`` are the distinct code prefixes of length ``d`` (depth 0 has one root;
  depth L has one node per item), numbered in lexicographic order of the prefix, so the children of
  a node are a contiguous, code-sorted run of node ids at depth ``d + 1``;
- CSR, always kept: ``indptr[d]`` ``[n_nodes_d + 1]`` and ``codes[d]`` ``[n_nodes_{d+1}]``, the
  children of node n being nodes ``indptr[n] .. indptr[n+1] - 1`` with those level-d codes;
- dense, kept while ``n_nodes_d * C_d <= dense_limit``: ``allowed[d]`` ``[n_nodes_d, C_d]`` bool
  and ``child[d]`` ``[n_nodes_d, C_d]`` int64 (child node id, -1 when the code is not allowed);
- ``leaf_item`` ``[n_items]``: the item index of each depth-L node.

A beam search step reads each beam's candidates with gathers instead of any Python per beam: the
node's CSR run padded to the depth's largest fan-out ``max_degree`` (or, when some node allows every
code, its ``child`` row). Deep in the trie ``max_degree`` is far below ``C_d`` (3,000 items over
4 x 256 random codes: largest fan-outs 256, 22, 3, 1), so the padded CSR form also keeps the
per-step sort narrow; the dense tables are there for callers that want masks. The trie is built
with ``np.unique`` over ``(parent node, code)`` keys per depth; no Python loop over items.

Scores
------
Like the authors' (HF) beam search, the constraint masks **after** ``log_softmax``: a token's score
is its log-probability under the full vocabulary, not renormalised over the allowed tokens, and a
beam's score is the sum over its L tokens. Disallowed tokens get ``-inf``, so an invalid path can
never be returned; a prompt with fewer valid paths than beams returns ``-1`` padding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import torch

# Above this many entries (n_nodes_d * C_d) a depth keeps only its CSR form (the int64 ``child``
# table alone is 8 bytes an entry: 2**22 entries = 32 MiB).
DEFAULT_DENSE_LIMIT = 1 << 22


class StepDecoder(Protocol):
    """What `constrained_beam_search` needs from a model: incremental decoding of B prompts.

    Rows start as the B prompts (one per user query, already ending with the behavior token).
    """

    def prefill(self) -> torch.Tensor:
        """``[B, V]`` logits of the first ID token for each prompt."""
        ...

    def expand(self, n: int) -> None:
        """Repeat each prompt row n times: rows become ``B * n``, row r continuing prompt ``r // n``."""
        ...

    def reorder(self, index: torch.Tensor) -> None:
        """Keep/duplicate rows: new row j is old row ``index[j]`` (``index``: ``[rows]`` int64)."""
        ...

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Append ``tokens[r]`` (``[rows]`` int64) to row r; return ``[rows, V]`` logits of the next token."""
        ...


# --------------------------------------------------------------------------------------------------
# The flattened trie
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrieLevel:
    """The edges from depth ``d`` to depth ``d + 1`` (token level d).

    ``indptr``: ``[num_nodes + 1]`` int64; ``codes``: ``[num_children]`` int64, level-relative code
    of each depth-(d+1) node; ``allowed``/``child``: ``[num_nodes, size]`` bool / int64 or None when
    this depth is CSR only.
    """

    offset: int
    size: int
    num_nodes: int
    num_children: int
    max_degree: int
    indptr: torch.Tensor
    codes: torch.Tensor
    allowed: torch.Tensor | None
    child: torch.Tensor | None

    @property
    def dense(self) -> bool:
        """Whether ``allowed``/``child`` are kept for this depth."""
        return self.child is not None

    @property
    def reads_dense(self) -> bool:
        """Whether `candidates` reads the dense table: only when some node allows every code, so the
        padded CSR run would be as wide (``max_degree == size``) and the dense row saves the gathers."""
        return self.child is not None and self.max_degree == self.size

    def candidates(self, node: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The allowed next codes of each node.

        ``node``: ``[N]`` int64 node ids at depth d. Returns ``codes``, ``child`` and ``valid``, each
        ``[N, M]`` with ``M = max_degree`` (the padded CSR run; a dense row when ``reads_dense``, then
        ``M = size`` too and ``codes[:, j] = j``), in increasing code order; where ``valid`` is False,
        ``child`` is -1 (and ``code`` is 0 in the CSR form).
        """
        if self.reads_dense:
            child = self.child[node]
            codes = torch.arange(self.size, device=node.device).expand_as(child)
            return codes, child, child >= 0
        start = self.indptr[node]
        degree = self.indptr[node + 1] - start
        j = torch.arange(self.max_degree, device=node.device)
        valid = j < degree[:, None]
        child = torch.where(valid, start[:, None] + j, -1)
        codes = torch.where(valid, self.codes[child.clamp(min=0)], 0)
        return codes, child, valid

    def to(self, device: torch.device | str) -> TrieLevel:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return replace(
            self,
            indptr=self.indptr.to(device),
            codes=self.codes.to(device),
            allowed=move(self.allowed),
            child=move(self.child),
        )


@dataclass(frozen=True)
class PrefixTrie:
    """All items' ID-token paths as a flattened trie (see the module docstring).

    ``levels[d]`` holds the edges of token level d; ``leaf_item``: ``[n_items]`` int64, item index
    of each depth-L node; ``item_tokens``: ``[n_items, L]`` int64 global token ids.
    """

    levels: tuple[TrieLevel, ...]
    leaf_item: torch.Tensor
    item_tokens: torch.Tensor
    vocab_size: int

    @classmethod
    def from_item_tokens(
        cls,
        item_tokens: np.ndarray | torch.Tensor | Sequence[Sequence[int]],
        vocab_size: int,
        level_ranges: Sequence[tuple[int, int]] | None = None,
        *,
        dense_limit: int = DEFAULT_DENSE_LIMIT,
    ) -> PrefixTrie:
        """Build the trie of ``item_tokens[i] = (t_0, ..., t_{L-1})`` (global token ids, ``[n_items, L]``).

        ``level_ranges``: ``(offset_l, C_l)`` per level, the token range of level l; by default the
        smallest range holding the level's tokens. Raises ValueError when a token lies outside its
        level's range (or the vocabulary), or when two items share a code tuple.
        """
        tokens = np.asarray(item_tokens.cpu() if isinstance(item_tokens, torch.Tensor) else item_tokens)
        if tokens.ndim != 2 or tokens.shape[0] == 0 or tokens.shape[1] == 0:
            raise ValueError(f"item_tokens must be a non-empty [n_items, L] array, got shape {tokens.shape}")
        if not np.issubdtype(tokens.dtype, np.integer):
            raise ValueError(f"item_tokens must be integers, got dtype {tokens.dtype}")
        tokens = tokens.astype(np.int64)
        n_items, depth = tokens.shape
        if level_ranges is None:
            lo, hi = tokens.min(axis=0), tokens.max(axis=0)
            level_ranges = [(int(a), int(b) - int(a) + 1) for a, b in zip(lo, hi, strict=True)]
        if len(level_ranges) != depth:
            raise ValueError(f"{len(level_ranges)} level ranges for {depth} levels")
        offsets = np.array([int(o) for o, _ in level_ranges], dtype=np.int64)
        sizes = np.array([int(c) for _, c in level_ranges], dtype=np.int64)
        for level, (off, size) in enumerate(zip(offsets, sizes, strict=True)):
            if size < 1 or off < 0 or off + size > vocab_size:
                raise ValueError(
                    f"level {level} range [{off}, {off + size}) is empty or outside the vocabulary [0, {vocab_size})"
                )
        codes = tokens - offsets
        bad = (codes < 0) | (codes >= sizes)
        if bad.any():
            item, level = np.argwhere(bad)[0]
            raise ValueError(
                f"{int(bad.sum())} token(s) outside their level's range, e.g. item {item} level {level}: token "
                f"{tokens[item, level]} not in [{offsets[level]}, {offsets[level] + sizes[level]})"
            )

        levels = []
        node = np.zeros(n_items, dtype=np.int64)  # each item's node at the current depth
        n_nodes = 1
        for d in range(depth):
            size = int(sizes[d])
            key = node * size + codes[:, d]  # (parent, code), in lexicographic order
            uniq, inverse = np.unique(key, return_inverse=True)
            parent, code = uniq // size, uniq % size
            indptr = np.searchsorted(parent, np.arange(n_nodes + 1))
            allowed = child = None
            if n_nodes * size <= dense_limit:
                child_np = np.full((n_nodes, size), -1, dtype=np.int64)
                child_np[parent, code] = np.arange(len(uniq))
                child = torch.from_numpy(child_np)
                allowed = child >= 0
            levels.append(
                TrieLevel(
                    offset=int(offsets[d]),
                    size=size,
                    num_nodes=n_nodes,
                    num_children=len(uniq),
                    max_degree=int(np.diff(indptr).max()),
                    indptr=torch.from_numpy(indptr.astype(np.int64)),
                    codes=torch.from_numpy(code.astype(np.int64)),
                    allowed=allowed,
                    child=child,
                )
            )
            node, n_nodes = inverse.reshape(-1).astype(np.int64), len(uniq)

        if n_nodes < n_items:
            counts = np.bincount(node, minlength=n_nodes)
            leaf = int(np.argmax(counts > 1))
            a, b = np.flatnonzero(node == leaf)[:2]
            raise ValueError(
                f"item codes are not unique: {n_items - n_nodes} item(s) collide, e.g. items {a} and {b} "
                f"both have tokens {tuple(int(t) for t in tokens[a])}"
            )
        leaf_item = np.empty(n_items, dtype=np.int64)
        leaf_item[node] = np.arange(n_items)
        return cls(
            levels=tuple(levels),
            leaf_item=torch.from_numpy(leaf_item),
            item_tokens=torch.from_numpy(tokens),
            vocab_size=int(vocab_size),
        )

    @property
    def depth(self) -> int:
        """L, the number of ID tokens per item."""
        return len(self.levels)

    @property
    def num_items(self) -> int:
        return int(self.leaf_item.shape[0])

    @property
    def num_nodes(self) -> list[int]:
        """Nodes per depth 0..L (depth 0: the root; depth L: the items)."""
        return [lv.num_nodes for lv in self.levels] + [self.num_items]

    @property
    def allowed(self) -> list[torch.Tensor | None]:
        """``allowed[d]``: ``[n_nodes_d, C_d]`` bool, None where depth d is CSR only."""
        return [lv.allowed for lv in self.levels]

    @property
    def child(self) -> list[torch.Tensor | None]:
        """``child[d]``: ``[n_nodes_d, C_d]`` int64 child node id or -1, None where depth d is CSR only."""
        return [lv.child for lv in self.levels]

    @property
    def device(self) -> torch.device:
        return self.leaf_item.device

    def to(self, device: torch.device | str) -> PrefixTrie:
        """The same trie with its tensors on ``device`` (self when already there)."""
        if torch.device(device) == self.device:
            return self
        return replace(
            self,
            levels=tuple(lv.to(device) for lv in self.levels),
            leaf_item=self.leaf_item.to(device),
            item_tokens=self.item_tokens.to(device),
        )

    def lookup(self, tokens: torch.Tensor) -> torch.Tensor:
        """Item index of each token path (``[N, L]`` global token ids) or -1 when it spells no item: ``[N]``."""
        tokens = tokens.to(self.device, torch.int64)
        node = torch.zeros(tokens.shape[0], dtype=torch.int64, device=self.device)
        ok = torch.ones_like(node, dtype=torch.bool)
        for d, level in enumerate(self.levels):
            code = tokens[:, d] - level.offset
            ok &= (code >= 0) & (code < level.size)
            codes, child, valid = level.candidates(node)
            hit = valid & (codes == code.clamp(0, level.size - 1)[:, None])
            ok &= hit.any(dim=1)
            node = torch.where(ok, (child * hit).sum(dim=1), 0)  # one hit at most per row
        return torch.where(ok, self.leaf_item[node], -1)


# --------------------------------------------------------------------------------------------------
# Beam search
# --------------------------------------------------------------------------------------------------


def _check_logits(logits: torch.Tensor, rows: int | None, vocab_size: int, where: str) -> None:
    if logits.ndim != 2 or logits.shape[1] != vocab_size or (rows is not None and logits.shape[0] != rows):
        want = f"[{rows if rows is not None else 'B'}, {vocab_size}]"
        raise ValueError(f"decoder.{where}() returned logits of shape {tuple(logits.shape)}, expected {want}")


@torch.no_grad()
def constrained_beam_search(
    decoder: StepDecoder,
    trie: PrefixTrie,
    *,
    num_beams: int = 20,
    top_k: int = 10,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Trie-constrained beam search for the B prompts of ``decoder``; returns ``(items, scores)``.

    ``items``: ``[B, top_k]`` int64 item indices, best first; ``scores``: ``[B, top_k]`` float32,
    each the sum over the L steps of ``log_softmax`` over the full vocabulary of the chosen token
    (masking after log-softmax, as the authors do). ``-1`` / ``-inf`` pad the tail only when a
    prompt has fewer than ``top_k`` items in the catalogue; items of one row are distinct (distinct
    trie leaves), and every item is valid by construction.

    Step d scores every (beam, allowed code) pair, ``beam score + log p(token)``, and keeps the best
    ``num_beams`` per prompt; the decoder is then told the kept parents (``expand(num_beams)`` after
    step 0, ``reorder`` after later steps) and fed the kept tokens with ``step``, except after the
    last level. Ranking key: valid candidates before invalid ones, then higher score, then lower
    candidate index ``beam_rank * M + code_position`` (a stable descending sort), i.e. ties go to the
    better-ranked parent beam and then to the smaller code. So results are deterministic, and a
    valid path whose score is ``-inf`` (the model put ``-inf`` on its token) still ranks above
    padding. NaN (or +inf) logits raise ValueError.
    """
    if num_beams < 1 or top_k < 1:
        raise ValueError(f"num_beams ({num_beams}) and top_k ({top_k}) must be positive")
    if top_k > num_beams:
        raise ValueError(f"top_k ({top_k}) must be <= num_beams ({num_beams}): beam search returns its beams")
    vocab = trie.vocab_size
    logits = decoder.prefill()
    _check_logits(logits, None, vocab, "prefill")
    n_prompts, device = logits.shape[0], logits.device
    trie = trie.to(device)
    lowest = torch.finfo(torch.float32).min

    # Beam state, flattened to rows b * k_prev + k: trie node, path validity and score.
    k_prev = 1
    node = torch.zeros(n_prompts, dtype=torch.int64, device=device)
    alive = torch.ones(n_prompts, dtype=torch.bool, device=device)
    score = torch.zeros(n_prompts, dtype=torch.float32, device=device)
    prompt_index = torch.arange(n_prompts, device=device)[:, None]  # [B, 1]
    for d, level in enumerate(trie.levels):
        logits = logits.float()  # [B * k_prev, V]
        log_z = torch.logsumexp(logits, dim=-1, keepdim=True)  # log_softmax = logits - log_z, read where needed
        codes, child, valid = level.candidates(node)  # [B * k_prev, M]
        valid = valid & alive[:, None]
        if level.reads_dense:  # codes[:, j] == j: a slice instead of a gather
            token_logp = logits[:, level.offset : level.offset + level.size] - log_z
        else:
            token_logp = logits.gather(1, codes + level.offset) - log_z
        if torch.isnan(token_logp).any():  # a NaN (or +inf) logit makes its whole row NaN
            raise ValueError(f"decoder returned NaN or +inf logits at ID level {d}")
        m = codes.shape[1]
        width = k_prev * m
        cand = (score[:, None] + token_logp).reshape(n_prompts, width)
        valid = valid.reshape(n_prompts, width)
        key = cand.clamp_min(lowest).masked_fill(~valid, float("-inf"))
        if width < num_beams:  # fewer candidates than beams: pad with invalid ones
            pad = num_beams - width
            key = torch.nn.functional.pad(key, (0, pad), value=float("-inf"))
        order = torch.sort(key, dim=1, descending=True, stable=True).indices[:, :num_beams]  # [B, num_beams]
        real = order < width
        pick = order.clamp(max=width - 1)
        valid = valid.gather(1, pick) & real
        score = cand.gather(1, pick).masked_fill(~valid, float("-inf")).reshape(-1)
        parent = torch.where(valid, pick // m, 0)  # [B, num_beams] beam rank of the parent
        rows = (parent + prompt_index * k_prev).reshape(-1)  # the parent's row in the candidate tables
        cols = (pick % m).reshape(-1)
        alive = valid.reshape(-1)
        node = torch.where(alive, child[rows, cols], 0)
        tokens = torch.where(alive, codes[rows, cols], 0) + level.offset  # [B * num_beams]
        if d + 1 < trie.depth:
            if d == 0:
                decoder.expand(num_beams)  # k_prev == 1: the parent of every beam is its prompt row
            else:
                decoder.reorder(rows)  # k_prev == num_beams: candidate rows are decoder rows
            logits = decoder.step(tokens)
            _check_logits(logits, n_prompts * num_beams, vocab, "step")
        k_prev = num_beams

    items = torch.where(alive, trie.leaf_item[node], -1).reshape(n_prompts, num_beams)
    return items[:, :top_k], score.reshape(n_prompts, num_beams)[:, :top_k]


def constrained_beam_search_chunked(
    make_decoder: Callable[[int, int], StepDecoder],
    num_prompts: int,
    trie: PrefixTrie,
    *,
    batch_size: int,
    num_beams: int = 20,
    top_k: int = 10,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`constrained_beam_search` over prompts ``[0, num_prompts)`` in chunks of ``batch_size``.

    ``make_decoder(start, stop)`` returns a fresh decoder for prompts ``start .. stop - 1``, so that
    at most ``batch_size * num_beams`` rows are decoded at once. Same ``[num_prompts, top_k]``
    results as one call over all prompts.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    parts = [
        constrained_beam_search(
            make_decoder(s, min(s + batch_size, num_prompts)), trie, num_beams=num_beams, top_k=top_k
        )
        for s in range(0, num_prompts, batch_size)
    ]
    if not parts:
        return torch.empty(0, top_k, dtype=torch.int64), torch.empty(0, top_k)
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


# --------------------------------------------------------------------------------------------------
# A deterministic decoder for tests
# --------------------------------------------------------------------------------------------------

_P = 2_147_483_647  # 2**31 - 1: products of two residues stay below 2**62


class TableDecoder:
    """A `StepDecoder` whose logits are a fixed pseudo-random function of (prompt, tokens so far).

    Each row carries its prompt id and a hash of its generated prefix; the logits ``[rows, V]`` are
    an integer hash of (row hash, vocabulary id) scaled to ``[-scale, scale)``. With ``tie_levels``
    they are rounded to that many distinct values, to provoke ties. Nothing is random at call time,
    so brute force can replay any path through ``prefill``/``expand``/``step``.
    """

    def __init__(
        self,
        num_prompts: int,
        vocab_size: int,
        *,
        seed: int = 0,
        scale: float = 3.0,
        tie_levels: int | None = None,
        prompt_ids: torch.Tensor | None = None,
    ) -> None:
        self.vocab_size = vocab_size
        self.seed = seed
        self.scale = scale
        self.tie_levels = tie_levels
        self.prompt = (torch.arange(num_prompts) if prompt_ids is None else prompt_ids).to(torch.int64)
        self.hash = (seed * 7919 + self.prompt * 104729 + 1) % _P

    def _logits(self) -> torch.Tensor:
        v = torch.arange(self.vocab_size, dtype=torch.int64)
        x = (self.hash[:, None] * 48271 + v * 69621 + 12345) % _P
        x = (x * x) % _P
        x = (x * 16807 + 2_718_281) % _P
        u = x.to(torch.float64) / _P
        if self.tie_levels is not None:
            u = torch.floor(u * self.tie_levels) / self.tie_levels
        return (self.scale * (2 * u - 1)).to(torch.float32)

    def prefill(self) -> torch.Tensor:
        return self._logits()

    def expand(self, n: int) -> None:
        self.prompt = self.prompt.repeat_interleave(n)
        self.hash = self.hash.repeat_interleave(n)

    def reorder(self, index: torch.Tensor) -> None:
        self.prompt = self.prompt[index]
        self.hash = self.hash[index]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.shape != self.hash.shape:
            raise ValueError(f"step got tokens {tuple(tokens.shape)} for {self.hash.shape[0]} rows")
        if ((tokens < 0) | (tokens >= self.vocab_size)).any():
            raise ValueError("step got a token outside the vocabulary")
        self.hash = (self.hash * 1_000_003 + tokens.to(torch.int64) + 1) % _P
        return self._logits()
