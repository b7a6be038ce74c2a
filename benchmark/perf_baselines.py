"""``gamer-bench perf baselines``: our SASRec training loop against RecBole's own, and full-ranking evaluation.

Both sides train the same network, RecBole's ``SASRec`` class, with the same hyperparameters (the
registry's ``sasrec`` profile), the same batch size and the same optimiser (AdamW, learning rate and
weight decay of the profile), on the same training interactions (the session-wise split's
training part), in one process with the same torch threads. What differs is the loop around it:

- **ours**: `baselines.discriminative.SequentialRecommender._train_epoch`; its samples are every
  training interaction outside its user's first session, with the user's earlier sessions as the
  history (cut to ``max_len``), padded to the longest history of the batch.
- **RecBole**: ``Trainer._train_epoch`` over RecBole's own training DataLoader, built by ``Config``
  -> ``create_dataset`` -> ``data_preparation`` from the same interactions written as an atomic
  ``.inter`` file; its samples are RecBole's prefix augmentation (every interaction but a user's
  first, with all earlier interactions as the history, the last two per user held out by its
  leave-one-out split), always padded to ``MAX_ITEM_LIST_LENGTH``.

A timed round is a fixed number of sequences (whole batches) on each side; an untimed round of
warm-up comes first, and the best of ``repeat`` rounds is kept. Evaluation is full ranking, top 10, over
the same number of users: ours is `recommend` on the test queries of every behavior, RecBole's is
``Trainer.evaluate`` (``full_sort_predict``, padding masked, top 10, one cheap metric) on the last
sequence of each user of its own split.

RecBole's Config and Trainer need shims on this stack (``../shared/reference/recbole-probe.md``):
numpy-1 aliases, a clean ``sys.argv``, ``gpu_id = ""`` and a scratch working directory (the Trainer
writes ``saved/`` and ``log_tensorboard/`` into the cwd). They are applied around the RecBole part
only, and everything is restored afterwards.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tabulate import tabulate

from baselines import registry
from baselines.discriminative import SequentialRecommender
from protocols.interactions import Interactions
from protocols.splits import SessionSplit

MODEL = "sasrec"
TOP_K = 10
# Model hyperparameters of the profile that RecBole's Config takes under the same name.
RECBOLE_MODEL_KEYS = (
    "n_layers",
    "n_heads",
    "hidden_size",
    "inner_size",
    "hidden_dropout_prob",
    "attn_dropout_prob",
    "hidden_act",
    "layer_norm_eps",
    "initializer_range",
)
# What RecBole's Config.compatibility_settings and the probe's shim add to numpy 2 (restored afterwards).
_NUMPY_ALIASES = (
    "float_",
    "complex_",
    "unicode_",
    "bool",
    "int",
    "float",
    "complex",
    "object",
    "str",
    "long",
    "unicode",
)


@dataclass(frozen=True)
class LoopRates:
    """One training and evaluation loop, measured."""

    train_rate: float  # sequences/s
    eval_rate: float  # users/s
    available: int  # training sequences the loop builds from the log
    mean_length: float  # mean history length of those sequences
    optimiser: str


@dataclass(frozen=True)
class Comparison:
    ours: LoopRates
    recbole: LoopRates
    sequences: int  # per timed round, on each side
    batch_size: int
    eval_users: int
    n_items: int  # items scored by both (padding excluded)
    repeat: int


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _best(repeat: int, fn: Callable[[], object]) -> float:
    fn()  # warm-up, not timed
    return min(_timed(fn) for _ in range(repeat))


# ---- ours -------------------------------------------------------------------------------------------


def our_recommender(train: Interactions, dims: str, seed: int) -> tuple[SequentialRecommender, torch.optim.Optimizer]:
    """The ``sasrec`` row set up as `DiscriminativeRecommender.fit` sets it up, before its first epoch."""
    rec = registry.get(MODEL).build(dims, seed)
    return rec, rec.prepare(train)


def our_epoch(rec: SequentialRecommender, optimizer: torch.optim.Optimizer, sequences: int, seed: int):
    """A callable training ``sequences`` random samples, as `fit` runs an epoch."""
    rng = np.random.default_rng(seed)

    def run() -> None:
        rec.training["samples_per_epoch"] = sequences
        rec.module_.train()
        rec._train_epoch(optimizer, rng)

    return run


# ---- RecBole ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def recbole_environment(folder: Path) -> Iterator[None]:
    """The shims RecBole's Config/Trainer need here, undone on exit: numpy-1 aliases, an empty
    ``sys.argv`` tail, ``CUDA_VISIBLE_DEVICES`` as it was, ``folder`` as the cwd, warnings quiet."""
    saved_numpy = {name: np.__dict__[name] for name in _NUMPY_ALIASES if name in np.__dict__}
    saved_argv, saved_cwd = sys.argv, os.getcwd()
    saved_cuda = os.environ.get("CUDA_VISIBLE_DEVICES")
    for name, value in {"float_": np.float64, "complex_": np.complex128, "unicode_": np.str_}.items():
        if name not in np.__dict__:
            setattr(np, name, value)
    sys.argv = sys.argv[:1]
    os.chdir(folder)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        if saved_cuda is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = saved_cuda
        for name in _NUMPY_ALIASES:
            if name in saved_numpy:
                setattr(np, name, saved_numpy[name])
            elif name in np.__dict__:
                delattr(np, name)


def write_atomic(train: Interactions, folder: Path, name: str) -> None:
    """``name.inter`` (user_id:token, item_id:token, timestamp:float; canonical row order) and
    ``name.item`` (every catalogue item, so RecBole scores as many items as we do)."""
    folder.mkdir(parents=True)
    with open(folder / f"{name}.inter", "w") as out:
        out.write("user_id:token\titem_id:token\ttimestamp:float\n")
        np.savetxt(out, np.stack([train.user, train.item, train.timestamp], axis=1), fmt="%d", delimiter="\t")
    with open(folder / f"{name}.item", "w") as out:
        out.write("item_id:token\n")
        np.savetxt(out, np.arange(train.n_items), fmt="%d")


def recbole_config_dict(rec: SequentialRecommender, folder: Path) -> dict[str, Any]:
    t = rec.training
    return {
        "data_path": str(folder),
        "checkpoint_dir": str(folder / "saved"),
        "gpu_id": "",
        "use_gpu": False,
        "worker": 0,
        "show_progress": False,
        "state": "ERROR",
        "save_dataset": False,
        "save_dataloaders": False,
        "log_wandb": False,
        "load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id"]},
        "MAX_ITEM_LIST_LENGTH": t["max_len"],
        **{key: rec.model_hyperparameters[key] for key in RECBOLE_MODEL_KEYS},
        "loss_type": "CE",
        "train_neg_sample_args": None,
        "train_batch_size": t["batch_size"],
        "learner": "adamw",
        "learning_rate": t["learning_rate"],
        "weight_decay": t["weight_decay"],
        "shuffle": True,
        # Leave-one-out on the augmented sequences, full ranking, one cheap metric.
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
        "metrics": ["Hit"],
        "topk": [TOP_K],
        "valid_metric": f"Hit@{TOP_K}",
        "eval_batch_size": t["eval_batch_size"],
    }


class FirstSequences:
    """The first ``n`` sequences of a RecBole training DataLoader (a new shuffle per iteration),
    the last batch cut so that exactly ``n`` are trained on; ``seen`` counts them."""

    def __init__(self, loader, n: int) -> None:
        self.loader, self.n, self.seen = loader, n, 0

    def __iter__(self):
        left = self.n
        for batch in self.loader:
            if left <= 0:
                return
            batch = batch[:left] if len(batch) > left else batch
            left -= len(batch)
            self.seen += len(batch)
            yield batch


@dataclass
class RecBoleSide:
    trainer: Any
    train_data: Any
    test_data: Any
    config: Any

    def epoch(self, sequences: int) -> Callable[[], None]:
        counter = itertools.count(1)

        def run() -> None:
            batches = FirstSequences(self.train_data, sequences)
            self.trainer._train_epoch(batches, next(counter))
            if batches.seen != sequences:
                raise RuntimeError(f"RecBole trained on {batches.seen} sequences, not {sequences}")

        return run

    def evaluation(self, n_users: int) -> Callable[[], None]:
        from recbole.data.dataloader import FullSortEvalDataLoader

        dataset = self.test_data._dataset
        loader = FullSortEvalDataLoader(
            self.config, dataset.copy(dataset.inter_feat[:n_users]), self.test_data._sampler, shuffle=False
        )
        return lambda: self.trainer.evaluate(loader, load_best_model=False)


def recbole_side(rec: SequentialRecommender, train: Interactions, folder: Path, seed: int) -> RecBoleSide:
    """RecBole's pipeline on ``train``: Config -> create_dataset -> data_preparation -> SASRec -> Trainer."""
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer

    name = "gamer_bench_perf"
    write_atomic(train, folder / name, name)
    config = Config(model="SASRec", dataset=name, config_dict=recbole_config_dict(rec, folder) | {"seed": seed})
    dataset = create_dataset(config)
    train_data, _, test_data = data_preparation(config, dataset)
    torch.manual_seed(seed)
    model = SASRec(config, train_data._dataset).to(config["device"])
    return RecBoleSide(Trainer(config, model), train_data, test_data, config)


# ---- the comparison ---------------------------------------------------------------------------------


def measure(inter: Interactions, *, repeat: int, dims: str, sequences: int, seed: int = 0) -> Comparison:
    """Both loops on ``inter``'s session-wise split: ``sequences`` per timed round (whole batches where
    the logs allow), the best of ``repeat``."""
    split = SessionSplit.from_interactions(inter)
    train, test = split.train, split.queries("test")
    rec, optimizer = our_recommender(train, dims, seed)
    t = rec.training
    ours_lengths = np.minimum(rec.samples_.history_end - rec.samples_.history_start, t["max_len"])

    with tempfile.TemporaryDirectory(prefix="gamer-bench-perf-") as scratch, recbole_environment(Path(scratch)):
        side = recbole_side(rec, train, Path(scratch), seed)
        try:
            recbole_train = side.train_data._dataset
            recbole_lengths = recbole_train.inter_feat["item_length"].numpy()
            n = min(sequences, len(rec.samples_), len(recbole_train))
            if n >= t["batch_size"]:
                n -= n % t["batch_size"]  # whole batches: the same steps and batch shapes on both sides
            n_users = min(len(test), len(side.test_data._dataset))
            optimiser = f"AdamW (lr {t['learning_rate']:g}, weight decay {t['weight_decay']:g})"

            ours_train = n / _best(repeat, our_epoch(rec, optimizer, n, seed))
            queries = test.select(np.arange(len(test)) < n_users)
            ours_eval = n_users / _best(repeat, lambda: rec.recommend(queries, TOP_K))

            recbole_train_rate = n / _best(repeat, side.epoch(n))
            recbole_eval = n_users / _best(repeat, side.evaluation(n_users))
            recbole_optimiser = type(side.trainer.optimizer).__name__
            if recbole_optimiser != "AdamW":
                raise RuntimeError(f"RecBole built {recbole_optimiser}, not AdamW")
        finally:
            side.trainer.tensorboard.close()
    return Comparison(
        ours=LoopRates(ours_train, ours_eval, len(rec.samples_), float(ours_lengths.mean()), optimiser),
        recbole=LoopRates(
            recbole_train_rate, recbole_eval, len(recbole_train), float(recbole_lengths.mean()), optimiser
        ),
        sequences=n,
        batch_size=t["batch_size"],
        eval_users=n_users,
        n_items=train.n_items,
        repeat=repeat,
    )


def table(result: Comparison) -> str:
    ours, theirs = result.ours, result.recbole
    rows = [
        [
            "ours (SequentialRecommender._train_epoch; recommend)",
            f"{ours.train_rate:,.0f}",
            f"{ours.eval_rate:,.0f}",
            f"{ours.available:,} (history = earlier sessions, mean length {ours.mean_length:.1f})",
            ours.optimiser,
        ],
        [
            "RecBole (Trainer._train_epoch; Trainer.evaluate)",
            f"{theirs.train_rate:,.0f}",
            f"{theirs.eval_rate:,.0f}",
            f"{theirs.available:,} (prefix augmentation, mean length {theirs.mean_length:.1f})",
            theirs.optimiser,
        ],
        [
            "ours / RecBole",
            f"{ours.train_rate / theirs.train_rate:.2f}x",
            f"{ours.eval_rate / theirs.eval_rate:.2f}x",
            "",
            "",
        ],
    ]
    headers = [
        "loop",
        "train sequences/s",
        f"eval users/s (full ranking, top {TOP_K})",
        "training sequences built from the log",
        "optimiser",
    ]
    return tabulate(rows, headers=headers, tablefmt="github")


def main(*, repeat: int = 3, dims: str = "paper", sequences: int = 8192) -> int:
    from protocols import catalog

    name = "retailrocket" if catalog.resolve("retailrocket").available() else "synthetic"
    inter = catalog.resolve(name).load()
    result = measure(inter, repeat=repeat, dims=dims, sequences=sequences)
    profile = registry.get(MODEL).hyperparameters(dims)
    print(table(result))
    print(
        f"\n{name}, SASRec `{dims}` profile (hidden {profile['hidden_size']}, {profile['n_layers']} layers, "
        f"{profile['n_heads']} heads, inner {profile['inner_size']}, max length {profile.get('max_len', 50)}), "
        f"{result.n_items:,} items, batch {result.batch_size}; {result.sequences:,} sequences per timed round, "
        f"{result.eval_users:,} users evaluated; one warm-up, best of {result.repeat}. "
        f"torch threads {torch.get_num_threads()}, {os.cpu_count()} cores visible."
    )
    return 0
