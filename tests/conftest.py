"""Shared pytest fixtures. Each block belongs to one test module family; keep them separate."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

# ---- protocols.formats: the real data files (tests/test_formats.py) -----------------------------


@pytest.fixture(scope="session")
def real_file() -> Callable[[str], Path]:
    """``real_file("retailrocket/interactions.csv")``: the path in the data folder, or skip.

    The data folder is ``$GAMER_BENCH_DATA``, else ``<repo root>/../shared/data``.
    """
    from protocols.catalog import data_dir

    def find(relative: str) -> Path:
        path = data_dir() / relative
        if not path.exists():
            pytest.skip(f"real data {path} is absent: set GAMER_BENCH_DATA to the shared data folder")
        return path

    return find


@pytest.fixture(scope="session")
def ml100k_inter() -> Path:
    """The ml-100k atomic file the recbole package ships, found without importing recbole, or skip."""
    from protocols.catalog import recbole_ml100k_path

    path = recbole_ml100k_path()
    if path is None or not path.exists():
        pytest.skip("recbole is not installed, so its ml-100k.inter is absent (pip install --no-deps recbole==1.2.1)")
    return path


# ---- end of protocols.formats block -------------------------------------------------------------
