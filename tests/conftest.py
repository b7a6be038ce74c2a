"""Shared pytest fixtures. Each block belongs to one test module family; keep them separate."""

from __future__ import annotations

from collections.abc import Callable, Iterator
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


# ---- LaTeX that report and claims write (tests/test_report.py, tests/test_claims.py) -------------


@pytest.fixture
def compile_latex(tmp_path: Path) -> Callable[[str, str], Path]:
    """``compile_latex(body, packages)``: the PDF pdflatex made of ``body`` in an article, or a failure
    with its log. Without pdflatex the test skips, except under ``GAMER_BENCH_REQUIRE_LATEX=1`` (CI,
    which installs it), where it fails: CI never skips the compilation."""
    import os
    import shutil
    import subprocess

    if shutil.which("pdflatex") is None:
        if os.environ.get("GAMER_BENCH_REQUIRE_LATEX") == "1":
            pytest.fail("pdflatex is not installed, and GAMER_BENCH_REQUIRE_LATEX=1 requires it (.ci/run installs it)")
        pytest.skip("pdflatex is not installed (.ci/run installs texlive-latex-base and -recommended)")

    def compile_(body: str, packages: str) -> Path:
        source = (
            f"\\documentclass{{article}}\n\\usepackage{{{packages}}}\n\\begin{{document}}\n{body}\n\\end{{document}}\n"
        )
        (tmp_path / "doc.tex").write_text(source)
        done = subprocess.run(
            ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:]
        pdf = tmp_path / "doc.pdf"
        assert pdf.stat().st_size > 0
        return pdf

    return compile_


# ---- torch threads (tests of small torch models) -------------------------------------------------


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread for the module's tests, restored afterwards. The models under test are tiny:
    threads gain nothing there, and on a busy 2-core machine OpenMP's hand-offs made a 68 x 32 matmul
    take 23 ms instead of 13 us (and the RQ-VAE tests 90 s instead of 9 s)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
