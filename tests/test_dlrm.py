"""DLRM, the production ranker of Table 10: batches, loss, candidate-wise scoring, and learning a planted signal."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from helpers import hand_queries

from baselines.dlrm import DLRM, ConversionBatch, ConversionLoss, DLRMNet
from protocols.conversion import CONVERSION_BEHAVIORS, ConversionQueries, conversion_queries, conversion_view
from protocols.interactions import Interactions, Schema, SessionRule
from protocols.metrics import auroc
from protocols.splits import SessionSplit
from protocols.synthetic import SyntheticConfig, generate

TINY = {"d_model": 16, "n_heads": 2, "d_ff": 32, "dropout": 0.1}
# Fits run on the CPU (device="cpu"): only there are two runs of the same seed bit-identical.


pytestmark = pytest.mark.usefixtures("one_thread")


def planted_log(n_users: int = 120, n_items: int = 24, n_liked: int = 6, n_sessions: int = 8) -> Interactions:
    """Every user likes ``n_liked`` items. Session 0 exposes them and ``n_liked`` others and converts the liked
    ones; every later session exposes 2 liked and 2 other items and converts the 2 liked. So a candidate converts
    iff the user converted it before: only matching the candidate to the history predicts it (each item is liked
    by a quarter of the users and is half of the time a positive candidate, so the item alone says nothing)."""
    rng = np.random.default_rng(0)
    perm = np.argsort(rng.random((n_users, n_items)), axis=1)
    liked, other = perm[:, :n_liked], perm[:, n_liked:]
    later = n_sessions - 1
    pick_liked = np.argsort(rng.random((n_users, later, n_liked)), axis=2)[..., :2]
    pick_other = np.argsort(rng.random((n_users, later, n_items - n_liked)), axis=2)[..., :2]
    liked_later = np.take_along_axis(np.repeat(liked[:, None], later, 1), pick_liked, axis=2)
    other_later = np.take_along_axis(np.repeat(other[:, None], later, 1), pick_other, axis=2)
    parts = []  # (user, item, level, session) blocks
    users = np.arange(n_users)[:, None]
    first = np.concatenate([liked, other[:, :n_liked]], axis=1)
    parts.append((np.broadcast_to(users, first.shape), first, 0, 0))
    parts.append((np.broadcast_to(users, liked.shape), liked, 1, 0))
    session = np.arange(1, n_sessions)[None, :, None]
    exposed = np.concatenate([liked_later, other_later], axis=2)
    parts.append((np.broadcast_to(users[:, :, None], exposed.shape), exposed, 0, session))
    parts.append((np.broadcast_to(users[:, :, None], liked_later.shape), liked_later, 1, session))
    user = np.concatenate([np.ravel(u) for u, *_ in parts])
    item = np.concatenate([np.ravel(i) for _, i, *_ in parts])
    level = np.concatenate([np.full(i.size, b) for _, i, b, _ in parts])
    sessions = np.concatenate([np.ravel(np.broadcast_to(s, i.shape)) for _, i, _, s in parts])
    schema = Schema("planted", CONVERSION_BEHAVIORS, SessionRule.from_file())
    # A conversion comes one second after its exposure; sessions are 1,000 s apart.
    return Interactions.from_columns(user, item, level, sessions * 1000 + level, schema, session=sessions)


@pytest.fixture(scope="module")
def planted(one_thread) -> tuple[DLRM, ConversionQueries, ConversionQueries]:
    split = SessionSplit.from_interactions(planted_log())
    valid, test = conversion_queries(split, "valid"), conversion_queries(split, "test")
    training = {"epochs": 8, "batch_size": 64, "micro_batch": 64, "lr": 3e-3, "patience": 8}
    width = {"d_model": 32, "d_ff": 64, "dropout": 0.0}
    model = DLRM(seed=0, model=TINY | width, training=training, max_history=40, device="cpu")
    return model.fit(split.train, valid), valid, test


# ---- batches and loss ------------------------------------------------------------------------------------------


def test_batch_right_pads_the_last_interactions_and_the_candidates():
    queries = hand_queries([[(3, 0), (5, 1), (7, 0)], []], [[4], [1, 2]], [[1], [0, 1]])
    batch = ConversionBatch.of(queries, np.array([0, 1]), max_history=2)
    # Query 0 keeps its last two interactions (items 5, 7 -> rows 6, 8; levels 1, 0 -> 2, 1); query 1 has none.
    assert batch.history_item.tolist() == [[6, 8], [0, 0]]
    assert batch.history_behavior.tolist() == [[2, 1], [0, 0]]
    assert batch.history_length.tolist() == [2, 0]
    assert batch.candidate.tolist() == [[5, 0], [2, 3]]
    assert batch.label.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert batch.candidate_mask.tolist() == [[True, False], [True, True]]
    assert batch.n_targets == 3
    # Selecting query 1 alone: an empty history is one padding column.
    alone = ConversionBatch.of(queries, np.array([1]), max_history=2)
    assert alone.history_item.tolist() == [[0]] and alone.candidate.tolist() == [[2, 3]]


def test_loss_is_the_summed_binary_cross_entropy_of_the_real_candidates():
    torch.manual_seed(0)
    net = DLRMNet(n_items=10, max_history=4, **TINY).eval()
    queries = hand_queries([[(3, 0), (5, 1)], [(1, 1)]], [[4], [1, 2]], [[1], [0, 1]])
    batch = ConversionBatch.of(queries, np.array([0, 1]), max_history=4)
    with torch.no_grad():
        z = net(*batch.model_inputs()).double()
        loss = ConversionLoss(net)(*batch.loss_inputs()).item()
    # -log(sigmoid(z)) for a positive, -log(1 - sigmoid(z)) for a negative; the padded slot (0, 1) is left out.
    expected = (
        -math.log(torch.sigmoid(z[0, 0])) - math.log(1 - torch.sigmoid(z[1, 0])) - math.log(torch.sigmoid(z[1, 1]))
    )
    assert loss == pytest.approx(expected, rel=1e-5)


def test_untrained_head_outputs_the_prior():
    net = DLRMNet(n_items=10, max_history=4, prior=0.02, **TINY)
    assert net.head[-1].bias.item() == pytest.approx(math.log(0.02 / 0.98))


# ---- candidate-wise scoring ------------------------------------------------------------------------------------


def _probabilities(net: DLRMNet, queries: ConversionQueries) -> np.ndarray:
    batch = ConversionBatch.of(queries, np.arange(len(queries)), max_history=8)
    with torch.no_grad():
        return torch.sigmoid(net(*batch.model_inputs())[batch.candidate_mask]).numpy()


@pytest.fixture(scope="module")
def random_net(one_thread) -> DLRMNet:
    torch.manual_seed(3)
    return DLRMNet(n_items=20, max_history=8, **TINY).eval()


HISTORY = [(3, 0), (3, 1), (9, 0), (12, 1), (4, 0)]


def test_a_candidate_score_ignores_the_other_candidates_of_its_query(random_net):
    together = _probabilities(random_net, hand_queries([HISTORY], [[3, 7, 12]], [[1, 0, 0]]))
    assert np.ptp(together) > 1e-3  # the candidates do get different scores, so the comparisons below can fail
    alone = np.concatenate([_probabilities(random_net, hand_queries([HISTORY], [[c]], [[0]])) for c in (3, 7, 12)])
    reversed_ = _probabilities(random_net, hand_queries([HISTORY], [[12, 7, 3]], [[0, 0, 1]]))
    np.testing.assert_allclose(together, alone, atol=1e-6)
    np.testing.assert_allclose(together, reversed_[::-1], atol=1e-6)


def test_padding_does_not_change_a_score(random_net):
    short, empty = [(5, 1)], []
    alone = _probabilities(random_net, hand_queries([short], [[5, 6]], [[1, 0]]))
    empty_alone = _probabilities(random_net, hand_queries([empty], [[2]], [[0]]))
    # In a batch the short history is padded to 5 positions and the empty one to 5; candidates to 3 columns.
    batch = _probabilities(
        random_net, hand_queries([HISTORY, short, empty], [[1, 2, 3], [5, 6], [2]], [[0] * 3, [1, 0], [0]])
    )
    np.testing.assert_allclose(batch[3:5], alone, atol=1e-6)
    np.testing.assert_allclose(batch[5:], empty_alone, atol=1e-6)
    assert np.isfinite(batch).all()


def test_the_history_reaches_the_score(random_net):
    with_history = _probabilities(random_net, hand_queries([HISTORY], [[3]], [[1]]))
    without = _probabilities(random_net, hand_queries([[]], [[3]], [[1]]))
    assert abs(with_history[0] - without[0]) > 1e-4


# ---- fit and score ---------------------------------------------------------------------------------------------


def test_learns_that_a_candidate_converts_iff_it_converted_before(planted):
    model, valid, test = planted
    assert model.describe()["valid_auroc"] > 0.8
    assert auroc(model.score(test), test.labels) > 0.8


def test_scores_are_aligned_with_the_candidates_whatever_the_batching(planted):
    model, _, test = planted
    scores = model.score(test)
    assert scores.shape == (test.n_candidates,) and scores.dtype == np.float64
    assert ((scores > 0) & (scores < 1)).all()
    order = np.arange(len(test))[::-1]
    flipped = model.score(test.select(order))  # query q's candidates now come in reverse query order
    np.testing.assert_allclose(
        flipped, np.concatenate([scores[test.cand_offsets[q] : test.cand_offsets[q + 1]] for q in order]), atol=1e-6
    )
    small = copy.copy(model)
    small.eval_batch = 7  # batches of 7 queries instead of 512
    np.testing.assert_allclose(small.score(test), scores, atol=1e-6)


def test_same_seed_same_scores_and_another_seed_other_scores():
    split = SessionSplit.from_interactions(planted_log(n_users=40))
    valid = conversion_queries(split, "valid")
    training = {"epochs": 1, "batch_size": 32, "micro_batch": 16, "lr": 3e-3}

    def fit(seed: int) -> np.ndarray:
        return (
            DLRM(seed=seed, model=TINY, training=training, max_history=16, device="cpu")
            .fit(split.train, valid)
            .score(valid)
        )

    first = fit(0)
    np.testing.assert_array_equal(first, fit(0))
    assert not np.allclose(first, fit(1))


def test_fit_and_score_on_a_synthetic_conversion_log():
    view, _ = conversion_view(
        generate(SyntheticConfig(n_users=200, n_items=600)), exposure="p3s", conversion="conversion"
    )
    split = SessionSplit.from_interactions(view)
    training = {"epochs": 2, "batch_size": 128, "micro_batch": 128, "lr": 2e-3}
    model = DLRM(seed=0, model=TINY, training=training, max_history=20, max_train_queries=512, device="cpu")
    model.fit(split.train, conversion_queries(split, "valid"))
    test = conversion_queries(split, "test")
    scores = model.score(test)
    assert scores.shape == (test.n_candidates,)
    assert np.isfinite(scores).all() and ((scores > 0) & (scores < 1)).all()
    assert model.describe()["training_queries"] == 512
    assert len(model.describe()["training"]["history"]) == 2


def test_unknown_hyperparameters_are_errors_that_name_them():
    split = SessionSplit.from_interactions(planted_log(n_users=20))
    valid = conversion_queries(split, "valid")
    with pytest.raises(ValueError, match="width"):
        DLRM(model={"width": 8}).fit(split.train, valid)
    with pytest.raises(ValueError, match="temperature"):
        DLRM(training={"temperature": 0.7}).fit(split.train, valid)
