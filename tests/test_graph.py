"""The multi-behavior graph baselines: their shared graphs (baselines/graph.py), MB-GMN and S-MBRec."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.discriminative import TRAINING_DEFAULTS
from baselines.graph import BehaviorGraph, build_graphs, normalized_adjacency
from baselines.mbgmn import MBGMN, MBGMNModule
from baselines.smbrec import ContrastSample, SMBRec, SMBRecModule, star_contrastive_loss
from gamer.training import STOP_MAX_STEPS
from protocols import Interactions, Schema, SessionRule, SessionSplit
from protocols.queries import ragged_rows
from protocols.synthetic import SyntheticConfig, generate

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

HOUR = 3600
SCHEMA = Schema("hand", ("view", "cart", "buy"), SessionRule.gap(30))
V, C, B = 0, 1, 2
TINY = {"embedding_size": 8, "n_layers": 2, "batch_size": 64, "max_epochs": 2, "patience": 5, "n_candidates": 100}
MODELS = {
    "mbgmn": (MBGMN, TINY | {"rank": 2, "heads": 2, "samp_num": 4}),
    "smbrec": (SMBRec, TINY | {"cl_anchors": 8, "cl_positives": 2, "cl_negatives": 16}),
}


def log(rows) -> Interactions:
    """rows: (user, item, behavior level, timestamp seconds)."""
    user, item, behavior, ts = zip(*rows, strict=True)
    return Interactions.from_columns(list(user), list(item), np.array(behavior), np.array(ts), SCHEMA)


@pytest.fixture(scope="module")
def synthetic() -> SessionSplit:
    return SessionSplit.from_interactions(generate(SyntheticConfig(n_users=60, n_items=300, seed=1)))


def fit(name: str, split: SessionSplit, seed: int = 0, **overrides):
    cls, hp = MODELS[name]
    return cls(seed=seed, **(hp | overrides)).fit(split.train, split.queries("valid"))


# -- graphs -----------------------------------------------------------------------------------------
def test_normalized_adjacency_on_a_hand_made_3x4_graph():
    # R = [[1 1 0 0], [0 1 1 0], [0 0 0 1]] with (0, 1) given twice; degrees: users 2 2 1, items 1 2 1 1.
    a, a_t = normalized_adjacency(np.array([0, 0, 0, 1, 1, 2]), np.array([1, 0, 1, 1, 2, 3]), 3, 4)
    r2 = 1 / np.sqrt(2)
    expected = np.array([[r2, 0.5, 0, 0], [0, 0.5, r2, 0], [0, 0, 0, 1.0]], dtype=np.float32)
    np.testing.assert_allclose(a.to_dense().numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(a_t.to_dense().numpy(), expected.T, rtol=1e-6)


def test_propagation_matches_the_dense_product_and_its_gradient():
    g = BehaviorGraph.from_pairs(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 2, 3]), 3, 4)
    x = torch.randn(4, 5, requires_grad=True)
    g.to_users(x).square().sum().backward()
    dense = g.adjacency.to_dense()
    x2 = x.detach().clone().requires_grad_()
    (dense @ x2).square().sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), x2.grad.numpy(), rtol=1e-5)
    np.testing.assert_allclose(g.to_items(torch.eye(3)).numpy(), dense.T.numpy(), rtol=1e-6)


def test_sampling_draws_edges_as_positives_and_non_edges_as_negatives():
    rng = np.random.default_rng(0)
    user = rng.integers(0, 50, 2000)
    item = rng.integers(0, 30, 2000)
    g = BehaviorGraph.from_pairs(user, item, 50, 30)
    active = np.repeat(np.flatnonzero(g.user_degree > 0), 20)
    assert g.contains(active, g.sample_items(active, rng)).all()
    assert not g.contains(active, g.sample_negatives(active, rng)).any()
    assert g.contains(user, item).all()


def test_graphs_come_from_the_training_split_only():
    # Sessions 30 min apart or more; each user: train sessions, then a validation and a test session.
    rows = [
        ("alice", "a", V, 0),
        ("alice", "a", B, 60),
        ("alice", "b", C, 2 * HOUR),
        ("alice", "b", C, 2 * HOUR + 60),  # a repeat: one edge
        ("alice", "x", B, 4 * HOUR),  # validation
        ("alice", "a", V, 4 * HOUR + 60),
        ("alice", "y", V, 6 * HOUR),  # test
        ("bob", "a", V, 0),
        ("bob", "c", B, 2 * HOUR),
        ("bob", "b", V, 4 * HOUR),
        ("bob", "y", B, 6 * HOUR),
        ("carol", "c", V, 0),
        ("carol", "c", B, 2 * HOUR),
        ("carol", "a", V, 4 * HOUR),
        ("carol", "x", V, 6 * HOUR),
    ]  # x and y occur only in validation and test sessions
    split = SessionSplit.from_interactions(log(rows))
    inter = split.interactions
    x, y = (int(np.searchsorted(inter.item_ids, name)) for name in ("x", "y"))
    rec = MBGMN(seed=0, **(MODELS["mbgmn"][1] | {"max_epochs": 1})).fit(split.train, split.queries("valid"))
    for graphs in (build_graphs(split.train), rec.graphs_):
        for g in graphs:
            assert g.adjacency_t[x].to_dense().abs().sum() == 0  # no edge to a validation/test-only item
            assert g.adjacency_t[y].to_dense().abs().sum() == 0
        alice = int(np.searchsorted(inter.user_ids, "alice"))
        assert [int(g.user_degree[alice]) for g in graphs] == [1, 1, 1]


# -- the models -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MODELS))
def test_item_scores_shape_and_same_for_every_behavior(name, synthetic):
    rec = fit(name, synthetic)
    queries = synthetic.queries("test")
    scores = rec._item_scores(queries)
    assert scores.shape == (len(queries), synthetic.interactions.n_items)
    assert torch.isfinite(scores).all()
    # One row per user whatever the queried behavior: graph models score for the target behavior.
    users = queries.user
    first = {int(u): q for q, u in reversed(list(enumerate(users)))}
    for q, u in enumerate(users):
        assert torch.equal(scores[q], scores[first[int(u)]])
    ranked = rec.recommend(queries, 10)
    assert all(len(r) == 10 for r in ranked)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_same_seed_same_scores_and_the_cache_follows_the_best_checkpoint(name, synthetic):
    a, b = fit(name, synthetic, seed=3), fit(name, synthetic, seed=3)
    queries = synthetic.queries("test")
    scores = a._item_scores(queries)
    assert torch.equal(scores, b._item_scores(queries))
    # The cached ranking state matches a fresh forward pass of the restored (best) parameters.
    with torch.no_grad():
        fresh = a.module_.score(a.module_.ranking_state(a.query_graphs(queries)), torch.from_numpy(queries.user))
    assert torch.equal(scores, fresh)
    assert not torch.equal(scores, fit(name, synthetic, seed=4)._item_scores(queries))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_training_loss_decreases_on_a_tiny_log(name, synthetic):
    rec = fit(name, synthetic, max_epochs=6, patience=100, learning_rate=1e-2)
    losses = [e["train_loss"] for e in rec.log_.epochs]
    assert len(losses) == 6 and all(np.isfinite(losses))
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_an_epoch_repeats_passes_until_it_has_made_min_steps_per_epoch(name, synthetic):
    """On a small log a pass over the users is a few optimiser steps; patience counted in such epochs
    stopped S-MBRec after ~12 steps on `synthetic`. An epoch now runs whole passes up to the floor."""
    one = fit(name, synthetic, max_epochs=2).log_.epochs
    per_pass = one[0]["steps"]
    assert one[0]["passes"] == 1 and 0 < per_pass < 10
    floored = fit(name, synthetic, max_epochs=2, min_steps_per_epoch=10).log_.epochs
    for record in floored:
        assert record["passes"] == -(-10 // per_pass) and record["steps"] == record["passes"] * per_pass >= 10


def test_mbgmn_meta_scorer_is_the_predictor_on_combined_and_target(synthetic):
    rec = fit("mbgmn", synthetic, max_epochs=1, scorer="meta", shortlist=0)  # every item by the predictor
    m = rec.module_
    users = torch.tensor([0, 5, 7])
    with torch.no_grad():
        state = m.ranking_state(rec.graphs_)
        scores = m.score(state, users)
        reps_u, reps_i = state
        items = torch.tensor([0, 17, synthetic.interactions.n_items - 1])
        direct = m.predictor(reps_u[-1][users], reps_i[-1][items], reps_u[2][users], reps_i[2][items])
    assert scores.shape == (3, synthetic.interactions.n_items)
    np.testing.assert_allclose(scores[torch.arange(3), items].numpy(), direct.numpy(), rtol=1e-5, atol=1e-5)


def all_scores(rec, queries) -> torch.Tensor:
    """``[q, n_items]`` through the public path (`scores`, batched), as `recommend` ranks them."""
    return torch.cat(list(rec.scores(queries)))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_validation_session_interaction_changes_the_test_scores(name, synthetic):
    rec = fit(name, synthetic)
    inter, test = synthetic.interactions, synthetic.queries("test")
    # A user whose validation session holds an edge the training graphs lack (not a repeat).
    rows = synthetic.session_rows("valid")
    known = np.zeros(len(rows), dtype=bool)
    for level, g in enumerate(rec.graphs_):
        at = inter.behavior[rows] == level
        known[at] = g.contains(inter.user[rows[at]], inter.item[rows[at]])
    user = int(inter.user[rows[np.flatnonzero(~known)[0]]])
    # Every query of that user loses its validation session; the other queries keep theirs.
    valid_session = inter.session[synthetic.valid_start[user]]
    drop = (test.user[ragged_rows(test.offsets)] == user) & (test.session == valid_session)
    assert drop.any()
    mine = torch.from_numpy(test.user == user)
    with_valid, without_valid = all_scores(rec, test), all_scores(rec, test.drop_history(drop))
    assert not torch.allclose(with_valid[mine], without_valid[mine])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_test_queries_are_answered_on_every_interaction_before_the_test_session(name, synthetic):
    rec = fit(name, synthetic, max_epochs=1)
    inter = synthetic.interactions
    pre_test = build_graphs(inter.take(np.arange(len(inter)) < synthetic.test_start[inter.user]))
    test = synthetic.queries("test")
    target = test.behavior == inter.schema.target_level
    assert len(np.unique(test.user[target])) < inter.n_users  # the others' validation sessions come from `valid`
    for queries in (test, test.select(target), test.select(np.arange(3))):
        for got, want in zip(rec.query_graphs(queries), pre_test, strict=True):
            np.testing.assert_array_equal(got.keys, want.keys)
    # So a user's scores do not depend on which other test queries are asked.
    only_target = all_scores(rec, test.select(target))
    np.testing.assert_allclose(only_target, all_scores(rec, test)[torch.from_numpy(target)], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_validation_scores_on_the_training_graphs(name, synthetic, monkeypatch):
    module_class = {"mbgmn": MBGMNModule, "smbrec": SMBRecModule}[name]
    propagated = []
    forward = module_class.ranking_state

    def recording(module, graphs):
        propagated.append([g.keys for g in graphs])
        return forward(module, graphs)

    monkeypatch.setattr(module_class, "ranking_state", recording)
    fit(name, synthetic, max_epochs=2, patience=5)
    assert len(propagated) == 2  # one propagation per validation pass, not one per batch
    for graphs in propagated:
        for got, want in zip(graphs, build_graphs(synthetic.train), strict=True):
            np.testing.assert_array_equal(got, want.keys)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_batches_of_one_query_set_propagate_the_graph_once(name, synthetic, monkeypatch):
    rec = fit(name, synthetic, max_epochs=1, eval_batch_size=7)
    calls = []
    forward = rec.module_.ranking_state
    monkeypatch.setattr(rec.module_, "ranking_state", lambda *a: calls.append(1) or forward(*a))
    test = synthetic.queries("test")
    first = all_scores(rec, test)
    assert len(calls) == 1 and len(test) > 7
    assert torch.equal(first, all_scores(rec, test)) and len(calls) == 1  # the same query set: cached
    with torch.no_grad():
        next(rec.module_.parameters()).add_(1.0)
    all_scores(rec, test)
    assert len(calls) == 2  # new parameters: propagated again


def test_mbgmn_ranks_the_dot_shortlist_by_the_trained_meta_predictor(synthetic):
    rec = fit("mbgmn", synthetic, max_epochs=1)  # the default scorer
    m, test = rec.module_, synthetic.queries("test")
    top, width, n = 10, 200, 5  # width: MBGMNModule's default shortlist
    users = torch.from_numpy(test.user[:n])
    with torch.no_grad():
        reps_u, reps_i = m.ranking_state(rec.query_graphs(test))
        dot = reps_u[-1][users] @ reps_i[-1].T
        shortlist = dot.topk(width).indices  # [n, width]
        pair_user = users.repeat_interleave(width)
        meta = m.predictor(
            reps_u[-1][pair_user], reps_i[-1][shortlist.flatten()], reps_u[2][pair_user], reps_i[2][shortlist.flatten()]
        ).view(n, width)
    expected = shortlist.gather(1, meta.argsort(dim=1, descending=True))
    np.testing.assert_array_equal(np.stack(rec.recommend(test, top)[:n]), expected[:, :top].numpy())
    # Every shortlisted item outranks the rest of the catalogue, which keeps its dot products.
    scores = all_scores(rec, test)[:n]
    assert torch.equal(scores.topk(width).indices.sort().values, shortlist.sort().values)
    rest = torch.ones_like(dot, dtype=torch.bool).scatter(1, shortlist, False)
    torch.testing.assert_close(scores[rest], dot[rest])
    assert m.shortlist == width


def test_mbgmn_profiles_rank_with_the_meta_predictor():
    profiles = tomllib.loads((Path(__file__).parents[1] / "baselines" / "mbgmn.toml").read_text())
    assert {hp.get("scorer") for hp in profiles.values()} == {"meta"}


def test_star_contrast_is_zero_without_negatives_and_prefers_aligned_views():
    torch.manual_seed(0)
    target, aux = torch.randn(6, 4), torch.randn(6, 4)
    anchor = torch.tensor([0, 1, 2])
    sample = ContrastSample(anchor, anchor[:, None], torch.tensor([3, 4, 5]), torch.ones(3, 3, dtype=torch.bool))
    assert star_contrastive_loss([aux, target], 1, sample, tau=0.5) == 0
    sample = ContrastSample(anchor, anchor[:, None], torch.tensor([3, 4, 5]), torch.zeros(3, 3, dtype=torch.bool))
    aligned = star_contrastive_loss([target.clone(), target], 1, sample, tau=0.5)
    assert aligned < star_contrastive_loss([aux, target], 1, sample, tau=0.5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_profile_builds_its_model(name, synthetic):
    profiles = tomllib.loads((Path(__file__).parents[1] / "baselines" / f"{name}.toml").read_text())
    assert set(profiles) == {"smoke", "cpu", "paper"}
    for hp in profiles.values():
        assert "max_len" not in hp
        rec = MODELS[name][0](seed=0, **hp)
        assert set(TRAINING_DEFAULTS) & set(hp) <= set(rec.training)
        rec.n_items_, rec.n_behaviors_ = synthetic.interactions.n_items, 3
        module = rec._setup(synthetic.train)  # unknown constructor keys fail here
        assert sum(p.numel() for p in module.parameters()) > 0


@pytest.mark.parametrize("name", sorted(MODELS))
def test_max_steps_leaves_the_epoch_after_that_many_steps(name, synthetic):
    """A rehearsal's cap (`gamer-bench run --max-steps`): the step counter stops training mid-epoch."""
    log = fit(name, synthetic, max_epochs=5, min_steps_per_epoch=10, max_steps=3).log_
    assert log.stop_reason == STOP_MAX_STEPS and len(log.epochs) == 1 and log.epochs[0]["steps"] == 3
