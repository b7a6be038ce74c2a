"""Every rule of the session-wise protocol (Sections 3.2, 4.1.3), on logs small enough to check by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import Interactions, Schema, SessionRule, SessionSplit, classic_leave_one_out, sessionize
from protocols.sessions import filter_min_sessions, local_day, sessions_per_user
from protocols.splits import processed_leave_one_out
from protocols.tasks import Task, drop_lower_behaviors, drop_session_items

MIN = 60
SCHEMA = Schema("hand", ("view", "cart", "buy"), SessionRule.gap(30))
V, C, B = 0, 1, 2


def log(rows, schema=SCHEMA, **kwargs) -> Interactions:
    """rows: (user, item, behavior level, timestamp seconds)."""
    user, item, behavior, ts = zip(*rows, strict=True)
    return Interactions.from_columns(list(user), list(item), np.array(behavior), np.array(ts), schema, **kwargs)


# -- canonical order ------------------------------------------------------------------------------
def test_equal_timestamps_order_lower_level_first_then_input_order():
    inter = log([("u", 10, B, 100), ("u", 11, V, 100), ("u", 12, V, 100), ("u", 13, C, 50)])
    assert inter.item_ids[inter.item].tolist() == [13, 11, 12, 10]
    assert inter.behavior.tolist() == [C, V, V, B]


def test_ids_map_back_to_the_source():
    inter = log([("bob", "x", V, 5), ("alice", "y", V, 1), ("bob", "y", C, 7)])
    assert inter.user_ids[inter.user].tolist() == ["alice", "bob", "bob"]
    assert inter.item_ids[inter.item].tolist() == ["y", "x", "y"]


def test_unknown_behavior_level_is_an_error_naming_the_row():
    with pytest.raises(ValueError, match="row 1: behavior level 5"):
        log([("u", 1, V, 0), ("u", 2, 5, 1)])


def test_empty_input_is_an_error():
    with pytest.raises(ValueError, match="no interactions"):
        Interactions.from_columns([], [], np.array([], dtype=int), np.array([]), SCHEMA, source="f.csv")


# -- session rules --------------------------------------------------------------------------------
def test_gap_rule_opens_a_session_only_when_the_gap_is_strictly_greater():
    gap = 30 * MIN
    inter = sessionize(log([("u", 1, V, 0), ("u", 2, V, gap), ("u", 3, V, 2 * gap + 1), ("w", 4, V, 10)]))
    assert inter.session.tolist() == [0, 0, 1, 0]


def test_day_rule_uses_the_timezone():
    # 2017-11-25 15:30 UTC is 23:30 in UTC+8; 16:30 UTC is already the next day there.
    t0 = 1511623800
    rows = [("u", 1, V, t0), ("u", 2, V, t0 + 3600)]
    utc = sessionize(log(rows, Schema("d", ("view", "cart", "buy"), SessionRule.day("UTC"))))
    china = sessionize(log(rows, Schema("d", ("view", "cart", "buy"), SessionRule.day("Asia/Shanghai"))))
    assert utc.session.tolist() == [0, 0]
    assert china.session.tolist() == [0, 1]
    assert (local_day(np.array([t0]), "+08:00") == local_day(np.array([t0]), "Asia/Shanghai")).all()


def test_unknown_timezone_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown timezone 'Mars/Base'"):
        local_day(np.array([0]), "Mars/Base")


def test_file_sessions_are_normalised_per_user_and_must_not_go_back():
    inter = log(
        [("u", 1, V, 0), ("u", 2, V, 5), ("u", 3, V, 9)],
        Schema("f", ("view", "cart", "buy"), SessionRule.from_file()),
        session=[70, 70, 93],
    )
    assert inter.session.tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="session id goes back from 93 to 70"):
        log([("u", 1, V, 0), ("u", 2, V, 5)], SCHEMA, session=[93, 70])


def test_filter_removes_users_with_fewer_than_three_sessions_and_says_so():
    hour = 3600
    rows = [("a", i, V, i * hour) for i in range(3)] + [("b", 9, V, 0), ("b", 8, V, 2 * hour)]
    kept, report = filter_min_sessions(sessionize(log(rows)), 3)
    assert kept.user_ids.tolist() == ["a"]
    assert (report.users_removed, report.interactions_removed, report.users_kept) == (1, 2, 1)
    assert "removed 1 users and 2 interactions" in str(report)
    with pytest.raises(ValueError, match="no user has 4 or more sessions"):
        filter_min_sessions(sessionize(log(rows)), 4)


# -- session-wise leave-one-out -------------------------------------------------------------------
HOUR = 3600
#   session 0: view 1, cart 1 | session 1: view 2, buy 1 | session 2 (valid): view 3, buy 2 |
#   session 3 (test): view 4, cart 4, buy 4, buy 5, view 2
ALICE = [
    ("alice", 1, V, 0),
    ("alice", 1, C, 60),
    ("alice", 2, V, 1 * HOUR),
    ("alice", 1, B, 1 * HOUR + 60),
    ("alice", 3, V, 2 * HOUR),
    ("alice", 2, B, 2 * HOUR + 60),
    ("alice", 4, V, 3 * HOUR),
    ("alice", 4, C, 3 * HOUR + 30),
    ("alice", 4, B, 3 * HOUR + 60),
    ("alice", 5, B, 3 * HOUR + 90),
    ("alice", 2, V, 3 * HOUR + 120),
]
#   bob: three sessions, no buy in the last one
BOB = [("bob", 7, V, 0), ("bob", 8, V, HOUR), ("bob", 7, C, 2 * HOUR)]


@pytest.fixture()
def split() -> SessionSplit:
    return SessionSplit.from_interactions(log(ALICE + BOB))


def items(split: SessionSplit, array) -> list:
    return split.interactions.item_ids[np.asarray(array)].tolist()


def test_split_points_train_valid_test(split):
    inter = split.interactions
    alice = 0
    assert inter.session[inter.user == alice].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 3, 3, 3]
    assert split.valid_start[alice] == 4 and split.test_start[alice] == 6
    train = split.train
    assert items(split, train.item[train.user == alice]) == [1, 1, 2, 1]


def test_target_behavior_test_query_history_and_positives(split):
    q = Task.TARGET_BEHAVIOR.queries(split, "test")
    assert split.interactions.user_ids[q.user].tolist() == ["alice"]  # bob's last session has no buy
    assert items(split, q.history(0)["item"]) == [1, 1, 2, 1, 3, 2]  # sessions 0..2, valid included
    assert items(split, q.positives_of(0)) == [4, 5]


def test_validation_query_sees_only_sessions_before_the_validation_session(split):
    q = split.queries("valid", [B])
    assert items(split, q.history(0)["item"]) == [1, 1, 2, 1]
    assert items(split, q.positives_of(0)) == [2]


def test_behavior_specific_queries_one_per_behavior_present(split):
    q = Task.BEHAVIOR_SPECIFIC.queries(split, "test")
    got = [
        (split.interactions.user_ids[u], b, items(split, q.positives_of(i)))
        for i, (u, b) in enumerate(zip(q.user, q.behavior, strict=True))
    ]
    assert got == [("alice", V, [2, 4]), ("alice", C, [4]), ("bob", C, [7]), ("alice", B, [4, 5])]


def test_history_cut_keeps_the_most_recent(split):
    q = Task.TARGET_BEHAVIOR.queries(split, "test").last(2)
    assert items(split, q.history(0)["item"]) == [3, 2]
    assert q.last(0).history_lengths.tolist() == [0]


def test_no_query_ever_sees_its_own_session(split):
    for part in ("valid", "test"):
        q = split.queries(part)
        start = split.valid_start if part == "valid" else split.test_start
        session_of_part = split.interactions.session[start[q.user]]
        hist_user = np.repeat(q.user, q.history_lengths)
        assert (q.session < np.repeat(session_of_part, q.history_lengths)).all()
        assert (hist_user == np.repeat(q.user, q.history_lengths)).all()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 6), st.integers(0, 2), st.integers(0, 20 * HOUR)),
        min_size=1,
        max_size=60,
    )
)
def test_property_histories_strictly_precede_the_evaluated_session(rows):
    inter = sessionize(log(rows))
    if sessions_per_user(inter).max() < 3:
        return
    split = SessionSplit.from_interactions(inter)
    for part in ("valid", "test"):
        q = split.queries(part)
        start = split.valid_start if part == "valid" else split.test_start
        first_ts = split.interactions.timestamp[start[q.user]]
        assert (q.timestamp <= np.repeat(first_ts, q.history_lengths)).all()
        assert (q.history_lengths == start[q.user] - split.interactions.user_offsets[q.user]).all()
        assert all(len(q.positives_of(i)) > 0 for i in range(len(q)))


# -- classic leave-one-out (Figure 2) -------------------------------------------------------------
def test_classic_leave_one_out_takes_the_last_target_interaction():
    inter = log(ALICE + BOB)
    q = classic_leave_one_out(inter)
    assert inter.user_ids[q.user].tolist() == ["alice"]
    assert inter.item_ids[q.positives].tolist() == [5]
    assert inter.item_ids[q.history(0)["item"]].tolist() == [1, 1, 2, 1, 3, 2, 4, 4, 4]


def test_processed_leave_one_out_drops_only_a_lower_level_last_interaction_on_the_target():
    rows = [("a", 1, V, 0), ("a", 2, C, 1), ("a", 2, B, 2)]  # cart of 2 just before its buy: dropped
    rows += [("b", 3, V, 0), ("b", 4, V, 1), ("b", 3, B, 2)]  # last history item is another item: kept
    rows += [("c", 5, B, 0), ("c", 5, B, 1)]  # last history interaction is a buy: kept
    rows += [("d", 6, B, 0)]  # empty history
    inter = log(rows)
    processed, removed = processed_leave_one_out(classic_leave_one_out(inter), B)
    assert removed == 1
    assert [inter.item_ids[processed.history(q)["item"]].tolist() for q in range(4)] == [[1], [3, 4], [5], []]


# -- test-time perturbations (Table 7) --------------------------------------------------------------
def test_drop_rate_divides_by_the_behavior_level_and_never_touches_the_target():
    rows = (
        [("u", i, V, i) for i in range(8)]
        + [("u", 10 + i, C, 100 + i) for i in range(4)]
        + [("u", 20, B, 200), ("u", 21, B, 201)]
        + [("u", 30, B, 10 * HOUR), ("u", 31, B, 20 * HOUR)]
    )
    split = SessionSplit.from_interactions(log(rows))
    q = Task.TARGET_BEHAVIOR.queries(split, "test")
    thinned, report = drop_lower_behaviors(q, 0.5, target_level=B, seed=1)
    kept = thinned.hist_behavior
    # views: floor(8 * 0.5 / 1) = 4 go; carts: floor(4 * 0.5 / 2) = 1 goes; buys stay.
    assert [(kept == b).sum() for b in (V, C, B)] == [4, 3, 3]  # the validation-session buy is history too
    assert report.history_removed == 5
    again, _ = drop_lower_behaviors(q, 0.5, target_level=B, seed=1)
    assert np.array_equal(again.item, thinned.item)
    full, _ = drop_lower_behaviors(q, 1.0, target_level=B, seed=1)
    assert [(full.hist_behavior == b).sum() for b in (V, C, B)] == [0, 2, 3]


def test_gt_removes_history_on_test_session_items_except_target_behavior(split):
    q = Task.TARGET_BEHAVIOR.queries(split, "test")
    thinned, report = drop_session_items(split, q)
    # alice's test session holds items 4, 5 and 2: the view of 2 goes, the buy of 2 stays.
    assert items(split, thinned.history(0)["item"]) == [1, 1, 1, 3, 2]
    assert thinned.history(0)["behavior"].tolist() == [V, C, B, V, B]
    assert report.history_removed == 1 and report.queries_skipped == 0


def test_canonical_order_is_the_same_when_keys_are_too_wide_to_pack():
    from protocols.interactions import _canonical_order

    rng = np.random.default_rng(3)
    n = 500
    user, behavior = rng.integers(0, 5, n), rng.integers(0, 3, n)
    narrow = rng.integers(0, 50, n)
    wide = narrow * 2**58  # same order, but too wide to pack with the other keys
    expected = np.lexsort((np.arange(n), behavior, narrow, user))
    assert np.array_equal(_canonical_order(user, narrow, None, behavior), expected)
    assert np.array_equal(_canonical_order(user, wide, None, behavior), expected)
