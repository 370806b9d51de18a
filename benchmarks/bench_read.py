"""Lazy reading: one layer at a few epochs of a large recording reads only those chunks.

Writes a synthetic recording (``--epochs`` x ``--samples`` x ``--units`` float32 per layer, two
layers) with hud's RecordingWriter, then reads one layer at three epochs through
``open_recording`` and counts the bytes the process read from the file (``rchar`` in
/proc/self/io, which counts page-cache reads too), against reading the whole layer.

    python benchmarks/bench_read.py --epochs 2000 --samples 1000 --units 64
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from data import schema as S  # noqa: E402
from data.recording import RecordingWriter, format_bytes, open_recording  # noqa: E402
from data.tasks import Probe  # noqa: E402


def _rchar() -> int:
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("rchar")).split()[1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--units", type=int, default=64)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    folder = tempfile.mkdtemp(prefix="hud-read-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)  # 512 MB by default
    path = os.path.join(folder, "big.h5")
    probe = Probe(
        rng.random((args.samples, 2), dtype=np.float32),
        np.zeros((args.samples, 1), np.float32),
        np.zeros(args.samples, np.int64),
    )
    writer = RecordingWriter(path, config={}, probe=probe)
    block = 50
    t0 = time.perf_counter()
    for start in range(0, args.epochs, block):
        k = min(block, args.epochs - start)
        acts = rng.standard_normal((k, args.samples, args.units), dtype=np.float32)
        writer.append({S.EPOCH: np.arange(start, start + k), S.layer("hidden1"): acts, S.layer("hidden2"): acts})
        writer.commit()
    writer.close()
    size = os.path.getsize(path)
    print(
        f"wrote {format_bytes(size)} ({args.epochs} epochs x {args.samples} samples x {args.units} units x 2 "
        f"layers) in {time.perf_counter() - t0:.1f} s"
    )
    with open_recording(path) as rec:
        before = _rchar()
        t0 = time.perf_counter()
        few = rec.activations("hidden1", [0, args.epochs // 2, args.epochs - 1])
        t_few, read_few = time.perf_counter() - t0, _rchar() - before
        before = _rchar()
        t0 = time.perf_counter()
        full = rec.activations("hidden1")
        t_full, read_full = time.perf_counter() - t0, _rchar() - before
    layer_bytes = full.nbytes
    print(
        f"one layer, 3 epochs : read {format_bytes(read_few):>10} in {1000 * t_few:8.1f} ms "
        f"(data asked for: {format_bytes(few.nbytes)})"
    )
    print(
        f"one layer, all      : read {format_bytes(read_full):>10} in {1000 * t_full:8.1f} ms "
        f"(layer size: {format_bytes(layer_bytes)})"
    )
    print(f"ratio of bytes read: {read_few / read_full:.5f} (file: {format_bytes(size)})")
    os.remove(path)


if __name__ == "__main__":
    main()
