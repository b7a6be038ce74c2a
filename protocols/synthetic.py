"""A seeded synthetic multi-behavior log shaped like ShortVideoAD (paper Table 1, Section 4.1.1).

Generative story. Items sit in a topic > subtopic > leaf hierarchy; their 4-level semantic IDs are
(topic, subtopic, leaf, rank in leaf), and popularity is Zipf-like inside each leaf. Each user has
a home topic and a few favourite leaves ("interest slots"). Some slots are swapped for new leaves
by the end of the week, and a session at week fraction t uses the end-of-week version with
probability t. A user's sessions are spread over one week: inside a session events are less than
15 minutes apart, between sessions more, so the 15-minute gap rule recovers them exactly. Each
session focuses on one interest leaf. Its p3s exposures come mostly from that leaf, some from its
subtopic, the rest from the whole catalogue (noise). An exposure is clicked a few seconds later,
rarely, and more often on favourite leaves. A conversion in a session follows a click from an
earlier session: it falls on the clicked item itself (retargeting) or on another item of the same
leaf, chosen by a conversion appeal of its own (what converts is not what is shown most). Most
converting sessions hold the funnel alone (a click, then the conversion: the user came back for
the ad); the others convert amid browsing, after a p3s and a click on the converted item.

Calibration. The defaults are set to what the paper and the authors' release publish about
ShortVideoAD, never to a trained model's score (tests/test_synthetic.py asserts each):

=====================================================  ==========  =====================  =========
statistic (after the < 3-session filter)               target      seed 0 (default data)  seeds 0-9
=====================================================  ==========  =====================  =========
interactions / user (Table 1)                          161.5       164.8                  164.7
sessions / user (Table 1)                              38.4        38.1                   38.1
interactions / session (Table 1)                       4.2         4.32                   4.32
distinct items / user (Table 1: 168,530 / 48,779)      3.45        3.55                   3.46
users whose last session holds a p3s (release)         0.894       0.905                  0.892
... a click                                            0.235       0.224                  0.240
... a conversion (the target-behavior test queries)    0.18        0.164                  0.177
Rule-Based HR@10, target-behavior task (Table 2)       0.0841      0.0769                 0.091
Rule-Based NDCG@10 (Table 2)                           0.0364      0.0429                 0.043
=====================================================  ==========  =====================  =========

What moved Rule-Based from 3.6x the paper's NDCG@10 to it: conversions on leaves clicked long ago
(``recency_bias`` 0.5, interests that drift more, 0.8) on items picked by their own appeal, little
retargeting of the clicked item itself (5 %), and leaves of ~54 items instead of ~31. The three
last-session shares ask for rare clicks (0.8 %) and for most conversions (60 %) to come alone.
With ~160 target-behavior test queries, Rule-Based's NDCG@10 varies by 0.010 (one standard
deviation) from seed to seed.

Everything is vectorised: there is no Python loop per user or per interaction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from protocols.interactions import Interactions, Schema, SessionRule

BEHAVIORS = ("p3s", "click", "conversion")
SESSION_GAP_MINUTES = 15
_DAY = 86_400
_MIN_SESSION_GAP = 60 * SESSION_GAP_MINUTES + 1  # seconds between sessions: more than the rule's gap
_MAX_EXPOSURE_GAP = 600  # seconds between exposures in a session, well under the rule's 15 minutes
_MAX_EXPOSURES = 50  # exposures in one session at most
_CLICK_DELAY = (1, 10)  # seconds from an exposure to its click (inclusive bounds)
_CONVERSION_P3S_DELAY = (0, 5)  # seconds from the host exposure to the converted item's own p3s
_CONVERSION_DELAY = (5, 60)  # seconds from that click to the conversion
# Room after a session's last exposure for the clicks and conversions that follow it.
_SESSION_TAIL = _CONVERSION_P3S_DELAY[1] + _CLICK_DELAY[1] + _CONVERSION_DELAY[1]


@dataclass(frozen=True)
class SyntheticConfig:
    """Sizes and structural knobs of the synthetic log. The defaults give a 1,000-user ShortVideoAD.

    `scale` multiplies users and items. The hierarchy stays the same, so leaves get more items.
    """

    n_users: int = 1000
    n_items: int = 3450  # Table 1: 168,530 items / 48,779 users = 3.45 items per user
    # Before the < 3-session filter. The filter lifts it to ~38.4, Table 1's 1,874,719 / 48,779.
    mean_sessions_per_user: float = 37.0
    # Gamma shape of per-user activity. 1.5 is heterogeneous enough that ~4% of users get < 3 sessions.
    activity_shape: float = 1.5
    # p3s + clicks + conversions per session (Table 1: 7,877,083 / 1,874,719 = 4.2).
    # Nominal: direct converting sessions (2 rows) pull the measured mean down to ~4.3.
    mean_interactions_per_session: float = 4.7
    days: float = 7.0
    start_timestamp: int = 1_709_510_400  # 2024-03-04 00:00:00 UTC, a Monday
    seed: int = 0

    # -- item hierarchy: n_topics * subtopics_per_topic * leaves_per_subtopic leaf clusters -----------
    # 64 leaves of ~54 items at the default size, so a user's recent items do not cover a whole leaf.
    n_topics: int = 8
    subtopics_per_topic: int = 4
    leaves_per_subtopic: int = 2
    popularity_exponent: float = 0.8  # Zipf exponent of item popularity inside a leaf
    leaf_popularity_sigma: float = 1.0  # log-normal spread of leaf popularity

    # -- user interests -------------------------------------------------------------------------------
    n_interests: int = 4  # favourite leaves ("interest slots") per user
    topic_loyalty: float = 0.7  # chance that an interest slot lies in the user's home topic
    drift: float = 0.8  # chance that a slot holds a different leaf by the end of the week

    # -- exposures (p3s) ------------------------------------------------------------------------------
    subtopic_share: float = 0.4  # exposures drawn from the focus leaf's whole subtopic
    noise_share: float = 0.15  # exposures drawn from the whole catalogue; the rest are from the focus leaf
    mean_exposure_gap: float = 45.0  # mean seconds between exposures in a session
    session_length_sigma: float = 0.4  # log-normal spread of users' typical session lengths

    # -- clicks and conversions -----------------------------------------------------------------------
    click_rate: float = 0.008  # click chance of an exposure outside the user's favourite leaves
    favourite_click_boost: float = 3.0  # click chance multiplier on the user's favourite leaves
    # Conversion chance of a session after the first, averaged over the week. A session without an
    # earlier click of the user cannot convert.
    conversion_rate: float = 0.13
    # The chance grows linearly over the week, from (1 - ramp) to (1 + ramp) times the rate, as the
    # funnel fills. This keeps last-session (test) conversions from being too rare.
    conversion_ramp: float = 0.8
    retarget_share: float = 0.05  # conversions on the earlier-clicked item itself; the rest on its leaf
    # Converting sessions that hold the funnel alone (a click, then the conversion; no p3s, no
    # browsing): the user comes back to the ad's landing page. The rest convert amid a browsing
    # session, after a p3s and a click on the converted item.
    direct_conversion_share: float = 0.6
    # A conversion on another item of the clicked leaf picks it by the leaf's conversion appeal: with
    # ``appeal_exponent`` set, a Zipf law of that exponent over a random ranking of the leaf of its
    # own (what converts is not what is shown most); with None, the exposure popularity.
    appeal_exponent: float | None = 0.8
    # Which earlier click a conversion follows: the one n_prior * U**recency_bias back from the newest.
    # 1 picks uniformly among the user's earlier clicks; larger values favour recent clicks, smaller old ones.
    recency_bias: float = 0.5

    def __post_init__(self) -> None:
        positive = (
            "n_users",
            "n_items",
            "mean_sessions_per_user",
            "activity_shape",
            "days",
            "n_topics",
            "subtopics_per_topic",
            "leaves_per_subtopic",
            "n_interests",
            "mean_exposure_gap",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"SyntheticConfig.{name} must be > 0, got {getattr(self, name)!r}")
        non_negative = (
            "popularity_exponent",
            "leaf_popularity_sigma",
            "session_length_sigma",
            "favourite_click_boost",
            "recency_bias",
        )
        for name in non_negative:
            if not getattr(self, name) >= 0:
                raise ValueError(f"SyntheticConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        fractions = (
            "topic_loyalty",
            "drift",
            "subtopic_share",
            "noise_share",
            "click_rate",
            "conversion_rate",
            "conversion_ramp",
            "retarget_share",
            "direct_conversion_share",
        )
        for name in fractions:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"SyntheticConfig.{name} must lie in [0, 1], got {getattr(self, name)!r}")
        if self.subtopic_share + self.noise_share > 1.0:
            raise ValueError("SyntheticConfig: subtopic_share + noise_share must be <= 1")
        if self.n_items < self.n_leaves:
            raise ValueError(f"SyntheticConfig: n_items={self.n_items} is fewer than the {self.n_leaves} leaf clusters")
        if self.mean_interactions_per_session < 1.0:
            raise ValueError("SyntheticConfig.mean_interactions_per_session must be >= 1")

    @property
    def n_leaves(self) -> int:
        return self.n_topics * self.subtopics_per_topic * self.leaves_per_subtopic

    def scale(self, factor: float) -> SyntheticConfig:
        """The same log with ``factor`` times the users and items (the hierarchy is unchanged)."""
        if not factor > 0:
            raise ValueError(f"scale factor must be > 0, got {factor}")
        return replace(
            self,
            n_users=max(1, round(self.n_users * factor)),
            n_items=max(self.n_leaves, round(self.n_items * factor)),
        )


# -- vectorised helpers -------------------------------------------------------------------------------


def _sample_ranges(cum: np.ndarray, lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One index per row, drawn from ``lo[r]:hi[r]`` with the weights whose ``[0, *cumsum]`` is ``cum``."""
    start, stop = cum[lo], cum[hi]
    u = start + rng.random(len(lo)) * (stop - start)
    return np.clip(np.searchsorted(cum, u, side="right") - 1, lo, hi - 1)


def _segments(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For consecutive segments of the given lengths: each row's segment, its position in it, segment starts."""
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    owner = np.repeat(np.arange(len(counts)), counts)
    return owner, np.arange(len(owner)) - starts[owner], starts


def _randint(rng: np.random.Generator, bounds: tuple[int, int], size: int) -> np.ndarray:
    return rng.integers(bounds[0], bounds[1] + 1, size=size)


# -- the stages of the story --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Catalogue:
    """Items in *internal* order, sorted by (topic, subtopic, leaf), so each cluster is a row range."""

    leaf: np.ndarray  # [n_items] leaf cluster of each item
    leaf_start: np.ndarray  # [n_leaves + 1] leaf l holds items leaf_start[l]:leaf_start[l + 1]
    item_cum: np.ndarray  # [n_items + 1] cumulative item popularity, from 0
    leaf_cum: np.ndarray  # [n_leaves + 1] cumulative leaf popularity, from 0
    semantic_ids: np.ndarray  # [n_items, 4]
    appeal_cum: np.ndarray  # [n_items + 1] cumulative conversion appeal, from 0 (drawn from within a leaf's range)


def _catalogue(cfg: SyntheticConfig, rng: np.random.Generator) -> _Catalogue:
    per_sub = cfg.leaves_per_subtopic
    per_topic = cfg.subtopics_per_topic * per_sub
    # Every leaf gets one item; the rest are spread over leaves of uneven (gamma) sizes.
    size_share = rng.gamma(2.0, size=cfg.n_leaves)
    sizes = 1 + rng.multinomial(cfg.n_items - cfg.n_leaves, size_share / size_share.sum())
    leaf, code, leaf_start = _segments(sizes)
    leaf_start = np.append(leaf_start, cfg.n_items)

    # Zipf popularity inside each leaf, ranked in random order so the 4th SID code does not reveal it.
    order = np.lexsort((rng.random(cfg.n_items), leaf))
    rank = np.empty(cfg.n_items, dtype=np.int64)
    rank[order] = code
    zipf = (rank + 1.0) ** -cfg.popularity_exponent
    zipf /= np.bincount(leaf, weights=zipf, minlength=cfg.n_leaves)[leaf]
    leaf_weight = rng.lognormal(0.0, cfg.leaf_popularity_sigma, size=cfg.n_leaves)

    semantic_ids = np.stack(
        [leaf // per_topic, (leaf // per_sub) % cfg.subtopics_per_topic, leaf % per_sub, code], axis=1
    ).astype(np.int64)
    item_cum = np.concatenate([[0.0], np.cumsum(leaf_weight[leaf] * zipf)])
    appeal_cum = item_cum
    if cfg.appeal_exponent is not None:  # drawn only when asked, so logs made without it stay as they were
        appeal_rank = np.empty(cfg.n_items, dtype=np.int64)
        appeal_rank[np.lexsort((rng.random(cfg.n_items), leaf))] = code
        appeal_cum = np.concatenate([[0.0], np.cumsum((appeal_rank + 1.0) ** -cfg.appeal_exponent)])
    return _Catalogue(
        leaf=leaf,
        leaf_start=leaf_start,
        item_cum=item_cum,
        leaf_cum=np.concatenate([[0.0], np.cumsum(leaf_weight)]),
        semantic_ids=semantic_ids,
        appeal_cum=appeal_cum,
    )


def _interest_slots(cfg: SyntheticConfig, cat: _Catalogue, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``[n_users, n_interests]`` favourite leaves at the start and at the end of the week."""
    n_users, k = cfg.n_users, cfg.n_interests
    per_topic = cfg.subtopics_per_topic * cfg.leaves_per_subtopic
    anywhere_lo, anywhere_hi = np.zeros(n_users, np.int64), np.full(n_users, cfg.n_leaves, np.int64)
    home = _sample_ranges(cat.leaf_cum, anywhere_lo, anywhere_hi, rng) // per_topic  # by topic popularity

    def draw() -> np.ndarray:
        at_home = rng.random((n_users, k)) < cfg.topic_loyalty
        lo = np.where(at_home, (home * per_topic)[:, None], 0).ravel()
        hi = np.where(at_home, ((home + 1) * per_topic)[:, None], cfg.n_leaves).ravel()
        return _sample_ranges(cat.leaf_cum, lo, hi, rng).reshape(n_users, k)

    start = draw()
    end = np.where(rng.random((n_users, k)) < cfg.drift, draw(), start)
    return start, end


def _exposures_per_session(cfg: SyntheticConfig) -> float:
    """Mean exposures per session that make p3s + clicks + conversions ``mean_interactions_per_session``.

    Exposures from the focus leaf are on a favourite leaf, and so are about one in
    ``leaves_per_subtopic`` of those from its subtopic. A conversion adds a p3s, a click and itself.
    """
    favourite = 1.0 - cfg.noise_share - cfg.subtopic_share * (1.0 - 1.0 / cfg.leaves_per_subtopic)
    click = min(cfg.click_rate * (favourite * cfg.favourite_click_boost + 1.0 - favourite), 1.0)
    return max(1.0, (cfg.mean_interactions_per_session - 3.0 * cfg.conversion_rate) / (1.0 + click))


@dataclass(frozen=True)
class _Timeline:
    """Sessions (flat, by user then time) and their exposures (flat, by session then time)."""

    sess_user: np.ndarray  # [n_sessions] owner of each session
    sess_index: np.ndarray  # [n_sessions] index of the session within its user, 0 = first
    user_first_sess: np.ndarray  # [n_users] flat index of each user's first session
    sess_start: np.ndarray  # [n_sessions] seconds from the week's start
    sess_first_exp: np.ndarray  # [n_sessions] flat index of the session's first exposure
    n_exp: np.ndarray  # [n_sessions] exposures in the session
    exp_sess: np.ndarray  # [n_exposures] session of each exposure
    offset: np.ndarray  # [n_exposures] seconds from the session's start


def _timeline(cfg: SyntheticConfig, rng: np.random.Generator) -> _Timeline:
    span = int(cfg.days * _DAY)
    # Sessions per user: Poisson around a gamma-distributed activity.
    scale = cfg.mean_sessions_per_user / cfg.activity_shape
    activity = rng.gamma(cfg.activity_shape, scale, size=cfg.n_users)
    max_sessions = max(1, span // (4 * _MIN_SESSION_GAP))  # at most about one session an hour
    n_sessions = np.clip(rng.poisson(activity), 1, max_sessions)
    sess_user, sess_index, user_first_sess = _segments(n_sessions)
    n_sess = len(sess_user)

    # Exposures per session (1 + a gamma-Poisson count around the user's typical length), and their
    # offsets from the session's start.
    sigma = cfg.session_length_sigma
    user_length = rng.lognormal(-(sigma**2) / 2, sigma, size=cfg.n_users)  # mean 1
    extra = (_exposures_per_session(cfg) - 1.0) * user_length[sess_user] * rng.exponential(size=n_sess)
    n_exp = 1 + np.minimum(rng.poisson(extra), _MAX_EXPOSURES - 1)
    exp_sess, exp_pos, sess_first_exp = _segments(n_exp)
    gap = np.rint(rng.exponential(cfg.mean_exposure_gap, size=len(exp_sess)))
    gap = np.clip(gap, 1, _MAX_EXPOSURE_GAP).astype(np.int64)
    gap[exp_pos == 0] = 0
    running = np.cumsum(gap)
    offset = running - running[sess_first_exp][exp_sess]
    duration = offset[sess_first_exp + n_exp - 1] + _SESSION_TAIL  # every event of the session is inside

    # Session starts: the user's slack (the week minus session durations and minimal gaps) is cut at
    # random (Dirichlet spacings), so consecutive sessions are always more than 15 minutes apart.
    busy = np.bincount(sess_user, weights=duration, minlength=cfg.n_users) + (n_sessions - 1) * _MIN_SESSION_GAP
    slack = np.maximum(span - 1 - busy, 0)  # a user too busy for the week runs past its end (not at defaults)
    spacing = rng.exponential(size=n_sess)
    spacing_total = np.bincount(sess_user, weights=spacing, minlength=cfg.n_users)
    spacing_total += rng.exponential(size=cfg.n_users)  # the idle stretch after the user's last session
    lead = np.floor(slack[sess_user] * spacing / spacing_total[sess_user]).astype(np.int64)
    previous = np.concatenate([[0], duration[:-1]])
    step = lead + np.where(sess_index > 0, previous + _MIN_SESSION_GAP, 0)
    running = np.cumsum(step)
    sess_start = running - np.concatenate([[0], running])[user_first_sess][sess_user]
    return _Timeline(sess_user, sess_index, user_first_sess, sess_start, sess_first_exp, n_exp, exp_sess, offset)


def _exposure_items(
    cfg: SyntheticConfig,
    cat: _Catalogue,
    slots: tuple[np.ndarray, np.ndarray],
    tl: _Timeline,
    week_time: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Each session's focus leaf comes from the user's interests; its exposures mostly from there."""
    slot_start, slot_end = slots
    weight = rng.gamma(1.0, size=(cfg.n_users, cfg.n_interests))  # Dirichlet(1) interest weights
    weight_cum = np.cumsum(weight / weight.sum(axis=1, keepdims=True), axis=1)
    n_sess = len(tl.sess_user)
    slot = (rng.random(n_sess)[:, None] > weight_cum[tl.sess_user]).sum(axis=1)
    slot = np.minimum(slot, cfg.n_interests - 1)
    late = rng.random(n_sess) < week_time  # end-of-week interests, more likely as the week goes on
    focus = np.where(late, slot_end[tl.sess_user, slot], slot_start[tl.sess_user, slot])[tl.exp_sess]

    source = rng.random(len(focus))
    noise = source < cfg.noise_share
    subtopic = ~noise & (source < cfg.noise_share + cfg.subtopic_share)
    first_leaf = np.where(subtopic, focus - focus % cfg.leaves_per_subtopic, focus)
    last_leaf = np.where(subtopic, first_leaf + cfg.leaves_per_subtopic - 1, focus)
    lo = np.where(noise, 0, cat.leaf_start[first_leaf])
    hi = np.where(noise, cfg.n_items, cat.leaf_start[last_leaf + 1])
    return _sample_ranges(cat.item_cum, lo, hi, rng)


def _clicks(
    cfg: SyntheticConfig,
    cat: _Catalogue,
    slots: tuple[np.ndarray, np.ndarray],
    exp_user: np.ndarray,
    item: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Which exposures are clicked: more often those on one of the user's favourite leaves."""
    leaf = cat.leaf[item]
    favourite = np.zeros(len(item), dtype=bool)
    for slot_leaves in slots:
        for k in range(cfg.n_interests):
            favourite |= slot_leaves[exp_user, k] == leaf
    chance = np.minimum(cfg.click_rate * np.where(favourite, cfg.favourite_click_boost, 1.0), 1.0)
    return rng.random(len(item)) < chance


@dataclass(frozen=True)
class _Conversions:
    sess: np.ndarray  # [n] converting sessions
    item: np.ndarray  # [n] converted items
    host: np.ndarray  # [n] the exposure each conversion's funnel follows in time
    direct: np.ndarray  # [n] the session holds the funnel alone (its browsing is dropped)
    click_row: np.ndarray  # the clicked exposure rows, less those of direct sessions


def _conversions(
    cfg: SyntheticConfig,
    cat: _Catalogue,
    tl: _Timeline,
    week_time: np.ndarray,
    item: np.ndarray,
    click_row: np.ndarray,
    rng: np.random.Generator,
) -> _Conversions:
    """Converting sessions, their items and the host exposures the conversions follow.

    A session converts with a chance that ramps up over the week, provided the user clicked
    something in an earlier session. The earlier clicks of session g are a contiguous range of the
    (user, session)-ordered click rows, found with searchsorted. A direct session's own browsing
    clicks are dropped before any conversion looks back at them (its browsing is dropped); a direct
    candidate that finds no earlier click does not convert and keeps its exposures, unclicked.
    """
    ramp = 1.0 + cfg.conversion_ramp * (2.0 * week_time - 1.0)
    n_sess = len(tl.sess_user)
    candidate = np.flatnonzero((tl.sess_index > 0) & (rng.random(n_sess) < cfg.conversion_rate * ramp))
    direct_sess = np.zeros(n_sess, dtype=bool)
    if cfg.direct_conversion_share > 0:  # no draw when off, so logs made without it stay as they were
        direct_sess[candidate] = rng.random(len(candidate)) < cfg.direct_conversion_share
        click_row = click_row[~direct_sess[tl.exp_sess[click_row]]]
    click_sess = tl.exp_sess[click_row]  # non-decreasing
    lo = np.searchsorted(click_sess, tl.user_first_sess[tl.sess_user[candidate]], side="left")
    hi = np.searchsorted(click_sess, candidate, side="left")
    keep = hi > lo
    sess, lo, hi = candidate[keep], lo[keep], hi[keep]
    n = len(sess)

    back = np.floor((hi - lo) * rng.random(n) ** cfg.recency_bias).astype(np.int64)
    anchor = item[click_row[hi - 1 - back]]
    leaf = cat.leaf[anchor]
    sibling = _sample_ranges(cat.appeal_cum, cat.leaf_start[leaf], cat.leaf_start[leaf + 1], rng)
    conv_item = np.where(rng.random(n) < cfg.retarget_share, anchor, sibling)
    host = tl.sess_first_exp[sess] + np.floor(rng.random(n) * tl.n_exp[sess]).astype(np.int64)
    return _Conversions(sess, conv_item, host, direct_sess[sess], click_row)


# -- the generator ------------------------------------------------------------------------------------


def generate(config: SyntheticConfig | None = None, *, with_sessions: bool = False) -> Interactions:
    """A synthetic ShortVideoAD-like log (module docstring): p3s < click < conversion, 15-minute gaps.

    User and item ids are ints ``0..n-1``. Item i's semantic ID is ``schema.item_semantic_ids[i]``
    = (topic, subtopic, leaf, rank in leaf), with every level's codes counted from 0. With
    ``with_sessions`` the generator's own session assignment is attached (as file-given sessions);
    without it ``session`` is None, and the schema's gap rule recovers the same sessions.
    """
    cfg = config if config is not None else SyntheticConfig()
    rng = np.random.default_rng(cfg.seed)
    cat = _catalogue(cfg, rng)
    slots = _interest_slots(cfg, cat, rng)
    tl = _timeline(cfg, rng)
    week_time = np.clip(tl.sess_start / (cfg.days * _DAY), 0.0, 1.0)  # 0 at the week's start, 1 at its end

    item = _exposure_items(cfg, cat, slots, tl, week_time, rng)
    click_row = np.flatnonzero(_clicks(cfg, cat, slots, tl.sess_user[tl.exp_sess], item, rng))
    conv = _conversions(cfg, cat, tl, week_time, item, click_row, rng)
    click_row = conv.click_row

    # Rows: exposures, their clicks, then each conversion's p3s, click and conversion.
    n_exp, n_click, n_conv = len(item), len(click_row), len(conv.sess)
    click_at = tl.offset[click_row] + _randint(rng, _CLICK_DELAY, n_click)
    conv_p3s_at = tl.offset[conv.host] + _randint(rng, _CONVERSION_P3S_DELAY, n_conv)
    conv_click_at = conv_p3s_at + _randint(rng, _CLICK_DELAY, n_conv)
    conv_at = conv_click_at + _randint(rng, _CONVERSION_DELAY, n_conv)
    row_sess = np.concatenate([tl.exp_sess, tl.exp_sess[click_row], np.tile(conv.sess, 3)])
    row_item = np.concatenate([item, item[click_row], np.tile(conv.item, 3)])
    row_offset = np.concatenate([tl.offset, click_at, conv_p3s_at, conv_click_at, conv_at])
    behavior = np.repeat(np.array([0, 1, 0, 1, 2], dtype=np.int8), [n_exp, n_click, n_conv, n_conv, n_conv])
    if conv.direct.any():  # a direct session keeps its funnel's click and conversion, nothing else
        direct_sess = np.zeros(len(tl.sess_user), dtype=bool)
        direct_sess[conv.sess[conv.direct]] = True
        keep = ~direct_sess[row_sess] | (behavior > 0)  # its browsing clicks were dropped already
        row_sess, row_item, row_offset, behavior = row_sess[keep], row_item[keep], row_offset[keep], behavior[keep]

    # External item ids are a random permutation, so an item's id says nothing about its cluster.
    external = rng.permutation(cfg.n_items)
    semantic_ids = np.empty_like(cat.semantic_ids)
    semantic_ids[external] = cat.semantic_ids
    schema = Schema(
        name="synthetic",
        behaviors=BEHAVIORS,
        session_rule=SessionRule.gap(SESSION_GAP_MINUTES),
        item_semantic_ids=semantic_ids,
    )
    return Interactions.from_columns(
        tl.sess_user[row_sess],
        external[row_item],
        behavior,
        cfg.start_timestamp + tl.sess_start[row_sess] + row_offset,
        schema,
        session=tl.sess_index[row_sess] if with_sessions else None,
        item_catalogue=np.arange(cfg.n_items),
        source=f"synthetic(seed={cfg.seed})",
    )
