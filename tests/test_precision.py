"""Precision: fp32 on the CPU whatever is asked, bf16 autocast on CUDA by default, recorded per cell."""

from __future__ import annotations

import pytest

from benchmark import runner
from benchmark.store import Cell, load_cell
from benchmark.tables import SPECS
from gamer.precision import effective, precision_context


@pytest.mark.parametrize(
    ("requested", "cuda", "expected"),
    [(None, False, "fp32"), ("bf16", False, "fp32"), ("fp32", False, "fp32"), (None, True, "bf16"),
     ("fp32", True, "fp32"), ("bf16", True, "bf16")],
)  # fmt: skip
def test_the_cpu_runs_fp32_and_cuda_defaults_to_bf16(requested, cuda, expected):
    assert effective(requested, cuda) == expected


def test_an_unknown_precision_and_bf16_on_the_cpu_are_errors():
    with pytest.raises(ValueError, match="precision must be one of"):
        effective("fp16", True)
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="CUDA only"), precision_context("bf16"):
        pass
    with precision_context("fp32"):
        assert not torch.is_autocast_enabled("cuda")


def test_a_cpu_cell_asked_for_bf16_runs_fp32_says_so_and_keeps_its_configuration(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    spec = SPECS["table-2"]
    kwargs = {"datasets": ["synthetic"], "models": ["rule_based"], "progress": False}
    report = runner.run(spec, tmp_path, options=runner.CellOptions(precision="bf16"), **kwargs)
    assert "table-2: bf16 runs on CUDA only; the cells run in fp32" in report.notes
    stored = load_cell(Cell("table-2", "synthetic", "rule_based", "smoke", 0).path(tmp_path))
    assert stored["provenance"]["precision"] == "fp32" and "precision" not in stored["provenance"]["config"]
    assert runner.run(spec, tmp_path, **kwargs).reused  # an fp32 cell is the same cell with or without the flag
