"""MBHT: Multi-Behavior Hypergraph-Enhanced Transformer (Yang et al., KDD 2022), as one torch module.

MBHT is a Cloze-style (BERT4Rec-like) sequence model with two encoders whose outputs are fused per position:

1. Behavior-aware context embedding: item + position + behavior type (0 = padding or hidden by
   the mask), LayerNorm, dropout.
2. Multi-scale transformer, ``n_layers`` layers. Each layer has
   - a low-rank (Linformer-style) self-attention over the full sequence: keys and values are compressed
     along the sequence axis from L to ``scales[0]`` slots by learned projections E and F;
   - two coarse scales: the sequence is cut into segments of ``scales[1]`` and ``scales[2]`` positions,
     each segment is mean-pooled into one slot, and one multi-head attention module (shared by both scales)
     runs over the pooled slots;
   - a learned mixing of the L + L/scales[1] + L/scales[2] slots back to L positions along the sequence,
     followed by the point-wise feed-forward network with dropout, residual and LayerNorm.
3. Hypergraph branch over the positions of each sequence: item-wise semantic hyperedges (each
   position joins the hyperedges of the items at its ``hyper_len`` most similar positions, weighted by a
   learned multi-channel cosine similarity), self loops, and multi-behavior hyperedges (one per item that
   occurs more than once, linking its occurrences). Two HGNN layers propagate with G = Dv^-1 H De^-1 H^T.
4. Fusion: attention over the two sources (transformer, hypergraph) per position.

Training writes the target into the slot after the history, always masks it, and masks each other history
position with probability ``mask_ratio``; masked slots get the [MASK] token and behavior type 0, and the loss
is full-softmax cross-entropy over the masked slots (the last int(mask_ratio * max_len) of them, as both
codes). Inference appends [MASK] (type 0) at ``length`` and scores its output against the item embeddings.

The model runs at a fixed width L = max_len + 1 (the history right-padded or cut to its ``max_len`` most
recent items, plus the one appended slot), because the sequence projections (E, F and the mixing layer) are
sized by L. L must be divisible by ``scales[1]`` and ``scales[2]``: hence max_len 59 (L = 60) for scales
[5, 4, 20] in GAMER's App. A. A fixed width also makes the scores independent of how wide the batch is padded.

Decisions where the paper, the original code (yuh-yang/MBHT-KDD22, a RecBole 1.0 fork) and the GAMER
authors' code (wzf2000/GAMER, ``SeqRec/models/discriminative/MBHT``) differ:

- Feed-forward network: GAMER's shared ``FeedForward`` (HEAD, since commit 7aae2a3) builds its LayerNorm and
  dropout only when ``residual=True`` but applies them only when ``residual=False``, so MBHT's FFN there is a
  bare dense-act-dense with no residual, no LayerNorm and no dropout. That is a bug; we implement the
  paper's (and the original's, RecBole's) FFN: dropout, then LayerNorm(h + x).
- Coarse-scale pooling: the paper mean-pools contiguous sub-sequences of ``p`` items. Both codes reshape the
  sequence to [p, L/p] and average over the first axis, so slot j averages the strided positions j, j + L/p,
  j + 2L/p, ... We follow the paper (contiguous segments). Pooling averages real positions only.
- Multi-channel similarity: the paper averages the cosine similarities of the channels w_c * x; both codes
  average the channel embeddings first and take one cosine. We follow the paper (two channels). Negative
  similarities become 0.01 and the item embeddings are gated, x * sigmoid(x W + b), as in both codes.
- Semantic hyperedge weights: when several top-k hits (or a hit and the self loop) point to the same item
  hyperedge, we keep the largest weight, which is order-free and keeps the self loop at 1. As in both codes,
  a hit on a [MASK] slot links the row's own item with weight 1, and [MASK] rows keep only their self loop
  (all [MASK] slots share the [MASK] item's hyperedge).
- Vectorised hypergraph: the codes build one incidence matrix per sequence in a Python loop and assemble a
  block-diagonal batch matrix. We build a dense [B, L, 2L] incidence per batch: columns 0..L-1 are the item
  hyperedges, indexed by the position of the item's first occurrence (so at most L distinct items), columns
  L..2L-1 the multi-behavior hyperedges, indexed the same way. Empty columns have degree 0 and are ignored.
- Masked-slot read-out of the hypergraph branch: a masked slot's hypergraph vector (computed from the [MASK]
  embedding, so carrying no item) is replaced by the mean over the real positions in [p - window_before, p)
  and (p, p + window_after), the original's retail setting (10, 6) that GAMER uses for every dataset. At
  inference the [MASK] slot is the last real position, so this is the mean over [p - 10, p) in both codes.
- Padding: the codes let padded positions enter the coarse-scale pooling and the sequence mixing; we zero
  padded positions after every block, pool over real positions only, and mask empty segments as keys, so
  the output depends on the real positions only.
- Loss slots: the paper does not say; both codes put only the last int(mask_ratio * max_len) masked slots of
  each sequence into the loss (those always include the target), and so do we (at least one slot). Every
  masked slot is still hidden in the input. This also bounds the cost of the full-softmax head, which is
  most of a training step's time. The softmax runs over tokens 0..n_tokens-1 (the scored vocabulary); the
  codes also include the [MASK] row.
- Low-rank projections E and F are bias-free matrices, as the paper's E K and F V.
- Training on target-behavior interactions only (as the original and GAMER's ``train_SMB_rec.py``) is the
  framework's job (``target_behavior_only = true`` in mbht.toml). The queried behavior (``target_behavior``)
  is never an input: the [MASK] slot has type 0 in the original and in GAMER, and MBHT is evaluated on the
  target behavior only, so ``scores`` ignores it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from baselines.batch import EncoderConfig, EncoderModule, SequenceBatch

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}
NEGATIVE_SIMILARITY = 0.01  # both codes replace negative cosine similarities by this small positive weight


# ---- multi-scale transformer ----------------------------------------------------------------------------------


class Attention(nn.Module):
    """Post-LN multi-head self-attention, optionally low-rank (Linformer) along the sequence.

    With ``compress`` = (L, k), keys and values are projected from L positions to k slots (the paper's
    softmax(Q (E K)^T / sqrt(d)) F V), which costs O(L k) instead of O(L^2).
    """

    def __init__(self, hidden: int, n_heads: int, dropout: float, eps: float, compress: tuple[int, int] | None):
        super().__init__()
        if hidden % n_heads:
            raise ValueError(f"hidden_size {hidden} must be divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.query, self.key, self.value = (nn.Linear(hidden, hidden) for _ in range(3))
        self.key_projection = nn.Linear(*compress, bias=False) if compress else None  # E
        self.value_projection = nn.Linear(*compress, bias=False) if compress else None  # F
        self.dropout_p = dropout
        self.dense = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """x [B, S, H], real [B, S] bool (False = padding) -> [B, S, H]."""
        keys, values = self.key(x), self.value(x)
        if self.key_projection is not None:
            # Zeroing the padded keys/values before the sequence projection keeps padding out of E K and F V.
            keep = real.unsqueeze(-1).to(x.dtype)
            keys = self.key_projection((keys * keep).transpose(1, 2)).transpose(1, 2)  # [B, k, H]
            values = self.value_projection((values * keep).transpose(1, 2)).transpose(1, 2)
            mask = None
        else:
            mask = real[:, None, None, :]  # [B, 1, 1, S]: True = may be attended
        q, k, v = (self._split(t) for t in (self.query(x), keys, values))
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout_p if self.training else 0.0
        )
        attended = attended.transpose(1, 2).flatten(2)  # [B, S, H]
        return self.norm(self.dropout(self.dense(attended)) + x)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        """[B, S, H] -> [B, heads, S, H / heads]."""
        return t.unflatten(-1, (self.n_heads, -1)).transpose(1, 2)


class FeedForward(nn.Module):
    """Point-wise FFN with dropout, residual and LayerNorm (the paper's; GAMER's HEAD drops the last three)."""

    def __init__(self, hidden: int, inner: int, activation: str, dropout: float, eps: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(hidden, inner), ACTIVATIONS[activation](), nn.Linear(inner, hidden))
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.dropout(self.net(x)) + x)


def segment_mean(x: torch.Tensor, real: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean-pools contiguous segments of ``size`` positions over the real positions only.

    x [B, L, H], real [B, L] -> (pooled [B, L / size, H], non-empty segments [B, L / size] bool).
    """
    keep = real.unsqueeze(-1).to(x.dtype)
    total = (x * keep).unflatten(1, (-1, size)).sum(2)
    count = keep.unflatten(1, (-1, size)).sum(2)
    return total / count.clamp(min=1), count.squeeze(-1) > 0


class MultiScaleLayer(nn.Module):
    """One multi-scale transformer layer: low-rank attention, two pooled scales, mixing, FFN."""

    def __init__(
        self,
        width: int,
        hidden: int,
        n_heads: int,
        inner: int,
        activation: str,
        dropout: float,
        eps: float,
        scales: tuple[int, int, int],
    ):
        super().__init__()
        rank, self.coarse_scales = scales[0], scales[1:]
        self.low_rank_attention = Attention(hidden, n_heads, dropout, eps, compress=(width, rank))
        # The paper's "behavior-aware patterns at different granularities": one attention for both scales.
        self.coarse_attention = Attention(hidden, n_heads, dropout, eps, compress=None)
        mixed_width = width + sum(width // p for p in self.coarse_scales)
        self.mix = nn.Linear(mixed_width, width)  # back from L + L/p1 + L/p2 slots to L positions
        self.feed_forward = FeedForward(hidden, inner, activation, dropout, eps)

    def forward(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """x [B, L, H] (padding zero), real [B, L] -> [B, L, H] (padding zero)."""
        keep = real.unsqueeze(-1).to(x.dtype)
        parts = [self.low_rank_attention(x, real) * keep]
        for size in self.coarse_scales:
            pooled, non_empty = segment_mean(x, real, size)
            parts.append(self.coarse_attention(pooled, non_empty) * non_empty.unsqueeze(-1).to(x.dtype))
        mixed = self.mix(torch.cat(parts, dim=1).transpose(1, 2)).transpose(1, 2)  # [B, L, H]
        return self.feed_forward(mixed) * keep


# ---- hypergraph branch --------------------------------------------------------------------------------------


def hypergraph_incidence(
    item: torch.Tensor, real: torch.Tensor, masked: torch.Tensor, similarity: torch.Tensor, hyper_len: int
) -> torch.Tensor:
    """The incidence matrix H [B, L, 2L] of each sequence's hypergraph; nodes are positions.

    item [B, L] tokens; real [B, L] bool, False on padding; masked [B, L] bool, True on [MASK] slots;
    similarity [B, L, L] position-to-position similarity in (0, 1].
    Columns 0..L-1: item hyperedges, column f = the item first seen at position f. A real position joins its
    own item's hyperedge with weight 1 (self loop) and, unless it is a [MASK] slot, the hyperedges of the
    items at its ``hyper_len`` most similar real positions with weight = similarity (a hit on a [MASK] slot
    counts as the row's own item, weight 1). Columns L..2L-1: multi-behavior hyperedges, column L + f links
    every occurrence of an item (not [MASK]) that occurs more than once.
    """
    batch, width = item.shape
    positions = torch.arange(width, device=item.device)
    same_item = (item[:, :, None] == item[:, None, :]) & real[:, None, :]  # [B, L, L]
    first = torch.where(same_item, positions, width).amin(-1).clamp(max=width - 1)  # [B, L]; padding rows: any
    weight = real.to(similarity.dtype)
    self_loops = torch.zeros(batch, width, width, dtype=similarity.dtype, device=item.device)
    self_loops = self_loops.scatter(2, first.unsqueeze(-1), weight.unsqueeze(-1))

    k = min(hyper_len, width)
    top_similarity, top = similarity.masked_fill(~real[:, None, :], -math.inf).topk(k, dim=-1)  # [B, L, k]
    hit_item = first.gather(1, top.flatten(1)).view(batch, width, k)
    hit_masked = masked.gather(1, top.flatten(1)).view(batch, width, k)
    hit_real = real.gather(1, top.flatten(1)).view(batch, width, k)
    hit_item = torch.where(hit_masked, first.unsqueeze(-1), hit_item)
    top_similarity = torch.where(hit_masked, torch.ones_like(top_similarity), top_similarity)
    active = hit_real & (real & ~masked).unsqueeze(-1)
    top_similarity = torch.where(active, top_similarity, torch.zeros_like(top_similarity))
    item_edges = self_loops.scatter_reduce(2, hit_item, top_similarity, reduce="amax")

    occurrences = (same_item & ~masked[:, None, :]).sum(-1)  # [B, L]
    repeated = (real & ~masked & (occurrences > 1)).to(similarity.dtype)
    behavior_edges = torch.zeros_like(self_loops).scatter(2, first.unsqueeze(-1), repeated.unsqueeze(-1))
    return torch.cat([item_edges, behavior_edges], dim=-1)


def hypergraph_propagation(incidence: torch.Tensor) -> torch.Tensor:
    """G = Dv^-1 H De^-1 H^T [B, L, L] from H [B, L, E]; zero-degree nodes and hyperedges contribute nothing."""
    node_degree = incidence.sum(-1, keepdim=True)  # [B, L, 1]
    edge_degree = incidence.sum(-2, keepdim=True)  # [B, 1, E]
    inverse_node = torch.where(node_degree > 0, 1 / node_degree.clamp(min=1e-12), torch.zeros_like(node_degree))
    inverse_edge = torch.where(edge_degree > 0, 1 / edge_degree.clamp(min=1e-12), torch.zeros_like(edge_degree))
    return (incidence * inverse_node * inverse_edge) @ incidence.transpose(1, 2)


def context_windows(width: int, before: int, after: int) -> torch.Tensor:
    """[L, L] bool: row p marks the positions q in [p - before, p) and (p, p + after)."""
    offset = torch.arange(width)[None, :] - torch.arange(width)[:, None]  # q - p
    return ((offset >= -before) & (offset < 0)) | ((offset > 0) & (offset < after))


class HypergraphBranch(nn.Module):
    """Item-wise semantic + multi-behavior hypergraph over one sequence's positions, two HGNN layers."""

    def __init__(
        self,
        width: int,
        hidden: int,
        hyper_len: int,
        n_channels: int,
        dropout: float,
        window_before: int,
        window_after: int,
    ):
        super().__init__()
        self.hyper_len = hyper_len
        self.gate = nn.Linear(hidden, hidden)
        # Channel weights near 1 (about the plain cosine) but distinct, so the channels do not stay identical.
        self.channels = nn.Parameter(1 + 0.1 * torch.randn(n_channels, hidden))
        self.layers = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(2))
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("windows", context_windows(width, window_before, window_after), persistent=False)

    def similarity(self, x: torch.Tensor) -> torch.Tensor:
        """Multi-channel weighted cosine similarity [B, L, L] of x [B, L, H]; negatives become 0.01."""
        per_channel = F.normalize(x.unsqueeze(1) * self.channels[None, :, None, :], dim=-1)  # [B, C, L, H]
        cosine = (per_channel @ per_channel.transpose(-1, -2)).mean(1)
        return torch.where(cosine < 0, torch.full_like(cosine, NEGATIVE_SIMILARITY), cosine)

    def forward(
        self, item: torch.Tensor, item_embedding: torch.Tensor, real: torch.Tensor, masked: torch.Tensor
    ) -> torch.Tensor:
        """item [B, L], item_embedding [B, L, H], real / masked [B, L] bool -> [B, L, H]."""
        x = item_embedding * torch.sigmoid(self.gate(item_embedding))
        incidence = hypergraph_incidence(item, real, masked, self.similarity(x), self.hyper_len)
        propagation = hypergraph_propagation(incidence)
        outputs = []
        for layer in self.layers:
            x = self.dropout(propagation @ layer(x))
            outputs.append(x)
        x = torch.stack(outputs).mean(0)
        # A [MASK] slot's own vector carries no item: read it from its real neighbors instead.
        window = (self.windows.unsqueeze(0) & real.unsqueeze(1)).to(x.dtype)  # [B, L, L]
        context = (window @ x) / window.sum(-1, keepdim=True).clamp(min=1)
        return torch.where(masked.unsqueeze(-1), context, x)


class SourceFusion(nn.Module):
    """Attention over the sources of one position: w_s = softmax_s(a . (W x_s)), sum_s w_s x_s."""

    def __init__(self, hidden: int):
        super().__init__()
        self.project = nn.Linear(hidden, hidden)
        self.query = nn.Parameter(torch.zeros(hidden))

    def forward(self, sources: torch.Tensor) -> torch.Tensor:
        """sources [B, L, S, H] -> [B, L, H]."""
        weights = (self.project(sources) * self.query).sum(-1).softmax(-1)  # [B, L, S]
        return (weights.unsqueeze(-1) * sources).sum(-2)


def last_true(mask: torch.Tensor, n: int) -> torch.Tensor:
    """mask [B, L] bool -> [B, L] bool: only the last ``n`` True entries of each row stay True."""
    return mask & (mask.flip(1).cumsum(1).flip(1) <= n)


# ---- the model ----------------------------------------------------------------------------------------------


class MBHT(EncoderModule):
    """MBHT with a Cloze loss and [MASK]-slot scoring; see the module docstring. Built from an
    `EncoderConfig` and its own arguments (`MBHT.build(**arguments)` from flat keyword arguments)."""

    def __init__(
        self,
        encoder: EncoderConfig,
        *,
        hidden_act: str = "gelu",
        hyper_len: int = 6,
        scales: tuple[int, int, int] | list[int] = (5, 4, 20),
        metric_channels: int = 2,
        hypergraph_dropout: float = 0.2,
        window_before: int = 10,
        window_after: int = 6,
    ):
        super().__init__()
        e = encoder
        n_tokens, max_len, hidden_size = e.n_tokens, e.max_len, e.hidden_size
        width = max_len + 1  # the history plus the appended [MASK] / target slot
        if len(scales) != 3 or min(scales) < 1:
            raise ValueError(f"scales must be three positive ints [rank, coarse1, coarse2], got {list(scales)}")
        if width % scales[1] or width % scales[2]:
            step = math.lcm(scales[1], scales[2])
            raise ValueError(
                f"MBHT runs at width max_len + 1 = {width}, which must be divisible by scales[1] = {scales[1]} "
                f"and scales[2] = {scales[2]}; use max_len = {math.ceil(width / step) * step - 1} or other scales"
            )
        if hidden_act not in ACTIVATIONS:
            raise ValueError(f"hidden_act must be one of {sorted(ACTIVATIONS)}, got {hidden_act!r}")
        self.n_tokens, self.max_len, self.width, self.mask_ratio = n_tokens, max_len, width, e.mask_ratio
        self.loss_slots = max(1, int(e.mask_ratio * max_len))  # per sequence, as both codes (module docstring)
        self.mask_token = n_tokens  # the [MASK] row is the extra last row of the item table
        self.item_embedding = nn.Embedding(n_tokens + 1, hidden_size)
        self.position_embedding = nn.Embedding(width, hidden_size)
        self.behavior_embedding = nn.Embedding(e.n_behaviors + 1, hidden_size)  # 0 = padding or hidden by the mask
        self.embedding_norm = nn.LayerNorm(hidden_size, eps=e.layer_norm_eps)
        self.embedding_dropout = nn.Dropout(e.dropout)
        scales = (int(scales[0]), int(scales[1]), int(scales[2]))
        self.layers = nn.ModuleList(
            MultiScaleLayer(
                width, hidden_size, e.n_heads, e.inner_size, hidden_act, e.dropout, e.layer_norm_eps, scales
            )
            for _ in range(e.n_layers)
        )
        self.hypergraph = HypergraphBranch(
            width, hidden_size, hyper_len, metric_channels, hypergraph_dropout, window_before, window_after
        )
        self.fusion = SourceFusion(hidden_size)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # RecBole / GAMER initialisation: N(0, 0.02) weights, zero biases, LayerNorm (1, 0).
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        if isinstance(module, SourceFusion):
            nn.init.normal_(module.query, std=0.02)

    def _window(self, batch: SequenceBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """History cut to its ``max_len`` most recent items, plus one empty slot: item / behavior [B, L], length."""
        item, behavior, length = batch.item, batch.behavior, batch.length
        if item.shape[1] < self.max_len:
            pad = (0, self.max_len - item.shape[1])
            item, behavior = F.pad(item, pad), F.pad(behavior, pad)
        start = (length - self.max_len).clamp(min=0)
        index = start.unsqueeze(1) + torch.arange(self.max_len, device=item.device)
        item, behavior = item.gather(1, index), behavior.gather(1, index)
        slot = item.new_zeros(item.shape[0], 1)
        return torch.cat([item, slot], 1), torch.cat([behavior, slot], 1), length.clamp(max=self.max_len)

    def _encode(self, item: torch.Tensor, behavior: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """item / behavior [B, L] (masked slots already [MASK] / 0), real [B, L] -> [B, L, H]."""
        keep = real.unsqueeze(-1).to(self.item_embedding.weight.dtype)
        items = self.item_embedding(item)
        x = items + self.position_embedding.weight.unsqueeze(0) + self.behavior_embedding(behavior)
        x = self.embedding_dropout(self.embedding_norm(x)) * keep
        for layer in self.layers:
            x = layer(x, real)
        hypergraph = self.hypergraph(item, items, real, item == self.mask_token)
        return self.fusion(torch.stack([x, hypergraph], dim=2))

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """[N, H] -> [N, n_tokens]: dot products with the item embeddings (the [MASK] row is not a candidate)."""
        return hidden @ self.item_embedding.weight[: self.n_tokens].T

    def loss(self, batch: SequenceBatch) -> torch.Tensor:
        """Cloze loss: the target after the history is always masked, other items with probability mask_ratio."""
        item, behavior, length = self._window(batch)
        positions = torch.arange(self.width, device=item.device)
        at_target = positions == length.unsqueeze(1)
        item = torch.where(at_target, batch.target_item.unsqueeze(1), item)
        real = positions <= length.unsqueeze(1)
        # Never mask a padding token (the empty history arrives as one token 0 with length 1).
        history = (positions < length.unsqueeze(1)) & (item != 0)
        masked = at_target | (history & (torch.rand(item.shape, device=item.device) < self.mask_ratio))
        scored = last_true(masked, self.loss_slots)  # the target slot is the last masked one: always scored
        inputs = torch.where(masked, self.mask_token, item)
        behavior = torch.where(masked, 0, behavior)
        hidden = self._encode(inputs, behavior, real)
        return F.cross_entropy(self._logits(hidden[scored]), item[scored])

    def scores(self, batch: SequenceBatch) -> torch.Tensor:
        """[B, n_tokens] scores of the [MASK] slot appended at ``length``; ``target_behavior`` is not used."""
        item, behavior, length = self._window(batch)
        positions = torch.arange(self.width, device=item.device)
        at_mask = positions == length.unsqueeze(1)
        item = torch.where(at_mask, self.mask_token, item)
        behavior = torch.where(at_mask, 0, behavior)  # type 0: the queried behavior stays hidden, as in training
        hidden = self._encode(item, behavior, positions <= length.unsqueeze(1))
        return self._logits(hidden[torch.arange(item.shape[0], device=item.device), length])
