"""Small hand-made and random inputs shared by several test modules."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from baselines.batch import SequenceBatch
from benchmark.store import Cell, provenance, save_cell
from protocols.conversion import ConversionQueries
from protocols.queries import Queries

# The smallest decoder shapes the tests build (gamer.model.DecoderConfig keyword arguments).
TINY_DECODER = {
    "d_model": 16,
    "n_layers": 2,
    "n_heads": 2,
    "n_kv_heads": 1,
    "head_dim": 8,
    "d_ff": 32,
    "behavior_dim": 8,
}


def queries(
    histories: list[list[int]],
    positives: list[list[int]] | None = None,
    behavior: list[int] | None = None,
    users: list[int] | None = None,
) -> Queries:
    """Queries with the given item histories (behavior 0, time and session 0); by default query q is user q,
    asks for behavior 0 and has the single positive item 0."""
    n = len(histories)
    positives = [[0]] * n if positives is None else positives
    flat = np.array([i for h in histories for i in h], dtype=np.int64)
    zeros = np.zeros(len(flat), dtype=np.int64)
    return Queries(
        user=np.arange(n) if users is None else np.array(users),
        behavior=np.zeros(n, dtype=np.int8) if behavior is None else np.array(behavior, dtype=np.int8),
        offsets=np.concatenate([[0], np.cumsum([len(h) for h in histories])]).astype(np.int64),
        item=flat,
        hist_behavior=zeros.astype(np.int8),
        timestamp=zeros,
        session=zeros,
        pos_offsets=np.concatenate([[0], np.cumsum([len(p) for p in positives])]).astype(np.int64),
        positives=np.array([i for p in positives for i in p], dtype=np.int64),
    )


def store_cell(root, cell: Cell, result: dict, config: dict | None = None):
    """Store ``result`` (notes added when absent) as ``cell`` with a well-formed provenance; the path."""
    prov = provenance(config or {"table": cell.table}, cell.seed, {})
    return save_cell(root, cell, {"notes": []} | result, prov)


def store_ranking_cell(
    root,
    model: str,
    seed: int,
    per_query: dict[str, np.ndarray],
    users: np.ndarray,
    *,
    table: str = "table-2",
    profile: str = "smoke",
    variant: str = "",
    evaluation: str = "target-behavior",
    more: dict[str, dict[str, np.ndarray]] | None = None,
) -> None:
    """A stored ranking cell on `synthetic` whose metrics are the means of the given per-query values
    (under ``evaluation``; ``more`` adds other evaluations, e.g. Table 7's perturbations)."""

    def scored(values: dict[str, np.ndarray]) -> dict:
        metrics = {column: float(np.mean(v)) for column, v in values.items()}
        return {
            "metrics": metrics,
            "queries": len(users),
            "per_query": {"user": users.tolist(), "behavior": [0] * len(users)}
            | {column: np.round(v, 6).tolist() for column, v in values.items()},
        }

    evaluations = {evaluation: scored(per_query)} | {key: scored(v) for key, v in (more or {}).items()}
    result = {
        "dataset_name": "synthetic",
        "metrics": evaluations[evaluation]["metrics"],
        "queries": len(users),
        "evaluations": evaluations,
    }
    store_cell(root, Cell(table, "synthetic", model, profile, seed, variant), result)


def hand_queries(
    histories: list[list[tuple[int, int]]], candidates: list[list[int]], labels: list[list[int]]
) -> ConversionQueries:
    """Conversion queries with the given (item, level) histories, oldest first, and candidates with labels."""
    flat = [pair for h in histories for pair in h]
    item = np.array([i for i, _ in flat], dtype=np.int64)
    level = np.array([b for _, b in flat], dtype=np.int8)
    zeros = np.zeros(len(flat), dtype=np.int64)
    n = len(histories)
    queries = Queries(
        user=np.arange(n),
        behavior=np.ones(n, dtype=np.int8),
        offsets=np.concatenate([[0], np.cumsum([len(h) for h in histories])]).astype(np.int64),
        item=item,
        hist_behavior=level,
        timestamp=zeros,
        session=zeros,
        pos_offsets=np.zeros(n + 1, dtype=np.int64),
        positives=np.zeros(0, dtype=np.int64),
    )
    return ConversionQueries(
        queries,
        session=np.ones(n, dtype=np.int64),
        cand_offsets=np.concatenate([[0], np.cumsum([len(c) for c in candidates])]).astype(np.int64),
        candidates=np.array([c for row in candidates for c in row], dtype=np.int64),
        labels=np.array([y for row in labels for y in row], dtype=np.int8),
    )


def kill_in_epoch(monkeypatch, model_class: type, epoch: int) -> None:
    """Make ``model_class``'s training raise KeyboardInterrupt (a Ctrl-C, a kill) when it starts epoch
    ``epoch`` (its ``_train_epoch`` call number ``epoch``): the killed run a checkpoint must survive."""
    original, calls = model_class._train_epoch, []

    def killed(self, optimizer, rng):
        calls.append(1)
        if len(calls) == epoch:
            raise KeyboardInterrupt
        return original(self, optimizer, rng)

    monkeypatch.setattr(model_class, "_train_epoch", killed)


def next_token_loss(
    logits: Tensor,
    targets: Tensor,
    target_mask: Tensor,
    temperature: float = 1.0,
    reduction: Literal["mean", "sum"] = "mean",
) -> Tensor:
    """The reference next-token loss the trainer's `gamer.training.NextTokenLoss` must equal: cross-entropy
    of each target token given the tokens before it, on ``logits / temperature``, from the full logits.

    ``logits [B, T, V]`` come from the decoder run over ``targets [B, T]`` (the input tokens); the
    logits at t score token t + 1 (the shift happens here, as in HF's causal-LM loss). Only tokens
    with ``target_mask [B, T]`` true are scored. The authors score ID tokens only (``slots > 0``):
    behavior tokens are inputs, never targets (reference §4.3), whereas the paper's Eq. 6 sums over
    all tokens. Their scripts train with temperature 0.7, used in the loss only. ``mean`` averages
    over scored tokens (0 if there are none); ``sum`` lets a trainer normalise across accumulation steps.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    scored = target_mask[:, 1:]
    losses = F.cross_entropy((logits[:, :-1] / temperature)[scored], targets[:, 1:][scored], reduction="sum")
    if reduction == "sum":
        return losses
    return losses / scored.sum().clamp(min=1)


def random_sequence_batch(
    lengths: list[int],
    n_tokens: int,
    n_behaviors: int,
    *,
    seed: int = 0,
    width: int | None = None,
    empty: Literal["first", "last"] | None = None,
    n_users: int | None = None,
) -> SequenceBatch:
    """Random right-padded histories of the given ``lengths`` as a `SequenceBatch`: tokens in
    ``1 .. n_tokens - 1``, behaviors (level + 1) in ``1 .. n_behaviors``, 0 on padding, padded to ``width``
    (the longest by default). ``empty`` makes the first or last row the framework's empty history (one
    pad token, length 1). Users are ``1 .. B``, or drawn from ``1 .. n_users``; targets are drawn too."""
    generator = torch.Generator().manual_seed(seed)
    n, width = len(lengths), width or max(lengths)
    length = torch.tensor(lengths)
    real = torch.arange(width)[None, :] < length[:, None]
    item = torch.randint(1, n_tokens, (n, width), generator=generator) * real
    behavior = torch.randint(1, n_behaviors + 1, (n, width), generator=generator) * real
    if empty is not None:
        row = 0 if empty == "first" else n - 1
        item[row], behavior[row], length[row] = 0, 0, 1
    user = torch.arange(1, n + 1) if n_users is None else torch.randint(1, n_users + 1, (n,), generator=generator)
    return SequenceBatch(
        item=item,
        behavior=behavior,
        length=length,
        user=user,
        target_item=torch.randint(1, n_tokens, (n,), generator=generator),
        target_behavior=torch.randint(1, n_behaviors + 1, (n,), generator=generator),
    )
