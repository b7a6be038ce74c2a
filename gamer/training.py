"""User-level training of the decoder-only models (Sections 3.4 and 4.1.4).

AdamW, a linear warm-up over the first 4 % of the steps, cosine decay to a floor of 1e-6 (the
paper; the authors' code decays to 0), gradient clipping at 1.0, and early stopping on the
validation loss with the lowest-loss weights kept. One batch of ``batch_size`` sequences is split
into micro-batches of at most ``micro_batch`` sequences whose gradients are accumulated, so the
optimisation does not depend on how much fits in memory. A micro-batch whose activations would
take more than a quarter of the device's memory trains with activation recomputation
(`needs_recompute`), which changes the time of a step, never its result.

Under ``torchrun`` (``WORLD_SIZE`` > 1) it trains data-parallel with DistributedDataParallel
(gloo on CPU, NCCL on GPU): every rank takes an equal share of each batch, gradients are averaged,
and the validation loss is reduced over ranks, so the result has the same meaning as one process.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from gamer import checkpoint, scalars
from gamer.sequences import TokenBatch


@dataclass
class TrainConfig:
    epochs: int = 200
    batch_size: int = 4096  # sequences per optimiser step (paper: 4096)
    micro_batch: int = 128  # sequences per forward pass; gradients accumulate up to batch_size
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup: float = 0.04  # share of all steps spent in linear warm-up (paper: 4 %)
    min_lr: float = 1e-6  # the cosine floor the paper states
    patience: int = 20  # epochs without a better validation loss before stopping
    min_steps: int = 0  # train at least this many optimiser steps (more epochs when the data is small)
    # Sequences per epoch, a fresh random subset each epoch (0 = every sequence): on interaction-level
    # data an epoch of every sample is long, and validating more often finds the plateau sooner.
    samples_per_epoch: int = 0
    temperature: float = 1.0  # the authors' runs divide logits by 0.7 in the loss
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "cpu"
    max_steps: int = 0  # > 0: stop after this many optimiser steps, mid-epoch if need be (a rehearsal)


# One line per epoch at INFO (`gamer-bench run` shows them when it runs one cell at a time).
progress = logging.getLogger("gamer_bench.training")

# Why training stopped, as every stored cell records it (the report flags "epoch cap" outside smoke):
# the validation criterion stopped improving for ``patience`` epochs; the profile's epoch cap came
# first; or the cap was lifted to reach ``min_steps`` optimiser steps and that came first.
STOP_PATIENCE, STOP_EPOCH_CAP, STOP_MIN_STEPS = "patience", "epoch cap", "min_steps"
# A rehearsal (`gamer-bench run --max-steps N`) stops after N optimiser steps; its cells are never stored.
STOP_MAX_STEPS = "max_steps"


@dataclass
class TrainResult:
    best_epoch: int  # counted from 1, as in every record of ``history``
    best_valid_loss: float
    epochs_run: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)  # one record per epoch
    stop_reason: str = STOP_EPOCH_CAP


class NextTokenLoss(torch.nn.Module):
    """Summed cross-entropy of ``batch.targets`` at ``batch.target_mask``, on logits / temperature.

    Only ID tokens are targets: behavior tokens are inputs (the authors' choice; the paper's Eq. 6
    sums over every token). Logits are computed at the target positions only, which spares the
    ``[B, T, V]`` tensor. A module of its own so that DistributedDataParallel can wrap it.
    """

    def __init__(self, model: torch.nn.Module, temperature: float = 1.0) -> None:
        super().__init__()
        self.model = model
        self.temperature = temperature

    def forward(
        self,
        tokens: torch.Tensor,
        levels: torch.Tensor,
        slots: torch.Tensor,
        positions: torch.Tensor,
        sessions: torch.Tensor,
        targets: torch.Tensor,
        target_mask: torch.Tensor,
    ) -> torch.Tensor:
        hidden = self.model.hidden_states(tokens, levels, slots, positions, sessions)
        logits = self.model.logits(hidden[target_mask]) / self.temperature
        return F.cross_entropy(logits, targets[target_mask], reduction="sum")

    def on(self, batch: TokenBatch) -> torch.Tensor:
        return self(*batch.loss_inputs())


def grouped_permutation(rng: np.random.Generator, groups: np.ndarray) -> np.ndarray:
    """The indices ``0 .. len(groups) - 1`` in a random order that keeps each group together: the groups
    are shuffled, their members keep their relative order. Draws one permutation of the group count."""
    if len(groups) == 0:
        return np.zeros(0, dtype=np.int64)
    _, label = np.unique(groups, return_inverse=True)
    label = label.reshape(-1)
    rank = rng.permutation(int(label.max()) + 1)[label]
    return np.argsort(rank, kind="stable")


def report_epoch(
    epoch: int,
    epochs: int,
    train_loss: float,
    criterion: tuple[str, float, float, int],
    patience: int,
    seconds: float,
    per_epoch: float,
) -> None:
    """The per-epoch line (`gamer-bench run` shows it with one job), the running cell's progress
    file (shown on the bar with several) and, with ``--tensorboard``, its TensorBoard scalars.
    ``criterion`` = (name, this epoch's value, best value, best epoch); ``seconds`` is the time the line
    shows. The ETA is the time to the earliest stop: ``patience`` epochs after the best one (or the
    cap), at ``per_epoch`` seconds an epoch."""
    name, value, best, best_epoch = criterion
    left = max(0, min(best_epoch + patience, epochs) - epoch)
    progress.info(
        "epoch %d/%d: train loss %.4f, validation %s %.4f (best %.4f at epoch %d), %.0f s; "
        "stops in >= %.1f min unless it improves",
        *(epoch, epochs, train_loss, name, value, best, best_epoch, seconds, left * per_epoch / 60),
    )
    scalars.add_epoch(
        epoch,
        {"train/loss": train_loss, f"validation/{name}": value, f"validation/best {name}": best}
        | {"time/seconds": seconds},
    )
    saver = checkpoint.active()
    if saver is not None:
        saver.report(
            {"epoch": epoch, "epochs": epochs, "best_epoch": best_epoch, name: value, "eta_min": left * per_epoch / 60}
        )


def lr_lambda(total_steps: int, config: TrainConfig) -> Callable[[int], float]:
    warmup = max(1, math.ceil(config.warmup * total_steps))
    floor = config.min_lr / config.lr

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def resolve_device(device: str) -> torch.device:
    """``"auto"`` = the GPU when torch sees one, else the CPU; any other value is passed to ``torch.device``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def activation_budget(device: torch.device) -> int:
    """Bytes a training forward may keep for its backward pass: a quarter of the device's memory."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory // 4
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4


def needs_recompute(
    model: torch.nn.Module, shape: tuple[int, int], device: torch.device, budget: int | None = None
) -> bool:
    """Whether a micro-batch of ``shape`` (sequences, tokens) should train under activation recomputation
    against ``budget`` bytes (default `activation_budget`): a paper-size micro-batch of 128 sequences of
    505 tokens keeps ~0.4 GB per sequence on the CPU with the paper's attention dropout (measured), 52 GB
    in all. Models without an ``activation_bytes`` estimate never recompute."""
    estimate = getattr(model, "activation_bytes", None)
    budget = activation_budget(device) if budget is None else budget
    return estimate is not None and estimate(*shape, device) > budget


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (0 and 1 outside torchrun)."""
    return _distributed()


def _distributed() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed() -> bool:
    """Join the process group ``torchrun`` set up (gloo on CPU, NCCL on GPU); False when single-process."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or (dist.is_available() and dist.is_initialized()):
        return dist.is_available() and dist.is_initialized()
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return True


def evaluate_loss(
    model: torch.nn.Module,
    batches: list[TokenBatch],
    temperature: float,
    device: str,
    criterion: torch.nn.Module | None = None,
) -> float:
    """Mean per-token loss over every target token of ``batches`` (summed over ranks when distributed).

    ``criterion(*batch.loss_inputs())`` gives a batch's summed loss; `NextTokenLoss` by default."""
    model.eval()
    criterion = NextTokenLoss(model, temperature) if criterion is None else criterion
    total = torch.zeros(2, dtype=torch.float64)
    with torch.no_grad():
        for batch in batches:
            batch = batch.to(device)
            loss = criterion(*batch.loss_inputs())
            total += torch.tensor([loss.item(), float(batch.n_targets)], dtype=torch.float64)
    if _distributed()[1] > 1:
        dist.all_reduce(total)
    return float(total[0] / max(total[1], 1.0))


def train_decoder(
    model: torch.nn.Module,
    make_batch: Callable[[np.ndarray], TokenBatch],
    n_sequences: int,
    valid_batches: list[TokenBatch],
    config: TrainConfig,
    *,
    criterion: torch.nn.Module | None = None,
    validate: Callable[[], float] | None = None,
    log: Callable[[dict[str, float]], None] | None = None,
    groups: np.ndarray | None = None,
) -> TrainResult:
    """Train ``model`` in place and leave it holding the weights with the lowest validation loss.

    ``make_batch(indices)`` encodes the given training sequences; sequences are shuffled each epoch
    from ``config.seed``. ``valid_batches`` are this rank's share of the validation samples.
    ``criterion(*batch.loss_inputs())`` is a batch's summed loss over its ``batch.n_targets`` target
    tokens: `NextTokenLoss` (decoder-only) by default; encoder-decoders bring their own.
    ``validate()``, when given, replaces the loss on ``valid_batches`` as the selection criterion: it
    is called after each epoch with the model in eval mode and returns a value where lower is better
    (the ranking models of Appendix D return 1 - validation AUROC). ``groups`` [n_sequences], when
    given, labels sequences drawn together (`grouped_permutation`): the interaction-level samples of
    one session, which share their history, so that a batch encodes it once.
    """
    init_distributed()
    rank, world = _distributed()
    device = config.device
    model.to(device)
    criterion = NextTokenLoss(model, config.temperature) if criterion is None else criterion
    trained = torch.nn.parallel.DistributedDataParallel(criterion) if world > 1 else criterion
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
    )
    per_epoch = min(n_sequences, config.samples_per_epoch) if config.samples_per_epoch else n_sequences
    steps_per_epoch = max(1, math.ceil(per_epoch / config.batch_size))
    epochs = max(config.epochs, math.ceil(config.min_steps / steps_per_epoch))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(steps_per_epoch * epochs, config))
    rng = np.random.default_rng(config.seed)
    best = (math.inf, 0, copy.deepcopy(model.state_dict()))
    history: list[dict[str, float]] = []
    stop_reason = STOP_EPOCH_CAP if epochs == config.epochs else STOP_MIN_STEPS
    first_epoch, first_step, steps_done, elapsed, order = 1, 0, 0, 0.0, None
    train_loss, train_tokens = 0.0, 0
    saver = checkpoint.active()
    resumed = saver.load() if saver is not None else None
    if resumed is not None:  # a killed run of this cell: go on from where it stood
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        scheduler.load_state_dict(resumed["scheduler"])
        checkpoint.restore_random_states(rng, resumed["random"])
        best = (resumed["best_loss"], resumed["best_epoch"], resumed["best_state"])
        history = resumed["history"]
        first_epoch, first_step, steps_done = resumed["epoch"], resumed["step"], resumed["steps_done"]
        elapsed, train_loss, train_tokens = resumed["elapsed"], resumed["train_loss"], resumed["train_tokens"]
        order = resumed["order"].numpy() if first_step else None

    def state(epoch: int, step: int) -> dict[str, Any]:
        """Where training stands before ``step`` of ``epoch`` (step 0: before the epoch draws its order)."""
        return {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "random": checkpoint.random_states(rng), "epoch": epoch, "step": step, "steps_done": steps_done,
            "order": torch.from_numpy(order if step else np.zeros(0, dtype=np.int64)),
            "train_loss": train_loss if step else 0.0, "train_tokens": train_tokens if step else 0,
            "best_loss": best[0], "best_epoch": best[1], "best_state": best[2], "history": history,
            "elapsed": time.perf_counter() - start,
        }  # fmt: skip

    # Activation recomputation is chosen per micro-batch (`needs_recompute`) for models that can do it.
    resolved = resolve_device(device)
    budget = activation_budget(resolved) if hasattr(model, "recompute") else None
    start = time.perf_counter() - elapsed
    epoch = first_epoch - 1
    for epoch in range(first_epoch, epochs + 1):
        model.train()
        if order is None:
            order = rng.permutation(n_sequences) if groups is None else grouped_permutation(rng, groups)
            order = order[:per_epoch]
            train_loss, train_tokens = 0.0, 0
        for step in range(first_step if epoch == first_epoch else 0, steps_per_epoch):
            if config.max_steps and steps_done >= config.max_steps:
                break
            steps_done += 1
            step_ids = order[step * config.batch_size : (step + 1) * config.batch_size]
            mine = np.array_split(step_ids, world)[rank]  # every rank an equal share of the batch
            pieces = [mine[i : i + config.micro_batch] for i in range(0, len(mine), config.micro_batch)] or [mine]
            batches = [make_batch(p).to(device) for p in pieces if len(p)]
            n_targets = sum(b.n_targets for b in batches)
            optimizer.zero_grad(set_to_none=True)
            for i, batch in enumerate(batches):
                if budget is not None:
                    model.recompute = needs_recompute(model, tuple(batch.tokens.shape), resolved, budget)
                # Sum over micro-batches, divided once by the step's token count: the mean of the full batch.
                sync = world == 1 or i == len(batches) - 1
                context = trained.no_sync() if not sync else contextlib.nullcontext()
                with context:
                    loss = trained(*batch.loss_inputs())
                    (loss / max(n_targets, 1)).backward()
                train_loss += loss.item()
                train_tokens += batch.n_targets
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            if saver is not None and rank == 0 and step + 1 < steps_per_epoch and saver.due():
                saver.save(state(epoch, step + 1))
        order = None
        if validate is None:
            valid_loss = evaluate_loss(model, valid_batches, config.temperature, device, criterion)
        else:
            model.eval()
            with torch.no_grad():
                valid_loss = float(validate())
        record = {
            "epoch": epoch,
            "train_loss": train_loss / max(train_tokens, 1),
            "valid_loss": valid_loss,
            "lr": scheduler.get_last_lr()[0],
            "seconds": time.perf_counter() - start,
        }
        history.append(record)
        if log is not None and rank == 0:
            log(record)
        if valid_loss < best[0]:
            best = (valid_loss, epoch, copy.deepcopy(model.state_dict()))
        if rank == 0:
            selection = ("loss", valid_loss, best[0], best[1])
            seconds = record["seconds"]  # since the start, a resumed run's first part included
            report_epoch(epoch, epochs, record["train_loss"], selection, config.patience, seconds, seconds / epoch)
        if config.max_steps and steps_done >= config.max_steps:
            stop_reason = STOP_MAX_STEPS
            break
        if epoch - best[1] >= config.patience:
            stop_reason = STOP_PATIENCE
            break
        if saver is not None and rank == 0 and epoch < epochs:
            saver.save(state(epoch + 1, 0))
    model.load_state_dict(best[2])
    return TrainResult(best[1], best[0], epoch, time.perf_counter() - start, history, stop_reason)
