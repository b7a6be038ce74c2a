"""The synthetic ShortVideoAD-like generator: determinism, shape, sessions, SIDs, learnable structure.

Everything is seeded, so the statistics below are fixed numbers; thresholds leave wide margins
around the values measured at the default config (seed 0), noted next to each check.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from protocols.interactions import Interactions
from protocols.queries import Queries
from protocols.sessions import sessionize, sessions_per_user
from protocols.splits import SessionSplit
from protocols.synthetic import SyntheticConfig, generate

SMALL = SyntheticConfig(n_users=200)
COLUMNS = ("user", "item", "behavior", "timestamp")


@pytest.fixture(scope="module")
def inter() -> Interactions:
    return generate()


@pytest.fixture(scope="module")
def split(inter: Interactions) -> SessionSplit:
    return SessionSplit.from_interactions(inter)


@pytest.fixture(scope="module")
def conversions(split: SessionSplit) -> Queries:
    return split.queries("test", [2])


def leaf_of(inter: Interactions) -> np.ndarray:
    """``[n_items]`` dense leaf-cluster number: the first three SID codes."""
    sid = inter.schema.item_semantic_ids
    return np.unique(sid[:, :3], axis=0, return_inverse=True)[1].ravel()


def recent_distinct(items: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` most recent distinct items of a history (oldest first), newest first."""
    newest_first = items[::-1]
    _, first = np.unique(newest_first, return_index=True)
    return newest_first[np.sort(first)][:k]


# -- determinism -------------------------------------------------------------------------------------------


def test_same_config_gives_identical_data() -> None:
    a, b = generate(SMALL), generate(SMALL)
    for name in COLUMNS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.schema.item_semantic_ids, b.schema.item_semantic_ids)


def test_different_seed_gives_different_data() -> None:
    a, b = generate(SMALL), generate(replace(SMALL, seed=1))
    assert len(a) != len(b) or not np.array_equal(a.item, b.item)
    assert not np.array_equal(a.schema.item_semantic_ids, b.schema.item_semantic_ids)


# -- schema and time span ----------------------------------------------------------------------------------


def test_schema_ids_and_week(inter: Interactions) -> None:
    cfg = SyntheticConfig()
    schema = inter.schema
    assert schema.name == "synthetic"
    assert schema.behaviors == ("p3s", "click", "conversion")
    assert schema.session_rule.kind == "gap" and schema.session_rule.gap_seconds == 15 * 60
    assert schema.item_semantic_ids.shape == (cfg.n_items, 4)
    assert schema.item_semantic_ids.dtype.kind == "i"
    np.testing.assert_array_equal(inter.user_ids, np.arange(cfg.n_users))
    np.testing.assert_array_equal(inter.item_ids, np.arange(cfg.n_items))
    assert inter.session is None
    assert inter.timestamp.min() >= cfg.start_timestamp
    assert inter.timestamp.max() < cfg.start_timestamp + 7 * 86_400
    assert inter.timestamp.max() - inter.timestamp.min() > 6.5 * 86_400  # about a week


# -- ShortVideoAD's shape after the gap rule and the < 3-session filter ------------------------------------


def test_sparsity_shape_matches_shortvideoad(inter: Interactions, split: SessionSplit) -> None:
    kept = split.interactions
    stats = kept.summary()
    users, sessions, rows = stats["users"], stats["sessions"], stats["interactions"]
    removed = split.filter_report.users_removed / inter.n_users
    assert 0.01 < removed < 0.08  # measured 0.047: a few light users have < 3 sessions
    assert 34 < sessions / users < 43  # 38.1 (Table 1: 38.4)
    assert 3.9 < rows / sessions < 4.6  # 4.32 (Table 1: 4.2)
    assert 140 < rows / users < 190  # 165 (Table 1: 161.5)
    per_user = sessions_per_user(kept)
    assert per_user.std() / per_user.mean() > 0.5  # 0.87: heterogeneous activity


def test_behavior_mix(split: SessionSplit, conversions: Queries) -> None:
    kept = split.interactions
    users = kept.summary()["users"]
    p3s, click, conversion = np.bincount(kept.behavior, minlength=3)
    assert 0.02 < click / p3s < 0.1  # 0.045: p3s are the bulk, clicks are rare
    assert conversion < click  # every conversion comes with its own click
    assert 2 < conversion / users < 6  # 3.9 conversions per user
    assert 0.12 < len(conversions) / users < 0.24  # 0.164 of users convert in their last session


# The calibration targets (module docstring of protocols.synthetic): Table 1's ratios, the share of
# users whose last session holds each behavior in the authors' release, and Table 2's Rule-Based row.
TARGETS = {
    "interactions / user": 161.5,
    "sessions / user": 38.4,
    "interactions / session": 4.2,
    "items / user": 168_530 / 48_779,
    "last session holds p3s": 0.894,
    "last session holds click": 0.235,
    "last session holds conversion": 0.18,
    "Rule-Based HR@10": 0.0841,
    "Rule-Based N@10": 0.0364,
}
# Relative tolerances: the ratios of Table 1 are averages over ~150,000 rows and move little with the
# seed (+-3 % across seeds 0-9), the shares are proportions of ~950 users (+-6 %), and Rule-Based is
# scored on ~160 test queries, whose NDCG@10 varies by 25 % (one standard deviation) from seed to seed.
TOLERANCE = {"interactions / ": 0.05, "sessions / ": 0.05, "items / ": 0.05, "last session": 0.15, "Rule-Based": 0.25}


def calibration_statistics(split: SessionSplit) -> dict[str, float]:
    from baselines.rule_based import RuleBased
    from protocols import metrics

    kept = split.interactions
    summary = kept.summary()
    users, sessions = summary["users"], summary["sessions"]
    stats = {
        "interactions / user": len(kept) / users,
        "sessions / user": sessions / users,
        "interactions / session": len(kept) / sessions,
        "items / user": summary["items"] / users,
    }
    for level, name in enumerate(("p3s", "click", "conversion")):
        stats[f"last session holds {name}"] = len(split.queries("test", [level])) / users
    target = split.queries("test", [2])
    scores = metrics.evaluate(RuleBased().recommend(target, 10), target.positive_sets(), ks=(10,))
    stats["Rule-Based HR@10"], stats["Rule-Based N@10"] = scores["HR@10"], scores["N@10"]
    return stats


def test_the_default_log_matches_shortvideoads_published_statistics(split: SessionSplit) -> None:
    measured = calibration_statistics(split)
    for name, target in TARGETS.items():
        tolerance = next(t for prefix, t in TOLERANCE.items() if name.startswith(prefix))
        assert abs(measured[name] / target - 1) <= tolerance, (name, measured[name], target, tolerance)


def test_gap_rule_recovers_generated_sessions() -> None:
    plain, own = generate(SMALL), generate(SMALL, with_sessions=True)
    for name in COLUMNS:  # attaching the sessions does not change the rows or their order
        np.testing.assert_array_equal(getattr(plain, name), getattr(own, name))
    assert own.session is not None and own.session.max() > 10
    np.testing.assert_array_equal(sessionize(plain).session, own.session)

    same_user = own.user[1:] == own.user[:-1]
    gap = np.diff(own.timestamp)
    same_session = same_user & (own.session[1:] == own.session[:-1])
    assert (gap[same_session] <= 15 * 60).all()
    assert (gap[same_user & ~same_session] > 15 * 60).all()


# -- semantic IDs ------------------------------------------------------------------------------------------


def test_semantic_ids_unique_and_hierarchical() -> None:
    cfg = SyntheticConfig()
    sid = generate(SMALL).schema.item_semantic_ids
    assert len(np.unique(sid, axis=0)) == len(sid)  # every 4-tuple names one item
    assert (sid.min(axis=0) == 0).all()
    np.testing.assert_array_equal(
        sid[:, :3].max(axis=0), [cfg.n_topics - 1, cfg.subtopics_per_topic - 1, cfg.leaves_per_subtopic - 1]
    )
    assert len(np.unique(sid[:, :3], axis=0)) == cfg.n_leaves  # every leaf cluster holds an item
    # The 4th code disambiguates inside a leaf: 0 .. size - 1 in each leaf.
    leaf = np.unique(sid[:, :3], axis=0, return_inverse=True)[1].ravel()
    size = np.bincount(leaf)
    np.testing.assert_array_equal(np.bincount(leaf, weights=sid[:, 3]), size * (size - 1) / 2)
    assert (sid[:, 3] < size[leaf]).all()


def test_sessions_are_coherent_in_sid_space(inter: Interactions) -> None:
    """Consecutive p3s of one session share SID prefixes (topic, subtopic, leaf) far more than random pairs."""
    sid = inter.schema.item_semantic_ids
    kept = sessionize(inter)
    p3s = np.flatnonzero(kept.behavior == 0)
    a, b = p3s[:-1], p3s[1:]
    pairs = (kept.user[a] == kept.user[b]) & (kept.session[a] == kept.session[b])
    x, y = sid[kept.item[a[pairs]]], sid[kept.item[b[pairs]]]
    rng = np.random.default_rng(0)
    r = sid[kept.item[rng.choice(p3s, size=(2, 20_000))]]
    shared = [np.all(x[:, :k] == y[:, :k], axis=1).mean() for k in (1, 2, 3)]
    chance = [np.all(r[0, :, :k] == r[1, :, :k], axis=1).mean() for k in (1, 2, 3)]
    assert shared[2] > 0.3  # topic 0.75, subtopic 0.73, leaf 0.53
    for level in range(3):
        assert shared[level] > 3 * chance[level]  # chance: 0.13, 0.04, 0.026


# -- learnable structure -----------------------------------------------------------------------------------


def test_conversions_follow_earlier_clicks(split: SessionSplit) -> None:
    """Every conversion comes after a click on its item in the same session (and a p3s, unless the
    session holds the funnel alone), and its leaf was clicked in an earlier session (the very item for
    a few, through retargeting or because the sibling was clicked too)."""
    kept = split.interactions
    leaf = leaf_of(kept)
    session_key = kept.user * (kept.session.max() + 1) + kept.session  # non-decreasing in canonical order
    offsets = kept.user_offsets
    conv = np.flatnonzero(kept.behavior == 2)
    same_item = alone = 0
    for row in conv:  # ~3,700 conversions; a loop is fine in a test
        start = np.searchsorted(session_key, session_key[row])
        end = np.searchsorted(session_key, session_key[row], side="right")
        before = slice(start, row)  # same session, not later (ties sort lower behaviors first)
        on_item = kept.item[before] == kept.item[row]
        assert (on_item & (kept.behavior[before] == 1)).any()
        if end - start == 2:  # the funnel alone: its click, then the conversion
            alone += 1
        else:
            assert (on_item & (kept.behavior[before] == 0)).any()
        earlier = slice(offsets[kept.user[row]], start)
        clicked = kept.item[earlier][kept.behavior[earlier] == 1]
        assert leaf[kept.item[row]] in leaf[clicked]
        same_item += kept.item[row] in clicked
    assert 0.02 < same_item / len(conv) < 0.3  # 0.08: retargeting (5 %) plus clicked siblings
    assert 0.5 < alone / len(conv) < 0.7  # 0.6: direct_conversion_share


def test_converted_items_share_leaves_with_history_clicks(inter: Interactions, conversions: Queries) -> None:
    """(a) A test conversion shares its first 3 SID codes with a history click far above chance."""
    leaf = leaf_of(inter)
    hits, chance = [], []
    for q in range(len(conversions)):
        history = conversions.history(q)
        clicked_leaves = np.unique(leaf[history["item"][history["behavior"] == 1]])
        hits.append(np.isin(leaf[conversions.positives_of(q)], clicked_leaves).any())
        chance.append(np.isin(leaf, clicked_leaves).mean())  # a uniformly random item
    assert len(conversions) > 80  # 156 test queries
    assert np.mean(hits) > 0.9  # 1.0
    assert np.mean(hits) > 5 * np.mean(chance)  # chance 0.04


def test_recent_items_rule_hits_some_conversions_but_not_most(conversions: Queries) -> None:
    """(b) The 10 most recent distinct history items hit some conversions, leaving room for models."""
    hits = [
        np.isin(conversions.positives_of(q), recent_distinct(conversions.history(q)["item"], 10)).any()
        for q in range(len(conversions))
    ]
    assert 0.05 < np.mean(hits) < 0.2  # HR@10 = 0.077


def test_a_behavior_aware_rule_beats_the_recent_items_rule(split: SessionSplit, conversions: Queries) -> None:
    """The structure is learnable: ranking earlier clicks first, then popular items of the clicked leaves,
    finds far more conversions than recency alone, so sequence- and behavior-aware models have room."""
    from baselines.rule_based import RuleBased
    from protocols import metrics

    inter = split.interactions
    leaf = leaf_of(inter)
    train = split.train
    popularity = np.bincount(train.item[train.behavior == 2], minlength=inter.n_items) + 1e-3 * np.bincount(
        train.item, minlength=inter.n_items
    )
    ranked = []
    for q in range(len(conversions)):
        history = conversions.history(q)
        clicked = history["item"][history["behavior"] >= 1]
        in_clicked_leaf = np.isin(leaf, leaf[clicked])
        score = np.where(in_clicked_leaf, popularity / popularity.max(), 0.0)
        score[clicked] += 1.0
        ranked.append(np.argsort(-score, kind="stable")[:10])
    aware = metrics.evaluate(ranked, conversions.positive_sets(), ks=(10,))["HR@10"]
    recent = metrics.evaluate(RuleBased().recommend(conversions, 10), conversions.positive_sets(), ks=(10,))["HR@10"]
    assert aware > 1.5 * recent  # measured: 0.378 against 0.077


def test_clicks_prefer_the_users_favourite_leaves(split: SessionSplit) -> None:
    """Click-through is higher on leaves that fill much of a user's feed than on stray (noise) ones."""
    kept = split.interactions
    pairs, index = np.unique(kept.user * (kept.n_items + 1) + leaf_of(kept)[kept.item], return_inverse=True)
    p3s = np.bincount(index, weights=kept.behavior == 0)
    clicks = np.bincount(index, weights=kept.behavior == 1)
    pair_user = pairs // (kept.n_items + 1)
    share = p3s / np.bincount(pair_user, weights=p3s)[pair_user]  # the leaf's share of the user's p3s
    main, stray = share >= 0.1, share < 0.02
    assert clicks[main].sum() / p3s[main].sum() > 2 * clicks[stray].sum() / p3s[stray].sum()  # 0.053 vs 0.016


def test_interests_drift_over_the_week() -> None:
    """Leaf mix of a user's first two days vs last two days overlaps less when interests drift."""

    def overlap(drift: float) -> float:
        cfg = SyntheticConfig(n_users=300, drift=drift)
        inter = generate(cfg)
        leaf = leaf_of(inter)[inter.item]
        day = (inter.timestamp - cfg.start_timestamp) / 86_400
        hists = []
        for window in (day < 2, day >= 5):
            rows = window & (inter.behavior == 0)
            hist = np.zeros((inter.n_users, leaf.max() + 1))
            np.add.at(hist, (inter.user[rows], leaf[rows]), 1)
            hists.append(hist)
        both = (hists[0].sum(axis=1) >= 10) & (hists[1].sum(axis=1) >= 10)
        a, b = (h[both] / h[both].sum(axis=1, keepdims=True) for h in hists)
        return float(np.minimum(a, b).sum(axis=1).mean())

    assert overlap(0.0) > overlap(1.0) + 0.1  # 0.61 vs 0.37


# -- scale and config checks -------------------------------------------------------------------------------


def test_scale_gives_proportionally_more_users() -> None:
    base = SyntheticConfig(n_users=300)
    bigger = base.scale(2)
    assert (bigger.n_users, bigger.n_items) == (600, 6900)
    assert bigger.n_leaves == base.n_leaves
    small, large = (SessionSplit.from_interactions(generate(cfg)).interactions for cfg in (base, bigger))
    assert 1.8 < large.summary()["users"] / small.summary()["users"] < 2.2
    assert 1.7 < len(large) / len(small) < 2.3
    assert 1.7 < large.summary()["items"] / small.summary()["items"] < 2.3


@pytest.mark.parametrize(
    "change",
    [
        {"n_users": 0},
        {"noise_share": 0.6, "subtopic_share": 0.6},
        {"click_rate": 1.5},
        {"n_items": 50},  # fewer items than the 64 leaves
        {"mean_interactions_per_session": 0.5},
    ],
)
def test_bad_config_is_rejected(change: dict) -> None:
    with pytest.raises(ValueError):
        SyntheticConfig(**change)


def test_scale_rejects_non_positive_factor() -> None:
    with pytest.raises(ValueError):
        SyntheticConfig().scale(0)
