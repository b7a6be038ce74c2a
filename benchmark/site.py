"""A browsable results page: every stored table in every format, every plot, and a Markdown index.

``gamer-bench report --all --output-dir DIR`` writes::

    DIR/index.md                      links to everything below, plots shown inline
    DIR/<table>[-<profile>].md|.tex|.csv|.json
    DIR/<figure>[-<profile>].png|.pdf

One file per table and profile, so a page never mixes profiles. Tables with nothing to run (the
online A/B test of Table 11) appear with the paper's numbers and the reason.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from benchmark.document import Document
from benchmark.kinds import kind_of
from benchmark.render import FORMATS, render
from benchmark.report import all_documents
from benchmark.store import code_version

SUFFIX = {"markdown": "md", "latex": "tex", "csv": "csv", "json": "json"}


def plot(doc: Document, folder: Path) -> list[Path]:
    """The plots of a figure document (PNG and PDF), none for a table."""
    return kind_of(doc.spec).plot(doc, folder / f"{doc.stem}.png")


def write_site(root: Path, folder: Path, *, profile: str | None = None) -> Path:
    """Render every stored table (of ``profile`` only, when given) into ``folder``; return the index."""
    folder.mkdir(parents=True, exist_ok=True)
    documents = all_documents(root)
    if profile:
        documents = [d for d in documents if d.profile in (None, profile)]
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# gamer-bench results",
        "",
        f"Rendered {stamp} from `{root}` by code version `{code_version()}`. Each table puts the paper's",
        "numbers beside ours; a row without a stored result reads *not run*.",
        "",
    ]
    for doc in documents:
        stem = doc.stem
        for fmt in FORMATS:
            (folder / f"{stem}.{SUFFIX[fmt]}").write_text(render([doc], fmt))
        title = doc.spec.id.replace("-", " ").capitalize() + f": {doc.spec.title}"
        links = " · ".join(f"[{fmt}]({stem}.{SUFFIX[fmt]})" for fmt in FORMATS)
        lines.append(f"## {title}" + (f" ({doc.profile})" if doc.profile else ""))
        lines += ["", links, ""]
        for path in plot(doc, folder):
            if path.suffix == ".png":
                lines += [f"![{stem}]({path.name})", ""]
            else:
                lines += [f"[{path.suffix[1:].upper()}]({path.name})", ""]
    index = folder / "index.md"
    index.write_text("\n".join(lines))
    return index
