"""Session rules (paper Section 3.2) and the minimum-sessions filter (Section 4.1.1).

Every function here is vectorised over the whole log: interactions arrive in canonical order
(user, time, level, input order), so a session boundary is a comparison of neighbouring rows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from protocols.interactions import Interactions, SessionRule, dense_from_boundaries


@dataclass(frozen=True)
class FilterReport:
    """What a filter removed, and why: nothing is dropped silently."""

    reason: str
    users_removed: int
    interactions_removed: int
    users_kept: int
    interactions_kept: int

    def __str__(self) -> str:
        return (
            f"{self.reason}: removed {self.users_removed} users and {self.interactions_removed} interactions; "
            f"kept {self.users_kept} users and {self.interactions_kept} interactions"
        )


def local_day(timestamp: np.ndarray, timezone: str) -> np.ndarray:
    """Calendar day number of unix-second timestamps in ``timezone`` (IANA name or '+08:00')."""
    stamps = pd.to_datetime(timestamp, unit="s", utc=True)
    try:
        local = stamps.tz_convert(tzinfo_from_name(timezone))
    except Exception as error:  # pandas raises several types for a bad zone name
        raise ValueError(
            f"unknown timezone {timezone!r}: use an IANA name such as 'Asia/Shanghai' or an offset such as '+08:00'"
        ) from error
    wall = local.tz_localize(None).to_numpy().astype("datetime64[s]").astype(np.int64)
    return np.floor_divide(wall, 86400)


def tzinfo_from_name(timezone: str):
    import datetime as dt
    import zoneinfo

    text = timezone.strip()
    if text.upper() in ("UTC", "Z"):
        return dt.timezone.utc
    for prefix in ("UTC", "GMT"):
        if text.upper().startswith(prefix) and len(text) > len(prefix):
            text = text[len(prefix) :]
    if text[:1] in "+-":
        sign = -1 if text[0] == "-" else 1
        hours, _, minutes = text[1:].partition(":")
        if not hours.isdigit() or (minutes and not minutes.isdigit()):
            raise ValueError(f"unknown timezone {timezone!r}: an offset looks like '+08:00'")
        return dt.timezone(sign * dt.timedelta(hours=int(hours), minutes=int(minutes or 0)))
    try:
        return zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(
            f"unknown timezone {timezone!r}: use an IANA name such as 'Asia/Shanghai' or an offset such as '+08:00'"
        ) from error


def sessionize(inter: Interactions, rule: SessionRule | None = None) -> Interactions:
    """Assign each interaction its session index within its user under ``rule``.

    ``rule`` defaults to the schema's. With ``file``, the sessions the importer read are kept.
    """
    rule = rule or inter.schema.session_rule
    if rule.kind == "file":
        if inter.session is None:
            raise ValueError(f"dataset {inter.schema.name!r}: session rule 'file' but the data carries no session ids")
        return inter
    if rule.kind == "gap":
        # Strictly greater than the threshold opens a session (Section 4.1.1: "15-minute inactivity").
        opens = np.diff(inter.timestamp, prepend=inter.timestamp[:1]) > rule.gap_seconds
    else:
        day = local_day(inter.timestamp, rule.timezone)
        opens = np.diff(day, prepend=day[:1]) != 0
    return replace(inter, session=dense_from_boundaries(inter, opens), schema=replace(inter.schema, session_rule=rule))


def sessions_per_user(inter: Interactions) -> np.ndarray:
    """``[n_users]`` number of sessions of each user (0 for a user with no rows)."""
    if inter.session is None:
        raise ValueError("no sessions yet: apply sessionize first")
    counts = np.zeros(inter.n_users, dtype=np.int64)
    np.maximum.at(counts, inter.user, inter.session + 1)
    return counts


def filter_min_sessions(inter: Interactions, min_sessions: int = 3) -> tuple[Interactions, FilterReport]:
    """Drop users with fewer than ``min_sessions`` sessions (Section 4.1.1: fewer than three).

    Session-wise leave-one-out needs a test session, a validation session and at least one
    training session, so every kept user has all three.
    """
    counts = sessions_per_user(inter)
    keep_user = counts >= min_sessions
    keep = keep_user[inter.user]
    kept = inter.take(keep, compact_users=True)
    present = np.bincount(inter.user, minlength=inter.n_users) > 0
    report = FilterReport(
        reason=f"users with fewer than {min_sessions} sessions",
        users_removed=int((present & ~keep_user).sum()),
        interactions_removed=int((~keep).sum()),
        users_kept=int(keep_user.sum()),
        interactions_kept=int(keep.sum()),
    )
    if len(kept) == 0:
        raise ValueError(
            f"dataset {inter.schema.name!r}: no user has {min_sessions} or more sessions "
            f"(session rule: {inter.schema.session_rule.describe()}); check the rule or the timestamps"
        )
    return kept, report
