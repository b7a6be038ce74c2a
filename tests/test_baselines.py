"""The model interface, the registry and the Rule-Based row."""

from __future__ import annotations

import pytest
from helpers import queries

from baselines import MODELS, get
from baselines.rule_based import RuleBased


def test_rule_based_returns_most_recent_distinct_items_newest_first():
    got = RuleBased().recommend(queries([[1, 2, 1, 3, 2], [], [7, 7, 8], [5]]), 2)
    assert [r.tolist() for r in got] == [[2, 3], [], [8, 7], [5]]


def test_rule_based_shorter_rows_when_history_has_fewer_items():
    got = RuleBased().recommend(queries([[4, 4, 4]]), 10)
    assert [r.tolist() for r in got] == [[4]]


def test_rule_based_ignores_fit_and_seed():
    q = queries([[3, 1, 2]])
    a = RuleBased(seed=1).fit(None, None).recommend(q, 3)
    b = RuleBased(seed=2).recommend(q, 3)
    assert a[0].tolist() == b[0].tolist() == [2, 1, 3]


def test_registry_builds_by_profile_and_names_unknowns():
    assert get("rule_based").label == "Rule-Based"
    assert isinstance(MODELS["rule_based"].build("smoke", seed=3), RuleBased)
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        get("nope")
    with pytest.raises(ValueError, match="has no profile 'huge'"):
        get("rule_based").hyperparameters("huge")
