"""``hud report``: a runs folder in, a multi-page PDF, PNGs, CSVs and GIFs out.

Layout of the output folder (default ``reports/NAME/``)::

    report.pdf          title page with the summary, comparison grids, one page per run
    png/<page>.png      every page as a PNG
    csv/<page>-<what>.csv  the data behind every page
    gif/<run>.gif       each run's hidden space over its recorded epochs
    report.json         the index: pages, files, runs and their statuses -- written last

Everything is written into a temporary folder inside the output folder and
moved into place at the end, ``report.json`` last: a report that was
interrupted never looks complete (an older complete report in the same folder
loses its ``report.json`` first, then its files are replaced).

Drawing uses plain :class:`matplotlib.figure.Figure` objects rendered by the
Agg and PDF backends: building a report never changes pyplot's backend, so it
can run inside a notebook.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from data import __version__
from data.errors import HudError, ParameterError, check_choice

from .context import ReportContext, default_snapshot_epochs
from .experiment import Experiment, check_layers, load_experiment
from .pages import plan, slug
from .render import PDF_NAME, RenderOptions, render

__all__ = ["build_report", "ReportResult", "ReportError", "FORMATS", "INDEX_NAME", "REPORT_FORMAT"]

FORMATS = ("pdf", "png", "gif")
INDEX_NAME = "report.json"
REPORT_FORMAT = "hud-report"
_PARTIAL_PREFIX = ".partial-"


class ReportError(HudError, OSError):
    """A report cannot be written (an output folder that is not writable, a full disk)."""


@dataclass
class ReportResult:
    """What :func:`build_report` wrote.

    Attributes
    ----------
    out_dir : str
    pdf : str or None
        The PDF's path (None without 'pdf' in ``formats``).
    index : str
        The path of ``report.json``.
    pages : list of dict
        One per page: name, title, kind, png (path or None), csv (paths).
    gifs : list of str
    runs : list of dict
        One per run: id, config, seed, status, status_text.
    seconds : float
    """

    out_dir: str
    pdf: str | None
    index: str
    pages: list[dict[str, Any]] = field(default_factory=list)
    gifs: list[str] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def problems(self) -> list[dict[str, Any]]:
        """The runs that did not end normally (diverged, interrupted, failed, missing)."""
        return [r for r in self.runs if r["status"] not in ("complete", "converged")]


def build_report(
    runs_dir: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    *,
    epochs: Sequence[int] | None = None,
    layers: Sequence[str] | None = None,
    formats: Sequence[str] | str = FORMATS,
    progress: bool = True,
    workers: int | None = None,
    dpi: int = 100,
    gif_frames: int = 10,
    max_epochs: int = 48,
) -> ReportResult:
    """Write the report of a runs folder.

    Parameters
    ----------
    runs_dir : str or PathLike
        ``runs/NAME/``: a manifest written by ``hud run`` and its recordings,
        or any folder of ``*.h5`` recordings.
    out_dir : str or PathLike, optional
        Default ``reports/NAME/`` (NAME: the experiment's name).
    epochs : sequence of int, optional
        Snapshot epochs of the hidden-space and input-plane pages (each run
        shows its recorded epoch nearest to each, with a finite loss; titles
        say which).  Default: 0, last/100, last/10 and the last epoch.
    layers : sequence of str, optional
        Hidden layers to report on (default: every recorded hidden layer).
    formats : sequence of {'pdf', 'png', 'gif'} or comma-separated str
        What to write besides the CSVs and the index.
    progress : bool
        Show a progress bar (pages and GIFs done, ETA).
    workers : int, optional
        Processes drawing the pages and GIFs, this one included (default: the
        CPU cores, at most 4; 1 draws everything in this process).
    dpi : int
        Resolution of the PNGs.
    gif_frames : int
        Frames per GIF (epochs picked from the recorded ones).
    max_epochs : int
        Epochs subsampled per run for trajectories, geometry and weight norms.

    Returns
    -------
    ReportResult

    Raises
    ------
    RecordingError
        The runs folder does not exist, holds no recordings, or a recording is damaged.
    FormatVersionError
        A recording was written in a format version this hud cannot read.
    ReportError
        The output folder cannot be written.
    ParameterError
        Bad options (unknown format or layer, negative epoch).
    """
    start = time.perf_counter()
    formats = _check_formats(formats)
    snapshot = _check_epochs(epochs)
    dpi = _check_int("dpi", dpi, 20)
    gif_frames = _check_int("gif_frames", gif_frames, 1)
    max_epochs = _check_int("max_epochs", max_epochs, 2)
    workers = min(os.cpu_count() or 1, 4) if workers is None else _check_int("workers", workers, 1)
    with load_experiment(runs_dir) as exp:
        chosen = check_layers(exp, layers)
        out = os.fspath(out_dir) if out_dir is not None else os.path.join("reports", slug(exp.name))
        ctx = ReportContext(exp, chosen, snapshot or default_snapshot_epochs(_last_epoch(exp)), max_epochs=max_epochs)
        specs = plan(ctx)
        gif_runs = [r.id for r in exp.runs if r.has_data] if "gif" in formats and chosen else []
        runs = [
            {"id": r.id, "config": r.cell.label, "seed": r.seed, "status": r.status, "status_text": r.status_text}
            for r in exp.runs
        ]
        summary = json.loads(ctx.summary().to_json(orient="records"))
        name, path, snapshots = exp.name, os.path.abspath(exp.path), list(ctx.snapshot_epochs)
    tmp = _make_partial(out)
    opts = RenderOptions(
        runs_dir=os.fspath(runs_dir),
        tmp=tmp,
        title=f"hud report: {name}",
        layers=tuple(chosen),
        snapshot_epochs=tuple(snapshots),
        max_epochs=max_epochs,
        formats=formats,
        dpi=dpi,
        gif_frames=gif_frames,
    )
    from tqdm.auto import tqdm

    total = len(specs) + len(gif_runs)
    bar = tqdm(total=total, disable=not progress, desc=f"hud report {name}", unit="step", dynamic_ncols=True)
    try:
        pages, gifs = render(opts, gif_runs, workers=min(workers, max(1, total)), progress=lambda _what: bar.update())
        result = ReportResult(
            out_dir=out,
            pdf=os.path.join(out, PDF_NAME) if "pdf" in formats else None,
            index=os.path.join(out, INDEX_NAME),
            pages=pages,
            gifs=[os.path.join(out, g) for g in gifs],
            runs=runs,
        )
        result.seconds = time.perf_counter() - start
        index = {
            "format": REPORT_FORMAT,
            "format_version": 1,
            "experiment": name,
            "runs_dir": path,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "hud_version": __version__,
            "pdf": PDF_NAME if "pdf" in formats else None,
            "layers": list(chosen),
            "snapshot_epochs": snapshots,
            "pages": pages,
            "gifs": gifs,
            "runs": runs,
            "summary": summary,
            "seconds": round(result.seconds, 2),
        }
        with open(os.path.join(tmp, INDEX_NAME), "w", encoding="utf-8") as fh:
            json.dump(index, fh, indent=1)
        _publish(tmp, out)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, HudError):
            raise ReportError(f"cannot write the report to {out!r}: {exc.strerror or exc}") from None
        raise
    finally:
        bar.close()
    return result


# ----------------------------------------------------------------------------- options


def _check_formats(formats: Sequence[str] | str) -> tuple[str, ...]:
    items = [f.strip() for f in formats.split(",")] if isinstance(formats, str) else list(formats)
    if not items or not all(isinstance(f, str) and f for f in items):
        raise ParameterError(f"formats must name one or more of {', '.join(FORMATS)}; got {formats!r}")
    for f in items:
        check_choice("formats", f, FORMATS)
    return tuple(dict.fromkeys(items))


def _check_epochs(epochs: Sequence[int] | None) -> list[int] | None:
    if epochs is None:
        return None
    if isinstance(epochs, (str, bytes)) or not isinstance(epochs, Sequence) or not epochs:
        raise ParameterError(f"epochs must be a non-empty list of epochs (integers >= 0); got {epochs!r}")
    out = []
    for e in epochs:
        if isinstance(e, bool) or not isinstance(e, (int, np.integer)) or e < 0:
            raise ParameterError(f"epochs must be integers >= 0; got {e!r} in {list(epochs)!r}")
        out.append(int(e))
    return sorted(set(out))


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ParameterError(f"{name} must be an integer >= {low}; got {value!r}")
    return int(value)


def _last_epoch(exp: Experiment) -> int:
    return max((int(r.epochs[-1]) for r in exp.iter_data_runs()), default=0)


# ----------------------------------------------------------------------------- writing


def _make_partial(out: str) -> str:
    """Create the output folder and a temporary folder inside it; ReportError if that fails."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise ReportError(f"output path {out!r} is a file, not a folder")
    try:
        os.makedirs(out, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=_PARTIAL_PREFIX, dir=out)
        probe = os.path.join(tmp, ".probe")
        with open(probe, "w") as fh:
            fh.write("")
        os.remove(probe)
    except OSError as exc:
        raise ReportError(f"output folder {out!r} is not writable: {exc.strerror or exc}") from None
    return tmp


def _publish(tmp: str, out: str) -> None:
    """Move the finished report into place; ``report.json`` goes last (an old one goes first)."""
    index = os.path.join(out, INDEX_NAME)
    if os.path.exists(index):
        os.remove(index)
    for name in os.listdir(tmp):
        if name == INDEX_NAME:
            continue
        dst = os.path.join(out, name)
        if os.path.isdir(dst) and not os.path.islink(dst):
            shutil.rmtree(dst)
        elif os.path.lexists(dst):
            os.remove(dst)
        os.replace(os.path.join(tmp, name), dst)
    os.replace(os.path.join(tmp, INDEX_NAME), index)
    os.rmdir(tmp)
