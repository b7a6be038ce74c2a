"""MB-GMN (Xia et al., SIGIR 2021), one of the multi-behavior graph baselines of Table 2: meta-learned
behavior transforms on the per-behavior graphs, a behavior self-attention, and a meta predictor from
the combined branch to the target behavior. The graphs, the training loop and how queries are answered
are `baselines.graph`'s, shared with S-MBRec.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.graph import (
    BehaviorGraph,
    GraphRecommender,
    user_batches,
    xavier,
)
from protocols.interactions import Interactions

LEAKY_SLOPE = 0.1  # MB-GMN's LeakyReLU slope (the original's NNLayers default)


# ---- MB-GMN ---------------------------------------------------------------------------------------


def _leaky(x: Tensor) -> Tensor:
    return F.leaky_relu(x, LEAKY_SLOPE)


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
        self.query = xavier(dim, dim)

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
        self.user_embedding = xavier(graphs[0].n_users, base)
        self.item_embedding = xavier(graphs[0].n_items, base)
        self.behavior_embedding = xavier(n_b + 1, base)  # the last row is the combined branch's
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
