"""S-MBRec (Gu et al., IJCAI 2022), one of the multi-behavior graph baselines of Table 2: a GCN per
behavior, a target-supervised fusion, and a star-style contrastive loss between the target behavior's
view and the others'. The graphs, the training loop and how queries are answered are
`baselines.graph`'s, shared with MB-GMN.
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
from protocols.queries import gather_ranges

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
        self.user_embedding = xavier(n_users, dim)
        self.item_embedding = xavier(n_items, dim)
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
