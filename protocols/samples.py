"""Interaction-level training samples under the session-wise protocol (paper Section 3.2, Appendix A).

Every training interaction outside its user's first session is a target; its history is the user's
interactions of *earlier sessions only*, cut to the most recent ``max_len``::

    user u:  | session 1 | session 2        | session 3 ... | valid | test |
                           ^ target t
             [ history ]   (items of t's own session before t are not visible)

The discriminative baselines train on them (`baselines.discriminative`), and so do the
interaction-level generative rows (`baselines.seq2seq`): one definition for both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from protocols.interactions import Interactions


def session_start_rows(inter: Interactions) -> np.ndarray:
    """``[n]``: the row where each row's (user, session) begins (rows are in canonical order)."""
    if inter.session is None:
        raise ValueError("interactions have no sessions; apply protocols.sessions.sessionize first")
    new = np.ones(len(inter), dtype=bool)
    new[1:] = (inter.user[1:] != inter.user[:-1]) | (inter.session[1:] != inter.session[:-1])
    starts = np.flatnonzero(new)
    return starts[np.cumsum(new) - 1]


@dataclass(frozen=True)
class InteractionSamples:
    """Interaction-level training samples of a training log (drawing in the module docstring).

    ``target[s]`` is the row of sample s's target; its history is rows
    ``history_start[s]:history_end[s]`` (earlier sessions of the same user, the last ``max_len``).
    """

    target: np.ndarray
    history_start: np.ndarray
    history_end: np.ndarray

    @classmethod
    def from_train(cls, train: Interactions, max_len: int, *, target_level: int | None = None) -> InteractionSamples:
        """Samples of every row outside its user's first session (only ``target_level`` rows if given)."""
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        session_start = session_start_rows(train)
        user_start = train.user_offsets[train.user]
        keep = session_start > user_start  # not in the user's first session: it has a history
        if target_level is not None:
            keep &= train.behavior == target_level
        target = np.flatnonzero(keep)
        end = session_start[target]
        start = np.maximum(user_start[target], end - max_len)
        return cls(target, start, end)

    def __len__(self) -> int:
        return len(self.target)
