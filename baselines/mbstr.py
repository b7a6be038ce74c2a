"""MB-STR: the Multi-Behavior Sequential Transformer Recommender (Yuan et al., SIGIR 2022).

A bidirectional (Cloze / BERT4Rec-style) transformer over the item history in which every piece
that sees a token also sees its behavior:

    tokens [B, T] ---- item embedding (tied with the output) -> dropout           (no absolute positions)
    behaviors [B, T]   for each of n_layers layers:
                         MultiBehaviorAttention   behavior-specific Q/K/V, a Q.K and a V mixing matrix
                                                  per behavior pair, T5 relative position bias per pair,
                                                  dropout -> LayerNorm(context + x)        (paper: MB-Trans, MB-SPG)
                         BehaviorMoEFeedForward   one FFN expert per behavior, hard-routed by the token's
                                                  behavior, dropout -> LayerNorm(h + x)
                       CGCHead at the predicted positions: 3 shared + 1 specific linear experts per
                       behavior mixed by that behavior's softmax gate, h + LayerNorm(mix)   (paper: BA-Pred)
                       logits = dot product with the item embedding rows 0..n_tokens-1

Attention in detail (per head; b_i in 1..n_b = behavior of position i, c = (b_i, b_j) its pair):

    logit_ij   = q_i^T M1_c k_j / sqrt(d) + bias_c[bucket(j - i)]      q_i = x_i Wq[b_i], k_j = x_j Wk[b_j]
    context_i  = sum_j p_ij v_j^T M2_c                                 v_j = x_j Wv[b_j], p = softmax_j(logit)
    M*_c       = sum_{n=1..n_b} softmax_n(alpha*[c])_n W*[n]           n_b base d x d matrices per head

Vectorisation, with no loop over positions and no [B, T, T] gather of pair matrices: ``route``
copies a token's vector into its behavior's block of an n_b-block vector (zeros elsewhere), so a
behavior-specific projection is one matmul with the stacked weights. The n_b^2 pair matrices are
small (d x d per head) and are laid out as one [n_b d, n_b d] block matrix per head; multiplying a
routed key by it gives the key as seen from every query behavior a, k~_(j, a) = M1_(a, b_j) k_j,
and the routed query q_i picks its own block in ``q @ k~^T``. Values go the same way, the query
keeping its block after ``probs @ values``.

Training: the framework's sample (history, target) becomes the sequence history + [target]; each
real position is replaced by the [MASK] token (= n_tokens) with probability ``mask_ratio``, its
behavior staying visible, and the loss is the full-softmax cross-entropy at the masked positions.
Scoring: a [MASK] slot carrying the queried behavior is appended after the history; its logits
are the scores.

Decisions (paper vs. the original code vs. the GAMER authors' port, see the reference notes §9):

- The architecture and every default follow the authors' GAMER config (hidden 64, 2 layers, 2 heads,
  inner 256, dropout 0.2, ReLU, LayerNorm eps 1e-12, 32 buckets, max distance 40, 3 shared + 1
  specific expert), the setting behind the GAMER paper's MB-STR numbers. Neither paper names an
  initialisation; we use the GAMER code's: N(0, 0.02) for embeddings, linear layers, Q/K/V and the
  position-bias tables, standard normal for the base matrices W1/W2, their mixing logits
  alpha1/alpha2 and the CGC gates.
- Relative positions are bucketed as in T5 (bidirectional; 16 buckets per direction, distances
  below 8 exact, log-spaced up to ``max_distance``, capped). Each layer owns one bias table per
  behavior pair, as in GAMER.
- Padding has no parameters of its own: GAMER keeps a padding row in Q/K/V and a padding pair in
  alpha and the bias tables (n_b^2 + 1 of them), but those only ever meet padding positions, which
  are masked out as keys and whose outputs are never read; here padding projects to zero and
  borrows pair 0, with the same results at every real position (n_b^2 tables).
- The behavior FFN experts are dense -> act -> dense, and the MoE wrapper supplies dropout and
  LayerNorm(h + x). GAMER's shared FeedForward has an inverted-flag bug (§1.9) that strips the
  residual/LayerNorm *inside* each expert, but its MoE wrapper adds them back, so this is the
  paper's block and GAMER's numbers alike; pad positions get a zero FFN output (LayerNorm(x)).
  Experts run only on the tokens routed to them (a loop over behaviors), not on every token.
- Masking: every real position of history + [target] is masked independently with probability
  ``mask_ratio`` (the paper's and GAMER's Cloze objective; no 80/10/10 replacement, no BERT4Rec
  fine-tune mode). One addition: a sequence that drew no mask has its target slot masked, so every
  sample contributes a loss term and a batch can never give an empty (NaN) mean, which GAMER's
  code can. The target slot of an n-item history is thus masked with probability
  r + (1 - r)^(n + 1) for r = ``mask_ratio`` (0.84 for n = 1, 0.2 + 1e-5 for n = 50).
- Logits are the dot products with embedding rows 0..n_tokens-1 (padding included, [MASK]
  excluded) with no bias, as in GAMER; the padding row is kept at zero (``padding_idx``), so the
  padding logit is a constant 0 that the framework replaces by -inf at test time.
- The user id is unused (MB-STR has no user embedding).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.batch import EncoderConfig, EncoderModule, SequenceBatch, cloze_mask

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


def relative_position_bucket(relative_position: Tensor, num_buckets: int = 32, max_distance: int = 40) -> Tensor:
    """T5's bidirectional bucketing of ``relative_position = key - query`` (any shape, long).

    Half the buckets are for keys at or before the query (0 .. num_buckets/2 - 1), half for keys
    after it (num_buckets/2 ..). Within a half, distances below num_buckets/4 get a bucket each and
    larger ones share log-spaced buckets up to ``max_distance``; farther ones go to the last bucket.
    """
    half = num_buckets // 2
    exact = half // 2
    distance = relative_position.abs()
    # clamp only keeps log() finite for the entries torch.where discards below.
    log_ratio = torch.log(distance.clamp(min=1).float() / exact) / math.log(max_distance / exact)
    far = (exact + (log_ratio * (half - exact)).long()).clamp(max=half - 1)
    return (relative_position > 0).long() * half + torch.where(distance < exact, distance, far)


def route(x: Tensor, onehot: Tensor) -> Tensor:
    """``[..., D]`` values, ``[..., n]`` one-hot behaviors -> ``[..., n * D]``: x in its behavior's block, 0 elsewhere.

    ``route(x, onehot) @ W.view(n * D, -1)`` applies each token's own behavior's ``W[b]`` in one matmul.
    """
    return (onehot[..., :, None] * x[..., None, :]).flatten(-2)


class MultiBehaviorAttention(nn.Module):
    """Behavior-aware multi-head self-attention with a post-LayerNorm residual (module docstring)."""

    def __init__(
        self, hidden_size: int, n_heads: int, n_behaviors: int, dropout: float, layer_norm_eps: float, num_buckets: int
    ) -> None:
        super().__init__()
        if hidden_size % n_heads != 0:
            raise ValueError(f"hidden_size {hidden_size} is not a multiple of n_heads {n_heads}")
        self.n_heads, self.head_size, self.n_behaviors = n_heads, hidden_size // n_heads, n_behaviors
        n_pairs = n_behaviors * n_behaviors  # pair (query behavior a, key behavior b) = (a - 1) * n_b + (b - 1)
        self.qkv = nn.Parameter(torch.empty(n_behaviors, hidden_size, 3 * hidden_size))  # [Wq | Wk | Wv] per behavior
        self.w1 = nn.Parameter(torch.empty(n_behaviors, n_heads, self.head_size, self.head_size))  # Q.K bases
        self.w2 = nn.Parameter(torch.empty(n_behaviors, n_heads, self.head_size, self.head_size))  # V bases
        self.alpha1 = nn.Parameter(torch.empty(n_pairs, n_behaviors, n_heads))  # pair -> logits over the bases
        self.alpha2 = nn.Parameter(torch.empty(n_pairs, n_behaviors, n_heads))
        self.position_bias = nn.Parameter(torch.empty(n_pairs, num_buckets, n_heads))
        self.attn_dropout = nn.Dropout(dropout)
        self.out_dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)

    def pair_blocks(self, alpha: Tensor, bases: Tensor) -> Tensor:
        """The pair matrices ``M_(a, b) = sum_n softmax(alpha[(a, b)])_n bases[n]`` laid out per head as one
        ``[n_b * d, n_b * d]`` block matrix: rows (key behavior b, e), columns (query behavior a, d)."""
        n_b, heads, size = self.n_behaviors, self.n_heads, self.head_size
        mix = alpha.softmax(dim=1).view(n_b, n_b, n_b, heads)  # [a, b, n, h]
        pair = torch.einsum("abnh,nhed->habed", mix, bases)  # [h, a, b, d, d]
        return pair.permute(0, 2, 3, 1, 4).reshape(heads, n_b * size, n_b * size)

    def forward(self, x: Tensor, onehot: Tensor, bias_index: Tensor, key_mask: Tensor) -> Tensor:
        """x ``[B, T, H]``; onehot ``[B, T, n_b]`` behaviors (all 0 on padding); bias_index ``[B * T * T]``
        (pair, bucket) rows of the bias tables; key_mask ``[B, T]`` True on real tokens -> ``[B, T, H]``."""
        batch, width, hidden = x.shape
        heads, size = self.n_heads, self.head_size
        qkv = route(x, onehot) @ self.qkv.view(-1, 3 * hidden)  # behavior-specific Q/K/V; 0 on padding
        q, k, v = (route(t, onehot[:, None]) for t in qkv.view(batch, width, 3, heads, size).permute(2, 0, 3, 1, 4))

        # Keys and values for every query behavior a: k~_(j, a) = (M1_(a, b_j) k_j)^T, v~_(j, a) = v_j^T M2_(a, b_j).
        key = k @ (self.pair_blocks(self.alpha1, self.w1.transpose(-1, -2)) / math.sqrt(size))  # [B, h, T, n_b * d]
        value = v @ self.pair_blocks(self.alpha2, self.w2)  # [B, h, T, n_b * d]

        # q is routed to block b_i, so q . k~_j = q_i^T M1_(b_i, b_j) k_j / sqrt(d).
        scores = q @ key.transpose(-1, -2)  # [B, h, T, T]
        bias = self.position_bias.view(-1, heads).index_select(0, bias_index)  # each pair's own T5 table
        scores = scores + bias.view(batch, width, width, heads).permute(0, 3, 1, 2)
        scores = scores.masked_fill(~key_mask[:, None, None, :], torch.finfo(scores.dtype).min)
        probs = self.attn_dropout(scores.softmax(dim=-1))

        # sum_j p_ij v~_(j, a) for every a, then each query keeps its own block a = b_i.
        context = (probs @ value).view(batch, heads, width, self.n_behaviors, size)
        context = (context * onehot[:, None, :, :, None]).sum(-2)  # [B, h, T, d]
        context = context.transpose(1, 2).reshape(batch, width, hidden)
        return self.norm(x + self.out_dropout(context))


class BehaviorMoEFeedForward(nn.Module):
    """One position-wise FFN expert per behavior, chosen by the token's behavior; residual + LayerNorm."""

    def __init__(
        self,
        hidden_size: int,
        inner_size: int,
        n_behaviors: int,
        dropout: float,
        hidden_act: str,
        layer_norm_eps: float,
    ) -> None:
        super().__init__()
        self.experts = nn.ModuleList(
            nn.Sequential(
                nn.Linear(hidden_size, inner_size), ACTIVATIONS[hidden_act](), nn.Linear(inner_size, hidden_size)
            )
            for _ in range(n_behaviors)
        )
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)

    def forward(self, x: Tensor, behavior: Tensor) -> Tensor:
        """x ``[B, T, H]``, behavior ``[B, T]`` -> ``[B, T, H]`` (padding gets a zero FFN output)."""
        tokens, flat = x.view(-1, x.shape[-1]), behavior.view(-1)
        out = torch.zeros_like(tokens)
        for level, expert in enumerate(self.experts, start=1):  # <= 5 behaviors; each token runs one expert only
            routed = (flat == level).nonzero().squeeze(1)
            out = out.index_copy(0, routed, expert(tokens.index_select(0, routed)))
        return self.norm(x + self.dropout(out.view_as(x)))


class MBSTRLayer(nn.Module):
    """Multi-behavior attention, then the behavior MoE feed-forward."""

    def __init__(
        self,
        hidden_size: int,
        n_heads: int,
        inner_size: int,
        n_behaviors: int,
        dropout: float,
        hidden_act: str,
        layer_norm_eps: float,
        num_buckets: int,
    ) -> None:
        super().__init__()
        self.attention = MultiBehaviorAttention(hidden_size, n_heads, n_behaviors, dropout, layer_norm_eps, num_buckets)
        self.feed_forward = BehaviorMoEFeedForward(
            hidden_size, inner_size, n_behaviors, dropout, hidden_act, layer_norm_eps
        )

    def forward(self, x: Tensor, behavior: Tensor, onehot: Tensor, bias_index: Tensor, key_mask: Tensor) -> Tensor:
        return self.feed_forward(self.attention(x, onehot, bias_index, key_mask), behavior)


class CGCHead(nn.Module):
    """Customized gate control: shared + behavior-specific linear experts, mixed by the behavior's gate.

    ``[M, H]`` hidden states and ``[M]`` behaviors (>= 1) -> ``[M, H]`` = h + LayerNorm(sum_e g_e expert_e(h)).
    """

    def __init__(
        self, hidden_size: int, n_behaviors: int, n_shared_experts: int, n_specific_experts: int, layer_norm_eps: float
    ) -> None:
        super().__init__()
        self.n_behaviors, self.n_specific = n_behaviors, n_specific_experts
        # The experts of each kind as one wide linear layer (same as separate Linear(H, H)s).
        self.shared = nn.Linear(hidden_size, n_shared_experts * hidden_size)
        self.specific = nn.Linear(hidden_size, n_behaviors * n_specific_experts * hidden_size)
        self.gates = nn.Parameter(torch.empty(n_behaviors, hidden_size, n_shared_experts + n_specific_experts))
        self.norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)

    def forward(self, h: Tensor, behavior: Tensor) -> Tensor:
        rows, hidden = h.shape
        level = behavior - 1
        shared = self.shared(h).view(rows, -1, hidden)  # [M, n_shared, H]
        specific = self.specific(h).view(rows, self.n_behaviors, self.n_specific, hidden)
        specific = specific[torch.arange(rows, device=h.device), level]  # [M, n_specific, H]
        experts = torch.cat([shared, specific], dim=1)  # [M, E, H]
        gate = torch.einsum("mh,bhe->mbe", h, self.gates)[torch.arange(rows, device=h.device), level]  # [M, E]
        gate = gate.softmax(dim=-1)
        return h + self.norm((gate[:, :, None] * experts).sum(1))


class MBSTR(EncoderModule):
    """MB-STR over right-padded histories (module docstring); ``loss`` and ``scores`` per the batch contract.
    Built from an `EncoderConfig` and its own arguments (`MBSTR.build(**arguments)` from flat ones)."""

    def __init__(
        self,
        encoder: EncoderConfig,
        *,
        hidden_act: str = "relu",
        initializer_range: float = 0.02,
        num_buckets: int = 32,
        max_distance: int = 40,
        n_shared_experts: int = 3,
        n_specific_experts: int = 1,
    ) -> None:
        super().__init__()
        e = encoder
        n_tokens, n_behaviors, hidden_size = e.n_tokens, e.n_behaviors, e.hidden_size
        self.n_tokens, self.n_behaviors, self.max_len = n_tokens, n_behaviors, e.max_len
        self.mask_token = n_tokens  # one extra embedding row; never a prediction target
        self.mask_ratio, self.num_buckets, self.max_distance = e.mask_ratio, num_buckets, max_distance
        self.initializer_range = initializer_range
        self.item_embedding = nn.Embedding(n_tokens + 1, hidden_size, padding_idx=0)
        self.dropout = nn.Dropout(e.dropout)
        layer = (
            hidden_size,
            e.n_heads,
            e.inner_size,
            n_behaviors,
            e.dropout,
            hidden_act,
            e.layer_norm_eps,
            num_buckets,
        )
        self.layers = nn.ModuleList(MBSTRLayer(*layer) for _ in range(e.n_layers))
        self.head = CGCHead(hidden_size, n_behaviors, n_shared_experts, n_specific_experts, e.layer_norm_eps)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        std = self.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=std)
            with torch.no_grad():
                module.weight[0].zero_()  # padding row: a constant zero (padding_idx keeps it there)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, MultiBehaviorAttention):
            nn.init.normal_(module.qkv, std=std)
            nn.init.normal_(module.position_bias, std=std)
            for base in (module.w1, module.w2, module.alpha1, module.alpha2):
                nn.init.normal_(base)  # standard normal, as the authors
        elif isinstance(module, CGCHead):
            nn.init.normal_(module.gates)

    # ---- encoder ------------------------------------------------------------------------------------

    def encode(self, item: Tensor, behavior: Tensor) -> Tensor:
        """``[B, T]`` tokens (0 = pad, n_tokens = [MASK]) and behaviors -> ``[B, T, H]`` hidden states."""
        width = item.shape[1]
        position = torch.arange(width, device=item.device)
        bucket = relative_position_bucket(position[None, :] - position[:, None], self.num_buckets, self.max_distance)
        onehot = F.one_hot(behavior, self.n_behaviors + 1)[..., 1:].to(self.item_embedding.weight.dtype)  # pad: 0s
        level = (behavior - 1).clamp(min=0)  # padding borrows behavior 1's bias: it is masked or unread anyway
        pair = level[:, :, None] * self.n_behaviors + level[:, None, :]  # [B, T, T]
        bias_index = (pair * self.num_buckets + bucket).view(-1)
        key_mask = item != 0  # bidirectional; only padding is hidden
        x = self.dropout(self.item_embedding(item))
        for layer in self.layers:
            x = layer(x, behavior, onehot, bias_index, key_mask)
        return x

    def logits(self, h: Tensor, behavior: Tensor) -> Tensor:
        """``[M, H]`` hidden states at predicted slots, ``[M]`` their behaviors -> ``[M, n_tokens]``."""
        return self.head(h, behavior) @ self.item_embedding.weight[: self.n_tokens].T

    # ---- the contract ---------------------------------------------------------------------------------

    def loss(self, batch: SequenceBatch) -> Tensor:
        """Cloze cross-entropy on history + [target] (module docstring)."""
        item, behavior = batch.with_slot(batch.target_item, batch.target_behavior)
        masked = cloze_mask(item != 0, batch.length, self.mask_ratio)  # module docstring
        hidden = self.encode(torch.where(masked, self.mask_token, item), behavior)
        return F.cross_entropy(self.logits(hidden[masked], behavior[masked]), item[masked])

    def scores(self, batch: SequenceBatch) -> Tensor:
        """``[B, n_tokens]``: the logits of a [MASK] slot appended with the queried behavior."""
        mask = torch.full_like(batch.length, self.mask_token)
        item, behavior = batch.with_slot(mask, batch.target_behavior)
        hidden = self.encode(item, behavior)
        at_slot = hidden[torch.arange(len(item), device=item.device), batch.length]
        return self.logits(at_slot, batch.target_behavior)
