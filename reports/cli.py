"""The ``hud`` command line: ``hud demo``, ``hud info``, ``hud tasks``.

Every user error is a ``HudError``: it is printed in one line, without a
traceback, and the exit status is 2 (130 after Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
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
    from .demo import run_demo

    table = run_demo(epochs=args.epochs, seeds=args.seeds, progress=not args.quiet)
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``hud`` (exposed for the docs and the tests)."""
    parser = _Parser(prog="hud", description="Watch hidden units learn: train, record, analyse, report.")
    parser.add_argument("--version", action="version", version=f"hud {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    demo = sub.add_parser("demo", help="train the bundled comparison (SSE vs cross entropy, momentum vs Adam)")
    demo.add_argument("--epochs", type=int, default=None, help="epochs per run (default: each task's own)")
    demo.add_argument("--seeds", type=int, default=2, help="seeds per configuration (default: 2)")
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(func=_cmd_demo)

    info = sub.add_parser("info", help="summarise recordings: task, network, loss, optimizer, epochs, layers, status")
    info.add_argument("recordings", nargs="+", metavar="RUN.h5", help="recording files")
    info.set_defaults(func=_cmd_info)

    tasks = sub.add_parser("tasks", help="list the tasks that load_task() and experiments accept")
    tasks.set_defaults(func=_cmd_tasks)
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
