"""The pages of a report: a title page, comparison grids (rows = loss, columns = optimizer), per-run pages.

Each composer lays out a :class:`matplotlib.figure.Figure` (never pyplot) and
calls the figure functions of :mod:`reports.figures` on its Axes; it returns a
:class:`Page` holding the figure and the data behind it.  :func:`plan` lists
the pages of a report, each made only when it is written (one page in memory
at a time).
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from data import __version__
from data.errors import HudError, ParameterError

from . import figures
from .context import GROUP, ReportContext
from .experiment import Cell, Run, format_value
from .figures._style import STATUS_STYLE, few_ticks, log_scale, placeholder, status_label

__all__ = ["Page", "PageSpec", "plan", "PAGE_SIZE"]

#: landscape letter, inches
PAGE_SIZE = (11.0, 8.5)
_BAD = STATUS_STYLE["diverged"][1]


@dataclass
class Page:
    """One page of a report: its figure and the data behind it (CSV name -> frame)."""

    name: str
    title: str
    figure: Figure
    data: dict[str, pd.DataFrame] = field(default_factory=dict)
    kind: str = "comparison"


@dataclass
class PageSpec:
    """A page to make: its file name, title, kind, and the function that draws it."""

    name: str
    title: str
    kind: str
    make: Callable[[], Page]
    run: Run | None = None


def slug(text: str) -> str:
    """A file-name-safe version of ``text``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-") or "x"


def _figure(size: tuple[float, float] = PAGE_SIZE) -> Figure:
    return Figure(figsize=size, layout="constrained")


def _panels(fig: Figure, n: int, ncols: int) -> list[Axes]:
    """``n`` panels on a fixed grid of ``ncols`` columns, row by row; the grid's spare cells hidden."""
    nrows = -(-n // ncols)
    layout = _fixed_layout(fig, nrows, ncols, top=0.8)  # a one-line title, one-line panel titles
    axes = fig.subplots(nrows, ncols, squeeze=False, gridspec_kw=layout).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return list(axes[:n])


# ----------------------------------------------------------------------------- plan


def plan(ctx: ReportContext) -> list[PageSpec]:
    """Every page of the report, in order."""
    layers = ctx.layers
    specs = [
        PageSpec("01-summary", "Summary", "title", lambda: title_page(ctx)),
        PageSpec(
            "02-overview", "Loss, accuracy and success, all configurations", "comparison", lambda: overview_page(ctx)
        ),
        PageSpec("03-learning-curves", "Learning curves, every seed", "comparison", lambda: curves_grid_page(ctx)),
    ]
    k = 4
    for layer in layers:
        specs.append(
            PageSpec(
                f"{k:02d}-trajectories-{slug(layer)}",
                f"PCA trajectories of {layer}",
                "comparison",
                lambda layer=layer: trajectories_page(ctx, layer),
            )
        )
        k += 1
        for target in ctx.snapshot_epochs:
            specs.append(
                PageSpec(
                    f"{k:02d}-hidden-{slug(layer)}-epoch-{target}",
                    f"Hidden space of {layer} near epoch {target:,}",
                    "comparison",
                    lambda layer=layer, target=target: hidden_grid_page(ctx, layer, target),
                )
            )
            k += 1
    if ctx.grid is not None:
        target = ctx.snapshot_epochs[-1]
        specs.append(
            PageSpec(
                f"{k:02d}-input-plane-epoch-{target}",
                f"Decision boundary near epoch {target:,}",
                "comparison",
                lambda: plane_grid_page(ctx, target),
            )
        )
        k += 1
        for layer in layers:
            specs.append(
                PageSpec(
                    f"{k:02d}-unit-maps-{slug(layer)}-epoch-{target}",
                    f"Units of {layer} over the input plane",
                    "comparison",
                    lambda layer=layer: unit_maps_page(ctx, layer, target),
                )
            )
            k += 1
    for layer in layers:
        specs.append(
            PageSpec(
                f"{k:02d}-geometry-{slug(layer)}",
                f"Geometry of {layer}",
                "comparison",
                lambda layer=layer: geometry_page(ctx, layer),
            )
        )
        k += 1
        specs.append(
            PageSpec(
                f"{k:02d}-cka-{slug(layer)}", f"CKA of {layer}", "comparison", lambda layer=layer: cka_page(ctx, layer)
            )
        )
        k += 1
    specs.append(PageSpec(f"{k:02d}-weight-norms", "Weight-norm growth", "comparison", lambda: norms_page(ctx)))
    k += 1
    for run in ctx.experiment.runs:
        specs.append(
            PageSpec(f"{k:02d}-run-{slug(run.id)}", f"Run {run.id}", "run", lambda run=run: run_page(ctx, run), run=run)
        )
        k += 1
    return specs


# ----------------------------------------------------------------------------- helpers


#: Margins of a grid page, inches: room for the two-line title, panel titles of up to two lines, tick
#: and axis labels, a legend row below the grid, colour bars right of the last column.
_GRID_MARGINS = {"left": 0.75, "right": 0.3, "top": 1.05, "bottom": 0.5, "wspace": 0.8, "hspace": 0.9}
_GRID_LEGEND, _GRID_COLORBAR = 0.45, 0.6


def _grid_figure(ctx: ReportContext) -> Figure:
    """The figure of a grid page: no layout engine, :func:`_grid` places the panels."""
    return Figure(figsize=_grid_size(ctx))


def _fixed_layout(
    fig: Figure,
    nrows: int,
    ncols: int,
    *,
    legend: bool = False,
    colorbar: bool = False,
    top: float = _GRID_MARGINS["top"],
) -> dict[str, float]:
    """``gridspec_kw`` placing ``nrows`` x ``ncols`` panels with the margins of ``_GRID_MARGINS`` (inches).

    A fixed grid instead of a constrained layout, which measured every tick
    label of every panel twice and was a third of drawing a comparison page.
    ``legend`` keeps a row below the panels for a figure legend, ``colorbar``
    room right of the last column for colour bars; ``top`` is the room for
    the figure's and the panels' titles.
    """
    w, h = fig.get_size_inches()
    m = {**_GRID_MARGINS, "top": top}
    m["bottom"] += _GRID_LEGEND if legend else 0.0
    m["right"] += _GRID_COLORBAR if colorbar else 0.0
    panel_w = (w - m["left"] - m["right"] - m["wspace"] * (ncols - 1)) / ncols
    panel_h = (h - m["top"] - m["bottom"] - m["hspace"] * (nrows - 1)) / nrows
    return {
        "left": m["left"] / w,
        "right": 1 - m["right"] / w,
        "top": 1 - m["top"] / h,
        "bottom": m["bottom"] / h,
        "wspace": m["wspace"] / panel_w,
        "hspace": m["hspace"] / panel_h,
    }


def _grid(
    ctx: ReportContext, fig: Figure, *, legend: bool = False, colorbar: bool = False, **kw: Any
) -> dict[Cell, Axes]:
    """Axes for each configuration, laid out rows = loss, columns = the other axes; spare Axes hidden.

    The panels sit on a fixed grid (:func:`_fixed_layout`).
    """
    exp = ctx.experiment
    nrows, ncols = exp.grid_shape()
    gridspec = _fixed_layout(fig, nrows, ncols, legend=legend, colorbar=colorbar)
    axes = fig.subplots(nrows, ncols, squeeze=False, gridspec_kw=gridspec, **kw)
    used = {}
    for cell in exp.cells:
        i, j = exp.grid_position(cell)
        used[cell] = axes[i, j]
    for ax in axes.ravel():
        if ax not in used.values():
            ax.set_visible(False)
    return used


def _grid_size(ctx: ReportContext, w: float = 3.3, h: float = 3.0) -> tuple[float, float]:
    nrows, ncols = ctx.experiment.grid_shape()
    return max(PAGE_SIZE[0], w * ncols + 1.0), max(PAGE_SIZE[1], h * nrows + 1.2)


def _grid_title(ctx: ReportContext, what: str) -> str:
    exp = ctx.experiment
    rows = f"rows: {exp.row_axis}" if exp.row_axis else ""
    cols = f"columns: {', '.join(exp.col_axes)}" if exp.col_axes else ""
    layout = "; ".join(p for p in (rows, cols) if p)
    return f"{exp.name}: {what}" + (f"\n({layout})" if layout else "")


def _run_title(run: Run, epoch: int | None = None) -> str:
    seed = f", seed {run.seed}" if run.seed is not None else ""
    when = f", epoch {epoch:,}" if epoch is not None else ""
    bad = status_label(run.status, run.status_text)
    return f"{run.cell.label}{seed}{when}" + (f"\n{bad}" if bad else "")


def _mark_status(ax: Axes, run: Run) -> None:
    """Colour the title of a run that did not end normally."""
    if not run.ok:
        ax.title.set_color(_BAD)


def _representative_or_placeholder(ctx: ReportContext, cell: Cell, ax: Axes) -> Run | None:
    run = ctx.experiment.representative(cell)
    if run is None:
        runs = ctx.experiment.runs_of(cell)
        why = "; ".join(sorted({r.status_text for r in runs})) or "no runs"
        placeholder(ax, f"no run with data\n({why})", title=cell.label)
    return run


# ----------------------------------------------------------------------------- title page


def title_page(ctx: ReportContext) -> Page:
    """The experiment's configuration, the axes it varies, and the summary table per configuration."""
    exp = ctx.experiment
    fig = Figure(figsize=PAGE_SIZE)  # a fixed layout: text blocks and a table
    fig.suptitle(f"hud report: {exp.name}", fontsize=15, fontweight="bold", y=0.97)
    description = (exp.manifest or {}).get("experiment", {}).get("description") if exp.manifest else None
    if description:
        fig.text(0.5, 0.925, str(description)[:140], ha="center", va="top", fontsize=10, style="italic")
    lines = _config_lines(ctx)
    fig.text(0.04, 0.88, "\n".join(lines), va="top", ha="left", family="monospace", fontsize=8)
    bad = [r for r in exp.runs if not r.ok]
    if bad:
        text = ["Runs that did not end normally (marked on their pages):"]
        text += [f"  {r.id}: {r.status_text}"[:80] for r in bad[:12]]
        if len(bad) > 12:
            text.append(f"  ... and {len(bad) - 12} more (see csv/01-summary-runs.csv)")
        fig.text(0.56, 0.88, "\n".join(text), va="top", ha="left", fontsize=8, color=_BAD)
    summary = ctx.summary()
    top = 0.88 - 0.021 * (len(lines) + 1) - 0.03
    tax = fig.add_axes((0.03, 0.03, 0.94, max(top - 0.03, 0.2)))
    tax.set_axis_off()
    _table(tax, summary, ctx)
    tax.set_title(
        f"Summary per configuration (success: {ctx.criterion[2]}; Wilson 95 % interval)", fontsize=11, loc="left"
    )
    runs = pd.DataFrame(
        [
            {
                "run": r.id,
                GROUP: r.cell.label,
                **{f"cell.{k}": format_value(v) for k, v in r.cell.as_dict().items()},
                "seed": r.seed,
                "status": r.status,
                "status_text": r.status_text,
                "file": r.path,
                "epochs_recorded": len(r.epochs),
                "last_epoch": int(r.epochs[-1]) if len(r.epochs) else None,
                **({f"final_{k}": v for k, v in r.metrics.iloc[-1].items()} if r.has_data and len(r.metrics) else {}),
            }
            for r in exp.runs
        ]
    )
    return Page("01-summary", "Summary", fig, {"summary": summary, "runs": runs}, kind="title")


def _config_lines(ctx: ReportContext) -> list[str]:
    exp = ctx.experiment
    cfg = ctx.data_runs[0].config if ctx.data_runs else {}
    task = cfg.get("task", {})
    net = cfg.get("network", {})
    training = cfg.get("training", {})
    loss = cfg.get("loss", {})
    opt = cfg.get("optimizer", {})
    sizes = "-".join(str(s) for s in [net.get("n_inputs"), *net.get("hidden", []), net.get("n_outputs")])
    counts = pd.Series([r.status for r in exp.runs]).value_counts()
    seeds = sorted({r.seed for r in exp.runs if r.seed is not None})
    lines = [
        f"runs folder   {exp.path}",
        f"written       {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')} by hud {__version__}",
        f"task          {task.get('name', '?')}"
        + "".join(f", {k}={format_value(v)}" for k, v in task.items() if k not in ("name", "seed")),
        f"network       {sizes} {net.get('architecture', '')}, {format_value(net.get('activation'))}"
        + (f", init {format_value(net.get('init'))}" if net.get("init") is not None else ""),
        f"training      {training.get('epochs', '?')} epochs, "
        + ("full batch" if not training.get("batch_size") else f"batch {training.get('batch_size')}"),
    ]
    if "loss" not in exp.axes:
        lines.append(f"loss          {loss.get('name', '?')}")
    if "optimizer" not in exp.axes:
        lines.append(f"optimizer     {format_value(opt)}")
    lines.append("compared:")
    for axis, values in exp.axes.items():
        lines.append(f"  {axis:<12}{', '.join(format_value(v) for v in values)}")
    lines.append(f"  {'seeds':<12}{', '.join(str(s) for s in seeds[:12])}{' ...' if len(seeds) > 12 else ''}")
    lines.append(f"runs          {len(exp.runs)}: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    lines.append(f"layers        {', '.join(ctx.layers)}; snapshot epochs {', '.join(map(str, ctx.snapshot_epochs))}")
    return lines


def _table(ax: Axes, summary: pd.DataFrame, ctx: ReportContext) -> None:
    text = ctx.criterion[2]
    cols = [
        "config",
        "runs",
        "status",
        "final loss (mean)",
        "final accuracy (mean)",
        "success",
        "Wilson 95 %",
        f"epochs to {text}",
    ]
    cells = []
    for _, row in summary.iterrows():
        wl, wh = row["wilson low"], row["wilson high"]
        cells.append(
            [
                row["config"],
                str(row["runs"]),
                row["status"],
                _fmt(row["final loss (mean)"])
                + (f" ± {_fmt(row['final loss (sd)'])}" if np.isfinite(row["final loss (sd)"]) else ""),
                _fmt(row["final accuracy (mean)"], pct=True),
                row["success"],
                f"{wl:.2f}-{wh:.2f}" if np.isfinite(wl) else "-",
                _fmt(row[f"epochs to {text} (median)"], integer=True),
            ]
        )
    table = ax.table(cellText=cells or [["-"] * len(cols)], colLabels=cols, loc="upper center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(8.5)
    table.auto_set_column_width(list(range(len(cols))))
    table.scale(1.0, 1.6)
    palette = ctx.palette
    for (i, j), cell in table.get_celld().items():
        if i == 0:
            cell.set_facecolor("#E8E8E8")
            cell.set_text_props(fontweight="bold")
        elif j == 0 and i - 1 < len(summary):
            cell.set_text_props(color=palette.get(summary.iloc[i - 1]["config"], "k"), fontweight="bold")
        if (
            i > 0
            and j == 2
            and any(s in cell.get_text().get_text() for s in ("diverged", "interrupted", "missing", "failed"))
        ):
            cell.get_text().set_color(_BAD)


def _fmt(v: Any, *, pct: bool = False, integer: bool = False) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not np.isfinite(v):
        return "-"
    if pct:
        return f"{100 * v:.1f} %"
    if integer:
        return f"{v:,.0f}"
    return f"{v:.3g}"


# ----------------------------------------------------------------------------- comparison pages


def overview_page(ctx: ReportContext) -> Page:
    """Loss and accuracy of every configuration (mean and spread over seeds), success rates, epochs to success."""
    fig = _figure()  # a constrained layout: the configurations' names label the y axes of the lower row
    axes = fig.subplots(2, 2)
    curves = ctx.curves()
    kw = {"palette": ctx.palette, "order": ctx.order, "spread": ctx.spread, "group": GROUP}
    figures.learning_curves(curves, metric="loss", ax=axes[0, 0], title="loss (mean over seeds)", **kw)
    figures.learning_curves(curves, metric="accuracy", ax=axes[0, 1], title="accuracy (mean over seeds)", **kw)
    figures.success_rates(
        ctx.success(),
        palette=ctx.palette,
        criterion=ctx.criterion[2],
        ax=axes[1, 0],
        title=f"success rate: seeds reaching {ctx.criterion[2]}",
    )
    th = ctx.thresholds()
    figures.epochs_to_threshold(
        th,
        group=GROUP,
        order=[c for c in ctx.order if c in set(th[GROUP])],
        palette=ctx.palette,
        criterion=ctx.criterion[2],
        ax=axes[1, 1],
    )
    fig.suptitle(f"{ctx.experiment.name}: loss, accuracy and success of each configuration", fontsize=12)
    rates = pd.DataFrame([{GROUP: k, **vars(v)} for k, v in ctx.success().items()])
    return Page("02-overview", "overview", fig, {"curves": curves, "success": rates, "thresholds": th})


def curves_grid_page(ctx: ReportContext) -> Page:
    """Every seed's loss curve, one panel per configuration; diverged and interrupted runs marked where they end."""
    fig = _grid_figure(ctx)
    curves = ctx.curves()
    grid = _grid(ctx, fig, sharex=True, sharey=True)
    for cell, ax in grid.items():
        sub = curves[curves[GROUP] == cell.label]
        if sub.empty:
            _representative_or_placeholder(ctx, cell, ax)
            continue
        figures.learning_curves(
            sub,
            metric="loss",
            group=GROUP,
            palette=ctx.palette,
            spread=ctx.spread,
            runs=True,
            statuses=ctx.statuses,
            title=cell.label,
            ax=ax,
        )
        missing = [r for r in ctx.experiment.runs_of(cell) if not r.has_data]
        if missing:
            ax.text(
                0.02,
                0.02,
                f"{len(missing)} run(s) without data: " + missing[0].status_text,
                fontsize=6,
                color=_BAD,
                transform=ax.transAxes,
            )
    fig.suptitle(_grid_title(ctx, "loss of every seed (thin), mean (bold)"), fontsize=11)
    return Page("03-learning-curves", "learning curves", fig, {"curves": curves})


def trajectories_page(ctx: ReportContext, layer: str) -> Page:
    """PCA trajectories of the representative run of each configuration, in one basis shared by all."""
    fig = _grid_figure(ctx)
    grid = _grid(ctx, fig, legend=True)
    traj = ctx.trajectories(layer)
    data = {}
    for cell, ax in grid.items():
        run = _representative_or_placeholder(ctx, cell, ax)
        if run is None:
            continue
        if isinstance(traj, str):
            placeholder(ax, traj, title=_run_title(run))
            continue
        traj.plot(run.id, ax=ax, title=_run_title(run), legend=False)
        _mark_status(ax, run)
    if not isinstance(traj, str):
        data["trajectories"] = traj.to_frame()
        handles = traj.legend_handles()
        fig.legend(
            handles=handles, loc="lower center", ncols=min(len(handles), 6), fontsize=8, bbox_to_anchor=(0.5, 0.01)
        )
    fig.suptitle(
        _grid_title(ctx, f"PCA trajectories of {layer}, one basis fitted on every panel's epochs"), fontsize=11
    )
    return Page(f"trajectories-{layer}", f"trajectories of {layer}", fig, data)


def hidden_grid_page(ctx: ReportContext, layer: str, target: int) -> Page:
    """The hidden space of each configuration's representative run near one epoch."""
    fig = _grid_figure(ctx)
    grid = _grid(ctx, fig, legend=True)
    frames = []
    first = True
    for cell, ax in grid.items():
        run = _representative_or_placeholder(ctx, cell, ax)
        if run is None:
            continue
        epoch = run.snap(target)
        disp = ctx.hidden_display(run, layer, epoch) if epoch is not None else "no epoch with a finite loss"
        if isinstance(disp, str):
            placeholder(ax, disp, title=_run_title(run, epoch))
        else:
            disp.plot(ax=ax, title=_run_title(run, epoch), legend=False)
            if first:
                fig.legend(
                    handles=disp.legend_handles(), loc="lower center", ncols=3, fontsize=8, bbox_to_anchor=(0.5, 0.01)
                )
            first = False
            df = disp.to_frame()
            df.insert(0, "run", run.id)
            frames.append(df)
        _mark_status(ax, run)
    kind = "exact output lines" if ctx.n_units(layer) == 2 else "output boundaries in the shared PCA plane"
    fig.suptitle(_grid_title(ctx, f"hidden space of {layer} near epoch {target:,} ({kind})"), fontsize=11)
    return Page(
        f"hidden-{layer}-{target}",
        f"hidden space of {layer}",
        fig,
        {"hidden": pd.concat(frames, ignore_index=True)} if frames else {},
    )


def plane_grid_page(ctx: ReportContext, target: int) -> Page:
    """The decision boundary in the input plane of each configuration's representative run near one epoch."""
    exp = ctx.experiment
    fig = _grid_figure(ctx)
    grid = _grid(ctx, fig, colorbar=True)
    frames = []
    for cell, ax in grid.items():
        run = _representative_or_placeholder(ctx, cell, ax)
        if run is None:
            continue
        epoch = run.snap(target)
        disp = ctx.plane_display(run, epoch) if epoch is not None else "no epoch with a finite loss"
        if isinstance(disp, str) or disp is None:
            placeholder(ax, disp or "no input plane", title=_run_title(run, epoch))
        else:
            last_col = exp.grid_position(cell)[1] == exp.grid_shape()[1] - 1
            disp.plot(
                ctx.probe_inputs,
                ctx.labels,
                ax=ax,
                title=_run_title(run, epoch),
                colorbar=last_col,
                legend=cell == exp.cells[0],
            )
            df = disp.to_frame()
            df.insert(0, "run", run.id)
            frames.append(df)
        _mark_status(ax, run)
    fig.suptitle(_grid_title(ctx, f"decision boundary in the input plane near epoch {target:,}"), fontsize=11)
    return Page(
        "input-plane", "input plane", fig, {"input_plane": pd.concat(frames, ignore_index=True)} if frames else {}
    )


def unit_maps_page(ctx: ReportContext, layer: str, target: int) -> Page:
    """Each hidden unit of a layer over the input plane, for each configuration's representative run."""
    from analysis import boundaries

    exp = ctx.experiment
    fig = _grid_figure(ctx)
    grid = _grid(ctx, fig, colorbar=True)
    points, shape, _ = ctx.coarse_grid(81)
    ncols = exp.grid_shape()[1]
    frames = []
    for cell, ax in grid.items():
        run = _representative_or_placeholder(ctx, cell, ax)
        epoch = run.snap(target) if run is not None else None
        if run is None:
            continue
        try:
            if epoch is None:
                raise ParameterError("no epoch with a finite loss")
            maps = boundaries.unit_maps(run.network(epoch), points, layer=layer, grid_shape=shape)
        except HudError as exc:
            placeholder(ax, str(exc), title=_run_title(run, epoch))
            continue
        figures.unit_mosaic(
            maps,
            activation=ctx.activation(layer),
            layer=layer,
            title=_run_title(run, epoch),
            colorbar=exp.grid_position(cell)[1] == ncols - 1,
            ax=ax,
        )
        _mark_status(ax, run)
        n_units, ny, nx = maps.shape
        frames.append(
            pd.DataFrame(
                {
                    "run": run.id,
                    "epoch": epoch,
                    "unit": np.repeat(np.arange(1, n_units + 1), ny * nx),
                    "x1": np.tile(points[:, 0], n_units),
                    "x2": np.tile(points[:, 1], n_units),
                    "value": maps.reshape(-1),
                }
            )
        )
    fig.suptitle(_grid_title(ctx, f"each unit of {layer} over the input plane near epoch {target:,}"), fontsize=11)
    return Page(
        "unit-maps", f"unit maps of {layer}", fig, {"unit_maps": pd.concat(frames, ignore_index=True)} if frames else {}
    )


def geometry_page(ctx: ReportContext, layer: str) -> Page:
    """Geometry metrics of one layer over epochs, every configuration on each panel."""
    metrics = ctx.geometry_metrics(layer)
    data = ctx.geometry(layer)
    fig = Figure(figsize=PAGE_SIZE)
    for k, ax in enumerate(_panels(fig, len(metrics), 3 if len(metrics) > 4 else 2)):
        figures.geometry_metrics(
            data,
            metric=metrics[k],
            layer=layer,
            group=GROUP,
            palette=ctx.palette,
            order=ctx.order,
            spread=ctx.spread,
            legend=k == 0,
            ax=ax,
        )
    fig.suptitle(f"{ctx.experiment.name}: geometry of {layer} over epochs (mean over seeds)", fontsize=12)
    return Page(f"geometry-{layer}", f"geometry of {layer}", fig, {"geometry": data})


def cka_page(ctx: ReportContext, layer: str) -> Page:
    """Run x run CKA at the last snapshot epoch, and epoch x epoch CKA of each configuration's representative run."""
    exp = ctx.experiment
    nrows, ncols = exp.grid_shape()
    fig = _figure((PAGE_SIZE[0] + 1.5, max(PAGE_SIZE[1], 2.8 * nrows + 1.2)))
    left, right = fig.subfigures(1, 2, width_ratios=[1.0, 1.35])
    target = ctx.snapshot_epochs[-1]
    runs, mat, epochs = ctx.cka_runs(layer, target)
    ax = left.add_subplot()
    figures.cka_heatmap(
        mat,
        labels=[r.id for r in runs],
        axis_name="run",
        groups=[r.cell.label for r in runs],
        title=f"run x run near epoch {target:,}\n(grey: no finite activations)",
        ax=ax,
    )
    axes = right.subplots(nrows, ncols, squeeze=False)
    used = set()
    frames = [
        pd.DataFrame(mat, index=[r.id for r in runs], columns=[r.id for r in runs])
        .rename_axis("run")
        .reset_index()
        .assign(kind="run x run", epoch=str(epochs))
    ]
    for cell in exp.cells:
        i, j = exp.grid_position(cell)
        a = axes[i, j]
        used.add((i, j))
        run = _representative_or_placeholder(ctx, cell, a)
        if run is None:
            continue
        ep, m = ctx.epoch_cka(run, layer)
        figures.cka_heatmap(
            m,
            labels=ep,
            axis_name="epoch",
            title=_run_title(run),
            colorbar=(i, j) == (0, ncols - 1),
            annotate=False,
            ax=a,
        )
        _mark_status(a, run)
        frames.append(
            pd.DataFrame(m, index=ep, columns=ep)
            .rename_axis("epoch")
            .reset_index()
            .assign(kind="epoch x epoch", run=run.id)
        )
    for (i, j), a in np.ndenumerate(axes):
        if (i, j) not in used:
            a.set_visible(False)
    right.suptitle("epoch x epoch (each configuration's first seed)", fontsize=10)
    fig.suptitle(_grid_title(ctx, f"linear CKA of {layer}"), fontsize=11)
    return Page(f"cka-{layer}", f"CKA of {layer}", fig, {"cka": pd.concat(frames, ignore_index=True)})


def norms_page(ctx: ReportContext) -> Page:
    """The norm of each layer's parameters over epochs, every configuration on each panel."""
    data = ctx.weight_norms()
    layers = list(dict.fromkeys(data["layer"]))
    fig = Figure(figsize=PAGE_SIZE)
    for k, ax in enumerate(_panels(fig, len(layers), min(3, len(layers)))):
        figures.weight_norm_growth(
            data,
            layer=layers[k],
            group=GROUP,
            palette=ctx.palette,
            order=ctx.order,
            spread=ctx.spread,
            legend=k == 0,
            ax=ax,
        )
    fig.suptitle(f"{ctx.experiment.name}: weight-norm growth per layer (mean over seeds)", fontsize=12)
    return Page("weight-norms", "weight norms", fig, {"weight_norms": data})


# ----------------------------------------------------------------------------- per-run pages


def run_page(ctx: ReportContext, run: Run) -> Page:
    """One run: loss, accuracy and weight norms; hidden space and (2-D tasks) input plane at the snapshot epochs.

    Laid out on a fixed grid (no layout engine): a report has one such page
    per run, and a constrained layout was most of their drawing time.  The
    runs of a report share one figure per layout (kept in ``ctx.figures``):
    each page removes the previous run's lines, images and texts and draws its
    own into the same Axes, which halves the time of a page (creating Axes and
    their ticks is most of a fresh page's cost).  The figure returned is
    therefore only valid until the next call; save it before.
    """
    plane = ctx.grid is not None
    bad = status_label(run.status, run.status_text)
    seed = f", seed {run.seed}" if run.seed is not None else ""
    title = f"{ctx.experiment.name}: run {run.id} ({run.cell.label}{seed})" + (f"\n{bad}" if bad else "")
    layer = ctx.layers[-1] if ctx.layers else None
    snaps = ctx.snapshots(run)[:_MAX_SNAPSHOTS] if run.has_data else []
    if not run.has_data:
        fig = Figure(figsize=(PAGE_SIZE[0], PAGE_SIZE[1] if plane else PAGE_SIZE[1] * 0.62))
        fig.suptitle(title, fontsize=12, color=_BAD if bad else "black", y=0.985)
        ax = fig.add_axes((0.1, 0.1, 0.8, 0.7))
        placeholder(ax, f"{run.status_text}\n{run.path}", title=f"run {run.id}: nothing recorded")
        return Page(f"run-{run.id}", f"run {run.id}", fig, {}, kind="run")
    if not snaps or layer is None:  # curves only: a page of its own, never reused
        rf = _RunFigure.create(plane, bad=bool(bad), n_snaps=0)
        rf.fig.suptitle(title, fontsize=12, color=_BAD if bad else "black", y=0.985)
        data = _run_curves(ctx, run, rf.curves)
        placeholder(rf.placeholder(), "no epoch with a finite loss" if layer else "no hidden layer")
        return Page(f"run-{run.id}", f"run {run.id}", rf.fig, data, kind="run")
    key = ("run-page", plane, bool(bad), len(snaps), layer)
    rf = ctx.figures.pop(key, None)
    if rf is None or not rf.intact():
        rf = _RunFigure.create(plane, bad=bool(bad), n_snaps=len(snaps), layer=layer)
    else:
        rf.clear_content()
    rf.fig.suptitle(title, fontsize=12, color=_BAD if bad else "black", y=0.985)
    data = _run_curves(ctx, run, rf.curves)
    data.update(_run_hidden_row(ctx, run, snaps, rf))
    if plane:
        data.update(_run_plane_row(ctx, run, snaps, rf))
    if rf.reusable:
        ctx.figures[key] = rf
    return Page(f"run-{run.id}", f"run {run.id}", rf.fig, data, kind="run")


_MAX_SNAPSHOTS = 6


@dataclass
class _RunFigure:
    """A per-run page's figure and its Axes: curves in a column, snapshot rows of hidden space and input plane."""

    fig: Figure
    curves: list[Axes]
    hidden: list[Axes]
    plane: list[Axes]
    right: Any  # the grid cell of the snapshot rows
    colorbar: Any = None
    reusable: bool = True  # false once a panel holds a placeholder (it removes the ticks)

    @classmethod
    def create(cls, plane: bool, *, bad: bool, n_snaps: int, layer: str | None = None) -> _RunFigure:
        fig = Figure(figsize=(PAGE_SIZE[0], PAGE_SIZE[1] if plane else PAGE_SIZE[1] * 0.62))
        top = (0.85 if bad else 0.88) if plane else (0.76 if bad else 0.81)
        gs = fig.add_gridspec(
            1, 2, left=0.06, right=0.93, top=top, bottom=0.07 if plane else 0.11, wspace=0.16, width_ratios=[1.0, 4.0]
        )
        n = 3 if plane else 2
        curves = [fig.add_subplot(c) for c in gs[0, 0].subgridspec(n, 1, hspace=0.55)]
        rows = 2 if plane else 1
        right = gs[0, 1].subgridspec(rows, 1, hspace=0.36, height_ratios=[1.15, 1.0][:rows])
        hidden = _snapshot_axes(fig, right[0, 0], n_snaps, f"hidden space of {layer} at the snapshot epochs")
        planes = (
            _snapshot_axes(fig, right[1, 0], n_snaps, "decision boundary in the input plane", share=False)
            if plane
            else []
        )
        for ax in (*curves, *hidden, *planes):
            _fixed_xlabel(ax)
        for ax in (*hidden[1:], *planes[1:]):
            ax.yaxis.set_label_coords(-0.1, 0.5)  # these panels have no y label: nothing to place
        return cls(fig, curves, hidden, planes, right)

    def placeholder(self) -> Axes:
        """An Axes in place of the hidden-space row, for a page that has none (the figure is not reused)."""
        self.reusable = False
        return self.fig.add_subplot(self.right[0, 0])

    def intact(self) -> bool:
        """Whether the Axes are still the figure's (a caller may have cleared it)."""
        return bool(self.curves) and self.curves[0] in self.fig.axes

    def clear_content(self) -> None:
        """Remove what the previous run drew (lines, images, collections, texts, legends), keep the Axes."""
        for ax in (*self.curves, *self.hidden, *self.plane):
            for artists in (ax.lines, ax.collections, ax.images, ax.texts, ax.patches):
                for artist in list(artists):
                    artist.remove()
            if ax.legend_ is not None:
                ax.legend_.remove()
            ax.relim()
            ax.set_autoscale_on(True)


def _run_curves(ctx: ReportContext, run: Run, axes: list[Axes]) -> dict[str, pd.DataFrame]:
    """Loss, accuracy and (with a third Axes) weight norms of one run, stacked in a column."""
    curves = ctx.curves()
    mine = curves[curves["run"] == run.id]
    for ax, metric in zip(axes[:2], ("loss", "accuracy")):
        figures.learning_curves(
            mine,
            metric=metric,
            group=GROUP,
            palette=ctx.palette,
            spread="none",
            runs=True,
            statuses=ctx.statuses,
            title=metric,
            legend=False,
            ax=ax,
        )
        ax.set_ylabel(metric + (" (log)" if metric == "loss" else ""), fontsize=8)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        few_ticks(ax, 3)
    data = {"curves": mine}
    if len(axes) < 3:
        return data
    norms = ctx.weight_norms()
    mine_norms = norms[norms["run"] == run.id]
    color = ctx.palette.get(run.cell.label, "k")
    ax = axes[2]
    for k, (layer, df) in enumerate(mine_norms.groupby("layer", sort=False)):
        ax.plot(df["epoch"], df["value"], color=color, ls=("-", "--", ":", "-.")[k % 4], label=layer)
    log_scale(ax)
    few_ticks(ax, 3)
    ax.set_xlabel("epoch", fontsize=8)
    ax.set_ylabel("||w|| (log)", fontsize=8)
    ax.set_title("weight norm per layer", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3)
    data["weight_norms"] = mine_norms
    return data


def _fixed_xlabel(ax: Axes, points: float = 19.0) -> None:
    """Put the x label ``points`` below the Axes instead of below its measured tick labels.

    Matplotlib measures every tick label of an Axes (and of the Axes sharing
    it) to place the axis label, at every draw: on a per-run page that was a
    tenth of its drawing.  The run pages' tick labels are one line of 7-point
    text, so their height is known.
    """
    from matplotlib.transforms import ScaledTranslation

    offset = ScaledTranslation(0, -points / 72, ax.figure.dpi_scale_trans)
    ax.xaxis.set_label_coords(0.5, 0.0, transform=ax.transAxes + offset)


def _snapshot_axes(fig: Figure, spec: Any, n: int, title: str, *, share: bool = True) -> list[Axes]:
    if n == 0:
        return []
    cols = max(n, 4)
    sub = spec.subgridspec(1, cols, wspace=0.12)
    axes = [fig.add_subplot(sub[0, 0])]
    kw = {"sharex": axes[0], "sharey": axes[0]} if share else {}
    axes += [fig.add_subplot(sub[0, k], **kw) for k in range(1, n)]
    bbox = sub[0, :].get_position(fig)
    fig.text((bbox.x0 + bbox.x1) / 2, bbox.y1 + 0.035, title, ha="center", va="bottom", fontsize=10)
    return axes


def _inner(ax: Axes, k: int) -> None:
    """Hide the y axis label and tick labels of every panel of a row but the first."""
    few_ticks(ax, 3)
    if k > 0:
        ax.set_ylabel("")
        ax.tick_params(labelleft=False)


def _run_hidden_row(ctx: ReportContext, run: Run, snaps: list[int], rf: _RunFigure) -> dict[str, pd.DataFrame]:
    layer = ctx.layers[-1]
    basis, extent = ctx.run_plane(run, layer)
    frames = []
    for k, (ax, epoch) in enumerate(zip(rf.hidden, snaps)):
        disp = ctx.hidden_display(run, layer, epoch, basis=basis, extent=extent)
        if isinstance(disp, str):
            rf.reusable = False
            placeholder(ax, disp, title=f"epoch {epoch:,}")
            continue
        disp.plot(ax=ax, title=f"epoch {epoch:,}", legend=k == 0)
        _inner(ax, k)
        frames.append(disp.to_frame())
    return {"hidden": pd.concat(frames, ignore_index=True)} if frames else {}


def _run_plane_row(ctx: ReportContext, run: Run, snaps: list[int], rf: _RunFigure) -> dict[str, pd.DataFrame]:
    frames = []
    for k, (ax, epoch) in enumerate(zip(rf.plane, snaps)):
        disp = ctx.plane_display(run, epoch)
        if isinstance(disp, str) or disp is None:
            rf.reusable = False
            placeholder(ax, disp or "no input plane", title=f"epoch {epoch:,}")
            continue
        disp.plot(ctx.probe_inputs, ctx.labels, ax=ax, colorbar=False, legend=False, title=f"epoch {epoch:,}")
        _inner(ax, k)
        frames.append(disp.to_frame())
    images = [ax.images[0] for ax in rf.plane if ax.images]
    if images and rf.colorbar is None:  # one colour bar for the row, taking the same room from every panel
        rf.colorbar = rf.fig.colorbar(images[-1], ax=rf.plane, fraction=0.025, pad=0.01, label="output")
    elif images:
        rf.colorbar.update_normal(images[-1])
    return {"input_plane": pd.concat(frames, ignore_index=True)} if frames else {}
