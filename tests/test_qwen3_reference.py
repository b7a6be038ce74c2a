"""The plain Qwen3 decoder (`DecoderConfig.qwen3`) against Hugging Face's `Qwen3ForCausalLM`.

Optional: skipped when ``transformers`` is not installed (it is not a dependency of this project). Both
models get the same random weights through an explicit name map and must give the same logits, for a
full causal forward, for left-padded rows, and for a KV-cache continuation. The weights are drawn far
from the 0.02-std init (norm scales away from one, sharp attention) so that a swapped RoPE channel
layout, a misplaced q/k norm or a wrong GQA head grouping shows up as an O(1) difference.

HF's RMSNorm, RoPE angles and eager softmax always run in float32, so float64 buys nothing: both models
run in float32 and agree to about 1e-6.
"""

from __future__ import annotations

import random

import pytest
import torch

from gamer.model import DecoderConfig, GenerativeDecoder

transformers = pytest.importorskip("transformers")

N_BEHAVIORS, ID_LEVELS, CODES = 3, 2, 8
VOCAB = 1 + N_BEHAVIORS + ID_LEVELS * CODES
ITEM_LEN = 1 + ID_LEVELS
# Grouped-query attention with two query heads per key/value head, and n_heads * head_dim > d_model.
SIZES = dict(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=16, d_ff=48, rms_eps=1e-6, rope_theta=1e6)
# Qwen3's eps 1e-6 moves the logits by only ~2e-5 wherever it sits, and theta 1e6 barely turns the slow
# channels over 15 positions; a large eps and a small theta make both visible far above ATOL.
EXPOSED = dict(rms_eps=0.05, rope_theta=100.0)
ATOL = 1e-5


pytestmark = pytest.mark.usefixtures("one_thread")


def hf_name(ours: str) -> str:
    """Our parameter name -> the `Qwen3ForCausalLM` state-dict key holding the same tensor."""
    parts = ours.split(".")
    if ours == "embed_tokens.weight":
        return "model.embed_tokens.weight"
    if ours == "norm.weight":
        return "model.norm.weight"
    if ours == "lm_head.weight":
        return "lm_head.weight"
    assert parts[0] == "blocks", ours
    layer, rest = parts[1], ".".join(parts[2:])
    block_map = {
        "attention_norm.weight": "input_layernorm.weight",
        "mlp_norm.weight": "post_attention_layernorm.weight",
        **{
            f"self_attention.{p}.weight": f"self_attn.{p}.weight"
            for p in ("q_proj", "k_proj", "v_proj", "o_proj", "q_norm", "k_norm")
        },
        **{f"mlp.{p}.weight": f"mlp.{p}.weight" for p in ("gate_proj", "up_proj", "down_proj")},
    }
    return f"model.layers.{layer}.{block_map[rest]}"


def build_pair(seed: int = 0, **overrides: float) -> tuple[GenerativeDecoder, torch.nn.Module]:
    """Our qwen3 decoder with random weights and an HF `Qwen3ForCausalLM` holding the same ones, both in eval."""
    sizes = {**SIZES, **overrides}
    config = DecoderConfig.qwen3(VOCAB, N_BEHAVIORS, ID_LEVELS, **sizes, dropout=0.0, attention_dropout=0.0)
    ours = GenerativeDecoder(config).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in ours.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.3 * noise)  # norm scales away from one, so a skipped or swapped norm shows
            else:
                p.copy_(noise / p.size(-1) ** 0.5 * (3.0 if name == "embed_tokens.weight" else 1.0))

    hf_config = transformers.Qwen3Config(
        vocab_size=VOCAB,
        hidden_size=config.d_model,
        intermediate_size=config.d_ff,
        num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads,
        num_key_value_heads=config.n_kv_heads,
        head_dim=config.head_dim,
        hidden_act="silu",
        rope_theta=config.rope_theta,
        rms_norm_eps=config.rms_eps,
        attention_bias=False,
        attention_dropout=0.0,
        tie_word_embeddings=True,
        use_sliding_window=False,
        max_position_embeddings=128,
        attn_implementation="eager",
    )
    hf = transformers.Qwen3ForCausalLM(hf_config).eval()

    ours_state = ours.state_dict()
    hf_state = hf.state_dict()
    mapped = {hf_name(name): tensor for name, tensor in ours_state.items()}
    assert set(mapped) == set(hf_state), (sorted(set(mapped) ^ set(hf_state)), "name map is not a bijection")
    for key, tensor in mapped.items():
        assert hf_state[key].shape == tensor.shape, key
    hf.load_state_dict(mapped, strict=True)
    assert hf.lm_head.weight.data_ptr() == hf.model.embed_tokens.weight.data_ptr(), "HF head must stay tied"
    assert ours.lm_head.weight is ours.embed_tokens.weight
    return ours, hf


def random_rows(rng: random.Random, n_rows: int, n_items: int) -> dict[str, torch.Tensor]:
    """Full rows of ``n_items`` interactions ``[behavior, id_1 .. id_L]``, positions 0..T-1, no pad."""
    tokens, levels = [], []
    for _ in range(n_rows):
        row_tokens, row_levels = [], []
        for _ in range(n_items):
            level = rng.randrange(N_BEHAVIORS)
            codes = [1 + N_BEHAVIORS + lvl * CODES + rng.randrange(CODES) for lvl in range(ID_LEVELS)]
            row_tokens += [1 + level, *codes]
            row_levels += [level] * ITEM_LEN
        tokens.append(row_tokens)
        levels.append(row_levels)
    t = n_items * ITEM_LEN
    tokens_t = torch.tensor(tokens)
    return dict(
        tokens=tokens_t,
        levels=torch.tensor(levels),
        slots=(torch.arange(t) % ITEM_LEN).expand(n_rows, t).clone(),
        positions=torch.arange(t).expand(n_rows, t).clone(),
    )


def left_pad(rows: dict[str, torch.Tensor], n_pad: list[int]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Row b keeps its last ``T - n_pad[b]`` tokens behind ``n_pad[b]`` pads; positions restart at 0 on the
    first real token. Returns the inputs and the HF attention mask (1 = real)."""
    out = {k: v.clone() for k, v in rows.items()}
    real = torch.ones_like(out["tokens"])
    for b, n in enumerate(n_pad):
        # Shift the row right by n, fill the front with pads.
        for key, fill in (("tokens", 0), ("levels", -1), ("slots", -1)):
            out[key][b] = torch.cat((torch.full((n,), fill), rows[key][b, : rows[key].size(1) - n]))
        out["positions"][b] = (torch.arange(rows["tokens"].size(1)) - n).clamp(min=0)
        real[b, :n] = 0
    return out, real


@pytest.mark.parametrize("overrides", [{}, EXPOSED], ids=["qwen3_defaults", "large_eps_small_theta"])
@torch.no_grad()
def test_full_forward_matches_hf_qwen3(overrides: dict[str, float]) -> None:
    ours, hf = build_pair(seed=0, **overrides)
    rows = random_rows(random.Random(0), n_rows=3, n_items=5)
    logits, _ = ours(rows["tokens"], rows["levels"], rows["slots"], rows["positions"])
    reference = hf(input_ids=rows["tokens"], position_ids=rows["positions"]).logits
    assert logits.shape == reference.shape == (3, 5 * ITEM_LEN, VOCAB)
    assert reference.abs().max() > 1.0, "weights too small for the comparison to discriminate"
    torch.testing.assert_close(logits, reference, rtol=0.0, atol=ATOL)


@torch.no_grad()
def test_left_padded_rows_match_hf_qwen3_on_real_tokens() -> None:
    ours, hf = build_pair(seed=1)
    rows = random_rows(random.Random(1), n_rows=3, n_items=4)
    padded, real = left_pad(rows, n_pad=[0, ITEM_LEN, 2 * ITEM_LEN])
    logits, _ = ours(padded["tokens"], padded["levels"], padded["slots"], padded["positions"])
    reference = hf(input_ids=padded["tokens"], attention_mask=real, position_ids=padded["positions"]).logits
    is_real = real.bool()
    torch.testing.assert_close(logits[is_real], reference[is_real], rtol=0.0, atol=ATOL)


@torch.no_grad()
def test_kv_cache_continuation_matches_hf_qwen3() -> None:
    ours, hf = build_pair(seed=2)
    rows = random_rows(random.Random(2), n_rows=2, n_items=4)
    split = 2 * ITEM_LEN + 1  # prefix ends inside an interaction, just after its behavior token
    head = {k: v[:, :split] for k, v in rows.items()}
    tail = {k: v[:, split:] for k, v in rows.items()}

    _, cache = ours(head["tokens"], head["levels"], head["slots"], head["positions"], use_cache=True)
    logits = []
    for t in range(tail["tokens"].size(1)):  # one token at a time, as beam search decodes
        step = {k: v[:, t : t + 1] for k, v in tail.items()}
        out, cache = ours(step["tokens"], step["levels"], step["slots"], step["positions"], cache=cache)
        logits.append(out)
    ours_tail = torch.cat(logits, 1)

    hf_head = hf(input_ids=head["tokens"], position_ids=head["positions"], use_cache=True)
    past = hf_head.past_key_values
    hf_tail = hf(input_ids=tail["tokens"], position_ids=tail["positions"], past_key_values=past, use_cache=True).logits
    hf_full = hf(input_ids=rows["tokens"], position_ids=rows["positions"]).logits[:, split:]

    torch.testing.assert_close(ours_tail, hf_tail, rtol=0.0, atol=ATOL)
    torch.testing.assert_close(ours_tail, hf_full, rtol=0.0, atol=ATOL)
