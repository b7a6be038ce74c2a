"""`gamer-bench perf gamer --epoch-of`: the projected paper epoch, by hand."""

from __future__ import annotations

import pytest

from benchmark import perf_gamer
from gamer import training
from gamer.model import DecoderConfig, GenerativeDecoder


@pytest.mark.parametrize("budget, rate_used", [(1 << 62, 1000.0), (0, 500.0)])
def test_the_epoch_projection_divides_the_epoch_by_the_rate_a_paper_micro_batch_trains_at(
    monkeypatch, budget, rate_used
):
    """Here: tokens / the rate (the recomputed one where a paper micro-batch exceeds the budget); on a
    GPU: 3 x forward FLOPs per token x tokens / (peak x 35 %)."""
    monkeypatch.setattr(perf_gamer, "paper_epoch_tokens", lambda dataset: (10, 3_600_000))
    monkeypatch.setattr(training, "activation_budget", lambda device: budget)
    model = GenerativeDecoder(DecoderConfig.gamer(64, 3, 4, d_model=16, n_layers=2, head_dim=8, d_ff=32))
    here, gpu = perf_gamer.epoch_projection("x.toml", 1000.0, 500.0, model, 100.0, "cpu")
    assert here[1] == f"{3_600_000 / rate_used / 3600:,.1f} h here" and here[2] == "10 sequences"
    assert ("recomputed" in here[3]) == (budget == 0)
    seconds = 3 * model.flops_per_token(505) * 3_600_000 / (100e12 * 0.35)
    assert gpu[1] == f"{seconds / 60:,.1f} min"


def test_paper_epoch_tokens_counts_augmented_sequences_of_five_tokens_per_interaction(tmp_path):
    """On a tiny synthetic log: 4x augmentation gives up to five sequences per training user, each cut to
    100 interactions of a behavior token and four ID tokens."""
    toml = tmp_path / "tiny.toml"
    toml.write_text('name = "tiny"\nformat = "synthetic"\n[synthetic]\nn_users = 40\nn_items = 200\nseed = 5\n')
    sequences, tokens = perf_gamer.paper_epoch_tokens(str(toml))
    assert 40 <= sequences <= 5 * 40
    assert tokens % 5 == 0 and 2 * 5 * sequences <= tokens <= 100 * 5 * sequences
