"""The discriminative protocol (Appendix A): samples, batches, candidates, top-k, early stopping, RecBole rows."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import kill_in_epoch, queries, random_sequence_batch
from torch import nn

from baselines import registry
from baselines.batch import SequenceBatch
from baselines.discriminative import (
    DiscriminativeRecommender,
    SampledCandidates,
    TokenSpace,
    history_batch,
    top_k,
)
from protocols.interactions import Interactions, Schema, SessionRule
from protocols.queries import Queries
from protocols.samples import InteractionSamples
from protocols.splits import SessionSplit
from protocols.synthetic import SyntheticConfig, generate

SCHEMA = Schema("hand", ("click", "buy"), SessionRule.from_file())


def log(rows: list[tuple[int, int, int, int]], n_items: int = 10) -> Interactions:
    """(user, item, behavior level, session) rows, one per second in order."""
    user, item, behavior, session = (np.array(c) for c in zip(*rows, strict=True))
    return Interactions.from_columns(
        user,
        item,
        behavior,
        np.arange(len(rows), dtype=np.int64),
        SCHEMA,
        session=session,
        item_catalogue=np.arange(n_items),
    )


# ---- top-k --------------------------------------------------------------------------------------


def test_top_k_breaks_ties_towards_the_lower_item_and_never_returns_minus_inf():
    scores = torch.tensor(
        [[0.5, 2.0, 0.5, 0.5, -math.inf], [1.0, 1.0, 1.0, 1.0, 1.0], [-math.inf, 3.0, -math.inf, 0, 0]]
    )
    got = [r.tolist() for r in top_k(scores, 3)]
    assert got == [[1, 0, 2], [0, 1, 2], [1, 3, 4]]
    assert [r.tolist() for r in top_k(torch.tensor([[-math.inf, 1.0, float("nan")]]), 5)] == [[1]]


def test_top_k_agrees_with_a_stable_full_sort():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 6, (50, 40), generator=gen).float()  # many ties
    expected = torch.sort(-scores, dim=1, stable=True).indices[:, :7]
    assert [r.tolist() for r in top_k(scores, 7)] == expected.tolist()


# ---- tokens, samples, batches -----------------------------------------------------------------------


def test_behavior_as_token_gives_each_behavior_its_own_block_and_scores_only_that_block():
    space = TokenSpace(n_items=4, n_behaviors=3, behavior_as_token=True)
    assert space.n_tokens == 13
    assert space.encode(np.array([0, 3, 1]), np.array([0, 0, 2])).tolist() == [1, 4, 10]
    token_scores = torch.arange(13).float()[None].repeat(2, 1)
    got = space.item_scores(token_scores, torch.tensor([0, 2]))
    assert got.tolist() == [[1, 2, 3, 4], [9, 10, 11, 12]]
    plain = TokenSpace(n_items=4, n_behaviors=3)
    assert plain.n_tokens == 5 and plain.encode(np.array([0, 3]), np.array([2, 0])).tolist() == [1, 4]


def test_samples_see_earlier_sessions_only_cut_to_max_len():
    # user 0: session 0 = a b, session 1 = c, session 2 = d e; user 1 has one session (no sample).
    train = log([(0, 0, 0, 0), (0, 1, 0, 0), (0, 2, 0, 1), (0, 3, 1, 2), (0, 4, 0, 2), (1, 5, 0, 0)])
    samples = InteractionSamples.from_train(train, max_len=2)
    histories = [train.item[s:e].tolist() for s, e in zip(samples.history_start, samples.history_end, strict=True)]
    assert train.item[samples.target].tolist() == [2, 3, 4]
    assert histories == [[0, 1], [1, 2], [1, 2]]  # d does not see e, e does not see d: same session
    buys = InteractionSamples.from_train(train, max_len=50, target_level=1)
    assert train.item[buys.target].tolist() == [3]


def test_history_batch_right_pads_cuts_and_makes_empty_histories_one_pad_token():
    tokens = np.array([5, 6, 7, 8, 9])
    levels = np.array([0, 1, 0, 1, 0], dtype=np.int8)
    item, behavior, length = history_batch(tokens, levels, np.array([0, 3, 2]), np.array([3, 4, 2]), max_len=2)
    assert item.tolist() == [[6, 7], [8, 0], [0, 0]]
    assert behavior.tolist() == [[2, 1], [2, 0], [0, 0]]
    assert length.tolist() == [2, 1, 1]


def test_cloze_masks_draw_from_candidates_and_fall_back_to_the_slot():
    from baselines.batch import cloze_mask

    torch.manual_seed(0)
    candidates = torch.tensor([[True, True, True, False], [False, False, False, False], [True, True, False, False]])
    slot = torch.tensor([2, 3, 1])
    never = cloze_mask(candidates, slot, ratio=0.0)
    assert never.tolist() == [[False, False, True, False], [False, False, False, True], [False, True, False, False]]
    always = cloze_mask(candidates, slot, ratio=1.0)
    assert torch.equal(always[[0, 2]], candidates[[0, 2]]) and always[1].tolist() == [False, False, False, True]


# ---- validation candidates --------------------------------------------------------------------------


def test_candidates_are_positives_then_unseen_negatives_drawn_once():
    # user 0 (target level 1): history {0, 1}; validation session clicks 2 and buys 3.
    valid = queries([[0, 1], [0, 1], [4]], [[2], [3], [5]], behavior=[0, 1, 1], users=[0, 0, 1])
    a = SampledCandidates.draw(valid, target_level=1, n_candidates=5, n_items=9, seed=7)
    b = SampledCandidates.draw(valid, target_level=1, n_candidates=5, n_items=9, seed=7)
    assert np.array_equal(a.items, b.items)
    assert a.queries.user.tolist() == [0, 1]
    assert 3 in a.items[0] and not set(a.items[0]) & {0, 1, 2}
    assert 5 in a.items[1] and 4 not in a.items[1]
    assert all(len(set(row)) == len(row) for row in a.items)
    small = SampledCandidates.draw(valid, target_level=1, n_candidates=1000, n_items=9, seed=7)
    assert small.items.shape == (2, 9)
    assert sorted(small.items[0][small.items[0] >= 0].tolist()) == [3, 4, 5, 6, 7, 8]  # every unseen item, once
    assert (small.items[0, 6:] == -1).all()  # padding at the end


class _Constant(DiscriminativeRecommender):
    """Scores every item alike: it knows nothing, so its validation NDCG@10 must be chance."""

    def _setup(self, train):
        return nn.Linear(1, 1)

    def _train_epoch(self, optimizer, rng):
        return 0.0

    def _item_scores(self, queries):
        return torch.zeros(len(queries), self.n_items_)


def test_a_constant_scorer_gets_the_chance_level_validation_ndcg():
    # 2,000 queries, one positive each among 20 candidates: a positive lands at each of the 20
    # columns with chance 1/20, and ties go to the lower column, so E[NDCG@10] = sum_{p<=10} 1/log2(p+1) / 20.
    n = 2000
    valid = queries([[]] * n, [[q] for q in range(n)], behavior=[1] * n)
    model = _Constant(seed=0)
    model.n_items_, model.device_, model.module_ = n + 100, torch.device("cpu"), nn.Linear(1, 1)
    candidates = SampledCandidates.draw(valid, target_level=1, n_candidates=20, n_items=n + 100, seed=0)
    chance = sum(1 / math.log2(p + 1) for p in range(1, 11)) / 20  # 0.2272
    assert abs(model.validation_score(candidates) - chance) < 0.03  # 4 standard errors; positives-first gave 1.0


# ---- early stopping ---------------------------------------------------------------------------------


class _Scripted(DiscriminativeRecommender):
    """Validation scores follow a script; the model's one weight records the epoch it was saved at."""

    script = (0.1, 0.3, 0.2, 0.25, 0.2, 0.9)

    def _setup(self, train):
        self.epoch_ = 0
        return nn.Linear(1, 1, bias=False)

    def _train_epoch(self, optimizer, rng):
        self.epoch_ += 1
        with torch.no_grad():
            self.module_.weight.fill_(self.epoch_)
        return 0.0

    def _item_scores(self, queries):
        return torch.zeros(len(queries), self.n_items_)

    def validation_score(self, candidates):
        return self.script[self.epoch_ - 1]


def test_early_stopping_keeps_the_best_checkpoint_and_stops_after_patience():
    split = SessionSplit.from_interactions(generate(SyntheticConfig(n_users=30, n_items=120, seed=1)))
    model = _Scripted(seed=0, patience=2, max_epochs=6).fit(split.train, split.queries("valid"))
    assert [e["epoch"] for e in model.log_.epochs] == [1, 2, 3, 4]  # epochs 3 and 4 do not beat 0.3
    assert model.log_.best_epoch == 2 and model.log_.stop_reason == "patience"
    assert model.module_.weight.item() == 2.0  # the tested model is the one saved at the best epoch


# ---- RecBole rows ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_split() -> SessionSplit:
    return SessionSplit.from_interactions(generate(SyntheticConfig(n_users=60, n_items=120, seed=3)))


def _batch(n_tokens: int, seed: int = 0, batch: int = 8, width: int = 6) -> SequenceBatch:
    lengths = np.random.default_rng(seed).integers(1, width + 1, size=batch).tolist()
    return random_sequence_batch(lengths, n_tokens, 3, seed=seed, width=width)


@pytest.mark.parametrize("name", ["gru4rec", "sasrec", "bert4rec"])
def test_recbole_modules_fit_a_tiny_batch_and_ignore_padding(name):
    entry = registry.get(name)
    rec = entry.build("smoke", seed=0)
    torch.manual_seed(0)
    module = rec.module_class()(n_tokens=30, n_behaviors=3, n_users=9, max_len=8, **rec.model_hyperparameters)
    batch = _batch(30)
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = module.loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
    module.eval()
    with torch.no_grad():
        scores = module.scores(batch)
        padded = SequenceBatch(**{**batch.__dict__, "item": nn.functional.pad(batch.item, (0, 2))})
        padded = SequenceBatch(**{**padded.__dict__, "behavior": nn.functional.pad(batch.behavior, (0, 2))})
        assert scores.shape == (8, 30)
        assert torch.allclose(scores, module.scores(padded), atol=1e-5)


@pytest.mark.parametrize("name", ["sasrec", "sasrec_b"])
def test_a_fit_is_deterministic_and_history_beyond_the_cut_never_matters(name, tiny_split):
    valid, test = tiny_split.queries("valid"), tiny_split.queries("test")
    params = {"max_epochs": 2, "max_len": 3, "samples_per_epoch": 256}
    a = registry.get(name).factory_class()(seed=5, **registry.get(name).hyperparameters("smoke") | params)
    b = registry.get(name).factory_class()(seed=5, **registry.get(name).hyperparameters("smoke") | params)
    ra = a.fit(tiny_split.train, valid).recommend(test, 10)
    rb = b.fit(tiny_split.train, valid).recommend(test, 10)
    assert all(np.array_equal(x, y) for x, y in zip(ra, rb, strict=True))
    assert all(len(r) == 10 and len(set(r.tolist())) == 10 for r in ra)
    # Rewrite every history item older than the last three: the scores must not move.
    lengths = test.history_lengths
    old = np.arange(len(test.item)) < np.repeat(test.offsets[1:] - 3, lengths)
    changed = Queries(**{**test.__dict__, "item": np.where(old, (test.item + 1) % tiny_split.train.n_items, test.item)})
    assert torch.equal(next(a.scores(test)), next(a.scores(changed)))


def test_b_variant_ranks_only_the_queried_behaviors_block(tiny_split):
    entry = registry.get("gru4rec_b")
    params = entry.hyperparameters("smoke") | {"max_epochs": 1, "samples_per_epoch": 128}
    model = entry.factory_class()(seed=0, **params).fit(tiny_split.train, tiny_split.queries("valid"))
    test = tiny_split.queries("test")
    batch = model.query_batch(test)
    with torch.no_grad():
        tokens = model.module_.scores(batch)
    n_items = tiny_split.train.n_items
    for q in range(0, len(test), 7):
        block = tokens[q, 1:].view(-1, n_items)[int(test.behavior[q])]
        expected = torch.sort(-block, stable=True).indices[:10].numpy()
        assert np.array_equal(model.recommend(test.select(np.arange(len(test)) == q), 10)[0], expected)


def test_building_a_recbole_row_leaves_autograd_anomaly_detection_off():
    # recbole/model/sequential_recommender/sine.py enables it process-wide at import time; a fresh
    # process is needed, since this session may have imported RecBole already.
    code = (
        "import torch; from baselines import registry; rec = registry.get('sasrec').build('smoke', seed=0); "
        "rec.module_class()(n_tokens=5, n_behaviors=2, n_users=2, max_len=4, **rec.model_hyperparameters); "
        "import recbole; print(torch.is_anomaly_enabled())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_history_shared_by_several_targets_is_encoded_once_with_recboles_own_loss():
    rec = registry.get("sasrec").build("smoke", seed=0)
    hyper = rec.model_hyperparameters | {"hidden_dropout_prob": 0.0, "attn_dropout_prob": 0.0}
    torch.manual_seed(0)
    module = rec.module_class()(n_tokens=30, n_behaviors=1, n_users=5, max_len=6, **hyper)
    history = torch.tensor([[3, 4, 5, 0], [3, 4, 5, 0], [7, 8, 0, 0], [3, 4, 5, 0]])
    batch = SequenceBatch(
        item=history,
        behavior=(history > 0).long(),
        length=torch.tensor([3, 3, 2, 3]),
        user=torch.tensor([1, 1, 2, 1]),
        target_item=torch.tensor([9, 10, 11, 12]),
        target_behavior=torch.ones(4, dtype=torch.long),
    )
    encoded, encode = [], module.net.forward  # both losses call the encoder as net.forward(items, lengths)
    module.net.forward = lambda items, lengths: encoded.append(len(items)) or encode(items, lengths)
    ours = module.loss(batch)
    theirs = module.net.calculate_loss(module._interaction(batch))
    assert encoded == [2, 4]  # two distinct histories; RecBole's own loss encodes all four rows
    assert torch.allclose(ours, theirs, atol=1e-6)
    weight = module.net.item_embedding.weight
    grad_ours, grad_theirs = (torch.autograd.grad(loss, weight)[0] for loss in (ours, theirs))
    assert torch.allclose(grad_ours, grad_theirs, atol=1e-6)


@pytest.mark.parametrize(("name", "grouped"), [("sasrec", True), ("gru4rec_b", True), ("bert4rec", False)])
def test_an_epoch_keeps_a_sessions_targets_together_where_the_loss_shares_histories(name, grouped, tiny_split):
    rec = registry.get(name).build("smoke", seed=0)
    rec.prepare(tiny_split.train)
    order = rec._epoch_order(np.random.default_rng(0))
    assert sorted(order.tolist()) == list(range(len(rec.samples_)))
    ends = rec.samples_.history_end[order]
    runs = 1 + np.count_nonzero(ends[1:] != ends[:-1])
    sessions = len(np.unique(rec.samples_.history_end))
    assert bool(runs == sessions) == grouped  # grouped: each session's targets form one run


@pytest.mark.parametrize("name", ["sasrec", "bert4rec"])
def test_a_killed_fit_resumes_after_its_last_epoch_and_ends_as_an_uninterrupted_one(
    name, tiny_split, tmp_path, monkeypatch
):
    from gamer.checkpoint import checkpointing

    valid, test = tiny_split.queries("valid"), tiny_split.queries("test")
    params = registry.get(name).hyperparameters("smoke") | {"max_epochs": 4, "patience": 10, "samples_per_epoch": 128}

    def fit():
        return registry.get(name).factory_class()(seed=2, **params).fit(tiny_split.train, valid)

    whole = fit()
    path = tmp_path / "cell.ckpt"
    with monkeypatch.context() as patch, checkpointing(path, key="cell") as saver:
        kill_in_epoch(patch, registry.get(name).factory_class(), 3)
        with pytest.raises(KeyboardInterrupt):
            fit()
    assert saver.writes == 2  # after epochs 1 and 2
    with checkpointing(path, key="cell") as saver:
        resumed = fit()
    assert saver.resumed and [e["epoch"] for e in resumed.log_.epochs] == [1, 2, 3, 4]
    strip = [{k: v for k, v in e.items() if k != "train_s"} for e in resumed.log_.epochs]
    assert strip == [{k: v for k, v in e.items() if k != "train_s"} for e in whole.log_.epochs]
    ranked = zip(whole.recommend(test, 10), resumed.recommend(test, 10), strict=True)
    assert all(np.array_equal(a, b) for a, b in ranked)
