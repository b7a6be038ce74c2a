r"""Builds the report of stored cells, table by table, with the paper's numbers beside ours: each table's
kind makes its documents (`benchmark.kinds`) from the shared building blocks (`benchmark.rows`:
grouping, marks, intervals and the comparison with the paper); `benchmark.render` writes them out as
Markdown, LaTeX, CSV or JSON.

A document is one table at one profile: the report never mixes profiles. Data-only tables
(Table 1, Figure 2) have no profile. A ranking row whose model has no stored result reads
"not run"; with several seeds a value reads "mean ± std" over seeds.

Our rows carry the paper's marks, drawn per column within each dataset and evaluation: bold = the
best row, underline = the best baseline (every row but GAMER's), and ▲ / ▼ where a GAMER row is
significantly better / worse than that best baseline on per-query values (`benchmark.stats`).
Markdown draws ``**bold**``, ``<u>underline</u>`` and the triangle; LaTeX ``\textbf``,
``\underline`` and ``$^{\blacktriangle}$``; JSON keeps each row's ``marks`` as they are; CSV keeps
the plain values and adds a last column ``marks`` listing ``<column>=<words>`` per marked value,
the words being ``bold``, ``underline``, ``better`` and ``worse`` (e.g. ``N@10=bold+better``).
The paper's rows are never marked.

Where the paper reports the same row (metric tables, Table 10, Table 6's size and epochs), the
paper's line follows ours, then a line "Δ vs paper" with (ours - paper) / paper per column; JSON
keeps it per row under ``vs_paper``. The data tables (Tables 1 and 9, Figure 2) describe other
datasets than the paper's, so they put the paper's numbers beside ours without a difference.

Each of our metric values carries its number of queries and a 95 % percentile-bootstrap interval
over queries (each query's mean over seeds): JSON rows keep ``queries`` and ``ci``, CSV adds a
``queries`` column and two per metric, Markdown and LaTeX show ``value ± half-width`` when asked
(``benchmark.render.render(..., ci=True)``, ``gamer-bench report --ci``). Outside smoke, a table's header states the
verdict of each of the paper's claims that rests on it (`benchmark.claims`).
"""

from __future__ import annotations

from pathlib import Path

from benchmark.claims import claim_lines
from benchmark.document import Document
from benchmark.kinds import kind_of
from benchmark.rows import check_one_dataset_per_name
from benchmark.store import stored_cells
from benchmark.tables import SPECS, TableSpec


def documents_for(spec: TableSpec, root: Path) -> list[Document]:
    """The documents of one table from the cells stored under ``root``, with the verdicts of the paper's
    claims that rest on it in each header (none at smoke, whose rows are never compared)."""
    cells = stored_cells(root, spec.id)
    check_one_dataset_per_name(spec, cells)
    documents = kind_of(spec).documents(spec, cells)
    for doc in documents:
        if doc.profile not in (None, "smoke"):
            doc.header += claim_lines(spec.id, root, doc.profile)
    return documents


def all_documents(root: Path, ids: list[str] | None = None) -> list[Document]:
    """Documents of the given table ids (every registered one by default), in registry order."""
    chosen = ids or list(SPECS)
    return [doc for table_id in chosen for doc in documents_for(SPECS[table_id], root)]
