"""MBGen's PBATransformer: the position-and-behavior-aware encoder-decoder of "Multi-Behavior Generative
Recommendation" (Liu, Hou and McAuley, CIKM 2024), written in plain torch (no transformers library).

MBGen reads a history of interactions, each one a behavior token followed by the item's ID tokens, and generates
the next interaction the same way: first the behavior token, then the ID tokens. The network is a T5-style
encoder-decoder (as Switch Transformers lays it out) with two additions, both keyed on where a token sits inside
its interaction:

    encoder tokens [B, S] -> shared embedding -> dropout
        n_encoder_layers x   x = x + dropout(SelfAttention(RMSNorm(x)))                 bidirectional bias
                             x = x + dropout(FFN(RMSNorm(x) [| behavior embedding]))   dense or experts
        RMSNorm -> dropout                                                        = memory [B, S, D]
    decoder tokens [B, T] -> shared embedding -> dropout
        n_decoder_layers x   x = x + dropout(CausalSelfAttention(RMSNorm(x)))           causal bias
                             x = x + dropout(CrossAttention(RMSNorm(x), memory))        no position bias
                             x = x + dropout(FFN(RMSNorm(x) [| behavior embedding]))   dense or experts
        RMSNorm -> dropout -> * d_model^-0.5 -> @ shared embedding^T             = logits [B, T, vocab_size]

1. Position-routed experts ("sparse" layers, all decoder layers in the paper config). The FFN is a set of
   num_experts = id_levels + 2 T5 DenseReluDense experts, and each token goes to exactly one, fixed by its
   position inside its interaction (the caller's ``slots``): expert 0 for the decoder start token, padding and
   EOS; expert 1 for behavior tokens; expert 1 + l for ID level l. Nothing is learned in the routing, so there
   is no router, no gate value scaling the output and no load-balancing loss. The experts run in a loop over
   experts on the tokens each one owns.
2. Behavior injection (the first two layers of each stack in the paper config). The FFN input is the normed
   hidden state concatenated with a behavior_embedding_dim-wide embedding of the token's interaction behavior,
   so those FFNs (or experts) take d_model + behavior_embedding_dim inputs. Each injection layer owns its table
   of n_behaviors + 1 rows: row 1 + level for ID tokens, row 0 for behavior tokens, start, padding and EOS.

T5 parts: RMSNorm (x / sqrt(mean(x^2) + eps) * weight, eps 1e-6); attention with inner width n_heads * d_kv and
no 1/sqrt(d_kv) scaling, no biases, dropout on the probabilities (`attention_dropout`); a learned relative
position bias table [num_buckets, n_heads] per stack (HF keeps it in the stack's first layer, every layer adds
it): bidirectional buckets in the encoder, causal buckets in decoder self-attention, 32 buckets, max distance
128; a token embedding shared by encoder, decoder and the output head, with T5's d_model^-0.5 rescale before the
tied head.

Interface (the seq2seq contract): ``encode(tokens, levels, slots)`` -> (memory, memory_mask);
``decode(memory, memory_mask, tokens, levels, slots, past, memory_index)`` -> (logits, past); with
``memory_index`` [B] the memory holds the U distinct histories of a batch and decoder row b reads row
``memory_index[b]`` (training: a session's targets share one encoder pass). Token 0 is padding and the
decoder start token, and is masked out as an encoder key (memory_mask = tokens != 0); the decoder needs only its
causal mask. ``past`` is a list (one per decoder layer) of (self_k, self_v, cross_k, cross_v) tensors
[B, H, *, d_kv], batch first, so a beam search can ``index_select`` rows; the cross-attention keys/values are
projected from memory once and cached. With a past of P tokens, the T new tokens sit at positions P .. P+T-1.

Decisions where MBGen's paper, its original code (anananan116/MBGen) and the GAMER authors' port
(wzf2000/GAMER, SeqRec/models/generative/PBATransformer) differ; the paper profile follows the port:
- Numbers: d_model 256, d_ff 512, 6 heads x d_kv 64 (inner 384), 4 + 4 layers, ReLU, behavior embedding 64,
  dense encoder FFNs, experts in decoder layers 0-3, injection in layers 0 and 1 of both stacks: the same in the
  original and the port. Relative-attention max distance 128 is the HF default both inherit.
- Dropout 0.1 (the port); the original's configs use 0.0.
- No user token (the port). The original puts a hashed user token (uid mod 2000) at the front of the encoder
  input, routed to expert 0 with row 0 of the behavior table; the caller's layout here has none.
- Routing by the input token's own position (the port, and the original's encoder): start/pad/EOS -> 0,
  behavior -> 1, ID level l -> 1 + l. The original's *decoder* routes each input token by the position of the
  token it predicts instead (start -> 1, behavior token -> 2, ID level l -> 2 + l, the last ID level -> 0) and
  gives the decoder's behavior token its behavior's row too; the port gives it row 0, as here.
- Row 0 of each behavior table is a learned "no behavior" vector (both codes use a plain nn.Embedding without
  padding_idx), not a zero vector. It meets only expert 0 and expert 1 (and, in a dense injection layer, the
  shared FFN), where it acts as a learned input bias for behavior and special tokens.
- Init follows the port's _init_weights (itself T5's / Mesh TensorFlow's), all normal, mean 0, with std:
  token embedding 1.0; q (d_model * d_kv)^-0.5; k, v d_model^-0.5; o (n_heads * d_kv)^-0.5; relative bias
  tables d_model^-0.5; every FFN, dense or expert, with or without injection: wi and wo d_model^-0.5 (the port's
  MoE-wrapper rule runs after T5's FFN rule and overrides wo's d_ff^-0.5); behavior tables 1.0 (torch's default;
  no rule covers them); RMSNorm weights 1.
- Vocabulary: the port resizes a T5Tokenizer (32,100 word pieces + the SID and behavior tokens), so its tied
  embedding carries ~32k never-used rows (~8.2 M parameters at d_model 256) that also enter the training
  softmax; the GAMER paper's 26.80 M for MBGen (Table 6) presumably includes them. Here the vocabulary is only
  the caller's tokens (paper profile: 12,524,416 + 256 * vocab_size parameters for 3 behaviors, 4 ID levels).
- The port's unused options (shared expert with half-width outputs, a 2-expert "behavior only" split) and its
  router z-/aux-loss terms (hard-coded to 0) are left out. Masked attention logits get finfo.min (HF), not
  -inf, so a fully masked row gives a uniform softmax rather than NaN. The logit temperature of the authors'
  loss is the caller's business.

The T5 building blocks (RMS norm, unscaled attention, relative position bias, mask bias) are TIGER's
(`baselines.tiger`); only the position-and-behavior-aware feed-forward and the routing are MBGen's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.tiger import (
    Attention,
    RelativePositionBias,
    RMSNorm,
    decoder_attention_biases,
    encoder_attention_bias,
    memory_keys_values,
)


def route(levels: Tensor, slots: Tensor) -> tuple[Tensor, Tensor]:
    """Per-token ``levels``, ``slots`` [B, L] (contract meaning) -> (expert index, behavior-table row) [B, L].

    Expert = slot + 1: start/pad/EOS (slot -1) -> 0, behavior token (0) -> 1, ID level l -> 1 + l.
    Behavior row = 1 + level for ID tokens, 0 for behavior tokens and specials.
    """
    return slots + 1, torch.where(slots >= 1, levels + 1, torch.zeros_like(levels))


@dataclass
class PBAConfig:
    vocab_size: int
    n_behaviors: int
    id_levels: int
    d_model: int = 256
    d_ff: int = 512
    d_kv: int = 64
    n_heads: int = 6
    n_encoder_layers: int = 4
    n_decoder_layers: int = 4
    dropout: float = 0.1
    num_buckets: int = 32
    max_distance: int = 128
    layer_norm_eps: float = 1e-6
    behavior_embedding_dim: int = 64
    sparse_encoder_layers: list[int] = field(default_factory=list)
    sparse_decoder_layers: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    behavior_layers_encoder: list[int] = field(default_factory=lambda: [0, 1])
    behavior_layers_decoder: list[int] = field(default_factory=lambda: [0, 1])
    attention_dropout: float | None = None  # on the attention probabilities; None: ``dropout``, as in T5

    @property
    def attention_dropout_p(self) -> float:
        return self.dropout if self.attention_dropout is None else self.attention_dropout

    @property
    def num_experts(self) -> int:
        return self.id_levels + 2  # start/pad/EOS, behavior token, one per ID level


class DenseReluDense(nn.Module):
    """T5's FFN (one expert): [N, d_in] -> d_ff, ReLU, dropout -> [N, d_model]."""

    def __init__(self, d_in: int, cfg: PBAConfig) -> None:
        super().__init__()
        self.wi = nn.Linear(d_in, cfg.d_ff, bias=False)
        self.wo = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.wo(self.dropout(F.relu(self.wi(x))))


class PositionBehaviorFFN(nn.Module):
    """The PBA feed-forward: one dense FFN or num_experts position-routed ones, optionally fed the token's
    behavior embedding next to its hidden state (module docstring, items 1 and 2)."""

    def __init__(self, cfg: PBAConfig, sparse: bool, behavior_injection: bool) -> None:
        super().__init__()
        d_in = cfg.d_model + (cfg.behavior_embedding_dim if behavior_injection else 0)
        self.behavior = nn.Embedding(cfg.n_behaviors + 1, cfg.behavior_embedding_dim) if behavior_injection else None
        self.experts = nn.ModuleList(DenseReluDense(d_in, cfg) for _ in range(cfg.num_experts if sparse else 1))

    def forward(self, x: Tensor, expert: Tensor, behavior: Tensor) -> Tensor:
        """x [B, L, D] (normed), expert, behavior [B, L] long (see ``route``) -> [B, L, D]."""
        if self.behavior is not None:
            x = torch.cat([x, self.behavior(behavior)], dim=-1)
        if len(self.experts) == 1:
            return self.experts[0](x)
        out = x.new_zeros(*x.shape[:-1], self.experts[0].wo.out_features)
        for e, ffn in enumerate(self.experts):  # <= id_levels + 2 experts, each on the tokens routed to it
            routed = expert == e
            out[routed] = ffn(x[routed]).to(out.dtype)  # .to: expert outputs may be half under autocast
        return out


class EncoderLayer(nn.Module):
    """Pre-norm self-attention and PBA feed-forward blocks, each followed by dropout and the residual add."""

    def __init__(self, cfg: PBAConfig, sparse: bool, behavior_injection: bool) -> None:
        super().__init__()
        self.attn_norm, self.attn = RMSNorm(cfg.d_model, cfg.layer_norm_eps), Attention(cfg)
        self.ff_norm = RMSNorm(cfg.d_model, cfg.layer_norm_eps)
        self.ff = PositionBehaviorFFN(cfg, sparse, behavior_injection)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, bias: Tensor, expert: Tensor, behavior: Tensor) -> Tensor:
        """x [B, S, D], bias [B, H, S, S], expert / behavior [B, S] -> [B, S, D]."""
        h = self.attn_norm(x)
        x = x + self.dropout(self.attn(h, *self.attn.project_kv(h), bias))
        return x + self.dropout(self.ff(self.ff_norm(x), expert, behavior))


class DecoderLayer(nn.Module):
    """Pre-norm causal self-attention, cross-attention and PBA feed-forward blocks, with a key/value cache."""

    def __init__(self, cfg: PBAConfig, sparse: bool, behavior_injection: bool) -> None:
        super().__init__()
        self.self_norm, self.self_attn = RMSNorm(cfg.d_model, cfg.layer_norm_eps), Attention(cfg)
        self.cross_norm, self.cross_attn = RMSNorm(cfg.d_model, cfg.layer_norm_eps), Attention(cfg)
        self.ff_norm = RMSNorm(cfg.d_model, cfg.layer_norm_eps)
        self.ff = PositionBehaviorFFN(cfg, sparse, behavior_injection)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        self_bias: Tensor,
        cross_bias: Tensor,
        expert: Tensor,
        behavior: Tensor,
        past: tuple[Tensor, ...] | None,
        memory_index: Tensor | None = None,
    ) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor, Tensor]]:
        """x [B, T, D] (new tokens), memory [B or U, S, D], self_bias [1, H, T, P + T], cross_bias [B, 1, 1, S],
        expert / behavior [B, T], past None or (self_k, self_v [B, H, P, d_kv], cross_k, cross_v [B, H, S, d_kv])
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
        x = x + self.dropout(self.ff(self.ff_norm(x), expert, behavior))
        return x, (k, v, cross_k, cross_v)


class PBATransformer(nn.Module):
    """MBGen's position-and-behavior-aware encoder-decoder (module docstring). Defaults are the paper profile."""

    def __init__(
        self,
        *,
        vocab_size: int,
        n_behaviors: int,
        id_levels: int,
        d_model: int = 256,
        d_ff: int = 512,
        d_kv: int = 64,
        n_heads: int = 6,
        n_encoder_layers: int = 4,
        n_decoder_layers: int = 4,
        dropout: float = 0.1,
        num_buckets: int = 32,
        max_distance: int = 128,
        layer_norm_eps: float = 1e-6,
        behavior_embedding_dim: int = 64,
        sparse_encoder_layers: list[int] | tuple[int, ...] = (),
        sparse_decoder_layers: list[int] | tuple[int, ...] = (0, 1, 2, 3),
        behavior_layers_encoder: list[int] | tuple[int, ...] = (0, 1),
        behavior_layers_decoder: list[int] | tuple[int, ...] = (0, 1),
        attention_dropout: float | None = None,
    ) -> None:
        super().__init__()
        self.cfg = cfg = PBAConfig(
            vocab_size=vocab_size, n_behaviors=n_behaviors, id_levels=id_levels, d_model=d_model, d_ff=d_ff,
            d_kv=d_kv, n_heads=n_heads, n_encoder_layers=n_encoder_layers, n_decoder_layers=n_decoder_layers,
            dropout=dropout, num_buckets=num_buckets, max_distance=max_distance, layer_norm_eps=layer_norm_eps,
            behavior_embedding_dim=behavior_embedding_dim, sparse_encoder_layers=list(sparse_encoder_layers),
            sparse_decoder_layers=list(sparse_decoder_layers), behavior_layers_encoder=list(behavior_layers_encoder),
            behavior_layers_decoder=list(behavior_layers_decoder), attention_dropout=attention_dropout,
        )  # fmt: skip
        for name, n in [
            ("sparse_encoder_layers", n_encoder_layers),
            ("behavior_layers_encoder", n_encoder_layers),
            ("sparse_decoder_layers", n_decoder_layers),
            ("behavior_layers_decoder", n_decoder_layers),
        ]:
            if any(not 0 <= i < n for i in getattr(cfg, name)):
                raise ValueError(f"{name} {getattr(cfg, name)} names a layer outside 0..{n - 1}")
        self.embed = nn.Embedding(vocab_size, d_model)
        self.dropout = nn.Dropout(dropout)
        self.encoder_bias = RelativePositionBias(cfg, bidirectional=True)
        self.encoder_layers = nn.ModuleList(
            EncoderLayer(cfg, i in cfg.sparse_encoder_layers, i in cfg.behavior_layers_encoder)
            for i in range(n_encoder_layers)
        )
        self.encoder_norm = RMSNorm(d_model, layer_norm_eps)
        self.decoder_bias = RelativePositionBias(cfg, bidirectional=False)
        self.decoder_layers = nn.ModuleList(
            DecoderLayer(cfg, i in cfg.sparse_decoder_layers, i in cfg.behavior_layers_decoder)
            for i in range(n_decoder_layers)
        )
        self.decoder_norm = RMSNorm(d_model, layer_norm_eps)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """The port's init (module docstring): std by fan-in as Mesh TensorFlow, FFNs all at d_model^-0.5."""
        cfg = self.cfg
        if isinstance(module, Attention):
            nn.init.normal_(module.q.weight, std=(cfg.d_model * cfg.d_kv) ** -0.5)
            nn.init.normal_(module.k.weight, std=cfg.d_model**-0.5)
            nn.init.normal_(module.v.weight, std=cfg.d_model**-0.5)
            nn.init.normal_(module.o.weight, std=(cfg.n_heads * cfg.d_kv) ** -0.5)
        elif isinstance(module, DenseReluDense):
            nn.init.normal_(module.wi.weight, std=cfg.d_model**-0.5)
            nn.init.normal_(module.wo.weight, std=cfg.d_model**-0.5)
        elif isinstance(module, PositionBehaviorFFN) and module.behavior is not None:
            nn.init.normal_(module.behavior.weight, std=1.0)
        elif isinstance(module, RelativePositionBias):
            nn.init.normal_(module.table.weight, std=cfg.d_model**-0.5)
        elif module is self:
            nn.init.normal_(self.embed.weight, std=1.0)

    def encode(self, tokens: Tensor, levels: Tensor, slots: Tensor) -> tuple[Tensor, Tensor]:
        """tokens, levels, slots [B, S] (right-padded) -> memory [B, S, D], memory_mask [B, S] (True = real token)."""
        mask = tokens != 0
        bias = encoder_attention_bias(self.encoder_bias, mask)
        expert, behavior = route(levels, slots)
        x = self.dropout(self.embed(tokens))
        for layer in self.encoder_layers:
            x = layer(x, bias, expert, behavior)
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
        """memory [B, S, D], memory_mask [B, S], tokens / levels / slots [B, T] following the P cached ones
        -> logits [B, T, vocab_size], past (per layer: self k/v [B, H, P + T, d_kv], cross k/v [B, H, S, d_kv]).
        With ``memory_index`` [B] (no past), memory and memory_mask hold U distinct rows and row b reads row
        ``memory_index[b]``."""
        n_past = 0 if past is None else past[0][0].size(2)
        self_bias, cross_bias = decoder_attention_biases(
            self.decoder_bias, memory_mask, n_past, tokens.size(1), memory_index
        )
        expert, behavior = route(levels, slots)
        x = self.dropout(self.embed(tokens))
        new_past = []
        for i, layer in enumerate(self.decoder_layers):
            layer_past = None if past is None else past[i]
            x, layer_past = layer(x, memory, self_bias, cross_bias, expert, behavior, layer_past, memory_index)
            new_past.append(layer_past)
        x = self.dropout(self.decoder_norm(x)) * self.cfg.d_model**-0.5  # T5's rescale before a tied head
        return x @ self.embed.weight.T, new_past
