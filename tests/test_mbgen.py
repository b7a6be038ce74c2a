"""MBGen's PBATransformer (baselines/mbgen.py): the seq2seq contract (padding, incremental decoding, row reordering,
causality, determinism, learning), hand checks of the T5 pieces and of the position-routed behavior-injected FFN,
the paper config's parameter count and the TOML profiles."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from baselines.mbgen import PBAConfig, PBATransformer, PositionBehaviorFFN, route
from baselines.mbstr import relative_position_bucket
from baselines.tiger import Attention, causal_relative_position_bucket

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

# Vocabulary per the contract: 0 pad/start, 1..N_B behavior tokens, then ID_LEVELS blocks of CODES tokens, then EOS.
N_B, ID_LEVELS, CODES = 3, 3, 8
VOCAB = 1 + N_B + ID_LEVELS * CODES + 1
EOS = VOCAB - 1
SMALL = {
    "d_model": 32, "d_ff": 48, "d_kv": 8, "n_heads": 4, "n_encoder_layers": 2, "n_decoder_layers": 2,
    "behavior_embedding_dim": 8, "sparse_encoder_layers": [1], "sparse_decoder_layers": [0, 1],
    "behavior_layers_encoder": [0], "behavior_layers_decoder": [0, 1],
}  # fmt: skip


def make_model(seed: int = 0, **overrides) -> PBATransformer:
    torch.manual_seed(seed)
    return PBATransformer(vocab_size=VOCAB, n_behaviors=N_B, id_levels=ID_LEVELS, **(SMALL | overrides))


def interactions(n: int, generator: torch.Generator) -> tuple[list[int], list[int], list[int]]:
    """n random interactions -> (tokens, levels, slots), each interaction [behavior, ID_1..ID_L]."""
    tokens, levels, slots = [], [], []
    for _ in range(n):
        b = int(torch.randint(N_B, (1,), generator=generator))
        codes = torch.randint(CODES, (ID_LEVELS,), generator=generator).tolist()
        tokens += [1 + b] + [1 + N_B + level * CODES + c for level, c in enumerate(codes)]
        levels += [b] * (1 + ID_LEVELS)
        slots += list(range(1 + ID_LEVELS))
    return tokens, levels, slots


def make_batch(n_items: list[int], seed: int = 0, extra_pad: int = 0) -> dict[str, torch.Tensor]:
    """Histories of the given numbers of interactions + EOS, right-padded; decoder input [start, behavior, IDs]."""
    g = torch.Generator().manual_seed(seed)
    width = max(n_items) * (1 + ID_LEVELS) + 1 + extra_pad
    enc = {k: [] for k in ("tokens", "levels", "slots")}
    dec = {k: [] for k in ("tokens", "levels", "slots")}
    for n in n_items:
        t, lv, s = interactions(n, g)
        pad = width - len(t) - 1
        enc["tokens"].append(t + [EOS] + [0] * pad)
        enc["levels"].append(lv + [-1] * (pad + 1))
        enc["slots"].append(s + [-1] * (pad + 1))
        t, lv, s = interactions(1, g)
        dec["tokens"].append([0] + t)
        dec["levels"].append([-1] + lv)
        dec["slots"].append([-1] + s)
    out = {f"enc_{k}": torch.tensor(v) for k, v in enc.items()}
    return out | {f"dec_{k}": torch.tensor(v) for k, v in dec.items()}


def run(model: PBATransformer, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> (memory, memory_mask, decoder logits over the whole teacher-forced decoder input)."""
    memory, mask = model.encode(batch["enc_tokens"], batch["enc_levels"], batch["enc_slots"])
    logits, _ = model.decode(memory, mask, batch["dec_tokens"], batch["dec_levels"], batch["dec_slots"])
    return memory, mask, logits


N_ITEMS = [5, 2, 1, 4]


def test_causal_bucket_by_hand() -> None:
    # T5 unidirectional, 32 buckets, max distance 128, relative = key - query. Distances n < 16 exact; from 16 on
    # 16 + floor(log(n / 16) / log(128 / 16) * 16), capped at 31:
    # n=20: log(1.25)/log(8)*16 = 1.72 -> 17; n=21: 2.09 -> 18; n=31: 5.09 -> 21; n=46: 8.13 -> 24;
    # n=63: 10.55 -> 26; n=100: 14.10 -> 30; n=127: 15.94 -> 31; n=128: 16 -> 32, capped to 31. Future keys -> 0.
    expected = {
        0: 0, -1: 1, -15: 15, -16: 16, -20: 17, -21: 18, -31: 21, -46: 24, -63: 26, -100: 30, -127: 31, -128: 31,
        -1000: 31, 1: 0, 5: 0,
    }  # fmt: skip
    got = causal_relative_position_bucket(torch.tensor(list(expected)), num_buckets=32, max_distance=128)
    assert got.tolist() == list(expected.values())


def test_bidirectional_bucket_at_max_distance_128() -> None:
    # The encoder's buckets (mbstr's helper with max distance 128): 16 per side, n < 8 exact, then
    # 8 + floor(log(n / 8) / log(16) * 8): n=12: 1.17 -> 9; n=90: 6.98 -> 14; n=91: 7.02 -> 15; keys after the
    # query add 16.
    expected = {0: 0, -1: 1, -7: 7, -8: 8, -12: 9, -90: 14, -91: 15, -500: 15, 1: 17, 12: 25, 91: 31}
    got = relative_position_bucket(torch.tensor(list(expected)), num_buckets=32, max_distance=128)
    assert got.tolist() == list(expected.values())


def test_route() -> None:
    # [start, behavior(level 2), ID1, ID2, ID3, EOS, pad]
    slots = torch.tensor([[-1, 0, 1, 2, 3, -1, -1]])
    levels = torch.tensor([[-1, 2, 2, 2, 2, -1, -1]])
    expert, behavior = route(levels, slots)
    assert expert.tolist() == [[0, 1, 2, 3, 4, 0, 0]]
    assert behavior.tolist() == [[0, 0, 3, 3, 3, 0, 0]]


def test_attention_is_unscaled_t5_attention() -> None:
    """softmax(q k^T + bias) v per head, no 1/sqrt(d_kv), then the output projection."""
    torch.manual_seed(0)
    cfg = PBAConfig(vocab_size=VOCAB, n_behaviors=N_B, id_levels=ID_LEVELS, d_model=12, d_kv=5, n_heads=3)
    attention = Attention(cfg).eval()
    x, memory = torch.randn(2, 4, 12), torch.randn(2, 6, 12)
    bias = torch.randn(2, 3, 4, 6)
    k, v = attention.project_kv(memory)
    with torch.no_grad():
        out = attention(x, k, v, bias)
        q = attention.q(x).view(2, 4, 3, 5).transpose(1, 2)
        keys = attention.k(memory).view(2, 6, 3, 5).transpose(1, 2)
        values = attention.v(memory).view(2, 6, 3, 5).transpose(1, 2)
        probs = (q @ keys.transpose(-1, -2) + bias).softmax(-1)
        expected = attention.o((probs @ values).transpose(1, 2).reshape(2, 4, 15))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_ffn_routes_by_position_and_injects_behavior() -> None:
    """Each token's output is its own position's expert applied to [x, behavior row] (row 0 for non-ID tokens)."""
    torch.manual_seed(0)
    cfg = PBAConfig(vocab_size=VOCAB, n_behaviors=N_B, id_levels=ID_LEVELS, d_model=16, d_ff=24)
    cfg.behavior_embedding_dim = 4
    ffn = PositionBehaviorFFN(cfg, sparse=True, behavior_injection=True).eval()
    assert len(ffn.experts) == ID_LEVELS + 2 and ffn.experts[0].wi.in_features == 16 + 4
    slots = torch.tensor([[-1, 0, 1, 2, 3, 0, 1, 2, 3, -1], [0, 1, 2, 3, -1, -1, -1, -1, -1, -1]])
    levels = torch.tensor([[-1, 1, 1, 1, 1, 0, 0, 0, 0, -1], [2, 2, 2, 2, -1, -1, -1, -1, -1, -1]])
    x = torch.randn(2, 10, 16)
    with torch.no_grad():
        out = ffn(x, *route(levels, slots))
        for b in range(2):
            for t in range(10):
                s, lv = int(slots[b, t]), int(levels[b, t])
                row = ffn.behavior.weight[lv + 1 if s >= 1 else 0]
                expected = ffn.experts[s + 1](torch.cat([x[b, t], row]))
                torch.testing.assert_close(out[b, t], expected, atol=1e-6, rtol=1e-6)


def test_shapes_and_past_layout() -> None:
    model = make_model().eval()
    batch = make_batch(N_ITEMS)
    memory, mask, logits = run(model, batch)
    B, S = batch["enc_tokens"].shape
    assert memory.shape == (B, S, SMALL["d_model"]) and mask.dtype == torch.bool
    assert logits.shape == (B, 1 + 1 + ID_LEVELS, VOCAB) and torch.isfinite(logits).all()
    _, past = model.decode(memory, mask, batch["dec_tokens"], batch["dec_levels"], batch["dec_slots"])
    assert len(past) == SMALL["n_decoder_layers"]
    heads, d_kv = SMALL["n_heads"], SMALL["d_kv"]
    for layer in past:
        assert [tuple(t.shape) for t in layer] == [(B, heads, 5, d_kv)] * 2 + [(B, heads, S, d_kv)] * 2


def test_padding_never_influences_real_outputs() -> None:
    model = make_model().eval()
    with torch.no_grad():
        memory, mask, logits = run(model, make_batch(N_ITEMS))
        memory_p, mask_p, logits_p = run(model, make_batch(N_ITEMS, extra_pad=5))
    S = mask.size(1)
    assert not mask_p[:, S:].any() and torch.equal(mask_p[:, :S], mask)
    torch.testing.assert_close(memory_p[:, :S][mask], memory[mask], atol=1e-5, rtol=0)
    torch.testing.assert_close(logits_p, logits, atol=1e-5, rtol=0)


def test_incremental_decoding_equals_full() -> None:
    model = make_model().eval()
    batch = make_batch(N_ITEMS)
    with torch.no_grad():
        memory, mask, full = run(model, batch)
        tok, lev, slo = batch["dec_tokens"], batch["dec_levels"], batch["dec_slots"]
        steps, past = [], None
        logits, past = model.decode(memory, mask, tok[:, :2], lev[:, :2], slo[:, :2])
        steps.append(logits)
        for t in range(2, tok.size(1)):
            logits, past = model.decode(memory, mask, tok[:, t : t + 1], lev[:, t : t + 1], slo[:, t : t + 1], past)
            steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)


def test_past_rows_can_be_reordered() -> None:
    """Beam search's index_select on past, memory and mask equals decoding the reordered rows from scratch."""
    model = make_model().eval()
    batch = make_batch(N_ITEMS)
    idx = torch.tensor([2, 2, 0, 3, 1, 0])
    with torch.no_grad():
        memory, mask, _ = run(model, batch)
        tok, lev, slo = batch["dec_tokens"], batch["dec_levels"], batch["dec_slots"]
        _, past = model.decode(memory, mask, tok[:, :2], lev[:, :2], slo[:, :2])
        past = [tuple(t.index_select(0, idx) for t in layer) for layer in past]
        memory, mask = memory.index_select(0, idx), mask.index_select(0, idx)
        step, _ = model.decode(memory, mask, tok[idx, 2:3], lev[idx, 2:3], slo[idx, 2:3], past)
        full, _ = model.decode(memory, mask, tok[idx, :3], lev[idx, :3], slo[idx, :3])
    torch.testing.assert_close(step[:, 0], full[:, 2], atol=1e-5, rtol=0)


def test_decoder_never_sees_future_targets() -> None:
    model = make_model().eval()
    batch = make_batch(N_ITEMS)
    changed = dict(batch)
    future = batch["dec_tokens"][:, 3:]  # ID levels 2.. of the target
    code = (future - 1 - N_B) % CODES
    changed["dec_tokens"] = torch.cat([batch["dec_tokens"][:, :3], future - code + (code + 1) % CODES], dim=1)
    assert not torch.equal(changed["dec_tokens"], batch["dec_tokens"])
    with torch.no_grad():
        _, _, logits = run(model, batch)
        _, _, logits_c = run(model, changed)
    torch.testing.assert_close(logits_c[:, :3], logits[:, :3], atol=1e-6, rtol=0)
    assert not torch.allclose(logits_c[:, 3:], logits[:, 3:])


def test_behavior_injection_reaches_the_output() -> None:
    """Changing only the ID tokens' levels (behavior tokens kept) changes the memory: the injection is wired in."""
    model = make_model().eval()
    batch = make_batch(N_ITEMS)
    changed = dict(batch)
    ids = batch["enc_slots"] >= 1
    changed["enc_levels"] = torch.where(ids, (batch["enc_levels"] + 1) % N_B, batch["enc_levels"])
    with torch.no_grad():
        memory, mask, _ = run(model, batch)
        memory_c, _, _ = run(model, changed)
    assert not torch.allclose(memory_c[mask], memory[mask])


def test_determinism() -> None:
    batch = make_batch(N_ITEMS)
    outs = []
    for _ in range(2):
        model = make_model(seed=3).train()
        torch.manual_seed(11)  # dropout
        outs.append(run(model, batch)[2])
    assert torch.equal(outs[0], outs[1])


def test_loss_decreases_on_a_fixed_batch() -> None:
    model = make_model().train()
    batch = make_batch(N_ITEMS * 2, seed=5)
    labels = torch.cat([batch["dec_tokens"][:, 1:], torch.full((len(N_ITEMS) * 2, 1), EOS)], dim=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        logits = run(model, batch)[2]
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses


def test_every_parameter_gets_a_gradient() -> None:
    """Every expert (start/pad/EOS, behavior, each ID level), behavior table and bias table is trained."""
    model = make_model().train()
    memory, mask, logits = run(model, make_batch(N_ITEMS))
    logits.sum().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_paper_config_parameter_count() -> None:
    """Paper profile: 12,524,416 + 256 * vocab_size parameters (n_behaviors 3, 4 ID levels).

    Per attention 4 * 256 * 384 = 393,216 (encoder 4, decoder 8); relative bias 32 * 6 = 192 per stack;
    FFN/expert 256 -> 512 -> 256 = 262,144, or 294,912 with the 64-wide behavior input; behavior table 4 * 64.
    Encoder: 4 * 393,216 + 192 + 2 * (294,912 + 256) + 2 * 262,144 + 9 * 256 (norms) = 2,689,984.
    Decoder: 8 * 393,216 + 192 + 2 * (6 * 294,912 + 256) + 2 * 6 * 262,144 + 13 * 256 = 9,834,432.
    With 256 codes per level the vocabulary is 1 + 3 + 1,024 + 1 = 1,029 tokens: 12,787,840 in all.
    """
    model = PBATransformer(vocab_size=1029, n_behaviors=3, id_levels=4)
    assert sum(p.numel() for p in model.parameters()) == 12_524_416 + 256 * 1029 == 12_787_840
    assert [len(layer.ff.experts) for layer in model.decoder_layers] == [6] * 4
    assert [len(layer.ff.experts) for layer in model.encoder_layers] == [1] * 4
    assert [layer.ff.experts[0].wi.in_features for layer in model.decoder_layers] == [320, 320, 256, 256]


def test_toml_profiles() -> None:
    path = Path(__file__).resolve().parents[1] / "baselines" / "mbgen.toml"
    profiles = tomllib.loads(path.read_text())
    assert set(profiles) == {"smoke", "cpu", "paper"}
    for name, table in profiles.items():
        assert {"model", "training", "tokenizer"} <= set(table), name
        PBATransformer(vocab_size=VOCAB, n_behaviors=N_B, id_levels=ID_LEVELS, **table["model"])
    smoke = profiles["smoke"]["model"]
    assert 32 <= smoke["d_model"] <= 64 and smoke["n_encoder_layers"] == smoke["n_decoder_layers"] == 1
    paper = PBATransformer(vocab_size=VOCAB, n_behaviors=N_B, id_levels=ID_LEVELS, **profiles["paper"]["model"])
    default = PBATransformer(vocab_size=VOCAB, n_behaviors=N_B, id_levels=ID_LEVELS)
    assert paper.cfg == default.cfg  # the constructor's defaults are the paper profile


def test_layer_lists_are_checked() -> None:
    with pytest.raises(ValueError, match="sparse_decoder_layers"):
        make_model(sparse_decoder_layers=[2])
