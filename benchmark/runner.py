"""Expands a table spec into cells, runs them (joblib across processes), and stores each result.

A cell is reused when a stored result with the same configuration exists (``force`` recomputes).
Each cell loads its dataset itself, so cells are independent and can run in any process.
"""

from __future__ import annotations

import difflib
import inspect
import json
import os
import resource
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from joblib import Parallel, delayed, parallel_config
from tqdm import tqdm

from baselines import registry
from benchmark.cells import (
    RANKING_KS,
    dataset_identity,
    evaluation_queries,
    hyperparameters,
    load_dataset,
    rank,
    scores,
)
from benchmark.kinds import KINDS, kind_of
from benchmark.store import (
    Cell,
    CellError,
    code_version,
    load_cell,
    provenance,
    save_cell,
    training_code_version,
    training_record,
)
from benchmark.tables import SPECS, TableSpec
from gamer.checkpoint import DEFAULT_MINUTES, Checkpointing, checkpointing, progress_path
from gamer.precision import effective as effective_precision
from gamer.precision import precision_context
from gamer.scalars import tensorboard
from protocols.catalog import resolve
from protocols.splits import SessionSplit

BACKENDS = ("loky", "ray", "dask")


@dataclass(frozen=True)
class RunReport:
    computed: list[Cell]
    reused: list[Cell]
    skipped: list[str]
    notes: list[str]
    failed: list[str] = field(default_factory=list)  # "cell: error" for each cell that raised


def cell_config(spec: TableSpec, cell: Cell, precision: str = "fp32") -> dict[str, Any]:
    """What decides a cell's result: a stored cell is reused only when its configuration equals this.
    A precision other than fp32 (bf16 on CUDA) is part of it; fp32, the CPU's, is left implicit."""
    kind = kind_of(spec)
    config: dict[str, Any] = {"table": spec.id, "kind": spec.kind, "dataset": dataset_identity(cell.dataset)}
    if kind.trains:
        config |= {"precision": precision} if precision != "fp32" else {}
        config |= {
            "evaluations": [e.key for e in spec.evaluations] if kind.metric_rows else [],
            "model": cell.model,
            "variant": cell.variant,
            "profile": cell.profile,
            "hyperparameters": hyperparameters(spec, cell),
        }
        source = registry.get(cell.model).source
        config |= {"source": source} if source != "built-in" else {}  # a plugin's version: never reuse older
        config |= kind.config(spec)
    return config


def with_max_steps(hp: dict[str, Any], max_steps: int) -> dict[str, Any]:
    """A row's hyperparameters capped at ``max_steps`` optimiser steps: the key lives in ``training`` for
    the rows trained by `gamer.training.train_decoder` and at the top for the discriminative and graph
    rows; a row that does not train (Rule-Based) is left as it is.

    A row that accumulates gradients over micro-batches takes one micro-batch per rehearsal step: a step
    of the paper profile is 4096 sequences, hours on a CPU, while its peak memory is one micro-batch's
    (each frees its activations before the next), which is what a rehearsal is there to find out."""
    if isinstance(hp.get("training"), dict):
        training = hp["training"] | {"max_steps": max_steps}
        if "micro_batch" in training:
            training["batch_size"] = min(training.get("batch_size", training["micro_batch"]), training["micro_batch"])
        return hp | {"training": training}
    return hp | {"max_steps": max_steps} if hp else hp


def _peak_memory() -> dict[str, float]:
    """The largest resident memory of this process so far, and the GPU's largest allocation if one trained."""
    peak = {
        "process peak RSS GB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9, 2)
    }  # KiB on Linux
    if _cuda_available():
        import torch

        peak["peak GPU GB"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
    return peak


def _step_batch(profile: dict[str, Any], rehearsed: dict[str, Any]) -> str:
    """What a rehearsal step trains on, against the profile's own step where they differ."""
    sizes = [
        (hp.get("training") if isinstance(hp.get("training"), dict) else hp).get("batch_size")
        for hp in (profile, rehearsed)
    ]
    if sizes[1] is None:
        return "-"
    return str(sizes[1]) if sizes[0] == sizes[1] else f"{sizes[1]} (profile: {sizes[0]})"


def rehearse(
    spec: TableSpec,
    *,
    datasets: Iterable[str] | None,
    models: Iterable[str] | None,
    profile: str,
    seed: int,
    max_steps: int,
    users: int = 16,
) -> list[dict[str, Any]]:
    """Each row of a ranking table trained for at most ``max_steps`` optimiser steps and validated and
    tested on its first ``users`` queries: a configuration checked end to end in minutes before hours
    are spent on it. Nothing is stored; the returned lines say how far each row got and what it cost."""
    if spec.kind != "ranking":
        raise ValueError(f"--max-steps rehearses the ranking tables; {spec.id} is a {spec.kind} table")
    if max_steps < 1:
        raise ValueError(f"--max-steps must be >= 1, got {max_steps}")
    cells, _ = expand(spec, datasets, models, profile, [seed])
    lines = []
    for cell in cells:
        start = time.perf_counter()
        split = SessionSplit.from_interactions(load_dataset(cell.dataset))
        valid = split.queries("valid")  # every query of the first users with a target-behavior one
        target_users = np.unique(valid.user[valid.behavior == split.interactions.schema.target_level])[:users]
        valid = valid.select(np.isin(valid.user, target_users))
        queries, _ = evaluation_queries(split, spec.evaluations[0], cell.seed)
        queries = queries.select(np.arange(len(queries)) < users)
        loaded = time.perf_counter()
        profile_hp = hyperparameters(spec, cell)
        hp = with_max_steps(profile_hp, max_steps)
        model = registry.get(cell.model).build(hp, cell.seed)
        with precision_context(effective_precision(None, _cuda_available())):
            model.fit(split.train, valid)
            fitted = time.perf_counter()
            ranked = model.recommend(queries, max(RANKING_KS))
        done = time.perf_counter()
        metric_means = scores(split, queries, ranked)["metrics"]
        record = training_record({"model": model.describe()})
        lines.append(
            {"row": cell.row_key, "dataset": cell.dataset, "step cap": max_steps if record else "-"}
            | {"sequences per step": _step_batch(profile_hp, hp)}
            | {"stopped by": record["stop_reason"] if record else "-", "data s": round(loaded - start, 1)}
            | {"fit s": round(fitted - loaded, 1), "test users": len(queries), "recommend s": round(done - fitted, 1)}
            | {"N@10 (rehearsal)": round(metric_means["N@10"], 4)}
            | _peak_memory()
        )
    return lines


@dataclass(frozen=True)
class CellOptions:
    """How cells run. Training checkpoints (`gamer.checkpoint`): every ``checkpoint_minutes`` and at each
    epoch end, beside the cell (``<profile>-seed<S>.ckpt``), deleted once the cell is stored unless
    ``keep_checkpoints``. ``precision`` (`gamer.precision`): fp32 or bf16, None = the device's default
    (bf16 on CUDA, fp32 on the CPU); `run` resolves it before the cells start. ``tensorboard``: a folder
    where each training cell writes its per-epoch scalars (`gamer.scalars`), in a subfolder per cell.
    ``plugins``: the ``--plugins`` modules (`benchmark.plugins`), registered again in each worker."""

    checkpoint_minutes: float = DEFAULT_MINUTES
    keep_checkpoints: bool = False
    precision: str | None = None
    tensorboard: Path | None = None
    plugins: tuple[str, ...] = ()  # `--plugins` modules, imported again by each worker process


def tensorboard_folder(cell: Cell, folder: Path) -> Path:
    """Where ``cell`` writes its TensorBoard events: ``<folder>/<table>/<dataset>/<row>/<profile>-seed<S>``."""
    return folder / cell.path(Path()).relative_to("cells").with_suffix("")


def checkpoint_path(cell: Cell, root: Path) -> Path:
    return cell.path(root).with_suffix(".ckpt")


def run_cell(spec: TableSpec, cell: Cell, root: Path, options: CellOptions = CellOptions()) -> list[str]:
    """Compute one cell, store it with its provenance, and return its notes (what filters removed).

    Its training resumes from the cell's checkpoint when a killed run left one for the same training
    (`_training_identity`) and training code (`training_code_version`), or from one another table's cell kept
    (``--keep-checkpoints``) for it: Table 7's GAMER then evaluates Table 2's trained GAMER instead
    of training it again. The provenance says whether it did, and from which cell. A model cell runs in
    ``options.precision`` (fp32 when unresolved), recorded in its provenance."""
    precision = options.precision or "fp32"
    config = cell_config(spec, cell, precision)
    kind_trains = kind_of(spec).trains  # the table's kind trains models; `trains`: this cell does
    trains = kind_trains and bool(cell.model)
    if trains:  # resumable under any commit that leaves the training code as it was
        what = {"training": _training_identity(config), "training_code": training_code_version()}
    else:
        what = {"config": config, "code_version": code_version()}
    key = json.dumps(what, sort_keys=True, default=str)
    path = checkpoint_path(cell, root)
    lent = _borrow_checkpoint(spec, cell, root, key, path) if trains and not path.exists() else None
    numerics = precision_context(precision) if kind_trains else nullcontext()
    events = tensorboard_folder(cell, options.tensorboard) if options.tensorboard and kind_trains else None
    with checkpointing(path, key, options.checkpoint_minutes) as saver, numerics, tensorboard(events):
        notes = _compute_and_store(spec, cell, root, config, saver, precision, lent)
    if lent is not None:
        notes = [f"{cell.describe()}: trained on from the checkpoint {lent.describe()} kept", *notes]
    saver.progress_path.unlink(missing_ok=True)
    if not options.keep_checkpoints:
        path.unlink(missing_ok=True)
    return notes


def _borrow_checkpoint(spec: TableSpec, cell: Cell, root: Path, key: str, path: Path) -> Cell | None:
    """Copy to ``path`` the checkpoint another table's cell of the same model left for the same training
    (the same ``key``), and return that cell; None when there is none. Training resumed from a kept
    final checkpoint redoes at most its last epoch, bit-exact on the CPU."""
    import pickle
    import shutil

    import torch

    for source in _same_model_elsewhere(spec, cell, lambda other: kind_of(other).trains):
        candidate = checkpoint_path(source, root)
        if not candidate.exists():
            continue
        try:
            state = torch.load(candidate, map_location="cpu", weights_only=True, mmap=True)
        except (OSError, RuntimeError, ValueError, pickle.UnpicklingError):
            continue  # unreadable (torn by a crash, or not a checkpoint): train without it
        if not isinstance(state, dict) or state.get("key") != key:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".tmp-{path.name}.{os.getpid()}")
        shutil.copyfile(candidate, partial)
        os.replace(partial, path)
        return source
    return None


def _same_model_elsewhere(spec: TableSpec, cell: Cell, tables: Callable[[TableSpec], bool]) -> Iterator[Cell]:
    """``cell`` as it would be in every other table that ``tables`` admits and that has a row of its model
    (one cell per variant of that row): where a stored result or a kept checkpoint may already hold its
    training."""
    for other in SPECS.values():
        if other.id != spec.id and tables(other):
            for variant in dict.fromkeys(row.variant for row in other.rows if row.model == cell.model):
                yield replace(cell, table=other.id, variant=variant)


class _RunningCells:
    """While cells run in several processes, shows on the run's bar the epoch each running cell has
    reached (from the progress files their training loops write, `gamer.checkpoint.Checkpointing.report`),
    refreshed every few seconds by a daemon thread."""

    def __init__(self, bar: tqdm, cells: list[Cell], root: Path, every: float = 5.0) -> None:
        self.bar, self.cells, self.root, self.every = bar, cells, root, every
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def line(self) -> str:
        parts = []
        for cell in self.cells:
            path = progress_path(checkpoint_path(cell, self.root))
            try:
                state = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # not started, finished, or being rewritten
            parts.append(f"{cell.row_key} s{cell.seed} e{state['epoch']}/{state['epochs']} best {state['best_epoch']}")
        return "; ".join(parts)

    def _watch(self) -> None:
        while not self.stop.wait(self.every):
            self.bar.set_postfix_str(self.line(), refresh=True)

    def __enter__(self) -> _RunningCells:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()


def _compute_and_store(
    spec: TableSpec,
    cell: Cell,
    root: Path,
    config: dict[str, Any],
    saver: Checkpointing,
    precision: str,
    lent: Cell | None = None,
) -> list[str]:
    timings: dict[str, float] = {}
    start = time.perf_counter()
    result = kind_of(spec).compute(spec, cell, timings, cell.path(root).with_suffix(""))
    timings["total_s"] = time.perf_counter() - start
    if saver.resumed:  # its training went on from a killed run's checkpoint: the timings cover both parts
        timings["before_resume_s"] = saver.earlier_s
        for key in ("fit_s", "total_s"):
            timings[key] = timings.get(key, 0.0) + saver.earlier_s
    prov = provenance(config, cell.seed, timings)
    if saver.resumed:
        prov["resumed_from_checkpoint"] = True
        if lent is not None:  # the training was another table's cell's, kept with --keep-checkpoints
            prov["checkpoint_from"] = asdict(lent)
    if kind_of(spec).trains:
        prov["precision"] = precision
    if result.get("model", {}).get("tokenizer"):
        prov["tokenizer"] = result["model"]["tokenizer"]  # which item IDs the run used, and how they were made
    if rank() == 0:  # under torchrun every rank computes the cell; one stores it
        save_cell(root, cell, result, prov)
    return result["notes"]


def expand(
    spec: TableSpec,
    datasets: Iterable[str] | None,
    models: Iterable[str] | None,
    profile: str,
    seeds: Iterable[int],
) -> tuple[list[Cell], list[str]]:
    """The cells a table needs, and the reasons anything asked for was left out.

    ``None`` means the table's own datasets / every row; a dataset the user named that cannot be
    found is an error (a table's own missing dataset is only skipped), and so is an empty list.
    Model names match case-insensitively; an unknown one is an error that suggests the closest rows.
    """
    seeds = list(seeds)
    if not seeds or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in seeds):
        raise ValueError(f"seeds must be integers >= 0, at least one; got {seeds}")
    skipped: list[str] = []
    if datasets is not None and not list(datasets):
        raise ValueError("no dataset named (an empty --dataset)")
    chosen = list(datasets) if datasets is not None else list(spec.datasets)
    available = []
    for name in chosen:
        ds = resolve(name)
        if ds.available():
            available.append(name)
        elif datasets is not None:
            raise FileNotFoundError(f"dataset {name}: not found at {ds.location()}")
        else:
            skipped.append(f"dataset {name}: not found at {ds.location()}")
    if not kind_of(spec).trains:
        return [Cell(spec.id, name) for name in available], skipped
    names = list(dict.fromkeys(row.model for row in spec.rows))
    wanted = [(name, "") for name in names] if models is None else [_row_choice(spec, names, m) for m in models]
    if not wanted:
        raise ValueError(f"no model named (an empty --models); {spec.id}'s rows: {', '.join(names)}")
    rows = [row for row in spec.rows if any(row.model == m and v in ("", row.variant) for m, v in wanted)]
    missing = list(dict.fromkeys(row.model for row in rows if row.model not in registry.MODELS))
    if missing:
        skipped.append(f"not built yet, shown as 'not run': {', '.join(missing)}")
    runnable = [row for row in rows if row.model in registry.MODELS]
    cells = [Cell(spec.id, d, r.model, profile, s, r.variant) for d in available for r in runnable for s in seeds]
    return cells, skipped


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt: joblib then kills its workers."""


class Interrupted(Exception):
    """A run stopped by SIGINT or SIGTERM after its workers were taken down; what it had stored stays."""

    def __init__(self, spec: TableSpec, signal_name: str, stored: int, total: int) -> None:
        super().__init__(f"{spec.id}: interrupted by {signal_name}: {stored} of {total} cell(s) stored")
        self.spec, self.signal_name, self.stored, self.total = spec, signal_name, stored, total


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Within: SIGTERM raises `Terminated` in the main thread (elsewhere signals cannot be handled)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: Any) -> None:
        raise Terminated("SIGTERM")

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


_watching: list[int] = []


def _exit_with_parent(parent: int) -> None:
    """In a worker process: exit as soon as process ``parent`` is gone (a SIGKILL gives the parent no
    chance to take its workers down, and a worker left alone would store its cell later, over a newer
    rerun's). One daemon thread per worker, polling twice a second."""
    if os.getpid() == parent or _watching:
        return
    _watching.append(parent)

    child = os.getppid() == parent  # loky's workers are; then a dead parent shows at once as a new ppid

    def alive() -> bool:
        if child:
            return os.getppid() == parent
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # a live process of another user: the pid was reused, ours is gone
            return False
        return True

    def watch() -> None:
        while alive():
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="gamer-bench-parent-watch", daemon=True).start()


def _row_choice(spec: TableSpec, names: list[str], given: str) -> tuple[str, str]:
    """``given`` as (model, variant): ``gamer_sid`` takes every variant of the row, ``gamer_sid@aug0`` one."""
    name, _, variant = given.partition("@")
    model = _row_name(spec, names, name)
    variants = [row.variant for row in spec.rows if row.model == model]
    if variant and variant not in variants:
        raise ValueError(f"{spec.id} has no row {model}@{variant}; {model}'s variants: {', '.join(variants) or 'none'}")
    return model, variant


def _row_name(spec: TableSpec, names: list[str], given: str) -> str:
    """``given`` as one of the table's row names (``SASRec`` -> ``sasrec``), else an error with the closest."""
    by_lower = {name.lower(): name for name in names}
    if given.lower() in by_lower:
        return by_lower[given.lower()]
    close = difflib.get_close_matches(given.lower(), list(by_lower), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(by_lower[c] for c in close)}? " if close else ""
    raise ValueError(f"{spec.id} has no row {given!r}; {hint}its rows: {', '.join(names)}")


def _guarded_cell(
    spec: TableSpec, cell: Cell, root: Path, parent: int | None = None, options: CellOptions = CellOptions()
) -> tuple[list[str], str]:
    """`run_cell`, with an exception turned into its message so that one failing cell does not stop a
    long run (the others still finish and are stored). An interrupt (Ctrl-C, a kill) is not caught.
    ``parent``: the pid of the local process that launched the run, which this worker must not outlive."""
    if parent is not None:
        _exit_with_parent(parent)
    try:
        if options.plugins:
            from benchmark.plugins import load_modules

            load_modules(options.plugins)
        return run_cell(spec, cell, root, options), ""
    except Exception as error:  # reported per cell; the run goes on
        return [], f"{cell.describe()}: {type(error).__name__}: {error}"


def backend_context(backend: str, jobs: int) -> AbstractContextManager:
    """Where joblib sends the cells: local processes (``loky``), a Ray cluster (``ray``) or a Dask
    cluster (``dask``). Ray and Dask are optional extras; a missing one is an error at once.

    Ray: the Ray this process already joined, else the cluster ``RAY_ADDRESS`` names (or one that
    ``ray start`` runs on this machine), else a local Ray started here. Dask: the client this process
    already has, else the scheduler at ``DASK_SCHEDULER_ADDRESS``, else a local cluster of ``jobs``
    single-threaded worker processes (a cell is one heavy task, and torch threads by itself). What
    starts here is shut down on leaving, so a run leaks no cluster. Workers import this project from
    their Python's site-packages: it must be installed there (README), on a remote cluster as here.
    """
    if backend == "loky":
        return nullcontext()
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; use one of {BACKENDS}")
    try:
        if backend == "ray":
            import ray
            from ray.util.joblib.ray_backend import RayBackend
        else:
            from dask.distributed import Client
    except ImportError as error:
        install = f"pip install 'gamer-bench[{backend}]'"
        raise ValueError(f"--backend {backend} needs a working {backend.title()} ({error}): {install}") from None

    @contextmanager
    def on_cluster() -> Iterator[None]:
        shutdown = None
        if backend == "ray":
            if not ray.is_initialized():
                ray.init()  # joins RAY_ADDRESS's cluster or this machine's `ray start`; else starts one
                shutdown = ray.shutdown

            class StreamingRayBackend(RayBackend):
                # joblib refuses return_as="generator" (how `run` streams cells) on backends built on
                # multiprocessing.Pool, whose shared result-handler thread can deadlock on an abort. Ray's
                # Pool only mimics that API: each result has its own thread, and terminate kills actors.
                supports_return_generator = True

            config = parallel_config(backend=StreamingRayBackend(), n_jobs=jobs)
        else:
            try:
                Client.current()
            except ValueError:  # no client yet: one of our own, which closes the local cluster it started
                address = os.environ.get("DASK_SCHEDULER_ADDRESS")
                local = {"n_workers": jobs if jobs > 0 else None, "threads_per_worker": 1}
                shutdown = (Client(address) if address else Client(**local)).close
            config = parallel_config(backend="dask", n_jobs=jobs)
        try:
            with config:
                yield
        finally:
            if shutdown is not None:
                shutdown()

    return on_cluster()


def run(
    spec: TableSpec,
    root: Path,
    *,
    datasets: Iterable[str] | None = None,
    models: Iterable[str] | None = None,
    profile: str = "smoke",
    seeds: Iterable[int] = (0,),
    jobs: int = 1,
    force: bool = False,
    progress: bool = True,
    backend: str = "loky",
    options: CellOptions = CellOptions(),
) -> RunReport:
    """Run every cell of ``spec`` that is not already stored with the same configuration.

    Each finished cell is stored at once (atomically), so an interrupted run keeps what it finished, a
    killed cell leaves nothing behind, and running the same command again computes only what is missing.
    A cell that raises is reported in ``failed`` and the others go on.
    """
    cells, skipped = expand(spec, datasets, models, profile, list(seeds))
    todo, reused = [], []
    notes: list[str] = []
    if kind_of(spec).trains:
        precision = effective_precision(options.precision, _cuda_available())
        if options.precision not in (None, precision):
            notes.append(f"{spec.id}: {options.precision} runs on CUDA only; the cells run in {precision}")
        options = replace(options, precision=precision)
    precision = options.precision or "fp32"
    current, older = code_version(), {}
    for cell in cells:
        config = cell_config(spec, cell, precision)
        stored = None if force else _reusable(cell, root, notes, config) or _adopt(spec, cell, root, notes, config)
        if stored is None:
            todo.append(cell)
            continue
        reused.append(cell)
        version = stored["provenance"]["code_version"]
        if version != current:
            older[version] = older.get(version, 0) + 1
    if older:
        notes.append(
            f"{spec.id}: {sum(older.values())} reused cell(s) were computed by other code versions "
            f"({', '.join(sorted(older))}; this is {current}); --force recomputes them"
        )
    if kind_of(spec).one_at_a_time and jobs != 1:
        notes.append(f"{spec.id} times training: its cells run one at a time (--jobs {jobs} ignored)")
        jobs = 1
    failed: list[str] = []
    if todo:
        parent = os.getpid() if backend == "loky" else None  # Ray and Dask workers may live on other hosts
        tasks = (delayed(_guarded_cell)(spec, cell, root, parent, options) for cell in todo)
        try:
            with _sigterm_as_interrupt(), backend_context(backend, jobs), warnings.catch_warnings():
                # loky restarts a worker whose memory grew by over 300 MB during a cell (a model and its data
                # do) and warns of a leak; the next cell simply runs in a fresh worker.
                warnings.filterwarnings("ignore", "A worker stopped while some jobs were given", UserWarning)
                results = Parallel(n_jobs=jobs, return_as="generator")(tasks)
                try:
                    bar = tqdm(results, total=len(todo), desc=spec.id, unit="cell", disable=not progress)
                    watched = _RunningCells(bar, todo, root) if progress and jobs != 1 else nullcontext()
                    with watched:
                        for cell_notes, error in bar:
                            notes += [note for note in cell_notes if note not in notes]
                            failed += [error] if error else []
                finally:
                    results.close()  # on an interrupt: joblib aborts the run and kills its workers
        except KeyboardInterrupt as error:
            stored = sum(_reusable(c, root, [], cell_config(spec, c, precision)) is not None for c in cells)
            name = "SIGTERM" if isinstance(error, Terminated) else "SIGINT"
            raise Interrupted(spec, name, stored, len(cells)) from None
    computed = [cell for cell in todo if not any(e.startswith(cell.describe() + ":") for e in failed)]
    return RunReport(computed, reused, skipped, notes, failed)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _reusable(cell: Cell, root: Path, notes: list[str], config: dict[str, Any]) -> dict[str, Any] | None:
    """The stored result of ``cell`` when it is well formed, is this cell's, and was computed with
    today's configuration ``config`` (`cell_config`: dataset identity included), else None; a malformed
    one is named in ``notes``."""
    try:
        stored = load_cell(cell.path(root))
    except CellError as error:
        notes.append(f"recomputing a malformed stored result: {error}")
        return None
    if stored is None:
        return None
    if stored["cell"] != _json_roundtrip(asdict(cell)):
        notes.append(f"recomputing {cell.path(root)}: it holds the result of another cell ({stored['cell']})")
        return None
    return stored if stored["provenance"]["config"] == _json_roundtrip(config) else None


# What only names a cell, or says what it computes once its model is trained.
_AFTER_TRAINING = ("table", "variant", "kind", "evaluations", "ks", "protocol")


def _training_identity(config: dict[str, Any]) -> dict[str, Any]:
    """A model cell's configuration as far as its training goes: without what only names it (its table,
    its variant's label) or says what it computes once trained (its kind, evaluations and cut-offs), and
    with every constructor argument its row leaves to the default written out (Table 7's MBGen is Table
    6's "MBGen" without augmentation: augment_times defaults to 0)."""
    identity = {key: value for key, value in config.items() if key not in _AFTER_TRAINING}
    if not KINDS[config["kind"]].shares_training:  # those fit on the same split and validation; others on their own
        identity["kind"] = config["kind"]
    signature = inspect.signature(registry.get(config["model"]).factory_class())
    defaults = {
        name: parameter.default
        for name, parameter in signature.parameters.items()
        if name != "seed" and parameter.default is not inspect.Parameter.empty
    }
    return _json_roundtrip(identity | {"hyperparameters": defaults | config["hyperparameters"]})


def _adopt(spec: TableSpec, cell: Cell, root: Path, notes: list[str], config: dict[str, Any]) -> dict[str, Any] | None:
    """A stored ranking cell of another table whose model trained as ``cell``'s would (`_training_identity`:
    the same model, hyperparameters, dataset identity, profile, seed and precision), stored again as
    ``cell`` with ``adopted_from`` naming its source, or None. A ranking cell takes it when it evaluated
    every evaluation ``cell`` asks for (Table 5's "GAMER + 4x aug." is Table 2's GAMER (SID), and Table
    2's TIGER_MB is Table 7's clean evaluation); a training-cost cell (Table 6) takes its training record.
    The copy's configuration is ``cell``'s own (``config``), so later runs reuse it like any other."""
    kind = kind_of(spec)
    if not kind.shares_training or not cell.model:
        return None
    wanted = _training_identity(config)
    lenders = _same_model_elsewhere(
        spec, cell, lambda other: kind_of(other).shares_training and kind_of(other).metric_rows
    )
    for source in lenders:  # retrieval cells: a trained model and every evaluation it ranked
        try:
            stored = load_cell(source.path(root))
        except CellError:
            continue
        if stored is None or stored["cell"] != _json_roundtrip(asdict(source)):
            continue
        if _training_identity(stored["provenance"]["config"]) != wanted:
            continue
        result = kind.adopt(stored, config)
        if result is None:
            continue
        result = _json_roundtrip(result)
        prov = _json_roundtrip(stored["provenance"] | {"config": config, "adopted_from": asdict(source)})
        save_cell(root, cell, result, prov)
        notes.append(f"{cell.describe()}: the same training as {source.describe()}; stored from it")
        return stored | {"result": result, "cell": _json_roundtrip(asdict(cell)), "provenance": prov}
    return None


def cell_summaries(spec: TableSpec, root: Path, cells: Iterable[Cell]) -> list[dict[str, Any]]:
    """One line per stored cell: wall time, training record and the table's headline metric, so a run
    shows what each row cost and whether it stopped at its plateau (patience) or at the epoch cap."""
    headline = "N@10" if "N@10" in spec.columns else (spec.columns[0] if spec.columns else None)
    lines = []
    for cell in cells:
        try:
            stored = load_cell(cell.path(root))
        except CellError:
            stored = None
        if stored is None or not cell.model:
            continue
        record = training_record(stored["result"]) or {"epochs_run": "-", "best_epoch": "-", "stop_reason": "-"}
        metric = stored["result"].get("metrics", {}).get(headline) if headline else None
        lines.append(
            {
                "row": cell.row_key,
                "dataset": cell.dataset,
                "seed": cell.seed,
                "minutes": round(stored["provenance"]["timings"].get("total_s", float("nan")) / 60, 2),
                "epochs": record["epochs_run"],
                "best": record["best_epoch"],
                "stopped by": record["stop_reason"],
                headline or "metric": "-" if metric is None else round(metric, 4),
            }
        )
    return lines


def _json_roundtrip(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value))
