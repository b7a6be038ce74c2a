"""``gamer-bench perf``: throughput figures that are too slow or too noisy for the test suite."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from tabulate import tabulate

from protocols.catalog import BUILTIN, data_dir


def best_of(repeat: int, fn: Callable[[], object]) -> tuple[float, object]:
    """The fastest of ``repeat`` calls (seconds) and the last result: the minimum is the least noisy."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def _importers() -> list[tuple[str, str, Callable[[], object]]]:
    from protocols import formats
    from protocols.interactions import Schema, SessionRule

    root = data_dir()
    sslrec = root / "retailrocket" / "sslrec-format"
    return [
        ("table (csv)", "retailrocket/interactions.csv", BUILTIN["retailrocket"].load),
        (
            "sslrec matrices",
            "retailrocket/sslrec-format",
            lambda: formats.read_sslrec(
                sslrec, ["view", "cart", "buy"], name="retailrocket", session_rule=SessionRule.gap(30)
            ),
        ),
        ("taobao UserBehavior", "taobao-userbehavior-sample", BUILTIN["taobao-sample"].load),
        ("recbole atomic", "ml-100k.inter (recbole)", BUILTIN["ml100k-mb"].load),
        ("synthetic generator", "embedded default", BUILTIN["synthetic"].load),
        ("gamer release (round trip)", "synthetic, written to a temp dir", _gamer_roundtrip(Schema)),
    ]


def _gamer_roundtrip(_schema) -> Callable[[], object]:
    import tempfile
    from pathlib import Path

    from protocols import formats
    from protocols.sessions import sessionize

    folder = Path(tempfile.mkdtemp(prefix="gamer-bench-perf-"))
    formats.write_gamer_release(sessionize(BUILTIN["synthetic"].load()), folder, "synthetic")
    return lambda: formats.read_gamer_release(folder, "synthetic")


def perf_data(repeat: int) -> list[list[object]]:
    from protocols.splits import SessionSplit
    from protocols.tasks import Task

    rows = []
    for name, source, load in _importers():
        try:
            seconds, inter = best_of(repeat, load)
        except FileNotFoundError as error:
            rows.append([name, source, "-", "-", f"absent: {error}"])
            continue
        rows.append([name, source, len(inter), f"{seconds * 1e3:.1f}", f"{len(inter) / seconds:,.0f}"])
    if BUILTIN["retailrocket"].available():
        inter = BUILTIN["retailrocket"].load()

        def protocol():
            split = SessionSplit.from_interactions(inter)
            return split, split.queries("valid"), Task.BEHAVIOR_SPECIFIC.queries(split, "test")

        seconds, _ = best_of(repeat, protocol)
        rows.append(
            [
                "sessionize + filter + split + queries",
                "retailrocket",
                len(inter),
                f"{seconds * 1e3:.1f}",
                f"{len(inter) / seconds:,.0f}",
            ]
        )
        total, _ = best_of(
            repeat,
            lambda: (lambda i: SessionSplit.from_interactions(i).queries("test"))(BUILTIN["retailrocket"].load()),
        )
        rows.append(
            [
                "load + sessionize + split (end to end)",
                "retailrocket",
                len(inter),
                f"{total * 1e3:.1f}",
                f"{len(inter) / total:,.0f}",
            ]
        )
    return rows


def perf_taobao_scale(rows: int) -> list[object]:
    """Stream a UserBehavior-format file of ``rows`` rows (written here from a seed) through the importer."""
    import tempfile
    from pathlib import Path

    import pandas as pd

    rng = np.random.default_rng(0)
    users = np.sort(rng.integers(1, rows // 100 + 2, size=rows))
    frame = pd.DataFrame(
        {
            "user": users,
            "item": rng.integers(1, 5_000_000, size=rows),
            "category": rng.integers(1, 10_000, size=rows),
            "behavior": np.array(["pv", "fav", "cart", "buy"])[rng.choice(4, size=rows, p=[0.89, 0.03, 0.06, 0.02])],
            "timestamp": 1_511_539_200 + rng.integers(0, 9 * 86400, size=rows),
        }
    )
    with tempfile.TemporaryDirectory(prefix="gamer-bench-perf-") as folder:
        path = Path(folder) / "UserBehavior.csv"
        frame.to_csv(path, header=False, index=False)
        del frame
        seconds, inter = best_of(1, lambda: BUILTIN["taobao-sample"].read(path))
    return [
        "taobao UserBehavior, streamed in chunks",
        f"{rows:,} generated rows",
        len(inter),
        f"{seconds * 1e3:.1f}",
        f"{len(inter) / seconds:,.0f}",
    ]


def perf_metrics(repeat: int) -> list[object]:
    from protocols import metrics

    rng = np.random.default_rng(0)
    n, n_items = 100_000, 50_000
    ranked = np.argsort(rng.random((n, 64)), axis=1)[:, :10] + rng.integers(0, n_items - 64, size=(n, 1))
    positives = [rng.integers(0, n_items, size=3) for _ in range(n)]
    seconds, _ = best_of(repeat, lambda: metrics.evaluate(ranked, positives, ks=(1, 5, 10)))
    return ["metrics.evaluate (K = 10, |T| = 3)", "random", n, f"{seconds * 1e3:.1f}", f"{n / seconds:,.0f} queries/s"]


def main(what: str, *, repeat: int = 5, taobao_rows: int = 2_000_000) -> int:
    if what != "data":
        raise ValueError(f"unknown perf target {what!r}")
    rows = perf_data(repeat) + [perf_metrics(repeat)]
    if taobao_rows:
        rows.append(perf_taobao_scale(taobao_rows))
    print(tabulate(rows, headers=["step", "data", "rows", f"best of {repeat} (ms)", "rows/s"], tablefmt="github"))
    return 0
