"""`gamer-bench perf baselines` on a tiny synthetic log: both loops run and give positive rates.

The figures themselves are for `gamer-bench perf baselines` on a quiet machine, not for the tests.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from benchmark import perf_baselines
from protocols.synthetic import SyntheticConfig, generate


def test_both_loops_measured_and_shims_undone(one_thread):
    pytest.importorskip("recbole")
    inter = generate(SyntheticConfig(n_users=30, n_items=120, seed=1))
    argv, cwd = list(sys.argv), os.getcwd()
    result = perf_baselines.measure(inter, repeat=1, dims="smoke", sequences=32)
    assert result.sequences == 32 and result.eval_users > 0
    for loop in (result.ours, result.recbole):
        assert loop.train_rate > 0 and loop.eval_rate > 0
        assert loop.available >= 32 and loop.optimiser.startswith("AdamW")
    text = perf_baselines.table(result)
    assert "ours (SequentialRecommender" in text and "RecBole (Trainer._train_epoch" in text
    assert "ours / RecBole" in text
    # RecBole's shims are undone: numpy 2 without its removed aliases, argv and cwd as they were.
    assert sys.argv == argv and os.getcwd() == cwd
    assert "float" not in np.__dict__ and "float_" not in np.__dict__
