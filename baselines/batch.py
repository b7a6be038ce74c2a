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

import torch
import torch.nn.functional as F


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
