"""Figure plots render from stored rows (PNG and PDF), skipping rows that were not run."""

from __future__ import annotations

from benchmark.document import Document
from benchmark.plots import plot_ranking_figure
from benchmark.rows import NOT_RUN
from benchmark.tables import SPECS


def rows(spec, value):
    out = []
    for evaluation in spec.evaluations:
        for row in spec.rows:
            metric = value(row, evaluation) if row.variant != "aug10" else NOT_RUN
            out.append(
                {
                    "dataset": "d",
                    "model": row.model,
                    "variant": row.variant,
                    "label": row.label,
                    "evaluation": evaluation.key,
                    "N@5": metric,
                    "N@10": metric,
                }
            )
    return out


def test_figure3_and_figure4_plots(tmp_path):
    for figure in ("figure-3", "figure-4"):
        spec = SPECS[figure]
        doc = Document(spec, "smoke", rows(spec, lambda r, e: 0.01 * len(r.variant) + 0.001 * len(e.key)))
        png, pdf = plot_ranking_figure(doc, tmp_path / f"{figure}.png")
        assert png.stat().st_size > 1000 and pdf.exists()
