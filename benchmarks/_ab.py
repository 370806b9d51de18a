"""Interleaved A/B timing of this checkout against another commit (shared by the ``*_ab.py`` benchmarks).

The machines here drift by 15-30 % from hour to hour, so a speed-up is measured in pairs: the
two versions run the same timed snippet in turns, each in a fresh process, and the paired
ratios are printed.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["ROOT", "compare"]

#: appended to every timed snippet: it sets ``t`` (the start) and prints wall and CPU seconds (with children)
_REPORT = """
import resource as _r, time as _t
_own, _kids = _r.getrusage(_r.RUSAGE_SELF), _r.getrusage(_r.RUSAGE_CHILDREN)
print(_t.perf_counter() - t, _own.ru_utime + _own.ru_stime + _kids.ru_utime + _kids.ru_stime)
"""


@contextlib.contextmanager
def _worktree(ref: str, scratch: str) -> Iterator[str]:
    path = os.path.join(scratch, "other")
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", path, ref], check=True)
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", path], check=False)


def _time(checkout: str, code: str, args: list[str]) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": checkout}
    done = subprocess.run(
        [sys.executable, "-c", code + _REPORT, *args], cwd=checkout, env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"the timed snippet failed in {checkout}:\n{done.stderr[-2000:]}")
    wall, cpu = map(float, done.stdout.split()[-2:])
    return wall, cpu


def compare(
    ref: str,
    pairs: int,
    code: str,
    args: Callable[[str, str, int], list[str]],
    setup: Callable[[str], None] | None = None,
) -> list[float]:
    """Time ``code`` in the checkout of ``ref`` and in this one, in turns; print each pair; return the ratios.

    Parameters
    ----------
    ref : str
        The commit to compare with.
    pairs : int
    code : str
        A Python snippet that sets ``t = time.perf_counter()`` before the timed work.
    args : callable
        ``args(scratch, who, k)`` gives the snippet's command-line arguments for run ``k`` of
        ``who`` ('other' or 'this'), given a scratch folder.
    setup : callable, optional
        ``setup(scratch)`` prepares shared inputs once (with this checkout's code).
    """
    with tempfile.TemporaryDirectory() as scratch, _worktree(ref, scratch) as other:
        if setup is not None:
            setup(scratch)
        ratios = []
        for k in range(pairs):
            w_other, c_other = _time(other, code, args(scratch, "other", k))
            w_this, c_this = _time(str(ROOT), code, args(scratch, "this", k))
            ratios.append(w_other / w_this)
            print(
                f"pair {k + 1}: {ref} {w_other:.1f} s ({c_other:.1f} s CPU), "
                f"this checkout {w_this:.1f} s ({c_this:.1f} s CPU), ratio {ratios[-1]:.2f}"
            )
        print(f"median ratio {ref} / this: {statistics.median(ratios):.2f} over {pairs} pairs")
    return ratios
