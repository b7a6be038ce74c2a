"""The encoder-decoder rows' layout, batches, training and constrained decoding (model-independent)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from baselines.seq2seq import Seq2SeqLayout, Seq2SeqRecommender
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

    def decode(self, memory, memory_mask, tokens, levels, slots, past=None):
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
