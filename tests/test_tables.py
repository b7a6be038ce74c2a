"""The paper's numbers, typed in once per table under ``benchmark/paper_numbers/``, and the specs built on them."""

from __future__ import annotations

import pytest

from benchmark import tables
from benchmark.tables import SPECS, paper_numbers


def test_values_read_as_numbers_and_names_as_text():
    gamer = next(r for r in paper_numbers("table-2") if r["model"] == "gamer_sid")
    assert gamer["label"] == "GAMER (SID)" and gamer["group"] == "Multi-Behavior Generative Recommendation"
    assert gamer["N@10"] == 0.0856 and isinstance(gamer["N@10"], float)  # Table 2, GAMER (SID), N@10
    mbgen = paper_numbers("table-6")[0]
    assert (mbgen["parameters"], mbgen["hours"], mbgen["epochs"]) == (26.80e6, 100, 154)
    assert isinstance(mbgen["hours"], int) and mbgen["variant"] == "aug0"
    assert paper_numbers("table-11")[0]["CVR"] == "+2.5%"  # a relative change, kept as the paper prints it
    assert paper_numbers("table-1")[0] == {
        "dataset": "ShortVideoAD",
        "users": 48779,
        "items": 168530,
        "sessions": 1874719,
        "interactions": 7877083,
    }


def test_each_file_belongs_to_a_table_and_its_columns_to_that_table():
    files = {path.stem for path in tables.PAPER_NUMBERS.glob("*.csv")}
    assert files == {spec.id for spec in SPECS.values() if spec.paper}
    for table_id in files:
        spec = SPECS[table_id]
        values = set(spec.paper[0]) - {"group", "model", "label", "variant", "evaluation", "dataset"}
        known = set(spec.columns) | {"parameters", "hours", "epochs"}  # Table 6 reports hours, we seconds
        assert values <= known, (table_id, values - known)


def test_ranking_rows_come_in_the_papers_order_with_their_variants():
    rows = SPECS["table-5"].rows
    assert [r.key for r in rows] == [
        "qwen3_sid@aug0",
        "qwen3_sid@aug4",
        "gamer_sid@aug0",
        "gamer_sid@aug4",
        "mbgen_sid@aug0",
        "mbgen_sid@aug1",
    ]
    assert dict(rows[1].overrides) == {"augment_times": 4}
    assert [r.model for r in SPECS["table-2"].rows][-1] == "gamer_sid"


def test_a_short_line_names_its_file_and_line(tmp_path, monkeypatch):
    (tmp_path / "table-x.csv").write_text("model,label,N@10\nsasrec,SASRec,0.05\nbert4rec,BERT4Rec\n")
    monkeypatch.setattr(tables, "PAPER_NUMBERS", tmp_path)
    with pytest.raises(ValueError, match=r"table-x\.csv, line 3: expected the 3 columns of its header"):
        paper_numbers("table-x")
