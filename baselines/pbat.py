"""PBAT: Personalized Behavior-Aware Transformer (Su et al., "Personalized Behavior-Aware Transformer for
Multi-Behavior Sequential Recommendation", ACM MM 2023), re-implemented from the paper for gamer-bench.

What the model is
-----------------
Every entity is a diagonal Gaussian (a mean vector m and a positive covariance vector c, written (m, c)):
items, behavior types, users, behavior-relation pairs and positions each own a mean table and a covariance
table ("dynamic representation encoding"). A covariance is always ELU(.) + 1 > 0.

1. Personalised behavior patterns. For user u and behavior b, P_{u,b} = SAGP(user_u, W_ub * type_b), where
   SAGP ("self-adaptive Gaussian production") fuses two Gaussians:
   mean = (c1 m2 + c2 m1) / (c1 + c2), cov = 2 c1 c2 / (c1 + c2).
2. Behavior-collaboration weights. w_u(b1, b2) = -W2(P_{u,b1}, P_{u,b2}), with
   W2(a, b) = |m_a - m_b|^2 + |sqrt(c_a) - sqrt(c_b)|^2 the squared 2-Wasserstein distance of diagonal Gaussians.
   The user's relation Gaussian is R_u(b1, b2) = (w * E_rel_m[b1, b2], ELU(w * E_rel_c[b1, b2]) + 1).
3. Fused behavior-aware attention (FBA), per layer and head. Q/K/V Gaussians come from the item stream plus
   the behavior-type embedding (means added, covariances ELU(sum) + 1). For query position x and key position y
       fused query  = TriSAGP(Q(x), W_q1 R_u(b_x, b_y), W_q2 Pos(x))
       fused key    = TriSAGP(K(y), W_k1 R_u(b_x, b_y), W_k2 Pos(y))
   (TriSAGP is the precision-weighted product of three Gaussians), logit(x, y) = -W2(fusedQ, fusedK) / sqrt(d),
   softmax over non-padding keys (bidirectional), mean context = A V_m and covariance context = A^2 V_c (a weighted
   sum of independent Gaussians has covariance sum a^2 c), each followed by dense -> dropout -> LayerNorm(residual).
4. Behavior-specific FFN: one expert per behavior, hard-routed by each position's behavior, applied with the
   same weights to the mean stream and to the covariance stream (then ELU + 1).
5. Output: SAGP(output, W_Pub * P_{u, b_t}) with the user's pattern for the position's behavior, a shared
   Linear + ELU on both streams, and the score of item v is -W2(output, item_v) against the item Gaussians
   (mean = the input mean table's raw rows, covariance = ELU(raw covariance rows) + 1; tied with the input).
6. Cloze training: the sequence is history + [target]; 20% of the real positions get the [MASK] item token
   (behaviors stay visible) and CE over all item tokens is taken at the masked positions. Inference appends a
   [MASK] slot carrying the queried behavior at position `length` and scores it.

Decisions where the paper, the original code (TiliaceaeSU/PBAT) and GAMER's code (wzf2000/GAMER) differ
----------------------------------------------------------------------------------------------------------
Implemented as the PAPER describes wherever the GAMER code departs from it:
- Fused key: built from the key at position y with the position embedding of y (paper, original). GAMER indexes
  the key and its position at the query position x, so its logit sees the key token only through its behavior.
- Covariance aggregation: A^2 V_c (paper, original). GAMER uses A V_c.
- FFN: each behavior's expert is dense -> ELU -> dense -> dropout, then LayerNorm(x + .) (its own LayerNorm per
  expert, as the original keeps one inside each expert). The original has LayerNorm without the residual; GAMER
  at HEAD (inverted residual flag) has a bare dense -> ELU -> dense with neither. Padding positions output 0.
- User id from `batch.user` (user index + 1; table n_users + 1 rows, 0 unused) -- GAMER's `--add_uid`.
- Score sign: score = -W2, so a smaller distance means a better item, as the paper motivates (closer
  distributions = more relevant); attention already uses -W2 the same way. Both codes feed +W2 to CE/ranking,
  which trains the target to be the *farthest* item; consistent but the opposite of the paper's meaning.
Other choices:
- Relation index generalised to n_behaviors (GAMER); the original hard-codes 4 behaviors (i * 4 + j).
- Key-padding mask only (GAMER). The original also masks padded queries; that never changes real positions.
- Covariances: the position covariance is ELU(E) + 1 (codes: E + 1, which can go negative and is then clamped);
  the behavior covariance for patterns is ELU + 1 once (codes apply ELU twice); the head's output covariance is
  ELU(Linear(c)) + 1 (codes: ELU without + 1, i.e. negative values clamped to ~0) -- all so that every covariance
  is a valid positive one, the paper's ELU + 1 rule.
- Covariances are floored at 1e-8 before reciprocals / square roots (codes: 1e-24, whose 1/c^2 gradient
  overflows float32 once an ELU + 1 covariance underflows).
- Embeddings: Embedding -> LayerNorm -> dropout -> ELU (both codes' "SimpleEmbedding"); positions are plain tables
  (max_len + 1 rows for the appended slot); Q/K/V linears carry biases (GAMER); W_q1/W_q2/W_k1/W_k2 act on one
  head's mean (d_head -> d_head, shared by heads) and leave the relation / position covariances as they are (both
  codes); one LayerNorm is shared by the two attention streams (both codes). LayerNorm eps 1e-12, init N(0, 0.02).
- Training CE covers tokens 0..n_tokens-1 (the pad column included, as GAMER; targets are never 0). A sequence that
  draws no masked position gets its target slot masked (`baselines.batch.cloze_mask`).
- For pad positions the behavior index is clamped to 1 when looking up relations; such keys are masked and such
  query rows are never read, so this only keeps the numbers finite.

Efficiency (both codes materialise about ten [B, h, L, L, d] tensors per layer)
------------------------------------------------------------------------------
The fused query at (x, y) depends on y only through b_y, and the fused key at (x, y) on x only through b_x. So
per head we build the fused query of x for every key behavior b2, Fq [B, h, nb, L, d] (relation R(b_x, b2)), and
the fused key of y for every query behavior b1, Fk [B, h, nb, L, d] (relation R(b1, b_y)); TriSAGP runs in
precision form, so the per-position query/position precisions are summed before meeting the relation. W2 between
diagonal Gaussians is the squared Euclidean distance between the vectors [m, sqrt c], so -W2 over all (x, y) for
one behavior pair is one matmul of augmented vectors [m, sqrt c, -|.|^2, 1] . [2 m, 2 sqrt c, 1, -|.|^2]. A loop
over the nb^2 behavior pairs computes that [B, h, L, L] block and keeps it where (b_x, b_y) is the pair. Memory:
O(B h nb L d) for the fusion plus O(B h L^2) per block, instead of O(B h L^2 d) per intermediate; compute:
nb^2 dense [L, 2d + 2] x [2d + 2, L] matmuls (entries of the wrong pair are computed and dropped: the price of
staying dense). The head's M x n_tokens distances are one matmul the same way.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from baselines.batch import EncoderConfig, EncoderModule, SequenceBatch, cloze_mask

MIN_COV = 1e-8  # covariance floor before 1/c and sqrt(c); see the module docstring


class Gaussian(NamedTuple):
    """A batch of diagonal Gaussians: mean and covariance of the same shape [..., d]."""

    mean: torch.Tensor
    cov: torch.Tensor


def positive(x: torch.Tensor) -> torch.Tensor:
    """The paper's covariance map ELU(x) + 1 > 0."""
    return F.elu(x) + 1.0


def sagp(a: Gaussian, b: Gaussian) -> Gaussian:
    """Self-adaptive Gaussian production of two Gaussians (broadcasting)."""
    ca, cb = a.cov.clamp(min=MIN_COV), b.cov.clamp(min=MIN_COV)
    total = ca + cb
    return Gaussian((cb * a.mean + ca * b.mean) / total, 2.0 * ca * cb / total)


def natural(g: Gaussian) -> tuple[torch.Tensor, torch.Tensor]:
    """Precision 1/c and precision * mean of g: a product of Gaussians just adds these."""
    precision = 1.0 / g.cov.clamp(min=MIN_COV)
    return precision, precision * g.mean


def from_natural(precision: torch.Tensor, eta: torch.Tensor) -> Gaussian:
    cov = 1.0 / precision
    return Gaussian(cov * eta, cov)


def tri_sagp(a: Gaussian, b: Gaussian, c: Gaussian) -> Gaussian:
    """Precision-weighted product of three Gaussians (broadcasting): cov = 1 / sum(1/c_k), mean = cov * sum(m_k/c_k)."""
    (pa, ea), (pb, eb), (pc, ec) = natural(a), natural(b), natural(c)
    return from_natural(pa + pb + pc, ea + eb + ec)


def wasserstein_operands(a: Gaussian, b: Gaussian) -> tuple[torch.Tensor, torch.Tensor]:
    """Augmented vectors whose dot products are -W2: left(a) [..., N, 2d + 2] . right(b) [..., M, 2d + 2].

    W2 = |[m_a, sqrt c_a] - [m_b, sqrt c_b]|^2, so with x = [m_a, sqrt c_a] and y = [m_b, sqrt c_b]:
    [x, -|x|^2, 1] . [2y, 1, -|y|^2] = 2 x.y - |x|^2 - |y|^2 = -W2 (norms + one matmul, nothing [N, M, d]).
    """
    x = torch.cat([a.mean, a.cov.clamp(min=MIN_COV).sqrt()], dim=-1)
    y = torch.cat([b.mean, b.cov.clamp(min=MIN_COV).sqrt()], dim=-1)
    x_sq, y_sq = x.pow(2).sum(-1, keepdim=True), y.pow(2).sum(-1, keepdim=True)
    left = torch.cat([x, -x_sq, torch.ones_like(x_sq)], dim=-1)
    right = torch.cat([2.0 * y, torch.ones_like(y_sq), -y_sq], dim=-1)
    return left, right


def neg_wasserstein(a: Gaussian, b: Gaussian) -> torch.Tensor:
    """-W2 between every row of a [..., N, d] and every row of b [..., M, d] -> [..., N, M]."""
    left, right = wasserstein_operands(a, b)
    return left @ right.transpose(-1, -2)


class SimpleEmbedding(nn.Module):
    """Embedding -> LayerNorm -> dropout -> ELU (row 0 = padding, kept at zero)."""

    def __init__(self, n: int, hidden: int, dropout: float, eps: float) -> None:
        super().__init__()
        self.table = nn.Embedding(n, hidden, padding_idx=0)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.drop = nn.Dropout(dropout)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return F.elu(self.drop(self.norm(self.table(idx))))


class GaussianEmbedding(nn.Module):
    """A Gaussian per index: mean = SimpleEmbedding, covariance = SimpleEmbedding + 1 (= ELU(.) + 1)."""

    def __init__(self, n: int, hidden: int, dropout: float, eps: float) -> None:
        super().__init__()
        self.mean = SimpleEmbedding(n, hidden, dropout, eps)
        self.cov = SimpleEmbedding(n, hidden, dropout, eps)

    def forward(self, idx: torch.Tensor) -> Gaussian:
        return Gaussian(self.mean(idx), self.cov(idx) + 1.0)


class FusedBehaviorAwareAttention(nn.Module):
    """FBA: Wasserstein attention between TriSAGP-fused queries and keys, on the mean and covariance streams."""

    def __init__(self, hidden: int, n_heads: int, dropout: float, eps: float) -> None:
        super().__init__()
        assert hidden % n_heads == 0, "hidden_size must be a multiple of n_heads"
        self.n_heads, self.d_head = n_heads, hidden // n_heads
        # Q, K, V (stacked) from the item stream's mean / covariance and the behavior type's mean / covariance.
        self.item_m, self.item_c = nn.Linear(hidden, 3 * hidden), nn.Linear(hidden, 3 * hidden)
        self.type_m, self.type_c = nn.Linear(hidden, 3 * hidden), nn.Linear(hidden, 3 * hidden)
        # W_q1 / W_k1 transform the relation mean, W_q2 / W_k2 the position mean (per head, shared by heads).
        self.rel_q, self.rel_k = nn.Linear(self.d_head, self.d_head), nn.Linear(self.d_head, self.d_head)
        self.pos_q, self.pos_k = nn.Linear(self.d_head, self.d_head), nn.Linear(self.d_head, self.d_head)
        self.out_m, self.out_c = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.attn_drop, self.out_drop = nn.Dropout(dropout), nn.Dropout(dropout)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, L, H] -> [B, h, L, d]."""
        return x.view(*x.shape[:-1], self.n_heads, self.d_head).transpose(-3, -2)

    def forward(
        self, x: Gaussian, typ: Gaussian, rel: Gaussian, pos: Gaussian, beh_idx: torch.Tensor, pad: torch.Tensor
    ) -> Gaussian:
        """x, typ: [B, L, H]; rel: [B, nb, nb, H] (the user's R_u); pos: [L, H]; beh_idx: [B, L] 0-based behavior
        (pads clamped to 0); pad: [B, L] True on padding keys. Returns [B, L, H]."""
        bsz, seq_len, hidden = x.mean.shape
        nb = rel.mean.shape[1]
        qkv_m = (self.item_m(x.mean) + self.type_m(typ.mean)).chunk(3, dim=-1)
        qkv_c = positive(self.item_c(x.cov) + self.type_c(typ.cov)).chunk(3, dim=-1)
        q, k, v = (Gaussian(self.heads(m), self.heads(c)) for m, c in zip(qkv_m, qkv_c, strict=True))  # [B, h, L, d]

        # TriSAGP in precision form: the query (key) and its position are per position, the relation per behavior
        # pair, so their precisions are summed on the small tensors and the relation is gathered once per side.
        pos_m, pos_c = self.heads(pos.mean), self.heads(pos.cov)  # [h, L, d]
        (qp, qe), (pqp, pqe) = natural(q), natural(Gaussian(self.pos_q(pos_m), pos_c))
        (kp, ke), (pkp, pke) = natural(k), natural(Gaussian(self.pos_k(pos_m), pos_c))
        q_prec, q_eta, k_prec, k_eta = qp + pqp, qe + pqe, kp + pkp, ke + pke  # [B, h, L, d]
        rel_m = rel.mean.view(bsz, nb, nb, self.n_heads, self.d_head)  # [B, nb(b1), nb(b2), h, d]
        rel_c = rel.cov.view(bsz, nb, nb, self.n_heads, self.d_head)
        rq_prec, rq_eta = natural(Gaussian(self.rel_q(rel_m), rel_c))  # W_q1 R
        rk_prec, rk_eta = natural(Gaussian(self.rel_k(rel_m), rel_c))  # W_k1 R
        rows = torch.arange(bsz, device=beh_idx.device)[:, None]

        def for_query(t: torch.Tensor) -> torch.Tensor:  # R(b_x, b2) for every b2 -> [B, h, nb(b2), L, d]
            return t[rows, beh_idx].permute(0, 3, 2, 1, 4)

        def for_key(t: torch.Tensor) -> torch.Tensor:  # R(b1, b_y) for every b1 -> [B, h, nb(b1), L, d]
            return t.transpose(1, 2)[rows, beh_idx].permute(0, 3, 2, 1, 4)

        fq = from_natural(q_prec[:, :, None] + for_query(rq_prec), q_eta[:, :, None] + for_query(rq_eta))
        fk = from_natural(k_prec[:, :, None] + for_key(rk_prec), k_eta[:, :, None] + for_key(rk_eta))

        # logit(x, y) = -W2(fq(x, b2 = b_y), fk(y, b1 = b_x)): one [L, L] matmul per behavior pair (b1, b2), kept
        # where the query has behavior b1 and the key b2. Nothing [B, h, L, L, d] is built.
        left, right = wasserstein_operands(fq, fk)
        q_by_b2, k_by_b1 = left.unbind(2), right.unbind(2)  # nb x [B, h, L, 2d + 2]
        has = [(beh_idx == b)[:, None] for b in range(nb)]  # [B, 1, L]
        scores = left.new_zeros(bsz, self.n_heads, seq_len, seq_len)
        for b1 in range(nb):
            for b2 in range(nb):
                block = q_by_b2[b2] @ k_by_b1[b1].transpose(-1, -2)  # [B, h, L, L]
                scores = torch.where(has[b1][..., :, None] & has[b2][..., None, :], block, scores)
        logits = scores / math.sqrt(self.d_head)
        logits = logits.masked_fill(pad[:, None, None, :], torch.finfo(logits.dtype).min)
        attn = self.attn_drop(logits.softmax(dim=-1))  # [B, h, L, L]

        def merge(t: torch.Tensor) -> torch.Tensor:  # [B, h, L, d] -> [B, L, H]
            return t.transpose(1, 2).reshape(bsz, seq_len, hidden)

        ctx_m, ctx_c = merge(attn @ v.mean), merge(attn.pow(2) @ v.cov)
        return Gaussian(
            self.norm(x.mean + self.out_drop(self.out_m(ctx_m))),
            self.norm(x.cov + self.out_drop(self.out_c(ctx_c))),
        )


class BehaviorSpecificFFN(nn.Module):
    """One position-wise FFN (with residual + LayerNorm) per behavior, hard-routed by the position's behavior."""

    def __init__(self, hidden: int, inner: int, n_behaviors: int, dropout: float, eps: float) -> None:
        super().__init__()
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(hidden, inner), nn.ELU(), nn.Linear(inner, hidden), nn.Dropout(dropout))
            for _ in range(n_behaviors)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(hidden, eps=eps) for _ in range(n_behaviors))

    def forward(self, x: torch.Tensor, behavior: torch.Tensor) -> torch.Tensor:
        """x: [N, H]; behavior: [N] (1-based, 0 = padding -> output 0). Returns [N, H]."""
        out = torch.zeros_like(x)
        for b, (expert, norm) in enumerate(zip(self.experts, self.norms, strict=True), start=1):
            idx = (behavior == b).nonzero().squeeze(1)  # route each position once instead of running every expert
            xb = x[idx]
            out = out.index_copy(0, idx, norm(xb + expert(xb)))
        return out


class PBATLayer(nn.Module):
    """FBA attention followed by the behavior-specific FFN, shared by the mean and covariance streams."""

    def __init__(self, hidden: int, n_heads: int, inner: int, n_behaviors: int, dropout: float, eps: float) -> None:
        super().__init__()
        self.attention = FusedBehaviorAwareAttention(hidden, n_heads, dropout, eps)
        self.ffn = BehaviorSpecificFFN(hidden, inner, n_behaviors, dropout, eps)

    def forward(
        self,
        x: Gaussian,
        typ: Gaussian,
        rel: Gaussian,
        pos: Gaussian,
        behavior: torch.Tensor,
        beh_idx: torch.Tensor,
        pad: torch.Tensor,
    ) -> Gaussian:
        h = self.attention(x, typ, rel, pos, beh_idx, pad)
        bsz, seq_len, hidden = h.mean.shape
        # Same expert weights on both streams: run them once on the stacked [2 * B * L, H] rows.
        both = self.ffn(torch.cat([h.mean, h.cov]).view(-1, hidden), behavior.repeat(2, 1).view(-1))
        mean, cov = both.view(2, bsz, seq_len, hidden).unbind(0)
        return Gaussian(mean, positive(cov))


class WassersteinHead(nn.Module):
    """Shared Linear + ELU on the output Gaussian, then -W2 to every item Gaussian (tied with the input tables)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Linear(hidden, hidden)

    def forward(self, out: Gaussian, items: Gaussian) -> torch.Tensor:
        """out: [M, H]; items: [V, H] -> scores [M, V] (higher = closer = better)."""
        out = Gaussian(F.elu(self.proj(out.mean)), positive(self.proj(out.cov)))
        return neg_wasserstein(out, items)


class PBAT(EncoderModule):
    """PBAT as a Cloze model: `loss` masks history + target; `scores` appends a [MASK] slot of the queried behavior.
    Built from an `EncoderConfig` alone (`PBAT.build(**arguments)` from flat keyword arguments)."""

    def __init__(self, encoder: EncoderConfig) -> None:
        super().__init__()
        e = encoder
        n_tokens, n_behaviors = e.n_tokens, e.n_behaviors
        self.n_tokens, self.n_behaviors, self.max_len = n_tokens, n_behaviors, e.max_len
        self.mask_token = n_tokens  # extra row of the item tables
        self.mask_ratio = e.mask_ratio
        hidden, dropout, eps = e.hidden_size, e.dropout, e.layer_norm_eps
        self.item = GaussianEmbedding(n_tokens + 1, hidden, dropout, eps)
        self.behavior = GaussianEmbedding(n_behaviors + 1, hidden, dropout, eps)
        self.user = GaussianEmbedding(e.n_users + 1, hidden, dropout, eps)
        self.relation = GaussianEmbedding(n_behaviors * n_behaviors + 1, hidden, dropout, eps)  # row 0 unused
        self.pos_m = nn.Embedding(e.max_len + 1, hidden)  # + 1: the appended target / [MASK] slot
        self.pos_c = nn.Embedding(e.max_len + 1, hidden)
        self.w_ub = nn.Linear(hidden, hidden)  # behavior mean -> pattern space (W_ub)
        self.w_pub = nn.Linear(hidden, hidden)  # pattern mean -> output space (W_Pub)
        self.layers = nn.ModuleList(
            PBATLayer(hidden, e.n_heads, e.inner_size, n_behaviors, dropout, eps) for _ in range(e.n_layers)
        )
        self.head = WassersteinHead(hidden)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()

    # ----- personalised behavior patterns -------------------------------------------------------------------
    def patterns(self, user: torch.Tensor) -> tuple[Gaussian, Gaussian]:
        """user: [B] -> patterns P_u [B, nb + 1, H] (row 0 = padding behavior) and relations R_u [B, nb, nb, H]."""
        nb = self.n_behaviors
        u = self.user(user)  # [B, H]
        typ = self.behavior(torch.arange(nb + 1, device=user.device))  # [nb + 1, H]
        p = sagp(Gaussian(u.mean[:, None], u.cov[:, None]), Gaussian(self.w_ub(typ.mean), typ.cov))
        weight = neg_wasserstein(p, p)[:, 1:, 1:, None]  # [B, nb, nb, 1]: -W2 between the user's patterns
        pair = torch.arange(1, nb * nb + 1, device=user.device).view(nb, nb)  # relation (b1, b2) -> row
        rel_m, rel_c = self.relation.mean(pair), self.relation.cov(pair)  # [nb, nb, H]
        return p, Gaussian(weight * rel_m, positive(weight * rel_c))

    # ----- encoder --------------------------------------------------------------------------------------------
    def encode(self, item: torch.Tensor, behavior: torch.Tensor, rel: Gaussian) -> Gaussian:
        """item, behavior: [B, L] (0 = padding) -> output Gaussians [B, L, H] before the pattern fusion."""
        seq_len = item.shape[1]
        x = self.item(item)
        typ = self.behavior(behavior)
        positions = torch.arange(seq_len, device=item.device)
        pos = Gaussian(self.pos_m(positions), positive(self.pos_c(positions)))
        beh_idx = (behavior - 1).clamp(min=0)
        pad = item == 0
        for layer in self.layers:
            x = layer(x, typ, rel, pos, behavior, beh_idx, pad)
        return x

    def predict(self, out: Gaussian, pattern: Gaussian) -> torch.Tensor:
        """out, pattern: [M, H] at the predicted positions -> scores [M, n_tokens]."""
        fused = sagp(out, Gaussian(self.w_pub(pattern.mean), pattern.cov))
        table_m = self.item.mean.table.weight[: self.n_tokens]  # raw rows, tied with the input table
        table_c = positive(self.item.cov.table.weight[: self.n_tokens])
        return self.head(fused, Gaussian(table_m, table_c))

    @staticmethod
    def _gather(
        out: Gaussian, p: Gaussian, rows: torch.Tensor, cols: torch.Tensor, beh: torch.Tensor
    ) -> tuple[Gaussian, Gaussian]:
        """Output Gaussian and the user's pattern for the position's behavior at (rows, cols) -> [M, H] each."""
        return Gaussian(out.mean[rows, cols], out.cov[rows, cols]), Gaussian(p.mean[rows, beh], p.cov[rows, beh])

    def loss(self, batch: SequenceBatch) -> torch.Tensor:
        item, behavior = batch.with_slot(batch.target_item, batch.target_behavior)
        masked = cloze_mask(item != 0, batch.length, self.mask_ratio)
        p, rel = self.patterns(batch.user)
        out = self.encode(item.masked_fill(masked, self.mask_token), behavior, rel)
        rows, cols = masked.nonzero(as_tuple=True)
        logits = self.predict(*self._gather(out, p, rows, cols, behavior[rows, cols]))
        return F.cross_entropy(logits, item[rows, cols])

    def scores(self, batch: SequenceBatch) -> torch.Tensor:
        mask = torch.full_like(batch.length, self.mask_token)
        item, behavior = batch.with_slot(mask, batch.target_behavior)
        p, rel = self.patterns(batch.user)
        out = self.encode(item, behavior, rel)
        rows = torch.arange(item.shape[0], device=item.device)
        return self.predict(*self._gather(out, p, rows, batch.length, batch.target_behavior))
