"""The GAMER decoder (gamer.model): shapes, parameter counts, masks, no future leak, pads, cached
decoding, training, and slow loop-based references for attention, masks and experts.

Every model here is tiny (d_model 32, 2 heads of 16, one key/value head) and runs in float64 in eval
mode, so "unchanged" means equal to 1e-12 and a leak cannot hide in rounding.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from helpers import next_token_loss
from hypothesis import given, settings
from hypothesis import strategies as st

import gamer.model as model_module
from gamer.model import (
    CrossLevelBehaviorAttention,
    DecoderConfig,
    DroppedAttention,
    GenerativeDecoder,
    KVCache,
    PositionBehaviorMoE,
    QwenAttention,
    SelfAttention,
    TokenMeta,
    cross_level_mask,
    keep_mask,
    rotary_cos_sin,
    self_attention_mask,
)

N_BEHAVIORS, ID_LEVELS, CODES = 3, 2, 8  # levels 0 (lowest, "p3s") .. 2; 2 ID tokens per item; 8 codes a level
VOCAB = 1 + N_BEHAVIORS + ID_LEVELS * CODES
ITEM_LEN = 1 + ID_LEVELS
TINY = dict(d_model=32, n_layers=2, n_heads=2, n_kv_heads=1, head_dim=16, d_ff=64, behavior_dim=8)
PRESETS = ("qwen3", "gamer", "gamer_every_block")
TIGHT = dict(rtol=0.0, atol=1e-12)

Interaction = tuple[int, int, tuple[int, ...]]  # (behavior level, session, ID codes)


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_config(preset: str = "gamer", **overrides: object) -> DecoderConfig:
    fields = {**TINY, "dropout": 0.0, "attention_dropout": 0.0, **overrides}
    return getattr(DecoderConfig, preset)(VOCAB, N_BEHAVIORS, ID_LEVELS, **fields)


def tiny_model(preset: str = "gamer", seed: int = 0, **overrides: object) -> GenerativeDecoder:
    torch.manual_seed(seed)
    return GenerativeDecoder(tiny_config(preset, **overrides)).double().eval()


def encode(interactions: list[Interaction], session_positions: bool = False) -> dict[str, list[int]]:
    """One row in the shared layout. Positions count real tokens, or (Appendix C) session * item_len + slot."""
    row: dict[str, list[int]] = {"tokens": [], "levels": [], "slots": [], "positions": [], "sessions": []}
    for level, session, codes in interactions:
        ids = [1 + level] + [1 + N_BEHAVIORS + lvl * CODES + code for lvl, code in enumerate(codes)]
        for slot, token in enumerate(ids):
            row["positions"].append(session * ITEM_LEN + slot if session_positions else len(row["tokens"]))
            row["tokens"].append(token)
            row["levels"].append(level)
            row["slots"].append(slot)
            row["sessions"].append(session)
    return row


PAD_VALUES = {"tokens": 0, "levels": -1, "slots": -1, "positions": 0, "sessions": -1}


def batch(rows: list[dict[str, list[int]]], pad: str = "left") -> dict[str, torch.Tensor]:
    """Stack rows into ``[B, T]`` long tensors, padding the short ones on the left or the right."""
    width = max(len(r["tokens"]) for r in rows)
    out = {}
    for name, fill in PAD_VALUES.items():
        padded = []
        for r in rows:
            filler = [fill] * (width - len(r[name]))
            padded.append(filler + r[name] if pad == "left" else r[name] + filler)
        out[name] = torch.tensor(padded)
    return out


def random_interactions(rng: random.Random, n: int, first_session: int = 0) -> list[Interaction]:
    """n interactions whose sessions never decrease; the first one is lowest level (it has no cross key)."""
    session, out = first_session, []
    for i in range(n):
        session += i > 0 and rng.random() < 0.4
        level = 0 if i == 0 else rng.randrange(N_BEHAVIORS)
        out.append((level, session, tuple(rng.randrange(CODES) for _ in range(ID_LEVELS))))
    return out


def logits_of(model: GenerativeDecoder, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(**inputs)[0]


# ---- config, shapes, parameter counts -------------------------------------------------------------------


def test_shapes_tied_head_and_no_cache_by_default() -> None:
    model = tiny_model("gamer")
    inputs = batch([encode(random_interactions(random.Random(0), 4)), encode(random_interactions(random.Random(1), 3))])
    logits, cache = model(**inputs)
    assert logits.shape == (2, 4 * ITEM_LEN, VOCAB)
    assert cache is None
    assert model.lm_head.weight is model.embed_tokens.weight
    assert model(**inputs, last_only=True)[0].shape == (2, 1, VOCAB)
    torch.testing.assert_close(model.logits(model.hidden_states(**inputs)), logits, **TIGHT)


def test_presets_lay_out_layers() -> None:
    assert DecoderConfig.gamer(VOCAB, 3, 2).cross_layers == (4, 5, 6, 7)
    assert DecoderConfig.gamer(VOCAB, 3, 2).injection_layers == (0, 1, 2, 3)
    assert DecoderConfig.gamer(VOCAB, 3, 2).expert_layers == tuple(range(8))
    every = DecoderConfig.gamer_every_block(VOCAB, 3, 2, n_layers=3)
    assert every.cross_layers == every.injection_layers == every.expert_layers == (0, 1, 2)
    qwen3 = DecoderConfig.qwen3(VOCAB, 3, 2)
    assert qwen3.cross_layers == qwen3.expert_layers == qwen3.injection_layers == ()
    assert (qwen3.dropout, qwen3.attention_dropout) == (0.0, 0.1)  # the authors' Qwen3 baseline


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(n_heads=3, n_kv_heads=2), "multiple of n_kv_heads"),
        (dict(cross_layers=(2,)), "outside 0..1"),
        (dict(moe_layers=(1,), injection_layers=(0,)), "not MoE blocks"),
        (dict(vocab_size=4), "cannot hold"),
        (dict(dropout=1.0), "dropout"),
    ],
)
def test_config_errors_name_the_field(overrides: dict, message: str) -> None:
    fields = {**TINY, "vocab_size": VOCAB, "n_behaviors": N_BEHAVIORS, "id_levels": ID_LEVELS}
    fields = {**fields, "cross_layers": (1,), "injection_layers": (0,), **overrides}
    with pytest.raises(ValueError, match=message):
        DecoderConfig(**fields)


def test_qwen3_parameter_count_by_hand() -> None:
    d, hd, ff = 32, 16, 64
    attention = d * 2 * hd + d * 1 * hd + d * 1 * hd + 2 * hd * d + hd + hd  # q, k, v, o, q/k norms
    mlp = 3 * d * ff
    block = attention + mlp + 2 * d  # two RMSNorms
    expected = VOCAB * d + 2 * block + d  # tied embedding, 2 blocks, final norm
    assert tiny_model("qwen3").num_parameters() == expected == 19_296
    assert tiny_model("qwen3").num_parameters(non_embedding=True) == expected - VOCAB * d


def test_gamer_parameter_count_by_hand() -> None:
    d, hd, ff, bd, rows = 32, 16, 64, 8, N_BEHAVIORS + 1
    attention = d * 2 * hd + 2 * d * hd + 2 * hd * d + 2 * hd
    cross = attention + rows * 2 * hd + 2 * rows * hd + d * d  # E_Q, E_K, E_V, gate W_G
    experts = ID_LEVELS + 1
    injected_moe = experts * (2 * (d + bd) * ff + ff * d) + rows * bd
    moe = experts * 3 * d * ff
    block0 = attention + injected_moe + 2 * d  # injection layer
    block1 = attention + cross + moe + 3 * d  # cross layer
    assert tiny_model("gamer").num_parameters() == VOCAB * d + block0 + block1 + d


def test_paper_size_modules_match_the_reference_arithmetic() -> None:
    """Reference §5.10 counts, from the authors' code: 295,040 / 363,648 / 458,752 / 393,216."""
    config = DecoderConfig.gamer(1 + 3 + 4 * 256, 3, 4)

    def count(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    assert count(SelfAttention(config)) == 295_040
    assert count(CrossLevelBehaviorAttention(config)) == 363_648
    injected = PositionBehaviorMoE(config, inject=True)
    assert count(injected.experts[0]) == 458_752
    assert count(injected) == 5 * 458_752 + 4 * 64  # L + 1 = 5 experts; the authors add a 6th for pads
    assert count(PositionBehaviorMoE(config, inject=False).experts[0]) == 393_216


def test_flops_per_token_by_hand() -> None:
    d, hd, ff, seq = 32, 16, 64, 30
    weights = 2 * (2 * d * 2 * hd + 2 * d * hd + 3 * d * ff) + d * VOCAB  # per block q, o, k, v, MLP; head
    assert tiny_model("qwen3").flops_per_token(seq) == 2 * weights + 2 * 4 * 2 * hd * seq


# ---- no future leak ------------------------------------------------------------------------------------


def cut_rows(interactions: list[Interaction], rng: random.Random, session_positions: bool) -> list[dict]:
    """Row 0 is the original; row 1 + t keeps tokens 0..t and replaces everything after them: the later
    codes of t's own interaction, then fresh interactions with their own levels and sessions."""
    rows = [encode(interactions, session_positions)]
    for k, (level, session, codes) in enumerate(interactions):
        for last_slot in range(ITEM_LEN):
            kept = tuple(
                c if i < last_slot else (c + 1 + rng.randrange(CODES - 1)) % CODES for i, c in enumerate(codes)
            )
            tail = random_interactions(rng, len(interactions) - k - 1, session + rng.randrange(2))
            tail = [(rng.randrange(N_BEHAVIORS), s, c) for _, s, c in tail]
            rows.append(encode([*interactions[:k], (level, session, kept), *tail], session_positions))
    return rows


@pytest.mark.parametrize("session_wise", [False, True])
@pytest.mark.parametrize("preset", PRESETS)
def test_no_future_leak(preset: str, session_wise: bool) -> None:
    rng = random.Random(7)
    model = tiny_model(preset, session_wise=session_wise)
    interactions = random_interactions(rng, 6)
    rows = cut_rows(interactions, rng, session_positions=session_wise)
    logits = logits_of(model, batch(rows, pad="right"))
    for row in range(1, len(rows)):
        t = row - 1  # the last unchanged token
        torch.testing.assert_close(logits[row, : t + 1], logits[0, : t + 1], **TIGHT)
        if t + 1 < len(rows[0]["tokens"]):  # the perturbation is real: some later logit moved
            assert not torch.allclose(logits[row, t + 1 :], logits[0, t + 1 :])


def authors_cross_mask(keys: TokenMeta, n_queries: int, session_wise: bool) -> torch.Tensor:
    """The authors' behavior: a row with no allowed key ends up attending every position (reference §5.5)."""
    allowed = cross_level_mask(keys, n_queries, session_wise)
    return allowed | ~allowed.any(-1, keepdim=True)


def test_lowest_level_tokens_do_not_see_the_future_and_the_authors_mask_would(monkeypatch: pytest.MonkeyPatch) -> None:
    """A p3s (level 0) token has no cross key. Our layer outputs zero for it; the authors' mask leaks."""
    rng = random.Random(3)
    history = random_interactions(rng, 5)
    future = [(2, 9, (1, 1)), (1, 9, (2, 3))]
    inputs = batch([encode(history), encode(history[:1] + future)], pad="right")
    first = slice(0, ITEM_LEN)  # the tokens of the level-0 first interaction
    model = tiny_model("gamer")
    logits = logits_of(model, inputs)
    torch.testing.assert_close(logits[1, first], logits[0, first], **TIGHT)
    monkeypatch.setattr(model_module, "cross_level_mask", authors_cross_mask)
    leaky = logits_of(model, inputs)
    assert not torch.allclose(leaky[1, first], leaky[0, first])


# ---- the cross-level behavior interaction layer in isolation -------------------------------------------


def cross_layer_setup(
    interactions: list[Interaction], seed: int = 0
) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor, torch.Tensor]:
    """A lone cross-level layer over one row: (run(x) -> [T, D], a random x [1, T, D], allowed [T, S])."""
    config = tiny_config("gamer")
    torch.manual_seed(seed)
    layer = CrossLevelBehaviorAttention(config).double().eval()
    inputs = batch([encode(interactions)])
    keys = TokenMeta.of(inputs["tokens"], inputs["levels"], inputs["slots"], inputs["sessions"], after=None)
    t = inputs["tokens"].size(1)
    cos, sin = rotary_cos_sin(inputs["positions"], config.head_dim, config.rope_theta, torch.float64)
    allowed = cross_level_mask(keys, t, session_wise=False)

    def run(x: torch.Tensor) -> torch.Tensor:
        return layer(x, inputs["levels"], cos, sin, allowed)[0][0]

    return run, torch.randn(1, t, config.d_model, dtype=torch.float64), allowed[0]


# interactions 0..4 at levels 1, 0, 2, 2, 1: item 0 is level 1 with nothing lower before it.
CROSS_HISTORY: list[Interaction] = [(1, 0, (0, 1)), (0, 0, (2, 3)), (2, 0, (4, 5)), (2, 1, (6, 7)), (1, 1, (1, 2))]


def tokens_of(item: int) -> slice:
    return slice(item * ITEM_LEN, (item + 1) * ITEM_LEN)


def test_cross_rows_without_a_key_output_exactly_zero() -> None:
    run, x, allowed = cross_layer_setup(CROSS_HISTORY)
    out = run(x)
    empty = ~allowed.any(-1)
    # item 0 (level 1, no earlier lower level) and item 1 (level 0) have no key; the others do.
    assert empty.tolist() == [True] * 2 * ITEM_LEN + [False] * 3 * ITEM_LEN
    assert torch.equal(out[empty], torch.zeros_like(out[empty]))
    assert not torch.isnan(out).any()
    assert (out[~empty].abs().sum(-1) > 0).all()


def test_cross_output_depends_only_on_earlier_strictly_lower_levels() -> None:
    run, x, _ = cross_layer_setup(CROSS_HISTORY)
    query = tokens_of(3)  # level 2: may read items 0 (level 1) and 1 (level 0), not item 2 (level 2)
    base = run(x)[query]

    def moved(item: int) -> bool:
        y = x.clone()
        y[0, tokens_of(item)] += torch.randn_like(y[0, tokens_of(item)])
        return not torch.allclose(run(y)[query], base, **TIGHT)

    assert moved(0) and moved(1)  # earlier and strictly lower
    assert not moved(2)  # earlier, same level
    assert not moved(4)  # later, lower level


# ---- session-wise masks (Appendix C) --------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["qwen3", "gamer"])
def test_session_wise_sees_earlier_sessions_not_its_own(preset: str) -> None:
    # session 0: items a (p3s), b (level 1); session 1: items c (p3s), d (level 2)
    history: list[Interaction] = [(0, 0, (0, 0)), (1, 0, (1, 1)), (0, 1, (2, 2)), (2, 1, (3, 3))]
    model = tiny_model(preset, session_wise=True)

    def with_codes(item: int, codes: tuple[int, int]) -> dict[str, list[int]]:
        changed = list(history)
        changed[item] = (*history[item][:2], codes)
        return encode(changed, session_positions=True)

    rows = [
        encode(history, session_positions=True),
        with_codes(2, (5, 6)),
        with_codes(0, (5, 6)),
        with_codes(3, (5, 3)),
    ]
    logits = logits_of(model, batch(rows))
    d = tokens_of(3)
    torch.testing.assert_close(logits[1, d], logits[0, d], **TIGHT)  # item c: same session, unseen
    assert not torch.allclose(logits[2, d], logits[0, d])  # item a: earlier session, seen
    assert not torch.allclose(logits[3, d.stop - 1], logits[0, d.stop - 1])  # d's last token sees d's first code


# ---- masks against a loop over their definitions ---------------------------------------------------------


def loop_masks(meta: dict[str, list[int]], n_queries: int) -> dict[str, list[list[bool]]]:
    """The mask rules written token by token: plain, session-wise self and cross (plain, session-wise)."""
    n = len(meta["levels"])
    pad = [lvl < 0 for lvl in meta["levels"]]
    item, items = 0, []
    for slot in meta["slots"]:
        item += slot == 0
        items.append(item)
    lvl, ses = meta["levels"], meta["sessions"]
    out: dict[str, list[list[bool]]] = {"self": [], "self_session": [], "cross": [], "cross_session": []}
    for i in range(n - n_queries, n):
        real = [j <= i and not pad[j] for j in range(n)]
        out["self"].append(real)
        out["self_session"].append([real[j] and (items[j] == items[i] or ses[j] < ses[i]) for j in range(n)])
        out["cross"].append([real[j] and lvl[j] < lvl[i] for j in range(n)])
        out["cross_session"].append([real[j] and lvl[j] < lvl[i] and ses[j] < ses[i] for j in range(n)])
    return out


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31), st.integers(0, 4), st.integers(1, 6))
def test_masks_match_their_definitions(seed: int, n_pads: int, n_queries_items: int) -> None:
    rng = random.Random(seed)
    row = encode(random_interactions(rng, rng.randrange(1, 7)))
    inputs = batch([row, {k: [PAD_VALUES[k]] * n_pads + v for k, v in row.items()}])
    keys = TokenMeta.of(inputs["tokens"], inputs["levels"], inputs["slots"], inputs["sessions"], after=None)
    n_queries = min(n_queries_items * 2, inputs["tokens"].size(1))
    got = {
        "self": self_attention_mask(keys, n_queries, False),
        "self_session": self_attention_mask(keys, n_queries, True),
        "cross": cross_level_mask(keys, n_queries, False),
        "cross_session": cross_level_mask(keys, n_queries, True),
    }
    for b in range(2):
        expected = loop_masks({k: inputs[k][b].tolist() for k in ("levels", "slots", "sessions")}, n_queries)
        for name, mask in got.items():
            assert mask[b].tolist() == expected[name], name


# ---- independent references: attention and experts by loops ---------------------------------------------


def rms(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return weight * x / torch.sqrt((x * x).mean() + eps)


def rotate(x: torch.Tensor, position: int, theta: float) -> torch.Tensor:
    """RoPE written pair by pair: channel c and c + hd/2 turn by position * theta^(-2c/hd)."""
    half = x.numel() // 2
    out = x.clone()
    for c in range(half):
        angle = position * theta ** (-2 * c / x.numel())
        out[c] = x[c] * math.cos(angle) - x[c + half] * math.sin(angle)
        out[c + half] = x[c + half] * math.cos(angle) + x[c] * math.sin(angle)
    return out


def slow_attention(layer: QwenAttention, x: torch.Tensor, positions: list[int], allowed: torch.Tensor, rows=None):
    """One row ``x [T, D]``: per head, an explicit softmax over allowed keys; GQA by repeating kv heads."""
    t, hd, theta = x.size(0), layer.head_dim, 1e6
    eps = layer.q_norm.eps
    q, k, v = layer.q_proj(x), layer.k_proj(x), layer.v_proj(x)
    if rows is not None:
        q, k, v = q + layer.behavior_q(rows), k + layer.behavior_k(rows), v + layer.behavior_v(rows)
    out = torch.zeros(t, layer.n_heads * hd, dtype=x.dtype)
    for h in range(layer.n_heads):
        g = h // (layer.n_heads // layer.n_kv_heads)
        for i in range(t):
            keys = [j for j in range(t) if allowed[i, j]]
            if not keys:
                continue
            qi = rotate(rms(q[i, h * hd : (h + 1) * hd], layer.q_norm.weight, eps), positions[i], theta)
            scores = []
            for j in keys:
                kj = rotate(rms(k[j, g * hd : (g + 1) * hd], layer.k_norm.weight, eps), positions[j], theta)
                scores.append(float((qi @ kj).detach()) / math.sqrt(hd))
            top = max(scores)
            weights = [math.exp(s - top) for s in scores]
            for w, j in zip(weights, keys, strict=True):
                out[i, h * hd : (h + 1) * hd] += w / sum(weights) * v[j, g * hd : (g + 1) * hd]
    result = layer.o_proj(out)
    if rows is not None:
        result = result * F.silu(layer.gate_proj(x))
    return result


@pytest.mark.parametrize("cross", [False, True])
def test_attention_matches_a_loop_reference(cross: bool) -> None:
    config = tiny_config("gamer", n_heads=4, n_kv_heads=2)
    torch.manual_seed(1)
    layer = (CrossLevelBehaviorAttention if cross else SelfAttention)(config).double().eval()
    for p in layer.parameters():  # non-trivial norm scales, so a skipped q/k norm would show
        torch.nn.init.normal_(p, std=0.3)
    inputs = batch([encode(CROSS_HISTORY), encode(CROSS_HISTORY[:3])])
    keys = TokenMeta.of(inputs["tokens"], inputs["levels"], inputs["slots"], inputs["sessions"], after=None)
    t = inputs["tokens"].size(1)
    allowed = (cross_level_mask if cross else self_attention_mask)(keys, t, False)
    cos, sin = rotary_cos_sin(inputs["positions"], config.head_dim, config.rope_theta, torch.float64)
    x = torch.randn(2, t, config.d_model, dtype=torch.float64)
    rows = inputs["levels"] + 1  # the reference indexes the embedding tables itself
    out = layer(x, inputs["levels"], cos, sin, allowed)[0] if cross else layer(x, cos, sin, allowed)[0]
    for b in range(2):
        expected = slow_attention(layer, x[b], inputs["positions"][b].tolist(), allowed[b], rows[b] if cross else None)
        real = inputs["tokens"][b] != 0
        torch.testing.assert_close(out[b, real], expected[real], rtol=0, atol=1e-10)


def test_experts_are_chosen_by_slot_with_the_behavior_injected_on_id_tokens() -> None:
    config = tiny_config("gamer")
    torch.manual_seed(2)
    moe = PositionBehaviorMoE(config, inject=True).double().eval()
    inputs = batch([encode(CROSS_HISTORY), encode(CROSS_HISTORY[:2])])
    levels, slots = inputs["levels"], inputs["slots"]
    x = torch.randn(*slots.shape, config.d_model, dtype=torch.float64)
    out = moe(x, model_module.ExpertRouting.by_slot(slots, ID_LEVELS + 1), levels, slots)
    for b, t in zip(*torch.nonzero(slots >= 0, as_tuple=True), strict=True):
        slot, level = int(slots[b, t]), int(levels[b, t])
        behavior = moe.behavior_embedding.weight[level + 1 if slot > 0 else 0]  # null row for behavior tokens
        expected = moe.experts[slot](torch.cat((x[b, t], behavior)))
        torch.testing.assert_close(out[b, t], expected, rtol=0, atol=1e-12)


# ---- pads -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("session_wise", [False, True])
@pytest.mark.parametrize("preset", PRESETS)
def test_padding_does_not_change_real_tokens(preset: str, session_wise: bool) -> None:
    rng = random.Random(11)
    short, long = random_interactions(rng, 3), random_interactions(rng, 6)
    model = tiny_model(preset, session_wise=session_wise)
    alone = logits_of(model, batch([encode(short, session_wise)]))[0]
    n = alone.size(0)
    left = logits_of(model, batch([encode(short, session_wise), encode(long, session_wise)], pad="left"))[0]
    right = logits_of(model, batch([encode(short, session_wise), encode(long, session_wise)], pad="right"))[0]
    torch.testing.assert_close(left[-n:], alone, rtol=0, atol=1e-10)
    torch.testing.assert_close(right[:n], alone, rtol=0, atol=1e-10)


def test_inconsistent_pad_metadata_is_an_error() -> None:
    inputs = batch([encode(CROSS_HISTORY[:2]), encode(CROSS_HISTORY)])
    inputs["levels"][0, 0] = 0  # a pad token that claims a level
    with pytest.raises(ValueError, match="pad tokens"):
        tiny_model()(**inputs)


# ---- cached decoding --------------------------------------------------------------------------------------


def decode_rows(session_wise: bool) -> tuple[list[dict], int]:
    """Two prompts of different lengths, each followed by 3 tokens: the two ID codes of the queried item, then
    the behavior token of the next interaction (a new item, in a new session). Returns the rows, 3."""
    rng = random.Random(5)
    rows = []
    for n in (4, 2):
        history = random_interactions(rng, n)
        last_session = history[-1][1]
        target: Interaction = (2, last_session + 1, (rng.randrange(CODES), rng.randrange(CODES)))
        after: Interaction = (1, last_session + 2, (0, 0))
        full = encode([*history, target, after], session_positions=session_wise)
        rows.append({k: v[:-ID_LEVELS] for k, v in full.items()})  # ends with the next behavior token
    return rows, 3


def split_steps(full: dict[str, torch.Tensor], n_steps: int) -> tuple[dict, list[dict]]:
    t = full["tokens"].size(1)
    prompt = {k: v[:, : t - n_steps] for k, v in full.items()}
    steps = [{k: v[:, j : j + 1] for k, v in full.items()} for j in range(t - n_steps, t)]
    return prompt, steps


@pytest.mark.parametrize("session_wise", [False, True])
@pytest.mark.parametrize("preset", PRESETS)
def test_cached_decoding_matches_the_full_forward(preset: str, session_wise: bool) -> None:
    model = tiny_model(preset, session_wise=session_wise)
    rows, n_steps = decode_rows(session_wise)
    full = batch(rows, pad="left")
    expected = logits_of(model, full)
    prompt, steps = split_steps(full, n_steps)
    logits, cache = model(**prompt, use_cache=True, last_only=True)
    got = [logits]
    for step in steps:
        logits, cache = model(**step, cache=cache)
        got.append(logits)
    assert cache.length == full["tokens"].size(1)
    torch.testing.assert_close(torch.cat(got, 1), expected[:, -n_steps - 1 :], rtol=0, atol=1e-10)


def test_cached_decoding_in_float32() -> None:
    torch.manual_seed(0)
    model = GenerativeDecoder(tiny_config("gamer")).eval()
    full = batch(decode_rows(False)[0])
    prompt, steps = split_steps(full, 3)
    _, cache = model(**prompt, use_cache=True)
    got = [model(**step, cache=cache)[0] for step in steps[:1]]
    torch.testing.assert_close(got[0], logits_of(model, full)[:, -3:-2], rtol=0, atol=1e-5)


def test_cache_reorder_and_repeat_interleave_follow_beams() -> None:
    model = tiny_model("gamer_every_block", session_wise=True)
    full = batch(decode_rows(True)[0])
    prompt, steps = split_steps(full, 3)
    _, cache = model(**prompt, use_cache=True)
    beams = cache.repeat_interleave(3)
    assert (beams.batch_size, beams.length) == (6, cache.length)
    order = torch.tensor([5, 0, 3, 3, 1, 2])  # parents of the surviving beams
    source = torch.arange(2).repeat_interleave(3)[order]  # the prompt row each beam comes from
    step = {k: v[source] for k, v in steps[0].items()}
    got = model(**step, cache=beams.reorder(order))[0]
    expected = logits_of(model, {k: v[source] for k, v in full.items()})[:, -3:-2]
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="repeat_interleave"):
        model(**steps[0], cache=beams)


@pytest.mark.parametrize("heads", [{}, {"n_heads": 4, "n_kv_heads": 2, "head_dim": 8}])
def test_beams_share_their_prompt_keys_and_decode_as_the_full_forward(heads: dict) -> None:
    """Beam search's cache: after `repeat_interleave` every layer keeps one copy of each prompt's keys
    (`SharedPrompt`), reorders within a prompt's beams keep it shared, and beams that decoded different
    codes, reordered between steps, get the full forward's logits of the sequences they hold."""
    model = tiny_model("gamer_every_block", session_wise=True, **heads)
    full = batch(decode_rows(True)[0], pad="left")
    prompt, steps = split_steps(full, 3)
    _, cache = model(**prompt, use_cache=True)
    beams = cache.repeat_interleave(3)
    assert all(kv.prompt[0].size(0) == 2 and kv.own[0].size(2) == 0 for kv in beams.self_kv + beams.cross_kv if kv)
    rows = {k: v.repeat_interleave(3, 0) for k, v in full.items()}  # what each beam holds, as it decodes
    for j, order in enumerate((torch.arange(6), torch.tensor([2, 0, 0, 4, 5, 3]))):
        beams, rows = beams.reorder(order), {k: v[order] for k, v in rows.items()}
        assert beams.rows_per_prompt == 3  # still shared: the reorder stayed within each prompt's beams
        codes = (rows["tokens"][:, -3 + j] - 1 - N_BEHAVIORS + torch.arange(6)) % CODES
        rows["tokens"][:, -3 + j] = 1 + N_BEHAVIORS + j * CODES + codes  # beam b decodes its own code
        logits, beams = model(**{k: v[:, -3 + j : -2 + j] for k, v in rows.items()}, cache=beams)
        expected = logits_of(model, rows)[:, -3 + j : -2 + j]  # causal: later tokens do not matter
        torch.testing.assert_close(logits, expected, rtol=0, atol=1e-10)
    assert beams.self_kv[0].own[0].size(2) == 2  # the rows' own keys: the two tokens they decoded


# ---- training ---------------------------------------------------------------------------------------------


def training_batch() -> dict[str, torch.Tensor]:
    rng = random.Random(13)
    return batch([encode(random_interactions(rng, n)) for n in (6, 5, 6, 4)], pad="right")


def test_determinism_under_manual_seed() -> None:
    inputs = training_batch()

    def train_mode_logits() -> torch.Tensor:
        torch.manual_seed(0)
        model = GenerativeDecoder(tiny_config("gamer", dropout=0.2, attention_dropout=0.2)).train()
        torch.manual_seed(1)
        return logits_of(model, inputs)

    first, second = train_mode_logits(), train_mode_logits()
    assert torch.equal(first, second)
    torch.manual_seed(0)
    model = GenerativeDecoder(tiny_config("gamer", dropout=0.2, attention_dropout=0.2)).eval()
    assert not torch.allclose(logits_of(model, inputs), first)  # dropout was active in train mode


def test_keep_mask_drops_at_the_rate_asked_and_its_scale_is_exact() -> None:
    torch.manual_seed(0)
    keep, scale = keep_mask(torch.Size([64, 6, 101, 103]), 0.2, torch.device("cpu"))  # not a multiple of 4
    assert keep.dtype == torch.bool and keep.shape == (64, 6, 101, 103)
    assert abs(keep.double().mean().item() - 0.8) < 1e-3  # 4 M draws: the standard error is 2e-4
    assert scale == 65536 / (65536 - 13107)  # 1 / P(keep), P(drop) = 13107 / 2^16 = 0.2 - 3e-6
    by_column = keep.double().mean((0, 1, 2))  # every position of the 16-bit chunks drops alike
    assert by_column.min() > 0.75 and by_column.max() < 0.85
    assert keep_mask(torch.Size([5]), 0.0, torch.device("cpu"))[0].all()


def test_cpu_attention_dropout_gives_the_gradients_of_its_mask() -> None:
    """`DroppedAttention` (the CPU's attention with dropout) equals softmax attention whose probabilities
    are multiplied by its keep mask, in value and in every input's gradient (float64), with two query
    heads folded onto each key/value head and reading the same mask rows."""
    torch.manual_seed(3)
    q = torch.randn(2, 3, 2 * 5, 8, dtype=torch.float64, requires_grad=True)
    k, v = (torch.randn(2, 3, 5, 8, dtype=torch.float64, requires_grad=True) for _ in range(2))
    opened = torch.rand(2, 5, 5) < 0.7
    opened[..., 0] = True  # no empty row, as `attend_dense` guarantees
    d_out = torch.randn(2, 3, 2 * 5, 8, dtype=torch.float64)
    torch.manual_seed(9)
    out = DroppedAttention.apply(q, k, v, opened, 0.3)
    grads = torch.autograd.grad(out, (q, k, v), d_out)
    torch.manual_seed(9)
    keep, scale = keep_mask(torch.Size([2, 3, 2 * 5, 5]), 0.3, torch.device("cpu"))
    assert 0 < keep.sum() < keep.numel()
    mask = opened.repeat(1, 2, 1)[:, None]  # query row g * 5 + i reads mask row i
    scores = (q @ k.transpose(-1, -2) / 8**0.5).masked_fill(~mask, float("-inf"))
    expected = (scores.softmax(-1) * keep * scale) @ v
    torch.testing.assert_close(out, expected, **TIGHT)
    for got, want in zip(grads, torch.autograd.grad(expected, (q, k, v), d_out), strict=True):
        torch.testing.assert_close(got, want, **TIGHT)


def test_loss_decreases_when_memorising_a_tiny_batch() -> None:
    torch.manual_seed(0)
    model = GenerativeDecoder(tiny_config("gamer", dropout=0.0, attention_dropout=0.0))
    inputs = training_batch()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = next_token_loss(logits_of(model, inputs), inputs["tokens"], inputs["slots"] > 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(math.log(VOCAB), rel=0.05)  # near-uniform at init
    assert losses[-1] < 0.5 * losses[0]


def test_next_token_loss_scores_only_masked_targets_with_temperature() -> None:
    targets = torch.tensor([[1, 5, 6, 2]])
    mask = torch.tensor([[False, True, False, True]])  # score tokens 1 and 3
    logits = torch.zeros(1, 4, 8)
    logits[0, 0, 5] = 2.0  # position 0 predicts token 1 (= 5)
    logits[0, 2, 2] = 1.0  # position 2 predicts token 3 (= 2)
    one = -math.log(math.exp(2.0) / (math.exp(2.0) + 7))
    three = -math.log(math.exp(1.0) / (math.exp(1.0) + 7))
    assert next_token_loss(logits, targets, mask).item() == pytest.approx((one + three) / 2)
    assert next_token_loss(logits, targets, mask, reduction="sum").item() == pytest.approx(one + three)
    scrambled = logits.clone()
    scrambled[0, 1] = torch.randn(8)  # position 1 predicts an unscored token
    scrambled[0, 3] = torch.randn(8)  # position 3 predicts nothing
    assert next_token_loss(scrambled, targets, mask).item() == pytest.approx((one + three) / 2)
    assert next_token_loss(logits, targets, mask, temperature=0.5).item() == pytest.approx(
        next_token_loss(2 * logits, targets, mask).item()
    )
    assert next_token_loss(logits, targets, torch.zeros_like(mask)).item() == 0.0


def test_cache_holds_keys_per_block() -> None:
    model = tiny_model("qwen3")
    _, cache = model(**batch([encode(CROSS_HISTORY)]), use_cache=True)
    assert isinstance(cache, KVCache)
    assert len(cache.self_kv) == 2 and cache.cross_kv == (None, None)
    assert cache.self_kv[0][0].shape == (1, 1, len(CROSS_HISTORY) * ITEM_LEN, 16)
