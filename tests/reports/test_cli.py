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


def test_demo_prints_a_summary_table(capsys):
    assert main(["demo", "--epochs", "20", "--seeds", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    for word in ("encoder", "spirals", "sse", "bce", "momentum", "adam", "final_loss", "accuracy"):
        assert word in out


def test_console_script_entry_point_runs_as_a_module():
    proc = subprocess.run([sys.executable, "-m", "reports.cli", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("hud ")
