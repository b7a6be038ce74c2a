"""`gamer.training.train_decoder`: the per-epoch record and why training stopped, on a scripted criterion."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gamer.training import STOP_EPOCH_CAP, STOP_MAX_STEPS, STOP_MIN_STEPS, STOP_PATIENCE, TrainConfig, train_decoder


class _Batch:
    """One scalar target: the loss is (w - 1)^2 summed over ``n_targets`` copies."""

    n_targets = 4

    def to(self, device):
        return self

    def loss_inputs(self):
        return (torch.ones(self.n_targets),)


class _Loss(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, target: torch.Tensor) -> torch.Tensor:
        return ((self.model.weight.sum() - target) ** 2).sum()


def _train(script: list[float], **config) -> tuple:
    model = torch.nn.Linear(1, 1, bias=False)
    values = iter(script)
    result = train_decoder(
        model,
        lambda index: _Batch(),
        n_sequences=8,
        valid_batches=[],
        config=TrainConfig(batch_size=8, micro_batch=8, lr=0.1, seed=0, **config),
        criterion=_Loss(model),
        validate=lambda: next(values),
    )
    return result


def test_patience_stops_training_and_says_so():
    result = _train([3.0, 2.0, 2.5, 2.4, 1.0], epochs=5, patience=2)
    assert result.stop_reason == STOP_PATIENCE
    assert result.epochs_run == 4 and result.best_epoch == 2
    assert [r["valid_loss"] for r in result.history] == [3.0, 2.0, 2.5, 2.4]  # one record per epoch
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    assert all(np.isfinite(r["train_loss"]) for r in result.history)


def test_a_run_still_improving_at_the_last_epoch_stopped_at_the_cap():
    result = _train([3.0, 2.0, 1.0], epochs=3, patience=2)
    assert result.stop_reason == STOP_EPOCH_CAP and result.epochs_run == 3 and result.best_epoch == 3


@pytest.mark.parametrize(
    ("script", "reason"), [([3.0, 2.0, 1.0, 0.5], STOP_MIN_STEPS), ([3.0, 4.0, 5.0], STOP_PATIENCE)]
)
def test_min_steps_lifts_the_cap_and_is_named_when_it_ends_training(script, reason):
    # One step per epoch, so min_steps = 4 lifts a 2-epoch cap to 4 epochs.
    result = _train(script, epochs=2, patience=2, min_steps=4)
    assert result.stop_reason == reason


def test_samples_per_epoch_draws_a_fresh_subset_each_epoch():
    drawn = []
    model = torch.nn.Linear(1, 1, bias=False)

    def make_batch(index):
        drawn.append(sorted(index.tolist()))
        return _Batch()

    values = iter([3.0, 2.0, 1.0])
    train_decoder(
        model,
        make_batch,
        n_sequences=100,
        valid_batches=[],
        config=TrainConfig(epochs=3, batch_size=10, micro_batch=10, lr=0.1, samples_per_epoch=20, seed=0),
        criterion=_Loss(model),
        validate=lambda: next(values),
    )
    assert len(drawn) == 6  # two steps of 10 per epoch, not ten
    epochs = [set(drawn[0] + drawn[1]), set(drawn[2] + drawn[3]), set(drawn[4] + drawn[5])]
    assert all(len(e) == 20 for e in epochs) and epochs[0] != epochs[1] != epochs[2]


def test_max_steps_stops_mid_epoch_validates_once_and_says_so():
    steps = []
    model = torch.nn.Linear(1, 1, bias=False)

    def make_batch(index):
        steps.append(len(index))
        return _Batch()

    result = train_decoder(
        model,
        make_batch,
        n_sequences=8,
        valid_batches=[],
        config=TrainConfig(batch_size=2, micro_batch=2, lr=0.1, seed=0, epochs=5, max_steps=3),  # 4 steps an epoch
        criterion=_Loss(model),
        validate=lambda: 1.0,
    )
    assert len(steps) == 3 and result.stop_reason == STOP_MAX_STEPS
    assert result.epochs_run == 1 and len(result.history) == 1  # the cut epoch is validated, then training ends


# ---- checkpoints: a killed run resumes and ends where an uninterrupted one does ----------------------


class _Killed(Exception):
    pass


class _Regression(torch.nn.Module):
    """A linear model behind dropout, so that resuming must also restore torch's random state."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.drop, self.linear = torch.nn.Dropout(0.3), torch.nn.Linear(4, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return ((self.linear(self.drop(x)).squeeze(-1) - y) ** 2).sum()


class _Rows:
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y, self.n_targets = x, y, len(y)

    def to(self, device):
        return self

    def loss_inputs(self):
        return self.x, self.y


FEATURES = torch.from_numpy(np.random.default_rng(0).normal(size=(24, 4)).astype(np.float32))
TARGETS = FEATURES @ torch.tensor([1.0, -2.0, 0.5, 3.0])


def _train_regression(kill_at: int | None = None):
    model = _Regression()
    calls = []

    def make_batch(index):
        calls.append(1)
        if kill_at is not None and len(calls) == kill_at:
            raise _Killed
        i = torch.from_numpy(index)
        return _Rows(FEATURES[i], TARGETS[i])

    def validate() -> float:
        with torch.no_grad():
            return float(model(FEATURES, TARGETS))

    config = TrainConfig(epochs=4, batch_size=8, micro_batch=4, lr=0.05, patience=10, seed=3)
    result = train_decoder(model, make_batch, 24, [], config, criterion=model, validate=validate)
    return model, result


def test_a_killed_run_resumes_from_its_checkpoint_and_ends_as_an_uninterrupted_one(tmp_path):
    from gamer.checkpoint import checkpointing

    model, result = _train_regression()
    path = tmp_path / "cell.ckpt"
    # 3 steps of 2 micro-batches an epoch: call 15 is in epoch 3's second step, after mid-epoch writes
    with checkpointing(path, key="cell", minutes=1e-9) as saver, pytest.raises(_Killed):
        _train_regression(kill_at=15)
    assert path.exists() and saver.writes >= 2 and not saver.resumed
    told = json.loads(saver.progress_path.read_text())  # what `gamer-bench run` shows of a running cell
    assert (told["epoch"], told["epochs"]) == (2, 4) and told["best_epoch"] in (1, 2) and "loss" in told
    spent = saver.spent_s()
    with checkpointing(path, key="cell", minutes=1e-9) as saver:
        resumed_model, resumed = _train_regression()
    assert saver.resumed and 0 < saver.earlier_s <= spent  # the killed run's seconds, up to its last write
    assert torch.equal(resumed_model.linear.weight, model.linear.weight)
    assert (resumed.best_epoch, resumed.epochs_run, resumed.stop_reason) == (
        result.best_epoch, result.epochs_run, result.stop_reason
    )  # fmt: skip
    drop_seconds = [{k: v for k, v in r.items() if k != "seconds"} for r in resumed.history]
    assert drop_seconds == [{k: v for k, v in r.items() if k != "seconds"} for r in result.history]


def test_a_checkpoint_of_another_configuration_is_not_resumed(tmp_path):
    from gamer.checkpoint import checkpointing

    path = tmp_path / "cell.ckpt"
    with checkpointing(path, key="one", minutes=1e-9), pytest.raises(_Killed):
        _train_regression(kill_at=9)
    with checkpointing(path, key="another", minutes=1e-9) as saver:
        _, result = _train_regression()
    assert not saver.resumed and result.epochs_run == 4
    assert torch.load(path, weights_only=True)["key"] == "another"


# ---- activation recomputation: memory for time, never a different result ------------------------------------


def _decoder_training(monkeypatch, budget: int) -> tuple:
    """Two epochs of a tiny GAMER with the paper's dropouts on 24 sequences, micro-batches of 12 (more
    than one `ATTENTION_PIECE`), with the activation budget set to ``budget`` bytes."""
    from benchmark.perf_gamer import LEVELS, N_BEHAVIORS, _catalogue, _sequences
    from gamer import training
    from gamer.model import DecoderConfig, GenerativeDecoder
    from gamer.sequences import TokenLayout, encode

    monkeypatch.setattr(training, "activation_budget", lambda device: budget)
    layout = TokenLayout(N_BEHAVIORS, _catalogue(40, 0))
    sizes = dict(d_model=16, n_layers=2, n_heads=2, n_kv_heads=1, head_dim=8, d_ff=32, behavior_dim=8)
    torch.manual_seed(0)
    config = DecoderConfig.gamer(int(layout.item_tokens.max()) + 1, N_BEHAVIORS, LEVELS, **sizes)
    model = GenerativeDecoder(config)
    assert (config.dropout, config.attention_dropout) == (0.2, 0.2)
    sequences = _sequences(24, 9, 40, 1)
    result = train_decoder(
        model,
        lambda index: encode(layout, sequences.select(index), session_wise=False),
        len(sequences),
        [encode(layout, _sequences(4, 9, 40, 2), session_wise=False, targets="last")],
        TrainConfig(epochs=2, batch_size=12, micro_batch=12, lr=1e-2, seed=0),
    )
    return result, model.state_dict(), model.recompute  # the last micro-batch's choice


def test_recomputed_activations_train_to_the_same_bits(monkeypatch):
    """A micro-batch over the activation budget trains under recomputation (block by block, attention
    piece by piece, dropout masks replayed): the same losses and the same weights as without it."""
    plain, plain_state, plain_recomputed = _decoder_training(monkeypatch, budget=1 << 62)
    recomputed, recomputed_state, on = _decoder_training(monkeypatch, budget=0)
    assert (plain_recomputed, on) == (False, True)
    assert [e["train_loss"] for e in recomputed.history] == [e["train_loss"] for e in plain.history]
    assert recomputed.best_valid_loss == plain.best_valid_loss
    assert all(torch.equal(recomputed_state[k], plain_state[k]) for k in plain_state)


def test_recomputation_keeps_a_fraction_of_the_activations():
    """What autograd saves for the backward pass of a paper-shaped forward (12 sequences of 121
    tokens, attention dropout on the CPU): recomputation keeps the blocks' inputs only."""
    from benchmark.perf_gamer import LEVELS, N_BEHAVIORS, _catalogue, _sequences
    from gamer.model import DecoderConfig, GenerativeDecoder
    from gamer.sequences import TokenLayout, encode
    from gamer.training import NextTokenLoss

    layout = TokenLayout(N_BEHAVIORS, _catalogue(40, 0))
    batch = encode(layout, _sequences(12, 25, 40, 1), session_wise=False)
    config = DecoderConfig.gamer(int(layout.item_tokens.max()) + 1, N_BEHAVIORS, LEVELS, d_model=32, n_layers=4)
    model = GenerativeDecoder(config).train()
    saved = {}
    for on in (False, True):
        model.recompute = on
        total = []

        def keep(tensor, total=total):
            total.append(tensor.numel() * tensor.element_size())
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
            NextTokenLoss(model, 0.7).on(batch)
        saved[on] = sum(total)
    assert saved[True] < saved[False] / 8


def test_the_training_loss_is_the_next_token_cross_entropy_of_id_tokens():
    """`NextTokenLoss` (logits at the target positions only) equals the reference loss over the full
    logits (`helpers.next_token_loss`): the target at position t is the token at t + 1, and only ID
    tokens are scored, never behavior tokens or padding."""
    from helpers import next_token_loss

    from benchmark.perf_gamer import LEVELS, N_BEHAVIORS, _catalogue, _sequences
    from gamer.model import DecoderConfig, GenerativeDecoder
    from gamer.sequences import TokenLayout, encode
    from gamer.training import NextTokenLoss

    torch.manual_seed(0)
    layout = TokenLayout(N_BEHAVIORS, _catalogue(40, 0))
    batch = encode(layout, _sequences(5, 9, 40, 2), session_wise=False)
    config = DecoderConfig.gamer(int(layout.item_tokens.max()) + 1, N_BEHAVIORS, LEVELS, d_model=32, n_layers=2)
    model = GenerativeDecoder(config).eval()
    tokens, levels, slots, positions, sessions, targets, target_mask = batch.loss_inputs()
    scored = torch.zeros_like(target_mask)
    scored[:, 1:] = target_mask[:, :-1]
    assert torch.equal(targets[target_mask], tokens[scored])
    assert (slots[scored] > 0).all() and batch.n_targets > 0
    logits = model.logits(model.hidden_states(tokens, levels, slots, positions, sessions))
    expected = next_token_loss(logits, tokens, scored, temperature=0.7, reduction="sum")
    torch.testing.assert_close(NextTokenLoss(model, 0.7).on(batch), expected, rtol=1e-5, atol=1e-5)
