"""The numeric precision a cell trains and decodes in: fp32 on the CPU, bf16 autocast on CUDA.

On the CPU every model runs in fp32, and a seed fixes every result. On CUDA the default is bf16
(`torch.autocast` with bfloat16, and TF32 for the matmuls left in fp32); ``--precision fp32`` asks
for plain fp32 (TF32 off). The runner enters `precision_context` around a cell's fit and its ranking,
so one place covers every torch model.

What stays in fp32 under bf16, and where:
- softmax, log-softmax, cross-entropy, layer norm: torch's autocast runs them in fp32 (its fp32 op
  list), so every row's loss and beam search's log-probabilities (`gamer.beam_search`) are fp32;
- RMSNorm: `gamer.model.RMSNorm` and `baselines.tiger.RMSNorm` compute in fp32 themselves;
- RoPE angles: `gamer.model.rotary_cos_sin` computes them in at least fp32;
- MBGen's expert outputs are cast back to the residual stream's dtype (`baselines.mbgen`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

PRECISIONS = ("fp32", "bf16")


def effective(requested: str | None, cuda: bool) -> str:
    """The precision a cell runs in: fp32 on the CPU whatever was asked; on CUDA the request, bf16 by default."""
    if requested is not None and requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {requested!r}")
    if not cuda:
        return "fp32"
    return requested or "bf16"


@contextlib.contextmanager
def precision_context(precision: str) -> Iterator[None]:
    """bf16: CUDA autocast to bfloat16 and TF32 matmuls; fp32: nothing on the CPU, TF32 off on CUDA."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    import torch

    if not torch.cuda.is_available():
        if precision != "fp32":
            raise ValueError("bf16 runs on CUDA only; on the CPU every model runs in fp32")
        yield
        return
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "bf16"
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16"):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn
