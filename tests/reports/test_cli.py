"""The command line: one-line errors, exit codes, the demo summary."""

from __future__ import annotations

import subprocess
import sys

from reports.cli import main


def test_unknown_command_is_one_line_and_exit_2(capsys):
    try:
        main(["frobnicate"])
    except SystemExit as exc:
        assert exc.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice: 'frobnicate'" in err


def test_hud_error_is_printed_without_traceback(capsys):
    assert main(["demo", "--seeds", "0"]) == 2
    err = capsys.readouterr().err
    assert err == "hud: error: seeds must be an integer in [1, 100]; got 0\n"


def test_tasks_lists_every_task(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    for name in ("xor", "encoder", "star16", "spirals", "digits", "degenerate", "linear", "custom"):
        assert name in out


def test_demo_trains_reports_and_prints_where_the_pdf_is(tmp_path, monkeypatch, capsys):
    import reports.demo

    tiny = {
        "name": "xor",
        "task": {"name": "xor"},
        "network": {"hidden": [2]},
        "training": {"epochs": 10},
        "record": {"schedule": 1},
        "grid": {"loss": ["sse", "bce"], "optimizer": [{"name": "adam", "lr": 0.05}], "seeds": 1},
    }
    monkeypatch.setattr(reports.demo, "DEMO_EXPERIMENTS", (tiny,))
    runs, out = tmp_path / "runs", tmp_path / "reports"
    argv = ["demo", "--runs-dir", str(runs), "-o", str(out), "--format", "pdf", "--workers", "1", "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    pdf = out / "xor" / "report.pdf"
    assert pdf.is_file() and (runs / "xor" / "manifest.json").is_file()
    assert str(pdf) in printed and "hud demo: trained in" in printed


def test_console_script_entry_point_runs_as_a_module():
    proc = subprocess.run([sys.executable, "-m", "reports.cli", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("hud ")


def test_info_summarises_a_recording(tmp_path, capsys):
    from data import load_task
    from models import NetworkConfig, train
    from models.recorder import Recorder

    path = tmp_path / "run.h5"
    train(
        NetworkConfig(2, 1, (3,)),
        load_task("xor"),
        loss="sse",
        optimizer="momentum",
        epochs=7,
        callbacks=[Recorder(path, verbose=False)],
    )
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    for fragment in (
        "task       xor",
        "network    2-3-1 mlp, tanh",
        "loss       sse",
        "optimizer  momentum",
        "epochs     8 recorded, 0..7",
        "hidden1 4x3",
        "output 4x1",
        "status     complete",
        "size",
    ):
        assert fragment in out, fragment


def test_info_on_bad_files_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "x.h5").write_text("hello")
    assert main(["info", str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hud: error: path") and "is not an HDF5 file" in err and err.count("\n") == 1
    assert main(["info", str(tmp_path / "nope.h5")]) == 2
    assert "does not exist" in capsys.readouterr().err
