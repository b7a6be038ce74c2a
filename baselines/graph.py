"""The multi-behavior graph baselines of Table 2: MB-GMN (Xia et al., SIGIR 2021) and S-MBRec (Gu et al.,
IJCAI 2022), written from their papers (the GAMER authors ran them through SSLRec, which is not on the
package index; reference notes §10-11 list where SSLRec departs from the papers).

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

import math
import warnings
from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.discriminative import DiscriminativeRecommender
from protocols.interactions import Interactions
from protocols.queries import Queries, gather_ranges, ragged_rows

LEAKY_SLOPE = 0.1  # MB-GMN's LeakyReLU slope (the original's NNLayers default)


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


# ---- MB-GMN ---------------------------------------------------------------------------------------


def _leaky(x: Tensor) -> Tensor:
    return F.leaky_relu(x, LEAKY_SLOPE)


def _xavier(*shape: int) -> nn.Parameter:
    return nn.Parameter(nn.init.xavier_uniform_(torch.empty(*shape)))


class LowRankTransform(nn.Module):
    """Per-node low-rank transform generated from meta-knowledge (MB-GMN §3.1.2).

    ``x [N, d]`` and ``meta [N, d]`` -> ``[N, 2d]``: ``concat(x W1 W2, x)`` with ``W1 [N, d, rank]``
    and ``W2 [N, rank, d]`` generated per node by linear maps of ``meta`` (the biases are the
    paper's shared V-bar)."""

    def __init__(self, dim: int, rank: int) -> None:
        super().__init__()
        self.dim, self.rank = dim, rank
        self.w1 = nn.Linear(dim, dim * rank)
        self.w2 = nn.Linear(dim, rank * dim)

    def forward(self, x: Tensor, meta: Tensor) -> Tensor:
        n = len(x)
        w1 = self.w1(meta).view(n, self.dim, self.rank)
        w2 = self.w2(meta).view(n, self.rank, self.dim)
        # Broadcast-and-sum rather than a batched matmul: N tiny matrices are slow as a bmm on CPU.
        low = (x.unsqueeze(-1) * w1).sum(dim=1)  # [N, rank]
        return torch.cat([(low.unsqueeze(-1) * w2).sum(dim=1), x], dim=-1)


class MetaKnowledgeLearner(nn.Module):
    """Behavior-specialised initial embeddings (MB-GMN §3.1).

    The meta-knowledge of node n under behavior b is ``LeakyReLU(W [e_b, e_n, sum_{m in N_b(n)} a_nm e_m])``;
    the encoder W is shared by users, items and behaviors (the behavior embedding e_b is what makes it
    behavior-specific), the low-rank generators are separate for users and items, as in the original.
    """

    def __init__(self, dim: int, rank: int) -> None:
        super().__init__()
        self.encode = nn.Linear(3 * dim, dim)
        self.user_transform = LowRankTransform(dim, rank)
        self.item_transform = LowRankTransform(dim, rank)

    def _meta(self, behavior: Tensor, x: Tensor, context: Tensor) -> Tensor:
        return _leaky(self.encode(torch.cat([behavior.expand_as(x), x, context], dim=-1)))

    def forward(
        self, behavior: Tensor, users: Tensor, items: Tensor, user_context: Tensor, item_context: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``behavior [d]``, ``users / user_context [n_users, d]``, ``items / item_context [n_items, d]``
        -> specialised ``[n_users, 2d]``, ``[n_items, 2d]``."""
        u = self.user_transform(users, self._meta(behavior, users, user_context))
        i = self.item_transform(items, self._meta(behavior, items, item_context))
        return u, i


class BehaviorSelfAttention(nn.Module):
    """Light self-attention across the behaviors' messages to one node (MB-GMN §3.2.2).

    ``[n_b, N, d]`` -> ``[N, d]``: queries = keys = ``x Q`` split into heads, values = ``x``; a softmax
    over behaviors per head, the message itself as residual, then the sum over behaviors."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"embedding size {dim} is not divisible by {heads} attention heads")
        self.heads = heads
        self.query = _xavier(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        n_b, n, d = x.shape
        q = (x @ self.query).view(n_b, n, self.heads, d // self.heads)
        v = x.view(n_b, n, self.heads, d // self.heads)
        # [b, c, N, heads]: behavior b's query against behavior c's key (n_b is tiny: broadcast, no bmm)
        logits = (q.unsqueeze(1) * q.unsqueeze(0)).sum(dim=-1) / math.sqrt(d // self.heads)
        weights = torch.softmax(logits, dim=1)
        out = (weights.unsqueeze(-1) * v.unsqueeze(0)).sum(dim=1).reshape(n_b, n, d)
        return (out + x).sum(dim=0)


class MetaPredictor(nn.Module):
    """Meta prediction network (MB-GMN §3.3): knowledge of a source behavior transferred to a target.

    For pairs (u, i) with features ``x_b = [u_b * i_b, u_b, i_b]`` under the source s and target t::

        p_b = LeakyReLU(P x_b)   (P shared by s and t),   m = LeakyReLU(M [p_s * p_t, p_s, p_t])
        score = mult * LeakyReLU(x_s W1(m) + b1(m)) . w2(m)

    with a 1-hidden-layer predictor whose weights ``W1 [3d, d]``, ``b1 [d]``, ``w2 [d]`` are generated
    per pair from m (the meta-knowledge has 3d dimensions, as in the original).
    """

    def __init__(self, dim: int, mult: float) -> None:
        super().__init__()
        self.dim, self.mult = dim, mult
        self.pair = nn.Linear(3 * dim, dim)
        self.meta = nn.Linear(3 * dim, 3 * dim)
        self.w1 = nn.Linear(3 * dim, 3 * dim * dim)
        self.b1 = nn.Linear(3 * dim, dim)
        self.w2 = nn.Linear(3 * dim, dim)

    def forward(self, src_u: Tensor, src_i: Tensor, tgt_u: Tensor, tgt_i: Tensor) -> Tensor:
        """Four ``[n, d]`` (source user, source item, target user, target item) -> ``[n]`` scores."""
        x = torch.cat([src_u * src_i, src_u, src_i], dim=-1)
        p_s = _leaky(self.pair(x))
        p_t = _leaky(self.pair(torch.cat([tgt_u * tgt_i, tgt_u, tgt_i], dim=-1)))
        m = _leaky(self.meta(torch.cat([p_s * p_t, p_s, p_t], dim=-1)))
        w1 = self.w1(m).view(len(x), 3 * self.dim, self.dim)
        hidden = _leaky((x.unsqueeze(-1) * w1).sum(dim=1) + self.b1(m))
        return self.mult * (hidden * self.w2(m)).sum(dim=-1)


@dataclass(frozen=True)
class PairSample:
    """One behavior's training pairs of a batch: ``user[j]`` met ``positive[j]``, not ``negative[j]``."""

    user: Tensor  # [n]
    positive: Tensor  # [n]
    negative: Tensor  # [n]


class MBGMNModule(nn.Module):
    """MB-GMN: per-behavior meta GNNs plus a combined branch, trained with the meta predictor.

    Representations (all ``[n_nodes, d]``, d = ``embedding_size``) come in n_b + 1 branches: one per
    behavior b (index b) and the combined branch (index n_b). A branch starts from base embeddings of
    size d/2 specialised by `MetaKnowledgeLearner` with its behavior embedding (the combined branch
    has its own, an extra row as in the original, and sums its neighbour context over behaviors), then
    propagates ``n_layers`` times and sums the layers:

    - behavior b: ``u_{l+1} = LeakyReLU(A_b i_l) + u_l``, ``i_{l+1} = LeakyReLU(A_b^T u_l) + i_l``;
    - combined: ``u_{l+1} = BehaviorSelfAttention_l([LeakyReLU(A_b i_l) for b])`` (items alike, one
      attention per layer and side, as in the original; no residual across layers, as there).
    """

    def __init__(
        self,
        graphs: list[BehaviorGraph],
        *,
        embedding_size: int = 32,
        rank: int = 4,
        n_layers: int = 2,
        heads: int = 2,
        mult: float = 100.0,
        scorer: str = "meta",
        shortlist: int = 200,
    ) -> None:
        super().__init__()
        if embedding_size % 2:
            raise ValueError(f"MB-GMN needs an even embedding_size (base embeddings are half), got {embedding_size}")
        if scorer not in ("dot", "meta"):
            raise ValueError(f"scorer must be 'dot' or 'meta', got {scorer!r}")
        if shortlist < 0:
            raise ValueError(f"shortlist must be >= 0 (0 = the meta predictor scores every item), got {shortlist}")
        self.graphs, self.n_layers, self.scorer, self.shortlist = graphs, n_layers, scorer, shortlist
        n_b, base = len(graphs), embedding_size // 2
        self.n_behaviors = n_b
        self.user_embedding = _xavier(graphs[0].n_users, base)
        self.item_embedding = _xavier(graphs[0].n_items, base)
        self.behavior_embedding = _xavier(n_b + 1, base)  # the last row is the combined branch's
        self.meta_knowledge = MetaKnowledgeLearner(base, rank)
        self.user_attention = nn.ModuleList(BehaviorSelfAttention(embedding_size, heads) for _ in range(n_layers))
        self.item_attention = nn.ModuleList(BehaviorSelfAttention(embedding_size, heads) for _ in range(n_layers))
        self.predictor = MetaPredictor(embedding_size, mult)

    def representations(self, graphs: list[BehaviorGraph]) -> tuple[list[Tensor], list[Tensor]]:
        """User ``[n_users, d]`` and item ``[n_items, d]`` representations of the n_b + 1 branches,
        propagated over ``graphs`` (the training graphs, or those of a query set at evaluation)."""
        e_u, e_i = self.user_embedding, self.item_embedding
        users, items = [], []
        user_context = [g.to_users(e_i) for g in graphs]
        item_context = [g.to_items(e_u) for g in graphs]
        for b, g in enumerate(graphs):
            u, i = self.meta_knowledge(self.behavior_embedding[b], e_u, e_i, user_context[b], item_context[b])
            u_sum, i_sum = u, i
            for _ in range(self.n_layers):
                u, i = _leaky(g.to_users(i)) + u, _leaky(g.to_items(u)) + i
                u_sum, i_sum = u_sum + u, i_sum + i
            users.append(u_sum)
            items.append(i_sum)
        u, i = self.meta_knowledge(self.behavior_embedding[-1], e_u, e_i, sum(user_context), sum(item_context))
        u_sum, i_sum = u, i
        for layer in range(self.n_layers):
            u_msgs = torch.stack([_leaky(g.to_users(i)) for g in graphs])
            i_msgs = torch.stack([_leaky(g.to_items(u)) for g in graphs])
            u, i = self.user_attention[layer](u_msgs), self.item_attention[layer](i_msgs)
            u_sum, i_sum = u_sum + u, i_sum + i
        users.append(u_sum)
        items.append(i_sum)
        return users, items

    def loss(self, samples: list[PairSample]) -> Tensor:
        """Pairwise hinge ``mean(max(0, 1 - (pos - neg)))`` of the meta predictor, summed over every
        (source in behaviors + combined, target behavior) pair; ``samples[b]`` are behavior b's pairs."""
        users, items = self.representations(self.graphs)
        total = users[0].new_zeros(())
        for tgt, s in enumerate(samples):
            if len(s.user) == 0:
                continue
            u = torch.cat([s.user, s.user])
            i = torch.cat([s.positive, s.negative])
            for src in range(self.n_behaviors + 1):
                pos, neg = self.predictor(users[src][u], items[src][i], users[tgt][u], items[tgt][i]).chunk(2)
                total = total + F.relu(1.0 - (pos - neg)).mean()
        return total

    def ranking_state(self, graphs: list[BehaviorGraph]) -> tuple[list[Tensor], list[Tensor]]:
        return self.representations(graphs)

    def score(self, state: tuple[list[Tensor], list[Tensor]], users: Tensor) -> Tensor:
        """``[q]`` users -> ``[q, n_items]``, by ``scorer``: ``dot`` = combined user . combined item;
        ``meta`` = `meta_scores` of the dot product's top ``shortlist`` items (of every item if 0),
        lifted above every dot product, so that they outrank the other items, which keep their dot
        products (a two-stage ranking over the whole catalogue)."""
        reps_u, reps_i = state
        dot = reps_u[-1][users] @ reps_i[-1].T
        n_items = dot.shape[1]
        if self.scorer == "dot":
            return dot
        if self.shortlist == 0 or self.shortlist >= n_items:
            return self.meta_scores(state, users, torch.arange(n_items).expand(len(users), n_items))
        shortlist = dot.topk(self.shortlist, dim=1).indices
        meta = self.meta_scores(state, users, shortlist)
        lift = dot.max(dim=1, keepdim=True).values + 1.0 - meta.min(dim=1, keepdim=True).values
        return dot.scatter(1, shortlist, meta + lift)

    def meta_scores(self, state: tuple[list[Tensor], list[Tensor]], users: Tensor, items: Tensor) -> Tensor:
        """``users [q]``, ``items [q, s]`` -> ``[q, s]``: the meta predictor on (combined, target), the
        score the hinge loss trains, in chunks of pairs whose generated weights (3d x d floats a pair)
        take about 64 MB."""
        reps_u, reps_i = state
        target, d = self.n_behaviors - 1, self.predictor.dim
        width, n_pairs = items.shape[1], items.numel()
        step = max(1, (1 << 24) // (3 * d * d))
        out = torch.empty(n_pairs)
        for start in range(0, n_pairs, step):
            pair = torch.arange(start, min(start + step, n_pairs))
            u, i = users[pair // width], items[pair // width, pair % width]
            pair_scores = self.predictor(reps_u[-1][u], reps_i[-1][i], reps_u[target][u], reps_i[target][i])
            out[start : start + len(pair)] = pair_scores
        return out.view(len(users), width)


class MBGMN(GraphRecommender):
    """MB-GMN (Xia et al., SIGIR 2021) under the session-wise protocol; the module is `MBGMNModule`.

    Decisions (reference notes §10):

    - **The hinge loss is differentiable**, as in the original TensorFlow code: SSLRec rebuilds the
      hinge tensors from detached values, so its MB-GMN trains only its L2 term (a bug).
    - An epoch is one pass over the users with any training interaction, in batches of
      ``batch_size`` users (the original draws 10,000 random users per epoch, SSLRec 100). Per user
      and behavior: ``min(samp_num, degree)`` positives with replacement from the user's items and as
      many uniform negatives it never met with that behavior. Users without an interaction of a
      behavior add no pair for it (the original adds a constant (i, i) pair with no gradient).
    - Regularisation is the framework's AdamW weight decay (``weight_decay``), standing in for the
      original's L2 penalty ``reg`` = 1e-2; no learning-rate decay (the original: x0.96 per epoch).
    - The combined branch has its own behavior embedding (the original's n_b + 1 rows; SSLRec reuses
      the target behavior's row).
    - **Ranking by the trained score, over a dot-product shortlist** (``scorer = "meta"``, every
      profile): the paper's meta predictor on (combined, target), the score the hinge loss trains,
      orders each user's top ``shortlist`` (200) items by the dot product of the combined user and
      item representations (SSLRec's score: one matrix product per batch of users); they rank above
      every other item, which keeps its dot order, so validation's sampled candidates outside the
      shortlist are still ordered. Why a shortlist: the predictor costs about 9 d^3 multiply-adds
      per (user, item) pair; over RetailRocket's 29,905 items at d = 32 (one CPU thread) that is
      0.6 s a user: 3 min per validation pass (267 users), 10 min for its 980 test users, against
      ~5 ms a user (1.7 s and 6 s, graph propagation included) with the shortlist. ``shortlist = 0``
      scores every item with the predictor; ``scorer = "dot"`` ranks by the dot product alone, as
      SSLRec does (the original ranks its 100 sampled candidates with the predictor). On
      RetailRocket (cpu profile, epochs 1-6) the
      re-ranked shortlist scored a lower sampled validation NDCG@10 than the dot product alone
      (0.094-0.117 against 0.102-0.126).
    """

    def _build(self, train: Interactions) -> nn.Module:
        self.active_users_ = np.flatnonzero(np.bincount(train.user, minlength=train.n_users) > 0)
        hp = dict(self.model_hyperparameters)
        self.samp_num_ = int(hp.pop("samp_num", 40))
        return MBGMNModule(self.graphs_, **hp)

    def _sample(self, users: np.ndarray, rng: np.random.Generator) -> list[PairSample]:
        samples = []
        for g in self.graphs_:
            count = np.minimum(g.user_degree[users], self.samp_num_)
            user = np.repeat(users, count)
            pos, neg = g.sample_items(user, rng), g.sample_negatives(user, rng)
            samples.append(PairSample(*(torch.from_numpy(a) for a in (user, pos, neg))))
        return samples

    def _train_epoch(self, optimizer: torch.optim.Optimizer, rng: np.random.Generator) -> float:
        total, seen = 0.0, 0
        for users in user_batches(self.active_users_, self.training["batch_size"], rng):
            loss = self.module_.loss(self._sample(users, rng))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(users)
            seen += len(users)
        return total / max(seen, 1)


# ---- S-MBRec --------------------------------------------------------------------------------------


class BehaviorGCN(nn.Module):
    """One behavior's GCN with its own embeddings (S-MBRec §3.1).

    ``u_{l+1} = sigmoid(W_u^l A i_l)``, ``i_{l+1} = sigmoid(W_i^l A^T u_l)``; the output is the mean of
    layers 1..L (layer 0, the raw embedding, is left out as in SSLRec). Both sides use the previous
    layer (SSLRec updates the items from the users' *new* layer, a two-hop item walk).
    """

    def __init__(self, n_users: int, n_items: int, dim: int, n_layers: int) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"S-MBRec needs n_layers >= 1, got {n_layers}")
        self.user_embedding = _xavier(n_users, dim)
        self.item_embedding = _xavier(n_items, dim)
        self.user_weights = nn.ModuleList(nn.Linear(dim, dim, bias=False) for _ in range(n_layers))
        self.item_weights = nn.ModuleList(nn.Linear(dim, dim, bias=False) for _ in range(n_layers))

    def forward(self, graph: BehaviorGraph) -> tuple[Tensor, Tensor]:
        """-> ``[n_users, d]``, ``[n_items, d]``."""
        u, i = self.user_embedding, self.item_embedding
        u_sum, i_sum = 0, 0
        for w_u, w_i in zip(self.user_weights, self.item_weights, strict=True):
            u, i = torch.sigmoid(w_u(graph.to_users(i))), torch.sigmoid(w_i(graph.to_items(u)))
            u_sum, i_sum = u_sum + u, i_sum + i
        return u_sum / len(self.user_weights), i_sum / len(self.item_weights)


class BehaviorFusion(nn.Module):
    """S-MBRec's supervised-task fusion (§3.2): users weighted by their behavior degrees, items concatenated.

    ``alpha_{u,b} = softmax_b(w_b * n_{u,b})`` with n_{u,b} user u's number of distinct items under b and
    w_b learned (initialised to 0: equal weights at the start); ``user = Linear(sum_b alpha_{u,b} u_b)``,
    ``item = Linear(concat_b i_b)``."""

    def __init__(self, n_behaviors: int, dim: int) -> None:
        super().__init__()
        self.behavior_weight = nn.Parameter(torch.zeros(n_behaviors))
        self.user_out = nn.Linear(dim, dim)
        self.item_out = nn.Linear(n_behaviors * dim, dim)

    def forward(self, users: list[Tensor], items: list[Tensor], degree: Tensor) -> tuple[Tensor, Tensor]:
        """``users[b] [n_users, d]``, ``items[b] [n_items, d]``, ``degree [n_users, n_b]`` -> fused."""
        alpha = torch.softmax(degree * self.behavior_weight, dim=1)
        user = torch.einsum("ub,bud->ud", alpha, torch.stack(users))
        return self.user_out(user), self.item_out(torch.cat(items, dim=-1))


@dataclass(frozen=True)
class ContrastSample:
    """Anchors of the star-style contrast: ``anchor [A]`` users, ``positive [A, P]`` users sharing a
    target item with the anchor (column 0 is the anchor itself), ``negative [M]`` users shared by the
    anchors and ``false_negative [A, M]`` the negatives that share a target item with the anchor (or
    are the anchor), which are left out of that anchor's denominator."""

    anchor: Tensor
    positive: Tensor
    negative: Tensor
    false_negative: Tensor


def star_contrastive_loss(views: list[Tensor], target: int, sample: ContrastSample, tau: float) -> Tensor:
    """S-MBRec's star-style contrast (§3.3): the target view is the centre, each auxiliary view a leaf.

    For anchor u and auxiliary behavior k, with cosine similarity s(a, b) / tau between u's target view
    and another user's k view::

        L_k(u) = -log( S_P / (S_P + sum_{n in N(u)} e^{s(u_t, n_k)}) ),   S_P = sum_{p in P(u)} e^{s(u_t, p_k)}

    P(u): the anchor and users who share a target item with it; N(u): other sampled users. Returns
    ``sum_k mean_u L_k(u)`` (0 with one behavior).
    """
    z_t = F.normalize(views[target][sample.anchor], dim=-1)  # [A, d]
    total = z_t.new_zeros(())
    for k, view in enumerate(views):
        if k == target:
            continue
        pos = torch.einsum("ad,apd->ap", z_t, F.normalize(view[sample.positive], dim=-1)) / tau
        neg = (z_t @ F.normalize(view[sample.negative], dim=-1).T) / tau
        neg = neg.masked_fill(sample.false_negative, -math.inf)
        total = total + (torch.logsumexp(torch.cat([pos, neg], dim=1), dim=1) - torch.logsumexp(pos, dim=1)).mean()
    return total


def behavior_degrees(graphs: list[BehaviorGraph]) -> Tensor:
    """``[n_users, n_b]``: each user's number of distinct items under each behavior."""
    return torch.from_numpy(np.stack([g.user_degree for g in graphs], axis=1).astype(np.float32))


class SMBRecModule(nn.Module):
    """S-MBRec: per-behavior GCNs, degree-weighted fusion scored by a dot product, BPR on the target
    behavior plus the star-style contrast between the target and each auxiliary behavior."""

    def __init__(
        self,
        graphs: list[BehaviorGraph],
        *,
        embedding_size: int = 32,
        n_layers: int = 2,
        cl_weight: float = 0.1,
        tau: float = 0.5,
        reg_weight: float = 1e-2,
    ) -> None:
        super().__init__()
        self.graphs, self.cl_weight, self.tau, self.reg_weight = graphs, cl_weight, tau, reg_weight
        n_users, n_items = graphs[0].n_users, graphs[0].n_items
        self.gcns = nn.ModuleList(BehaviorGCN(n_users, n_items, embedding_size, n_layers) for _ in graphs)
        self.fusion = BehaviorFusion(len(graphs), embedding_size)
        # Not a buffer: it is data, rebuilt from the graphs, and stays out of the checkpoints.
        self.degree = behavior_degrees(graphs)

    def behavior_views(self, graphs: list[BehaviorGraph]) -> tuple[list[Tensor], list[Tensor]]:
        """Per-behavior user ``[n_users, d]`` and item ``[n_items, d]`` GCN outputs over ``graphs``."""
        views = [gcn(g) for gcn, g in zip(self.gcns, graphs, strict=True)]
        return [u for u, _ in views], [i for _, i in views]

    def loss(self, user: Tensor, positive: Tensor, negative: Tensor, contrast: ContrastSample | None) -> Tensor:
        """BPR ``mean softplus(neg - pos)`` on ``[n]`` target triples + ``reg_weight`` x the squared norm
        of the scored embeddings per triple + ``cl_weight`` x `star_contrastive_loss`."""
        views_u, views_i = self.behavior_views(self.graphs)
        users, items = self.fusion(views_u, views_i, self.degree)
        u, p, n = users[user], items[positive], items[negative]
        bpr = F.softplus((u * n).sum(-1) - (u * p).sum(-1)).mean()
        reg = (u.square().sum() + p.square().sum() + n.square().sum()) / len(user)
        loss = bpr + self.reg_weight * reg
        if contrast is not None and self.cl_weight:
            loss = loss + self.cl_weight * star_contrastive_loss(views_u, len(self.graphs) - 1, contrast, self.tau)
        return loss

    def ranking_state(self, graphs: list[BehaviorGraph]) -> tuple[Tensor, Tensor]:
        """Fused representations over ``graphs``, the fusion weighted by the users' degrees there."""
        return self.fusion(*self.behavior_views(graphs), behavior_degrees(graphs))

    def score(self, state: tuple[Tensor, Tensor], users: Tensor) -> Tensor:
        """``[q]`` users -> ``[q, n_items]`` dot products of the fused representations."""
        return state[0][users] @ state[1].T


class SMBRec(GraphRecommender):
    """S-MBRec (Gu et al., IJCAI 2022) under the session-wise protocol; the module is `SMBRecModule`.

    Decisions (reference notes §11; where this follows the paper rather than SSLRec):

    - An epoch is one pass over the users with a target-behavior training interaction, in batches of
      ``batch_size`` users; a batch trains on all its users' target (user, item) pairs, each with one
      uniform negative the user never met with the target behavior, redrawn every epoch (SSLRec
      batches 4,096 pairs; grouping by user gives the same pairs per epoch).
    - **Contrast as the paper describes, not SSLRec's**: InfoNCE with several positives between a
      user's target view and other users' auxiliary views (one loss per auxiliary behavior: the
      star), cosine similarity over ``tau``. Positives: the anchor itself (its own auxiliary view)
      and ``cl_positives`` users reached by a random target item of the anchor and a random buyer of
      that item (users who share target items, sampled in proportion to the shared paths). Negatives:
      ``cl_negatives`` uniform users per batch, minus any that share a target item with the anchor.
      SSLRec instead uses the anchor itself as the only "negative" and contrasts every user in
      chunks of 128 at every step; here ``cl_anchors`` anchors are drawn from each batch's users.
    - GCN layers update users and items from the previous layer (SSLRec: items from the new users);
      the fusion weights start equal (w_b = 0).
    - BPR and the L2 term are means over the batch's triples (``reg_weight`` on the fused embeddings
      that are scored); AdamW's ``weight_decay`` is 0 in the profiles (SSLRec: Adam, no decay).
    - Ranking: dot product of the fused user and item representations (paper and SSLRec).
    """

    def _build(self, train: Interactions) -> nn.Module:
        hp = dict(self.model_hyperparameters)
        self.cl_anchors_ = int(hp.pop("cl_anchors", 128))
        self.cl_positives_ = int(hp.pop("cl_positives", 5))
        self.cl_negatives_ = int(hp.pop("cl_negatives", 256))
        target = self.graphs_[-1]
        self.target_users_ = np.flatnonzero(target.user_degree > 0)
        if len(self.target_users_) == 0:
            raise ValueError("S-MBRec: no target-behavior interaction in the training split")
        self.target_matrix_ = target.binary()
        return SMBRecModule(self.graphs_, **hp)

    def _contrast_sample(self, users: np.ndarray, rng: np.random.Generator) -> ContrastSample:
        target = self.graphs_[-1]
        anchor = rng.choice(users, size=min(self.cl_anchors_, len(users)), replace=False)
        walk = np.repeat(anchor, self.cl_positives_)
        shared = target.sample_users(target.sample_items(walk, rng), rng).reshape(len(anchor), -1)
        positive = np.concatenate([anchor[:, None], shared], axis=1)
        n_neg = self.cl_negatives_
        negative = rng.choice(self.n_users_, size=n_neg, replace=n_neg > self.n_users_)
        common = (self.target_matrix_[anchor] @ self.target_matrix_[negative].T).toarray() > 0
        false_negative = common | (anchor[:, None] == negative[None, :])
        return ContrastSample(*(torch.from_numpy(a) for a in (anchor, positive, negative, false_negative)))

    def _train_epoch(self, optimizer: torch.optim.Optimizer, rng: np.random.Generator) -> float:
        target = self.graphs_[-1]
        pair_user = np.repeat(np.arange(self.n_users_), target.user_degree)
        pair_negative = target.sample_negatives(pair_user, rng)  # one per target pair, redrawn each epoch
        total, seen = 0.0, 0
        for users in user_batches(self.target_users_, self.training["batch_size"], rng):
            rows, _ = gather_ranges(target.indptr[users], target.indptr[users + 1])
            contrast = self._contrast_sample(users, rng) if len(self.graphs_) > 1 else None
            loss = self.module_.loss(
                torch.from_numpy(pair_user[rows]),
                torch.from_numpy(target.items[rows]),
                torch.from_numpy(pair_negative[rows]),
                contrast,
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(users)
            seen += len(users)
        return total / max(seen, 1)
