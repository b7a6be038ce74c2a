"""Ranking metrics (Section 4.1.3, Eq. 7) and AUROC against hand-computed values and plain references."""

from __future__ import annotations

from math import log2

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.metrics import auroc, evaluate, evaluate_per_query


def one(ranked: list[int], positives: set[int] | list[int], ks: tuple[int, ...]) -> dict[str, float]:
    return evaluate([ranked], [positives], ks)


def reference(ranked: list[int], positives: list[int], k: int) -> tuple[float, float, float]:
    """HR@k, R@k, N@k of one query, straight from the paper's definitions."""
    targets = set(positives)
    hits = [item in targets for item in ranked[:k]]
    dcg = sum(1 / log2(1 + i) for i, hit in enumerate(hits, start=1) if hit)
    idcg = sum(1 / log2(1 + i) for i in range(1, min(k, len(targets)) + 1))
    return float(any(hits)), sum(hits) / len(targets), dcg / idcg


# --- hand-computed cases ---


def test_single_target_at_rank_1() -> None:
    assert one([4, 7, 9], {4}, (1, 3)) == {
        "HR@1": 1.0, "HR@3": 1.0, "R@1": 1.0, "R@3": 1.0, "N@1": 1.0, "N@3": 1.0,
    }  # fmt: skip


def test_single_target_at_rank_2() -> None:
    m = one([7, 4, 9], {4}, (1, 3))
    assert (m["HR@1"], m["R@1"], m["N@1"]) == (0.0, 0.0, 0.0)
    assert (m["HR@3"], m["R@3"]) == (1.0, 1.0)
    assert m["N@3"] == pytest.approx((1 / log2(3)) / (1 / log2(2)))


def test_single_target_at_rank_k_and_k_plus_1() -> None:
    ranked = [10, 11, 12, 13, 4, 14]
    at_k = one(ranked, {4}, (5,))
    assert (at_k["HR@5"], at_k["R@5"]) == (1.0, 1.0)
    assert at_k["N@5"] == pytest.approx(1 / log2(6))

    at_k_plus_1 = one([10, 11, 12, 13, 14, 4], {4}, (5, 6))
    assert (at_k_plus_1["HR@5"], at_k_plus_1["R@5"], at_k_plus_1["N@5"]) == (0.0, 0.0, 0.0)
    assert at_k_plus_1["N@6"] == pytest.approx(1 / log2(7))


def test_three_targets_with_partial_hits() -> None:
    m = one([1, 9, 2, 8, 7], {1, 2, 3}, (1, 2, 5))
    assert (m["HR@1"], m["HR@2"], m["HR@5"]) == (1.0, 1.0, 1.0)
    assert m["R@1"] == pytest.approx(1 / 3)
    assert m["R@2"] == pytest.approx(1 / 3)
    assert m["R@5"] == pytest.approx(2 / 3)
    assert m["N@1"] == pytest.approx(1.0)
    assert m["N@2"] == pytest.approx((1 / log2(2)) / (1 / log2(2) + 1 / log2(3)))
    idcg_5 = 1 / log2(2) + 1 / log2(3) + 1 / log2(4)  # min(5, |T|) = 3 terms
    assert m["N@5"] == pytest.approx((1 / log2(2) + 1 / log2(4)) / idcg_5)


def test_more_targets_than_k_gives_idcg_k_terms() -> None:
    m = one([1, 2, 9], {1, 2, 3, 4, 5, 6}, (3,))
    assert m["R@3"] == pytest.approx(2 / 6)
    idcg_3 = 1 / log2(2) + 1 / log2(3) + 1 / log2(4)  # K = 3 terms, not |T| = 6
    assert m["N@3"] == pytest.approx((1 / log2(2) + 1 / log2(3)) / idcg_3)


def test_all_targets_on_top_give_exactly_one() -> None:
    m = one([3, 1, 2, 9], {1, 2, 3}, (1, 3, 4))
    assert (m["N@1"], m["N@3"], m["N@4"], m["R@3"], m["R@4"]) == (1.0, 1.0, 1.0, 1.0, 1.0)


def test_short_ranked_lists_score_missing_ranks_as_misses() -> None:
    m = evaluate([[7, 4], [4], []], [{4}, {4}, {4}], ks=(1, 10))
    assert m["HR@1"] == pytest.approx((0 + 1 + 0) / 3)
    assert m["HR@10"] == pytest.approx((1 + 1 + 0) / 3)
    assert m["N@10"] == pytest.approx((1 / log2(3) + 1 + 0) / 3)


def test_repeated_positives_collapse_to_a_set() -> None:
    assert one([4, 5], [4, 4, 4], (1,)) == one([4, 5], {4}, (1,))
    assert one([4, 5], np.array([5, 4, 5]), (2,))["R@2"] == 1.0


def test_means_over_queries_and_per_query_values() -> None:
    per_query = evaluate_per_query([[1, 2], [3, 4]], [{2}, {5}], ks=(2,))
    np.testing.assert_allclose(per_query["N@2"], [1 / log2(3), 0.0])
    assert evaluate([[1, 2], [3, 4]], [{2}, {5}], ks=(2,))["N@2"] == pytest.approx((1 / log2(3) + 0) / 2)


def test_keys_all_hr_then_r_then_n_in_ks_order() -> None:
    assert list(one([1], {1}, (10, 1))) == ["HR@10", "HR@1", "R@10", "R@1", "N@10", "N@1"]
    assert list(evaluate([[1]], [{1}])) == [
        "HR@1",
        "HR@5",
        "HR@10",
        "R@1",
        "R@5",
        "R@10",
        "N@1",
        "N@5",
        "N@10",
    ]


def test_array_inputs_match_list_inputs() -> None:
    ranked = [[3, 1, 2], [5, 6, 7], [0, 9, 8]]
    positives = [[1], [7], [4]]
    from_lists = evaluate(ranked, positives, ks=(1, 2, 3))
    assert evaluate(np.array(ranked), np.array(positives), ks=(1, 2, 3)) == from_lists
    assert evaluate([np.array(r) for r in ranked], [set(p) for p in positives], ks=(1, 2, 3)) == from_lists
    assert evaluate(np.array(ranked, dtype=np.int32), positives, ks=3) == evaluate(ranked, positives, ks=(3,))


# --- errors ---


def test_repeated_ranked_item_names_query_and_item() -> None:
    with pytest.raises(ValueError, match=r"ranked\[1\] repeats item 7"):
        evaluate([[1, 2], [7, 3, 7]], [{1}, {3}], ks=(1,))
    with pytest.raises(ValueError, match=r"ranked\[0\] repeats item 5"):
        evaluate(np.array([[5, 5, 1]]), [{1}], ks=(3,))
    with pytest.raises(ValueError, match=r"ranked\[0\] repeats item 9"):  # a repeat below the cutoff still counts
        evaluate([[1, 9, 2, 9]], [{1}], ks=(1,))


def test_negative_ids_name_the_query() -> None:
    with pytest.raises(ValueError, match=r"ranked\[2\] holds the negative item id -3"):
        evaluate([[1], [2], [4, -3]], [{1}, {2}, {4}], ks=(1,))
    with pytest.raises(ValueError, match=r"ranked\[1\] holds the negative item id -1"):
        evaluate(np.array([[1, 2], [3, -1]]), [{1}, {2}], ks=(1,))
    with pytest.raises(ValueError, match=r"positives\[1\] holds the negative item id -2"):
        evaluate([[1], [2]], [{1}, {-2}], ks=(1,))


def test_empty_positive_set_names_the_query() -> None:
    with pytest.raises(ValueError, match=r"positives\[1\] is empty"):
        evaluate([[1], [2]], [{1}, set()], ks=(1,))


def test_length_mismatch() -> None:
    with pytest.raises(ValueError, match="ranked has 2 queries but positives has 1"):
        evaluate([[1], [2]], [{1}], ks=(1,))
    with pytest.raises(ValueError, match="no queries"):
        evaluate([], [], ks=(1,))


@pytest.mark.parametrize("ks", [(), (0,), (-1, 5), (1.5,), (True,), ("5",)])
def test_ks_must_be_positive_ints(ks: tuple) -> None:
    with pytest.raises(ValueError, match="ks must be a non-empty sequence of positive ints"):
        evaluate([[1]], [{1}], ks=ks)


def test_ks_must_not_repeat() -> None:
    with pytest.raises(ValueError, match="repeats a cutoff"):
        evaluate([[1]], [{1}], ks=(5, 5))


def test_non_integer_ids_and_one_dimensional_arrays_are_refused() -> None:
    with pytest.raises(TypeError, match="integer item ids"):
        evaluate([[1.5, 2.0]], [{1}], ks=(1,))
    with pytest.raises(TypeError, match="integer item ids"):
        evaluate(np.array([[1.0, 2.0]]), [{1}], ks=(1,))
    with pytest.raises(ValueError, match="wrap a single query"):
        evaluate(np.array([1, 2]), np.array([[1], [2]]), ks=(1,))


# --- statistical check: a ranking that ignores the user hits K/N of uniformly drawn targets ---


@pytest.mark.parametrize("ranking", ["constant", "random"])
def test_uninformed_ranking_hits_k_over_n(ranking: str) -> None:
    rng = np.random.default_rng(0)
    n_items, n_queries = 100, 20_000
    targets = rng.integers(0, n_items, size=(n_queries, 1))
    if ranking == "constant":
        ranked = np.tile(np.arange(10), (n_queries, 1))
    else:
        ranked = rng.permuted(np.tile(np.arange(n_items), (n_queries, 1)), axis=1)[:, :10]
    m = evaluate(ranked, targets, ks=(1, 5, 10))
    for k in (1, 5, 10):
        p = k / n_items
        assert m[f"HR@{k}"] == pytest.approx(p, abs=5 * (p * (1 - p) / n_queries) ** 0.5)
        assert m[f"R@{k}"] == m[f"HR@{k}"]  # one target per query


# --- properties ---

ITEM = st.integers(0, 25)
QUERY = st.tuples(
    st.lists(ITEM, max_size=12, unique=True),  # a ranked list, possibly shorter than K
    st.lists(ITEM, min_size=1, max_size=8),  # targets, repeats allowed
)
QUERIES = st.lists(QUERY, min_size=1, max_size=30)
KS = st.lists(st.integers(1, 15), min_size=1, max_size=5, unique=True)


def split(queries: list[tuple[list[int], list[int]]]) -> tuple[list[list[int]], list[list[int]]]:
    return [ranked for ranked, _ in queries], [positives for _, positives in queries]


@settings(deadline=None)
@given(QUERIES, KS)
def test_agrees_with_plain_reference(queries: list, ks: list[int]) -> None:
    per_query = evaluate_per_query(*split(queries), ks=ks)
    for k in ks:
        expected = np.array([reference(ranked, positives, k) for ranked, positives in queries])
        np.testing.assert_allclose(per_query[f"HR@{k}"], expected[:, 0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(per_query[f"R@{k}"], expected[:, 1], rtol=0, atol=1e-12)
        np.testing.assert_allclose(per_query[f"N@{k}"], expected[:, 2], rtol=0, atol=1e-12)


@settings(deadline=None)
@given(QUERIES, KS)
def test_metrics_in_unit_interval_and_hr_at_least_recall(queries: list, ks: list[int]) -> None:
    per_query = evaluate_per_query(*split(queries), ks=ks)
    for values in per_query.values():
        assert ((values >= 0) & (values <= 1)).all()
    for k in ks:
        assert (per_query[f"HR@{k}"] >= per_query[f"R@{k}"]).all()


@settings(deadline=None)
@given(QUERIES)
def test_hr_and_recall_non_decreasing_in_k(queries: list) -> None:
    ks = tuple(range(1, 16))
    per_query = evaluate_per_query(*split(queries), ks=ks)
    for name in ("HR", "R"):
        by_k = np.stack([per_query[f"{name}@{k}"] for k in ks])
        assert (np.diff(by_k, axis=0) >= 0).all()


@settings(deadline=None)
@given(QUERIES, KS, st.randoms(use_true_random=False))
def test_query_order_does_not_change_means(queries: list, ks: list[int], random) -> None:
    shuffled = random.sample(queries, len(queries))
    before, after = evaluate(*split(queries), ks=ks), evaluate(*split(shuffled), ks=ks)
    assert list(before) == list(after)
    assert all(after[name] == pytest.approx(value, abs=1e-12) for name, value in before.items())


# --- AUROC ---


def brute_force_auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Share of (positive, negative) pairs ordered correctly, ties counting half."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_auroc_hand_cases() -> None:
    assert auroc([0.5, 0.5], [0, 1]) == 0.5
    assert auroc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert auroc([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == 0.0
    # positive 0.4 beats 0.1 and ties 0.4; positive 0.8 beats both negatives.
    assert auroc([0.1, 0.4, 0.4, 0.8], [0, 1, 0, 1]) == pytest.approx((1 + 0.5 + 1 + 1) / (2 * 2))
    assert auroc([3.0, 3.0, 3.0], [True, False, False]) == 0.5


def test_auroc_single_class_names_the_counts() -> None:
    with pytest.raises(ValueError, match="got 2 positives and 0 negatives"):
        auroc([0.1, 0.2], [1, 1])


def test_auroc_input_errors() -> None:
    with pytest.raises(ValueError, match="labels must be 0/1"):
        auroc([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match="non-finite"):
        auroc([0.1, float("nan")], [0, 1])
    with pytest.raises(ValueError, match="equal length"):
        auroc([0.1, 0.2, 0.3], [0, 1])


@pytest.mark.parametrize("seed", range(5))
def test_auroc_matches_pairwise_count(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, size=60) / 5  # few distinct values, so many ties
    labels = rng.integers(0, 2, size=60)
    assert auroc(scores, labels) == pytest.approx(brute_force_auroc(scores, labels), abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_auroc_matches_sklearn(seed: int) -> None:
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    scores = np.round(rng.normal(size=500), 1)
    labels = (rng.random(500) < 0.3).astype(int)
    assert auroc(scores, labels) == pytest.approx(sklearn_metrics.roc_auc_score(labels, scores), abs=1e-12)
