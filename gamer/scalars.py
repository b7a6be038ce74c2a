"""TensorBoard scalars of a training cell (`gamer-bench run --tensorboard DIR`).

The runner opens a `tensorboard` context around each cell it computes; every epoch line that the
training loops report (`gamer.training.report_epoch`) then also goes to an event file in that cell's
folder: ``train/loss``, ``validation/<criterion>``, ``validation/best <criterion>`` and ``time/seconds``,
at step = epoch. A cell that resumes from a checkpoint hides what its killed run logged from the epoch
it resumes at (TensorBoard's ``purge_step``), so each epoch shows once. Outside the context nothing is
written and TensorBoard is never imported.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

_folder: ContextVar[Path | None] = ContextVar("gamer_bench_tensorboard_folder", default=None)
_writer: ContextVar[Any] = ContextVar("gamer_bench_tensorboard_writer", default=None)


@contextlib.contextmanager
def tensorboard(folder: Path | None) -> Iterator[None]:
    """Epochs reported inside this context are written as TensorBoard events under ``folder`` (None: not)."""
    folder_token, writer_token = _folder.set(folder), _writer.set(None)
    try:
        yield
    finally:
        writer = _writer.get()
        if writer is not None:
            writer.close()
        _writer.reset(writer_token)
        _folder.reset(folder_token)


def add_epoch(epoch: int, scalars: dict[str, float]) -> None:
    """Write one epoch's scalars, opening the cell's event file at its first epoch (so that a resumed
    cell purges the killed run's events from there on)."""
    folder = _folder.get()
    if folder is None:
        return
    writer = _writer.get()
    if writer is None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(folder), purge_step=epoch)
        _writer.set(writer)
    for tag, value in scalars.items():
        writer.add_scalar(tag, value, epoch)
    writer.flush()  # a long cell shows each epoch as it ends
