"""Plots of the figure specs (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on CI or servers
import matplotlib.pyplot as plt  # noqa: E402

from benchmark.report import Document  # noqa: E402


def plot_leakage(doc: Document, path: Path) -> list[Path]:
    """Figure 2: one panel per dataset, ratio against k for the original and processed variants.

    Writes ``path`` (PNG) and the same plot as PDF beside it; returns both paths.
    """
    datasets = list(dict.fromkeys(r["dataset"] for r in doc.rows))
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.2 * len(datasets), 3.0), squeeze=False, sharey=True)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        for variant, style in (("original", "-o"), ("processed", "--s")):
            points = sorted(
                (r["k"], r["ratio"]) for r in doc.rows if r["dataset"] == dataset and r["variant"] == variant
            )
            if points:
                ks, ratios = zip(*points, strict=True)
                ax.plot(ks, ratios, style, label=variant, markersize=3)
        ax.set_title(dataset)
        ax.set_xlabel("k")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("ratio of LOO targets in the k most recent items")
    axes[0][0].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    pdf = path.with_suffix(".pdf")
    fig.savefig(pdf)
    plt.close(fig)
    return [path, pdf]
