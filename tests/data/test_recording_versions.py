"""A recording changes its structure only in a new version of the file renamed over it: datasets grown after a
commit (no plan), datasets cut when a run closes early, compression at closing, a compressed recording resumed."""

from __future__ import annotations

import errno
import os

import h5py
import numpy as np
import pytest

from data import RecordingError, open_recording
from data import recording as R
from data import schema as S
from data.recording import RecordingWriter
from data.tasks import Probe

LAYER, LOSS, GRAD = S.layer("hidden1"), S.metric("loss"), S.norm("gradient")


def _rows(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` rows of a layer (64 KB a row: 4 rows a chunk), a metric and a norm (its axis: the parameters)."""
    rng = np.random.default_rng(seed)
    return {
        S.EPOCH: np.arange(n),
        LAYER: np.round(rng.standard_normal((n, 64, 256)), 1).astype(np.float32),  # compressible
        LOSS: rng.random(n),
        GRAD: rng.random((n, 2)),
    }


def _block(rows: dict[str, np.ndarray], a: int, b: int) -> dict[str, np.ndarray]:
    return {key: value[a:b] for key, value in rows.items()}


def _contents(path) -> dict[str, object]:
    """Every dataset (committed rows of the epoch-indexed ones), attribute and dimension label and scale of a
    recording, by path, read with plain h5py."""
    out: dict[str, object] = {}
    with h5py.File(path, "r") as f:
        n = int(f[S.COMMIT][0])
        out["/"] = {k: v for k, v in f.attrs.items() if k != S.ROOT_ATTRS.CREATED}

        def visit(name: str, obj) -> None:
            attrs = {k: v for k, v in obj.attrs.items() if k not in ("DIMENSION_LIST", "REFERENCE_LIST")}
            if isinstance(obj, h5py.Dataset):
                value = obj[:n] if S.is_epoch_indexed(name) else obj[()]
                scales = [[s.name for s in dim.values()] for dim in obj.dims]
                out[name] = (value.tolist(), str(obj.dtype), [d.label for d in obj.dims], scales, repr(attrs))
            else:
                out[name] = repr(attrs)

        f.visititems(visit)
    return out


def _writer(path, **kwargs) -> RecordingWriter:
    probe = Probe(inputs=np.eye(3, dtype=np.float32), targets=np.ones((3, 1), np.float32), labels=np.arange(3))
    return RecordingWriter(
        path,
        config={"task": "t"},
        probe=probe,
        attrs={"schedule": "every"},
        parameter_names=["w", "b"],
        **kwargs,
    )


def _committed(path, rows: dict[str, np.ndarray], n: int, **kwargs) -> RecordingWriter:
    """A writer at ``path`` whose first ``n`` rows are appended and committed."""
    writer = _writer(path, **kwargs)
    writer.append(_block(rows, 0, n))
    writer.commit()
    return writer


def test_an_unplanned_recording_grows_in_new_versions_by_doubling_and_is_cut_when_closed(tmp_path, monkeypatch):
    """Without a plan, datasets are at least a chunk long at their first rows; after the first commit each
    growth (doubling) and each new dataset happen in a copy renamed over the file,
    so no flush at the path ever changes a chunk index.  Closing cuts the datasets to the rows, in a copy
    too.  The result equals the rows written, read with plain h5py."""
    rows = _rows(160)
    path = tmp_path / "run.h5"
    copies: list[int] = []
    copy = R._copy_sparse
    monkeypatch.setattr(R, "_copy_sparse", lambda src, dst: copies.append(k) or copy(src, dst))
    writer = _writer(path)
    lengths = []
    for k, a in enumerate(range(0, 160, 8)):
        block = _block(rows, a, a + 8)
        if k < 10:
            del block[GRAD]  # a dataset that first comes after commits (rows before it: NaN)
        writer.append(block)
        writer.commit()
        with h5py.File(path, "r") as f:
            lengths.append(f[LAYER].shape[0])
            assert f[S.EPOCH].shape[0] == 4096 and f[LOSS].shape[0] == 1024  # a chunk: never grown
            assert k < 10 or f[GRAD].shape[0] == 1024
    assert lengths == [8, 16, 32, 32] + [64] * 4 + [128] * 8 + [256] * 4  # a chunk holds 4 rows
    assert copies == [1, 2, 4, 8, 10, 16]  # to 16, 32, 64, 128 and 256 rows, and the new dataset
    writer.close("complete")
    assert copies[6:] == [19]  # closing: cut to the rows
    assert sorted(os.listdir(tmp_path)) == ["run.h5"]
    with h5py.File(path, "r") as f:
        assert {f[p].shape[0] for p in (S.EPOCH, LAYER, LOSS, GRAD)} == {160}
        np.testing.assert_array_equal(f[LAYER][:], rows[LAYER])
        np.testing.assert_array_equal(f[LOSS][:], rows[LOSS])
        assert np.isnan(f[GRAD][:80]).all()
        np.testing.assert_array_equal(f[GRAD][80:], rows[GRAD][80:])
        assert f[GRAD].dims[1][0].name == "/" + S.PARAMETER_NAMES and f[LAYER].dims[0][0].name == "/" + S.EPOCH


def test_a_growth_that_cannot_be_copied_stops_the_recording_with_the_committed_rows_intact(tmp_path, monkeypatch):
    """A full disk while the copy is made: one RecordingError naming the cause, no copy left behind, and the
    file at the path holds exactly the committed rows (closed as 'failed')."""
    rows = _rows(40)
    path = tmp_path / "run.h5"
    writer = _committed(path, rows, 8)
    before = _contents(path)

    def full(src, dst):
        with open(dst, "wb") as fh:
            fh.write(b"\0" * 4096)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(R, "_copy_sparse", full)
    with pytest.raises(RecordingError, match="no room .* No space left on device"):
        writer.append(_block(rows, 8, 16))
    assert _contents(path) == before and sorted(os.listdir(tmp_path)) == ["run.h5"]
    writer.discard_uncommitted()
    with pytest.warns(RuntimeWarning, match="could not be cut to its rows: .*No space left"):  # the disk is still full
        writer.close("failed", message="disk full")
    with open_recording(path) as rec:
        assert rec.status == "failed" and rec.epochs.tolist() == list(range(8))
        np.testing.assert_array_equal(rec.activations("hidden1"), rows[LAYER][:8])


@pytest.mark.parametrize("compression", ["gzip", "lzf"])
def test_a_compressed_recording_is_written_uncompressed_and_compressed_when_closed(tmp_path, compression):
    """While it is written a compressed recording is laid out like any other (allocated ahead: crash-safe);
    closing writes it anew compressed: its contents (values, attributes, labels, scales, checkpoint)
    equal those of the same rows recorded uncompressed, and it is smaller."""
    rows = _rows(30)
    paths = {c: tmp_path / f"{c}.h5" for c in (None, compression)}
    for c, path in paths.items():
        writer = _writer(path, compression=c, planned_rows=30)
        writer.append(_block(rows, 0, 20))
        writer.commit({"optimizer.momentum": np.arange(5.0), "epoch": np.int64(19)})
        assert writer.f[LAYER].compression is None and R._allocated_ahead(writer.f[LAYER])
        writer.append(_block(rows, 20, 30))
        writer.close("complete")
    plain, packed = (_contents(p) for p in paths.values())
    assert packed == plain
    with h5py.File(paths[compression], "r") as f:
        assert f[LAYER].compression == compression and f[LOSS].compression == compression
    assert os.path.getsize(paths[compression]) < 0.8 * os.path.getsize(paths[None])
    with open_recording(paths[compression]) as rec:
        np.testing.assert_array_equal(rec.activations("hidden1", [3, 29]), rows[LAYER][[3, 29]])
        assert rec.checkpoint()["optimizer.momentum"].tolist() == [0, 1, 2, 3, 4]
    assert sorted(os.listdir(tmp_path)) == sorted(f"{c}.h5" for c in paths)


def test_a_compressed_recording_resumed_is_decompressed_in_a_copy_then_compressed_again(tmp_path):
    """Resuming a compressed recording first writes it anew uncompressed, allocated ahead for the resumed
    run's plan (its chunk indexes then never change under committed rows), renamed over the file;
    closing compresses it again.  The result equals one run of all the rows."""
    rows = _rows(40)
    path, whole = tmp_path / "run.h5", tmp_path / "whole.h5"
    writer = _writer(path, compression="gzip", planned_rows=20)
    writer.append(_block(rows, 0, 20))
    writer.close("complete")
    resumed = RecordingWriter(path, mode="resume", compression="gzip", planned_rows=40)
    assert resumed.f[LAYER].compression is None and R._allocated_ahead(resumed.f[LAYER])
    assert resumed.f[LAYER].shape[0] == 40 and resumed.committed == 20
    resumed.append(_block(rows, 20, 40))
    resumed.close("complete")
    writer = _writer(whole, compression="gzip", planned_rows=40)
    writer.append(_block(rows, 0, 40))
    writer.close("complete")
    got, want = _contents(path), _contents(whole)
    assert got.pop("/")[S.ROOT_ATTRS.STATUS_MESSAGE] == "" and want.pop("/")[S.ROOT_ATTRS.STATUS_MESSAGE] == ""
    assert got == want
    with h5py.File(path, "r") as f:
        assert f[LAYER].compression == "gzip" and f[LAYER].shape[0] == 40


def test_repack_keeps_every_object_and_only_the_committed_rows(tmp_path):
    """``repack`` of a killed run's file (rows past the marker, datasets allocated ahead): the same
    contents, the epoch-indexed datasets holding the committed rows only (or ``rows`` long,
    uncompressed)."""
    rows = _rows(24)
    path = tmp_path / "run.h5"
    writer = _committed(path, rows, 16, planned_rows=100)
    writer.append(_block(rows, 16, 24))
    writer.flush()  # rows past the marker, as a SIGKILL would leave them
    for compression, length in (("gzip", 16), (None, 50)):
        out = tmp_path / f"{compression}.h5"
        R.repack(path, out, compression=compression, rows=50)
        assert _contents(out) == _contents(path)
        with h5py.File(out, "r") as f:
            assert f[LAYER].shape[0] == f[S.EPOCH].shape[0] == length
            assert R._allocated_ahead(f[LAYER]) == (compression is None)
    writer.close("complete")


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_no_room_to_finish_a_recording_leaves_it_whole_with_a_warning(tmp_path, monkeypatch, compression):
    """Closing cannot copy the file (no room): the recording stays complete and readable, its datasets longer
    than its rows (or uncompressed), and a RuntimeWarning says why."""
    rows = _rows(12)
    path = tmp_path / "run.h5"
    writer = _committed(path, rows, 12, compression=compression)
    monkeypatch.setattr(R, "_fits", lambda *args: False)
    with pytest.warns(RuntimeWarning, match="closed, whole, but could not be (cut to its rows|compressed)"):
        writer.close("complete")
    assert sorted(os.listdir(tmp_path)) == ["run.h5"]
    with h5py.File(path, "r") as f:
        assert int(f[S.COMMIT][0]) == 12 and f[LAYER].shape[0] == 12 and f[LOSS].shape[0] == 1024
        assert f[LAYER].compression is None
    with open_recording(path) as rec:
        assert rec.status == "complete" and rec.epochs.tolist() == list(range(12))
        np.testing.assert_array_equal(rec.metrics["loss"].to_numpy(), rows[LOSS])


def test_no_room_to_grow_in_a_copy_is_one_error_and_the_committed_rows_stay(tmp_path, monkeypatch):
    """After the first commit a dataset that must grow is grown in a copy of the file; when the disk has no
    room for the copy, the recording stops with one RecordingError that says so (nothing grows in place,
    where a crash could damage the committed rows), and the file holds the committed rows."""
    rows = _rows(40)
    path = tmp_path / "run.h5"
    writer = _committed(path, rows, 8)
    before = _contents(path)
    monkeypatch.setattr(R, "_fits", lambda *args: False)
    with pytest.raises(RecordingError, match="no room to grow recording .* grow in a copy of the file"):
        writer.append(_block(rows, 8, 16))
    assert _contents(path) == before
    writer.discard_uncommitted()
    with pytest.warns(RuntimeWarning, match="could not be cut to its rows"):
        writer.close("failed", message="disk full")
    with open_recording(path) as rec:
        assert rec.status == "failed" and rec.epochs.tolist() == list(range(8))
