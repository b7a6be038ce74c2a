"""MB-STR (baselines/mbstr.py): shapes, padding invariance, determinism, learning, behavior conditioning,
and hand checks of the T5 bucketing and of the vectorised multi-behavior attention."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import random_sequence_batch

from baselines.batch import SequenceBatch
from baselines.mbstr import MBSTR, MultiBehaviorAttention, relative_position_bucket

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

N_TOKENS, N_BEHAVIORS, MAX_LEN = 60, 3, 12
SMALL = {"hidden_size": 16, "n_layers": 2, "n_heads": 2, "inner_size": 32}


def make_model(seed: int = 0, **overrides) -> MBSTR:
    torch.manual_seed(seed)
    return MBSTR.build(n_tokens=N_TOKENS, n_behaviors=N_BEHAVIORS, n_users=10, max_len=MAX_LEN, **(SMALL | overrides))


def make_batch(lengths: list[int], *, seed: int = 0, empty: bool = False) -> SequenceBatch:
    """Random right-padded histories of the given lengths (the first row empty if ``empty``)."""
    return random_sequence_batch(lengths, N_TOKENS, N_BEHAVIORS, seed=seed, empty="first" if empty else None)


def repad(batch: SequenceBatch, extra: int) -> SequenceBatch:
    pad = lambda t: F.pad(t, (0, extra))  # noqa: E731
    return SequenceBatch(
        pad(batch.item), pad(batch.behavior), batch.length, batch.user, batch.target_item, batch.target_behavior
    )


def scores(model: MBSTR, batch: SequenceBatch) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model.scores(batch)


LENGTHS = [12, 5, 1, 8, 3]


def test_relative_position_bucket_by_hand() -> None:
    # relative position = key - query. 16 buckets per side: keys at/before the query 0..15, after 16..31.
    # Distances < 8 are exact; from 8 on: 8 + floor(log(n / 8) / log(40 / 8) * 8), capped at 15, e.g.
    # n=10: log(1.25)/log(5)*8 = 1.11 -> 9;  n=20: log(2.5)/log(5)*8 = 4.55 -> 12;  n=39: 7.87 -> 15;
    # n=40: 8 -> 16, capped to 15.
    expected = {
        0: 0, -1: 1, -7: 7, -8: 8, -9: 8, -10: 9, -12: 10, -16: 11, -20: 12, -25: 13, -30: 14, -39: 15, -40: 15,
        -500: 15, 1: 17, 3: 19, 7: 23, 8: 24, 10: 25, 25: 29, 40: 31, 500: 31,
    }  # fmt: skip
    relative = torch.tensor(list(expected))
    assert relative_position_bucket(relative, num_buckets=32, max_distance=40).tolist() == list(expected.values())


def test_attention_matches_the_formula_position_by_position() -> None:
    """The vectorised attention against a loop over (query, key) pairs of the module docstring's formulas."""
    torch.manual_seed(0)
    hidden, heads, n_b, buckets = 8, 2, N_BEHAVIORS, 32
    d = hidden // heads
    attention = MultiBehaviorAttention(hidden, heads, n_b, dropout=0.0, layer_norm_eps=1e-12, num_buckets=buckets)
    for p in attention.parameters():
        torch.nn.init.normal_(p)
    attention.eval()
    behavior = torch.tensor([[1, 3, 2, 3, 1, 0, 0], [2, 2, 1, 0, 0, 0, 0]])
    width = behavior.shape[1]
    x = torch.randn(2, width, hidden)
    position = torch.arange(width)
    bucket = relative_position_bucket(position[None, :] - position[:, None], buckets, 40)
    level = (behavior - 1).clamp(min=0)
    pair = level[:, :, None] * n_b + level[:, None, :]
    with torch.no_grad():
        out = attention(
            x,
            F.one_hot(behavior, n_b + 1)[..., 1:].float(),
            (pair * buckets + bucket).view(-1),
            behavior > 0,
        )
        w1_mix, w2_mix = attention.alpha1.softmax(1), attention.alpha2.softmax(1)  # [pairs, n_b, h]
        for b in range(2):
            real = [j for j in range(width) if behavior[b, j] > 0]
            # [Wq | Wk | Wv] of each token's own behavior; head h of part p is columns p * hidden + h * d ...
            qkv = {j: x[b, j] @ attention.qkv[behavior[b, j] - 1] for j in real}
            for i in real:
                context = []
                for h in range(heads):
                    q, k, v = (
                        {j: qkv[j][p * hidden + h * d : p * hidden + (h + 1) * d] for j in real} for p in range(3)
                    )
                    logits, values = [], []
                    for j in real:
                        c = (behavior[b, i] - 1) * n_b + (behavior[b, j] - 1)
                        m1 = sum(w1_mix[c, n, h] * attention.w1[n, h] for n in range(n_b))
                        m2 = sum(w2_mix[c, n, h] * attention.w2[n, h] for n in range(n_b))
                        rel = relative_position_bucket(torch.tensor(j - i), buckets, 40)
                        logits.append(q[i] @ m1 @ k[j] / math.sqrt(d) + attention.position_bias[c, rel, h])
                        values.append(v[j] @ m2)
                    p = torch.stack(logits).softmax(0)
                    context.append((p[:, None] * torch.stack(values)).sum(0))
                expected = attention.norm(x[b, i] + torch.cat(context))
                torch.testing.assert_close(out[b, i], expected, atol=1e-5, rtol=1e-5)


def test_shapes_and_finite() -> None:
    model = make_model()
    batch = make_batch(LENGTHS, empty=True)
    model.train()
    loss = model.loss(batch)
    assert loss.shape == () and torch.isfinite(loss)
    out = scores(model, batch)
    assert out.shape == (len(LENGTHS), N_TOKENS) and torch.isfinite(out).all()


def test_padding_invariance() -> None:
    model = make_model()
    batch = make_batch(LENGTHS, empty=True)
    torch.testing.assert_close(scores(model, batch), scores(model, repad(batch, 7)), atol=1e-5, rtol=0)


def test_determinism() -> None:
    batch = make_batch(LENGTHS)
    a, b = make_model(seed=3), make_model(seed=3)
    assert torch.equal(scores(a, batch), scores(b, batch))
    a.train(), b.train()
    torch.manual_seed(11)
    loss_a = a.loss(batch)
    torch.manual_seed(11)
    assert torch.equal(loss_a, b.loss(batch))


def test_loss_is_the_score_cross_entropy_without_random_masks() -> None:
    """mask_ratio 0: only the target slot is masked (the no-mask fallback), which is exactly the scoring query."""
    model = make_model(dropout=0.0, mask_ratio=0.0)
    batch = make_batch(LENGTHS, empty=True)
    expected = F.cross_entropy(scores(model, batch), batch.target_item)
    model.train()
    torch.testing.assert_close(model.loss(batch), expected, atol=1e-5, rtol=1e-5)


def test_target_slot_can_be_masked_and_behaviors_stay_visible() -> None:
    # With mask_ratio 1 every real position, target included, is a prediction; a few masks must not crash.
    model = make_model(mask_ratio=1.0)
    model.train()
    assert torch.isfinite(model.loss(make_batch(LENGTHS, empty=True)))


def test_loss_decreases_on_a_fixed_batch() -> None:
    model = make_model(dropout=0.0)
    batch = make_batch([MAX_LEN] * 8, seed=1)

    def seeded_loss() -> torch.Tensor:
        torch.manual_seed(123)  # the same masks and dropout each time
        return model.loss(batch)

    model.train()
    before = seeded_loss().item()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        optimizer.zero_grad()
        model.loss(batch).backward()
        optimizer.step()
    after = seeded_loss().item()
    assert after < 0.75 * before, (before, after)


@pytest.mark.parametrize("n_behaviors", [1, 3])
def test_behavior_conditioning(n_behaviors: int) -> None:
    torch.manual_seed(0)
    model = MBSTR.build(n_tokens=N_TOKENS, n_behaviors=n_behaviors, n_users=10, max_len=MAX_LEN, **SMALL)
    batch = make_batch(LENGTHS)
    batch = SequenceBatch(
        batch.item,
        batch.behavior.clamp(max=n_behaviors),
        batch.length,
        batch.user,
        batch.target_item,
        torch.ones_like(batch.target_behavior),
    )
    base = scores(model, batch)
    assert torch.isfinite(base).all()
    if n_behaviors > 1:
        other = SequenceBatch(**{**batch.__dict__, "target_behavior": torch.full_like(batch.target_behavior, 3)})
        assert (scores(model, other) - base).abs().max() > 1e-4


def test_profiles_build_the_model() -> None:
    training = {"max_len", "batch_size", "max_epochs", "patience", "learning_rate", "weight_decay", "samples_per_epoch"}
    profiles = tomllib.loads((Path(__file__).parents[1] / "baselines" / "mbstr.toml").read_text())
    assert set(profiles) == {"smoke", "cpu", "paper"}
    for profile in profiles.values():
        assert training <= set(profile)
        model_keys = {k: v for k, v in profile.items() if k not in training}
        MBSTR.build(n_tokens=N_TOKENS, n_behaviors=N_BEHAVIORS, n_users=10, max_len=profile["max_len"], **model_keys)
