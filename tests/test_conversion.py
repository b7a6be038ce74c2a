"""The conversion scenario of Appendix D: the exposure/conversion view, candidates and labels, queries,
and GAMER's conversion layout, on logs small enough to check by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import TINY_DECODER

from gamer.conversion import (
    MASK_LEVEL,
    MASK_TOKEN,
    N_BEHAVIORS,
    ConversionLayout,
    GamerConversion,
    GamerConversionNet,
    conversion_attention,
    encode,
)
from gamer.model import DecoderConfig
from gamer.sequences import Ragged
from protocols import Interactions, Schema, SessionRule, SessionSplit
from protocols.conversion import (
    CONVERSION_BEHAVIORS,
    SessionCandidates,
    conversion_queries,
    conversion_view,
    training_queries,
)
from protocols.tasks import Task

HOUR = 3600
SCHEMA = Schema("hand", ("view", "cart", "buy"), SessionRule.gap(30))
V, C, B = 0, 1, 2
#   alice  s0: view 1, view 2, cart 2 | s1: view 3, view 1, buy 1 | s2 (valid): view 4, view 2, buy 2, buy 9 |
#          s3 (test): view 5, view 1, view 5 again, buy 5
#   bob    s0: view 7 | s1: view 8 | s2 (valid): view 7, buy 7 | s3 (test): view 8
ROWS = [
    ("alice", 1, V, 0),
    ("alice", 2, V, 10),
    ("alice", 2, C, 20),
    ("alice", 3, V, HOUR),
    ("alice", 1, V, HOUR + 10),
    ("alice", 1, B, HOUR + 20),
    ("alice", 4, V, 2 * HOUR),
    ("alice", 2, V, 2 * HOUR + 10),
    ("alice", 2, B, 2 * HOUR + 20),
    ("alice", 9, B, 2 * HOUR + 30),
    ("alice", 5, V, 3 * HOUR),
    ("alice", 1, V, 3 * HOUR + 10),
    ("alice", 5, V, 3 * HOUR + 20),
    ("alice", 5, B, 3 * HOUR + 30),
    ("bob", 7, V, 0),
    ("bob", 8, V, HOUR),
    ("bob", 7, V, 2 * HOUR),
    ("bob", 7, B, 2 * HOUR + 10),
    ("bob", 8, V, 3 * HOUR),
]


def hand_log() -> Interactions:
    user, item, behavior, ts = zip(*ROWS, strict=True)
    return Interactions.from_columns(list(user), list(item), np.array(behavior), np.array(ts), SCHEMA)


@pytest.fixture()
def split() -> SessionSplit:
    view, _ = conversion_view(hand_log(), exposure="view", conversion="buy")
    return SessionSplit.from_interactions(view)


def ids(split: SessionSplit, items) -> list:
    return split.interactions.item_ids[np.asarray(items)].tolist()


# -- the view ----------------------------------------------------------------------------------------
def test_view_keeps_two_behaviors_renamed_and_counts_what_it_removed():
    view, report = conversion_view(hand_log(), exposure="view", conversion="buy")
    assert view.schema.behaviors == CONVERSION_BEHAVIORS
    assert view.schema.name == "hand-rank"
    assert report.removed == {"cart": 1}
    assert report.kept == len(ROWS) - 1 == len(view)
    assert "1 cart" in str(report)
    # Behaviors become 0 = exposure, 1 = conversion; the order of rows is unchanged.
    assert view.behavior.tolist() == [0 if b == V else 1 for (_, _, b, _) in ROWS if b != C]


def test_view_needs_exposure_below_conversion():
    with pytest.raises(ValueError, match="must be below"):
        conversion_view(hand_log(), exposure="buy", conversion="view")
    with pytest.raises(ValueError, match="unknown behavior 'click'"):
        conversion_view(hand_log(), exposure="click", conversion="buy")


def test_candidates_need_a_conversion_log():
    inter = SessionSplit.from_interactions(hand_log()).interactions
    with pytest.raises(ValueError, match="needs \\['exposure', 'conversion'\\]"):
        SessionCandidates.of_rows(inter, np.arange(len(inter)))


# -- candidates, labels, queries ---------------------------------------------------------------------
def test_test_queries_candidates_are_the_distinct_exposed_items_labelled_by_conversion(split):
    test = conversion_queries(split, "test")
    assert len(test) == 2
    alice, bob = (test.candidates_of(q) for q in range(2))
    assert ids(split, alice[0]) == [1, 5] and alice[1].tolist() == [0, 1]  # item 5 exposed twice: one candidate
    assert ids(split, bob[0]) == [8] and bob[1].tolist() == [0]
    assert test.summary() == {"queries": 2, "candidates": 3, "conversions": 1, "conversion rate": 1 / 3}
    # The history is every earlier session (exposures and conversions), and nothing of the test session.
    history = test.queries.history(0)
    assert ids(split, history["item"]) == [1, 2, 3, 1, 1, 4, 2, 2, 9]
    assert history["behavior"].tolist() == [0, 0, 0, 0, 1, 0, 0, 1, 1]
    assert history["session"].max() < test.session[0] == 3
    # Positives of the underlying queries are the converted candidates.
    assert ids(split, test.queries.positives_of(0)) == [5] and len(test.queries.positives_of(1)) == 0


def test_a_conversion_on_an_item_its_session_never_exposed_is_counted_not_a_candidate(split):
    valid = conversion_queries(split, "valid")
    alice, bob = (valid.candidates_of(q) for q in range(2))
    assert ids(split, alice[0]) == [2, 4] and alice[1].tolist() == [1, 0]
    assert ids(split, bob[0]) == [7] and bob[1].tolist() == [1]
    assert valid.unexposed_conversions == 1  # alice's buy of item 9


def test_task_conversion_gives_conversion_queries(split):
    assert Task.CONVERSION.queries(split, "test").n_candidates == 3


def test_training_queries_are_every_session_after_the_first_with_earlier_history(split):
    train = training_queries(split.train)
    assert train.queries.user.tolist() == [0, 1] and train.session.tolist() == [1, 1]
    alice, bob = (train.candidates_of(q) for q in range(2))
    assert ids(split, alice[0]) == [1, 3] and alice[1].tolist() == [1, 0]
    assert ids(split, bob[0]) == [8] and bob[1].tolist() == [0]
    assert ids(split, train.queries.history(0)["item"]) == [1, 2]
    cut = training_queries(split.train, max_history=1)
    assert ids(split, cut.queries.history(0)["item"]) == [2]
    with pytest.raises(ValueError, match="max_history"):
        training_queries(split.train, max_history=0)


def test_select_reorders_queries_with_their_candidates(split):
    test = conversion_queries(split, "test")
    swapped = test.select(np.array([1, 0]))
    assert ids(split, swapped.candidates) == [8, 1, 5] and swapped.labels.tolist() == [0, 0, 1]
    assert swapped.queries.user.tolist() == [1, 0]
    assert ids(split, swapped.queries.history(1)["item"]) == ids(split, test.queries.history(0)["item"])
    assert test.select(np.array([False, True])).n_candidates == 1
    assert test.last(2).queries.history_lengths.tolist() == [2, 2]


# -- GAMER's conversion layout ----------------------------------------------------------------------------
LAYOUT = ConversionLayout(item_tokens=np.array([[4, 7], [5, 8], [6, 9]]), vocab_size=10)


def test_layout_item_tokens_then_behavior_and_mask_blocks_after_the_history():
    # One row: history item 0 (exposure, session 0), item 1 (conversion, session 1); candidates item 2
    # (session 2, converted) and item 0 (session 1, not converted).
    history = Ragged(np.array([0, 2]), np.array([0, 1]), np.array([0, 1]), np.array([0, 1]))
    candidates = Ragged(np.array([0, 2]), np.array([2, 0]), np.full(2, MASK_LEVEL), np.array([2, 1]), np.array([1, 0]))
    batch = encode(LAYOUT, history, candidates)
    assert batch.tokens[0].tolist() == [4, 7, 1, 5, 8, 2, 6, 9, MASK_TOKEN, 4, 7, MASK_TOKEN]
    assert batch.slots[0].tolist() == [1, 2, 0] * 4
    assert batch.levels[0].tolist() == [0, 0, 0, 1, 1, 1] + [MASK_LEVEL] * 6
    assert batch.blocks[0].tolist() == [0] * 6 + [1] * 3 + [2] * 3
    # A candidate of session s continues after the history of the sessions before s.
    assert batch.positions[0].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 3, 4, 5]
    # ID targets inside the history only: 4 -> 7, behavior 1 -> 5, 5 -> 8 (ID-vocabulary indices).
    assert batch.id_mask[0].tolist() == [True, False, True, True, False, False] + [False] * 6
    assert batch.id_targets[0][batch.id_mask[0]].tolist() == [7 - 4, 5 - 4, 8 - 4]
    assert batch.mask_slots[0].nonzero().flatten().tolist() == [8, 11]
    assert batch.labels[0][batch.mask_slots[0]].tolist() == [1, 0]
    assert batch.n_targets == 3 + 2
    # With history behaviors, the history's ID tokens hide their level as a candidate's do; its behavior
    # tokens keep theirs, and the last ID token before each predicts it (2 more targets).
    with_behaviors = encode(LAYOUT, history, candidates, history_behaviors=True)
    hidden_id = [MASK_LEVEL] * LAYOUT.id_levels
    assert with_behaviors.levels[0].tolist() == [*hidden_id, 0, *hidden_id, 1] + [MASK_LEVEL] * 6
    assert with_behaviors.behavior_mask[0].nonzero().flatten().tolist() == [1, 4, 8, 11]
    assert with_behaviors.labels[0][with_behaviors.behavior_mask[0]].tolist() == [0, 1, 1, 0]
    assert torch.equal(with_behaviors.tokens, batch.tokens) and with_behaviors.n_targets == 3 + 4


def test_candidate_blocks_see_earlier_sessions_and_themselves_only():
    blocks = torch.tensor([[0, 0, 0, 0, 1, 1, 2, 2, -1]])
    sessions = torch.tensor([[0, 0, 1, 1, 2, 2, 1, 1, -1]])
    allowed = conversion_attention(blocks, sessions)[0]
    assert allowed[3].tolist() == [True] * 4 + [False] * 5  # history: causal over the history
    assert allowed[1].tolist() == [True, True] + [False] * 7
    assert allowed[5].tolist() == [True] * 4 + [True, True] + [False] * 3  # session 2: all history, own block
    assert allowed[7].tolist() == [True, True, False, False, False, False, True, True, False]  # session 1
    assert allowed[6].tolist() == [True, True, False, False, False, False, True, False, False]  # causal in block
    assert not allowed[8].any() and not allowed[:, 8].any()  # pads take no part


@pytest.mark.parametrize("architecture", ["gamer", "gamer_every_block"])
def test_a_history_behavior_target_is_predicted_without_seeing_its_label(architecture):
    # One row: items 0, 1, 2 (exposure, <varied>, conversion), then a candidate. With history behaviors
    # on, item 1's last ID token (position 4) predicts item 1's behavior: its hidden state, and those it
    # reads, must be the same whichever the behavior (levels route experts, inject and mask by level).
    config = getattr(DecoderConfig, architecture)(
        vocab_size=LAYOUT.vocab_size,
        n_behaviors=N_BEHAVIORS + 1,
        id_levels=LAYOUT.id_levels,
        **TINY_DECODER,
    )
    torch.manual_seed(0)
    net = GamerConversionNet(config, LAYOUT.id_offset).double().eval()
    candidates = Ragged(np.array([0, 1]), np.array([0]), np.full(1, MASK_LEVEL), np.array([2]), np.array([1]))
    hidden = []
    for label in (0, 1):
        history = Ragged(np.array([0, 3]), np.array([0, 1, 2]), np.array([0, label, 1]), np.array([0, 1, 1]))
        batch = encode(LAYOUT, history, candidates, history_behaviors=True)
        assert batch.behavior_mask[0, 4] and batch.labels[0, 4] == label
        with torch.no_grad():
            states = net.hidden(batch.tokens, batch.levels, batch.slots, batch.positions, batch.sessions, batch.blocks)
        hidden.append(states[0])
    assert torch.equal(hidden[0][: 4 + 1], hidden[1][: 4 + 1])
    # Later tokens do read the behavior token (position 5), so the rows differ from there on.
    assert not torch.equal(hidden[0][5], hidden[1][5])


def tiny_gamer_rank(**overrides) -> GamerConversion:
    model = dict(d_model=16, n_layers=2, n_heads=2, n_kv_heads=1, head_dim=8, d_ff=32, behavior_dim=8, dropout=0.0)
    model["attention_dropout"] = 0.0
    training = dict(epochs=2, batch_size=16, micro_batch=16, lr=3e-3, patience=5)
    params = dict(model=model, training=training, max_history=12, eval_batch=8, device="cpu") | overrides
    return GamerConversion(**params)


@pytest.fixture(scope="module")
def small_split() -> SessionSplit:
    from protocols.synthetic import SyntheticConfig, generate

    inter = generate(SyntheticConfig(n_users=60, n_items=300))
    view, _ = conversion_view(inter, exposure="p3s", conversion="conversion")
    return SessionSplit.from_interactions(view)


@pytest.fixture(scope="module")
def fitted(small_split) -> GamerConversion:
    return tiny_gamer_rank().fit(small_split.train, conversion_queries(small_split, "valid"))


def test_gamer_rank_scores_are_probabilities_in_candidate_order(fitted, small_split):
    test = conversion_queries(small_split, "test")
    scores = fitted.score(test)
    assert scores.shape == (test.n_candidates,) and ((scores > 0) & (scores < 1)).all()
    # The same candidates in reversed query order give the same scores, moved with their queries.
    order = np.arange(len(test))[::-1]
    again = fitted.score(test.select(order))
    expected = np.concatenate([scores[test.cand_offsets[q] : test.cand_offsets[q + 1]] for q in order])
    np.testing.assert_allclose(again, expected, rtol=1e-5, atol=1e-6)
    info = fitted.describe()
    assert 0.0 <= info["valid_auroc"] <= 1.0 and info["training"]["epochs_run"] == 2


def test_a_candidate_score_does_not_depend_on_the_other_candidates(fitted, small_split):
    test = conversion_queries(small_split, "test")
    together = fitted.score(test)
    fitted.candidates_per_pass = 1  # every candidate in a pass of its own
    try:
        alone = fitted.score(test)
    finally:
        fitted.candidates_per_pass = 64
    np.testing.assert_allclose(alone, together, rtol=1e-4, atol=1e-6)


def test_gamer_rank_is_deterministic_for_a_seed(fitted, small_split):
    again = tiny_gamer_rank().fit(small_split.train, conversion_queries(small_split, "valid"))
    test = conversion_queries(small_split, "test")
    np.testing.assert_array_equal(again.score(test), fitted.score(test))
