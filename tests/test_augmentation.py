"""Multi-behavior sequential augmentation (Section 3.3)."""

from __future__ import annotations

import numpy as np
import pytest

from gamer.augmentation import augment, augmentation_ratios
from protocols import Interactions, Schema, SessionRule

SCHEMA = Schema("aug", ("view", "cart", "buy"), SessionRule.gap(30))


def log(per_user: dict[str, list[tuple[int, int]]]) -> Interactions:
    rows = [(u, item, level, t) for u, events in per_user.items() for t, (item, level) in enumerate(events)]
    user, item, behavior, ts = zip(*rows, strict=True)
    return Interactions.from_columns(list(user), list(item), np.array(behavior), np.array(ts), SCHEMA)


def test_ratio_grids():
    assert augmentation_ratios(4, "paper") == [0.2, 0.4, 0.6, 0.8]
    assert augmentation_ratios(4, "authors") == [0.25, 0.5, 0.75, 1.0]
    assert augmentation_ratios(0) == []
    with pytest.raises(ValueError, match="grid must be one of"):
        augmentation_ratios(2, "mine")


def test_copies_thin_lower_levels_by_rate_over_level_and_keep_the_top():
    # 8 views, 4 carts, 2 buys: with the authors' x = 2 grid (0.5, 1.0):
    # copy 1 drops floor(8 * .5 / 1) = 4 views and floor(4 * .5 / 2) = 1 cart;
    # copy 2 drops all 8 views and floor(4 * 1 / 2) = 2 carts; buys always stay.
    events = [(i, 0) for i in range(8)] + [(10 + i, 1) for i in range(4)] + [(20, 2), (21, 2)]
    augmented, source, report = augment(log({"u": events}), 2, grid="authors", seed=0)
    counts = [np.bincount(augmented.behavior[augmented.user == s], minlength=3).tolist() for s in range(3)]
    assert counts == [[8, 4, 2], [4, 3, 2], [0, 2, 2]]
    assert source.tolist() == [0, 0, 0]
    assert (report.copies_kept, report.copies_discarded, report.interactions_added) == (2, 0, 9 + 4)


def test_copies_with_fewer_than_two_interactions_are_discarded_and_counted():
    augmented, source, report = augment(log({"a": [(1, 0), (2, 2)], "b": [(3, 0)] * 5}), 1, grid="authors", seed=0)
    # a's copy keeps only its buy (1 interaction): discarded; b's copy loses all views: discarded.
    assert augmented.n_users == 2 and source.tolist() == [0, 1]
    assert report.copies_discarded == 2 and report.copies_kept == 0


def test_augmentation_is_seeded_and_keeps_canonical_order():
    events = {f"u{k}": [(i % 7, i % 3) for i in range(30)] for k in range(5)}
    a, _, _ = augment(log(events), 4, seed=3)
    b, _, _ = augment(log(events), 4, seed=3)
    c, _, _ = augment(log(events), 4, seed=4)
    assert np.array_equal(a.item, b.item) and not np.array_equal(a.item, c.item)
    for user in range(a.n_users):
        assert (np.diff(a.timestamp[a.user == user]) >= 0).all()
    assert (np.diff(a.user) >= 0).all()
    assert a.user_ids[:5].tolist() == [f"u{k}#0" for k in range(5)]
