"""Plots of the figure specs (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on CI or servers
import matplotlib.pyplot as plt  # noqa: E402

from benchmark.document import Document  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> list[Path]:
    """Write ``path`` (PNG) and the same figure as PDF beside it; return both paths."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    pdf = path.with_suffix(".pdf")
    fig.savefig(pdf)
    plt.close(fig)
    return [path, pdf]


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
    axes[0][0].set_ylabel("targets among k most recent")
    axes[0][0].legend()
    return _save(fig, path)


def _rate(evaluation: str) -> float:
    """Test-time dropout rate of an evaluation key (``target-behavior/drop-0.25`` -> 0.25; none -> 0)."""
    _, _, perturbation = evaluation.partition("/")
    return float(perturbation.removeprefix("drop-")) if perturbation.startswith("drop-") else 0.0


def plot_ranking_figure(doc: Document, path: Path, metrics: tuple[str, ...] = ("N@5", "N@10")) -> list[Path]:
    """Figures 3 and 4 from their stored rows: one panel per metric.

    Figure 3: NDCG against augmentation times x, one line per task. Figure 4: NDCG against the
    test-time dropout rate, one line per augmentation times x. Rows not run are left out.
    """
    rows = [r for r in doc.rows if isinstance(r.get(metrics[0]), float)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics), 3.0), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        if doc.spec.id == "figure-4":
            for variant in dict.fromkeys(r["variant"] for r in rows):
                points = sorted((_rate(r.get("evaluation", "")), r[metric]) for r in rows if r["variant"] == variant)
                ax.plot(*zip(*points, strict=True), "-o", markersize=3, label=variant.replace("aug", "x = "))
            ax.set_xlabel("test-time dropout rate r")
        else:
            for evaluation in dict.fromkeys(r.get("evaluation", "") for r in rows):
                points = sorted(
                    (int(r["variant"].removeprefix("aug")), r[metric])
                    for r in rows
                    if r.get("evaluation", "") == evaluation
                )
                ax.plot(*zip(*points, strict=True), "-o", markersize=3, label=evaluation or "target-behavior")
            ax.set_xlabel("augmentation times x")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    label = "smoke: pipeline check, models undertrained" if doc.profile == "smoke" else doc.profile
    fig.suptitle(f"{doc.spec.id} [{label}]", fontsize=9)
    return _save(fig, path)
