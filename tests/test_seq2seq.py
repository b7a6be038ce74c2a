"""The encoder-decoder rows' layout, batches, training and constrained decoding (model-independent)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from baselines.mbgen import PBATransformer
from baselines.seq2seq import Seq2SeqLayout, Seq2SeqLoss, Seq2SeqRecommender
from baselines.tiger import T5EncoderDecoder
from gamer.training import grouped_permutation
from protocols.splits import SessionSplit
from protocols.synthetic import SyntheticConfig, generate

# Three items with two ID levels: behavior tokens are 1..3, ID tokens 4..9, EOS 10.
ITEMS = np.array([[4, 7], [5, 8], [6, 9]])


def test_encoder_lays_out_behavior_then_ids_per_interaction_then_eos():
    layout = Seq2SeqLayout(ITEMS, vocab_size=11, behavior_tokens=True)
    tokens, levels, slots = layout.encoder(np.array([0, 2, 3]), np.array([0, 2, 1]), np.array([0, 1, 2]))
    assert tokens.tolist() == [[1, 4, 7, 2, 6, 9, 10], [3, 5, 8, 10, 0, 0, 0]]
    assert levels.tolist() == [[0, 0, 0, 1, 1, 1, -1], [2, 2, 2, -1, -1, -1, -1]]
    assert slots.tolist() == [[0, 1, 2, 0, 1, 2, -1], [0, 1, 2, -1, -1, -1, -1]]
    tiger = Seq2SeqLayout(ITEMS, vocab_size=11, behavior_tokens=False)
    tokens, _, slots = tiger.encoder(np.array([0, 2, 2]), np.array([0, 2]), np.array([0, 1]))
    assert tokens.tolist() == [[4, 7, 6, 9, 10], [10, 0, 0, 0, 0]]  # an empty history is just EOS
    assert slots.tolist() == [[1, 2, 1, 2, -1], [-1, -1, -1, -1, -1]]


def test_decoder_is_start_then_target_and_labels_add_eos():
    layout = Seq2SeqLayout(ITEMS, vocab_size=11, behavior_tokens=True)
    batch = layout.batch(np.array([0, 1]), np.array([0]), np.array([0]), np.array([2]), np.array([2]))
    assert batch.dec_tokens.tolist() == [[0, 3, 6, 9]] and batch.labels.tolist() == [[3, 6, 9, 10]]
    assert batch.dec_slots.tolist() == [[-1, 0, 1, 2]] and batch.dec_levels.tolist() == [[-1, 2, 2, 2]]
    assert layout.prompt(np.array([1]))[0].tolist() == [[0, 2]]
    tiger = Seq2SeqLayout(ITEMS, vocab_size=11, behavior_tokens=False)
    batch = tiger.batch(np.array([0, 1]), np.array([0]), np.array([0]), np.array([2]), np.array([2]))
    assert batch.dec_tokens.tolist() == [[0, 6, 9]] and batch.labels.tolist() == [[6, 9, 10]]
    assert tiger.prompt(np.array([1]))[0].tolist() == [[0]]


class TinySeq2Seq(nn.Module):
    """A GRU encoder-decoder that honours the module contract, to test the recommender around it."""

    def __init__(self, *, vocab_size: int, n_behaviors: int, id_levels: int, width: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width, padding_idx=0)
        self.gru = nn.GRU(width, width, batch_first=True)
        self.head = nn.Linear(2 * width, vocab_size)

    def encode(self, tokens, levels, slots):
        return self.embed(tokens), tokens != 0

    def decode(self, memory, memory_mask, tokens, levels, slots, past=None, memory_index=None):
        if memory_index is not None:
            memory, memory_mask = memory[memory_index], memory_mask[memory_index]
        hidden = None if past is None else past[0][0].transpose(0, 1).contiguous()
        out, hidden = self.gru(self.embed(tokens), hidden)
        pooled = (memory * memory_mask[..., None]).sum(1) / memory_mask.sum(1, keepdim=True)
        logits = self.head(torch.cat([out, pooled[:, None].expand_as(out)], dim=-1))
        return logits, [(hidden.transpose(0, 1),)]  # batch first, so rows can be reordered


@pytest.fixture(scope="module")
def tiny_split() -> SessionSplit:
    return SessionSplit.from_interactions(generate(SyntheticConfig(n_users=40, n_items=150, seed=2)))


def _fit(split: SessionSplit, behavior_tokens: bool, seed: int = 0) -> Seq2SeqRecommender:
    model = Seq2SeqRecommender(
        seed=seed,
        architecture="tests.test_seq2seq:TinySeq2Seq",
        behavior_tokens=behavior_tokens,
        training={"epochs": 2, "batch_size": 64, "micro_batch": 64, "lr": 1e-2, "patience": 1},
        max_history=10,
        num_beams=5,
    )
    return model.fit(split.train, split.queries("valid"))


@pytest.mark.parametrize("behavior_tokens", [True, False])
def test_fit_and_decode_give_distinct_catalogue_items_deterministically(tiny_split, behavior_tokens):
    test = tiny_split.queries("test")
    a = _fit(tiny_split, behavior_tokens)
    ranked = a.recommend(test, 5)
    assert len(ranked) == len(test)
    assert all(len(r) == 5 and len(set(r.tolist())) == 5 and r.max() < tiny_split.train.n_items for r in ranked)
    again = _fit(tiny_split, behavior_tokens).recommend(test, 5)
    assert all(np.array_equal(x, y) for x, y in zip(ranked, again, strict=True))
    training = a.describe()["training"]
    assert training["epochs_run"] >= 1 and np.isfinite(training["best_valid_loss"])


@pytest.mark.parametrize("network", [T5EncoderDecoder, PBATransformer])
def test_targets_sharing_a_history_get_the_loss_and_gradients_of_one_encoder_row_each(network):
    """Encoding each distinct history once and indexing it per target is the same computation as
    encoding one copy per target: equal loss and equal gradients, on TIGER's and MBGen's networks."""
    layout = Seq2SeqLayout(ITEMS, vocab_size=11, behavior_tokens=True)
    item, level = np.array([0, 2, 1, 1, 2]), np.array([0, 1, 2, 0, 0])
    histories = np.array([0, 2, 3, 5])  # three histories; five targets read histories 0, 0, 1, 2, 2
    memory_index = np.array([0, 0, 1, 2, 2])
    target, target_level = np.array([1, 2, 0, 2, 1]), np.array([2, 1, 0, 0, 2])
    copies = np.concatenate([[0], np.cumsum(np.diff(histories)[memory_index])])
    copy_rows = np.concatenate([np.arange(histories[h], histories[h + 1]) for h in memory_index])
    shared = layout.batch(histories, item, level, target, target_level, memory_index)
    copied = layout.batch(copies, item[copy_rows], level[copy_rows], target, target_level)
    assert shared.enc_tokens.shape[0] == 3 and copied.enc_tokens.shape[0] == 5 and len(shared) == len(copied) == 5
    torch.manual_seed(0)
    model = network(vocab_size=11, n_behaviors=3, id_levels=2, d_model=16, d_ff=32, d_kv=8, n_heads=2,
                    n_encoder_layers=4, n_decoder_layers=4, dropout=0.0)  # fmt: skip
    loss = Seq2SeqLoss(model, temperature=0.7)
    results = []
    for batch in (shared, copied):
        model.zero_grad()
        value = loss(*batch.loss_inputs())
        value.backward()
        results.append((value.detach(), [p.grad.clone() for p in model.parameters()]))
    torch.testing.assert_close(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


class EncoderSpy(TinySeq2Seq):
    """Records each training encoder batch and how many decoder rows read it."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.calls: list[tuple[torch.Tensor, int]] = []

    def decode(self, memory, memory_mask, tokens, levels, slots, past=None, memory_index=None):
        if self.training:
            self.calls.append((memory_mask.clone(), tokens.shape[0]))
        return super().decode(memory, memory_mask, tokens, levels, slots, past, memory_index)


def test_training_encodes_each_sessions_history_once_per_batch(tiny_split):
    """Interaction-level samples of one session share their history; the epoch draws them together
    and the batch encodes that history once (the cost fix of the encoder-decoder rows)."""
    model = Seq2SeqRecommender(
        seed=0,
        architecture="tests.test_seq2seq:EncoderSpy",
        training={"epochs": 1, "batch_size": 64, "micro_batch": 64, "lr": 1e-2, "patience": 1},
        max_history=10,
    )
    calls = model.fit(tiny_split.train, tiny_split.queries("valid")).model_.calls
    encoder_rows = sum(mask.shape[0] for mask, _ in calls)
    decoder_rows = sum(n for _, n in calls)
    assert decoder_rows == model.n_samples_
    assert encoder_rows < decoder_rows / 2  # ~4 interactions per session in the generator


def test_grouped_permutation_shuffles_groups_and_keeps_each_together():
    groups = np.array([5, 5, 5, 9, 9, 2, 7, 7, 7, 7])
    orders = {tuple(grouped_permutation(np.random.default_rng(seed), groups)) for seed in range(20)}
    assert len(orders) > 1  # the groups are shuffled
    for order in orders:
        assert sorted(order) == list(range(10))
        labels = groups[list(order)]
        runs = labels[np.r_[True, labels[1:] != labels[:-1]]]
        assert len(runs) == len(set(runs)) == 4  # each group is one contiguous run, in its own order
        for g in set(groups.tolist()):
            members = [i for i in order if groups[i] == g]
            assert members == sorted(members)
    same = grouped_permutation(np.random.default_rng(3), groups)
    np.testing.assert_array_equal(same, grouped_permutation(np.random.default_rng(3), groups))
    assert len(grouped_permutation(np.random.default_rng(0), np.array([], dtype=np.int64))) == 0
