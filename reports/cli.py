"""The ``hud`` command line: ``hud demo``, ``hud info``, ``hud tasks``, ``hud run``, ``hud ls``, ``hud report``.

Every user error is a ``HudError``: it is printed in one line, without a
traceback, and the exit status is 2 (130 after Ctrl-C).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence

from data import __version__
from data.errors import HudError

__all__ = ["main", "build_parser"]

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2 like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_ERROR, f"hud: error: {message} (see '{self.prog} --help')\n")


def _cmd_demo(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")  # the command line draws files only
    from .demo import run_demo

    t0 = time.perf_counter()
    result = run_demo(
        runs_dir=args.runs_dir,
        out_dir=args.output,
        epochs=args.epochs,
        seeds=args.seeds,
        workers=args.workers,
        formats=args.format,
        progress=not args.quiet,
    )
    for report in result.reports:
        problems = f"; {len(report.problems)} runs did not end normally" if report.problems else ""
        print(f"{report.out_dir}: {len(report.pages)} pages, {len(report.gifs)} GIFs{problems}")
    print(
        f"hud demo: trained in {result.train_seconds:.0f} s, reports in {result.report_seconds:.0f} s "
        f"(total {time.perf_counter() - t0:.0f} s). Open the PDFs:"
    )
    for pdf in result.pdfs:
        print(f"  {pdf}")
    return 0


def _split(text: str | None, name: str, cast: Callable[[str], object] = str) -> list | None:
    """'0,100,1000' -> [0, 100, 1000]; a one-line error naming the option for a bad item."""
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    try:
        return [cast(t) for t in items]
    except ValueError:
        from data.errors import ParameterError

        raise ParameterError(
            f"{name} must be a comma-separated list of integers, e.g. 0,100,1000; got {text!r}"
        ) from None


def _cmd_report(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")  # the command line draws files only
    from .report import build_report

    result = build_report(
        args.runs,
        args.output,
        epochs=_split(args.epochs, "--epochs", int),
        layers=_split(args.layers, "--layers"),
        formats=args.format,
        workers=args.workers,
        progress=not args.quiet,
    )
    for run in result.problems:
        print(f"note: run {run['id']} ({run['config']}, seed {run['seed']}): {run['status_text']}")
    where = result.pdf or result.index
    print(f"hud report: {len(result.pages)} pages, {len(result.gifs)} GIFs in {result.seconds:.1f} s -> {where}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from data.recording import open_recording

    for k, path in enumerate(args.recordings):
        with open_recording(path) as rec:
            print(("\n" if k else "") + rec.summary())
    return 0


def _cmd_tasks(args: argparse.Namespace) -> int:
    from data import load_task, task_names

    for name in task_names():
        if name == "custom":
            print(f"{name:<11} one-hot inputs to a target matrix from a .csv or .npy file (targets=PATH)")
            continue
        task = load_task(name)
        print(
            f"{name:<11} {task.kind:<10} {task.n_samples:>5} x {task.n_inputs:<3} -> {task.n_outputs:<3} "
            f"{task.description}"
        )
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from data.errors import check_number
    from models.experiments import load_experiment, parse_assignment
    from models.runner import FINISHED, run_experiment

    if args.epochs is not None:
        check_number("--epochs", args.epochs, low=0, integer=True)
    if args.seeds is not None:
        check_number("--seeds", args.seeds, low=1, high=100_000, integer=True)
    overrides = dict(parse_assignment(item) for item in args.set)
    experiment = load_experiment(args.experiment, overrides=overrides, epochs=args.epochs, seeds=args.seeds)
    t0 = time.perf_counter()
    manifest = run_experiment(
        experiment,
        args.output,
        workers=args.workers,
        batched=args.batched,
        scheduler=args.scheduler,
        force=args.force,
        progress=not args.quiet,
    )
    counts: dict[str, int] = {}
    for run in manifest["runs"]:
        counts[run["status"]] = counts.get(run["status"], 0) + 1
    folder = args.output or os.path.join("runs", experiment.name)
    summary = ", ".join(f"{n} {status}" for status, n in counts.items())
    print(
        f"{experiment.name}: {len(manifest['runs'])} runs in {folder}: {summary} "
        f"({time.perf_counter() - t0:.1f} s; 'hud ls {folder}' lists them)"
    )
    for run_id, message in manifest["errors"].items():
        print(f"hud: run {run_id} failed: {message}", file=sys.stderr)
    unfinished = [r for r in manifest["runs"] if r["status"] not in FINISHED]
    return 1 if unfinished else 0


def _cmd_ls(args: argparse.Namespace) -> int:
    from models.runner import list_runs

    table = list_runs(args.folder)
    if args.csv:
        table.to_csv(args.csv, index=False)
        print(f"wrote {len(table)} runs to {args.csv}")
        return 0
    shown = table.astype(object)
    for column in ("final_loss", "final_accuracy"):
        shown[column] = ["-" if v != v else f"{v:.4g}" for v in table[column]]
    shown["epochs"] = ["-" if v is None or v != v else str(int(v)) for v in table["epochs"].astype(float)]
    with _pd_options():
        print(shown.to_string(index=False))
    return 0


def _pd_options():
    """pandas display options for tables printed in full."""
    import pandas as pd

    return pd.option_context("display.width", 250, "display.max_columns", None, "display.max_colwidth", 60)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``hud`` (exposed for the docs and the tests)."""
    parser = _Parser(prog="hud", description="Watch hidden units learn: train, record, analyse, report.")
    parser.add_argument("--version", action="version", version=f"hud {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    demo = sub.add_parser(
        "demo",
        help="train the bundled comparison (SSE vs cross entropy x momentum vs Adam) and write its reports",
        description="Train SSE vs cross entropy x momentum vs Adam on the 9-2-9 encoder and the twin spirals "
        "(3 seeds each), then write a report (PDF, PNGs, CSVs, GIFs) for each.",
    )
    demo.add_argument("--epochs", type=int, default=None, metavar="N", help="epochs per run (default: 3000)")
    demo.add_argument("--seeds", type=int, default=None, metavar="N", help="seeds per configuration (default: 3)")
    demo.add_argument("--runs-dir", default="runs/demo", metavar="DIR", help="recordings (default: runs/demo/)")
    demo.add_argument("-o", "--output", default="reports/demo", metavar="DIR", help="reports (default: reports/demo/)")
    demo.add_argument("--workers", type=int, default=None, metavar="N", help="processes (default: all cores)")
    demo.add_argument("--format", default="pdf,png,gif", metavar="F1,F2", help="any of pdf,png,gif (default: all)")
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=_cmd_demo)

    report = sub.add_parser(
        "report",
        help="write the report of a runs folder: a multi-page PDF, PNGs, CSVs and GIFs",
        description="Write the report of a runs folder (from 'hud run', or any folder of recordings): a PDF "
        "with a summary, comparison grids (rows: loss, columns: optimizer) and one page per run, plus a PNG "
        "and the CSV data of every page and a GIF of each run's hidden space.",
    )
    report.add_argument("runs", metavar="RUNS_DIR", help="runs folder, e.g. runs/encoder/")
    report.add_argument("-o", "--output", metavar="DIR", help="output folder (default: reports/<name>/)")
    report.add_argument("--epochs", metavar="E1,E2,...", help="snapshot epochs (default: 0, last/100, last/10, last)")
    report.add_argument("--layers", metavar="L1,L2,...", help="hidden layers to report on (default: all)")
    report.add_argument("--format", default="pdf,png,gif", metavar="F1,F2", help="any of pdf,png,gif (default: all)")
    report.add_argument("--workers", type=int, default=None, metavar="N", help="drawing processes (default: cores)")
    report.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    report.set_defaults(func=_cmd_report)

    info = sub.add_parser("info", help="summarise recordings: task, network, loss, optimizer, epochs, layers, status")
    info.add_argument("recordings", nargs="+", metavar="RUN.h5", help="recording files")
    info.set_defaults(func=_cmd_info)

    tasks = sub.add_parser("tasks", help="list the tasks that load_task() and experiments accept")
    tasks.set_defaults(func=_cmd_tasks)

    run = sub.add_parser(
        "run",
        help="run an experiment's grid (task x loss x optimizer x seed ...): one recording per run, resumable",
        description="Run every run of an experiment file that is not finished yet (rerun to resume).",
    )
    run.add_argument("experiment", metavar="EXP.toml", help="experiment file (see experiments/README.md)")
    run.add_argument("-o", "--output", metavar="DIR", help="output folder (default: runs/<name>/)")
    run.add_argument("--workers", type=int, default=None, metavar="N", help="worker processes (default: all cores)")
    run.add_argument(
        "--batched",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="train runs of one architecture together as one batched model (default: on)",
    )
    run.add_argument("--scheduler", metavar="ADDRESS", help="run on a Dask cluster (tcp://host:8786)")
    run.add_argument("--force", action="store_true", help="start every run again, overwriting its recording")
    run.add_argument("--epochs", type=int, default=None, metavar="N", help="set training.epochs")
    run.add_argument("--seeds", type=int, default=None, metavar="N", help="set grid.seeds (seeds 0..N-1)")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a value of the experiment, e.g. --set training.lr=0.1 --set network.hidden=[4]",
    )
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    run.set_defaults(func=_cmd_run)

    ls = sub.add_parser("ls", help="list the runs of a runs folder: cell, seed, status, final loss and accuracy")
    ls.add_argument("folder", metavar="DIR", help="a folder written by 'hud run'")
    ls.add_argument("--csv", metavar="FILE", help="write the table to a CSV file instead")
    ls.set_defaults(func=_cmd_ls)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hud`` command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except HudError as exc:
        print(f"hud: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("hud: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
