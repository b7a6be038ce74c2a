"""Command-line value types shared by ``gamer-bench run``, ``report`` and ``check``.

A list the user types must name something: ``--models ""``, ``--models ,`` or ``--models a,,b`` (an
unset shell variable, a stray comma) are errors, never "every row", which would launch hours of work.
"""

from __future__ import annotations

import argparse


def name_list(text: str) -> list[str]:
    """``"a, b"`` -> ``["a", "b"]``; an empty list or an empty name is an error."""
    parts = [part.strip() for part in text.split(",")]
    if not any(parts):
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r} (nothing named)")
    if not all(parts):
        raise argparse.ArgumentTypeError(f"an empty name in {text!r} (a stray comma?)")
    return parts


def _integer(text: str, minimum: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} is an integer >= {minimum}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{what} is an integer >= {minimum}, got {value}")
    return value


def seed(text: str) -> int:
    """A seed: an integer >= 0 (numpy refuses negative seeds)."""
    return _integer(text, 0, "a seed")


def seeds(text: str) -> int | list[int]:
    """``--seeds``: a count N >= 1 (N seeds from ``--seed``), or a comma-separated list of distinct seeds."""
    if "," not in text:
        return _integer(text, 1, "a seed count (or a comma-separated list of seeds)")
    chosen = [seed(part) for part in name_list(text)]
    if len(set(chosen)) != len(chosen):
        raise argparse.ArgumentTypeError(f"seeds repeat in {text!r}")
    return chosen


def seed_list(text: str) -> list[int]:
    """``--seeds`` of ``check --published``: the seeds themselves, ``0`` or ``0,1,2``."""
    chosen = [seed(part) for part in name_list(text)]
    if len(set(chosen)) != len(chosen):
        raise argparse.ArgumentTypeError(f"seeds repeat in {text!r}")
    return chosen


def positive(text: str) -> int:
    """An integer >= 1 (``--max-steps``)."""
    return _integer(text, 1, "a count")


def minutes(text: str) -> float:
    """A duration in minutes, > 0 (``--checkpoint-minutes``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"minutes are a number > 0, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"minutes are a number > 0, got {value}")
    return value
