"""Rendering a report's files, in this process and in worker processes.

Drawing dominates the time of a report.  Every page is drawn exactly once, by
whichever process takes it, into files of its own; this process then merges
the pages' one-page PDFs, in order, into the report's PDF (pypdf: the pages'
objects are copied, nothing is redrawn or re-encoded).

- **Comparison pages** (title, grids, geometry, CKA, norms) are drawn as
  vector graphics into a one-page PDF; their PNG is that PDF page rasterised
  by PDFium (pypdfium2), five to ten times quicker than drawing the page again
  with Agg, and the same picture.
- **Per-run pages** (one per run: a 32-run grid has 32) are drawn once with
  Agg; the pixels become both the PNG and a one-page PDF showing them as an
  image (zlib level 1).  These pages are mostly images (shaded regions,
  input-plane maps) anyway, and a vector page would cost as much again.

With ``workers`` > 1, a pool of ``workers - 1`` processes and this process
share one list of tasks: all comparison pages in the first (they share the
experiment-wide data), then each run's page with its GIF.  A worker is handed
the next task from the front whenever it is free; this process takes tasks
from the back.  Each process opens the runs folder itself and builds the same
plan of pages from the same options.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import multiprocessing
import os
import queue as _queue
import shutil
import sys
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from data import __version__

from .context import ReportContext, pick_epochs
from .experiment import Experiment, Run, load_experiment
from .figures.hidden import HiddenSpaceAnimation
from .pages import PageSpec, plan, slug

__all__ = ["RenderOptions", "render", "PDF_NAME", "PAGES_DIR"]

PDF_NAME = "report.pdf"
PAGES_DIR = ".pages"  # the one-page PDFs, merged into PDF_NAME (removed before publishing)

#: Matplotlib settings while a report draws.  A title at a fixed height spares
#: matplotlib measuring every tick label to place it (a report's axes have no
#: tick labels on top).
REPORT_RC = {"axes.titley": 1.0}
#: Numbers in the CSVs: 8 significant digits (recordings hold float32, about 7; full float64
#: repr was a third larger and took half as long again to write).
CSV_FLOAT_FORMAT = "%.8g"
_PNG_LEVEL = 1  # zlib level of PNGs: a little larger than the default 6, several times quicker


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

    def path(self, folder: str, name: str) -> str:
        """``tmp/folder/name``, the folder made if missing."""
        os.makedirs(os.path.join(self.tmp, folder), exist_ok=True)
        return os.path.join(self.tmp, folder, name)


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


# ----------------------------------------------------------------------------- files of one page


def _replace_into(write: Callable[[str], None], path: str) -> None:
    """Write ``path`` through a temporary name: the file is complete or absent."""
    folder, name = os.path.split(path)
    partial = os.path.join(folder, f".{name}.partial")
    write(partial)
    os.replace(partial, path)


def _pdf_to_png(pdf_path: str, png_path: str, dpi: int) -> None:
    """Rasterise the one page of ``pdf_path`` into a PNG at ``dpi`` (PDFium)."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(pdf_path)
    try:
        image = doc[0].render(scale=dpi / 72).to_pil()
    finally:
        doc.close()
    _save_png(image, png_path)


def _agg_pixels(fig: Figure, dpi: int) -> np.ndarray:
    """The figure drawn by Agg at ``dpi``: shape (height, width, 3), uint8 RGB."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    fig.set_dpi(dpi)
    buffer, (width, height) = canvas.print_to_buffer()
    return np.frombuffer(buffer, np.uint8).reshape(height, width, 4)[..., :3]


def _image_pdf(rgb: np.ndarray, path: str, *, dpi: int) -> None:
    """Write a one-page PDF showing an image at its own resolution.

    Parameters
    ----------
    rgb : ndarray, shape (height, width, 3), uint8
        The page's pixels.
    path : str
        The PDF to write.
    dpi : int
        Pixels per inch: the page is width / dpi by height / dpi inches.
    """
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject, NumberObject, StreamObject

    height, width = rgb.shape[:2]
    w_pt, h_pt = width * 72 / dpi, height * 72 / dpi
    writer = PdfWriter()
    page = writer.add_blank_page(width=w_pt, height=h_pt)
    image = StreamObject()
    # the stream's bytes, already Flate-encoded (set_data would compress them again, at level 6); pypdf
    # has no public call for this, the test of the report's pages checks the pixels come back exactly
    image._data = zlib.compress(np.ascontiguousarray(rgb, dtype=np.uint8).tobytes(), 1)
    image.update(
        {
            NameObject("/Type"): NameObject("/XObject"),
            NameObject("/Subtype"): NameObject("/Image"),
            NameObject("/Width"): NumberObject(width),
            NameObject("/Height"): NumberObject(height),
            NameObject("/ColorSpace"): NameObject("/DeviceRGB"),
            NameObject("/BitsPerComponent"): NumberObject(8),
            NameObject("/Filter"): NameObject("/FlateDecode"),
        }
    )
    xobjects = DictionaryObject({NameObject("/Im0"): writer._add_object(image)})
    page[NameObject("/Resources")] = DictionaryObject({NameObject("/XObject"): xobjects})
    content = DecodedStreamObject()
    content.set_data(f"q {w_pt:.4f} 0 0 {h_pt:.4f} 0 0 cm /Im0 Do Q".encode())
    page[NameObject("/Contents")] = writer._add_object(content)
    with open(path, "wb") as fh:
        writer.write(fh)


def _save_png(image: Any, path: str) -> None:
    """Write a PIL image, or pixels of shape (height, width, 3) uint8, as a PNG (complete or absent)."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.ascontiguousarray(image))
    _replace_into(lambda p: image.save(p, format="png", compress_level=_PNG_LEVEL), path)


# ----------------------------------------------------------------------------- pages


def _entry(spec: PageSpec) -> dict[str, Any]:
    return {"name": spec.name, "title": spec.title, "kind": spec.kind, "png": None, "csv": [], "pdf": None}


def _write_csvs(page: Any, spec: PageSpec, opts: RenderOptions, entry: dict[str, Any]) -> None:
    for key, frame in page.data.items():
        name = f"{spec.name}-{slug(key)}.csv"
        frame.to_csv(opts.path("csv", name), index=False, float_format=CSV_FLOAT_FORMAT)
        entry["csv"].append(os.path.join("csv", name))


def _vector_page(spec: PageSpec, opts: RenderOptions) -> dict[str, Any]:
    """A comparison page: a vector one-page PDF, its PNG rasterised from that PDF, and its CSVs."""
    page = spec.make()
    fig = page.figure
    entry = _entry(spec)
    png = os.path.join("png", f"{spec.name}.png")
    if "pdf" in opts.formats:
        entry["pdf"] = os.path.join(PAGES_DIR, f"{spec.name}.pdf")
        _replace_into(lambda p: fig.savefig(p, format="pdf"), opts.path(PAGES_DIR, f"{spec.name}.pdf"))
        if "png" in opts.formats:
            _pdf_to_png(os.path.join(opts.tmp, entry["pdf"]), opts.path("png", f"{spec.name}.png"), opts.dpi)
            entry["png"] = png
    elif "png" in opts.formats:
        _replace_into(
            lambda p: fig.savefig(p, format="png", dpi=opts.dpi, pil_kwargs={"compress_level": _PNG_LEVEL}),
            opts.path("png", f"{spec.name}.png"),
        )
        entry["png"] = png
    _write_csvs(page, spec, opts, entry)
    fig.clear()
    return entry


def _raster_page(spec: PageSpec, opts: RenderOptions) -> dict[str, Any]:
    """A per-run page: drawn once by Agg into pixels, saved as its PNG and as a one-page PDF; and its CSVs."""
    page = spec.make()
    entry = _entry(spec)
    if "pdf" in opts.formats or "png" in opts.formats:
        rgb = _agg_pixels(page.figure, opts.dpi)
        if "pdf" in opts.formats:
            entry["pdf"] = os.path.join(PAGES_DIR, f"{spec.name}.pdf")
            _replace_into(lambda p: _image_pdf(rgb, p, dpi=opts.dpi), opts.path(PAGES_DIR, f"{spec.name}.pdf"))
        if "png" in opts.formats:
            entry["png"] = os.path.join("png", f"{spec.name}.png")
            _save_png(rgb, opts.path("png", f"{spec.name}.png"))
    _write_csvs(page, spec, opts, entry)  # the figure is not cleared: the next run's page reuses it
    return entry


def _draw(opts: RenderOptions, indices: list[int], gif: bool) -> dict[str, Any]:
    """Task: draw the pages ``indices`` (PDF, PNG, CSV) and, with ``gif``, the GIFs of their runs."""
    _, ctx, specs = _state(opts)
    pages, gifs = [], []
    with matplotlib.rc_context(REPORT_RC):
        for i in indices:
            spec = specs[i]
            draw = _raster_page if spec.kind == "run" else _vector_page
            pages.append({**draw(spec, opts), "index": i})
            _emit("page")
            if gif and spec.run is not None:
                rel = _write_gif(ctx, spec.run, opts)
                gifs += [rel] if rel else []
                _emit("gif")
            if spec.run is not None:
                ctx.forget(spec.run)
    return {"pages": pages, "gifs": gifs}


def _merge(opts: RenderOptions, parts: list[str]) -> None:
    """The one-page PDFs ``parts`` (relative to ``opts.tmp``), in order, as the report's PDF."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    for part in parts:
        writer.append(os.path.join(opts.tmp, part))
    writer.add_metadata({"/Title": opts.title, "/Creator": f"hud {__version__}", "/Producer": "hud (pypdf)"})

    def write(path: str) -> None:
        with open(path, "wb") as fh:
            writer.write(fh)

    _replace_into(write, os.path.join(opts.tmp, PDF_NAME))


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
    titles = [f"{layer}, epoch {e:,}" for e, _ in keep]
    fig = Figure(figsize=(4.4, 4.2))
    FigureCanvasAgg(fig)
    fig.suptitle(f"{run.cell.label}{seed}{bad}", fontsize=9, y=0.975)  # drawn once: the frames redraw the epoch only
    anim = HiddenSpaceAnimation([d for _, d in keep], titles=titles, fig=fig)
    images = [
        Image.fromarray(frame).convert("RGB").quantize(colors=64, method=Image.Quantize.FASTOCTREE)
        for frame in anim.frames(dpi=dpi)
    ]
    images += [images[-1]] * 2  # hold the last frame
    rel = os.path.join("gif", f"{slug(run.id)}.gif")
    _replace_into(
        lambda p: images[0].save(p, format="gif", save_all=True, append_images=images[1:], duration=250, loop=0),
        opts.path("gif", f"{slug(run.id)}.gif"),
    )
    fig.clear()
    return rel


# ----------------------------------------------------------------------------- running


def _tasks(specs: list[PageSpec]) -> list[list[int]]:
    """The pages in tasks: every comparison page in the first (they share the experiment-wide data, which a
    process computes once: spread over processes, each computed it again), then one task per run page."""
    comparison = [i for i, s in enumerate(specs) if s.kind != "run"]
    return ([comparison] if comparison else []) + [[i] for i, s in enumerate(specs) if s.kind == "run"]


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
        Processes drawing pages and GIFs, this one included: ``workers - 1``
        worker processes beside this one (more processes than cores only
        slowed a report down); 1 draws everything here.
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
    _, _, specs = _state(opts)  # this process's own plan (the caller's experiment may be closed)
    tasks = _tasks(specs)
    _EMIT = progress
    try:
        if workers > 1 and len(tasks) > 1:
            results = _Executor(opts, tasks, gif, workers - 1, progress).run()
        else:
            results = [_draw(opts, task, gif) for task in tasks]
        entries = sorted((e for r in results for e in r["pages"]), key=lambda e: e["index"])
        if "pdf" in opts.formats:
            _merge(opts, [e["pdf"] for e in entries])
    finally:
        _EMIT = None
        _release(opts)
    shutil.rmtree(os.path.join(opts.tmp, PAGES_DIR), ignore_errors=True)
    pages = [{k: v for k, v in e.items() if k not in ("pdf", "index")} for e in entries]
    return pages, sorted(g for r in results for g in r["gifs"])


class _Executor:
    """A process pool and this process drawing the report's tasks from one list, the pool from its front.

    A worker is handed its next task the moment it finishes one (never more
    than one each in advance: tasks queued to a worker cannot be taken back,
    and a few queued ones left this process idle at the end while a worker
    drew them); this process takes tasks from the back of the list.
    """

    def __init__(
        self, opts: RenderOptions, tasks: list[list[int]], gif: bool, workers: int, progress: Callable[[str], None]
    ) -> None:
        method = "fork" if sys.platform.startswith("linux") else "spawn"
        mp = multiprocessing.get_context(method)
        self.opts, self.tasks, self.gif, self.progress, self.workers = opts, tasks, gif, progress, workers
        self.messages = mp.Queue()
        self.pool = cf.ProcessPoolExecutor(
            max_workers=workers, mp_context=mp, initializer=_init_worker, initargs=(self.messages,)
        )
        self.lock = threading.RLock()  # a future already done runs its callback at once, in this thread
        self.pending = collections.deque(range(len(tasks)))
        self.futures: dict[int, cf.Future] = {}
        self.results: dict[int, dict[str, Any]] = {}
        self.stopped = False

    def _hand_out(self, _done: Any = None) -> None:
        """Give workers tasks from the front until each has one (also run as each task ends)."""
        with self.lock:
            while not self.stopped and self.pending and sum(not f.done() for f in self.futures.values()) < self.workers:
                k = self.pending.popleft()
                self.futures[k] = future = self.pool.submit(_draw, self.opts, self.tasks[k], self.gif)
                future.add_done_callback(self._hand_out)

    def _take_last(self) -> int | None:
        with self.lock:
            return self.pending.pop() if self.pending else None

    def _drain(self) -> None:
        while True:
            try:
                self.progress(self.messages.get_nowait())
            except (_queue.Empty, OSError, ValueError):
                return

    def run(self) -> list[dict[str, Any]]:
        """Every task's result, in order, once all are done; on any error the pool is stopped first."""
        try:
            self._hand_out()
            while (k := self._take_last()) is not None:
                self.results[k] = _draw(self.opts, self.tasks[k], self.gif)
                self._drain()
            for k in range(len(self.tasks)):
                while k not in self.results:
                    try:
                        self.results[k] = self.futures[k].result(timeout=0.1)
                    except cf.TimeoutError:
                        self._drain()
        except BaseException:
            with self.lock:
                self.stopped = True  # nothing more is handed out; what runs ends
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.messages.close()
            raise
        self._drain()
        self.pool.shutdown(wait=True)
        self.messages.close()
        return [self.results[k] for k in range(len(self.tasks))]
