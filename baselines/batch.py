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
