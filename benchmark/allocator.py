"""Optionally keep freed memory in the process instead of handing it back to the kernel every step.

Off unless ``GAMER_BENCH_KEEP_FREED_MEMORY=1``: it trades memory for system time, and memory is what
the paper-size path runs out of first (numbers below).

glibc serves allocations above its mmap threshold (128 KiB, rising to at most 32 MiB) with fresh
mappings and unmaps them on free, and trims the heap whenever 128 KiB lie free at its top, so a
training step that builds and drops tensors of tens of MB (a paper-size micro-batch's attention
probabilities: 49 MB per layer for 8 sequences) faults every page in again on the next step.
Allocations up to 256 MiB now come from the heap, which is trimmed only past 64 MiB free.

Measured on this suite's 2-core CPU machine, one thread, the same command with glibc's defaults and
with these settings (system time / user time, peak RSS):

- ``gamer-bench perf gamer --repeat 2 --epoch-of <ShortVideoAD-size TOML>``: 196.0 / 513.7 s (38 %)
  -> 6.1 / 531.5 s (1 %); 6.75 -> 7.99 GB; GAMER with the paper's dropouts 348 -> 446 tokens/s.
- ``gamer-bench perf baselines --repeat 2``: 43.0 / 105.6 s (41 %) -> 10.5 / 101.7 s (10 %);
  5.85 -> 10.22 GB.
- ``gamer-bench run --table 2 --models gamer_sid --profile paper --max-steps 2`` on a ShortVideoAD-size
  TOML: 226.6 / 605.8 s (37 %) -> 28.9 / 616.2 s (5 %); 6.9 -> 15.4 GB.

Fragmented heap memory is never returned; keeping everything (no trim, a 1 GiB threshold) raised the
peaks further. Results do not change, only where memory comes from.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# mallopt parameters (malloc.h) and the values set.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
SETTINGS = {_M_MMAP_THRESHOLD: 256 << 20, _M_TRIM_THRESHOLD: 64 << 20}
# The same for processes started from this one (joblib workers), which read them at their start.
ENVIRONMENT = {"MALLOC_MMAP_THRESHOLD_": str(256 << 20), "MALLOC_TRIM_THRESHOLD_": str(64 << 20)}


OPT_IN = "GAMER_BENCH_KEEP_FREED_MEMORY"


def keep_freed_memory() -> bool:
    """With ``GAMER_BENCH_KEEP_FREED_MEMORY=1``, apply `SETTINGS` to this process's glibc malloc and
    `ENVIRONMENT` to its children, leaving any ``MALLOC_*`` variable the user set alone. Returns whether
    glibc took them (False when not asked, and on other C libraries)."""
    if os.environ.get(OPT_IN) != "1" or any(name in os.environ for name in ENVIRONMENT):
        return False  # not asked, or the user tunes malloc themselves
    os.environ.update(ENVIRONMENT)
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to tune
        return False
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return all(mallopt(parameter, value) == 1 for parameter, value in SETTINGS.items())
