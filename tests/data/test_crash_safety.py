"""Crash safety, demonstrated: SIGKILL at random moments, SIGTERM, SIGINT, resuming after a kill, a full disk.

The rule under test (the design's "a run killed at any moment leaves a file that opens and holds
every epoch completed before the kill"), made exact:

- An epoch is *completed* once it is committed: the Recorder's ``on_commit`` callback reports it,
  after the commit marker's own flush.
- After a kill, if at least one epoch was reported committed, the file exists and opens with plain
  h5py; its marker ``/commit[0]`` (committed rows) covers every reported epoch; every row below the
  marker matches what was recorded, byte for byte; every epoch-indexed dataset holds at least the
  rows the marker claims; and hud's reader shows exactly the committed rows (rows past the marker,
  a block being written when the kill came, are ignored) with the status 'interrupted at epoch N',
  N the last committed epoch.
- If no epoch was reported committed (a kill while the process started or the file was being
  created), the file may be missing or unreadable; if it does open and has a marker, the same
  checks apply to its rows.

SIGTERM and SIGINT unwind training and close the file (status 'interrupted', every epoch handed to
the Recorder committed); a run killed by SIGKILL resumes to the very numbers of an uninterrupted
run; a full disk stops the recording with one RecordingError and leaves the committed epochs
readable.

Children run in processes forked from a multiprocessing fork server that has imported torch, h5py
and hud once (a fresh interpreter takes about 3 s to import torch), so a few dozen kills fit in a
short test.  ``benchmarks/bench_crash.py`` runs the long version (500 kills) with the same child and
checker.

The checker reads files with h5py alone, spelling the paths as the documented format does: it is
what another tool sees, without hud.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import random
import resource
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np
import pytest
import torch

from data import RecordingError, load_task
from data.recording import open_recording
from models import Callback, NetworkConfig, build_network, train
from models.recorder import Recorder

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals, rlimits and a fork server")

__all__ = [
    "PATTERN_NETWORK",
    "Verdict",
    "pattern_parameters",
    "pattern_metrics",
    "pattern_rows",
    "record_pattern",
    "record_pattern_unplanned",
    "train_spirals",
    "start_child",
    "kill_trial",
    "read_reports",
    "wait_for_commit",
    "last_epoch_taken",
    "verify_pattern_file",
    "check_with_hud",
    "write_past_the_marker",
]

# ----------------------------------------------------------------------------- the deterministic pattern

#: 4-32-16-3 ReLU net whose weights, set from the epoch number alone, are multiples of 1/16 in [-1/2, 1/2]
PATTERN_NETWORK = NetworkConfig(4, 3, (32, 16), activation="relu")
_PROBE = np.random.default_rng(7).integers(-2, 3, size=(200, 4)).astype(np.float32)  # small integers
_LAYERS = ("hidden1", "hidden2")


def _parameter_shapes() -> list[tuple[str, tuple[int, ...]]]:
    net = build_network(PATTERN_NETWORK, seed=0)
    return [(name, tuple(p.shape)) for name, p in net.named_parameters()]


_SHAPES = _parameter_shapes()


def pattern_parameters(epoch: int) -> dict[str, np.ndarray]:
    """The network's weights at ``epoch``: a deterministic function of the epoch, different at every epoch.

    Every weight is k/16 with k in [-8, 8] (the first output bias is epoch/4096), so every
    activation is a dyadic rational that float32 holds exactly whatever the summation order:
    numpy in float64 gives the very bytes torch computes in float32.

    Parameters
    ----------
    epoch : int

    Returns
    -------
    dict of str to ndarray (float32)
    """
    out: dict[str, np.ndarray] = {}
    offset = 0
    for name, shape in _SHAPES:
        i = np.arange(offset, offset + math.prod(shape), dtype=np.int64)
        k = (i * 7 + epoch * 3 + (epoch // 17) * (i % 5 + 1)) % 17 - 8
        out[name] = (k / 16).astype(np.float32).reshape(shape)
        offset += len(i)
    out["output.bias"][0] = np.float32(epoch / 4096)
    return out


def pattern_metrics(epoch: int) -> dict[str, float]:
    """The metrics recorded at ``epoch`` (``time`` included, so nothing depends on the clock)."""
    return {"loss": epoch / 8, "accuracy": (epoch % 257) / 256, "time": float(epoch)}


def pattern_rows(epoch: int) -> dict[str, np.ndarray]:
    """Every row the recording must hold for ``epoch``, computed with numpy (no torch, no hud).

    Parameters
    ----------
    epoch : int

    Returns
    -------
    dict of HDF5 path to ndarray
        Activations and pre-activations (sample, unit), parameters, metrics and the epoch number.
    """
    p = pattern_parameters(epoch)
    rows: dict[str, np.ndarray] = {"epoch": np.int64(epoch)}
    h = _PROBE.astype(np.float64)
    for name in _LAYERS:
        pre = h @ p[f"{name}.linear.weight"].T.astype(np.float64) + p[f"{name}.linear.bias"]
        h = np.maximum(pre, 0.0)
        rows[f"layers/{name}/preactivation"] = pre.astype(np.float32)
        rows[f"layers/{name}/activation"] = h.astype(np.float32)
    out = (h @ p["output.weight"].T.astype(np.float64) + p["output.bias"]).astype(np.float32)
    rows["layers/output/activation"] = out  # no loss given: the output is the logits
    rows["layers/output/preactivation"] = out
    rows.update({f"parameters/{name}": value for name, value in p.items()})
    rows.update({f"metrics/{name}": np.float64(value) for name, value in pattern_metrics(epoch).items()})
    return rows


# ----------------------------------------------------------------------------- children


def _reporter(report: str) -> Callable[[str], None]:
    """A line writer to ``report``: one os.write per line, O_APPEND, survives SIGKILL of the writer."""
    fd = os.open(report, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def say(line: str) -> None:
        os.write(fd, (line + "\n").encode())

    return say


def _report_exception(say: Callable[[str], None], exc: BaseException) -> None:
    chained = type(exc.__context__).__name__ if exc.__context__ is not None else "-"
    say(f"raised {type(exc).__name__} {chained} {' '.join(str(exc).split())}")


def _limit_file_size(fsize_limit: int | None) -> None:
    if fsize_limit is not None:  # writes past the limit fail with EFBIG instead of killing the process
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


def record_pattern(
    path: str,
    report: str,
    *,
    epochs: int = 20_000,
    commit_every: float = 0.01,
    pause: float = 0.0,
    fsize_limit: int | None = None,
    planned: bool = True,
) -> None:
    """Child: record the pattern by hand with a Recorder, reporting each committed epoch to ``report``.

    Parameters
    ----------
    path, report : str
        The recording, and the text file that receives ``commit <epoch>`` lines (then ``done`` or
        ``raised <exception> <context exception> <message>``).
    epochs : int
        Last epoch (the parent usually kills the child long before).
    commit_every : float
        The Recorder's seconds between group commits.
    pause : float
        Seconds to sleep after each epoch (keeps files small in long runs).
    fsize_limit : int, optional
        RLIMIT_FSIZE for this process: a disk that fills up.
    planned : bool
        Tell the Recorder ``epochs`` (its datasets are then made that long at the start); without it
        they grow, after the first commit in copies of the file (see data/recording.py).
    """
    say = _reporter(report)
    _limit_file_size(fsize_limit)
    torch.set_num_threads(1)
    net = build_network(PATTERN_NETWORK, seed=0)
    params = dict(net.named_parameters())
    try:
        with Recorder(
            path,
            probe=_PROBE,
            preactivation=True,
            epochs=epochs if planned else None,
            commit_every=commit_every,
            max_buffer_bytes=4 << 20,
            verbose=False,
            on_commit=lambda e: say(f"commit {e}"),
        ) as rec:
            for epoch in range(epochs + 1):
                with torch.no_grad():
                    for name, value in pattern_parameters(epoch).items():
                        params[name].copy_(torch.from_numpy(value))
                rec.record(net, epoch, metrics=pattern_metrics(epoch))
                if pause:
                    time.sleep(pause)
    except BaseException as exc:
        _report_exception(say, exc)
        raise
    say("done")


def record_pattern_unplanned(path: str, report: str, **options: Any) -> None:
    """Child: :func:`record_pattern` by a Recorder not told the run's epochs."""
    record_pattern(path, report, planned=False, **options)


class _Progress(Callback):
    """After the Recorder's ``on_epoch_end``: reports ``epoch <k>`` (the Recorder has taken epoch k), then sleeps."""

    def __init__(self, say: Callable[[str], None] | None, seconds: float) -> None:
        self.say, self.seconds = say, seconds

    def on_epoch_end(self, state) -> None:
        if self.say is not None:
            self.say(f"epoch {state.epoch}")
        if self.seconds:
            time.sleep(self.seconds)


def train_spirals(
    path: str,
    *,
    epochs: int,
    batch_size: int | None = None,
    optimizer: str = "momentum",
    resume: bool = False,
    report: str | None = None,
    sleep: float = 0.0,
    commit_every: float = 0.05,
    max_buffer_bytes: int = 256 << 20,
    fsize_limit: int | None = None,
):
    """Train the course's 2-10-10-1 tanh net on the spirals with a Recorder (in a child, or in-process).

    Parameters
    ----------
    path : str
        The recording.
    epochs, batch_size, optimizer
        The run (full batch with momentum, or mini-batch with Adam); seed 3 throughout.
    resume : bool
        Resume the recording at ``path`` (``Recorder(path, resume=True)``).
    report : str, optional
        In a child: the file that receives ``commit <epoch>`` lines from ``on_commit``, an
        ``epoch <k>`` line once the Recorder has taken epoch k, and how the run ended.
    sleep : float
        Seconds to sleep after each epoch (keeps the run going long enough to be interrupted).
    commit_every, max_buffer_bytes
        The Recorder's.
    fsize_limit : int, optional
        RLIMIT_FSIZE for this process.

    Returns
    -------
    TrainResult
    """
    say = _reporter(report) if report else None
    if report:  # a child: SIGINT raises KeyboardInterrupt even where it was ignored when the server started
        signal.signal(signal.SIGINT, signal.default_int_handler)
    _limit_file_size(fsize_limit)
    options = {"momentum": {"lr": 0.01, "optimizer_options": {"momentum": 0.9}}, "adam": {"lr": 0.005}}[optimizer]
    rec = Recorder(
        path,
        resume=resume,
        commit_every=commit_every,
        max_buffer_bytes=max_buffer_bytes,
        verbose=False,
        on_commit=(lambda e: say(f"commit {e}")) if say else None,
    )
    try:
        result = train(
            NetworkConfig(2, 1, (10, 10), activation="tanh"),
            load_task("spirals", grid_size=5),
            loss="bce",
            optimizer=optimizer,
            epochs=epochs,
            batch_size=batch_size,
            callbacks=[rec, _Progress(say, sleep)],
            seed=3,
            **options,
        )
    except BaseException as exc:
        if say:
            _report_exception(say, exc)
        raise
    if say:
        say("done")
    return result


# what the fork server imports once (torch._dynamo: 2 s at a process's first optimizer)
_PRELOAD = ["torch", "torch._dynamo", "h5py", "pandas", "data.recording", "models.recorder", __name__]


def start_child(target: Callable[..., object], *args, **kwargs) -> multiprocessing.process.BaseProcess:
    """Start ``target(*args, **kwargs)`` in a process forked from a fork server that imported hud once."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    proc = ctx.Process(target=target, args=args, kwargs=kwargs, daemon=True)
    proc.start()
    return proc


def read_reports(report: str) -> tuple[list[int], list[str]]:
    """(committed epochs reported, other lines) from a report file; a torn last line is dropped."""
    try:
        with open(report, "rb") as fh:
            text = fh.read().decode(errors="replace")
    except FileNotFoundError:
        return [], []
    lines = text.split("\n")[:-1]  # only complete lines
    commits = [int(line.split()[1]) for line in lines if line.startswith("commit ")]
    return commits, [line for line in lines if not line.startswith(("commit ", "epoch "))]


def last_epoch_taken(report: str) -> int:
    """The last ``epoch <k>`` line of a training child's report (-1: none)."""
    with open(report, "rb") as fh:
        lines = fh.read().decode(errors="replace").split("\n")[:-1]
    taken = [int(line.split()[1]) for line in lines if line.startswith("epoch ")]
    return taken[-1] if taken else -1


def wait_for_commit(report: str, epoch: int, proc, timeout: float = 60.0) -> int:
    """Wait until ``report`` shows a committed epoch >= ``epoch``; return the last one reported."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        commits, _ = read_reports(report)
        if commits and commits[-1] >= epoch:
            return commits[-1]
        if not proc.is_alive():
            raise AssertionError(
                f"the child exited ({proc.exitcode}) before committing epoch {epoch}: {read_reports(report)}"
            )
        time.sleep(0.002)
    raise AssertionError(f"no commit of epoch {epoch} within {timeout} s")


# ----------------------------------------------------------------------------- checking, with h5py alone


@dataclass
class Verdict:
    """What a killed child left behind.

    Attributes
    ----------
    reported : int
        The last epoch the child reported committed (-1: none).
    exists, opened : bool
        The file exists; it opens with plain h5py.
    committed : int
        Rows the commit marker claims (-1: no readable marker).
    past_marker : bool
        Some epoch-indexed dataset holds rows past the marker (they must be ignored).
    bad : set of int
        Epochs below the marker whose rows are unreadable or differ from the pattern.
    problems : list of str
        Every violated rule; empty when the file keeps the contract.
    """

    reported: int
    exists: bool = False
    opened: bool = False
    committed: int = -1
    past_marker: bool = False
    bad: set[int] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        """Epochs reported committed that the file does not hold correctly."""
        if not self.opened or self.committed < 0:
            return self.reported + 1
        held = min(self.committed, self.reported + 1)
        return self.reported + 1 - held + sum(e <= self.reported for e in self.bad)

    @property
    def false_claims(self) -> int:
        """Epochs the marker claims that are not what was recorded (beyond those reported)."""
        return sum(e > self.reported for e in self.bad)


def _epoch_datasets(f: h5py.File) -> dict[str, h5py.Dataset]:
    found: dict[str, h5py.Dataset] = {"epoch": f["epoch"]} if "epoch" in f else {}

    def visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Dataset) and name.split("/", 1)[0] in (
            "metrics",
            "layers",
            "parameters",
            "norms",
            "optimizer",
        ):
            found[name] = obj

    f.visititems(visit)
    return found


def verify_pattern_file(path: str, reported: int) -> Verdict:
    """Check a recording of :func:`record_pattern` with plain h5py against the rule of this module.

    Parameters
    ----------
    path : str
    reported : int
        The last epoch reported committed before the kill (-1: none).

    Returns
    -------
    Verdict
    """
    v = Verdict(reported)
    v.exists = os.path.exists(path)
    must = reported >= 0  # the file must keep these epochs
    if not v.exists:
        if must:
            v.problems.append(f"file missing although epoch {reported} was reported committed")
        return v
    try:
        f = h5py.File(path, "r")
    except Exception as exc:  # noqa: BLE001 - any failure to open is a finding
        if must:
            v.problems.append(f"file does not open although epoch {reported} was committed: {exc}")
        return v
    v.opened = True
    with f:
        try:
            n = int(f["commit"][0])
        except Exception as exc:  # noqa: BLE001
            if must:
                v.problems.append(f"no readable commit marker although epoch {reported} was committed: {exc}")
            return v
        v.committed = n
        if n < reported + 1:
            v.problems.append(f"marker claims {n} rows but epochs 0..{reported} were reported committed")
        expected_paths = set(pattern_rows(0))
        try:
            datasets = _epoch_datasets(f)
        except Exception as exc:  # noqa: BLE001
            v.problems.append(f"cannot list datasets: {exc}")
            return v
        missing = sorted(expected_paths - set(datasets))
        if n > 0 and missing:
            v.problems.append(f"committed rows but datasets missing: {missing}")
            v.bad.update(range(n))
            return v
        for name, ds in datasets.items():
            if ds.shape[0] < n:  # the marker claims rows this dataset does not have
                v.problems.append(f"{name} holds {ds.shape[0]} rows, fewer than the {n} the marker claims")
                v.bad.update(range(ds.shape[0], n))
            v.past_marker |= ds.shape[0] > n
        held = min([n, *(datasets[name].shape[0] for name in expected_paths)]) if n else 0
        expected = [pattern_rows(e) for e in range(held)]
        for name in sorted(expected_paths) if held else ():
            want = np.stack([rows[name] for rows in expected])
            try:
                got = datasets[name][:held]
            except Exception as exc:  # noqa: BLE001 - read row by row to tell which epochs are lost
                v.problems.append(f"{name}: committed rows unreadable: {exc}")
                got = None
            if got is not None and got.dtype == want.dtype and got.tobytes() == want.tobytes():
                continue
            for e in range(held):
                try:
                    row = np.asarray(datasets[name][e])
                except Exception:  # noqa: BLE001
                    v.bad.add(e)
                    continue
                if row.dtype != want.dtype or row.tobytes() != want[e].tobytes():
                    v.bad.add(e)
            if got is not None:
                v.problems.append(f"{name}: committed rows differ from the pattern (epochs {sorted(v.bad)[:5]}...)")
    return v


def check_with_hud(path: str, committed: int, status_text: str) -> list[str]:
    """hud's reader must show exactly the committed rows and the given status text."""
    problems = []
    try:
        with open_recording(path) as rec:
            if rec.status_text != status_text:
                problems.append(f"hud status {rec.status_text!r}, expected {status_text!r}")
            if not np.array_equal(rec.epochs, np.arange(committed)):
                problems.append(f"hud epochs {rec.epochs[:3]}..{rec.epochs[-3:]}, expected 0..{committed - 1}")
            if committed:
                if rec.activations("hidden1").shape[0] != committed or len(rec.metrics) != committed:
                    problems.append("hud arrays do not have the committed number of epochs")
                last = pattern_rows(committed - 1)
                if not np.array_equal(rec.activations("hidden2", committed - 1), last["layers/hidden2/activation"]):
                    problems.append("hud reads another last epoch than the pattern's")
    except Exception as exc:  # noqa: BLE001
        problems.append(f"hud cannot open the file: {type(exc).__name__}: {exc}")
    return problems


def kill_trial(
    folder: str,
    index: int,
    delay: float,
    *,
    commit_every: float = 0.01,
    pause: float = 0.0,
    after_first_commit: bool = False,
    target: Callable[..., None] = record_pattern,
    keep: str | None = None,
) -> Verdict:
    """Record the pattern in a child, SIGKILL it after ``delay`` seconds, check what it left.

    Parameters
    ----------
    folder : str
        Where the recording and the report go (both removed afterwards).
    index : int
        Names the files.
    delay : float
        Seconds from starting the child (or from its first reported commit) to the kill.
    commit_every, pause : float
        Passed to :func:`record_pattern`.
    after_first_commit : bool
        Count ``delay`` from the child's first reported commit rather than from its start.
    target : callable
        The child: :func:`record_pattern` or a variant with its signature.
    keep : str, optional
        A folder to copy the recording and the report into when the file breaks the rule.

    Returns
    -------
    Verdict
        With hud's view of the file appended to its problems.
    """
    path = os.path.join(folder, f"kill{index}.h5")
    report = os.path.join(folder, f"kill{index}.txt")
    proc = start_child(target, path, report, commit_every=commit_every, pause=pause)
    if after_first_commit:
        wait_for_commit(report, 0, proc)
    time.sleep(delay)
    proc.kill()
    proc.join(30)
    commits, other = read_reports(report)
    reported = commits[-1] if commits else -1
    v = verify_pattern_file(path, reported)
    if any(a >= b for a, b in zip(commits, commits[1:])):
        v.problems.append(f"commits reported out of order: {commits[:10]}")
    if proc.exitcode != -signal.SIGKILL:
        v.problems.append(f"child ended with {proc.exitcode} before the kill: {other}")
    elif v.committed >= 0 and not v.problems:
        v.problems += check_with_hud(path, v.committed, f"interrupted at epoch {v.committed - 1}")
    for p in (path, report):
        if os.path.exists(p):
            if keep is not None and v.problems:
                shutil.copy(p, keep)
            os.remove(p)
    return v


# ----------------------------------------------------------------------------- tests


def test_the_pattern_is_what_torch_computes():
    """The numpy reference equals, byte for byte, the network's own float32 forward pass."""
    net = build_network(PATTERN_NETWORK, seed=0)
    for epoch in (0, 1, 16, 17, 1000, 123_457):
        with torch.no_grad():
            for name, p in net.named_parameters():
                p.copy_(torch.from_numpy(pattern_parameters(epoch)[name]))
            rows = pattern_rows(epoch)
            x = torch.from_numpy(_PROBE)
            h1 = net.hidden1(x)
            assert h1.numpy().tobytes() == rows["layers/hidden1/activation"].tobytes()
            assert net(x).numpy().tobytes() == rows["layers/output/activation"].tobytes()
    a, b = pattern_rows(3), pattern_rows(3 + 17 * 5)
    assert not np.array_equal(a["layers/hidden2/activation"], b["layers/hidden2/activation"])


def test_random_sigkills_lose_no_committed_epoch(tmp_path):
    """24 SIGKILLs at seeded random moments: 6 within 60 ms of the start (while the child sets up and
    creates the file), 18 within 0.25 s of its first commit (while it appends, flushes and commits)."""
    rng = random.Random(20261101)
    early = [rng.uniform(0.0, 0.06) for _ in range(6)]
    late = [rng.uniform(0.0, 0.25) for _ in range(18)]
    start_child(time.sleep, 0).join()  # start the fork server outside the timings
    folder = str(tmp_path)
    verdicts = [kill_trial(folder, i, d) for i, d in enumerate(early)]
    verdicts += [kill_trial(folder, 6 + i, d, after_first_commit=True) for i, d in enumerate(late)]
    problems = [(i, v.reported, v.problems) for i, v in enumerate(verdicts) if v.problems]
    assert not problems, problems
    assert all(v.reported >= 0 for v in verdicts[6:])
    assert any(v.reported < 0 for v in verdicts[:6])  # the rule's other half was exercised too


def test_random_sigkills_of_an_unplanned_recording_lose_no_committed_epoch(tmp_path):
    """12 SIGKILLs within 0.6 s of the first commit of a Recorder that does not know the run's length: its
    datasets grow (doubling) after commits, each growth in a copy of the file renamed over it."""
    rng = random.Random(20261201)
    start_child(time.sleep, 0).join()
    folder = str(tmp_path)
    verdicts = [
        kill_trial(folder, i, rng.uniform(0.0, 0.6), after_first_commit=True, target=record_pattern_unplanned)
        for i in range(12)
    ]
    problems = [(i, v.reported, v.problems) for i, v in enumerate(verdicts) if v.problems]
    assert not problems, problems
    assert all(v.reported >= 0 for v in verdicts)


def test_a_file_killed_before_its_first_commit_is_missing_unreadable_or_empty(tmp_path):
    """The rule's other half: with no epoch reported committed, only an empty marker may be claimed."""
    v = verify_pattern_file(str(tmp_path / "never-created.h5"), -1)
    assert v.problems == [] and not v.exists
    (tmp_path / "junk.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)  # a torn superblock
    v = verify_pattern_file(str(tmp_path / "junk.h5"), -1)
    assert v.problems == [] and v.exists and not v.opened
    v = verify_pattern_file(str(tmp_path / "junk.h5"), 0)
    assert v.problems and "does not open" in v.problems[0]


@pytest.mark.parametrize(
    "signum, max_buffer_bytes, delays",
    [
        (signal.SIGTERM, 256 << 20, [0.0]),
        (signal.SIGINT, 256 << 20, [0.0]),
        (signal.SIGTERM, 1, [0.0, 0.013, 0.029, 0.041]),
        (signal.SIGINT, 1, [0.0, 0.017]),
    ],
    ids=["SIGTERM", "SIGINT", "SIGTERM-during-hand-over", "SIGINT-during-hand-over"],
)
def test_sigterm_and_sigint_close_the_file_cleanly(tmp_path, signum, max_buffer_bytes, delays):
    """The signal unwinds train(); every epoch the Recorder was handed is committed; the file says interrupted.

    With a 1-byte buffer the training thread spends much of its time in the Recorder, waiting to hand
    the next block to the writer thread, so the signal often arrives in the middle of a hand-over.
    """
    for k, delay in enumerate(delays):
        path, report = str(tmp_path / f"run{k}.h5"), str(tmp_path / f"run{k}.txt")
        proc = start_child(
            train_spirals, path, epochs=1_000_000, report=report, sleep=0.0005, max_buffer_bytes=max_buffer_bytes
        )
        before = wait_for_commit(report, 50, proc)  # the last epoch reported committed before the signal
        time.sleep(delay)
        os.kill(proc.pid, signum)
        proc.join(60)
        commits, other = read_reports(report)
        taken = last_epoch_taken(report)  # the last epoch the Recorder was handed before the signal
        if signum == signal.SIGTERM:
            assert proc.exitcode == 143  # SystemExit(128 + 15) from the Recorder's handler
            assert other[-1].startswith("raised SystemExit - 143"), other
        else:
            assert proc.exitcode == 1  # a multiprocessing child's uncaught exception
            assert other[-1].startswith("raised KeyboardInterrupt -"), other
        with h5py.File(path, "r") as f:
            n = int(f["commit"][0])
            epochs = f["epoch"][()]
            assert f.attrs["status"] == "interrupted"
            assert all(ds.shape[0] == n for ds in _epoch_datasets(f).values())  # closed: nothing past the marker
            assert np.array_equal(epochs, np.arange(n))
            assert f["layers/hidden2/activation"][:n].shape == (n, 194, 10)
            assert not np.isnan(f["layers/hidden2/activation"][:n]).any()
        assert epochs[-1] >= max(before, commits[-1], taken), (delay, taken)  # every epoch handed over is in
        with open_recording(path) as rec:
            assert rec.status_text == f"interrupted at epoch {epochs[-1]}"


def _compare_recordings(path: str, reference: str) -> None:
    with h5py.File(path, "r") as f, h5py.File(reference, "r") as g:
        n = int(f["commit"][0])
        assert n == int(g["commit"][0])
        assert np.array_equal(f["epoch"][:n], np.arange(n))
        a, b = _epoch_datasets(f), _epoch_datasets(g)
        assert set(a) == set(b)
        for name in sorted(a):
            if name == "metrics/time":
                continue
            x, y = a[name][:n], b[name][:n]
            assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), name  # bit for bit
        assert f.attrs["status"] == g.attrs["status"] == "complete"


@pytest.mark.parametrize(
    "batch_size, optimizer, epochs, kill_at",
    [(None, "momentum", 300, 100), (32, "adam", 40, 15)],
    ids=["full-batch-momentum", "minibatch-adam"],
)
def test_resume_after_sigkill_equals_an_uninterrupted_run(tmp_path, batch_size, optimizer, epochs, kill_at):
    path, report = str(tmp_path / "run.h5"), str(tmp_path / "run.txt")
    proc = start_child(
        train_spirals, path, epochs=epochs, batch_size=batch_size, optimizer=optimizer, report=report, sleep=0.002
    )
    wait_for_commit(report, kill_at, proc)
    proc.kill()
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    with h5py.File(path, "r") as f:
        killed_at = int(f["epoch"][int(f["commit"][0]) - 1])
    assert kill_at <= killed_at < epochs
    same = {"epochs": epochs, "batch_size": batch_size, "optimizer": optimizer, "commit_every": 0.25}
    resumed = train_spirals(path, resume=True, **same)
    reference = train_spirals(str(tmp_path / "ref.h5"), **same)
    assert resumed.status == reference.status == "complete"
    for (name, p), (_, q) in zip(resumed.network.named_parameters(), reference.network.named_parameters()):
        assert torch.equal(p, q), name
    _compare_recordings(path, str(tmp_path / "ref.h5"))


@pytest.mark.skipif(not hasattr(os, "posix_fallocate"), reason="the writer reserves space with posix_fallocate")
@pytest.mark.parametrize("how", ["by-hand", "train"])
def test_a_full_disk_stops_the_recording_with_one_clear_error(tmp_path, how):
    """RLIMIT_FSIZE plays the full disk: writes past the limit fail with EFBIG (SIGXFSZ ignored).

    The recording stops with one RecordingError that says so and names the last committed epoch;
    the file stays within the limit, opens with plain h5py and holds every committed epoch exactly.
    Its status is 'failed' when the status itself still fits, else 'running' on disk (read as
    'interrupted').
    """
    path, report = str(tmp_path / "run.h5"), str(tmp_path / "run.txt")
    limit = 6 << 20  # bytes: a few dozen pattern epochs, or a few hundred spirals epochs
    if how == "by-hand":
        proc = start_child(record_pattern, path, report, epochs=100_000, commit_every=0.0, fsize_limit=limit)
    else:
        proc = start_child(train_spirals, path, epochs=100_000, report=report, commit_every=0.01, fsize_limit=limit)
    proc.join(60)
    commits, other = read_reports(report)
    assert proc.exitcode == 1, other
    raised = [line for line in other if line.startswith("raised")]
    assert len(raised) == 1, other
    kind, context, message = raised[0].split(" ", 3)[1:]
    assert kind == "RecordingError" and context == "-", raised  # one error, not one raised while handling another
    assert "stopped" in message and f"epochs up to {commits[-1]} are committed and readable" in message, message
    assert os.path.getsize(path) <= limit
    with h5py.File(path, "r") as f:
        n = int(f["commit"][0])
        assert int(f["epoch"][n - 1]) == commits[-1]
        assert not np.isnan(f["layers/hidden1/activation"][:n]).any()
    if how == "by-hand":
        v = verify_pattern_file(path, commits[-1])
        assert v.problems == [], v.problems
    with open_recording(path) as rec:
        assert rec.last_epoch == commits[-1]
        assert rec.status in ("failed", "interrupted")
        rec.activations("hidden1")


def write_past_the_marker(path: str) -> None:
    """Child: commit epochs 0..4, append and flush epochs 5..9 without committing them, then die by SIGKILL."""
    from data.recording import RecordingWriter
    from data.tasks import Probe

    def block(epochs: range) -> dict[str, np.ndarray]:
        rows = [pattern_rows(e) for e in epochs]
        return {name: np.stack([r[name] for r in rows]) for name in rows[0]}

    n = len(_PROBE)
    probe = Probe(_PROBE, np.zeros((n, 0), np.float32), np.full(n, -1, np.int64))
    writer = RecordingWriter(path, probe=probe, parameter_names=[name for name, _ in _SHAPES])
    writer.append(block(range(5)))
    writer.commit()
    writer.append(block(range(5, 10)))
    writer.f.flush()  # the rows are on disk, the marker still says 5
    os.kill(os.getpid(), signal.SIGKILL)


def test_rows_past_the_marker_are_ignored_then_dropped_on_resume(tmp_path):
    from data.recording import RecordingWriter

    path = str(tmp_path / "run.h5")
    proc = start_child(write_past_the_marker, path)
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL
    v = verify_pattern_file(path, 4)
    assert v.problems == [] and v.committed == 5 and v.past_marker
    with h5py.File(path, "r") as f:
        assert int(f["commit"][0]) == 5  # datasets are allocated ahead: at least a chunk of rows, 10 written
        assert f["epoch"].shape[0] >= 10 and f["layers/hidden1/activation"].shape[0] >= 10
        np.testing.assert_array_equal(f["epoch"][:10], np.arange(10))
    assert check_with_hud(path, 5, "interrupted at epoch 4") == []
    writer = RecordingWriter(path, mode="resume")
    assert (writer.rows, writer.last_epoch) == (5, 4)
    rows = [pattern_rows(e) for e in range(5, 8)]
    writer.append({name: np.stack([r[name] for r in rows]) for name in rows[0]})
    writer.close()
    v = verify_pattern_file(path, 7)
    assert v.problems == [] and v.committed == 8 and not v.past_marker
    assert check_with_hud(path, 8, "complete") == []


def test_an_error_in_on_commit_stops_the_recording_loudly(tmp_path):
    """A failing on_commit stops the recording with an error (not the writer thread alone, silently)."""
    path = str(tmp_path / "run.h5")
    seen: list[int] = []

    def on_commit(epoch: int) -> None:
        seen.append(epoch)
        if len(seen) == 2:
            raise ValueError("the progress display broke")

    net = build_network(PATTERN_NETWORK, seed=0)
    with pytest.raises(RecordingError, match="stopped: the progress display broke") as info:
        with Recorder(path, probe=_PROBE, commit_every=0.0, epochs=200, verbose=False, on_commit=on_commit) as rec:
            for epoch in range(201):
                rec.record(net, epoch)
                time.sleep(0.001)
    assert info.value.__context__ is None  # one error, not a second one raised while closing
    assert f"epochs up to {seen[-1]} are committed and readable" in str(info.value)
    with open_recording(path) as rec:
        assert rec.status == "failed" and rec.last_epoch == seen[-1]


def test_a_recording_opens_in_the_process_that_is_writing_it(tmp_path):
    """HDF5 refuses a second handle with other locking flags; the reader matches the writer's in-process."""
    path = str(tmp_path / "run.h5")
    net = build_network(PATTERN_NETWORK, seed=0)
    with Recorder(path, probe=_PROBE, verbose=False) as rec:
        for epoch in range(5):
            rec.record(net, epoch)
        rec.flush()
        with open_recording(path) as reader:
            assert reader.status == "interrupted" and list(reader.epochs) == [0, 1, 2, 3, 4]
    with open_recording(path) as reader:
        assert reader.status == "complete"


def test_an_interrupt_while_a_recording_is_created_leaves_no_file_and_an_older_one_intact(tmp_path, monkeypatch):
    """Ctrl-C can arrive while a run creates its file (hud run saw it): nothing without a commit marker may be
    left at the path, and a recording being overwritten must survive until its successor is whole."""
    import data.recording as R
    from data.tasks import Probe

    n = len(_PROBE)
    probe = Probe(_PROBE, np.zeros((n, 0), np.float32), np.full(n, -1, np.int64))
    path = str(tmp_path / "run.h5")

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    real = R._label
    monkeypatch.setattr(R, "_label", interrupted)  # called half way through the skeleton
    with pytest.raises(KeyboardInterrupt):
        R.RecordingWriter(path, probe=probe)
    assert os.listdir(tmp_path) == []  # neither the recording nor its temporary file
    monkeypatch.setattr(R, "_label", real)
    writer = R.RecordingWriter(path, probe=probe, parameter_names=[name for name, _ in _SHAPES])
    rows = [pattern_rows(e) for e in range(3)]
    writer.append({name: np.stack([r[name] for r in rows]) for name in rows[0]})
    writer.close()
    monkeypatch.setattr(R, "_label", interrupted)
    with pytest.raises(KeyboardInterrupt):
        R.RecordingWriter(path, probe=probe, mode="overwrite")
    assert os.listdir(tmp_path) == ["run.h5"]
    assert check_with_hud(path, 3, "complete") == []  # the old recording, whole


def create_then_die(path: str) -> None:
    """Child: start creating a recording and die by SIGKILL half way through its skeleton."""
    import data.recording as R
    from data.tasks import Probe

    def die(*_args, **_kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    R._label = die
    n = len(_PROBE)
    R.RecordingWriter(path, probe=Probe(_PROBE, np.zeros((n, 0), np.float32), np.full(n, -1, np.int64)))


def test_a_run_killed_while_creating_its_file_leaves_no_damaged_recording(tmp_path):
    path = str(tmp_path / "run.h5")
    proc = start_child(create_then_die, path)
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL
    assert not os.path.exists(path)  # a stray temporary file at most, never a recording without its marker
    assert all(name.startswith(".run.h5.creating-") for name in os.listdir(tmp_path))
