"""MBHT (baselines/mbht.py): shapes, padding invariance, determinism, learning, and hand-checked pieces."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from baselines.batch import SequenceBatch
from baselines.mbht import (
    MBHT,
    context_windows,
    hypergraph_incidence,
    hypergraph_propagation,
    last_true,
    segment_mean,
)

N_TOKENS, N_BEHAVIORS, MAX_LEN = 60, 3, 11  # internal width 12: divisible by the coarse scales 2 and 6
SMALL = dict(hidden_size=16, n_layers=1, n_heads=2, inner_size=32, hyper_len=3, scales=[3, 2, 6])


def assert_near(actual: torch.Tensor, expected: torch.Tensor, atol: float = 1e-5) -> None:
    # A plain check: torch.testing.assert_close costs seconds of imports on its first call.
    assert actual.shape == expected.shape and (actual - expected).abs().max().item() <= atol


def make_model(seed: int = 0, **overrides) -> MBHT:
    torch.manual_seed(seed)
    return MBHT.build(n_tokens=N_TOKENS, n_behaviors=N_BEHAVIORS, n_users=10, max_len=MAX_LEN, **(SMALL | overrides))


def make_batch(rows: list[list[tuple[int, int]]], width: int | None = None, targets: list[int] | None = None):
    """rows: per user, (token, behavior) pairs oldest first; right-padded with 0 to ``width``."""
    width = width or max(len(r) for r in rows)
    item = torch.zeros(len(rows), width, dtype=torch.long)
    behavior = torch.zeros_like(item)
    for i, row in enumerate(rows):
        for j, (token, level) in enumerate(row):
            item[i, j], behavior[i, j] = token, level
    length = torch.tensor([max(len(r), 1) for r in rows])
    target = torch.tensor(targets or [7] * len(rows))
    return SequenceBatch(
        item=item,
        behavior=behavior,
        length=length,
        user=torch.arange(1, len(rows) + 1),
        target_item=target,
        target_behavior=torch.full((len(rows),), N_BEHAVIORS),
    )


ROWS = [
    [(5, 1), (9, 2), (5, 3), (12, 1)],
    [(3, 3)],
    [(4, 1), (4, 2), (4, 3), (8, 1), (10, 2), (11, 1), (20, 3), (21, 1), (22, 2)],
    [],  # an empty history: one pad token with length 1
]


def test_shapes_and_finite_loss():
    model = make_model()
    batch = make_batch(ROWS, targets=[30, 31, 32, 33])
    loss = model.loss(batch)
    assert loss.shape == () and torch.isfinite(loss)
    model.eval()
    with torch.no_grad():
        scores = model.scores(batch)
    assert scores.shape == (len(ROWS), N_TOKENS) and torch.isfinite(scores).all()


def test_padding_invariance_including_past_max_len():
    model = make_model().eval()
    with torch.no_grad():
        tight = model.scores(make_batch(ROWS))
        wide = model.scores(make_batch(ROWS, width=9 + 7))  # wider than max_len: cut back to the window
    assert_near(tight, wide)


def test_longer_history_keeps_the_most_recent_max_len():
    model = make_model().eval()
    long_row = [(t, 1 + t % 3) for t in range(1, 16)]
    with torch.no_grad():
        full = model.scores(make_batch([long_row]))
        cut = model.scores(make_batch([long_row[-MAX_LEN:]]))
    assert_near(full, cut)


def test_determinism():
    batch = make_batch(ROWS, targets=[30, 31, 32, 33])
    results = []
    for _ in range(2):
        model = make_model(seed=3)
        torch.manual_seed(11)
        loss = model.loss(batch)
        model.eval()
        with torch.no_grad():
            results.append((loss.detach(), model.scores(batch)))
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])


def test_queried_behavior_is_not_an_input():
    # MBHT's [MASK] slot has behavior type 0 (hidden) and MBHT is evaluated on the target behavior only.
    model = make_model().eval()
    batch = make_batch(ROWS)
    other = SequenceBatch(**(vars(batch) | {"target_behavior": torch.ones_like(batch.target_behavior)}))
    with torch.no_grad():
        assert torch.equal(model.scores(batch), model.scores(other))


def test_history_behaviors_condition_the_scores():
    model = make_model().eval()
    batch = make_batch(ROWS)
    flipped = SequenceBatch(**(vars(batch) | {"behavior": torch.where(batch.behavior > 0, 4 - batch.behavior, 0)}))
    with torch.no_grad():
        assert not torch.allclose(model.scores(batch), model.scores(flipped))


def test_loss_without_random_masks_is_the_cross_entropy_of_the_scores():
    # With no random masks and no dropout, training sees exactly the inference input: history + [MASK] (type 0).
    model = make_model(mask_ratio=0.0, dropout=0.0, hypergraph_dropout=0.0)
    batch = make_batch(ROWS, targets=[30, 31, 32, 33])
    loss = model.loss(batch)
    with torch.no_grad():
        expected = F.cross_entropy(model.scores(batch), batch.target_item)
    assert_near(loss.detach(), expected)


def test_loss_decreases_on_a_fixed_batch():
    model = make_model(dropout=0.0, hypergraph_dropout=0.0)
    batch = make_batch(ROWS, targets=[30, 31, 32, 33])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    def fixed_mask_loss() -> torch.Tensor:
        torch.manual_seed(0)
        return model.loss(batch)

    before = fixed_mask_loss().item()
    for _ in range(25):
        optimizer.zero_grad()
        model.loss(batch).backward()
        optimizer.step()
    assert fixed_mask_loss().item() < 0.6 * before  # about 4.1 -> 1.5


def test_width_must_be_divisible_by_the_coarse_scales():
    with pytest.raises(ValueError, match="use max_len = 59"):
        MBHT.build(n_tokens=N_TOKENS, n_behaviors=N_BEHAVIORS, n_users=10, max_len=50, scales=[5, 4, 20])


def test_hypergraph_incidence_by_hand():
    m = N_TOKENS  # the [MASK] token
    item = torch.tensor([[3, 5, 3, m, 0]])
    real = torch.tensor([[True, True, True, True, False]])
    masked = item == m
    similarity = torch.tensor(
        [
            [1.0, 0.6, 0.2, 0.1, 0.99],  # top 2 among real: itself (item 3), position 1 (item 5, 0.6)
            [0.5, 1.0, 0.3, 0.7, 0.99],  # itself; position 3 is [MASK], so its own item 5 again (weight 1)
            [0.2, 0.4, 1.0, 0.1, 0.99],  # itself (item 3); position 1 (item 5, 0.4)
            [0.9, 0.9, 0.9, 1.0, 0.99],  # a [MASK] row keeps its self loop only
            [0.9, 0.9, 0.9, 0.9, 1.00],  # padding: nothing
        ]
    ).unsqueeze(0)
    incidence = hypergraph_incidence(item, real, masked, similarity, hyper_len=2)
    # Columns 0..4: item hyperedges by first position (item 3 -> 0, item 5 -> 1, [MASK] -> 3);
    # columns 5..9: multi-behavior hyperedges (item 3 occurs twice -> column 5 + 0).
    expected = torch.tensor(
        [
            [1.0, 0.6, 0, 0, 0, 1, 0, 0, 0, 0],
            [0.0, 1.0, 0, 0, 0, 0, 0, 0, 0, 0],
            [1.0, 0.4, 0, 0, 0, 1, 0, 0, 0, 0],
            [0.0, 0.0, 0, 1, 0, 0, 0, 0, 0, 0],
            [0.0, 0.0, 0, 0, 0, 0, 0, 0, 0, 0],
        ]
    ).unsqueeze(0)
    assert_near(incidence, expected)


def test_hypergraph_propagation_by_hand():
    incidence = torch.tensor([[1.0, 0.5, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]]).unsqueeze(0)  # node 2: padding
    propagation = hypergraph_propagation(incidence)[0]
    # G[0, 1] = sum_e H[0, e] H[1, e] / (dv_0 de_e) with dv_0 = 2.5, de = (1, 1.5, 2).
    assert propagation[0, 1].item() == pytest.approx((0.5 * 1.0 / 1.5 + 1.0 * 1.0 / 2) / 2.5)
    # Each real node's row is a weighted average (sums to 1); padding rows and columns are 0.
    assert_near(propagation.sum(-1), torch.tensor([1.0, 1.0, 0.0]))
    assert propagation[:, 2].abs().sum() == 0


def test_segment_mean_is_contiguous_and_ignores_padding():
    x = torch.arange(1.0, 9.0).view(1, 8, 1)
    pooled, non_empty = segment_mean(x, torch.arange(8).unsqueeze(0) < 5, size=4)
    assert_near(pooled.flatten(), torch.tensor([(1 + 2 + 3 + 4) / 4, 5.0]))
    assert non_empty.tolist() == [[True, True]]
    pooled, non_empty = segment_mean(x, torch.arange(8).unsqueeze(0) < 4, size=4)
    assert_near(pooled.flatten(), torch.tensor([2.5, 0.0]))
    assert non_empty.tolist() == [[True, False]]


def test_context_windows():
    windows = context_windows(6, before=2, after=2)  # [p - 2, p) and (p, p + 2)
    assert torch.nonzero(windows[3]).flatten().tolist() == [1, 2, 4]
    assert torch.nonzero(windows[0]).flatten().tolist() == [1]
    assert torch.nonzero(windows[5]).flatten().tolist() == [3, 4]


def test_last_true_keeps_the_last_n_masked_slots():
    mask = torch.tensor([[True, False, True, True, False], [False, True, False, False, False]])
    assert last_true(mask, 2).tolist() == [[False, False, True, True, False], [False, True, False, False, False]]
