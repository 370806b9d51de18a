"""``hud run`` and ``hud ls``: end to end, Ctrl-C and resume, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from data.recording import open_recording
from reports.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TINY = """\
name = "tiny"
description = "two losses x two seeds of a 2-3-1 net on xor"

[task]
name = "xor"

[network]
hidden = [3]

[training]
epochs = 10
optimizer = "momentum"
lr = 0.3

[grid]
loss = ["sse", "bce"]
seeds = 2
"""


def _write(tmp_path, text: str = TINY, name: str = "tiny.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _one_line_error(capsys, fragment: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("hud: error: ") and err.count("\n") == 1 and fragment in err, err
    return err


def test_run_then_ls_a_bundled_experiment(tmp_path, capsys):
    out = tmp_path / "enc"
    argv = ["run", os.path.join(ROOT, "experiments", "encoder.toml"), "-o", str(out), "--epochs", "12", "--seeds", "2"]
    assert main([*argv, "--workers", "1", "-q"]) == 0
    text = capsys.readouterr().out
    assert "encoder: 8 runs in" in text and "8 complete" in text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["experiment"]["training"]["epochs"] == 12 and manifest["axes"]["seed"] == [0, 1]
    for run in manifest["runs"]:
        with open_recording(out / run["file"]) as rec:
            assert rec.status == "complete" and rec.last_epoch == 12
            assert rec.config["network"]["init"] == 0.001 and rec.config["task"]["n"] == 9
    assert main(["ls", str(out)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["run", "loss", "optimizer", "seed", "status", "final_loss", "final_accuracy",
                                "epochs", "diverged"]  # fmt: skip
    assert len(table) == 9 and "momentum(lr=0.4, momentum=0.9)" in table[1] and "complete" in table[1]
    assert main(["ls", str(out), "--csv", str(tmp_path / "runs.csv")]) == 0
    df = pd.read_csv(tmp_path / "runs.csv")
    assert len(df) == 8 and (df["status"] == "complete").all() and (df["epochs"] == 12).all()
    # the same command again: every run is finished, nothing is redone
    stamps = {r["file"]: os.stat(out / r["file"]).st_mtime_ns for r in manifest["runs"]}
    assert main([*argv, "--workers", "1", "-q"]) == 0
    assert {f: os.stat(out / f).st_mtime_ns for f in stamps} == stamps


def test_set_overrides_and_default_output_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path)
    argv = ["run", path, "--set", "training.lr=0.1", "--set", "network.hidden=[2]", "--no-batched", "-q"]
    assert main([*argv, "--workers", "1"]) == 0
    manifest = json.loads((tmp_path / "runs" / "tiny" / "manifest.json").read_text())
    assert manifest["experiment"]["training"]["lr"] == 0.1 and manifest["experiment"]["network"]["hidden"] == [2]
    assert "runs/tiny" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "argv", "fragment"),
    [
        (TINY.replace("lr = 0.3", "lrr = 0.3"), [], "unknown key 'lrr' in [training] (did you mean 'lr'?)"),
        (TINY.replace("epochs = 10", 'epochs = "10"'), [], "training.epochs must be an integer >= 0; got '10'"),
        (TINY.replace('loss = ["sse", "bce"]\nseeds = 2', ""), [], "the grid is empty"),
        (TINY.replace('loss = ["sse", "bce"]', "loss = []"), [], "grid.loss is empty"),
        (TINY, ["--set", "training.lr"], "--set must be KEY=VALUE"),
        (TINY, ["--set", "training.momentum=0.9"], "unknown key 'momentum' in [training]"),
        (TINY, ["--epochs", "-1"], "--epochs must be an integer >= 0; got -1"),
        (TINY, ["--workers", "0"], "workers must be an integer in [1, 4096]; got 0"),
        (TINY + "[bad\n", [], "not valid TOML"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, text, argv, fragment):
    path = _write(tmp_path, text)
    assert main(["run", path, "-o", str(tmp_path / "out"), "-q", "--workers", "1", *argv]) == 2
    _one_line_error(capsys, fragment)


def test_another_experiment_in_the_folder_and_existing_recordings_need_force(tmp_path, capsys):
    out = str(tmp_path / "out")
    path = _write(tmp_path)
    assert main(["run", path, "-o", out, "-q", "--workers", "1"]) == 0
    capsys.readouterr()
    assert main(["run", path, "-o", out, "-q", "--workers", "1", "--seeds", "3"]) == 2
    _one_line_error(capsys, "holds another experiment ('tiny'; it differs in: grid)")
    os.remove(os.path.join(out, "manifest.json"))
    stamp = os.stat(os.path.join(out, "loss-sse_seed-0.h5")).st_mtime_ns
    assert main(["run", path, "-o", out, "-q", "--workers", "1"]) == 2
    _one_line_error(capsys, "holds recordings (loss-sse_seed-0.h5 ...) but no manifest.json: pass --force")
    assert os.stat(os.path.join(out, "loss-sse_seed-0.h5")).st_mtime_ns == stamp  # never overwritten silently
    assert main(["run", path, "-o", out, "-q", "--workers", "1", "--seeds", "3", "--force"]) == 0
    assert "6 complete" in capsys.readouterr().out
    assert main(["ls", str(tmp_path / "nothing")]) == 2
    _one_line_error(capsys, "does not exist")


def _first_checkpoint(folder, proc, timeout: float = 120.0) -> str:
    """Wait until a recording in ``folder`` still training holds a committed checkpoint (progress on disk);
    say which, and when."""
    start = time.monotonic()
    deadline = start + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        for name in os.listdir(folder) if os.path.isdir(folder) else []:
            if not name.endswith(".h5"):
                continue
            try:
                with open_recording(os.path.join(folder, name)) as rec:
                    epoch = int(rec.checkpoint().get("epoch", -1))
                    if rec.status != "complete" and epoch > 0:
                        return f"{name} {rec.status} at epoch {epoch}, {time.monotonic() - start:.1f} s after the start"
            except Exception:  # noqa: BLE001 - a file being created or written: look again
                pass
        time.sleep(0.05)
    raise AssertionError(f"no progress within {timeout} s (exit status {proc.poll()})")


@pytest.mark.parametrize("workers", ["1", "2"], ids=["in-process", "worker-processes"])
def test_ctrl_c_leaves_readable_recordings_and_the_same_command_resumes(tmp_path, workers):
    # runs long enough (several seconds) to commit a checkpoint before they end: the interrupt lands
    # while one is training (with 1500 epochs a run could end before its first commit, and Ctrl-C then
    # hit the next run as it created its file)
    epochs = 6000
    path = _write(tmp_path, TINY.replace("epochs = 10", f"epochs = {epochs}").replace("seeds = 2", "seeds = 1"))
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "reports.cli", "run", path, "-o", str(out), "--no-batched", "--workers", workers]
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    # SIGINT at its default in the command, as in a terminal: a shell's background job (pytest started with
    # '&') inherits it ignored, and so would the command (which then rightly ignores Ctrl-C)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        found = _first_checkpoint(str(out), proc)
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        _, err = proc.communicate(timeout=120)
        ended = time.monotonic() - sent
    finally:
        proc.kill()
    assert proc.returncode == 130, f"SIGINT sent when {found}; the command ended {ended:.2f} s later: {err[-1500:]}"
    assert err.rstrip().endswith("hud: interrupted")
    manifest = json.loads((out / "manifest.json").read_text())
    before = {}
    for run in manifest["runs"]:
        if os.path.exists(out / run["file"]):
            with open_recording(out / run["file"]) as rec:  # every recording opens
                assert rec.status in ("interrupted", "complete") and rec.status == run["status"]
                before[run["file"]] = (rec.status, int(rec.checkpoint().get("epoch", -1)), rec.metrics["time"])
    assert any(status == "interrupted" for status, _, _ in before.values())
    # the same command again (in this process' workers or not, it is the same experiment): interrupted runs
    # resume from their checkpoints and complete
    argv[argv.index("--workers") + 1] = "1"
    done = subprocess.run(argv + ["-q"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 complete" in done.stdout
    for name, (status, ckpt, times) in before.items():
        with open_recording(out / name) as rec:
            assert rec.status == "complete" and list(rec.epochs) == list(range(epochs + 1))
            if status == "interrupted" and ckpt > 0:  # resumed, not started again: the rows up to the checkpoint kept
                assert rec.metrics["time"].loc[:ckpt].tolist() == times.loc[:ckpt].tolist()
