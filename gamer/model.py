"""The GAMER decoder (paper Section 3.4, Appendix C): Qwen3 blocks with a cross-level behavior
interaction layer and position-and-behavior-aware experts, in one file read top to bottom.

Token layout (shared with the tokenizer, the trainer and beam search): a sequence is a run of
interactions, each ``[behavior token, ID level 1, ..., ID level L]``. Token 0 is pad, 1..|B| are
behavior tokens, ID tokens follow. Beside the tokens the caller gives, per token:

    tokens     <pad> <p3s>  a7   b2  <click> a1   b9  <p3s>  a7   b2
    levels      -1    0     0    0    1     1    1    0     0    0     behavior level of the interaction
    slots       -1    0     1    2    0     1    2    0     1    2     0 = behavior token, l = ID level l
    positions    0    0     1    2    3     4    5    6     7    8     RoPE ids over real tokens
    sessions    -1    0     0    0    0     0    0    1     1    1     session index (session-wise mask only)

Where GAMER departs from plain Qwen3 the line says so, with the paper's equation. Where the paper
and the authors' code disagree we follow the code (reference notes §5) and say so, except for one
bug: the authors' cross-level layer lets a query with no allowed key attend every position, future
ones included; here such a query gets exactly zero (see `attend`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

PAD = 0  # token id of padding in the shared layout


# ---- config -------------------------------------------------------------------------------------


@dataclass
class DecoderConfig:
    """Hyperparameters of `GenerativeDecoder`. Defaults are the authors' GAMER config (reference §5.2).

    Layer tuples hold block indices (0-based). Use the presets `qwen3`, `gamer` and
    `gamer_every_block` rather than spelling layouts by hand.
    """

    vocab_size: int
    n_behaviors: int  # |B|; behavior levels run 0 (lowest, e.g. p3s) .. |B| - 1
    id_levels: int  # L: ID tokens per item (4 for semantic IDs)
    d_model: int = 256
    n_layers: int = 8
    n_heads: int = 6
    n_kv_heads: int = 3  # grouped-query attention: each key/value head serves n_heads / n_kv_heads query heads
    head_dim: int = 64  # n_heads * head_dim = 384 > d_model, as in Qwen3
    d_ff: int = 512  # hidden width of the dense MLP and of every expert
    rope_theta: float = 1e6
    rms_eps: float = 1e-6
    # Authors' GAMER config; their Qwen3 baseline uses 0.1 attention dropout and no residual dropout.
    dropout: float = 0.2  # residual dropout and dropout inside the MLP / experts
    attention_dropout: float = 0.2  # on attention probabilities
    cross_layers: tuple[int, ...] = (4, 5, 6, 7)  # blocks with a cross-level behavior interaction layer
    moe_layers: tuple[int, ...] | None = None  # blocks whose MLP is the position-and-behavior MoE; None = all
    injection_layers: tuple[int, ...] = (0, 1, 2, 3)  # MoE blocks that concatenate E_B(b) to ID tokens (Eq. 5)
    behavior_dim: int = 64  # width of the injected behavior embedding
    session_wise: bool = False  # Appendix C masks; session-wise positions come from the caller
    tie_embeddings: bool = True
    init_std: float = 0.02

    def __post_init__(self) -> None:
        for name in ("cross_layers", "moe_layers", "injection_layers"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, tuple(int(i) for i in value))
        self._validate()

    @property
    def expert_layers(self) -> tuple[int, ...]:
        """Blocks whose MLP is the MoE, with `moe_layers=None` resolved to every block."""
        return tuple(range(self.n_layers)) if self.moe_layers is None else self.moe_layers

    @classmethod
    def qwen3(cls, vocab_size: int, n_behaviors: int, id_levels: int, **overrides: object) -> DecoderConfig:
        """The paper's plain Qwen3 row (reference §5.11): dense SwiGLU, no cross layer, no injection."""
        layout: dict[str, object] = dict(
            cross_layers=(), moe_layers=(), injection_layers=(), dropout=0.0, attention_dropout=0.1
        )
        return cls(vocab_size=vocab_size, n_behaviors=n_behaviors, id_levels=id_levels, **{**layout, **overrides})

    @classmethod
    def gamer(cls, vocab_size: int, n_behaviors: int, id_levels: int, **overrides: object) -> DecoderConfig:
        """The authors' layout (reference §5.3): MoE in every block, behavior injection in the first half,
        the cross-level layer in the second half ((0-3) and (4-7) at 8 blocks)."""
        n_layers = int(overrides.get("n_layers", cls.n_layers))
        half = n_layers // 2
        layout: dict[str, object] = dict(
            cross_layers=tuple(range(half, n_layers)), moe_layers=None, injection_layers=tuple(range(half))
        )
        return cls(vocab_size=vocab_size, n_behaviors=n_behaviors, id_levels=id_levels, **{**layout, **overrides})

    @classmethod
    def gamer_every_block(cls, vocab_size: int, n_behaviors: int, id_levels: int, **overrides: object) -> DecoderConfig:
        """The paper's Figure 1: every block has the cross-level layer and the behavior-injected MoE."""
        n_layers = int(overrides.get("n_layers", cls.n_layers))
        every = tuple(range(n_layers))
        layout: dict[str, object] = dict(cross_layers=every, moe_layers=None, injection_layers=every)
        return cls(vocab_size=vocab_size, n_behaviors=n_behaviors, id_levels=id_levels, **{**layout, **overrides})

    def _validate(self) -> None:
        positive = ("vocab_size", "n_behaviors", "id_levels", "d_model", "n_layers", "n_heads", "n_kv_heads")
        for name in (*positive, "head_dim", "d_ff", "behavior_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"DecoderConfig.{name} must be a positive integer, got {getattr(self, name)}")
        if self.vocab_size < 1 + self.n_behaviors + self.id_levels:
            raise ValueError(
                f"DecoderConfig.vocab_size={self.vocab_size} cannot hold pad, {self.n_behaviors} behavior tokens "
                f"and {self.id_levels} ID levels; pass the tokenizer's vocabulary size"
            )
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"DecoderConfig.n_heads={self.n_heads} must be a multiple of n_kv_heads={self.n_kv_heads} "
                "(grouped-query attention shares each key/value head among n_heads / n_kv_heads query heads)"
            )
        if self.head_dim % 2:
            raise ValueError(f"DecoderConfig.head_dim={self.head_dim} must be even: RoPE rotates pairs of channels")
        for name in ("dropout", "attention_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"DecoderConfig.{name} must lie in [0, 1), got {getattr(self, name)}")
        if self.rope_theta <= 0 or self.rms_eps <= 0 or self.init_std <= 0:
            raise ValueError("DecoderConfig.rope_theta, rms_eps and init_std must be positive")
        for name in ("cross_layers", "moe_layers", "injection_layers"):
            layers = getattr(self, name)
            if layers is None:
                continue
            outside = [i for i in layers if not 0 <= i < self.n_layers]
            if outside:
                raise ValueError(
                    f"DecoderConfig.{name}={layers} names blocks {outside} outside 0..{self.n_layers - 1}; "
                    "the presets (DecoderConfig.gamer(..., n_layers=n)) lay layers out for any depth"
                )
            if len(set(layers)) != len(layers):
                raise ValueError(f"DecoderConfig.{name}={layers} repeats a block")
        dense = sorted(set(self.injection_layers) - set(self.expert_layers))
        if dense:
            raise ValueError(
                f"DecoderConfig.injection_layers names blocks {dense} that are not MoE blocks (moe_layers="
                f"{self.moe_layers}); behavior injection feeds the experts (Eq. 5), so add them to moe_layers"
            )


# ---- per-token facts and the attention masks ----------------------------------------------------


@dataclass(frozen=True)
class TokenMeta:
    """What the masks and the expert router know about each token; every field is ``[B, T]`` long/bool.

    ``items`` numbers the interactions of a row (each behavior token, slot 0, opens the next one): the
    "same interaction" identity of the session-wise mask. The KV cache keeps these for its keys.
    """

    levels: Tensor
    slots: Tensor
    sessions: Tensor
    items: Tensor
    is_pad: Tensor

    @classmethod
    def of(cls, tokens: Tensor, levels: Tensor, slots: Tensor, sessions: Tensor, after: TokenMeta | None) -> TokenMeta:
        """Facts of new tokens; ``after`` (the cached keys) continues the interaction count across steps."""
        opens_item = (slots == 0).long()
        items = opens_item.cumsum(1) if after is None else after.items[:, -1:] + opens_item.cumsum(1)
        return cls(levels, slots, sessions, items, tokens == PAD)

    def _map(self, fn: Callable[[Tensor], Tensor]) -> TokenMeta:
        return TokenMeta(*(fn(getattr(self, f.name)) for f in fields(self)))

    def cat(self, later: TokenMeta) -> TokenMeta:
        return TokenMeta(*(torch.cat((getattr(self, f.name), getattr(later, f.name)), 1) for f in fields(self)))

    def last(self, n: int) -> TokenMeta:
        return self._map(lambda x: x[:, x.size(1) - n :])

    def index_select(self, index: Tensor) -> TokenMeta:
        return self._map(lambda x: x.index_select(0, index))

    def repeat_interleave(self, n: int) -> TokenMeta:
        return self._map(lambda x: x.repeat_interleave(n, 0))


def _real_key_at_or_before(keys: TokenMeta, n_queries: int) -> Tensor:
    """``[B, T, S]``: key j is not pad and comes at or before query i (the queries are the last T keys)."""
    s = keys.levels.size(1)
    index = torch.arange(s, device=keys.levels.device)
    causal = index[None, :] <= index[s - n_queries :, None]
    return causal[None] & ~keys.is_pad[:, None, :]


def self_attention_mask(keys: TokenMeta, n_queries: int, session_wise: bool) -> Tensor:
    """``[B, T, S]`` boolean: query i (one of the last T keys) may attend key j.

    Plain (Eq. 1): j at or before i. Session-wise (Appendix C, Eq. 9; reference §5.12): j in the same
    interaction and at or before i, or j in a strictly earlier session. Eq. 9 says "preceding sessions
    only"; the within-interaction part is the authors' and is what lets ID tokens be decoded. Pad keys
    never take part. The causal condition is kept in the session-wise variant too: it changes nothing
    for sessions that never decrease along a row, and it rules out a leak if a caller's do.
    """
    allowed = _real_key_at_or_before(keys, n_queries)
    if session_wise:
        queries = keys.last(n_queries)
        same_item = keys.items[:, None, :] == queries.items[:, :, None]
        earlier_session = keys.sessions[:, None, :] < queries.sessions[:, :, None]
        allowed = allowed & (same_item | earlier_session)
    return allowed


def lower_level_keys(keys: TokenMeta, n_queries: int) -> Tensor:
    """``[B, T, S]``: key j's behavior level is strictly below query i's (the cross-level condition, Eq. 3)."""
    return keys.levels[:, None, :] < keys.last(n_queries).levels[:, :, None]


def cross_level_mask(keys: TokenMeta, n_queries: int, session_wise: bool) -> Tensor:
    """``[B, T, S]`` boolean: query i may attend key j in the cross-level behavior interaction layer.

    Eq. 3: j at or before i and level(j) < level(i), strictly, so the tokens of one interaction (which
    share a level) never see each other, and a lowest-level token sees nothing. Session-wise (reference
    §5.12): j must also be in a strictly earlier session. Pad keys never take part.
    """
    allowed = _real_key_at_or_before(keys, n_queries) & lower_level_keys(keys, n_queries)
    if session_wise:
        allowed = allowed & (keys.sessions[:, None, :] < keys.last(n_queries).sessions[:, :, None])
    return allowed


# ---- norm, rotary embedding, attention ----------------------------------------------------------


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned scale, computed in at least float32."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """``[..., dim] -> [..., dim]``."""
        dtype = x.dtype
        x = x.float() if dtype in (torch.float16, torch.bfloat16) else x
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rotary_cos_sin(positions: Tensor, head_dim: int, theta: float, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """RoPE tables from explicit position ids: ``[B, T] -> cos, sin [B, 1, T, head_dim]``.

    Angles are computed in at least float32 (HF Qwen3 does so under bf16), and each frequency appears
    twice, matching `apply_rotary`. Explicit ids let left-padded prompts and the session-wise positions
    of Appendix C (Eq. 8) use the same code.
    """
    angle_dtype = torch.promote_types(dtype, torch.float32)
    exponent = torch.arange(0, head_dim, 2, device=positions.device, dtype=angle_dtype) / head_dim
    angles = positions[..., None].to(angle_dtype) * theta**-exponent
    angles = torch.cat((angles, angles), -1)[:, None]
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate channel pairs (c, c + head_dim / 2) of ``x [B, H, T, head_dim]`` by the position angles."""
    first, second = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-second, first), -1) * sin


# Sequences per piece of an attention with dropout on the CPU (`attend`). A constant, so that the dropout
# masks, drawn piece by piece, depend on the seed alone.
ATTENTION_PIECE = 8


def attend(q: Tensor, k: Tensor, v: Tensor, allowed: Tensor, dropout_p: float, recompute: bool = False) -> Tensor:
    """Grouped-query attention (`attend_dense`). With dropout on the CPU, `DroppedAttention` builds
    ``[B, H, T, S]`` scores, probabilities and their dropped copy (the probabilities and a one-byte mask
    stay for the backward pass: 0.07 GB per paper-size sequence over the 12 attention layers): the batch
    goes through in pieces of `ATTENTION_PIECE` sequences and, under ``recompute``, autograd keeps each
    piece's inputs only and runs it again in the backward pass."""
    b = q.size(0)
    if dropout_p == 0.0 or q.device.type != "cpu" or b <= ATTENTION_PIECE:
        return attend_dense(q, k, v, allowed, dropout_p)
    pieces = []
    for start in range(0, b, ATTENTION_PIECE):
        args = tuple(x[start : start + ATTENTION_PIECE] for x in (q, k, v, allowed))
        if recompute:
            pieces.append(checkpoint(attend_dense, *args, dropout_p, use_reentrant=False))
        else:
            pieces.append(attend_dense(*args, dropout_p))
    return torch.cat(pieces)


def keep_mask(shape: torch.Size, p: float, device: torch.device) -> tuple[Tensor, float]:
    """A dropout keep mask of ``shape`` (bool) and the scale of what it keeps, ``1 / P(keep)``.

    Each element compares 16 random bits with ``round(p * 2^16)``: one 64-bit draw serves four elements,
    about ten times cheaper on the CPU than `torch.bernoulli` (the mask of an attention at paper size has
    6 x 505 x 505 elements a sequence per layer). The drop probability is ``p`` to within 2^-17, and the
    scale uses the exact one, so the kept values stay unbiased.
    """
    threshold = round(p * 65536)
    words = torch.empty((shape.numel() + 3) // 4, dtype=torch.int64, device=device).random_(-(2**63), None)
    keep = words.view(torch.int16)[: shape.numel()].view(shape) >= threshold - 32768
    return keep, 65536 / (65536 - threshold)


class DroppedAttention(torch.autograd.Function):
    """Attention with dropout on the probabilities, for the CPU, where torch has no fused kernel for it.

    ``q [B, H_kv, G * T, hd]`` (each key/value head's G query heads folded, `_fold_query_groups`),
    ``k, v [B, H_kv, S, hd]``, ``opened [B, T, S]`` (bool, no empty row; query row g * T + i reads row i)
    -> ``[B, H_kv, G * T, hd]``. torch's unfused path keeps the probabilities, their dropped copy and a
    float mask for the backward pass and makes a dozen passes over ``[B, H, T, S]``; this keeps the
    probabilities and a one-byte mask (`keep_mask`) and makes fewer. Both scales apply to the small
    ``[., T, hd]`` side of a matmul, and the softmax backward's row sums are ``rowsum(d_out * out)`` (as in
    FlashAttention), never a pass. Every pass is one torch vectorises on the CPU: the mask is added as
    a bias (`_mask_folded_`), and dropping multiplies by the keep mask as floats; a boolean
    ``masked_fill`` over ``[B, H, T, S]``, broadcast or not, runs 2-15x slower. The values are those of
    ``masked_fill`` exactly.
    """

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, opened: Tensor, p: float) -> Tensor:  # type: ignore[override]
        scale = q.size(-1) ** -0.5
        probs = _mask_folded_((q * scale) @ k.transpose(-1, -2), opened).softmax(-1)
        keep, kept_scale = keep_mask(probs.shape, p, q.device)
        out = (keep.to(probs.dtype).mul_(probs) @ v).mul_(kept_scale)
        ctx.save_for_backward(q, k, v, probs, keep, out)
        ctx.scales = scale, kept_scale
        return out

    @staticmethod
    def backward(ctx, d_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        q, k, v, probs, keep, out = ctx.saved_tensors
        scale, kept_scale = ctx.scales
        kept = keep.to(probs.dtype)
        d_v = ((kept * probs).transpose(-1, -2) @ d_out).mul_(kept_scale)
        d_probs = ((d_out * kept_scale) @ v.transpose(-1, -2)).mul_(kept)
        del kept
        d_scores = d_probs.sub_((d_out * out).sum(-1, keepdim=True)).mul_(probs)  # softmax backward
        return (d_scores @ k).mul_(scale), (d_scores.transpose(-1, -2) @ q).mul_(scale), d_v, None, None


def attend_dense(q: Tensor, k: Tensor, v: Tensor, allowed: Tensor, dropout_p: float) -> Tensor:
    """Grouped-query scaled dot-product attention under an explicit boolean mask.

    ``q [B, H, T, hd]``, ``k, v [B, H_kv, S, hd]``, ``allowed [B, T, S]`` -> ``[B, T, H * hd]``.
    Query head h reads key/value head h // (H / H_kv). A query row with no allowed key outputs exactly
    zero. The authors' code leaves such rows at finfo.min, where the softmax turns uniform over every
    position, future tokens and pads included (reference §5.5): a leak we do not copy. To stay free of
    NaN, such a row is computed over all keys and then overwritten with zeros.
    """
    folded, opened, has_key = _fold_query_groups(q, k.size(1), allowed)
    if dropout_p > 0.0 and q.device.type == "cpu":
        out = DroppedAttention.apply(folded, k, v, opened, dropout_p)
    else:
        mask = opened.repeat(1, folded.size(2) // opened.size(1), 1)[:, None]  # query row g * T + i reads row i
        out = F.scaled_dot_product_attention(folded, k, v, attn_mask=mask, dropout_p=dropout_p)
    return _unfold_query_groups(out, q.shape, has_key)


def _fold_query_groups(q: Tensor, h_kv: int, allowed: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``q [B, H, T, hd]`` with each key/value head's query group folded into the query axis,
    ``[B, H_kv, groups * T, hd]`` (query row g * T + i of key/value head j is head j * groups + g), so keys
    and values are read once, never copied per query head: what makes grouped-query decoding cheap. Also
    ``allowed`` with every row that has no allowed key opened to all keys (to stay free of NaN), and
    ``has_key [B, T, 1]`` to zero those rows afterwards (`_unfold_query_groups`)."""
    b, h, t, hd = q.shape
    has_key = allowed.any(-1, keepdim=True)
    return q.reshape(b, h_kv, h // h_kv * t, hd), allowed | ~has_key, has_key


def _mask_folded_(scores: Tensor, opened: Tensor) -> Tensor:
    """``scores [B, H_kv, G * T, S]`` of folded queries (`_fold_query_groups`) with -inf where ``opened
    [B, T, S]`` is false, in place: a 0 / -inf bias built once per sequence and added broadcast over
    heads and query groups. The values are a boolean ``masked_fill``'s, which the CPU does not vectorise
    when broadcast (105 ms against 30 ms for the add at paper size)."""
    (b, h_kv, r, s), t = scores.shape, opened.size(1)
    bias = torch.zeros(opened.shape, dtype=scores.dtype, device=scores.device).masked_fill_(~opened, -torch.inf)
    return scores.view(b, h_kv, r // t, t, s).add_(bias[:, None, None]).view(b, h_kv, r, s)


def _unfold_query_groups(out: Tensor, shape: torch.Size, has_key: Tensor) -> Tensor:
    """The inverse of `_fold_query_groups` for the attention's output: ``[B, T, H * hd]`` of the queries of
    ``shape`` ``[B, H, T, hd]``, exactly zero where a query had no allowed key."""
    return out.reshape(shape).masked_fill(~has_key[:, None], 0.0).transpose(1, 2).flatten(2)


@dataclass(frozen=True)
class SharedPrompt:
    """One attention layer's past keys and values for rows that continue shared prompts (the beams of
    a beam search): each prompt's ``k, v [P, H_kv, S_p, hd]`` kept once, and each of the ``P * n``
    rows' own later ones ``[P * n, H_kv, s, hd]``. Row r continues prompt r // n."""

    prompt: KV
    own: KV

    def rows(self, fn: Callable[[Tensor], Tensor]) -> SharedPrompt:
        """``fn`` applied to the rows' own keys and values (the prompt's stay as they are)."""
        return SharedPrompt(self.prompt, (fn(self.own[0]), fn(self.own[1])))

    def expanded(self) -> KV:
        """Every row's keys and values in full, ``[P * n, H_kv, S_p + s, hd]``."""
        n = self.own[0].size(0) // self.prompt[0].size(0)
        return tuple(torch.cat((p.repeat_interleave(n, 0), o), 2) for p, o in zip(self.prompt, self.own, strict=True))


KV = tuple[Tensor, Tensor]
Past = KV | SharedPrompt  # one attention layer's cached keys and values


def _by_prompt(x: Tensor, p: int) -> Tensor:
    """``[P * n, H_kv, R, X] -> [P, H_kv, n * R, X]``: the rows of each prompt side by side."""
    b, h_kv, r, d = x.shape
    return x.view(p, b // p, h_kv, r, d).transpose(1, 2).reshape(p, h_kv, b // p * r, d)


def _by_row(x: Tensor, b: int) -> Tensor:
    """The inverse of `_by_prompt`: ``[P, H_kv, n * R, X] -> [P * n, H_kv, R, X]`` for ``b = P * n`` rows."""
    p, h_kv, nr, d = x.shape
    n = b // p
    return x.view(p, h_kv, n, nr // n, d).transpose(1, 2).reshape(b, h_kv, nr // n, d)


def attend_after_prompt(q: Tensor, past: SharedPrompt, allowed: Tensor, dropout_p: float) -> Tensor:
    """`attend_dense` for rows that continue shared prompts, without copying a prompt's keys per row.

    ``q [P * n, H, T, hd]``, ``past`` (this step's keys and values appended to the rows' own),
    ``allowed [P * n, T, S_p + s]`` -> ``[P * n, T, H * hd]``. The n rows of a prompt score its keys in
    one matmul (their queries side by side), their own keys apart; one softmax runs over both parts.
    Beam search decodes this way: the prompt's keys are read once per prompt, never repeated per beam
    (`KVCache.repeat_interleave`), and a beam's reorder moves only the few keys it generated.
    """
    (k_p, v_p), (k_o, v_o) = past.prompt, past.own
    b, hd, (p, h_kv, s_p) = q.size(0), q.size(-1), k_p.shape[:3]
    folded, opened, has_key = _fold_query_groups(q, h_kv, allowed)
    scores = torch.cat((_by_row(_by_prompt(folded, p) @ k_p.transpose(-1, -2), b), folded @ k_o.transpose(-1, -2)), -1)
    scores = _mask_folded_((scores * hd**-0.5).to(torch.promote_types(scores.dtype, torch.float32)), opened)
    probs = F.dropout(scores.softmax(-1), dropout_p).to(v_o.dtype)
    out = _by_row(_by_prompt(probs[..., :s_p], p) @ v_p, b) + probs[..., s_p:] @ v_o
    return _unfold_query_groups(out, q.shape, has_key)


class QwenAttention(nn.Module):
    """Qwen3's attention machinery: grouped-query heads, no biases, per-head RMSNorm on q and k before
    RoPE. `SelfAttention` and `CrossLevelBehaviorAttention` each own one set of these weights."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.n_kv_heads, config.head_dim
        self.q_proj = nn.Linear(config.d_model, config.n_heads * config.head_dim, bias=False)
        self.k_proj = nn.Linear(config.d_model, config.n_kv_heads * config.head_dim, bias=False)
        self.v_proj = nn.Linear(config.d_model, config.n_kv_heads * config.head_dim, bias=False)
        self.o_proj = nn.Linear(config.n_heads * config.head_dim, config.d_model, bias=False)
        self.q_norm = RMSNorm(config.head_dim, config.rms_eps)
        self.k_norm = RMSNorm(config.head_dim, config.rms_eps)
        self.attention_dropout = config.attention_dropout
        self.recompute = False  # set by `GenerativeDecoder.recompute`

    def _attend(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        cos: Tensor,
        sin: Tensor,
        allowed: Tensor,
        past: Past | None,
    ) -> tuple[Tensor, Past]:
        """Projected ``q [B, T, H * hd]``, ``k, v [B, T, H_kv * hd]`` -> ``[B, T, H * hd]``, (k, v) with the past."""
        b, t, _ = q.shape
        q = apply_rotary(self.q_norm(q.view(b, t, self.n_heads, self.head_dim)).transpose(1, 2), cos, sin)
        k = apply_rotary(self.k_norm(k.view(b, t, self.n_kv_heads, self.head_dim)).transpose(1, 2), cos, sin)
        v = v.view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        dropout_p = self.attention_dropout if self.training else 0.0
        if isinstance(past, SharedPrompt):
            present = SharedPrompt(past.prompt, (torch.cat((past.own[0], k), 2), torch.cat((past.own[1], v), 2)))
            return attend_after_prompt(q, present, allowed, dropout_p), present
        if past is not None:
            k, v = torch.cat((past[0], k), 2), torch.cat((past[1], v), 2)
        return attend(q, k, v, allowed, dropout_p, self.recompute and torch.is_grad_enabled()), (k, v)


class SelfAttention(QwenAttention):
    """Qwen3 causal self-attention (Eq. 1; Eq. 9 under the session-wise mask)."""

    def forward(
        self, x: Tensor, cos: Tensor, sin: Tensor, allowed: Tensor, past: Past | None = None
    ) -> tuple[Tensor, Past]:
        """``x [B, T, D]`` (normed), ``allowed [B, T, S]`` over the cached keys then these T
        -> ``[B, T, D]`` and this layer's keys/values ``[B, H_kv, S, hd]`` for the cache."""
        attended, present = self._attend(self.q_proj(x), self.k_proj(x), self.v_proj(x), cos, sin, allowed, past)
        return self.o_proj(attended), present


class CrossLevelBehaviorAttention(QwenAttention):
    """Cross-level behavior interaction layer (Eqs. 2-4): a second attention, with its own weights, in
    which each token reads only earlier tokens of strictly lower behavior levels, gated by SiLU(x W_G).

    Not in plain Qwen3. Same kind of projections, q/k norms and RoPE positions as `SelfAttention` (the
    RoPE is the authors' choice; the paper does not mention it).
    """

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__(config)
        # Eq. 2: behavior embeddings E_{B,Q}, E_{B,K}, E_{B,V}, one head_dim slice per head; row 0 = pad.
        self.behavior_q = nn.Embedding(config.n_behaviors + 1, config.n_heads * config.head_dim)
        self.behavior_k = nn.Embedding(config.n_behaviors + 1, config.n_kv_heads * config.head_dim)
        self.behavior_v = nn.Embedding(config.n_behaviors + 1, config.n_kv_heads * config.head_dim)
        self.gate_proj = nn.Linear(config.d_model, config.d_model, bias=False)  # W_G of Eq. 4

    def forward(
        self,
        x: Tensor,
        levels: Tensor,
        cos: Tensor,
        sin: Tensor,
        allowed: Tensor,
        past: Past | None = None,
    ) -> tuple[Tensor, Past]:
        """``x [B, T, D]`` (the RMS-normed sub-layer input), ``levels [B, T]`` (-1 for pad),
        ``allowed [B, T, S]`` from `cross_level_mask` -> ``[B, T, D]`` and (k, v) for the cache."""
        # Eq. 2 adds the embeddings to Q, K, V; like the authors we add them to the projections before
        # the q/k norms and RoPE (reference §5.5).
        rows = levels + 1  # every token of an interaction, its behavior token too, gets its behavior's row
        q = self.q_proj(x) + self.behavior_q(rows)
        k = self.k_proj(x) + self.behavior_k(rows)
        v = self.v_proj(x) + self.behavior_v(rows)
        attended, present = self._attend(q, k, v, cos, sin, allowed, past)
        # Eq. 4: O = (attention W_O) * SiLU(H W_G); H is the normed sub-layer input, as in the authors' code.
        return self.o_proj(attended) * F.silu(self.gate_proj(x)), present


# ---- feed-forward: dense SwiGLU and the position-and-behavior-aware MoE --------------------------


class SwiGLU(nn.Module):
    """Qwen3's gated MLP ``down(dropout(SiLU(gate x) * up x))``, no biases; also one MoE expert."""

    def __init__(self, d_in: int, d_ff: int, d_out: int, dropout: float) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(d_in, d_ff, bias=False)
        self.up_proj = nn.Linear(d_in, d_ff, bias=False)
        self.down_proj = nn.Linear(d_ff, d_out, bias=False)
        # Plain Qwen3 has no dropout here; the authors' experts do, and the qwen3 preset sets it to 0.
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """``[..., d_in] -> [..., d_out]``."""
        return self.down_proj(self.dropout(F.silu(self.gate_proj(x)) * self.up_proj(x)))


@dataclass(frozen=True)
class ExpertRouting:
    """Tokens grouped by expert once per forward and shared by every MoE block.

    Eq. 5 routes by position inside the interaction: expert 0 takes behavior tokens, expert l the
    level-l ID tokens. Routing is fixed: no learned router, no load-balancing loss.
    """

    order: Tensor  # [N] flat token indices, grouped by expert
    inverse: Tensor  # [N] where each flat token sits in `order`
    counts: list[int]  # tokens per expert

    @classmethod
    def by_slot(cls, slots: Tensor, n_experts: int) -> ExpertRouting:
        """``slots [B, T]`` -> routing; pads (slot -1) ride with expert 0 and their outputs are ignored.

        The authors give pads an expert of their own (L + 2 experts, reference §5.7); we do not.
        """
        expert = slots.clamp(min=0).flatten()
        order = torch.argsort(expert, stable=True)
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel(), device=order.device)
        return cls(order, inverse, torch.bincount(expert, minlength=n_experts).tolist())


class PositionBehaviorMoE(nn.Module):
    """Position-and-behavior-aware MoE (Eq. 5): L + 1 SwiGLU experts chosen by the token's slot, with the
    interaction's behavior embedding concatenated to the ID tokens' input in injection blocks.

    Replaces Qwen3's dense MLP.
    """

    def __init__(self, config: DecoderConfig, inject: bool) -> None:
        super().__init__()
        # Row 0 is a learned null vector for behavior tokens (and pads): Eq. 5 concatenates E_B(b) to ID
        # tokens only, but the authors concatenate this row to behavior tokens so all experts share d_in.
        self.behavior_embedding = nn.Embedding(config.n_behaviors + 1, config.behavior_dim) if inject else None
        d_in = config.d_model + (config.behavior_dim if inject else 0)
        self.experts = nn.ModuleList(
            SwiGLU(d_in, config.d_ff, config.d_model, config.dropout) for _ in range(config.id_levels + 1)
        )

    def forward(self, x: Tensor, routing: ExpertRouting, levels: Tensor, slots: Tensor) -> Tensor:
        """``x [B, T, D]``, ``levels, slots [B, T]`` (-1 for pad), ``routing`` from the slots -> ``[B, T, D]``."""
        b, t, _ = x.shape
        if self.behavior_embedding is not None:
            rows = torch.where(slots > 0, levels + 1, 0)  # ID tokens: their behavior; others: the null row
            x = torch.cat((x, self.behavior_embedding(rows)), -1)  # v-hat of Eq. 5
        grouped = x.flatten(0, 1).index_select(0, routing.order).split(routing.counts)
        out = torch.cat([expert(chunk) for expert, chunk in zip(self.experts, grouped, strict=True)])
        return out.index_select(0, routing.inverse).view(b, t, out.size(-1))


# ---- block, cache, model ------------------------------------------------------------------------


@dataclass(frozen=True)
class SequenceContext:
    """What every block needs about the new tokens, computed once per forward."""

    cos: Tensor  # [B, 1, T, head_dim]
    sin: Tensor
    self_allowed: Tensor  # [B, T, S] from self_attention_mask
    cross_allowed: Tensor | None  # [B, T, S] from cross_level_mask; None without cross layers
    levels: Tensor  # [B, T], -1 for pad: the behavior embeddings of the cross layer and the MoE
    slots: Tensor  # [B, T], -1 for pad
    routing: ExpertRouting | None  # None without MoE blocks


class DecoderBlock(nn.Module):
    """Pre-norm block: self-attention, then (cross layers only) the cross-level behavior layer, then
    the MLP or MoE, each added to the residual stream after dropout (reference §5.3)."""

    def __init__(self, config: DecoderConfig, layer: int) -> None:
        super().__init__()
        self.attention_norm = RMSNorm(config.d_model, config.rms_eps)
        self.self_attention = SelfAttention(config)
        has_cross = layer in config.cross_layers
        # The cross-level behavior interaction layer (Eqs. 2-4) is GAMER's addition to the Qwen3 block.
        self.cross_norm = RMSNorm(config.d_model, config.rms_eps) if has_cross else None
        self.cross_level_behavior_attention = CrossLevelBehaviorAttention(config) if has_cross else None
        self.mlp_norm = RMSNorm(config.d_model, config.rms_eps)
        self.is_moe = layer in config.expert_layers
        if self.is_moe:  # Eq. 5 replaces Qwen3's dense MLP
            self.mlp: nn.Module = PositionBehaviorMoE(config, inject=layer in config.injection_layers)
        else:
            self.mlp = SwiGLU(config.d_model, config.d_ff, config.d_model, config.dropout)
        # Residual dropout: not in HF Qwen3; the authors' GAMER has it (reference §5.3).
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self, h: Tensor, context: SequenceContext, past_self: Past | None, past_cross: Past | None
    ) -> tuple[Tensor, Past, Past | None]:
        """``h [B, T, D] -> [B, T, D]``, with this block's self and cross keys/values for the cache."""
        attended, present_self = self._self_branch(h, context, past_self)
        h = h + attended
        present_cross = None
        if self.cross_level_behavior_attention is not None:
            crossed, present_cross = self._cross_branch(h, context, past_cross)
            h = h + crossed
        return h + self._mlp_branch(h, context), present_self, present_cross

    def recomputed(self, h: Tensor, context: SequenceContext) -> Tensor:
        """The block's output for training under activation recomputation: autograd keeps the input of
        each residual branch only and runs the branch again in the backward pass (where an attention with
        dropout on the CPU recomputes once more, piece by piece: `attend`). The same operations in the
        same order as `forward`, so with the random state each checkpoint saves, the same bits."""

        def again(branch: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
            return checkpoint(branch, x, use_reentrant=False)

        h = h + again(lambda x: self._self_branch(x, context, None)[0], h)
        if self.cross_level_behavior_attention is not None:
            h = h + again(lambda x: self._cross_branch(x, context, None)[0], h)
        return h + again(lambda x: self._mlp_branch(x, context), h)

    # The three residual branches, each ending in the residual dropout (reference §5.3).
    def _self_branch(self, h: Tensor, context: SequenceContext, past: Past | None) -> tuple[Tensor, Past]:
        attended, present = self.self_attention(
            self.attention_norm(h), context.cos, context.sin, context.self_allowed, past
        )
        return self.dropout(attended), present

    def _cross_branch(self, h: Tensor, context: SequenceContext, past: Past | None) -> tuple[Tensor, Past]:
        crossed, present = self.cross_level_behavior_attention(
            self.cross_norm(h), context.levels, context.cos, context.sin, context.cross_allowed, past
        )
        return self.dropout(crossed), present

    def _mlp_branch(self, h: Tensor, context: SequenceContext) -> Tensor:
        x = self.mlp_norm(h)
        return self.dropout(self.mlp(x, context.routing, context.levels, context.slots) if self.is_moe else self.mlp(x))


@dataclass(frozen=True)
class KVCache:
    """Keys and values of every token processed so far, per block, and the per-key facts the masks read.

    New tokens attend over these keys and themselves under the same mask rules as a full forward, so
    cached decoding gives the logits of recomputing the whole sequence. Immutable: `forward` returns
    an extended copy, and beam search reorders with `reorder` / `repeat_interleave`. After
    `repeat_interleave` the keys and values so far stay one copy per prompt, shared by its rows
    (`SharedPrompt`); only the per-key facts are repeated.
    """

    self_kv: tuple[Past, ...]  # per block: k, v [B, n_kv_heads, S, head_dim], or a SharedPrompt
    cross_kv: tuple[Past | None, ...]  # per block; None where the block has no cross-level layer
    keys: TokenMeta  # [B, S]

    @property
    def length(self) -> int:
        """S, the number of cached positions (pads included)."""
        return self.keys.levels.size(1)

    @property
    def batch_size(self) -> int:
        return self.keys.levels.size(0)

    @property
    def rows_per_prompt(self) -> int:
        """How many rows share each prompt's keys and values (1 before `repeat_interleave`)."""
        first = self.self_kv[0]
        return first.own[0].size(0) // first.prompt[0].size(0) if isinstance(first, SharedPrompt) else 1

    def _map(self, kv: Callable[[Past], Past], keys: Callable[[Tensor], Tensor]) -> KVCache:
        return KVCache(
            tuple(kv(x) for x in self.self_kv),
            tuple(None if x is None else kv(x) for x in self.cross_kv),
            self.keys._map(keys),
        )

    def _rows(self, fn: Callable[[Tensor], Tensor]) -> KVCache:
        """``fn`` applied to every row's own tensors (a shared prompt's keys and values stay as they are)."""
        return self._map(lambda x: x.rows(fn) if isinstance(x, SharedPrompt) else (fn(x[0]), fn(x[1])), fn)

    def expanded(self) -> KVCache:
        """The same cache with every row holding its keys and values in full (no `SharedPrompt`)."""
        return self._map(lambda x: x.expanded() if isinstance(x, SharedPrompt) else x, lambda x: x)

    def reorder(self, index: Tensor) -> KVCache:
        """Rows ``index`` of the batch (``index [B']`` long), e.g. the parents of the surviving beams.
        Beam search's reorders keep each row among its prompt's rows and move only the keys the rows
        generated; any other reorder first gives every row its prompt's keys in full."""
        n = self.rows_per_prompt
        group = torch.arange(self.batch_size, device=index.device) // n
        if n > 1 and not (index.shape == group.shape and torch.equal(index // n, group)):
            return self.expanded().reorder(index)
        return self._rows(lambda x: x.index_select(0, index))

    def repeat_interleave(self, n: int) -> KVCache:
        """Each row repeated ``n`` times in place (row b becomes rows b*n .. b*n + n - 1): one per beam.
        The keys and values so far are not copied: the n rows share them (`SharedPrompt`)."""
        cache = self.expanded()

        def share(kv: Past) -> SharedPrompt:
            k, v = kv
            none = k.new_empty(k.size(0) * n, k.size(1), 0, k.size(3))
            return SharedPrompt((k, v), (none, v.new_empty(none.shape)))

        return KVCache(
            tuple(share(x) for x in cache.self_kv),
            tuple(None if x is None else share(x) for x in cache.cross_kv),
            cache.keys.repeat_interleave(n),
        )


class GenerativeDecoder(nn.Module):
    """Decoder-only generative recommender: Qwen3 (`DecoderConfig.qwen3`) or GAMER (`DecoderConfig.gamer`)."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(DecoderBlock(config, layer) for layer in range(config.n_layers))
        self.norm = RMSNorm(config.d_model, config.rms_eps)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        if config.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        self._recompute = False

    @property
    def recompute(self) -> bool:
        """Activation recomputation in training (`DecoderBlock.recomputed`, `attend`): memory traded for
        time, not a hyperparameter. Dropout masks are replayed from the saved RNG state, so losses and
        gradients are bit-equal with it on or off; `gamer.training` turns it on per batch
        (`gamer.training.needs_recompute`)."""
        return self._recompute

    @recompute.setter
    def recompute(self, on: bool) -> None:
        self._recompute = on
        for module in self.modules():
            if isinstance(module, QwenAttention):
                module.recompute = on

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.init_std)  # HF Qwen3 _init_weights

    def forward(
        self,
        tokens: Tensor,
        levels: Tensor,
        slots: Tensor,
        positions: Tensor,
        sessions: Tensor | None = None,
        cache: KVCache | None = None,
        use_cache: bool = False,
        last_only: bool = False,
    ) -> tuple[Tensor, KVCache | None]:
        """Next-token logits for new tokens, after any cached ones.

        All inputs are ``[B, T]`` long (module docstring for the layout). ``sessions`` is required by the
        session-wise variant and ignored otherwise. Returns ``logits [B, T, V]`` (``[B, 1, V]`` with
        ``last_only``, for a left-padded prompt whose last token is real) and the cache extended by these
        tokens when ``cache`` is given or ``use_cache``, else None.
        """
        h, new_cache = self._decode(tokens, levels, slots, positions, sessions, cache, use_cache or cache is not None)
        return self.logits(h[:, -1:] if last_only else h), new_cache

    def hidden_states(
        self,
        tokens: Tensor,
        levels: Tensor,
        slots: Tensor,
        positions: Tensor,
        sessions: Tensor | None = None,
        allowed: Tensor | None = None,
    ) -> Tensor:
        """Final-normed hidden states ``[B, T, D]`` of a full sequence (no cache), so that a trainer can
        apply `logits` at its target positions only and never build the ``[B, T, V]`` tensor.

        ``allowed [B, T, T]`` (bool), when given, replaces the built-in attention masks: token i may
        attend token j where it is true (pad keys never), and the cross-level layer keeps the keys of
        strictly lower behavior levels among those. The conversion variant of Appendix D
        (`gamer.conversion`) scores many candidates against one history in a single pass this way.
        """
        return self._decode(tokens, levels, slots, positions, sessions, None, keep_cache=False, allowed=allowed)[0]

    def logits(self, hidden: Tensor) -> Tensor:
        """The (tied) LM head: ``[..., D] -> [..., V]``."""
        return self.lm_head(hidden)

    def _decode(
        self,
        tokens: Tensor,
        levels: Tensor,
        slots: Tensor,
        positions: Tensor,
        sessions: Tensor | None,
        cache: KVCache | None,
        keep_cache: bool,
        allowed: Tensor | None = None,
    ) -> tuple[Tensor, KVCache | None]:
        c = self.config
        self._check_inputs(tokens, levels, slots, positions, sessions, cache)
        if sessions is None:
            sessions = torch.zeros_like(tokens)
        past = None if cache is None else cache.keys
        new = TokenMeta.of(tokens, levels, slots, sessions, after=past)
        keys = new if past is None else past.cat(new)
        t = tokens.size(1)
        h = self.embed_tokens(tokens)
        cos, sin = rotary_cos_sin(positions, c.head_dim, c.rope_theta, h.dtype)
        if allowed is None:
            self_allowed = self_attention_mask(keys, t, c.session_wise)
            cross_allowed = cross_level_mask(keys, t, c.session_wise) if c.cross_layers else None
        else:
            if allowed.shape != (tokens.size(0), t, keys.levels.size(1)):
                raise ValueError(
                    f"allowed has shape {tuple(allowed.shape)}; it must be [B, T, T] for tokens {tuple(tokens.shape)}"
                )
            self_allowed = allowed & ~keys.is_pad[:, None, :]
            cross_allowed = self_allowed & lower_level_keys(keys, t) if c.cross_layers else None
        context = SequenceContext(
            cos=cos,
            sin=sin,
            self_allowed=self_allowed,
            cross_allowed=cross_allowed,
            levels=levels,
            slots=slots,
            routing=ExpertRouting.by_slot(slots, c.id_levels + 1) if c.expert_layers else None,
        )
        if self.recompute and self.training and torch.is_grad_enabled() and cache is None and not keep_cache:
            for block in self.blocks:
                h = block.recomputed(h, context)
            return self.norm(h), None
        self_kv, cross_kv = [], []
        for layer, block in enumerate(self.blocks):
            past_self = None if cache is None else cache.self_kv[layer]
            past_cross = None if cache is None else cache.cross_kv[layer]
            h, present_self, present_cross = block(h, context, past_self, past_cross)
            self_kv.append(present_self)
            cross_kv.append(present_cross)
        return self.norm(h), KVCache(tuple(self_kv), tuple(cross_kv), keys) if keep_cache else None

    def _check_inputs(
        self,
        tokens: Tensor,
        levels: Tensor,
        slots: Tensor,
        positions: Tensor,
        sessions: Tensor | None,
        cache: KVCache | None,
    ) -> None:
        c = self.config
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be [batch, time], got shape {tuple(tokens.shape)}")
        named = {"levels": levels, "slots": slots, "positions": positions, "sessions": sessions}
        for name, x in named.items():
            if x is not None and x.shape != tokens.shape:
                raise ValueError(f"{name} has shape {tuple(x.shape)}; it must match tokens {tuple(tokens.shape)}")
        if sessions is None and c.session_wise:
            raise ValueError("the session-wise decoder needs sessions (the session index of every token)")
        if cache is not None and cache.batch_size != tokens.size(0):
            raise ValueError(
                f"cache holds {cache.batch_size} rows but tokens has {tokens.size(0)}; "
                "expand it with cache.repeat_interleave(n) or select rows with cache.reorder(index)"
            )
        for name, x, low, high in (
            ("tokens", tokens, 0, c.vocab_size - 1),
            ("levels", levels, -1, c.n_behaviors - 1),
            ("slots", slots, -1, c.id_levels),
        ):
            if x.numel() and (x.min() < low or x.max() > high):
                raise ValueError(f"{name} must lie in [{low}, {high}], got [{int(x.min())}, {int(x.max())}]")
        pad = tokens == PAD
        if not (torch.equal(pad, levels < 0) and torch.equal(pad, slots < 0)):
            raise ValueError("pad tokens (id 0) must have level -1 and slot -1, and only pad tokens may")

    def num_parameters(self, non_embedding: bool = False) -> int:
        """Trainable parameters, a tied embedding counted once; ``non_embedding`` drops the token embedding
        (and an untied head)."""
        total = sum(p.numel() for p in self.parameters())
        if non_embedding:
            total -= self.embed_tokens.weight.numel()
            if not self.config.tie_embeddings:
                total -= self.lm_head.weight.numel()
        return total

    def flops_per_token(self, seq_len: int) -> float:
        """Forward FLOPs per token at context ``seq_len``: 2 per weight the token passes through (one
        expert per MoE block, the LM head) plus QK^T and AV, 4 * n_heads * head_dim * seq_len per
        attention layer. The explicit mask makes attention dense, so the full seq_len is counted."""
        c = self.config

        def matmul_weights(module: nn.Module) -> int:
            return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Linear))

        weights = matmul_weights(self.lm_head)
        attention_layers = 0
        for block in self.blocks:
            weights += matmul_weights(block.self_attention)
            attention_layers += 1
            if block.cross_level_behavior_attention is not None:
                weights += matmul_weights(block.cross_level_behavior_attention)
                attention_layers += 1
            mlp = block.mlp.experts[0] if block.is_moe else block.mlp
            weights += matmul_weights(mlp)
        return 2.0 * weights + attention_layers * 4.0 * c.n_heads * c.head_dim * seq_len

    def activation_bytes(self, batch_size: int, seq_len: int, device: torch.device | str = "cpu") -> int:
        """About how many bytes autograd keeps for a training forward of ``[batch_size, seq_len]`` without
        recomputation. Per block, ~56 float32 values per token and model width (norms, projections, the
        MLP or experts; measured 36-54 at paper size on the CPU); per attention layer, on the CPU and with
        attention dropout, the ``[B, H, T, T]`` float32 probabilities and a one-byte dropout mask
        (`DroppedAttention`; torch's own unfused path kept 2.5-2.9 such tensors), which the fused kernels
        never build (measured at paper size: 0.27 GB saved per 505-token sequence, 0.20 without dropout)."""
        c = self.config
        per_token = c.n_layers * 56 * c.d_model * 4
        attentions = c.n_layers + len(c.cross_layers)
        materialised = torch.device(device).type == "cpu" and c.attention_dropout > 0
        square = attentions * c.n_heads * seq_len * 5 if materialised else 0
        return batch_size * seq_len * (per_token + square)

    def estimate_mfu(self, tokens_per_second: float, seq_len: int, peak_flops: float) -> float:
        """Model FLOPs utilisation of training: 3 x forward FLOPs (forward + backward) per token, times
        tokens per second, over the hardware's peak (e.g. 989e12 for an H100 in bf16 dense)."""
        return 3.0 * self.flops_per_token(seq_len) * tokens_per_second / peak_flops


# ---- loss ---------------------------------------------------------------------------------------
