"""The ``gamer-bench`` command line: datasets, run, report, check, perf."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from baselines.registry import PROFILES
from benchmark import arguments, check
from benchmark.allocator import keep_freed_memory


def _seeds(args: argparse.Namespace, default: tuple[int, ...]) -> list[int]:
    """``--seeds`` (a count from ``--seed``, or a list), else ``--seed``, else the table's own seeds."""
    first = 0 if args.seed is None else args.seed
    if args.seeds is not None:
        return args.seeds if isinstance(args.seeds, list) else list(range(first, first + args.seeds))
    return list(default) if args.seed is None else [args.seed]


def cmd_datasets(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from protocols.catalog import BUILTIN

    rows = [[s.name, "yes" if s.available() else "no", s.location(), s.description] for s in BUILTIN.values()]
    print(tabulate(rows, headers=["name", "present", "read from", "what"], tablefmt="github"))
    print("\nCustom data: pass --dataset PATH.toml (see README, 'Your own data').")
    return 0


def _target_spec(args: argparse.Namespace):
    from benchmark.tables import spec_for

    if (args.table is None) == (args.figure is None):
        raise SystemExit("gamer-bench: give exactly one of --table N, --figure N or --all")
    return spec_for(table=args.table, figure=args.figure)


def _run_specs(args: argparse.Namespace) -> list:
    from benchmark.tables import SPECS

    if args.all:
        if args.table is not None or args.figure is not None or args.models:
            raise SystemExit("gamer-bench: --all runs every table and figure; drop --table, --figure and --models")
        return list(SPECS.values())
    return [_target_spec(args)]


def _print_cell_summaries(spec, root: Path, cells: list, profile: str) -> None:
    """Per computed cell: minutes, epochs, best epoch, why training stopped, the headline metric."""
    from tabulate import tabulate

    from benchmark import runner
    from benchmark.rows import SMOKE_LABEL

    lines = runner.cell_summaries(spec, root, cells)
    if not lines:
        return
    print(tabulate(lines, headers="keys", tablefmt="github", disable_numparse=True))
    if profile == "smoke":
        print(SMOKE_LABEL)
    capped = [f"{x['row']} ({x['dataset']}, seed {x['seed']})" for x in lines if x["stopped by"] == "epoch cap"]
    if capped and profile != "smoke":
        print(f"not converged, stopped at the epoch cap: {', '.join(capped)}", file=sys.stderr)


def resume_command(argv: list[str]) -> str:
    """The command that resumes an interrupted run: the same one, without ``--force`` (which would
    recompute what the interrupted run already stored)."""
    return shlex.join(["gamer-bench", *(a for a in argv if a != "--force")])


def cmd_run(args: argparse.Namespace) -> int:
    from benchmark.plugins import ensure_models
    from benchmark.store import results_dir

    root = results_dir(args.results_dir)
    ensure_models(args.models or ())  # an installed plugin's row, imported only when asked for
    if args.max_steps is not None:
        return _rehearse(args)
    with _epoch_lines(args.jobs == 1 and not args.quiet):  # one cell at a time: show each epoch as it ends
        return _run_tables(args, root)


@contextmanager
def _epoch_lines(enabled: bool) -> Iterator[None]:
    """Print the training loops' per-epoch lines on stderr while a run lasts (and only then: a handler
    left behind would write to whatever stream stderr was, long after)."""
    if not enabled:
        yield
        return
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("  %(message)s"))
    logger = logging.getLogger("gamer_bench.training")
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _run_tables(args: argparse.Namespace, root: Path) -> int:
    from benchmark import runner
    from benchmark.kinds import kind_of

    failed = 0
    for spec in _run_specs(args):
        if not kind_of(spec).runs:
            print(f"{spec.id}: {spec.note}", file=sys.stderr)
            continue
        try:
            report = runner.run(
                spec,
                root,
                datasets=args.dataset,
                models=args.models,
                profile=args.profile,
                seeds=_seeds(args, spec.seeds),
                jobs=args.jobs,
                force=args.force,
                progress=not args.quiet,
                backend=args.backend,
                options=runner.CellOptions(
                    args.checkpoint_minutes,
                    args.keep_checkpoints,
                    args.precision,
                    args.tensorboard and args.tensorboard.resolve(),
                    tuple(args.plugins or ()),
                ),
            )
        except runner.Interrupted as stop:
            print(f"gamer-bench: {stop}; resume with: {resume_command(args.argv)}", file=sys.stderr)
            return 143 if stop.signal_name == "SIGTERM" else 130
        for line in report.notes:
            print(line, file=sys.stderr)
        for line in report.skipped:
            print(f"skipped: {line}", file=sys.stderr)
        for line in report.failed:
            print(f"failed: {line}", file=sys.stderr)
        failed += len(report.failed)
        _print_cell_summaries(spec, root, report.computed, args.profile)
        print(
            f"{spec.id}: {len(report.computed)} cell(s) computed, {len(report.reused)} reused"
            + (f", {len(report.failed)} failed" if report.failed else "")
            + f"; results in {root}"
        )
    if failed:
        print(f"gamer-bench: error: {failed} cell(s) failed (above); rerun to retry only those", file=sys.stderr)
        return 2
    return 0


def _rehearse(args: argparse.Namespace) -> int:
    """``run --max-steps N``: every chosen row trained N steps and tested on a few users; nothing stored."""
    from tabulate import tabulate

    from benchmark import runner

    for spec in _run_specs(args):
        seed = _seeds(args, spec.seeds)[0]
        lines = runner.rehearse(
            spec, datasets=args.dataset, models=args.models, profile=args.profile, seed=seed, max_steps=args.max_steps
        )
        print(f"{spec.id}: rehearsal at {args.profile}, seed {seed}: at most {args.max_steps} step(s), nothing stored")
        print(tabulate(lines, headers="keys", tablefmt="github"))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from benchmark.kinds import kind_of
    from benchmark.plugins import ensure_stored
    from benchmark.render import render
    from benchmark.report import all_documents
    from benchmark.store import results_dir

    root = results_dir(args.results_dir)
    for model in ensure_stored(root):
        print(
            f"gamer-bench: cells of model {model!r} are not shown: no plugin of that name is installed", file=sys.stderr
        )
    if args.output_dir:
        from benchmark.site import write_site

        if not args.all:
            raise SystemExit("gamer-bench: --output-dir writes the whole results page: use it with --all")
        index = write_site(root, Path(args.output_dir), profile=args.profile)
        print(f"results page: {index}")
        return 0
    ids = None if args.table is None and args.figure is None else [_target_spec(args).id]
    documents = all_documents(root, ids)
    if args.profile:
        documents = [d for d in documents if d.profile in (None, args.profile)]
    if not documents:
        print(
            f"no stored results for {', '.join(ids) if ids else 'any table'} under {root}; "
            "run `gamer-bench run --table N` first",
            file=sys.stderr,
        )
        return 1
    text = render(documents, args.format, ci=args.ci)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    plot_dir = Path(args.output).parent if args.output else root / "rendered"
    for doc in documents:
        paths = kind_of(doc.spec).plot(doc, plot_dir / f"{doc.stem}.png")
        if paths:
            print(f"plot: {', '.join(map(str, paths))}", file=sys.stderr)
    return 0


def cmd_claims(args: argparse.Namespace) -> int:
    from benchmark.claims import CLAIMS, judge_all, render
    from benchmark.plugins import ensure_stored
    from benchmark.store import results_dir

    known = [c.id for c in CLAIMS]
    unknown = [c for c in args.claims or [] if c not in known]
    if unknown:
        raise ValueError(f"unknown claim(s) {', '.join(unknown)}; the claims are {', '.join(known)}")
    root = results_dir(args.results_dir)
    ensure_stored(root)
    text = render(judge_all(root, args.profile, args.claims), args.format, args.profile)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_validate_row(args: argparse.Namespace) -> int:
    from benchmark import validate

    return validate.main(args.name, profile=args.profile, seed=args.seed or 0, dataset=args.dataset)


def cmd_readme(args: argparse.Namespace) -> int:
    from benchmark import readme
    from benchmark.store import REPO_ROOT

    path = Path(args.readme) if args.readme else REPO_ROOT / "README.md"
    root = Path(args.results_dir) if args.results_dir else REPO_ROOT / readme.PUBLISHED
    if args.check:
        if readme.current(path, root):
            print(f"{path}: the results section is what {root} renders to")
            return 0
        print(f"{path}: the results section is stale; regenerate it with `gamer-bench readme`", file=sys.stderr)
        return 1
    changed = readme.update(path, root)
    print(f"{path}: results section {'rewritten' if changed else 'already current'} from {root}")
    return 0


def cmd_perf(args: argparse.Namespace) -> int:
    if args.what == "gamer":
        from benchmark import perf_gamer

        return perf_gamer.main(
            repeat=args.repeat,
            dims=args.dims,
            device=args.device,
            precision=args.precision,
            peak_tflops=args.peak_tflops,
            epoch_of=args.epoch_of,
        )
    if args.what == "baselines":
        from benchmark import perf_baselines

        return perf_baselines.main(repeat=args.repeat, dims=args.dims)
    from benchmark import perf

    return perf.main(args.what, repeat=args.repeat, taobao_rows=args.taobao_rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gamer-bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("datasets", help="list the built-in datasets and where each is read from").set_defaults(
        func=cmd_datasets
    )

    def plugins(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--plugins",
            type=arguments.name_list,
            metavar="MODULE",
            help="modules (comma separated, importable from here or PYTHONPATH) whose MODELS and DATASETS "
            "lists add rows and datasets (docs/adding-a-model.md); installed plugins need no flag",
        )

    def target(p: argparse.ArgumentParser) -> None:
        plugins(p)
        group = p.add_mutually_exclusive_group()
        group.add_argument("--table", type=int, help="paper table number")
        group.add_argument("--figure", type=int, help="paper figure number")
        p.add_argument("--results-dir", help="where results are stored (default: $GAMER_BENCH_RESULTS or ./results)")

    run = sub.add_parser("run", help="train and evaluate what a table or figure needs, and store the results")
    target(run)
    run.add_argument(
        "--dataset",
        type=arguments.name_list,
        help="built-in name(s) or PATH.toml, comma separated (default: the table's)",
    )
    run.add_argument(
        "--models",
        type=arguments.name_list,
        help="registry names of rows, comma separated; model@variant (gamer_sid@aug0) runs one variant "
        "(default: every row)",
    )
    run.add_argument("--profile", choices=PROFILES, default="smoke")
    run.add_argument(
        "--seed", type=arguments.seed, help="one seed (default: the table's seeds: 0, or 0-4 for Table 10)"
    )
    run.add_argument(
        "--seeds", type=arguments.seeds, help="a count >= 1 (N seeds from --seed) or a comma-separated list"
    )
    run.add_argument("--all", action="store_true", help="every table and figure, on every dataset available")
    run.add_argument("--jobs", type=int, default=1, help="cells run in parallel (joblib workers)")
    run.add_argument(
        "--backend",
        choices=("loky", "ray", "dask"),
        default="loky",
        help="where the cells run: local processes (loky), a Ray or a Dask cluster (optional extras; README)",
    )
    run.add_argument("--force", action="store_true", help="recompute cells that are already stored")
    run.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        help="on CUDA: bf16 autocast (the default) or fp32; the CPU always runs fp32",
    )
    run.add_argument(
        "--checkpoint-minutes",
        type=arguments.minutes,
        default=10.0,
        help="a training cell writes a checkpoint this often (and at each epoch end); a rerun resumes from it",
    )
    run.add_argument(
        "--keep-checkpoints", action="store_true", help="keep a cell's checkpoint after the cell is stored"
    )
    run.add_argument(
        "--tensorboard",
        type=Path,
        metavar="DIR",
        help="each training cell writes its per-epoch scalars (train loss, validation criterion, best, seconds) "
        "as TensorBoard events under DIR/<table>/<dataset>/<row>/<profile>-seed<S>",
    )
    run.add_argument(
        "--max-steps",
        type=arguments.positive,
        help="a rehearsal: train each row N optimiser steps, test it on 16 users, store nothing",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=cmd_run)

    report = sub.add_parser("report", help="render stored results beside the paper's numbers")
    target(report)
    report.add_argument("--all", action="store_true", help="every stored table (the default without --table)")
    report.add_argument(
        "--output-dir", help="with --all: write a browsable page (index.md, every table in every format, plots)"
    )
    report.add_argument("--format", choices=("markdown", "latex", "csv", "json"), default="markdown")
    report.add_argument(
        "--ci", action="store_true", help="Markdown/LaTeX: value ± half-width of its 95%% bootstrap interval"
    )
    report.add_argument("--output", help="write to this file (plots go beside it) instead of stdout")
    report.add_argument("--profile", choices=PROFILES, help="only this profile (data-only tables always shown)")
    report.set_defaults(func=cmd_report)

    claims = sub.add_parser("claims", help="judge each of the paper's claims from stored cells")
    plugins(claims)
    claims.add_argument("--results-dir", help="where results are stored (default: $GAMER_BENCH_RESULTS or ./results)")
    claims.add_argument("--profile", choices=PROFILES, default="cpu", help="the profile whose cells are judged")
    claims.add_argument("--claims", type=arguments.name_list, help="claim ids, comma separated (default: all)")
    claims.add_argument("--format", choices=("markdown", "latex", "json"), default="markdown")
    claims.add_argument("--output", help="write to this file instead of stdout")
    claims.set_defaults(func=cmd_claims)

    validate_row = sub.add_parser(
        "validate-row",
        help="check that a row's model meets the contract (a plugin author's test; docs/adding-a-model.md)",
    )
    validate_row.add_argument("name", help="the row's registry name (a built-in, or a plugin's)")
    plugins(validate_row)
    validate_row.add_argument("--profile", choices=PROFILES, default="smoke")
    validate_row.add_argument("--seed", type=arguments.seed, help="the seed of both fits (default 0)")
    validate_row.add_argument("--dataset", help="a built-in name or PATH.toml (default: a 60-user embedded log)")
    validate_row.set_defaults(func=cmd_validate_row)

    readme = sub.add_parser("readme", help="rewrite README.md's results section from the published cells")
    readme.add_argument("--check", action="store_true", help="only check that the section is current (exit 1 if not)")
    readme.add_argument("--readme", help="the README to update (default: the checkout's README.md)")
    readme.add_argument("--results-dir", help="the published cells (default: results/published/cpu)")
    readme.set_defaults(func=cmd_readme)

    perf = sub.add_parser("perf", help="measure throughput (slow checks live here, not in the tests)")
    perf.add_argument(
        "what",
        choices=("data", "gamer", "baselines"),
        help="data: importers, sessions, splits; gamer: training, MFU, decoding; "
        "baselines: SASRec training sequences/s vs RecBole's own loop, evaluation users/s",
    )
    perf.add_argument(
        "--dims", choices=("paper", "smoke"), default="paper", help="model size for perf gamer and perf baselines"
    )
    perf.add_argument("--repeat", type=int, default=5)
    perf.add_argument("--device", default="cpu", help="perf gamer: cpu, or cuda (the GPU's run)")
    perf.add_argument("--precision", choices=("fp32", "bf16"), help="perf gamer on CUDA: bf16 (default) or fp32")
    perf.add_argument(
        "--peak-tflops", type=float, help="perf gamer: the device's dense peak the MFU is against (H100/H200 bf16: 989)"
    )
    perf.add_argument(
        "--epoch-of",
        metavar="DATASET",
        help="perf gamer: project one paper-profile GAMER epoch on this dataset (a name or PATH.toml, e.g. a "
        "[synthetic] one at ShortVideoAD's size) from the measured rate, here and on a GPU of --peak-tflops",
    )
    perf.add_argument("--taobao-rows", type=int, default=2_000_000, help="size of the streamed Taobao file (0: skip)")
    perf.set_defaults(func=cmd_perf)

    check.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    keep_freed_memory()
    try:
        if getattr(args, "plugins", None):
            from benchmark.plugins import load_modules

            load_modules(args.plugins)
        return args.func(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"gamer-bench: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gamer-bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
