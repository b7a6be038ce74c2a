"""Queries: what a model is asked at validation and test time.

A query is a user's history (items, behaviors, timestamps, session ids; oldest first), the behavior
to predict, and the set of positive items it is scored against. A batch of queries is stored
ragged: ``offsets[q]:offsets[q + 1]`` indexes query q's history in the flat history arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from protocols.interactions import Interactions


def ragged_rows(offsets: np.ndarray) -> np.ndarray:
    """Query index of every flat position: ``[offsets[-1]]``."""
    return np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))


def gather_ranges(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated ``arange(s, e)`` for each pair, and the offsets of the pieces (vectorised)."""
    lengths = np.maximum(ends - starts, 0)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    index = np.arange(offsets[-1]) - np.repeat(offsets[:-1] - starts, lengths)
    return index.astype(np.int64), offsets


@dataclass(frozen=True)
class Queries:
    """A batch of q queries.

    - ``user``: ``[q]`` user index; ``behavior``: ``[q]`` level index of the behavior to predict.
    - ``offsets``: ``[q + 1]``; ``item``, ``hist_behavior``, ``timestamp``, ``session``: the flat
      histories, each query's oldest first.
    - ``pos_offsets``: ``[q + 1]``; ``positives``: each query's positive items, sorted and unique.
    """

    user: np.ndarray
    behavior: np.ndarray
    offsets: np.ndarray
    item: np.ndarray
    hist_behavior: np.ndarray
    timestamp: np.ndarray
    session: np.ndarray
    pos_offsets: np.ndarray
    positives: np.ndarray

    @classmethod
    def from_log(
        cls,
        log: Interactions,
        user: np.ndarray,
        behavior: np.ndarray,
        history_start: np.ndarray,
        history_end: np.ndarray,
        pos_offsets: np.ndarray,
        positives: np.ndarray,
    ) -> Queries:
        """Queries whose histories are the rows ``history_start[q]:history_end[q]`` of ``log``."""
        rows, offsets = gather_ranges(history_start, history_end)
        session = log.session[rows] if log.session is not None else np.zeros(len(rows), dtype=np.int64)
        return cls(
            user=user,
            behavior=np.asarray(behavior, dtype=np.int8),
            offsets=offsets,
            item=log.item[rows],
            hist_behavior=log.behavior[rows],
            timestamp=log.timestamp[rows],
            session=session,
            pos_offsets=pos_offsets,
            positives=positives,
        )

    def __len__(self) -> int:
        return len(self.user)

    @property
    def history_lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def history(self, q: int) -> dict[str, np.ndarray]:
        """Query q's history as named arrays (views, oldest first)."""
        s, e = self.offsets[q], self.offsets[q + 1]
        return {
            "item": self.item[s:e],
            "behavior": self.hist_behavior[s:e],
            "timestamp": self.timestamp[s:e],
            "session": self.session[s:e],
        }

    def positives_of(self, q: int) -> np.ndarray:
        return self.positives[self.pos_offsets[q] : self.pos_offsets[q + 1]]

    def positive_sets(self) -> list[np.ndarray]:
        return np.split(self.positives, self.pos_offsets[1:-1])

    def _with_history_rows(self, keep: np.ndarray) -> Queries:
        counts = np.bincount(ragged_rows(self.offsets)[keep], minlength=len(self))
        return replace(
            self,
            offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            item=self.item[keep],
            hist_behavior=self.hist_behavior[keep],
            timestamp=self.timestamp[keep],
            session=self.session[keep],
        )

    def last(self, n: int) -> Queries:
        """Histories cut to the most recent ``n`` interactions (Appendix A: 50 or 100 per model)."""
        if n < 0:
            raise ValueError(f"history length must be >= 0, got {n}")
        rows = ragged_rows(self.offsets)
        keep = np.arange(len(self.item)) >= self.offsets[1:][rows] - n
        return self._with_history_rows(keep)

    def drop_history(self, drop: np.ndarray) -> Queries:
        """Remove the flat history positions where ``drop`` is true."""
        return self._with_history_rows(~np.asarray(drop, dtype=bool))

    def select(self, mask: np.ndarray) -> Queries:
        """The queries where a boolean ``mask`` is true, in order, or at an index array, in its order."""
        mask = np.asarray(mask)
        index = np.flatnonzero(mask) if mask.dtype == bool else mask.astype(np.int64)
        hist, offsets = gather_ranges(self.offsets[index], self.offsets[index + 1])
        pos, pos_offsets = gather_ranges(self.pos_offsets[index], self.pos_offsets[index + 1])
        return Queries(
            user=self.user[index],
            behavior=self.behavior[index],
            offsets=offsets,
            item=self.item[hist],
            hist_behavior=self.hist_behavior[hist],
            timestamp=self.timestamp[hist],
            session=self.session[hist],
            pos_offsets=pos_offsets,
            positives=self.positives[pos],
        )

    def for_behavior(self, level: int) -> Queries:
        return self.select(self.behavior == level)
