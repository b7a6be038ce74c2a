"""What the multi-behavior graph baselines of Table 2 share: MB-GMN (Xia et al., SIGIR 2021;
`baselines.mbgmn`) and S-MBRec (Gu et al., IJCAI 2022; `baselines.smbrec`), written from their papers
(the GAMER authors ran them through SSLRec, which is not on the package index; reference notes §10-11
list where SSLRec departs from the papers).

Both models see the training split as |B| bipartite graphs, one per behavior::

    R_b[u, i] = 1  if user u met item i with behavior b in a training session (duplicates collapsed)
    A_b = D_u^-1/2 R_b D_i^-1/2        (D_u, D_i: R_b's user and item degrees; 0 rows stay 0)

They are collaborative filters, not sequence models: a query is answered from its user's
representation in the graph. The weights are trained on the training split's graphs; **queries are
answered on the graphs of every interaction before the session they ask about**
(`GraphRecommender.query_graphs`), over which the representations are propagated again with the
trained weights (no retraining). At test that includes every user's validation session, as every
sequential row's test history does; at validation it is the training split, so model selection
scores on the training graphs. (SSLRec trains and tests on one fixed matrix.) Both rank items for the
target behavior (MB-GMN with its meta predictor from the combined branch to the target, S-MBRec with
its target-supervised fusion), so they give **the same scores for every queried behavior**: a
behavior-specific test query is answered with the target-behavior ranking.
Already-interacted target items are **not** masked at test: the session-wise protocol lets a user
convert on an item again (SSLRec's `_mask_predict` would forbid that). Validation and test follow
`baselines.discriminative` (early stopping on sampled NDCG@10, full ranking at test).
"""

from __future__ import annotations

import warnings
from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from baselines.discriminative import DiscriminativeRecommender
from protocols.interactions import Interactions
from protocols.queries import Queries, ragged_rows

# ---- graphs ---------------------------------------------------------------------------------------


class _SparseMatmul(torch.autograd.Function):
    """``a @ x`` for a sparse CSR ``a`` whose transpose ``a_t`` is kept beside it: the backward pass is
    ``a_t @ grad``, with no transposition or coalescing per step (about 4x faster than the generic
    sparse backward on CPU)."""

    @staticmethod
    def forward(ctx: Any, a: Tensor, a_t: Tensor, x: Tensor) -> Tensor:
        ctx.a_t = a_t
        return torch.sparse.mm(a, x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, None, Tensor]:
        return None, None, torch.sparse.mm(ctx.a_t, grad)


def _csr(row: np.ndarray, col: np.ndarray, value: np.ndarray, shape: tuple[int, int]) -> Tensor:
    """A torch sparse CSR tensor from coordinates already sorted by (row, col) and distinct."""
    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=shape[0]), out=indptr[1:])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.from_numpy(indptr),
            torch.from_numpy(col.astype(np.int64)),
            torch.from_numpy(value.astype(np.float32)),
            size=shape,
            check_invariants=False,  # built sorted and in range here; checking costs a pass
        )


def normalized_adjacency(user: np.ndarray, item: np.ndarray, n_users: int, n_items: int) -> tuple[Tensor, Tensor]:
    """``A = D_u^-1/2 R D_i^-1/2`` and its transpose, ``[n_users, n_items]`` and ``[n_items, n_users]``
    sparse CSR tensors, for the binary matrix R of the (user, item) pairs (repeats count once)."""
    key = np.unique(np.asarray(user, dtype=np.int64) * n_items + np.asarray(item, dtype=np.int64))
    u, i = key // n_items, key % n_items
    d_u = np.bincount(u, minlength=n_users).astype(np.float64)
    d_i = np.bincount(i, minlength=n_items).astype(np.float64)
    value = 1.0 / np.sqrt(d_u[u] * d_i[i]) if len(key) else np.zeros(0)
    order = np.lexsort((u, i))  # by item, then user: the transpose's row order
    return _csr(u, i, value, (n_users, n_items)), _csr(i[order], u[order], value[order], (n_items, n_users))


@dataclass(frozen=True)
class BehaviorGraph:
    """One behavior's binary user x item graph of the training split.

    ``items[indptr[u]:indptr[u + 1]]`` are user u's items, ascending; ``users[item_indptr[i]:...]``
    item i's users. ``adjacency`` / ``adjacency_t`` are `normalized_adjacency` (sparse CSR).
    """

    n_users: int
    n_items: int
    indptr: np.ndarray  # [n_users + 1]
    items: np.ndarray  # [nnz]
    item_indptr: np.ndarray  # [n_items + 1]
    users: np.ndarray  # [nnz]
    adjacency: Tensor  # [n_users, n_items]
    adjacency_t: Tensor  # [n_items, n_users]
    keys: np.ndarray  # [nnz] user * n_items + item, ascending (items are sorted within a user)

    @classmethod
    def from_pairs(cls, user: np.ndarray, item: np.ndarray, n_users: int, n_items: int) -> BehaviorGraph:
        a, a_t = normalized_adjacency(user, item, n_users, n_items)
        indptr, items = a.crow_indices().numpy(), a.col_indices().numpy()
        keys = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(indptr)) * n_items + items
        return cls(n_users, n_items, indptr, items, a_t.crow_indices().numpy(), a_t.col_indices().numpy(), a, a_t, keys)

    @property
    def user_degree(self) -> np.ndarray:
        return np.diff(self.indptr)

    def to_users(self, item_x: Tensor) -> Tensor:
        """``[n_items, d]`` -> ``[n_users, d]``: each user's normalised sum over its items."""
        return _SparseMatmul.apply(self.adjacency, self.adjacency_t, item_x)

    def to_items(self, user_x: Tensor) -> Tensor:
        """``[n_users, d]`` -> ``[n_items, d]``: each item's normalised sum over its users."""
        return _SparseMatmul.apply(self.adjacency_t, self.adjacency, user_x)

    def binary(self) -> sp.csr_matrix:
        """R as a scipy ``[n_users, n_items]`` 0/1 matrix."""
        ones = np.ones(len(self.items), dtype=np.float32)
        return sp.csr_matrix((ones, self.items, self.indptr), shape=(self.n_users, self.n_items))

    def contains(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        """``[n]`` bool: whether each (user, item) pair is an edge."""
        if len(self.keys) == 0:
            return np.zeros(len(user), dtype=bool)
        query = np.asarray(user, dtype=np.int64) * self.n_items + item
        pos = np.minimum(np.searchsorted(self.keys, query), len(self.keys) - 1)
        return self.keys[pos] == query

    def sample_items(self, user: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One of each user's items, uniformly (with replacement across calls); users need degree >= 1."""
        degree = self.user_degree[user]
        return self.items[self.indptr[user] + (rng.random(len(user)) * degree).astype(np.int64)]

    def sample_users(self, item: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One of each item's users, uniformly; items need degree >= 1."""
        degree = np.diff(self.item_indptr)[item]
        return self.users[self.item_indptr[item] + (rng.random(len(item)) * degree).astype(np.int64)]

    def sample_negatives(self, user: np.ndarray, rng: np.random.Generator, max_rounds: int = 100) -> np.ndarray:
        """For each user an item it has no edge to, uniformly (rejection sampling)."""
        item = rng.integers(0, self.n_items, len(user))
        for _ in range(max_rounds):
            clash = np.flatnonzero(self.contains(user, item))
            if len(clash) == 0:
                break
            item[clash] = rng.integers(0, self.n_items, len(clash))
        return item


def build_graphs(train: Interactions) -> list[BehaviorGraph]:
    """One `BehaviorGraph` per behavior level (lowest first, target last) of the training split only."""
    return [
        BehaviorGraph.from_pairs(train.user[rows], train.item[rows], train.n_users, train.n_items)
        for rows in (train.behavior == level for level in range(len(train.schema.behaviors)))
    ]


def _with_edges(
    graphs: list[BehaviorGraph], user: np.ndarray, item: np.ndarray, level: np.ndarray, replaced: np.ndarray
) -> list[BehaviorGraph]:
    """``graphs`` plus the edges ``(user[j], item[j])`` under behavior ``level[j]``; users where the
    ``[n_users]`` mask ``replaced`` is true first lose their edges of ``graphs``."""
    extended = []
    for b, g in enumerate(graphs):
        old_user = np.repeat(np.arange(g.n_users), g.user_degree)
        kept = ~replaced[old_user]
        new = level == b
        extended.append(
            BehaviorGraph.from_pairs(
                np.concatenate([old_user[kept], user[new]]),
                np.concatenate([g.items[kept], item[new]]),
                g.n_users,
                g.n_items,
            )
        )
    return extended


def with_session_positives(graphs: list[BehaviorGraph], queries: Queries) -> list[BehaviorGraph]:
    """``graphs`` plus an edge from each query's user to each of its positives under the queried
    behavior: given the validation queries of every behavior, the edges of every validation session."""
    count, nobody = np.diff(queries.pos_offsets), np.zeros(graphs[0].n_users, dtype=bool)
    user, level = np.repeat(queries.user, count), np.repeat(queries.behavior, count)
    return _with_edges(graphs, user, queries.positives, level, replaced=nobody)


def history_graphs(context: list[BehaviorGraph], queries: Queries) -> list[BehaviorGraph]:
    """The behavior graphs of a query set: a queried user's edges are the union of its queries'
    histories; every other user keeps its edges of ``context`` (same users and items)."""
    queried = np.zeros(context[0].n_users, dtype=bool)
    queried[queries.user] = True
    history_user = queries.user[ragged_rows(queries.offsets)]
    return _with_edges(context, history_user, queries.item, queries.hist_behavior, replaced=queried)


def user_batches(users: np.ndarray, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """``users`` shuffled, in batches of ``batch_size``: one epoch."""
    order = rng.permutation(users)
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def _state_version(module: nn.Module) -> tuple[int, ...]:
    """Changes whenever a parameter is modified in place (optimiser steps, `load_state_dict`) or replaced."""
    return tuple((id(p), p._version) for p in module.parameters())


class GraphRecommender(DiscriminativeRecommender):
    """A collaborative-filtering graph model under the common protocol (module docstring).

    Subclasses build their module from the training graphs in `_build`; the module scores users with
    ``score(state, users) -> [q, n_items]``, where ``state = module.ranking_state(graphs)`` is
    everything item-independent of a full-graph forward pass over ``graphs``.

    A query set is scored on `query_graphs`, built from **the whole set passed to** `scores` (so to
    `recommend` and to validation), never from one batch of it: the graph is the same whatever
    ``eval_batch_size``. A queried user's edges are its queries' histories; every other user's come
    from ``context_graphs_``, what is known before the sessions being asked about: the training
    graphs while `fit` validates, and once fit, the training graphs plus every validation session
    (read from the positives of ``valid``, which holds every behavior's validation queries). So a
    fitted model answers test queries on every interaction before each user's test session, the
    same graph whichever test queries it is given (Table 2 asks only the users who convert), and
    a validation pass scores on the training graphs. The state is cached per query set (by
    identity), context and parameter version: batches of one set propagate once, and a validation
    pass once per epoch.
    """

    def _device(self) -> torch.device:
        return torch.device("cpu")  # graphs of this size train in seconds on the CPU; sparse CSR ops stay there

    @abstractmethod
    def _build(self, train: Interactions) -> nn.Module:
        """The model, built after ``self.graphs_`` is set."""

    def _setup(self, train: Interactions) -> nn.Module:
        self.graphs_ = build_graphs(train)
        self.context_graphs_ = self.graphs_
        self.n_users_ = train.n_users
        self._ranking_cache: tuple[Queries, list[BehaviorGraph], tuple[int, ...], Any] | None = None
        return self._build(train)

    def fit(self, train: Interactions, valid: Queries) -> GraphRecommender:
        """`DiscriminativeRecommender.fit`, then the context of test queries (class docstring)."""
        super().fit(train, valid)
        self.context_graphs_ = with_session_positives(self.graphs_, valid)
        return self

    def query_graphs(self, queries: Queries) -> list[BehaviorGraph]:
        """The graphs ``queries`` are answered from (`history_graphs` over ``context_graphs_``)."""
        return history_graphs(self.context_graphs_, queries)

    def _ranking_state(self, queries: Queries) -> Any:
        """The module's ranking state over `query_graphs` of ``queries``, cached (class docstring)."""
        version, cached = _state_version(self.module_), self._ranking_cache
        if cached is None or cached[0] is not queries or cached[1] is not self.context_graphs_ or cached[2] != version:
            with torch.no_grad():
                state = self.module_.ranking_state(self.query_graphs(queries))
            self._ranking_cache = (queries, self.context_graphs_, version, state)
        return self._ranking_cache[3]

    def _score_users(self, state: Any, users: np.ndarray) -> Tensor:
        """``[q, n_items]``: each distinct user scored once (a user's queries share one score row)."""
        distinct, row = np.unique(users, return_inverse=True)
        with torch.no_grad():
            return self.module_.score(state, torch.from_numpy(distinct.astype(np.int64)))[torch.from_numpy(row)]

    def _item_scores(self, queries: Queries) -> Tensor:
        """Scored on the graphs of ``queries`` alone; `scores` builds them from the whole set instead."""
        return self._score_users(self._ranking_state(queries), queries.user)  # the queried behavior is not used

    def scores(self, queries: Queries) -> Iterator[Tensor]:
        """Item scores of ``queries`` in batches of ``eval_batch_size``, all from `query_graphs` of
        the whole of ``queries``."""
        self.module_.eval()
        state = self._ranking_state(queries)
        size = self.training["eval_batch_size"]
        for start in range(0, len(queries), size):
            yield self._score_users(state, queries.user[start : start + size]).float()


def xavier(*shape: int) -> nn.Parameter:
    """A parameter of ``shape`` with Xavier-uniform values (both models' embeddings and weights)."""
    return nn.Parameter(nn.init.xavier_uniform_(torch.empty(*shape)))
