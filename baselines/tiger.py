"""TIGER: the T5-style encoder-decoder of "Recommender Systems with Generative Retrieval" (Rajput et al., NeurIPS 2023).

TIGER reads a user's history as a sequence of semantic-ID tokens and generates the next item's ID token by
token. The network is a plain T5 (v1.0) encoder-decoder, written here in torch without the transformers library:

    encoder tokens [B, S] -> shared embedding -> dropout
                             n_encoder_layers x  x = x + dropout(SelfAttention(RMSNorm(x)))    bidirectional bias
                                                 x = x + dropout(FeedForward(RMSNorm(x)))
                             RMSNorm -> dropout                                        = memory [B, S, D]
    decoder tokens [B, T] -> shared embedding -> dropout
                             n_decoder_layers x  x = x + dropout(CausalSelfAttention(RMSNorm(x)))  causal bias
                                                 x = x + dropout(CrossAttention(RMSNorm(x), memory))  no bias
                                                 x = x + dropout(FeedForward(RMSNorm(x)))
                             RMSNorm -> dropout -> * d_model^-0.5 -> @ shared embedding^T = logits [B, T, V]

T5 specifics kept on purpose:
- RMSNorm is T5's LayerNorm: x / sqrt(mean(x^2) + eps) * weight, no mean subtraction, no bias, eps 1e-6.
- Attention has no 1/sqrt(d_kv) scaling: T5 folds it into the query's init std. Its inner width is
  n_heads * d_kv, which may exceed d_model (paper config: 6 x 64 = 384 > 128). No linear layer has a bias.
  Attention probabilities get dropout too, as in T5 (``attention_dropout``, ``dropout`` unless set).
- Relative position bias: a learned [num_buckets, n_heads] table, owned by the first layer of each stack and
  added to the attention logits of every layer of that stack. Encoder buckets are bidirectional (16 per
  direction); decoder self-attention buckets are unidirectional (all 32 for "key at or before the query"; the
  future is masked anyway). Exact buckets for small distances, log-spaced up to max_distance 128, then capped.
  Cross-attention has no position bias.
- The token embedding is shared by encoder input, decoder input and the output head; because the head is tied,
  the decoder output is scaled by d_model^-0.5 before it (T5's tied-embedding rule).
- Token 0 is padding and the decoder start token (as T5), so it has a learned embedding like any other token;
  encoder padding is masked out as attention keys and the decoder never needs a pad mask (its inputs are
  right-aligned targets under a causal mask).
- Init is T5's (HF T5PreTrainedModel with initializer_factor 1.0, itself Mesh TensorFlow's): all normal, mean 0,
  std: embedding 1.0; q (d_model * d_kv)^-0.5; k and v d_model^-0.5; o (n_heads * d_kv)^-0.5; FFN wi
  d_model^-0.5, wo d_ff^-0.5; relative bias tables d_model^-0.5; RMSNorm weights 1.

Interface (the seq2seq contract): ``encode(tokens, levels, slots)`` -> (memory, memory_mask);
``decode(memory, memory_mask, tokens, levels, slots, past, memory_index)`` -> (logits, past); with
``memory_index`` [B] the memory holds the U distinct histories of a batch and decoder row b reads row
``memory_index[b]`` (training: a session's targets share one encoder pass). ``levels``, ``slots``,
``n_behaviors`` and ``id_levels`` are accepted and ignored: TIGER has no behavior-aware parts, and TIGER-MB is
the same network fed behavior tokens by the caller. ``past`` is a list (one per decoder layer) of
(self_k, self_v, cross_k, cross_v) tensors [B, H, *, d_kv], batch first, so the caller's beam search can
``index_select`` rows; the cached cross-attention keys/values save re-projecting the memory every step. With a
past of P tokens the T new decoder tokens sit at absolute positions P .. P+T-1, and their relative bias rows use
those positions.

Decisions where the TIGER paper, T5 and the GAMER authors' code (reference notes §4.5, §6.1) differ:
- Architecture numbers follow the GAMER authors' config, which matches the TIGER paper's (4 + 4 layers, 6 heads
  of 64, FFN 1024, d_model 128, dropout 0.1, ReLU, 32 buckets, eps 1e-6): the module's defaults are these.
- Vocabulary: the authors resize a T5Tokenizer vocabulary (32,100 word pieces + the added SID/behavior tokens),
  so their tied embedding carries ~32k never-used rows (~4.1 M parameters at d_model 128) that also take part
  in the training softmax. Here the vocabulary is only the caller's tokens (pad/start, behaviors, ID tokens,
  EOS). EOS is vocab_size - 1 rather than T5's 1; the network does not care.
- No user-id token: the TIGER paper prepends a hashed user token (2,000 buckets); the GAMER code does not, and
  the caller's layout (history + EOS) has none.
- Logit temperature: the authors' subclass divides logits by 0.7 inside its loss. That is a loss choice, left to
  the caller; this module returns plain T5 logits.
- The authors' n_positions 512 is unused by T5 (no absolute positions); any sequence length works here.
- TIGER vs TIGER-MB differ only in the data layout (behavior tokens or not), which the caller builds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.mbstr import relative_position_bucket

# A large finite negative (not -inf) for masked logits, as HF T5's finfo.min: in float32 a fully masked row (an
# all-pad history) gives a uniform softmax instead of NaN. (Under fp16/bf16 it becomes -inf; the contract's rows
# never are fully masked: every history ends in EOS and every causal row sees itself.)
NEG = torch.finfo(torch.float32).min


def mask_bias(keep: Tensor) -> Tensor:
    """Boolean keep-mask (any shape) -> additive float bias of the same shape: 0 where kept, NEG where masked."""
    return torch.zeros(keep.shape, device=keep.device).masked_fill(~keep, NEG)


def causal_relative_position_bucket(
    relative_position: Tensor, num_buckets: int = 32, max_distance: int = 128
) -> Tensor:
    """T5's unidirectional bucketing of ``relative_position = key - query``: all ``num_buckets`` for keys at or
    before the query (distance exact below num_buckets/2, log-spaced up to max_distance, then capped); keys after
    the query share bucket 0 with distance 0 (they are masked anyway).

    This is exactly the "at or before" half of the bidirectional scheme with twice the buckets, so it reuses it.
    """
    return relative_position_bucket(relative_position.clamp(max=0), 2 * num_buckets, max_distance)


def encoder_attention_bias(relative: RelativePositionBias, mask: Tensor) -> Tensor:
    """Position bias [1, H, S, S] + key-padding mask [B, 1, 1, S] from ``mask`` [B, S] (True = real):
    built once per encoder pass and shared by every layer."""
    positions = torch.arange(mask.size(1), device=mask.device)
    return relative(positions, positions) + mask_bias(mask)[:, None, None, :]


def decoder_attention_biases(
    relative: RelativePositionBias, memory_mask: Tensor, n_past: int, n_new: int, memory_index: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Self-attention bias [1, H, T, P + T] (position bias + causal mask) for ``n_new`` tokens following
    ``n_past`` cached ones, at their absolute positions; cross-attention bias [B, 1, 1, S] (padding only),
    row b from memory row ``memory_index[b]`` when given."""
    if memory_index is not None:
        memory_mask = memory_mask.index_select(0, memory_index)
    key_positions = torch.arange(n_past + n_new, device=memory_mask.device)
    query_positions = key_positions[n_past:]
    causal = key_positions[None, :] <= query_positions[:, None]  # [T, P + T]
    self_bias = relative(query_positions, key_positions) + mask_bias(causal)
    return self_bias, mask_bias(memory_mask)[:, None, None, :]


@dataclass
class T5Config:
    vocab_size: int
    d_model: int = 128
    d_ff: int = 1024
    d_kv: int = 64
    n_heads: int = 6
    n_encoder_layers: int = 4
    n_decoder_layers: int = 4
    dropout: float = 0.1
    num_buckets: int = 32
    max_distance: int = 128
    layer_norm_eps: float = 1e-6
    attention_dropout: float | None = None  # on the attention probabilities; None: ``dropout``, as in T5

    @property
    def attention_dropout_p(self) -> float:
        return self.dropout if self.attention_dropout is None else self.attention_dropout


class RMSNorm(nn.Module):
    """T5 LayerNorm: scale by the root mean square, no centring, no bias. [..., D] -> [..., D]."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        variance = x.float().pow(2).mean(-1, keepdim=True)
        return self.weight * (x.float() * torch.rsqrt(variance + self.eps)).type_as(x)


class RelativePositionBias(nn.Module):
    """Learned per-head bias by bucketed relative position. (query positions [T], key positions [S]) -> [1, H, T, S]."""

    def __init__(self, cfg: T5Config, bidirectional: bool) -> None:
        super().__init__()
        self.bidirectional, self.num_buckets, self.max_distance = bidirectional, cfg.num_buckets, cfg.max_distance
        self.table = nn.Embedding(cfg.num_buckets, cfg.n_heads)

    def forward(self, query_positions: Tensor, key_positions: Tensor) -> Tensor:
        relative = key_positions[None, :] - query_positions[:, None]  # [T, S]
        bucket_fn = relative_position_bucket if self.bidirectional else causal_relative_position_bucket
        bucket = bucket_fn(relative, self.num_buckets, self.max_distance)
        return self.table(bucket).permute(2, 0, 1)[None]


class Attention(nn.Module):
    """T5 multi-head attention, inner width n_heads * d_kv, no 1/sqrt(d) scaling, no biases.

    Keys/values are projected separately (``project_kv``) so the decoder can cache them.
    """

    def __init__(self, cfg: T5Config) -> None:
        super().__init__()
        self.n_heads, self.d_kv, self.dropout = cfg.n_heads, cfg.d_kv, cfg.attention_dropout_p
        inner = cfg.n_heads * cfg.d_kv
        self.q = nn.Linear(cfg.d_model, inner, bias=False)
        self.k = nn.Linear(cfg.d_model, inner, bias=False)
        self.v = nn.Linear(cfg.d_model, inner, bias=False)
        self.o = nn.Linear(inner, cfg.d_model, bias=False)

    def heads(self, x: Tensor) -> Tensor:
        """[B, L, H * d_kv] -> [B, H, L, d_kv]."""
        return x.view(x.size(0), x.size(1), self.n_heads, self.d_kv).transpose(1, 2)

    def project_kv(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """[B, S, D] -> keys, values [B, H, S, d_kv]."""
        return self.heads(self.k(x)), self.heads(self.v(x))

    def forward(self, x: Tensor, k: Tensor, v: Tensor, bias: Tensor) -> Tensor:
        """queries from x [B, T, D], k/v [B, H, S, d_kv], additive bias (position + mask) broadcastable to
        [B, H, T, S] -> [B, T, D]."""
        q = self.heads(self.q(x))
        dropout = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), dropout_p=dropout, scale=1.0)
        return self.o(out.transpose(1, 2).flatten(2))


class FeedForward(nn.Module):
    """T5 DenseReluDense: [B, L, D] -> d_ff ReLU -> dropout -> [B, L, D]."""

    def __init__(self, cfg: T5Config) -> None:
        super().__init__()
        self.wi = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.wo = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.wo(self.dropout(F.relu(self.wi(x))))


class EncoderLayer(nn.Module):
    """Pre-norm self-attention and feed-forward blocks, each followed by dropout and the residual add."""

    def __init__(self, cfg: T5Config) -> None:
        super().__init__()
        self.attn_norm, self.attn = RMSNorm(cfg.d_model, cfg.layer_norm_eps), Attention(cfg)
        self.ff_norm, self.ff = RMSNorm(cfg.d_model, cfg.layer_norm_eps), FeedForward(cfg)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        """x [B, S, D], bias [B, H, S, S] -> [B, S, D]."""
        h = self.attn_norm(x)
        x = x + self.dropout(self.attn(h, *self.attn.project_kv(h), bias))
        return x + self.dropout(self.ff(self.ff_norm(x)))


def memory_keys_values(attention: Attention, memory: Tensor, index: Tensor | None) -> tuple[Tensor, Tensor]:
    """Cross-attention keys and values of ``memory`` [U, S, D] for decoder row b from memory row ``index[b]``
    (None: row b): decoder rows that share a history share its projection as well as its encoder pass."""
    k, v = attention.project_kv(memory)
    return (k, v) if index is None else (k.index_select(0, index), v.index_select(0, index))


class DecoderLayer(nn.Module):
    """Pre-norm causal self-attention, cross-attention and feed-forward blocks, with a key/value cache."""

    def __init__(self, cfg: T5Config) -> None:
        super().__init__()
        self.self_norm, self.self_attn = RMSNorm(cfg.d_model, cfg.layer_norm_eps), Attention(cfg)
        self.cross_norm, self.cross_attn = RMSNorm(cfg.d_model, cfg.layer_norm_eps), Attention(cfg)
        self.ff_norm, self.ff = RMSNorm(cfg.d_model, cfg.layer_norm_eps), FeedForward(cfg)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        self_bias: Tensor,
        cross_bias: Tensor,
        past: tuple[Tensor, ...] | None,
        memory_index: Tensor | None = None,
    ) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor, Tensor]]:
        """x [B, T, D] (new tokens), memory [B or U, S, D], self_bias [1, H, T, P + T], cross_bias [B, 1, 1, S],
        past None or (self_k, self_v [B, H, P, d_kv], cross_k, cross_v [B, H, S, d_kv])
        -> x [B, T, D], the cache extended by the T new keys/values."""
        h = self.self_norm(x)
        k, v = self.self_attn.project_kv(h)
        if past is None:
            cross_k, cross_v = memory_keys_values(self.cross_attn, memory, memory_index)
        else:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
            cross_k, cross_v = past[2], past[3]
        x = x + self.dropout(self.self_attn(h, k, v, self_bias))
        x = x + self.dropout(self.cross_attn(self.cross_norm(x), cross_k, cross_v, cross_bias))
        x = x + self.dropout(self.ff(self.ff_norm(x)))
        return x, (k, v, cross_k, cross_v)


class T5EncoderDecoder(nn.Module):
    """TIGER / TIGER-MB network (module docstring). Defaults are the paper profile."""

    def __init__(
        self,
        *,
        vocab_size: int,
        n_behaviors: int,
        id_levels: int,
        d_model: int = 128,
        d_ff: int = 1024,
        d_kv: int = 64,
        n_heads: int = 6,
        n_encoder_layers: int = 4,
        n_decoder_layers: int = 4,
        dropout: float = 0.1,
        num_buckets: int = 32,
        max_distance: int = 128,
        layer_norm_eps: float = 1e-6,
        attention_dropout: float | None = None,
    ) -> None:
        super().__init__()
        del n_behaviors, id_levels  # part of the contract; TIGER has no behavior- or level-aware parts
        self.cfg = cfg = T5Config(
            vocab_size=vocab_size, d_model=d_model, d_ff=d_ff, d_kv=d_kv, n_heads=n_heads,
            n_encoder_layers=n_encoder_layers, n_decoder_layers=n_decoder_layers, dropout=dropout,
            num_buckets=num_buckets, max_distance=max_distance, layer_norm_eps=layer_norm_eps,
            attention_dropout=attention_dropout,
        )  # fmt: skip
        self.embed = nn.Embedding(vocab_size, d_model)
        self.dropout = nn.Dropout(dropout)
        self.encoder_bias = RelativePositionBias(cfg, bidirectional=True)
        self.encoder_layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(n_encoder_layers))
        self.encoder_norm = RMSNorm(d_model, layer_norm_eps)
        self.decoder_bias = RelativePositionBias(cfg, bidirectional=False)
        self.decoder_layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(n_decoder_layers))
        self.decoder_norm = RMSNorm(d_model, layer_norm_eps)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """T5's init (module docstring); std factors follow each matrix's fan-in as Mesh TF does."""
        cfg = self.cfg
        if isinstance(module, Attention):
            nn.init.normal_(module.q.weight, std=(cfg.d_model * cfg.d_kv) ** -0.5)
            nn.init.normal_(module.k.weight, std=cfg.d_model**-0.5)
            nn.init.normal_(module.v.weight, std=cfg.d_model**-0.5)
            nn.init.normal_(module.o.weight, std=(cfg.n_heads * cfg.d_kv) ** -0.5)
        elif isinstance(module, FeedForward):
            nn.init.normal_(module.wi.weight, std=cfg.d_model**-0.5)
            nn.init.normal_(module.wo.weight, std=cfg.d_ff**-0.5)
        elif isinstance(module, RelativePositionBias):
            nn.init.normal_(module.table.weight, std=cfg.d_model**-0.5)
        elif module is self:
            nn.init.normal_(self.embed.weight, std=1.0)

    def encode(self, tokens: Tensor, levels: Tensor, slots: Tensor) -> tuple[Tensor, Tensor]:
        """tokens [B, S] (right-padded with 0) -> memory [B, S, D], memory_mask [B, S] (True = real token)."""
        mask = tokens != 0
        bias = encoder_attention_bias(self.encoder_bias, mask)
        x = self.dropout(self.embed(tokens))
        for layer in self.encoder_layers:
            x = layer(x, bias)
        return self.dropout(self.encoder_norm(x)), mask

    def decode(
        self,
        memory: Tensor,
        memory_mask: Tensor,
        tokens: Tensor,
        levels: Tensor,
        slots: Tensor,
        past: list[tuple[Tensor, ...]] | None = None,
        memory_index: Tensor | None = None,
    ) -> tuple[Tensor, list[tuple[Tensor, ...]]]:
        """memory [B, S, D], memory_mask [B, S], tokens [B, T] following the P cached ones
        -> logits [B, T, vocab_size], past (per layer: self k/v [B, H, P + T, d_kv], cross k/v [B, H, S, d_kv]).
        With ``memory_index`` [B] (no past), memory and memory_mask hold U distinct rows and row b reads row
        ``memory_index[b]``."""
        n_past = 0 if past is None else past[0][0].size(2)
        self_bias, cross_bias = decoder_attention_biases(
            self.decoder_bias, memory_mask, n_past, tokens.size(1), memory_index
        )
        x = self.dropout(self.embed(tokens))
        new_past = []
        for i, layer in enumerate(self.decoder_layers):
            layer_past = None if past is None else past[i]
            x, layer_past = layer(x, memory, self_bias, cross_bias, layer_past, memory_index)
            new_past.append(layer_past)
        x = self.dropout(self.decoder_norm(x)) * self.cfg.d_model**-0.5  # T5's rescale before a tied head
        return x @ self.embed.weight.T, new_past
