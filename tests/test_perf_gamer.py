"""`gamer-bench perf gamer --epoch-of`: the projected paper epoch, by hand."""

from __future__ import annotations

import pytest

from benchmark import perf_gamer
from gamer import training
from gamer.model import DecoderConfig, GenerativeDecoder, SharedPrompt


@pytest.mark.parametrize("budget, rate_used", [(1 << 62, 1000.0), (0, 500.0)])
def test_the_epoch_projection_divides_the_epochs_flops_by_what_a_paper_micro_batch_reaches(
    monkeypatch, budget, rate_used
):
    """Here: the epoch's FLOPs (GAMER at paper size, the dataset's vocabulary) over the model FLOP/s the
    measured rate reaches (the recomputed rate where a paper micro-batch exceeds the budget); on a GPU:
    over the peak at 35 %."""
    epoch = perf_gamer.PaperEpoch(10, 3_600_000, 3, (8, 4, 2, 100))
    monkeypatch.setattr(perf_gamer, "paper_epoch", lambda dataset: epoch)
    monkeypatch.setattr(training, "activation_budget", lambda device: budget)
    model = GenerativeDecoder(DecoderConfig.gamer(64, 3, 4, d_model=16, n_layers=2, head_dim=8, d_ff=32))
    here, gpu = perf_gamer.epoch_projection("x.toml", 1000.0, 500.0, model, 100.0, "cpu")
    sized = GenerativeDecoder(DecoderConfig.gamer(1 + 3 + 114, 3, 4))
    flops = 3 * sized.flops_per_token(505) * 3_600_000
    assert here[1] == f"{flops / (rate_used * 3 * model.flops_per_token(505)) / 3600:,.1f} h here"
    assert here[2] == "10 sequences" and "vocabulary 118" in here[3]
    assert ("recomputed" in here[3]) == (budget == 0)
    assert gpu[1] == f"{flops / (100e12 * 0.35) / 60:,.1f} min"


def test_a_paper_epoch_counts_augmented_sequences_of_a_behavior_and_four_id_tokens_per_interaction(tmp_path):
    """On a tiny synthetic log with its released 4-level SIDs: 4x augmentation gives up to five sequences
    per training user, each cut to 100 interactions."""
    toml = tmp_path / "tiny.toml"
    toml.write_text('name = "tiny"\nformat = "synthetic"\n[synthetic]\nn_users = 40\nn_items = 200\nseed = 5\n')
    epoch = perf_gamer.paper_epoch(str(toml))
    assert 40 <= epoch.sequences <= 5 * 40 and len(epoch.codebook_sizes) == 4 and epoch.n_behaviors == 3
    assert epoch.tokens % 5 == 0 and 2 * 5 * epoch.sequences <= epoch.tokens <= 100 * 5 * epoch.sequences


def test_a_replayed_search_returns_what_the_model_search_returned():
    """The constraint's share is timed on replayed logits: the same search, without the model."""
    import numpy as np
    import torch

    from gamer.beam_search import PrefixTrie, constrained_beam_search
    from gamer.sequences import TokenLayout, encode

    layout = TokenLayout(perf_gamer.N_BEHAVIORS, perf_gamer._catalogue(60, 0))
    vocab = int(layout.item_tokens.max()) + 1
    torch.manual_seed(0)
    config = DecoderConfig.gamer(vocab, 3, 4, d_model=16, n_layers=2, head_dim=8, d_ff=32, dropout=0.0)
    model = GenerativeDecoder(config).eval()
    prompts = encode(
        layout, perf_gamer._sequences(3, 5, 60, 2), session_wise=False, targets="none", prompt_behavior=np.full(3, 2)
    )
    trie = PrefixTrie.from_item_tokens(layout.item_tokens, vocab)
    with torch.no_grad():
        recording = perf_gamer.RecordingDecoder(model, prompts)
        items, scores = constrained_beam_search(recording, trie, num_beams=20, top_k=10)
        replayed = constrained_beam_search(perf_gamer.ReplayDecoder(recording.record), trie, num_beams=20, top_k=10)
    assert len(recording.record) == 4  # prefill and three steps
    assert torch.equal(replayed[0], items) and torch.equal(replayed[1], scores)
    # The before/after row: beams holding copies of their prompt's keys find the same items.
    with torch.no_grad():
        copied = perf_gamer.CopiedCacheDecoder(model, prompts)
        copied_items, copied_scores = constrained_beam_search(copied, trie, num_beams=20, top_k=10)
    assert not any(isinstance(kv, SharedPrompt) for kv in copied.cache.self_kv)
    assert torch.equal(copied_items, items)
    torch.testing.assert_close(copied_scores, scores, rtol=0, atol=1e-5)


def test_decode_flops_are_the_causal_prefill_and_one_token_per_beam_after():
    model = GenerativeDecoder(DecoderConfig.gamer(64, 3, 4, d_model=16, n_layers=2, head_dim=8, d_ff=32))
    prefill = 2 * sum(model.flops_per_token(t) for t in range(1, 11))  # two prompts of 10 tokens
    steps = 2 * 5 * sum(model.flops_per_token(10 + d) for d in (1, 2, 3))  # 5 beams, levels 2..4
    assert perf_gamer.decode_flops(model, 2, 10, 5) == pytest.approx(prefill + steps)
