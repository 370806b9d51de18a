"""Rendering a report's files, in this process and in worker processes.

Drawing dominates the time of a report.  Two decisions keep it short:

- **Comparison pages** (title, grids, geometry, CKA, norms) are drawn once, as
  vector graphics into the PDF; their layout is then reused for their PNG.
- **Per-run pages** (one per run: a 32-run grid has 32) are drawn once, with
  Agg, into their PNG; the PDF shows that image as the page.  Drawing a page
  for the PDF's vector backend costs as much again as for the PNG, and these
  pages are mostly images (shaded regions, input-plane maps) anyway.

With one worker everything runs here, page after page.  With more, this
process writes the PDF (drawing the comparison pages, then embedding the
per-run pages in order as their PNGs arrive) while a process pool draws the
per-run pages and the GIFs.  Each process opens the runs folder itself and
builds the same plan of pages from the same options.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import queue as _queue
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import matplotlib
from matplotlib.figure import Figure

from data import __version__

from .context import ReportContext, pick_epochs
from .experiment import Experiment, Run, load_experiment
from .figures.hidden import HiddenSpaceAnimation
from .pages import PageSpec, plan, slug

__all__ = ["RenderOptions", "render", "PDF_NAME", "RASTER_DIR"]

PDF_NAME = "report.pdf"
RASTER_DIR = ".raster"  # per-run page images when no PNGs are asked for (removed before publishing)
_RUNS_PER_TASK = 2

#: Matplotlib settings while a report draws.  A title at a fixed height spares
#: matplotlib measuring every tick label to place it (a report's axes have no
#: tick labels on top); PNGs are compressed fast (zlib level 1: a little larger,
#: several times quicker than the default level 6).
REPORT_RC = {"axes.titley": 1.0}
_PNG = {"pil_kwargs": {"compress_level": 1}}


@dataclass(frozen=True)
class RenderOptions:
    """Everything a process needs to rebuild the report's plan and write its share (picklable)."""

    runs_dir: str
    tmp: str
    title: str
    layers: tuple[str, ...]
    snapshot_epochs: tuple[int, ...]
    max_epochs: int
    formats: tuple[str, ...]
    dpi: int
    gif_frames: int

    @property
    def raster_dir(self) -> str:
        """Where per-run page images go: png/ when PNGs are asked for, else a folder removed at the end."""
        return "png" if "png" in self.formats else RASTER_DIR


# ----------------------------------------------------------------------------- per-process state

_STATE: dict[RenderOptions, tuple[Experiment, ReportContext, list[PageSpec]]] = {}
_EMIT: Callable[[str], None] | None = None


def _state(opts: RenderOptions) -> tuple[Experiment, ReportContext, list[PageSpec]]:
    if opts not in _STATE:
        exp = load_experiment(opts.runs_dir)
        ctx = ReportContext(exp, list(opts.layers), list(opts.snapshot_epochs), max_epochs=opts.max_epochs)
        _STATE[opts] = (exp, ctx, plan(ctx))
    return _STATE[opts]


def _release(opts: RenderOptions) -> None:
    state = _STATE.pop(opts, None)
    if state is not None:
        state[0].close()


def _emit(what: str) -> None:
    if _EMIT is not None:
        _EMIT(what)


def _init_worker(progress_queue: Any) -> None:
    global _EMIT
    import signal

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's: it cancels what is queued
    torch.set_num_threads(1)  # tiny networks; and a forked child must not reuse the parent's thread pool
    _STATE.clear()  # a forked child opens the recordings itself rather than share the parent's HDF5 handles
    _EMIT = progress_queue.put


# ----------------------------------------------------------------------------- pages


def _entry(spec: PageSpec) -> dict[str, Any]:
    return {"name": spec.name, "title": spec.title, "kind": spec.kind, "png": None, "csv": []}


def _write_csvs(page: Any, spec: PageSpec, opts: RenderOptions, entry: dict[str, Any]) -> None:
    for key, frame in page.data.items():
        os.makedirs(os.path.join(opts.tmp, "csv"), exist_ok=True)
        rel = os.path.join("csv", f"{spec.name}-{slug(key)}.csv")
        frame.to_csv(os.path.join(opts.tmp, rel), index=False)
        entry["csv"].append(rel)


def _vector_page(spec: PageSpec, opts: RenderOptions, pdf: Any) -> dict[str, Any]:
    """A comparison page: into the PDF as vector graphics, then its PNG with the same layout, and its CSVs."""
    page = spec.make()
    fig = page.figure
    entry = _entry(spec)
    if pdf is not None:
        pdf.savefig(fig)
        fig.set_layout_engine("none")  # the layout is done: the PNG of the same page reuses it
    if "png" in opts.formats:
        os.makedirs(os.path.join(opts.tmp, "png"), exist_ok=True)
        rel = os.path.join("png", f"{spec.name}.png")
        fig.savefig(os.path.join(opts.tmp, rel), dpi=opts.dpi, **_PNG)
        entry["png"] = rel
    _write_csvs(page, spec, opts, entry)
    fig.clear()
    return entry


def _raster_page(spec: PageSpec, opts: RenderOptions) -> dict[str, Any]:
    """A per-run page: drawn once into a PNG (shown by the PDF as its page), and its CSVs."""
    page = spec.make()
    entry = _entry(spec)
    folder = os.path.join(opts.tmp, opts.raster_dir)
    os.makedirs(folder, exist_ok=True)
    rel = os.path.join(opts.raster_dir, f"{spec.name}.png")
    partial = os.path.join(folder, f".{spec.name}.partial.png")
    page.figure.savefig(partial, dpi=opts.dpi, **_PNG)
    os.replace(partial, os.path.join(opts.tmp, rel))  # complete or absent
    entry["png"] = rel if "png" in opts.formats else None
    entry["raster"] = rel
    _write_csvs(page, spec, opts, entry)  # the figure is not cleared: the next run's page reuses it
    return entry


def _embed(pdf: Any, path: str, dpi: int) -> None:
    """Add a PNG as one page of the PDF, at its own resolution."""
    from matplotlib.image import imread

    img = imread(path)
    h, w = img.shape[:2]
    fig = Figure(figsize=(w / dpi, h / dpi), dpi=dpi)
    fig.figimage(img, 0, 0, origin="upper", resize=False)
    pdf.savefig(fig, dpi=dpi)
    fig.clear()


def _run_pages(opts: RenderOptions, indices: list[int], gif: bool) -> dict[str, Any]:
    """Task: draw the per-run pages ``indices`` (PNG + CSV) and, with ``gif``, their runs' GIFs."""
    _, ctx, specs = _state(opts)
    pages, gifs = [], []
    with matplotlib.rc_context(REPORT_RC):
        for i in indices:
            spec = specs[i]
            pages.append({**_raster_page(spec, opts), "index": i})
            _emit("page")
            if gif and spec.run is not None:
                rel = _write_gif(ctx, spec.run, opts)
                gifs += [rel] if rel else []
                _emit("gif")
            if spec.run is not None:
                ctx.forget(spec.run)
    return {"pages": pages, "gifs": gifs}


# ----------------------------------------------------------------------------- GIFs


def _write_gif(ctx: ReportContext, run: Run, opts: RenderOptions, *, dpi: int = 60) -> str | None:
    """The hidden space of the run's last reported layer at up to ``gif_frames`` recorded epochs, as a GIF."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    if not ctx.layers or not run.has_data or not len(run.finite_epochs):
        return None
    layer = ctx.layers[-1]
    if ctx.n_units(layer) < 2:
        return None
    epochs = pick_epochs(run.finite_epochs, opts.gif_frames)
    basis, extent = ctx.run_plane(run, layer)
    displays = [ctx.hidden_display(run, layer, e, basis=basis, extent=extent, grid_size=51) for e in epochs]
    keep = [(e, d) for e, d in zip(epochs, displays) if not isinstance(d, str)]
    if not keep:
        return None
    seed = f", seed {run.seed}" if run.seed is not None else ""
    bad = "" if run.ok else f" [{run.status_text}]"
    titles = [f"{run.cell.label}{seed}{bad}\n{layer}, epoch {e:,}" for e, _ in keep]
    fig = Figure(figsize=(4.4, 4.2))
    FigureCanvasAgg(fig)
    anim = HiddenSpaceAnimation([d for _, d in keep], titles=titles, fig=fig)
    images = [
        Image.fromarray(frame).convert("RGB").quantize(colors=64, method=Image.Quantize.FASTOCTREE)
        for frame in anim.frames(dpi=dpi)
    ]
    images += [images[-1]] * 2  # hold the last frame
    os.makedirs(os.path.join(opts.tmp, "gif"), exist_ok=True)
    rel = os.path.join("gif", f"{slug(run.id)}.gif")
    images[0].save(os.path.join(opts.tmp, rel), save_all=True, append_images=images[1:], duration=250, loop=0)
    fig.clear()
    return rel


# ----------------------------------------------------------------------------- running


def render(
    opts: RenderOptions, gif_runs: list[str], *, workers: int, progress: Callable[[str], None]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Write every page (PDF, PNG, CSV) and GIF into ``opts.tmp``.

    Parameters
    ----------
    opts : RenderOptions
        The plan of pages is made from them, here and in each worker.
    gif_runs : list of str
        Ids of the runs that get a GIF.
    workers : int
        Worker processes for the per-run pages and GIFs; 1 draws everything here.
    progress : callable
        Called with 'page' or 'gif' as each is done.

    Returns
    -------
    (pages, gifs)
        One index entry per page, in order (name, title, kind, png, csv), and
        the GIFs' paths relative to ``opts.tmp``.
    """
    global _EMIT
    gif = "gif" in opts.formats and bool(gif_runs)
    _, _, specs = _state(opts)
    run_idx = [i for i, s in enumerate(specs) if s.kind == "run"]
    executor = _Executor(opts, run_idx, gif, workers, progress) if workers > 1 and run_idx else None
    _EMIT = progress
    pdf = None
    try:
        if "pdf" in opts.formats:
            from matplotlib.backends.backend_pdf import PdfPages

            pdf = PdfPages(
                os.path.join(opts.tmp, PDF_NAME), metadata={"Title": opts.title, "Creator": f"hud {__version__}"}
            )
        _, _, specs = _state(opts)  # this process's own plan (the caller's experiment may be closed)
        pages: list[dict[str, Any]] = []
        gifs: list[str] = []
        for i, spec in enumerate(specs):
            if spec.kind != "run":
                with matplotlib.rc_context(REPORT_RC):
                    pages.append(_vector_page(spec, opts, pdf))
                progress("page")
                continue
            if executor is not None:
                entry = executor.page(i)
            else:
                out = _run_pages(opts, [i], gif)
                entry, gifs = out["pages"][0], gifs + out["gifs"]
            if pdf is not None:
                _embed(pdf, os.path.join(opts.tmp, entry["raster"]), opts.dpi)
            pages.append({k: v for k, v in entry.items() if k not in ("raster", "index")})
        if executor is not None:
            gifs = executor.finish()
    except BaseException:
        if executor is not None:
            executor.abort()
        raise
    finally:
        _EMIT = None
        if pdf is not None:
            pdf.close()
        _release(opts)
    shutil.rmtree(os.path.join(opts.tmp, RASTER_DIR), ignore_errors=True)
    return pages, sorted(gifs)


class _Executor:
    """A process pool drawing the per-run pages (in chunks, in page order) and their GIFs.

    This process, once its own pages are drawn, takes chunks that no worker
    has started yet (from the end of the queue) and draws them itself.
    """

    def __init__(
        self, opts: RenderOptions, run_idx: list[int], gif: bool, workers: int, progress: Callable[[str], None]
    ) -> None:
        method = "fork" if sys.platform.startswith("linux") else "spawn"
        mp = multiprocessing.get_context(method)
        self.opts, self.gif, self.progress = opts, gif, progress
        self.messages = mp.Queue()
        self.pool = cf.ProcessPoolExecutor(
            max_workers=workers, mp_context=mp, initializer=_init_worker, initargs=(self.messages,)
        )
        self.chunks = [run_idx[s : s + _RUNS_PER_TASK] for s in range(0, len(run_idx), _RUNS_PER_TASK)]
        self.futures = [self.pool.submit(_run_pages, opts, chunk, gif) for chunk in self.chunks]
        self.local: dict[int, dict[str, Any]] = {}  # chunks drawn here
        self.chunk_of = {i: k for k, chunk in enumerate(self.chunks) for i in chunk}

    def _drain(self) -> None:
        while True:
            try:
                self.progress(self.messages.get_nowait())
            except (_queue.Empty, OSError, ValueError):
                return

    def _steal(self) -> bool:
        """Draw here the last chunk that no worker has started; False if there is none."""
        for k in range(len(self.chunks) - 1, -1, -1):
            if k not in self.local and self.futures[k].cancel():
                self.local[k] = _run_pages(self.opts, self.chunks[k], self.gif)
                return True
        return False

    def _result(self, k: int) -> dict[str, Any]:
        while k not in self.local:
            try:
                return self.futures[k].result(timeout=0.05)
            except cf.TimeoutError:
                self._drain()
                if not self._steal():
                    try:
                        return self.futures[k].result(timeout=0.2)
                    except cf.TimeoutError:
                        continue
        return self.local[k]

    def page(self, i: int) -> dict[str, Any]:
        """The index entry of page ``i`` once its PNG is written (drawing other pages meanwhile)."""
        out = self._result(self.chunk_of[i])
        self._drain()
        return next(e for e in out["pages"] if e["index"] == i)

    def finish(self) -> list[str]:
        """Wait for every task; return the GIFs."""
        gifs: list[str] = []
        for k in range(len(self.chunks)):
            gifs += self._result(k)["gifs"]
        self._drain()
        self.pool.shutdown(wait=True)
        self.messages.close()
        return gifs

    def abort(self) -> None:
        """Cancel what has not started and wait for the running tasks (a few pages at most) to end."""
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.messages.close()
