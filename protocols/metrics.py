"""Top-K ranking metrics of the paper (Section 4.1.3, Eq. 7) and AUROC.

A query q is a ranked list of item ids (best first) and a set T of positive items (the items of
the evaluated behavior in the held-out session). Relevance is binary: rel_i = 1 iff the i-th
ranked item is in T. Every metric is computed per query, then averaged over queries.

Conventions fixed here because implementations disagree (anchors 2.4 and 2.7):

- Recall divides by |T| (RecBole, GAMER), not by min(K, |T|) (GRID); HR and R agree only at |T| = 1.
- The discount of 1-based rank i is 1 / log2(1 + i); IDCG@K has min(K, |T|) terms.
- A ranked list that repeats an item is an error, not scored: counting every copy of a repeated
  target lets NDCG exceed 1 (LC-Rec / OpenP5 ``ndcg_k``), so a decoder that repeats beams must be fixed.
- A ranked list shorter than K (a model with fewer than K candidates) scores its missing ranks as misses.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from itertools import chain

import numpy as np

_PAD = -1  # fills ranks a short list lacks; item ids are non-negative, so it matches no positive


def evaluate(
    ranked: Sequence[Sequence[int]] | np.ndarray,
    positives: Sequence[Collection[int]] | np.ndarray,
    ks: Iterable[int] | int = (1, 5, 10),
) -> dict[str, float]:
    """Mean HR@k, R@k and N@k over queries, keyed ``HR@k`` ... ``R@k`` ... ``N@k`` in ``ks`` order.

    ``ranked[q]`` is query q's item ids, best first (a 2-D integer array is one row per query);
    ``positives[q]`` its target set T (any collection; repeated ids count once). Raises ValueError,
    naming the query, for a ranked list that repeats an item, a negative item id, or an empty T;
    for ``len(ranked) != len(positives)`` or a ``ks`` that is not distinct positive ints; TypeError
    for non-integer ids.
    """
    return {name: float(values.mean()) for name, values in evaluate_per_query(ranked, positives, ks).items()}


def evaluate_per_query(
    ranked: Sequence[Sequence[int]] | np.ndarray,
    positives: Sequence[Collection[int]] | np.ndarray,
    ks: Iterable[int] | int = (1, 5, 10),
) -> dict[str, np.ndarray]:
    """Per-query ``[q]`` values of every metric (for paired significance tests); keys as `evaluate`."""
    ks = _checked_ks(ks)
    rel, n_positives = relevance_matrix(ranked, positives, depth=max(ks))
    per_query: dict[str, np.ndarray] = {}
    per_query.update({f"HR@{k}": hit_ratio(rel, k) for k in ks})
    per_query.update({f"R@{k}": recall(rel, n_positives, k) for k in ks})
    per_query.update({f"N@{k}": ndcg(rel, n_positives, k) for k in ks})
    return per_query


def hit_ratio(rel: np.ndarray, k: int) -> np.ndarray:
    """HR@K per query: whether any of the top K items is a target.

        HR@K = 1[ |TOP_{<=K} ∩ T| > 0 ]

    ``rel``: ``[q, >=K]`` boolean relevance matrix from `relevance_matrix`.
    """
    return rel[:, :k].any(axis=1).astype(np.float64)


def recall(rel: np.ndarray, n_positives: np.ndarray, k: int) -> np.ndarray:
    """R@K per query: the share of the targets found in the top K (Section 4.1.3).

        R@K = |TOP_{<=K} ∩ T| / |T|

    ``rel``: ``[q, >=K]`` boolean relevance matrix; ``n_positives``: ``[q]`` |T| per query.
    """
    return rel[:, :k].sum(axis=1) / n_positives


def ndcg(rel: np.ndarray, n_positives: np.ndarray, k: int) -> np.ndarray:
    """NDCG@K per query with binary relevance (Eq. 7).

        DCG@K  = sum_{i=1}^{K} rel_i / log2(1 + i)
        IDCG@K = sum_{i=1}^{min(K, |T|)} 1 / log2(1 + i)
        NDCG@K = DCG@K / IDCG@K

    ``rel``: ``[q, >=K]`` boolean relevance matrix; ``n_positives``: ``[q]`` |T| per query.
    """
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    # Both sums are running sums over the same discounts in the same order, so a perfect ranking
    # gives DCG == IDCG bit for bit and NDCG is exactly 1.
    dcg = np.cumsum(rel[:, :k] * discount, axis=1)[:, -1]
    idcg_by_count = np.concatenate([[0.0], np.cumsum(discount)])
    return dcg / idcg_by_count[np.minimum(n_positives, k)]


def relevance_matrix(
    ranked: Sequence[Sequence[int]] | np.ndarray,
    positives: Sequence[Collection[int]] | np.ndarray,
    depth: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``rel [q, depth]`` (rel[q, i] = ranked[q][i] is in T_q) and ``n_positives [q]`` (|T_q|).

    Validates the inputs as `evaluate` describes. Vectorised: a row-wise sort finds repeats,
    and membership is one binary search of keys ``q * M + item`` (M exceeds every item id) in the
    sorted target keys.
    """
    if len(ranked) != len(positives):
        raise ValueError(
            f"ranked has {len(ranked)} queries but positives has {len(positives)}; "
            "pass one ranked list and one target set per query, in the same order"
        )
    if len(ranked) == 0:
        raise ValueError("no queries to evaluate: ranked and positives are empty")
    n_queries = len(ranked)
    top = _ranked_matrix(ranked, depth)
    pos_items, pos_lengths = _flatten(positives, "positives")
    _check_non_negative(pos_items, pos_lengths, "positives")
    if (pos_lengths == 0).any():
        q = int(np.flatnonzero(pos_lengths == 0)[0])
        raise ValueError(f"positives[{q}] is empty; a query needs at least one target item (drop it upstream)")

    modulus = int(max(top.max(initial=0), pos_items.max(initial=0))) + 1
    if n_queries * modulus > np.iinfo(np.int64).max:
        raise ValueError(f"{n_queries} queries x item ids up to {modulus - 1} overflow int64 keys; split the batch")
    pos_query = np.repeat(np.arange(n_queries, dtype=np.int64), pos_lengths)
    pos_keys = np.unique(pos_query * modulus + pos_items)  # repeated targets collapse here
    n_positives = np.bincount(pos_keys // modulus, minlength=n_queries)

    top_keys = np.arange(n_queries, dtype=np.int64)[:, None] * modulus + top
    # Membership by binary search in the sorted unique target keys (np.isin would re-sort both sides).
    slot = np.minimum(np.searchsorted(pos_keys, top_keys), len(pos_keys) - 1)
    rel = (pos_keys[slot] == top_keys) & (top != _PAD)
    return rel, n_positives


def auroc(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """Area under the ROC curve: the chance a random positive outscores a random negative, ties half.

        AUROC = U / (n_pos * n_neg),   U = sum_{i: y_i = 1} r_i - n_pos (n_pos + 1) / 2

    the Mann-Whitney U statistic, with r_i the rank of score i among all scores (1-based, tied
    scores given their average rank). Labels are 0/1.
    """
    scores, labels = _checked_scores_labels(scores, labels)
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            f"AUROC needs both classes; got {n_pos} positives and {n_neg} negatives among {len(labels)} labels"
        )
    ranks = _average_ranks(np.zeros(len(scores), dtype=np.int64), scores)
    u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def _checked_ks(ks: Iterable[int] | int) -> tuple[int, ...]:
    ks = (ks,) if isinstance(ks, (int, np.integer)) and not isinstance(ks, bool) else tuple(ks)
    if not ks or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in ks):
        raise ValueError(f"ks must be a non-empty sequence of positive ints; got {ks!r}")
    if len(set(ks)) != len(ks):
        raise ValueError(f"ks repeats a cutoff: {ks!r}; list each K once")
    return tuple(int(k) for k in ks)


def _flatten(rows: Sequence[Collection[int]] | np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The items of all rows, concatenated (int64), and each row's length."""
    if isinstance(rows, np.ndarray) and rows.dtype != object:
        if rows.ndim != 2:
            raise ValueError(
                f"{name} must have one row per query; got a {rows.ndim}-D array of shape {rows.shape} "
                "(a 1-D array is ambiguous: wrap a single query as [row], "
                "or reshape(-1, 1) for one item per query)"
            )
        return _as_item_ids(rows, name).ravel(), np.full(len(rows), rows.shape[1], dtype=np.int64)
    try:
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    except TypeError as error:
        raise TypeError(f"every entry of {name} must be a collection of item ids: {error}") from None
    if all(isinstance(row, np.ndarray) for row in rows):
        flat = np.concatenate([np.empty(0, dtype=np.int64), *rows])
    else:
        flat = np.asarray(list(chain.from_iterable(rows)))
    return _as_item_ids(flat if flat.size else flat.astype(np.int64), name), lengths


def _as_item_ids(values: np.ndarray, name: str) -> np.ndarray:
    if not np.issubdtype(values.dtype, np.integer):
        raise TypeError(f"{name} must hold integer item ids; got dtype {values.dtype} (cast with .astype(int))")
    return values.astype(np.int64, copy=False)


def _check_non_negative(items: np.ndarray, lengths: np.ndarray, name: str) -> None:
    negative = np.flatnonzero(items < 0)
    if negative.size:
        q = int(np.searchsorted(np.cumsum(lengths), negative[0], side="right"))
        raise ValueError(f"{name}[{q}] holds the negative item id {items[negative[0]]}; item ids start at 0")


def _ranked_matrix(ranked: Sequence[Sequence[int]] | np.ndarray, depth: int) -> np.ndarray:
    """The top ``depth`` of every ranked list as a ``[q, depth]`` int64 matrix, short rows padded.

    Repeats are checked over each whole list, not only its top ``depth``: any repeat means a broken
    ranker (anchors 2.4), wherever it sits.
    """
    items, lengths = _flatten(ranked, "ranked")
    _check_non_negative(items, lengths, "ranked")
    if isinstance(ranked, np.ndarray) and ranked.dtype != object:
        full = items.reshape(len(ranked), -1)
    else:  # ragged rows: scatter the flat items into a padded matrix
        full = np.full((len(lengths), lengths.max(initial=0)), _PAD, dtype=np.int64)
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        full[np.repeat(np.arange(len(lengths)), lengths), np.arange(len(items)) - starts] = items

    ordered = np.sort(full, axis=1)
    repeated = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] != _PAD)
    if repeated.any():
        q, j = (int(i[0]) for i in np.nonzero(repeated))
        raise ValueError(
            f"ranked[{q}] repeats item {ordered[q, j]}; each ranked list must hold distinct items "
            "(a repeated target would be counted twice): deduplicate it, first occurrence wins, "
            "or decode without sampling (do_sample=False)"
        )
    if full.shape[1] < depth:
        full = np.pad(full, ((0, 0), (0, depth - full.shape[1])), constant_values=_PAD)
    return full[:, :depth]


def _checked_scores_labels(
    scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``scores`` as finite float64 and ``labels`` as bool, both 1-D and of equal length."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 1 or labels.shape != scores.shape:
        raise ValueError(f"scores and labels must be 1-D of equal length; got shapes {scores.shape} and {labels.shape}")
    if not np.isfinite(scores).all():
        raise ValueError(f"scores hold {int((~np.isfinite(scores)).sum())} non-finite values (NaN or inf)")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 0/1; got values {np.unique(labels)[:10]}")
    return scores, labels.astype(bool)


def _average_ranks(group: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """1-based rank of each score within its group, tied scores sharing their average rank."""
    order = np.lexsort((scores, group))
    g, s = group[order], scores[order]
    n = len(s)
    if n == 0:
        return np.empty(0)
    new_group = np.concatenate([[True], g[1:] != g[:-1]])
    new_value = new_group | np.concatenate([[True], s[1:] != s[:-1]])
    position = np.arange(n)
    group_start = np.maximum.accumulate(np.where(new_group, position, 0))
    tie_start = np.flatnonzero(new_value)
    tie_end = np.append(tie_start[1:], n)  # exclusive
    # Ranks tie_start+1 .. tie_end (relative to the group) average to (tie_start + 1 + tie_end) / 2.
    tie_of = np.cumsum(new_value) - 1
    ranks_sorted = (tie_start[tie_of] + 1 + tie_end[tie_of]) / 2 - group_start
    ranks = np.empty(n)
    ranks[order] = ranks_sorted
    return ranks
