"""README's results section: rendered from the published cells, and current."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import store_ranking_cell

from benchmark import readme
from benchmark.cli import main
from benchmark.store import REPO_ROOT
from benchmark.tables import TABLE2_METRICS


def test_the_readme_shows_what_the_published_cells_render_to() -> None:
    """CI's check: regenerate with `gamer-bench readme` after committing published cells."""
    assert readme.current(REPO_ROOT / "README.md"), "README.md's results section is stale: run `gamer-bench readme`"


def test_readme_rewrites_only_its_section_and_check_notices_a_stale_one(tmp_path, capsys) -> None:
    path = tmp_path / "README.md"
    path.write_text(f"# title\n\nbefore\n{readme.START}\nold numbers\n{readme.END}\nafter\n")
    cells = tmp_path / "cells-root"
    values = dict.fromkeys(TABLE2_METRICS, (np.arange(20) % 5 == 0).astype(float))
    store_ranking_cell(cells, "sasrec", 0, values, np.arange(20), profile="cpu")
    args = ["--readme", str(path), "--results-dir", str(cells)]
    assert main(["readme", "--check", *args]) == 1
    assert "stale" in capsys.readouterr().err
    assert main(["readme", *args]) == 0
    text = path.read_text()
    assert text.startswith("# title\n\nbefore\n") and text.endswith(f"{readme.END}\nafter\n")
    assert "old numbers" not in text and "0.2000 ± " in text and "\n## C1" not in text and "\n#### C1" in text
    assert main(["readme", "--check", *args]) == 0


def test_a_readme_without_its_markers_is_an_error_naming_them(tmp_path) -> None:
    path = tmp_path / "README.md"
    path.write_text("# no section\n")
    with pytest.raises(ValueError, match="expected one line"):
        readme.update(path, tmp_path)
