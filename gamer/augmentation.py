"""Multi-behavior sequential augmentation (paper Section 3.3).

Each training sequence gets ``times`` extra copies; copy i thins every behavior b below the top
level by a fraction r_i / L_b (L_b = level, lowest 1) and never touches the top level. The ratio
grid is a named option because the paper and the authors' decoder code disagree:

- ``"paper"``: r_i = i / (x + 1), i = 1..x (Section 3.3; the authors' interaction-level path);
- ``"authors"``: r_i = i / x (their user-level decoder path: the last copy drops every lowest-level
  interaction).

Copies are drawn once from the seed (not re-drawn per epoch) over each user's whole training prefix,
before any history cut, as the authors do; a copy left with fewer than 2 interactions is discarded.
The result is an `Interactions` in which every copy is a user of its own, so the same augmented log
feeds a user-level trainer (one sequence per user) and an interaction-level one (one sample per
interaction) alike.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from protocols.interactions import Interactions
from protocols.tasks import lower_behavior_drop_mask

GRIDS = ("paper", "authors")


def augmentation_ratios(times: int, grid: str = "paper") -> list[float]:
    """The drop ratios r_1..r_x of the ``times`` copies."""
    if times < 0:
        raise ValueError(f"augmentation times must be >= 0, got {times}")
    if grid == "paper":
        return [i / (times + 1) for i in range(1, times + 1)]
    if grid == "authors":
        return [i / times for i in range(1, times + 1)]
    raise ValueError(f"augmentation grid must be one of {GRIDS}, got {grid!r}")


@dataclass(frozen=True)
class AugmentationReport:
    times: int
    grid: str
    ratios: tuple[float, ...]
    copies_kept: int
    copies_discarded: int
    interactions_added: int

    def __str__(self) -> str:
        ratios = ", ".join(f"{r:.3g}" for r in self.ratios)
        return (
            f"{self.times}x augmentation ({self.grid} grid: r = {ratios}): kept {self.copies_kept} copies, "
            f"discarded {self.copies_discarded} with fewer than 2 interactions, added {self.interactions_added} "
            "interactions"
        )


def augment(
    train: Interactions, times: int, *, grid: str = "paper", seed: int = 0
) -> tuple[Interactions, np.ndarray, AugmentationReport]:
    """The training log plus its thinned copies.

    Returns the augmented log (user index = sequence index, originals first, in user order, then
    copy 1 of every user, and so on), ``source_user`` (``[n_sequences]``: the original user index
    of each sequence) and what was kept and discarded.
    """
    ratios = augmentation_ratios(times, grid)
    n_users = train.n_users
    target = train.schema.target_level
    rng = np.random.default_rng(seed)
    pieces_rows = [np.arange(len(train))]
    pieces_user = [train.user]
    kept_copies = discarded = 0
    for copy, rate in enumerate(ratios, start=1):
        drop = lower_behavior_drop_mask(train.user, train.behavior, rate, target_level=target, rng=rng)
        counts = np.bincount(train.user[~drop], minlength=n_users)
        keep = ~drop & (counts[train.user] >= 2)
        present = np.bincount(train.user, minlength=n_users) > 0
        kept_copies += int((counts >= 2).sum())
        discarded += int((present & (counts < 2)).sum())
        pieces_rows.append(np.flatnonzero(keep))
        pieces_user.append(train.user[keep] + copy * n_users)
    rows = np.concatenate(pieces_rows)
    sequence_key = np.concatenate(pieces_user)  # copy-major, then user: already sorted
    kept_keys, new_user = np.unique(sequence_key, return_inverse=True)
    augmented = replace(
        train,
        user=new_user.astype(np.int64),
        item=train.item[rows],
        behavior=train.behavior[rows],
        timestamp=train.timestamp[rows],
        session=None if train.session is None else train.session[rows],
        user_ids=np.array([f"{train.user_ids[k % n_users]}#{k // n_users}" for k in kept_keys], dtype=object),
    )
    report = AugmentationReport(
        times, grid, tuple(ratios), kept_copies, discarded, int(sum(len(r) for r in pieces_rows[1:]))
    )
    return augmented, (kept_keys % n_users).astype(np.int64), report
