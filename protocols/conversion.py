"""The conversion scenario of Appendix D: exposures and conversions, candidates, labels.

The paper keeps "only exposure and conversion events" and asks a model for the probability that an
exposed item converts. What the appendix leaves open, and what we chose:

- *Candidates* of a query are the distinct items exposed to the user in the evaluated session; the
  *label* is 1 when the same session holds a conversion on that item. A conversion on an item the
  session never exposed has no candidate: it is counted (`SessionCandidates.unexposed_conversions`),
  never dropped silently.
- The *history* is every interaction of the user's earlier sessions, exposures and conversions, as
  in the session-wise protocol of Section 3.2 (the split is the same `SessionSplit`: train, the
  second-to-last session for validation, the last for test).
- *Training examples* are the same thing one level down: every training session after a user's
  first is a query over its exposed items, with the earlier sessions as history.
- AUROC pools every candidate of every query (``protocols.metrics.auroc``, ties counted half).

A conversion log is an `Interactions` with the behaviors ``("exposure", "conversion")``;
`conversion_view` makes one from any multi-behavior log by naming which behavior is which.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from protocols.interactions import Interactions
from protocols.queries import Queries, gather_ranges, ragged_rows
from protocols.splits import Part, SessionSplit

CONVERSION_BEHAVIORS = ("exposure", "conversion")
PROTOCOL = (
    "session-wise leave-one-out; candidates = items exposed in the test session, label = converted there; "
    "AUROC over all candidates"
)
EXPOSURE, CONVERSION = 0, 1


@dataclass(frozen=True)
class ViewReport:
    """Which source behaviors became exposure and conversion, and the rows of the others removed."""

    exposure: str
    conversion: str
    removed: dict[str, int]
    kept: int

    def __str__(self) -> str:
        removed = ", ".join(f"{n} {name}" for name, n in self.removed.items()) or "nothing"
        return (
            f"conversion view: {self.exposure} = exposure, {self.conversion} = conversion; "
            f"removed {removed} rows; kept {self.kept}"
        )


def conversion_view(
    inter: Interactions, *, exposure: str, conversion: str, name: str | None = None
) -> tuple[Interactions, ViewReport]:
    """The log restricted to two behaviors, renamed ``exposure`` (level 0) and ``conversion`` (level 1).

    Rows of every other behavior are removed and counted. Sessions are recomputed from the kept rows
    by the schema's rule (unless the file gives them), since the paper builds its conversion data from
    these two events alone; users left without rows disappear, items keep their indices.
    """
    schema = inter.schema
    low, high = schema.level_of(exposure), schema.level_of(conversion)
    if low >= high:
        raise ValueError(
            f"dataset {schema.name!r}: the exposure behavior {exposure!r} (level {low}) must be below the "
            f"conversion behavior {conversion!r} (level {high}); behaviors are {list(schema.behaviors)}"
        )
    keep = (inter.behavior == low) | (inter.behavior == high)
    counts = np.bincount(inter.behavior[~keep], minlength=len(schema.behaviors))
    removed = {schema.behaviors[level]: int(n) for level, n in enumerate(counts) if n}
    view = inter.take(keep, compact_users=True)
    behavior = (view.behavior == high).astype(np.int8)
    view = replace(
        view,
        behavior=behavior,
        schema=replace(schema, name=name or f"{schema.name}-rank", behaviors=CONVERSION_BEHAVIORS),
        session=view.session if schema.session_rule.kind == "file" else None,
    )
    return view, ViewReport(exposure, conversion, removed, len(view))


def check_conversion_log(inter: Interactions) -> None:
    """Raise unless ``inter`` is a sessionized conversion log (behaviors exposure < conversion)."""
    if inter.schema.behaviors != CONVERSION_BEHAVIORS:
        raise ValueError(
            f"dataset {inter.schema.name!r} has behaviors {list(inter.schema.behaviors)}; the conversion scenario "
            f"needs {list(CONVERSION_BEHAVIORS)} (use a conversion dataset such as 'synthetic-big' or "
            "'retailrocket-rank', or protocols.conversion.conversion_view)"
        )
    if inter.session is None:
        raise ValueError(f"dataset {inter.schema.name!r}: sessionize the log first")


@dataclass(frozen=True)
class SessionCandidates:
    """Candidates of some sessions: ``offsets[g]:offsets[g + 1]`` are session g's items and labels.

    Sessions (``user``, ``session``) are sorted by user then session index; each session's
    candidates are its distinct exposed items, sorted, with ``labels`` 1 where the session converts.
    """

    user: np.ndarray  # [G]
    session: np.ndarray  # [G] index of the session within its user
    offsets: np.ndarray  # [G + 1]
    items: np.ndarray  # [C]
    labels: np.ndarray  # [C] int8
    unexposed_conversions: int  # conversions on items their session never exposed (no candidate)

    def __len__(self) -> int:
        return len(self.user)

    @classmethod
    def of_rows(cls, inter: Interactions, rows: np.ndarray) -> SessionCandidates:
        """The candidates of every session that the given rows (of a sessionized conversion log) touch."""
        check_conversion_log(inter)
        rows = np.asarray(rows)
        width = int(inter.session.max()) + 1
        group = inter.user[rows] * width + inter.session[rows]
        item, behavior = inter.item[rows], inter.behavior[rows]
        n_items = inter.n_items
        exposed = np.unique(group[behavior == EXPOSURE] * n_items + item[behavior == EXPOSURE])
        converted = np.unique(group[behavior == CONVERSION] * n_items + item[behavior == CONVERSION])
        sessions, first = np.unique(exposed // n_items, return_index=True)
        return cls(
            user=sessions // width,
            session=sessions % width,
            offsets=np.append(first, len(exposed)).astype(np.int64),
            items=exposed % n_items,
            labels=np.isin(exposed, converted).astype(np.int8),
            unexposed_conversions=int((~np.isin(converted, exposed)).sum()),
        )


@dataclass(frozen=True)
class ConversionQueries:
    """A batch of conversion queries: histories (as `Queries`) and each query's candidates with labels.

    ``queries`` holds user q's history before the evaluated session; its ``behavior`` is the
    conversion level and its positives are the converted candidates. ``cand_offsets[q]:cand_offsets[q + 1]``
    index query q's ``candidates`` and ``labels``; ``session`` is the evaluated session's index.
    """

    queries: Queries
    session: np.ndarray
    cand_offsets: np.ndarray
    candidates: np.ndarray
    labels: np.ndarray
    unexposed_conversions: int = 0

    def __len__(self) -> int:
        return len(self.queries)

    @property
    def n_candidates(self) -> int:
        return len(self.candidates)

    @property
    def candidate_query(self) -> np.ndarray:
        """``[C]``: the query each candidate belongs to."""
        return ragged_rows(self.cand_offsets)

    def candidates_of(self, q: int) -> tuple[np.ndarray, np.ndarray]:
        s, e = self.cand_offsets[q], self.cand_offsets[q + 1]
        return self.candidates[s:e], self.labels[s:e]

    def last(self, n: int) -> ConversionQueries:
        """Histories cut to the most recent ``n`` interactions."""
        return replace(self, queries=self.queries.last(n))

    def select(self, index: np.ndarray) -> ConversionQueries:
        """The queries at ``index`` (indices or a boolean mask), in that order."""
        index = np.asarray(index)
        index = np.flatnonzero(index) if index.dtype == bool else index.astype(np.int64)
        rows, offsets = gather_ranges(self.cand_offsets[index], self.cand_offsets[index + 1])
        queries = self.queries.select(index)
        return ConversionQueries(queries, self.session[index], offsets, self.candidates[rows], self.labels[rows])

    def summary(self) -> dict[str, float]:
        """Queries, candidates, converted candidates and the conversion rate."""
        positives = int(self.labels.sum())
        return {
            "queries": len(self),
            "candidates": self.n_candidates,
            "conversions": positives,
            "conversion rate": positives / max(self.n_candidates, 1),
        }

    @classmethod
    def build(
        cls, log: Interactions, sessions: SessionCandidates, history_start: np.ndarray, history_end: np.ndarray
    ) -> ConversionQueries:
        """One query per session of ``sessions``, its history the rows ``history_start:history_end`` of ``log``."""
        converted = sessions.labels.astype(bool)
        per_query = np.bincount(ragged_rows(sessions.offsets)[converted], minlength=len(sessions))
        queries = Queries.from_log(
            log,
            user=sessions.user,
            behavior=np.full(len(sessions), CONVERSION),
            history_start=history_start,
            history_end=history_end,
            pos_offsets=np.concatenate([[0], np.cumsum(per_query)]).astype(np.int64),
            positives=sessions.items[converted],
        )
        return cls(
            queries,
            sessions.session,
            sessions.offsets,
            sessions.items,
            sessions.labels,
            sessions.unexposed_conversions,
        )


def conversion_queries(split: SessionSplit, part: Part) -> ConversionQueries:
    """The validation or test queries: each user's ``part`` session, with every earlier session as history.

    A user whose ``part`` session exposes nothing (it holds conversions only) has no query; its
    conversions are counted in ``unexposed_conversions``.
    """
    inter = split.interactions
    sessions = SessionCandidates.of_rows(inter, split.session_rows(part))
    start = split.valid_start if part == "valid" else split.test_start
    return ConversionQueries.build(inter, sessions, inter.user_offsets[sessions.user], start[sessions.user])


def training_queries(train: Interactions, max_history: int | None = None) -> ConversionQueries:
    """Every session of the training log after each user's first, as a query over its exposed items.

    The history is every earlier session's interactions, the most recent ``max_history`` of them
    when given (computed directly, so the full histories are never materialised).
    """
    sessions = SessionCandidates.of_rows(train, np.arange(len(train)))
    keep = sessions.session > 0
    index = np.flatnonzero(keep)
    rows, offsets = gather_ranges(sessions.offsets[index], sessions.offsets[index + 1])
    later = SessionCandidates(
        sessions.user[index],
        sessions.session[index],
        offsets,
        sessions.items[rows],
        sessions.labels[rows],
        sessions.unexposed_conversions,
    )
    width = int(train.session.max()) + 1
    row_key = train.user * width + train.session  # non-decreasing along the canonical rows
    end = np.searchsorted(row_key, later.user * width + later.session, side="left")
    start = train.user_offsets[later.user]
    if max_history is not None:
        if max_history < 1:
            raise ValueError(f"max_history must be >= 1, got {max_history}")
        start = np.maximum(start, end - max_history)
    return ConversionQueries.build(train, later, start, end)
