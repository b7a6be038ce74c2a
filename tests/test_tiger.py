"""TIGER's T5 encoder-decoder (baselines/tiger.py): the seq2seq contract (padding, incremental decoding, causality,
row reordering, determinism, learning), the paper config's parameter count and init, hand checks of T5's
relative-position buckets, and the TOML profiles."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from baselines.mbstr import relative_position_bucket
from baselines.tiger import T5EncoderDecoder, causal_relative_position_bucket

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

# vocabulary: 0 pad/start, 1..3 behaviors, 4 levels x 8 ID tokens (4..35), 36 EOS
N_BEHAVIORS, ID_LEVELS, CODES = 3, 4, 8
VOCAB = 1 + N_BEHAVIORS + ID_LEVELS * CODES + 1
EOS = VOCAB - 1
SMALL = {"d_model": 32, "d_ff": 64, "d_kv": 16, "n_heads": 3, "n_encoder_layers": 2, "n_decoder_layers": 2}


def make_model(seed: int = 0, **overrides) -> T5EncoderDecoder:
    torch.manual_seed(seed)
    return T5EncoderDecoder(vocab_size=VOCAB, n_behaviors=N_BEHAVIORS, id_levels=ID_LEVELS, **(SMALL | overrides))


def item_tokens(n: int, generator: torch.Generator) -> torch.Tensor:
    """[n, ID_LEVELS] random ID tokens, level l in its own range."""
    codes = torch.randint(0, CODES, (n, ID_LEVELS), generator=generator)
    return 1 + N_BEHAVIORS + torch.arange(ID_LEVELS) * CODES + codes


def make_encoder_input(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """TIGER-MB histories of ``lengths`` interactions ([behavior, ID_1..ID_L] each, then EOS), right-padded;
    returns tokens, levels, slots [B, S]."""
    generator = torch.Generator().manual_seed(seed)
    width = max(lengths) * (1 + ID_LEVELS) + 1
    tokens = torch.zeros(len(lengths), width, dtype=torch.long)
    levels = torch.full_like(tokens, -1)
    slots = torch.full_like(tokens, -1)
    for row, n in enumerate(lengths):  # test data only; the model has no such loop
        behavior = torch.randint(0, N_BEHAVIORS, (n, 1), generator=generator)
        tokens[row, : n * (1 + ID_LEVELS)] = torch.cat([behavior + 1, item_tokens(n, generator)], 1).flatten()
        tokens[row, n * (1 + ID_LEVELS)] = EOS
        levels[row, : n * (1 + ID_LEVELS)] = behavior.expand(n, 1 + ID_LEVELS).flatten()
        slots[row, : n * (1 + ID_LEVELS)] = torch.arange(1 + ID_LEVELS).repeat(n)
    return tokens, levels, slots


def make_decoder_input(batch: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Teacher-forcing input [start, behavior, ID_1..ID_L]; returns tokens, levels, slots [B, 2 + L]."""
    generator = torch.Generator().manual_seed(seed)
    behavior = torch.randint(0, N_BEHAVIORS, (batch, 1), generator=generator)
    start = torch.zeros(batch, 1, dtype=torch.long)
    tokens = torch.cat([start, behavior + 1, item_tokens(batch, generator)], 1)
    levels = torch.cat([start - 1, behavior.expand(batch, 1 + ID_LEVELS)], 1)
    slots = torch.cat([start - 1, torch.arange(1 + ID_LEVELS).expand(batch, -1)], 1)
    return tokens, levels, slots


def full_logits(model: T5EncoderDecoder, enc, dec) -> torch.Tensor:
    memory, mask = model.encode(*enc)
    return model.decode(memory, mask, *dec)[0]


def test_shapes_and_memory_mask() -> None:
    model = make_model().eval()
    enc, dec = make_encoder_input([3, 1, 2]), make_decoder_input(3)
    memory, mask = model.encode(*enc)
    assert memory.shape == (3, enc[0].size(1), SMALL["d_model"])
    assert torch.equal(mask, enc[0] != 0)
    logits, past = model.decode(memory, mask, *dec)
    assert logits.shape == (3, dec[0].size(1), VOCAB)
    assert isinstance(past, list) and len(past) == SMALL["n_decoder_layers"]
    for layer in past:
        assert all(t.size(0) == 3 for t in layer)


def test_padding_never_influences_real_outputs() -> None:
    model = make_model().eval()
    enc, dec = make_encoder_input([3, 1, 2]), make_decoder_input(3)
    padded = tuple(F.pad(t, (0, 5), value=0 if i == 0 else -1) for i, t in enumerate(enc))
    with torch.no_grad():
        memory, mask = model.encode(*enc)
        memory_padded, mask_padded = model.encode(*padded)
        logits = model.decode(memory, mask, *dec)[0]
        logits_padded = model.decode(memory_padded, mask_padded, *dec)[0]
    assert torch.allclose(memory[mask], memory_padded[:, : enc[0].size(1)][mask], atol=1e-5)
    assert not mask_padded[:, enc[0].size(1) :].any()
    assert torch.allclose(logits, logits_padded, atol=1e-5)


def test_incremental_decoding_equals_full_decoding() -> None:
    model = make_model().eval()
    enc, (tokens, levels, slots) = make_encoder_input([3, 1, 2]), make_decoder_input(3)
    with torch.no_grad():
        memory, mask = model.encode(*enc)
        full = model.decode(memory, mask, tokens, levels, slots)[0]
        steps, past = [], None
        # the caller's pattern: [start, behavior] in one call, then one token per call
        for start, stop in [(0, 2)] + [(t, t + 1) for t in range(2, tokens.size(1))]:
            logits, past = model.decode(
                memory, mask, tokens[:, start:stop], levels[:, start:stop], slots[:, start:stop], past
            )
            steps.append(logits)
    assert past[0][0].size(2) == tokens.size(1)  # the cache holds every decoder position
    assert torch.allclose(full, torch.cat(steps, 1), atol=1e-5)


def test_past_rows_can_be_reordered_and_duplicated() -> None:
    """Beam search: index_select on past, memory and memory_mask continues each selected row's own decoding."""
    model = make_model().eval()
    enc, (tokens, levels, slots) = make_encoder_input([3, 1, 2]), make_decoder_input(3)
    idx = torch.tensor([2, 0, 0, 1])
    with torch.no_grad():
        memory, mask = model.encode(*enc)
        full = model.decode(memory[idx], mask[idx], tokens[idx], levels[idx], slots[idx])[0]
        _, past = model.decode(memory, mask, tokens[:, :3], levels[:, :3], slots[:, :3])
        past = [tuple(t.index_select(0, idx) for t in layer) for layer in past]
        rest = model.decode(memory[idx], mask[idx], tokens[idx, 3:], levels[idx, 3:], slots[idx, 3:], past)[0]
    assert torch.allclose(full[:, 3:], rest, atol=1e-5)


def test_decoder_never_sees_future_targets() -> None:
    model = make_model().eval()
    enc, (tokens, levels, slots) = make_encoder_input([3, 1, 2]), make_decoder_input(3)
    with torch.no_grad():
        memory, mask = model.encode(*enc)
        logits = model.decode(memory, mask, tokens, levels, slots)[0]
        for t in range(tokens.size(1) - 1):
            changed = tokens.clone()
            changed[:, t + 1 :] = (changed[:, t + 1 :] + 7) % (VOCAB - 1) + 1
            other = model.decode(memory, mask, changed, levels, slots)[0]
            assert torch.allclose(logits[:, : t + 1], other[:, : t + 1], atol=1e-6)
            assert not torch.allclose(logits[:, t + 1 :], other[:, t + 1 :], atol=1e-3)


def test_levels_and_slots_are_ignored() -> None:
    model = make_model().eval()
    enc, dec = make_encoder_input([3, 1, 2]), make_decoder_input(3)
    zeros = lambda parts: (parts[0], torch.zeros_like(parts[1]), torch.zeros_like(parts[2]))  # noqa: E731
    with torch.no_grad():
        assert torch.equal(full_logits(model, enc, dec), full_logits(model, zeros(enc), zeros(dec)))


def test_deterministic_under_manual_seed() -> None:
    enc, dec = make_encoder_input([3, 1, 2]), make_decoder_input(3)
    a, b = make_model(seed=5).train(), make_model(seed=5).train()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    torch.manual_seed(11)
    out_a = full_logits(a, enc, dec)
    torch.manual_seed(11)
    out_b = full_logits(b, enc, dec)
    assert torch.equal(out_a, out_b)
    torch.manual_seed(12)
    assert not torch.equal(out_a, full_logits(a, enc, dec))  # dropout is active in train mode


def test_loss_decreases_on_a_tiny_batch() -> None:
    model = make_model()
    enc, (tokens, levels, slots) = make_encoder_input([3, 1, 2, 4, 2, 1, 3, 2], seed=3), make_decoder_input(8)
    labels = torch.cat([tokens[:, 1:], torch.full((8, 1), EOS)], 1)  # decoder input shifted by one, plus EOS

    def loss() -> torch.Tensor:
        return F.cross_entropy(full_logits(model, enc, (tokens, levels, slots)).flatten(0, 1), labels.flatten())

    with torch.no_grad():
        before = loss().item()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        after = loss().item()
    assert after < 0.3 * before, (before, after)


def test_paper_config_parameter_count_and_tied_head() -> None:
    """Paper profile, vocabulary 1,100: 4,600,448 parameters, of which 140,800 are the shared embedding.

    Encoder layer: q,k,v,o 4 * 128 * 384 + FFN 2 * 128 * 1024 + 2 norms * 128 = 459,008.
    Decoder layer: self + cross attention 2 * 196,608 + FFN 262,144 + 3 norms * 128 = 655,744.
    Plus 4 of each, two bias tables 32 * 6, two final norms 128, embedding 1,100 * 128.
    """
    torch.manual_seed(0)
    model = T5EncoderDecoder(vocab_size=1100, n_behaviors=3, id_levels=4)
    enc_layer = 4 * 128 * 384 + 2 * 128 * 1024 + 2 * 128
    dec_layer = 2 * 4 * 128 * 384 + 2 * 128 * 1024 + 3 * 128
    expected = 4 * enc_layer + 4 * dec_layer + 2 * 32 * 6 + 2 * 128 + 1100 * 128
    assert expected == 4_600_448
    assert sum(p.numel() for p in model.parameters()) == expected
    vocab_sized = [name for name, p in model.named_parameters() if p.size(0) == 1100]
    assert vocab_sized == ["embed.weight"]  # no separate output head


def test_t5_init_stds() -> None:
    torch.manual_seed(0)
    model = T5EncoderDecoder(vocab_size=1100, n_behaviors=3, id_levels=4)
    attn, ff = model.encoder_layers[0].attn, model.decoder_layers[1].ff
    checks = [
        (model.embed.weight, 1.0),
        (attn.q.weight, (128 * 64) ** -0.5),
        (attn.k.weight, 128**-0.5),
        (attn.v.weight, 128**-0.5),
        (attn.o.weight, 384**-0.5),
        (ff.wi.weight, 128**-0.5),
        (ff.wo.weight, 1024**-0.5),
    ]
    for weight, std in checks:
        assert weight.std().item() == pytest.approx(std, rel=0.05)
    assert torch.equal(model.decoder_norm.weight, torch.ones(128))


def t5_bucket(relative: int, bidirectional: bool, num_buckets: int = 32, max_distance: int = 128) -> int:
    """T5's bucket formula for one ``key - query`` offset, written out scalar by scalar."""
    bucket, n = 0, -relative
    if bidirectional:
        num_buckets //= 2
        bucket += num_buckets if n < 0 else 0
        n = abs(n)
    else:
        n = max(n, 0)
    max_exact = num_buckets // 2
    if n < max_exact:
        return bucket + n
    large = max_exact + int(math.log(n / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact))
    return bucket + min(large, num_buckets - 1)


def test_relative_position_buckets_match_t5() -> None:
    offsets = torch.arange(-300, 301)
    bidirectional = relative_position_bucket(offsets, 32, 128)
    causal = causal_relative_position_bucket(offsets, 32, 128)
    assert bidirectional.tolist() == [t5_bucket(o, True) for o in offsets.tolist()]
    assert causal.tolist() == [t5_bucket(o, False) for o in offsets.tolist()]
    # by hand: causal (key - query = -d): exact below 16, 16 + floor(16 log(d/16) / log 8) up to 128, then 31
    hand = {0: 0, 1: 0, 50: 0, -1: 1, -15: 15, -16: 16, -20: 17, -127: 31, -128: 31, -1000: 31}
    assert {o: causal_relative_position_bucket(torch.tensor(o)).item() for o in hand} == hand
    # bidirectional: 16 per side, exact below 8, 8 + floor(8 log(d/8) / log 16); keys after the query from 16
    hand = {0: 0, -1: 1, -7: 7, -8: 8, -20: 10, -1000: 15, 1: 17, 20: 26, 1000: 31}
    assert {o: relative_position_bucket(torch.tensor(o), 32, 128).item() for o in hand} == hand


def test_decoder_bias_uses_absolute_positions_with_past() -> None:
    """The new rows' bias is the full decoder's bias rows at positions P .. P+T-1, not a restart at 0."""
    model = make_model()
    with torch.no_grad():
        model.decoder_bias.table.weight.copy_(torch.arange(32.0)[:, None].expand(32, SMALL["n_heads"]))
    positions = torch.arange(6)
    bias = model.decoder_bias(positions[4:], positions)[0, 0]
    assert bias.tolist() == [[4, 3, 2, 1, 0, 0], [5, 4, 3, 2, 1, 0]]


@pytest.mark.parametrize("profile", ["smoke", "cpu", "paper"])
def test_toml_profiles_build(profile: str) -> None:
    config = tomllib.loads((Path(__file__).parents[1] / "baselines" / "tiger.toml").read_text())
    assert {"model", "training", "tokenizer"} <= set(config[profile])
    torch.manual_seed(0)
    model = T5EncoderDecoder(vocab_size=VOCAB, n_behaviors=N_BEHAVIORS, id_levels=ID_LEVELS, **config[profile]["model"])
    if profile == "paper":
        assert config["paper"]["model"] == {
            "d_model": 128, "d_ff": 1024, "d_kv": 64, "n_heads": 6, "n_encoder_layers": 4, "n_decoder_layers": 4,
            "dropout": 0.1, "num_buckets": 32, "max_distance": 128, "layer_norm_eps": 1e-6,
        }  # fmt: skip
    if profile == "smoke":
        assert 32 <= model.cfg.d_model <= 64 and model.cfg.n_encoder_layers == model.cfg.n_decoder_layers == 1
    model.eval()
    with torch.no_grad():
        logits = full_logits(model, make_encoder_input([2, 1]), make_decoder_input(2))
    assert logits.shape == (2, 2 + ID_LEVELS, VOCAB) and torch.isfinite(logits).all()


@pytest.mark.parametrize("attention_dropout", [None, 0.0, 0.5])
def test_attention_dropout_defaults_to_dropout_and_can_be_set_apart(attention_dropout: float | None) -> None:
    """Only the attention probabilities: with residual and FFN dropout at 0, a train-mode pass equals the
    eval-mode pass exactly when attention dropout is 0 (the `cpu` profile's setting)."""
    from baselines.mbgen import PBATransformer

    enc, dec = make_encoder_input([3, 1, 2]), make_decoder_input(3)
    models = [
        make_model(dropout=0.3, attention_dropout=attention_dropout),
        PBATransformer(vocab_size=VOCAB, n_behaviors=N_BEHAVIORS, id_levels=ID_LEVELS, dropout=0.3,
                       attention_dropout=attention_dropout, sparse_decoder_layers=[0, 1], **SMALL),
    ]  # fmt: skip
    for model in models:
        expected = 0.3 if attention_dropout is None else attention_dropout
        attention = [m for m in model.modules() if type(m).__name__ == "Attention"]
        assert attention and all(m.dropout == expected for m in attention)
        for module in model.modules():  # silence every other dropout
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        with torch.no_grad():
            evaluated = full_logits(model.eval(), enc, dec)
            torch.manual_seed(3)
            trained = full_logits(model.train(), enc, dec)
        assert torch.equal(trained, evaluated) == (expected == 0.0)
