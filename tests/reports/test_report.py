"""build_report and ``hud report``: the files, the pages as a reader sees them, statuses, bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import matplotlib

matplotlib.use("Agg")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402

import reports.pages  # noqa: E402
from data import schema as S  # noqa: E402
from data.errors import FormatVersionError, ParameterError, RecordingError  # noqa: E402
from reports import ReportError, build_report  # noqa: E402
from reports.cli import main  # noqa: E402
from reports.context import ReportContext  # noqa: E402
from reports.experiment import load_experiment  # noqa: E402
from reports.pages import plan  # noqa: E402


def _pdf_pages(path) -> int:
    """Pages of a PDF counted from its page objects (no PDF library needed)."""
    data = open(path, "rb").read()
    return len(re.findall(rb"/Type\s*/Page(?![a-z])", data))


# ----------------------------------------------------------------------------- the files


def test_report_writes_a_pdf_a_png_per_page_csvs_gifs_and_the_index(tiny_report):
    out = tiny_report.out_dir
    index = json.load(open(os.path.join(out, "report.json")))
    names = [p["name"] for p in index["pages"]]
    assert _pdf_pages(tiny_report.pdf) == len(names) == len(tiny_report.pages)
    # summary, overview, curves, trajectories, 2 snapshot epochs, input plane, unit maps, geometry, CKA, norms,
    # then one page per run (7, the missing one included)
    assert len(names) == 11 + 7 and names[0] == "01-summary" and names[-1].startswith("18-run-")
    for page in index["pages"]:
        assert os.path.getsize(os.path.join(out, page["png"])) > 5000
        assert all(os.path.isfile(os.path.join(out, c)) for c in page["csv"])
    assert all(p["csv"] for p in index["pages"] if p["kind"] != "run" or "s7" not in p["name"])
    assert len(index["gifs"]) == 6  # every run with data, the missing one has none
    assert all(os.path.getsize(os.path.join(out, g)) > 1000 for g in index["gifs"])
    assert not [f for f in os.listdir(out) if f.startswith(".")]  # no partial folder left
    summary = pd.read_csv(os.path.join(out, "csv", "01-summary-summary.csv"))
    assert list(summary["config"]) == ["sse · momentum", "sse · adam", "bce · momentum", "bce · adam"]


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (poppler-utils) is not installed")
def test_every_pdf_page_renders_and_none_is_blank(tiny_report, tmp_path):
    subprocess.run(["pdftoppm", "-r", "20", "-png", tiny_report.pdf, str(tmp_path / "p")], check=True)
    from PIL import Image

    pages = sorted(tmp_path.glob("p-*.png"))
    assert len(pages) == len(tiny_report.pages)
    for page in pages:
        pixels = np.asarray(Image.open(page).convert("L"), dtype=float)
        assert pixels.std() > 10, f"{page.name} is blank"


def test_each_pdf_page_is_its_png_in_plan_order_and_run_pages_are_lossless(tiny_report):
    """The PDF is merged from one-page PDFs drawn in several processes: page k must be page k of the plan.
    A comparison page's PNG is its vector PDF page rasterised, a run page's PDF page shows its PNG's pixels."""
    import pypdfium2 as pdfium
    from PIL import Image

    doc = pdfium.PdfDocument(tiny_report.pdf)
    try:
        assert len(doc) == len(tiny_report.pages)
        for k, page in enumerate(tiny_report.pages):
            png = np.asarray(Image.open(os.path.join(tiny_report.out_dir, page["png"])).convert("RGB"), dtype=int)
            shown = np.asarray(doc[k].render(scale=100 / 72).to_pil().convert("RGB"), dtype=int)
            assert shown.shape == png.shape, page["name"]
            if page["kind"] == "run":
                assert np.abs(shown - png).max() <= 1, page["name"]  # the same pixels, resampling aside
            else:
                assert np.abs(shown - png).mean() < 0.5, page["name"]
    finally:
        doc.close()
    from pypdf import PdfReader

    assert PdfReader(tiny_report.pdf).metadata.title.startswith("hud report: ")


def test_runs_that_did_not_end_normally_are_shown_as_such(tiny_report):
    status = {r["id"]: r for r in tiny_report.runs}
    assert status["bce-adam-s9"]["status"] == "diverged"  # from the file, not the stale manifest
    assert status["sse-momentum-s8"]["status_text"] == "interrupted at epoch 10"
    assert status["sse-adam-s7"]["status"] == "missing"
    assert {r["id"] for r in tiny_report.problems} == {"bce-adam-s9", "sse-momentum-s8", "sse-adam-s7"}
    summary = pd.read_csv(os.path.join(tiny_report.out_dir, "csv", "01-summary-summary.csv"))
    assert set(summary["status"]) == {
        "1 complete, 1 interrupted",
        "1 complete, 1 missing",
        "1 complete",
        "1 complete, 1 diverged",
    }


# ----------------------------------------------------------------------------- pages as a reader sees them


def _layout_texts(fig):
    """Titles, axis labels and figure texts of a drawn figure, with their boxes."""
    renderer = fig.canvas.get_renderer()
    texts = [t for t in fig.texts if t.get_text().strip()]
    if fig._suptitle is not None:
        texts.append(fig._suptitle)
    for sub in fig.subfigs:
        texts += [t for t in sub.texts if t.get_text().strip()]
        if sub._suptitle is not None:
            texts.append(sub._suptitle)
    for ax in fig.get_axes():
        if not ax.get_visible():
            continue
        texts += [t for t in (ax.title, ax.xaxis.label, ax.yaxis.label) if t.get_text().strip() and t.get_visible()]
    unique = list({id(t): t for t in texts}.values())
    return [(t.get_text(), t.get_window_extent(renderer)) for t in unique]


def _check_page(page):
    fig = page.figure
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    axes = [ax for ax in fig.get_axes() if ax.get_visible()]
    drawn = [ax for ax in axes if ax.lines or ax.collections or ax.images or ax.patches or ax.texts or ax.tables]
    assert drawn, f"{page.name}: nothing drawn"
    plots = [ax for ax in drawn if ax.axison and ax.get_label() != "<colorbar>"]
    for ax in plots:
        assert ax.get_title().strip(), f"{page.name}: an Axes without a title"
        assert ax.get_xlabel().strip() or not ax.get_xticks().size, f"{page.name}: {ax.get_title()!r} has no x label"
    if plots:
        legends = [ax for ax in plots if ax.get_legend() is not None]
        colorbars = [ax for ax in axes if ax.get_label() == "<colorbar>"]
        assert legends or colorbars or fig.legends, f"{page.name}: no legend or colour bar"
    texts = _layout_texts(fig)
    for i, (a, box_a) in enumerate(texts):
        for b, box_b in texts[i + 1 :]:
            overlap = box_a.intersection(box_a, box_b)
            area = 0 if overlap is None else overlap.width * overlap.height
            assert area < 4, f"{page.name}: {a!r} overlaps {b!r}"


def test_every_page_is_labelled_titled_has_a_legend_and_no_overlapping_text(tiny_runs):
    with load_experiment(tiny_runs) as exp:
        ctx = ReportContext(exp, ["hidden1"], [0, 40])
        specs = plan(ctx)
        chosen = [s for s in specs if s.kind != "run"] + [s for s in specs if s.name.endswith(("-s9", "-s0"))][:2]
        for spec in chosen:
            page = spec.make()
            page.name = spec.name
            _check_page(page)
            if spec.name.endswith("-s9"):
                assert "DIVERGED AT EPOCH 1" in page.figure._suptitle.get_text()
            page.figure.clear()


def _pixels(fig) -> np.ndarray:
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].astype(np.int16)


def test_a_run_page_drawn_into_the_previous_runs_figure_is_the_page_drawn_afresh(tiny_runs):
    with load_experiment(tiny_runs) as exp:
        ctx = ReportContext(exp, ["hidden1"], [0, 5, 40])
        runs = [s for s in plan(ctx) if s.kind == "run" and s.run.ok][:3]
        reused = [spec.make() for spec in runs]
        assert reused[1].figure is reused[0].figure  # one figure for every run of this layout
        images = [None, None]
        for k, spec in enumerate(runs[1:]):
            ctx.figures.clear()
            runs[0].make()
            images[k] = _pixels(spec.make().figure)  # drawn over runs[0]'s page
            ctx.figures.clear()
            fresh = _pixels(spec.make().figure)
            assert fresh.shape == images[k].shape
            differing = (np.abs(fresh - images[k]).max(axis=-1) > 40).mean()
            assert differing < 1e-4, f"{spec.name}: {differing:.2%} of the pixels differ from a fresh page"
        assert np.abs(images[0] - images[1]).max() > 0  # the check can fail: two runs' pages differ


# ----------------------------------------------------------------------------- folders without a manifest, options


def test_a_folder_of_recordings_without_a_manifest_gets_its_configurations_from_the_recordings(tiny_runs, tmp_path):
    runs = tmp_path / "loose"
    runs.mkdir()
    for name in ("sse-momentum-s0.h5", "bce-adam-s0.h5"):
        shutil.copy(os.path.join(tiny_runs, name), runs / name)
    with load_experiment(runs) as exp:
        assert exp.manifest is None and exp.name == "loose"
        assert [c.label for c in exp.cells] == ["sse · momentum", "bce · adam"]
        assert exp.axes["loss"] == ["sse", "bce"] and exp.grid_shape() == (2, 2)


def test_options_are_checked_with_messages_naming_them(tiny_runs, tmp_path):
    with pytest.raises(ParameterError, match="formats must be one of 'pdf', 'png', 'gif'; got 'svg'"):
        build_report(tiny_runs, tmp_path, formats="pdf,svg")
    with pytest.raises(
        ParameterError, match="layers must name recorded layers .* got 'hiden1' .did you mean 'hidden1'"
    ):
        build_report(tiny_runs, tmp_path, layers=["hiden1"])
    with pytest.raises(ParameterError, match="epochs must be integers >= 0; got -1"):
        build_report(tiny_runs, tmp_path, epochs=[0, -1])
    assert not os.listdir(tmp_path)


# ----------------------------------------------------------------------------- bad input


def test_bad_runs_folders_are_one_clear_error(tmp_path, tiny_runs):
    with pytest.raises(RecordingError, match="does not exist"):
        build_report(tmp_path / "nope", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecordingError, match="no recordings in"):
        build_report(tmp_path / "empty", tmp_path / "out")
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(os.path.join(tiny_runs, "sse-adam-s0.h5"), bad / "run.h5")
    with h5py.File(bad / "run.h5", "r+") as f:
        f.attrs[S.ROOT_ATTRS.VERSION] = 99
    with pytest.raises(FormatVersionError, match="format_version 99"):
        build_report(bad, tmp_path / "out")
    (bad / "run.h5").write_bytes(b"not a recording")
    with pytest.raises(RecordingError, match="not an HDF5 file"):
        build_report(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_output_path_that_cannot_be_written_is_one_clear_error(tiny_runs, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ReportError, match="is not writable|is a file"):
        build_report(tiny_runs, blocker / "report")
    with pytest.raises(ReportError, match="is a file"):
        build_report(tiny_runs, blocker)


def test_an_interrupted_report_never_looks_complete(tiny_runs, tmp_path, monkeypatch):
    out = tmp_path / "out"

    def broken(ctx):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(reports.pages, "overview_page", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        build_report(tiny_runs, out, progress=False, workers=1)
    assert os.listdir(out) == []  # neither an index nor a partial folder


def test_cli_report_writes_and_says_where_and_errors_are_one_line(tiny_runs, tmp_path, capsys):
    runs, out = tmp_path / "two", tmp_path / "r"
    runs.mkdir()
    for name in ("sse-momentum-s0.h5", "bce-adam-s9.h5"):  # a folder of recordings without a manifest
        shutil.copy(os.path.join(tiny_runs, name), runs / name)
    argv = [
        "report",
        str(runs),
        "-o",
        str(out),
        "--epochs",
        "1000",
        "--layers",
        "hidden1",
        "--format",
        "png",
        "--workers",
        "1",
        "-q",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    # no manifest: the configurations come from the recordings (the learning rate varies within momentum)
    assert "note: run bce-adam-s9 (bce · momentum · lr=1e+38, seed 9): diverged at epoch 1" in printed
    assert f"-> {out / 'report.json'}" in printed
    index = json.load(open(out / "report.json"))
    assert index["snapshot_epochs"] == [1000] and index["pdf"] is None
    page = next(p for p in index["pages"] if p["name"].endswith("hidden-hidden1-epoch-1000"))
    late = pd.read_csv(os.path.join(out, page["csv"][0]))
    assert set(late["epoch"]) == {40, 0}  # asked for 1000: each run shows its nearest epoch with a finite loss
    for argv, message in (
        (["report", str(tmp_path / "nope")], "does not exist"),
        (["report", tiny_runs, "--epochs", "1,x"], "--epochs must be a comma-separated list of integers"),
        (["report", tiny_runs, "--format", "svg"], "formats must be one of"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("hud: error: ") and message in err


def test_the_experiment_grid_rows_are_losses_and_columns_optimizers(tiny_runs):
    with load_experiment(tiny_runs) as exp:
        pos = {c.label: exp.grid_position(c) for c in exp.cells}
        assert pos == {"sse · momentum": (0, 0), "sse · adam": (0, 1), "bce · momentum": (1, 0), "bce · adam": (1, 1)}
        assert exp.common_seed() == 0
        assert all(exp.representative(c).seed == 0 for c in exp.cells)
        assert len(set(exp.palette.values())) == 4
