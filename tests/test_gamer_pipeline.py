"""Token sequences, the training loop and the generative Recommender, end to end on tiny data."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import TINY_DECODER

from gamer.sequences import Ragged, TokenLayout, encode, training_sequences, validation_samples
from gamer.training import TrainConfig, lr_lambda
from protocols.splits import SessionSplit
from protocols.synthetic import SyntheticConfig, generate

LAYOUT = TokenLayout(3, np.array([[4, 8], [5, 9], [6, 10]]))
#  sequence 0: (item 0, level 0, session 5), (item 1, level 2, session 6); sequence 1: (item 2, level 1, session 9)
SEQS = Ragged(np.array([0, 2, 3]), np.array([0, 1, 2]), np.array([0, 2, 1]), np.array([5, 6, 9]))


def test_training_batch_layout_and_targets():
    batch = encode(LAYOUT, SEQS, session_wise=False)
    assert batch.tokens.tolist() == [[1, 4, 8, 3, 5, 9], [2, 6, 10, 0, 0, 0]]
    assert batch.levels.tolist() == [[0, 0, 0, 2, 2, 2], [1, 1, 1, -1, -1, -1]]
    assert batch.slots.tolist() == [[0, 1, 2, 0, 1, 2], [0, 1, 2, -1, -1, -1]]
    assert batch.positions.tolist() == [[0, 1, 2, 3, 4, 5], [0, 1, 2, -1, -1, -1]]
    # Every ID token is predicted from the token before it; behavior tokens are never targets.
    assert batch.target_mask.int().tolist() == [[1, 1, 0, 1, 1, 0], [1, 1, 0, 0, 0, 0]]
    assert batch.targets[batch.target_mask].tolist() == [4, 8, 5, 9, 6, 10]


def test_session_wise_positions_share_a_session():
    seqs = Ragged(np.array([0, 3]), np.array([0, 1, 2]), np.array([0, 0, 1]), np.array([4, 4, 7]))
    batch = encode(LAYOUT, seqs, session_wise=True)
    assert batch.positions.tolist() == [[0, 1, 2, 0, 1, 2, 3, 4, 5]]
    assert batch.sessions.tolist() == [[0, 0, 0, 0, 0, 0, 1, 1, 1]]


def test_prompts_are_left_padded_and_end_in_the_queried_behavior():
    batch = encode(LAYOUT, SEQS, session_wise=False, targets="none", prompt_behavior=np.array([2, 0]))
    assert batch.tokens.tolist() == [[1, 4, 8, 3, 5, 9, 3], [0, 0, 0, 2, 6, 10, 1]]
    assert batch.positions[:, -1].tolist() == [6, 3] and batch.slots[:, -1].tolist() == [0, 0]
    assert batch.levels[:, -1].tolist() == [2, 0] and batch.sessions[:, -1].tolist() == [2, 1]
    assert not batch.target_mask.any()


def test_validation_targets_only_the_last_interaction():
    batch = encode(LAYOUT, SEQS, session_wise=False, targets="last")
    assert batch.target_mask.int().tolist() == [[0, 0, 0, 1, 1, 0], [1, 1, 0, 0, 0, 0]]


@pytest.fixture(scope="module")
def split() -> SessionSplit:
    return SessionSplit.from_interactions(generate(SyntheticConfig(n_users=60, n_items=300, seed=1)))


def test_training_sequences_keep_the_last_history_plus_target(split):
    seqs = training_sequences(split.train, max_history=5)
    assert (seqs.lengths() <= 6).all() and len(seqs) == split.train.n_users
    user0 = split.train.item[split.train.user == 0]
    assert seqs.item[seqs.offsets[0] : seqs.offsets[1]].tolist() == user0[-6:].tolist()


def test_validation_samples_one_per_positive_after_the_history(split):
    valid = split.queries("valid")
    samples, query_of = validation_samples(valid, max_history=5)
    assert len(samples) == len(valid.positives)
    last = samples.offsets[1:] - 1
    assert np.array_equal(samples.item[last], valid.positives)
    assert np.array_equal(samples.behavior[last], valid.behavior[query_of])
    assert (samples.session[last] > samples.session[np.maximum(last - 1, 0)]).all() or (samples.lengths() == 1).any()


def test_learning_rate_warms_up_then_decays_to_the_floor():
    config = TrainConfig(lr=1e-3, min_lr=1e-6, warmup=0.1)
    factor = lr_lambda(100, config)
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    assert factor(100) == pytest.approx(1e-3) and factor(55) < factor(20)


TINY = {
    "model": TINY_DECODER | {"dropout": 0.0, "attention_dropout": 0.0},
    "training": {"epochs": 2, "batch_size": 64, "micro_batch": 64, "lr": 3e-3, "patience": 2},
    "tokenizer": {"rqvae_levels": 2, "rqvae_codebook": 8, "rqvae_epochs": 5},
    "augment_times": 1,
    "max_history": 8,
    "num_beams": 12,
}


@pytest.mark.parametrize(("architecture", "session_wise", "ids"), [("gamer", False, "sid"), ("qwen3", True, "cid")])
def test_generative_recommender_fits_and_recommends_valid_distinct_items(
    split, architecture, session_wise, ids, one_thread
):
    from gamer.recommender import GenerativeRecommender

    test = split.queries("test")
    runs = []
    for _ in range(2):
        model = GenerativeRecommender(seed=3, architecture=architecture, session_wise=session_wise, ids=ids, **TINY)
        model.fit(split.train, split.queries("valid"))
        runs.append(model.recommend(test, 10))
    ranked = runs[0]
    assert len(ranked) == len(test)
    for row in ranked:
        assert len(row) == 10 and len(set(row.tolist())) == 10
        assert ((row >= 0) & (row < split.interactions.n_items)).all()
    assert all(np.array_equal(a, b) for a, b in zip(runs[0], runs[1], strict=True))  # seeded: identical
    described = model.describe()
    assert described["parameters"] > 0 and described["tokenizer"]["name"]
    assert described["training"]["best_epoch"] >= 1
