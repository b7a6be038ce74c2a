"""The recency rule of Table 10, on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import hand_queries

from baselines.recency import RecencyRule


def test_a_candidate_scores_by_the_recency_weighted_count_of_its_earlier_uses():
    queries = hand_queries(
        # query 0, oldest first: 5 (age 3), 7 (age 2), 5 (age 1), 9 (age 0, the newest); behaviors do not matter
        [[(5, 0), (7, 1), (5, 0), (9, 0)], [], [(3, 1)]],
        [[5, 7, 9, 3], [5], [3, 5]],
        [[1, 0, 0, 0], [0], [1, 0]],
    )
    s = {"5": 1 / 4 + 1 / 2, "7": 1 / 3, "9": 1.0}
    expected = [s["5"] / (1 + s["5"]), 0.25, 0.5, 0.0, 0.0, 0.5, 0.0]
    # query 1 has no history, and item 5 of query 0 does not count for query 2
    assert RecencyRule().fit(None, queries).score(queries) == pytest.approx(expected)


def test_no_history_at_all_scores_zero_everywhere():
    queries = hand_queries([[], []], [[1, 2], [3]], [[0, 1], [0]])
    np.testing.assert_array_equal(RecencyRule().score(queries), np.zeros(3))
