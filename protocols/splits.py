"""Session-wise leave-one-out (paper Section 3.2) and classic leave-one-out (Figure 2).

Session-wise leave-one-out, for one user with m >= 3 sessions::

    time ──────────────────────────────────────────────────────────────────────►
    │ S1 │ S2 │ ... │ S(m-2) ║ S(m-1)     ║ S(m)       │
    └──────── train ─────────╨── valid ───╨── test ────┘
    valid query: history = S1 .. S(m-2)           positives = items of S(m-1) with behavior b
    test query:  history = S1 .. S(m-1)           positives = items of S(m)   with behavior b

A query never sees any interaction of the session it is asked about, not even the ones that came
earlier in that session: interactions in one session come from one exposure batch (Section 3.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from protocols.interactions import Interactions
from protocols.queries import Queries, gather_ranges
from protocols.sessions import FilterReport, filter_min_sessions, sessionize

Part = Literal["valid", "test"]


def _session_starts(inter: Interactions) -> tuple[np.ndarray, np.ndarray]:
    """Row index where each user's second-to-last and last sessions start: two ``[n_users]`` arrays."""
    # Rows are in canonical order, so (user, session) is non-decreasing along the rows.
    width = int(inter.session.max()) + 2
    row_key = inter.user * width + inter.session
    last_session = inter.session[inter.user_offsets[1:] - 1]
    users = np.arange(inter.n_users) * width
    valid_start = np.searchsorted(row_key, users + last_session - 1, side="left")
    test_start = np.searchsorted(row_key, users + last_session, side="left")
    return valid_start, test_start


@dataclass(frozen=True)
class SessionSplit:
    """The session-wise leave-one-out split of a sessionized log (drawing in the module docstring).

    ``interactions`` holds only users with at least ``min_sessions`` sessions (the removal is in
    ``filter_report``); ``valid_start[u]`` and ``test_start[u]`` are the global row indices where
    user u's second-to-last and last sessions begin.
    """

    interactions: Interactions
    valid_start: np.ndarray
    test_start: np.ndarray
    filter_report: FilterReport

    @classmethod
    def from_interactions(cls, inter: Interactions, *, min_sessions: int = 3) -> SessionSplit:
        """Sessionize (if needed), drop users with too few sessions, and find the split points."""
        if min_sessions < 3:
            raise ValueError("session-wise leave-one-out needs min_sessions >= 3 (train, valid and test sessions)")
        if inter.session is None:
            inter = sessionize(inter)
        kept, report = filter_min_sessions(inter, min_sessions)
        valid_start, test_start = _session_starts(kept)
        return cls(kept, valid_start, test_start, report)

    def _bounds(self, part: Part) -> tuple[np.ndarray, np.ndarray]:
        if part == "valid":
            return self.valid_start, self.test_start
        if part == "test":
            return self.test_start, self.interactions.user_offsets[1:]
        raise ValueError(f"part must be 'valid' or 'test', got {part!r}")

    @property
    def train(self) -> Interactions:
        """Every interaction before each user's validation session."""
        inter = self.interactions
        return inter.take(np.arange(len(inter)) < self.valid_start[inter.user])

    def session_rows(self, part: Part) -> np.ndarray:
        """Global row indices of every user's validation or test session."""
        start, end = self._bounds(part)
        return gather_ranges(start, end)[0]

    def queries(self, part: Part, levels: list[int] | None = None) -> Queries:
        """One query per (user, behavior b) whose ``part`` session holds b; positives = its items with b.

        ``levels`` defaults to every behavior. Queries are ordered by behavior level, then user.
        The history is every interaction before the session (not cut; see `Queries.last`).
        """
        inter = self.interactions
        levels = list(range(len(inter.schema.behaviors))) if levels is None else list(levels)
        rows = self.session_rows(part)
        rows = rows[np.isin(inter.behavior[rows], levels)]
        users, beh, items = inter.user[rows], inter.behavior[rows].astype(np.int64), inter.item[rows]
        n_items = inter.n_items
        triples = np.unique((beh * inter.n_users + users) * n_items + items)  # sorted by (b, u, item)
        q_pair, first = np.unique(triples // n_items, return_index=True)
        q_user = q_pair % inter.n_users
        start, _ = self._bounds(part)
        return Queries.from_log(
            inter,
            user=q_user,
            behavior=q_pair // inter.n_users,
            history_start=inter.user_offsets[q_user],
            history_end=start[q_user],
            pos_offsets=np.append(first, len(triples)).astype(np.int64),
            positives=triples % n_items,
        )


def classic_leave_one_out(inter: Interactions) -> Queries:
    """Classic leave-one-out on the target behavior (the protocol Figure 2 criticises).

    Per user with at least one target-behavior interaction: the last one is the test target; the
    history is every interaction before it in canonical order, so a lower-level interaction on the
    same item at the same second counts as history, as it does in the leave-one-out literature.
    """
    target = inter.schema.target_level
    rows = np.flatnonzero(inter.behavior == target)
    users, last = np.unique(inter.user[rows][::-1], return_index=True)
    target_rows = rows[::-1][last]
    return Queries.from_log(
        inter,
        user=users,
        behavior=np.full(len(users), target),
        history_start=inter.user_offsets[users],
        history_end=target_rows,
        pos_offsets=np.arange(len(users) + 1, dtype=np.int64),
        positives=inter.item[target_rows],
    )


def processed_leave_one_out(queries: Queries, target_level: int) -> tuple[Queries, int]:
    """Figure 2's "processed" variant of classic leave-one-out queries.

    Each query's single most recent history interaction is removed when it is a lower-level
    behavior on the target item (the view or cart just before the buy). Returns the queries and
    how many histories lost an interaction.
    """
    last = queries.offsets[1:] - 1
    has_history = queries.history_lengths > 0
    lower = np.zeros(len(queries), dtype=bool)
    ends = last[has_history]
    lower[has_history] = (queries.item[ends] == queries.positives[has_history]) & (
        queries.hist_behavior[ends] < target_level
    )
    drop = np.zeros(len(queries.item), dtype=bool)
    drop[last[lower]] = True
    return queries.drop_history(drop), int(lower.sum())
