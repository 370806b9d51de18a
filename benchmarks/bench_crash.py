"""Crash safety, the long version: hundreds of SIGKILLs of a recording process at random moments.

Each kill: a child process (forked from a fork server that imported torch and hud once) records a
deterministic pattern by hand with a ``Recorder`` (activations, parameters and metrics are functions
of the epoch number alone), commits every ``--commit-every`` seconds and reports each committed
epoch through ``on_commit``.  After a random, seeded delay it gets SIGKILL; the file is then checked
with plain h5py, byte for byte, against the rule stated in ``tests/data/test_crash_safety.py`` (every
epoch reported committed is in the file and exact; nothing past the commit marker is claimed), and
read back with hud's reader.  One kill in five comes within ``--max-delay`` of the child's start
(while it sets up, creates the file, writes its first blocks); the others within ``--max-delay`` of
its first reported commit (timing from the start alone would, on a busy machine, land most kills
before the first commit).

``--compare`` also runs the same kills with a commit that writes the marker before a single flush
(data and marker written in the same flush, no commit protocol), for comparison.  ``--unplanned``
runs them with a Recorder that is not told the run's epochs: its datasets are not made as long as
the run at its start but grow (doubling) after commits, each growth in a copy of the file renamed
over it.

    python benchmarks/bench_crash.py                  # 500 kills, 2 at a time: a few minutes
    python benchmarks/bench_crash.py --kills 100 --compare
    python benchmarks/bench_crash.py --unplanned --max-delay 1.5
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data import schema as S  # noqa: E402
from data.recording import RecordingWriter  # noqa: E402
from tests.data.test_crash_safety import (  # noqa: E402
    Verdict,
    kill_trial,
    record_pattern,
    record_pattern_unplanned,
    start_child,
)

__all__ = ["main", "run_kills", "summarize"]


def _commit_in_one_flush(self: RecordingWriter, checkpoint=None) -> int:
    """The comparison's commit: the marker is written first, then data and marker share one flush."""
    self.f[S.COMMIT][:] = np.array([self.rows, self._slot], np.int64)
    self.f.flush()
    self.committed = self.rows
    return self.committed


def record_without_protocol(path: str, report: str, **options) -> None:
    """Child: :func:`record_pattern` with :func:`_commit_in_one_flush` as the writer's commit."""
    RecordingWriter.commit = _commit_in_one_flush
    record_pattern(path, report, **options)


def delays(kills: int, *, seed: int, max_delay: float) -> list[tuple[float, bool]]:
    """(seconds to the SIGKILL, counted from the first commit rather than the start) for each kill."""
    rng = random.Random(seed)
    return [(rng.uniform(0.0, max_delay), rng.random() >= 0.2) for _ in range(kills)]


def run_kills(
    waits: list[tuple[float, bool]],
    *,
    workers: int,
    commit_every: float,
    target: Callable[..., None] = record_pattern,
    keep: str | None = None,
) -> list[Verdict]:
    """Run one kill trial per delay, ``workers`` at a time; return their verdicts in order."""
    with tempfile.TemporaryDirectory(prefix="hud-crash-") as folder:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [
                pool.submit(
                    kill_trial,
                    folder,
                    i,
                    d,
                    commit_every=commit_every,
                    after_first_commit=after,
                    target=target,
                    keep=keep,
                )
                for i, (d, after) in enumerate(waits)
            ]
            return [f.result() for f in futures]


def summarize(verdicts: list[Verdict]) -> dict[str, int]:
    """The counts printed for one mode."""
    reported = [v for v in verdicts if v.reported >= 0]
    early = [v for v in verdicts if v.reported < 0]
    return {
        "kills": len(verdicts),
        "files that exist": sum(v.exists for v in verdicts),
        "files that open (plain h5py)": sum(v.opened for v in verdicts),
        "kills after >= 1 reported commit": len(reported),
        "  of which files that open": sum(v.opened for v in reported),
        "completed (committed) epochs reported": sum(v.reported + 1 for v in verdicts),
        "epochs lost (reported, not readable or not exact)": sum(v.lost for v in verdicts),
        "rows claimed by the marker that are wrong": sum(v.false_claims for v in verdicts),
        "files with rows past the marker": sum(v.past_marker for v in verdicts),
        "  of which read correctly (rows ignored)": sum(v.past_marker and not v.problems for v in verdicts),
        "kills before any commit": len(early),
        "  file missing": sum(not v.exists for v in early),
        "  file exists, does not open": sum(v.exists and not v.opened for v in early),
        "  file opens, 0 rows committed": sum(v.opened and v.committed == 0 for v in early),
        "files breaking the rule": sum(bool(v.problems) for v in verdicts),
    }


def _print(title: str, counts: dict[str, int], verdicts: list[Verdict], seconds: float) -> None:
    print(f"\n{title} ({seconds:.0f} s)")
    for key, value in counts.items():
        print(f"  {key:<52} {value:>8}")
    broken = [(i, v.problems[:2]) for i, v in enumerate(verdicts) if v.problems]
    for i, problems in broken[:5]:
        print(f"  kill {i}: {problems}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=500, help="number of SIGKILLs per mode (default 500)")
    parser.add_argument("--workers", type=int, default=2, help="children killed at the same time (default 2)")
    parser.add_argument("--commit-every", type=float, default=0.01, help="the Recorder's commit_every (0.01 s)")
    parser.add_argument(
        "--max-delay", type=float, default=0.5, help="longest time from start or first commit to kill (0.5 s)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", help="a folder to copy the files that break the rule into (with their reports)")
    parser.add_argument("--compare", action="store_true", help="also run the kills without the commit protocol")
    parser.add_argument(
        "--unplanned",
        action="store_true",
        help="a Recorder not told the run's epochs (its datasets grow after commits, in copies of the file)",
    )
    args = parser.parse_args(argv)

    waits = delays(args.kills, seed=args.seed, max_delay=args.max_delay)
    n_after = sum(after for _, after in waits)
    print(
        f"{args.kills} SIGKILLs per mode, {args.workers} at a time, commit_every={args.commit_every} s; "
        f"{args.kills - n_after} within {args.max_delay} s of the start, {n_after} within {args.max_delay} s "
        f"of the first commit (seed {args.seed})"
    )
    start_child(time.sleep, 0).join()  # the fork server imports torch and hud once, before the timings
    modes = [("commit protocol (data flushed, then the marker in a flush of its own)", record_pattern)]
    if args.unplanned:
        modes = [("commit protocol, no plan (datasets grown in copies)", record_pattern_unplanned)]
    if args.compare:
        modes.append(("comparison: marker and data in one flush", record_without_protocol))
    for title, target in modes:
        t0 = time.perf_counter()
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
        verdicts = run_kills(waits, workers=args.workers, commit_every=args.commit_every, target=target, keep=args.keep)
        _print(title, summarize(verdicts), verdicts, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
