"""The protocol every discriminative baseline is trained and tested under (paper Appendix A).

- **Training samples** (`protocols.samples.InteractionSamples`): every training interaction outside
  its user's first session is a target; its history is the user's interactions of *earlier sessions
  only*, cut to the most recent ``max_len`` (Section 3.2).

- **Model selection** (`SampledCandidates`): after each epoch, the target-behavior validation
  queries are scored on 1,000 candidates each (the query's positives and negatives drawn once,
  uniformly, from the items the user has not met before the test session, shuffled so that ties
  never favour a positive); the epoch with the best
  NDCG@10 is kept, and training stops after ``patience`` epochs without improvement.
- **Test**: full ranking over every item of the catalogue, top-k by `top_k` (``torch.topk`` on
  batches, ties broken towards the lower item index); padding can never be recommended.

`DiscriminativeRecommender` runs that loop for any model that can train an epoch and score items
for queries; `SequentialRecommender` does it for the sequence models of this package (the
`baselines.batch.SequenceBatch` contract), with one token per item or, for the ``_b`` variants, one
token per (behavior, item) pair (`TokenSpace`).
"""

from __future__ import annotations

import copy
import importlib
import math
import time
from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from baselines.batch import SequenceBatch, SequentialModule
from gamer import checkpoint
from gamer.training import (
    STOP_EPOCH_CAP,
    STOP_MAX_STEPS,
    STOP_PATIENCE,
    grouped_permutation,
    report_epoch,
    resolve_device,
)
from protocols import metrics
from protocols.interactions import Interactions
from protocols.model import Ranking, Recommender
from protocols.queries import Queries, ragged_rows
from protocols.samples import InteractionSamples

TRAINING_DEFAULTS: dict[str, Any] = {
    "max_len": 50,
    "batch_size": 256,
    "max_epochs": 200,
    "patience": 10,  # Appendix A (the authors' script default is 20)
    "learning_rate": 1e-3,
    "weight_decay": 0.01,  # the authors' AdamW default; the paper does not state it
    "samples_per_epoch": 0,  # 0 = every training sample; smoke profiles draw a subset per epoch
    # An epoch repeats whole passes over the training samples until it has made at least this many
    # optimiser steps (0 = one pass): on a small log a pass can be two steps, and patience counted
    # in such epochs would stop a model before it has trained at all.
    "min_steps_per_epoch": 0,
    "max_steps": 0,  # > 0: stop after this many optimiser steps, mid-epoch if need be (a rehearsal)
    "eval_batch_size": 512,
    "n_candidates": 1000,
    "target_behavior_only": False,  # MBHT trains on target-behavior targets only (Appendix A)
    "device": "auto",  # "auto" = the GPU when torch sees one, else the CPU; results are exact only on the CPU
}
VALIDATION_METRIC = "N@10"


# ---- ranking -------------------------------------------------------------------------------------


def top_k(scores: Tensor, k: int) -> list[np.ndarray]:
    """The column indices of each row's k best scores, best first; ties go to the lower column.

    ``torch.topk`` alone leaves the order of tied scores unspecified. Here it fetches k + 1 values:
    where the (k+1)-th is below the k-th, the set is settled and only its order is fixed (score
    descending, column ascending); a row whose tie crosses the cut (rare with float scores) takes
    its tied entries in column order. Entries equal to -inf (or NaN) are never returned, so a row
    with fewer than k finite scores comes back shorter.

    >>> [r.tolist() for r in top_k(torch.tensor([[0.5, 2.0, 0.5, 0.5, -math.inf]]), 3)]
    [[1, 0, 2]]
    """
    scores = scores.float()
    if scores.isnan().any():  # checked first: a copy of the whole batch costs more than topk itself
        scores = scores.nan_to_num(nan=-math.inf, posinf=math.inf, neginf=-math.inf)
    n_rows, n_cols = scores.shape
    k = min(k, n_cols)
    if k == 0 or n_rows == 0:
        return [np.zeros(0, dtype=np.int64) for _ in range(n_rows)]
    values, columns = scores.topk(min(k + 1, n_cols), dim=1)
    spill = values[:, k - 1] == values[:, k] if k < n_cols else torch.zeros(n_rows, dtype=torch.bool)
    columns = columns[:, :k].clone()
    if spill.any():
        columns[spill] = _tied_top_k(scores[spill], values[spill, k - 1 : k], k)
    columns = columns.sort(dim=1).values  # column ascending, then a stable sort by score descending
    values = scores.gather(1, columns)
    order = torch.sort(values, dim=1, descending=True, stable=True).indices
    columns, values = columns.gather(1, order), values.gather(1, order)
    finite = torch.isfinite(values)
    return [c[f].numpy() for c, f in zip(columns, finite, strict=True)]


def _tied_top_k(scores: Tensor, threshold: Tensor, k: int) -> Tensor:
    """``[r, k]`` columns: every score above ``threshold``, then tied ones in column order."""
    above = scores > threshold
    tied = scores == threshold
    room = k - above.sum(dim=1, keepdim=True)
    chosen = above | (tied & (tied.cumsum(dim=1) <= room))  # exactly k per row
    return chosen.nonzero()[:, 1].view(len(scores), k)


# ---- tokens ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenSpace:
    """Item tokens: ``item + 1`` (0 = padding), or with ``behavior_as_token`` one token per
    (behavior, item) pair, ``level * n_items + item + 1``, so that behavior b owns the block
    ``[b * n_items + 1, (b + 1) * n_items]`` (MBGen's setting, paper Section 4.1.2)."""

    n_items: int
    n_behaviors: int
    behavior_as_token: bool = False

    @property
    def n_tokens(self) -> int:
        """Tokens including padding 0."""
        return self.n_items * (self.n_behaviors if self.behavior_as_token else 1) + 1

    def encode(self, item: np.ndarray, level: np.ndarray) -> np.ndarray:
        item = np.asarray(item, dtype=np.int64)
        if self.behavior_as_token:
            return np.asarray(level, dtype=np.int64) * self.n_items + item + 1
        return item + 1

    def item_scores(self, token_scores: Tensor, level: Tensor) -> Tensor:
        """``[B, n_tokens]`` token scores -> ``[B, n_items]`` item scores for each row's behavior.

        A ``_b`` model scores behavior b's block only: the next item *with behavior b*."""
        items = token_scores[:, 1:]
        if not self.behavior_as_token:
            return items
        blocks = items.reshape(len(items), self.n_behaviors, self.n_items)
        return blocks[torch.arange(len(items)), level.long()]


def history_batch(
    tokens: np.ndarray,
    levels: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    max_len: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Right-padded ``[B, L]`` token and behavior (level + 1) tensors of the flat rows
    ``start[i]:end[i]``, each cut to its last ``max_len``, and the lengths ``[B]`` (an empty
    history becomes one padding token, so every length is >= 1)."""
    start = np.maximum(start, end - max_len)
    length = end - start
    width = max(int(length.max(initial=0)), 1)
    pos = start[:, None] + np.arange(width)[None, :]
    real = np.arange(width)[None, :] < length[:, None]
    pos = np.where(real, pos, 0)
    item = np.where(real, tokens[pos] if len(tokens) else 0, 0)
    behavior = np.where(real, levels[pos].astype(np.int64) + 1 if len(levels) else 0, 0)
    return torch.from_numpy(item), torch.from_numpy(behavior), torch.from_numpy(np.maximum(length, 1))


# ---- validation candidates ------------------------------------------------------------------------


@dataclass(frozen=True)
class SampledCandidates:
    """Target-behavior validation queries, each with ``[C]`` candidate items: its positives and
    negatives drawn once (uniformly, without replacement) from the items the user has met neither in
    the history nor in the validation session, i.e. never before the test session, in a seeded random
    order, so that a tie between a positive and a negative is a coin flip, never a win (a model that
    scores every item alike gets the chance-level NDCG@10). When the catalogue has fewer unseen items
    than needed, every unseen item is a candidate and the row is padded with -1 at its end."""

    queries: Queries
    items: np.ndarray  # [q, C] int64, -1 = no candidate

    @classmethod
    def draw(cls, valid: Queries, target_level: int, n_candidates: int, n_items: int, seed: int) -> SampledCandidates:
        queries = valid.for_behavior(target_level)
        width = min(n_candidates, n_items)
        if len(queries) == 0:  # `fit` says so; np.split would give one empty piece for zero queries
            return cls(queries, np.empty((0, width), dtype=np.int64))
        rng = np.random.default_rng([seed, 1000])  # one stream, independent of the model's seed use
        # Items the user met before the test session: its history and its whole validation session.
        seen_session: dict[int, list[np.ndarray]] = {}
        for user, pos in zip(valid.user.tolist(), valid.positive_sets(), strict=True):
            seen_session.setdefault(user, []).append(pos)
        items = np.full((len(queries), width), -1, dtype=np.int64)
        hist_rows = ragged_rows(queries.offsets)
        histories = np.split(queries.item, np.searchsorted(hist_rows, np.arange(1, len(queries))))
        for q, (user, positives) in enumerate(zip(queries.user.tolist(), queries.positive_sets(), strict=True)):
            positives = positives[:width]
            seen = np.unique(np.concatenate([histories[q], *seen_session[user]]))
            n_free = n_items - len(seen)
            n_neg = min(width - len(positives), n_free)
            free_rank = np.sort(rng.choice(n_free, size=n_neg, replace=False))
            # The r-th unseen item is r plus the number of seen items at or below it.
            negatives = free_rank + np.searchsorted(seen - np.arange(len(seen)), free_rank, side="right")
            # Positives sit among the negatives at seeded random columns: `top_k` breaks ties towards
            # the lower column, so positives placed first would hand a constant scorer NDCG@10 = 1.
            row = np.concatenate([positives, negatives])
            items[q, : len(row)] = row[rng.permutation(len(row))]
        return cls(queries, items)

    def __len__(self) -> int:
        return len(self.queries)


# ---- the training loop ----------------------------------------------------------------------------


class _StepCap(Exception):
    """Raised by the step counter when ``max_steps`` is reached, to leave the epoch mid-way."""


@dataclass
class TrainingLog:
    epochs: list[dict[str, float]]
    best_epoch: int = 0
    best_score: float = -math.inf
    stop_reason: str = STOP_EPOCH_CAP  # or STOP_PATIENCE (gamer.training)


class DiscriminativeRecommender(Recommender):
    """Fit = epochs of training with early stopping on sampled validation NDCG@10; test = full ranking.

    Subclasses build their model in `_setup`, train one epoch in `_train_epoch` and score every item
    for a batch of queries in `_item_scores`. Learned state ends in ``_``.
    """

    def __init__(self, *, seed: int = 0, **hyperparameters: Any) -> None:
        super().__init__(seed=seed, **hyperparameters)
        given = set(TRAINING_DEFAULTS) & set(hyperparameters)
        self.training = TRAINING_DEFAULTS | {k: hyperparameters[k] for k in given}
        self.model_hyperparameters = {k: v for k, v in hyperparameters.items() if k not in TRAINING_DEFAULTS}

    # -- to implement ----------------------------------------------------------------------------------
    @abstractmethod
    def _setup(self, train: Interactions) -> nn.Module:
        """Build (and return) the model for this training log; called once at the start of `fit`."""

    @abstractmethod
    def _train_epoch(self, optimizer: torch.optim.Optimizer, rng: np.random.Generator) -> float:
        """One epoch of optimisation; returns the mean training loss."""

    @abstractmethod
    def _item_scores(self, queries: Queries) -> Tensor:
        """``[q, n_items]`` scores of every item for each query (eval mode, no grad)."""

    def _device(self) -> torch.device:
        return resolve_device(self.training["device"])

    # -- the loop ------------------------------------------------------------------------------------
    def prepare(self, train: Interactions) -> torch.optim.Optimizer:
        """Seed, build the model for ``train`` and return its optimizer: the state before epoch 1."""
        torch.manual_seed(self.seed)
        self.n_items_ = train.n_items
        self.n_behaviors_ = len(train.schema.behaviors)
        self.target_level_ = train.schema.target_level
        self.device_ = self._device()
        self.module_ = self._setup(train).to(self.device_)
        t = self.training
        return torch.optim.AdamW(self.module_.parameters(), lr=t["learning_rate"], weight_decay=t["weight_decay"])

    def fit(self, train: Interactions, valid: Queries) -> DiscriminativeRecommender:
        optimizer = self.prepare(train)
        rng = np.random.default_rng(self.seed)
        t = self.training
        candidates = SampledCandidates.draw(valid, self.target_level_, t["n_candidates"], self.n_items_, self.seed)
        if len(candidates) == 0:
            raise ValueError("no target-behavior validation query to select a checkpoint on")
        log = TrainingLog(epochs=[])
        best_state = None
        steps, first_epoch = 0, 1
        saver = checkpoint.active()
        resumed = saver.load() if saver is not None else None
        if resumed is not None:  # a killed run of this cell: go on after its last finished epoch
            self.module_.load_state_dict(resumed["model"])
            optimizer.load_state_dict(resumed["optimizer"])
            checkpoint.restore_random_states(rng, resumed["random"])
            log = TrainingLog(resumed["epochs"], resumed["best_epoch"], resumed["best_score"])
            best_state, steps, first_epoch = resumed["best_state"] or None, resumed["steps"], resumed["epoch"]

        def count_step(*_: Any) -> None:
            nonlocal steps
            steps += 1
            if t["max_steps"] and steps >= t["max_steps"]:
                raise _StepCap  # out of the subclass's epoch, after the step it just made

        optimizer.register_step_post_hook(count_step)
        for epoch in range(first_epoch, t["max_epochs"] + 1):
            start, first_step = time.perf_counter(), steps
            self.module_.train()
            losses = []
            try:
                losses.append(self._train_epoch(optimizer, rng))
                while 0 < steps - first_step < t["min_steps_per_epoch"]:
                    losses.append(self._train_epoch(optimizer, rng))
            except _StepCap:
                log.stop_reason = STOP_MAX_STEPS
            loss, train_s = float(np.mean(losses)) if losses else math.nan, time.perf_counter() - start
            score = self.validation_score(candidates)
            record = {"epoch": epoch, "train_loss": loss, VALIDATION_METRIC: score, "train_s": train_s}
            log.epochs.append(record | {"passes": len(losses), "steps": steps - first_step})
            if score > log.best_score:
                log.best_epoch, log.best_score = epoch, score
                best_state = copy.deepcopy(self.module_.state_dict())
            criterion = (VALIDATION_METRIC, score, log.best_score, log.best_epoch)
            report_epoch(epoch, t["max_epochs"], loss, criterion, t["patience"], train_s, train_s)
            if log.stop_reason == STOP_MAX_STEPS:
                break
            if epoch - log.best_epoch >= t["patience"]:
                log.stop_reason = STOP_PATIENCE
                break
            if saver is not None and epoch < t["max_epochs"]:
                saver.save(
                    {"model": self.module_.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1}
                    | {"random": checkpoint.random_states(rng), "steps": steps, "epochs": log.epochs}
                    | {"best_epoch": log.best_epoch, "best_score": log.best_score, "best_state": best_state or {}}
                )
        if best_state is not None:
            self.module_.load_state_dict(best_state)  # the checkpoint that scored best is the one tested
        self.module_.eval()
        self.log_ = log
        return self

    def scores(self, queries: Queries) -> Iterator[Tensor]:
        """Item scores of ``queries`` in batches of ``eval_batch_size`` (eval mode, no grad)."""
        self.module_.eval()
        size = self.training["eval_batch_size"]
        index = np.arange(len(queries))
        for start in range(0, len(queries), size):
            part = queries.select((index >= start) & (index < start + size))
            with torch.no_grad():  # never across a yield: a paused generator would leave grad mode off
                scores = self._item_scores(part).float().cpu()
            yield scores

    def validation_score(self, candidates: SampledCandidates) -> float:
        """NDCG@10 of the target-behavior validation queries ranked among their sampled candidates."""
        ranked: list[np.ndarray] = []
        cand = torch.from_numpy(candidates.items)
        offset = 0
        for batch in self.scores(candidates.queries):
            rows = cand[offset : offset + len(batch)]
            offset += len(batch)
            picked = batch.gather(1, rows.clamp(min=0)).masked_fill(rows < 0, -math.inf)
            ranked += [r[c] for r, c in zip(rows.numpy(), top_k(picked, 10), strict=True)]
        result = metrics.evaluate(ranked, candidates.queries.positive_sets(), ks=(10,))
        return float(result[VALIDATION_METRIC])

    def recommend(self, queries: Queries, k: int) -> Ranking:
        ranked: list[np.ndarray] = []
        for batch in self.scores(queries):
            ranked += top_k(batch, k)
        return ranked

    def describe(self) -> dict[str, Any]:
        return {
            "parameters": sum(p.numel() for p in self.module_.parameters()),
            "training": {
                "best_epoch": self.log_.best_epoch,
                f"best_valid_{VALIDATION_METRIC}": self.log_.best_score,
                "epochs_run": len(self.log_.epochs),
                "stop_reason": self.log_.stop_reason,
                "history": self.log_.epochs,
            },
        }


class SequentialRecommender(DiscriminativeRecommender):
    """A sequence model (the `baselines.batch.SequenceBatch` contract) under the common protocol.

    ``architecture`` names the model's class as ``"module:Class"`` (imported when fit);
    ``behavior_as_token`` makes the ``_b`` variant. Both are recorded with the result like any
    other hyperparameter.
    """

    def __init__(self, *, seed: int = 0, architecture: str, behavior_as_token: bool = False, **hyperparameters) -> None:
        super().__init__(seed=seed, architecture=architecture, behavior_as_token=behavior_as_token, **hyperparameters)
        self.architecture = architecture
        self.behavior_as_token = behavior_as_token
        for key in ("architecture", "behavior_as_token"):
            self.model_hyperparameters.pop(key)

    def module_class(self) -> type[SequentialModule]:
        module, _, name = self.architecture.partition(":")
        return getattr(importlib.import_module(module), name)

    def _setup(self, train: Interactions) -> nn.Module:
        t = self.training
        self.tokens_ = TokenSpace(self.n_items_, self.n_behaviors_, self.behavior_as_token)
        target = self.target_level_ if t["target_behavior_only"] else None
        self.samples_ = InteractionSamples.from_train(train, t["max_len"], target_level=target)
        if len(self.samples_) == 0:
            raise ValueError(f"{type(self).__name__}: no training sample (every user has one training session?)")
        self.train_tokens_ = self.tokens_.encode(train.item, train.behavior)
        self.train_levels_ = train.behavior
        self.train_user_ = train.user
        return self.module_class().build(
            n_tokens=self.tokens_.n_tokens,
            n_behaviors=self.n_behaviors_,
            n_users=train.n_users,
            max_len=t["max_len"],
            **self.model_hyperparameters,
        )

    def _training_batch(self, samples: np.ndarray) -> SequenceBatch:
        s = self.samples_
        item, behavior, length = history_batch(
            self.train_tokens_,
            self.train_levels_,
            s.history_start[samples],
            s.history_end[samples],
            self.training["max_len"],
        )
        target = s.target[samples]
        return SequenceBatch(
            item=item,
            behavior=behavior,
            length=length,
            user=torch.from_numpy(self.train_user_[target] + 1),
            target_item=torch.from_numpy(self.train_tokens_[target]),
            target_behavior=torch.from_numpy(self.train_levels_[target].astype(np.int64) + 1),
        )

    def _epoch_order(self, rng: np.random.Generator) -> np.ndarray:
        """The samples of one epoch in a random order; for a model whose loss encodes each distinct
        history once (``encodes_each_history_once``), sessions in a random order with each session's
        targets together (they share their history: the earlier sessions), so that a batch encodes
        ~4 times fewer histories for the same targets."""
        if not getattr(self.module_, "encodes_each_history_once", False):
            return rng.permutation(len(self.samples_))
        return grouped_permutation(rng, self.samples_.history_end)  # where the target's session starts

    def _train_epoch(self, optimizer: torch.optim.Optimizer, rng: np.random.Generator) -> float:
        order = self._epoch_order(rng)
        if self.training["samples_per_epoch"]:
            order = order[: self.training["samples_per_epoch"]]
        size, total, seen = self.training["batch_size"], 0.0, 0
        for start in range(0, len(order), size):
            batch = self._training_batch(order[start : start + size]).to(self.device_)
            loss = self.module_.loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
            seen += len(batch)
        return total / max(seen, 1)

    def query_batch(self, queries: Queries) -> SequenceBatch:
        """The model's input for ``queries``: histories cut to ``max_len``, the queried behavior."""
        tokens = self.tokens_.encode(queries.item, queries.hist_behavior)
        item, behavior, length = history_batch(
            tokens, queries.hist_behavior, queries.offsets[:-1], queries.offsets[1:], self.training["max_len"]
        )
        return SequenceBatch(
            item=item,
            behavior=behavior,
            length=length,
            user=torch.from_numpy(queries.user.astype(np.int64) + 1),
            target_item=torch.zeros(len(queries), dtype=torch.long),
            target_behavior=torch.from_numpy(queries.behavior.astype(np.int64) + 1),
        )

    def _item_scores(self, queries: Queries) -> Tensor:
        token_scores = self.module_.scores(self.query_batch(queries).to(self.device_))
        levels = torch.from_numpy(queries.behavior.astype(np.int64)).to(self.device_)
        return self.tokens_.item_scores(token_scores, levels)
