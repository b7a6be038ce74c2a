"""The batch every discriminative sequence model is fed: right-padded token histories.

A token is an item index + 1 (0 = padding), or, in the behavior-as-token variants (``_b``), one
token per (behavior, item) pair (see `baselines.discriminative.TokenSpace`). Behaviors are level + 1
(0 = padding), so the highest value is the target behavior.

    item       [B, L]  history tokens, oldest first, right-padded with 0
    behavior   [B, L]  behavior level + 1 per history position, 0 on padding
    length     [B]     real history positions, >= 1 (an empty history is one pad token)
    user       [B]     user index + 1
    target_item      [B]  training: the next interaction's token; scoring: zeros
    target_behavior  [B]  training: the next interaction's behavior; scoring: the queried behavior
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class SequenceBatch:
    item: torch.Tensor
    behavior: torch.Tensor
    length: torch.Tensor
    user: torch.Tensor
    target_item: torch.Tensor
    target_behavior: torch.Tensor

    def to(self, device: torch.device | str) -> SequenceBatch:
        return SequenceBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def __len__(self) -> int:
        return self.item.shape[0]

    def with_slot(self, token: torch.Tensor, behavior: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The history plus one slot at position ``length`` holding ``token`` / ``behavior``: the
        ``[B, max(length) + 1]`` tokens and behaviors of a Cloze model (trailing all-padding columns
        dropped). Training puts the target there, scoring a [MASK] with the queried behavior."""
        width = int(self.length.max()) + 1
        slot = self.length[:, None]
        item = F.pad(self.item, (0, 1))[:, :width].scatter(1, slot, token[:, None])
        kind = F.pad(self.behavior, (0, 1))[:, :width].scatter(1, slot, behavior[:, None])
        return item, kind


def cloze_mask(candidates: torch.Tensor, slot: torch.Tensor, ratio: float) -> torch.Tensor:
    """``[B, W]`` bool: each candidate position masked with probability ``ratio`` (torch's global RNG);
    a row that drew no mask gets position ``slot`` (its target) masked, so every sequence counts in
    the loss and a batch never averages over nothing."""
    masked = (torch.rand(candidates.shape, device=candidates.device) < ratio) & candidates
    none = ~masked.any(dim=1)
    masked[none, slot[none]] = True
    return masked


@dataclass(frozen=True)
class EncoderConfig:
    """What PBAT, MBHT and MB-STR are built from alike: the sizes the training log fixes (``n_tokens``
    with padding, behaviors, users, the longest history) and the Transformer hyperparameters their
    profiles name the same way, after the authors' configs. Each model takes its own beside it."""

    n_tokens: int
    n_behaviors: int
    n_users: int
    max_len: int
    hidden_size: int = 64
    n_layers: int = 2
    n_heads: int = 2
    inner_size: int = 256
    dropout: float = 0.2
    layer_norm_eps: float = 1e-12
    mask_ratio: float = 0.2


class SequentialModule(nn.Module):
    """A sequential baseline's network under the `SequenceBatch` contract (``loss``, ``scores``), built by
    `baselines.discriminative.SequentialRecommender` from the log's sizes and its row's hyperparameters."""

    @classmethod
    def build(cls, **arguments: Any) -> SequentialModule:
        """The network from ``n_tokens``, ``n_behaviors``, ``n_users``, ``max_len`` and its hyperparameters."""
        return cls(**arguments)


class EncoderModule(SequentialModule):
    """A network built from an `EncoderConfig` and its own keyword arguments (PBAT, MBHT, MB-STR)."""

    @classmethod
    def build(cls, **arguments: Any) -> EncoderModule:
        shared = {f.name for f in fields(EncoderConfig)}
        encoder = EncoderConfig(**{k: v for k, v in arguments.items() if k in shared})
        return cls(encoder, **{k: v for k, v in arguments.items() if k not in shared})
