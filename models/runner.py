"""Running an experiment's grid: in this process, in worker processes, batched, or on a Dask cluster.

``run_experiment(experiment, folder)`` writes::

    folder/
      manifest.json    {"format": "hud-experiment", "format_version": 1, "name", "hud_version",
                        "experiment": <the normalized experiment>, "axes": {axis: [values]},
                        "runs": [{"id", "file", "cell", "seed", "status", "final"}]}
      <id>.h5          one recording per run (models.recorder format)

Design
------
- **Recordings are the truth, the manifest a cache.**  A run's status and
  final metrics are read from its recording; the manifest is rewritten
  atomically (a temporary file, then ``os.replace``) when runs finish and when
  the command ends, also after Ctrl-C.
- **Rerunning is resuming.**  Finished runs (complete, converged, stopped,
  diverged) are skipped; an interrupted or failed run with a checkpoint is
  resumed exactly (``Recorder(resume=True)`` under ``train``); one without a
  checkpoint (stopped before its first commit) starts again.  A folder holding
  another experiment, or recordings without a manifest, is refused unless
  ``force`` (which starts every run again, overwriting its file).
- **Jobs.**  Runs that share a task, network, epochs, batch size, stop rules
  and recording settings form a batch (``models.batched.train_batched``,
  recorded by ``models.batch_recorder.BatchRecorder``); every other run, every
  resumed run and every run with 'lbfgs' is a single job (``models.train`` with a
  ``Recorder``).  When there are fewer jobs than workers, batches of 64 members
  or more are split so that every worker has one.
- **Executors.**  One worker: jobs run in this process.  More: a
  ``concurrent.futures.ProcessPoolExecutor`` with the 'forkserver' start method (a
  single-threaded server that imported torch once forks each worker; plain fork of a
  process that has used torch is unsafe), one torch thread per worker; workers report progress
  through a multiprocessing queue and stop at a shared event.  ``scheduler``: a
  ``dask.distributed.Client`` at that address runs the jobs; the folder must be
  one path that every worker can write.
- **Ctrl-C.**  The main process sets the stop event; each job checks it at
  least every half second of training, ends its runs as 'interrupted' (every
  recording closed and readable) and returns; the manifest is written and
  ``KeyboardInterrupt`` raised (the CLI exits with 130).  Workers ignore SIGINT
  themselves, so a terminal's Ctrl-C reaches them only through the event.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import queue
import signal
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from data import __version__
from data.errors import HudError, ParameterError, RecordingError, check_number
from data.manifest import MANIFEST_FORMAT, MANIFEST_NAME, MANIFEST_VERSION, read_manifest, write_manifest
from data.recording import open_recording

from .batched import train_batched
from .experiments import Experiment, RunSpec, _build_task, format_value
from .networks import NetworkConfig
from .training import Callback, TrainState, train

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_FORMAT",
    "MANIFEST_VERSION",
    "FINISHED",
    "run_experiment",
    "plan_jobs",
    "execute_job",
    "read_manifest",
    "list_runs",
]

#: statuses of runs that are done: a rerun skips them
FINISHED = ("complete", "converged", "stopped", "diverged")
_BATCHABLE_LAYER = r"polar|hidden\d+(\.linear|\.act)?|output"
_REPORT_EVERY = 0.2  # seconds between progress reports (and stop checks) of a job


# ----------------------------------------------------------------------------- the manifest


def _finite(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _recording_state(path: str) -> tuple[str, dict[str, Any] | None, bool]:
    """(status, final metrics or None, whether it holds a checkpoint to resume from) of a recording."""
    with open_recording(path) as rec:
        status = rec.status
        last = rec.final_metrics
        final = None
        if last:
            final = {
                "loss": _finite(last.get("loss", np.nan)),
                "accuracy": _finite(last.get("accuracy", np.nan)),
                "epochs": rec.last_epoch,
            }
        resumable = status not in FINISHED and int(rec.checkpoint().get("epoch", -1)) >= 0
    return status, final, resumable


def _entry(spec: RunSpec, status: str = "pending", final: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": spec.id, "file": spec.file, "cell": spec.cell, "seed": spec.seed, "status": status, "final": final}


def _refresh(folder: str, entry: dict[str, Any]) -> None:
    """Read a run's status and final metrics from its recording (the truth) into its manifest entry."""
    path = os.path.join(folder, entry["file"])
    if not os.path.exists(path):
        entry["status"], entry["final"] = "pending", None
        return
    try:
        entry["status"], entry["final"], _ = _recording_state(path)
    except HudError:
        entry["status"], entry["final"] = "failed", None


# ----------------------------------------------------------------------------- planning


def _differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    keys = [k for k in dict.fromkeys([*a, *b]) if k != "description" and a.get(k) != b.get(k)]
    return ", ".join(keys) or "nothing"


def _prepare(
    experiment: Experiment, folder: str, specs: list[RunSpec], force: bool
) -> tuple[dict[str, Any], list[tuple[RunSpec, str]]]:
    """The manifest to start from and the runs to do, each with its mode ('create', 'overwrite', 'resume')."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ParameterError(f"output folder {folder!r} is a file, not a folder")
    os.makedirs(folder, exist_ok=True)
    try:
        old = read_manifest(folder)
    except RecordingError:
        if not force:
            raise
        old = None  # replaced below
    normalized = experiment.to_dict()
    if old is not None and not force and not experiment.same_runs(old.get("experiment", {})):
        raise ParameterError(
            f"output folder {folder!r} holds another experiment ({old.get('name')!r}; it differs in: "
            f"{_differences(old.get('experiment', {}), normalized)}): choose another folder with -o, "
            "or pass --force to start every run again there"
        )
    if old is None and not force:
        existing = [s.file for s in specs if os.path.exists(os.path.join(folder, s.file))]
        if existing:
            raise ParameterError(
                f"output folder {folder!r} holds recordings ({existing[0]}{' ...' if len(existing) > 1 else ''}) "
                f"but no {MANIFEST_NAME}: pass --force to overwrite them, or choose another folder with -o"
            )
    entries, todo = [], []
    for spec in specs:
        path = os.path.join(folder, spec.file)
        exists = os.path.exists(path)
        if force or not exists:
            entries.append(_entry(spec))
            todo.append((spec, "overwrite" if exists else "create"))
            continue
        try:
            status, final, resumable = _recording_state(path)
        except HudError as exc:
            raise ParameterError(f"{exc}; pass --force to start run {spec.id!r} again") from None
        entries.append(_entry(spec, status, final))
        if status not in FINISHED:
            todo.append((spec, "resume" if resumable else "overwrite"))
    manifest = {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_VERSION,
        "name": experiment.name,
        "hud_version": __version__,
        "experiment": normalized,
        "axes": experiment.axes,
        "runs": entries,
    }
    return manifest, todo


def _batchable(spec: RunSpec) -> bool:
    import re

    layers = spec.record.get("layers") or []
    return spec.optimizer != "lbfgs" and all(re.fullmatch(_BATCHABLE_LAYER, n) for n in layers)


def plan_jobs(
    runs: Sequence[tuple[RunSpec, str]],
    *,
    batched: bool = True,
    workers: int = 1,
    max_members: int = 64,
    min_split: int = 64,
) -> list[dict[str, Any]]:
    """Group runs into jobs.

    Parameters
    ----------
    runs : sequence of (RunSpec, mode)
        mode: 'create', 'overwrite' or 'resume'.
    batched : bool
        Train runs that share everything but loss, optimizer, learning rate,
        hyperparameters, weight decay and seed together (resumed runs and
        'lbfgs' runs are always single jobs).
    workers : int
        Split the largest batches (of at least ``min_split`` members) in two
        until there are at least this many jobs.
    max_members : int
        The most members of one batch.
    min_split : int
        The smallest batch that is split for idle workers.  Measured on 2
        vCPUs, splitting a 32-member batch of small nets over 2 processes was
        no faster than one process (8.6-13.8 s against 10.9-13.0 s, interleaved;
        each process's writer thread competes with training), so only large
        batches are split by default.

    Returns
    -------
    list of dict
        ``{'kind': 'batch' or 'single', 'mode': ..., 'runs': [RunSpec.to_dict(), ...]}``,
        largest first.
    """
    groups: dict[str, list[tuple[RunSpec, str]]] = {}
    jobs: list[dict[str, Any]] = []
    for spec, mode in runs:
        if batched and mode != "resume" and _batchable(spec):
            groups.setdefault(spec.batch_key(), []).append((spec, mode))
        else:
            jobs.append({"kind": "single", "mode": mode, "runs": [spec.to_dict()]})
    batches: list[tuple[str, list[RunSpec]]] = []
    for members in groups.values():
        # new files and files started again share a batch: overwriting a file that does not exist creates it
        mode = "overwrite" if any(m == "overwrite" for _, m in members) else "create"
        specs = [spec for spec, _ in members]
        for start in range(0, len(specs), max_members):
            batches.append((mode, specs[start : start + max_members]))
    while len(batches) + len(jobs) < workers:
        k = max(range(len(batches)), key=lambda i: len(batches[i][1]), default=None)
        if k is None or len(batches[k][1]) < max(2, min_split):
            break
        mode, specs = batches.pop(k)
        half = (len(specs) + 1) // 2
        batches += [(mode, specs[:half]), (mode, specs[half:])]
    for mode, specs in batches:
        if len(specs) == 1:
            jobs.append({"kind": "single", "mode": mode, "runs": [specs[0].to_dict()]})
        else:
            jobs.append({"kind": "batch", "mode": mode, "runs": [s.to_dict() for s in specs]})
    jobs.sort(key=lambda j: -len(j["runs"]) * j["runs"][0]["epochs"])
    return jobs


# ----------------------------------------------------------------------------- executing one job


class _Progress(Callback):
    """Reports a job's epochs and stops it (KeyboardInterrupt) when asked, at most every ``_REPORT_EVERY`` s."""

    def __init__(self, label: str, report: Callable | None, should_stop: Callable[[], bool] | None):
        self.label = label
        self.report = report
        self.should_stop = should_stop
        self._next = 0.0

    def tick(self, epoch: int, epochs: int, *, force: bool = False) -> None:
        now = time.perf_counter()
        if now < self._next and not force:
            return
        self._next = now + _REPORT_EVERY
        if self.should_stop is not None and self.should_stop():
            raise KeyboardInterrupt("stopped by the runner")
        if self.report is not None:
            self.report(self.label, epoch, epochs)

    def on_train_begin(self, state: TrainState) -> None:
        self.tick(state.start_epoch, state.epochs, force=True)

    def on_epoch_end(self, state: TrainState) -> None:
        self.tick(state.epoch, state.epochs)


class _Observer:
    """A batch's observer: its BatchRecorder (which also says where the forward pass writes), then progress."""

    def __init__(self, recorder: Any, progress: _Progress, epochs: int) -> None:
        self.recorder = recorder
        self.progress = progress
        self.epochs = epochs
        self.outputs_for = recorder.outputs_for

    def __call__(self, run: Any, epoch: int, outputs: Mapping[str, torch.Tensor]) -> None:
        self.recorder(run, epoch, outputs)
        self.progress.tick(epoch, self.epochs)


def _result(folder: str, spec: RunSpec, error: str = "") -> dict[str, Any]:
    entry = _entry(spec)
    _refresh(folder, entry)
    if error and entry["status"] not in FINISHED:
        entry["status"] = "failed"
    entry["error"] = error
    return entry


def execute_job(
    job: Mapping[str, Any],
    folder: str | os.PathLike,
    *,
    report: Callable[[str, int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    num_threads: int | str = "auto",
    reraise_interrupt: bool = False,
) -> list[dict[str, Any]]:
    """Run one job from :func:`plan_jobs` and record its runs into ``folder``.

    Parameters
    ----------
    job : dict
        ``{'kind': 'single' or 'batch', 'mode': 'create', 'overwrite' or 'resume', 'runs': [...]}``.
    folder : str or PathLike
    report : callable, optional
        ``report(label, epoch, epochs)``, called about every 0.2 s.
    should_stop : callable, optional
        Checked as often; when it returns True the job's runs end 'interrupted'.
    num_threads : int or 'auto'
        Torch threads (see ``models.train``).
    reraise_interrupt : bool
        Raise KeyboardInterrupt after closing the recordings (in-process
        runs), instead of returning the interrupted runs' results.

    Returns
    -------
    list of dict
        One manifest entry per run (status and final metrics read from its
        recording), with an ``error`` message ('' if none).
    """
    from .batch_recorder import BatchRecorder
    from .recorder import Recorder

    folder = os.fspath(folder)
    specs = [RunSpec.from_dict(d) for d in job["runs"]]
    mode = job["mode"]
    first = specs[0]
    label = first.id if len(specs) == 1 else f"{len(specs)} runs batched ({first.task['name']})"
    progress = _Progress(label, report, should_stop)
    error = ""
    try:
        rec = first.record
        if job["kind"] == "single":
            task = _build_task(first.task)
            config = NetworkConfig.from_dict(first.network)
            recorder = Recorder(
                os.path.join(folder, first.file),
                layers=rec["layers"],
                schedule=rec["schedule"],
                preactivation=rec["preactivation"],
                resume=mode == "resume",
                overwrite=mode == "overwrite",
                verbose=False,
            )
            train(config, task, **first.train_kwargs(), callbacks=[recorder, progress], num_threads=num_threads)
        else:
            members = [s.member_spec() for s in specs]
            paths = [os.path.join(folder, s.file) for s in specs]
            progress.tick(0, first.epochs, force=True)
            with BatchRecorder(
                paths,
                layers=rec["layers"],
                schedule=rec["schedule"],
                preactivation=rec["preactivation"],
                overwrite=mode == "overwrite",
            ) as recorder:  # its writer process starts up while the task is built
                task = _build_task(first.task)
                config = NetworkConfig.from_dict(first.network)
                train_batched(
                    config,
                    task,
                    members,
                    epochs=first.epochs,
                    batch_size=first.batch_size,
                    stop_loss=first.stop_loss,
                    stop_accuracy=first.stop_accuracy,
                    observer=_Observer(recorder, progress, first.epochs),
                    num_threads=num_threads,
                )
    except KeyboardInterrupt:
        if reraise_interrupt:
            raise
    except Exception as exc:  # noqa: BLE001 - a failed job fails its runs, not the sweep
        error = f"{type(exc).__name__}: {exc}"
    return [_result(folder, s, error) for s in specs]


# ----------------------------------------------------------------------------- worker processes and Dask

_WORKER: dict[str, Any] = {}


def _init_worker(progress_queue: Any, stop: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides; the stop event tells us
    torch.set_num_threads(1)
    _WORKER["queue"], _WORKER["stop"] = progress_queue, stop


def _pool_job(job: Mapping[str, Any], folder: str) -> list[dict[str, Any]]:
    """What a worker process runs: one job, reporting progress through the queue."""
    q, stop = _WORKER["queue"], _WORKER["stop"]
    pid = os.getpid()

    def report(label: str, epoch: int, epochs: int) -> None:
        try:
            q.put_nowait((pid, label, epoch, epochs))
        except Exception:  # noqa: BLE001 - progress is best effort
            pass

    if stop.is_set():
        return [_result(folder, RunSpec.from_dict(d)) for d in job["runs"]]
    return execute_job(job, folder, report=report, should_stop=stop.is_set, num_threads=1)


def _dask_job(job: Mapping[str, Any], folder: str, stop_name: str) -> list[dict[str, Any]]:
    """What a Dask worker runs: one job, stopping when the named ``distributed.Event`` is set."""
    from distributed import Event

    event = Event(stop_name)
    last = [0.0, False]

    def should_stop() -> bool:
        now = time.monotonic()
        if now - last[0] >= 1.0:  # the event lives on the scheduler: ask at most once a second
            last[0], last[1] = now, event.is_set()
        return bool(last[1])

    torch.set_num_threads(1)
    if event.is_set():
        return [_result(folder, RunSpec.from_dict(d)) for d in job["runs"]]
    return execute_job(job, folder, should_stop=should_stop, num_threads=1)


# ----------------------------------------------------------------------------- the display


class _Display:
    """Runs done of total with an ETA, and one line per worker with its current run's epochs."""

    def __init__(self, total: int, *, enabled: bool, slots: int, desc: str) -> None:
        self.enabled = enabled
        self.slots = slots
        self.main = tqdm(total=total, unit="run", desc=desc, disable=not enabled, dynamic_ncols=True, position=0)
        self.bars: dict[Any, tqdm] = {}

    def epoch(self, key: Any, label: str, epoch: int, epochs: int) -> None:
        if not self.enabled:
            return
        bar = self.bars.get(key)
        if bar is None:
            if len(self.bars) >= self.slots:
                return
            bar = self.bars[key] = tqdm(
                total=epochs, unit="epoch", position=len(self.bars) + 1, leave=False, dynamic_ncols=True
            )
        if bar.total != epochs or bar.desc.rstrip(": ") != label[:48]:
            bar.reset(total=epochs)
            bar.set_description(label[:48], refresh=False)
        bar.update(max(0, epoch - bar.n))

    def done(self, n: int, failed: int = 0) -> None:
        self.main.update(n)
        if failed:
            self.main.set_postfix(failed=failed)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.main.close()


# ----------------------------------------------------------------------------- the sweep


def run_experiment(
    experiment: Experiment,
    folder: str | os.PathLike | None = None,
    *,
    workers: int | None = None,
    batched: bool = True,
    scheduler: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Run every run of an experiment that is not finished yet, recording each into ``folder``.

    Parameters
    ----------
    experiment : Experiment
        From ``models.experiments.load_experiment``.
    folder : str or PathLike, optional
        Where the recordings and ``manifest.json`` go (default ``runs/<name>/``).
    workers : int, optional
        Worker processes (default: ``os.cpu_count()``); 1 runs every job in this process.
    batched : bool
        Train runs of one architecture together (``train_batched``).
    scheduler : str, optional
        Address of a Dask scheduler ('tcp://host:8786'): the jobs run on that
        cluster (``workers`` is then ignored).  ``folder`` must be a path every
        worker can write.
    force : bool
        Start every run again, overwriting recordings, even if the folder
        holds another experiment.
    progress : bool
        Show progress bars (runs done of total with an ETA, and each worker's epochs).

    Returns
    -------
    dict
        The final manifest (statuses read from the recordings).  A run that
        raised has status 'failed' and is listed in ``manifest['errors']``
        (``{id: message}``; not part of the written file).

    Raises
    ------
    ParameterError
        Bad arguments, a folder holding another experiment, or existing
        recordings without a manifest (unless ``force``).
    KeyboardInterrupt
        After Ctrl-C, once every recording is closed and the manifest written.
    """
    if not isinstance(experiment, Experiment):
        raise ParameterError(f"experiment must be an Experiment (see load_experiment); got {type(experiment).__name__}")
    if workers is None:
        workers = os.cpu_count() or 1
    workers = int(check_number("workers", workers, low=1, high=4096, integer=True))
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler):
        raise ParameterError(f"scheduler must be a Dask scheduler address such as 'tcp://host:8786'; got {scheduler!r}")
    folder = os.path.abspath(os.fspath(folder) if folder is not None else os.path.join("runs", experiment.name))
    specs = experiment.runs()
    manifest, todo = _prepare(experiment, folder, specs, force)
    write_manifest(folder, manifest)
    entries = {e["id"]: e for e in manifest["runs"]}
    errors: dict[str, str] = {}
    n_jobs_workers = 1 if scheduler else workers
    jobs = plan_jobs(todo, batched=batched, workers=n_jobs_workers)
    if todo:
        _announce(folder, todo, verbose=progress)
    display = _Display(len(todo), enabled=progress and bool(jobs), slots=min(workers, len(jobs)), desc=experiment.name)

    def on_result(results: list[dict[str, Any]]) -> None:
        for r in results:
            error = r.pop("error", "")
            if error:
                errors[r["id"]] = error
            entries[r["id"]].update(r)
        display.done(len(results), failed=len(errors))
        write_manifest(folder, manifest)

    try:
        if not jobs:
            pass
        elif scheduler:
            _run_dask(jobs, folder, scheduler, on_result)
        elif workers == 1 or len(jobs) == 1:
            _run_inline(jobs, folder, display, on_result)
        else:
            _run_pool(jobs, folder, workers, display, on_result)
    finally:
        display.close()
        for entry in manifest["runs"]:
            _refresh(folder, entry)
        write_manifest(folder, manifest)
    return {**manifest, "errors": errors}


def _expected_sizes(todo: Sequence[tuple[RunSpec, str]]) -> list[int]:
    """Each run's expected recording size on disk (:func:`expected_recording_size`), estimated once for runs
    that differ only in what does not change it (seed, learning rate, loss, weight decay)."""
    import json

    from .networks import build_network
    from .optim import get_optimizer
    from .recorder import expected_recording_size

    sizes, known = [], {}
    for spec, _ in todo:
        key = json.dumps(
            [spec.task, spec.network, spec.optimizer, spec.optimizer_options, spec.epochs, spec.record],
            sort_keys=True,
            default=str,
        )
        if key not in known:
            net = build_network(NetworkConfig.from_dict(spec.network), seed=spec.seed)
            opt = get_optimizer(spec.optimizer, net.parameters(), lr=spec.lr, **spec.optimizer_options)
            known[key] = expected_recording_size(
                net,
                _build_task(spec.task),
                epochs=spec.epochs,
                schedule=spec.record["schedule"],
                layers=spec.record["layers"],
                preactivation=spec.record["preactivation"],
                optimizer=opt,
            )
        sizes.append(known[key])
    return sizes


def _announce(folder: str, todo: Sequence[tuple[RunSpec, str]], *, verbose: bool) -> int:
    """Print what the runs to do are expected to add on disk (a warning, also when not ``verbose``, when that
    exceeds the free space); returns those bytes."""
    from data.recording import bytes_on_disk, format_bytes, free_space, warn_if_no_room

    sizes = _expected_sizes(todo)
    have = sum(bytes_on_disk(os.path.join(folder, s.file)) for s, mode in todo if mode == "resume")
    total, free = max(0, sum(sizes) - have), free_space(folder)
    low, high = format_bytes(min(sizes)), format_bytes(max(sizes))
    each = low if low == high else f"{low} to {high}"
    if verbose:
        print(
            f"hud run: {len(todo)} recording{'s' if len(todo) > 1 else ''} of about {each} each: "
            f"{format_bytes(total)} more on disk in {folder} ({format_bytes(free)} free)",
            file=sys.stderr,
        )
    advice = "record fewer epochs with [record] schedule = 'log', or fewer runs"
    warn_if_no_room(f"what the runs to do add in {folder}", total, free, advice=advice, stacklevel=3)
    return total


def _run_inline(jobs: list[dict[str, Any]], folder: str, display: _Display, on_result: Callable) -> None:
    def report(label: str, epoch: int, epochs: int) -> None:
        display.epoch(0, label, epoch, epochs)

    for job in jobs:
        on_result(execute_job(job, folder, report=report, reraise_interrupt=True))


def _run_pool(jobs: list[dict[str, Any]], folder: str, workers: int, display: _Display, on_result: Callable) -> None:
    ctx = mp.get_context("forkserver")
    # the fork server imports torch and hud once; each worker forks from it (single-threaded, no torch state used)
    ctx.set_forkserver_preload(["models.runner", "torch._dynamo"])
    progress_queue = ctx.Queue()
    stop = ctx.Event()
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(jobs)), mp_context=ctx, initializer=_init_worker, initargs=(progress_queue, stop)
    )

    def drain() -> None:
        while True:
            try:
                pid, label, epoch, epochs = progress_queue.get_nowait()
            except (queue.Empty, OSError, EOFError):
                return
            display.epoch(pid, label, epoch, epochs)

    futures: list[Future] = []
    consumed: set[Future] = set()
    try:
        futures = [pool.submit(_pool_job, job, folder) for job in jobs]
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            drain()
            for fut in done:
                consumed.add(fut)
                on_result(fut.result())
    except BaseException:
        stop.set()  # every job still running ends its runs 'interrupted' within about a second
        for fut in futures:
            fut.cancel()
        for fut in futures:
            if fut in consumed or fut.cancelled():
                continue
            try:
                results = fut.result()
            except BaseException:  # noqa: BLE001 - a worker that died: its recordings say what they hold
                continue
            consumed.add(fut)
            on_result(results)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        progress_queue.close()


def _run_dask(jobs: list[dict[str, Any]], folder: str, scheduler: str, on_result: Callable) -> None:
    try:
        from distributed import Client, Event, as_completed
    except ImportError:  # pragma: no cover - the 'cluster' extra
        raise ParameterError(
            "scheduler needs dask.distributed: pip install 'hidden-unit-dynamics[cluster]' (or 'dask[distributed]')"
        ) from None
    try:
        client = Client(scheduler, timeout="20s")
    except (OSError, TimeoutError) as exc:
        raise ParameterError(f"scheduler {scheduler!r} could not be reached: {exc}") from None
    stop_name = f"hud-stop-{uuid.uuid4().hex}"
    event = Event(stop_name, client=client)
    futures = []
    try:
        futures = [client.submit(_dask_job, job, folder, stop_name, pure=False) for job in jobs]
        for fut in as_completed(futures):
            on_result(fut.result())
    except BaseException:
        event.set()
        client.cancel([f for f in futures if f.status == "pending"])
        for fut in futures:
            if fut.status in ("finished", "error") or fut.cancelled():
                continue
            try:
                on_result(fut.result(timeout=60))
            except BaseException:  # noqa: BLE001 - its recordings say what they hold
                pass
        raise
    finally:
        client.close()


# ----------------------------------------------------------------------------- hud ls


def list_runs(folder: str | os.PathLike) -> pd.DataFrame:
    """The runs of a runs folder, statuses and final metrics read from the recordings.

    Parameters
    ----------
    folder : str or PathLike
        A folder written by ``hud run`` (it holds ``manifest.json``).

    Returns
    -------
    DataFrame
        One row per run, in the manifest's order: ``run`` (the id), one column
        per grid axis but the seed (values as text), ``seed``, ``status``,
        ``final_loss``, ``final_accuracy``, ``epochs`` (the last recorded epoch; NaN when
        pending) and ``diverged`` (bool).
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise ParameterError(f"runs folder {folder!r} does not exist")
    manifest = read_manifest(folder)
    if manifest is None:
        raise ParameterError(f"folder {folder!r} has no {MANIFEST_NAME}: is it an output folder of 'hud run'?")
    axes = [a for a in manifest.get("axes", {}) if a != "seed"]
    rows = []
    for entry in manifest.get("runs", []):
        entry = dict(entry)
        _refresh(folder, entry)
        final = entry.get("final") or {}
        row: dict[str, Any] = {"run": entry["id"]}
        for axis in axes:
            row[axis] = format_value(entry["cell"].get(axis))
        row.update(
            seed=entry["seed"],
            status=entry["status"],
            final_loss=np.nan if final.get("loss") is None else final["loss"],
            final_accuracy=np.nan if final.get("accuracy") is None else final["accuracy"],
            epochs=final.get("epochs", np.nan) if final else np.nan,
            diverged=entry["status"] == "diverged",
        )
        rows.append(row)
    columns = ["run", *axes, "seed", "status", "final_loss", "final_accuracy", "epochs", "diverged"]
    df = pd.DataFrame(rows, columns=columns)
    df["epochs"] = df["epochs"].astype("Int64")
    return df
