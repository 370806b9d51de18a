"""RecordingWriter's row writes: blocks handed over as column ranges of a larger array, with either chunk cache."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from data import ParameterError
from data import schema as S
from data.recording import RecordingWriter


@pytest.mark.parametrize("chunk_cache", [0, 64 << 20])
def test_column_ranges_of_a_block_are_written_as_their_values(tmp_path, chunk_cache):
    rng = np.random.default_rng(0)
    path = tmp_path / "run.h5"
    writer = RecordingWriter(path, config={"x": 1}, chunk_cache=chunk_cache)
    layer, weight = S.layer("hidden1"), S.parameter("hidden1.linear.weight")
    written: dict[str, list[np.ndarray]] = {layer: [], weight: []}
    first = 0
    for k in (1, 37, 200, 3):  # blocks smaller and larger than a chunk, a one-row block (no stride to use)
        block = rng.standard_normal((k, 5 * 7 + 11 + 6)).astype(np.float32)  # (epoch, row): layer | junk | weight
        values = {layer: block[:, :35].reshape(k, 5, 7), weight: block[:, 46:].reshape(k, 3, 2)}
        writer.append({S.EPOCH: np.arange(first, first + k), **values})
        writer.commit()
        for key, value in values.items():
            written[key].append(value.copy())
        first += k
    writer.close("complete", epoch=first - 1)
    with h5py.File(path, "r") as f:  # plain h5py: what any reader sees
        np.testing.assert_array_equal(f[S.EPOCH][:], np.arange(first))
        for key, parts in written.items():
            np.testing.assert_array_equal(f[key][:], np.concatenate(parts))
            assert [d.label for d in f[key].dims] == list(S.dims(key, f[key].ndim))
            assert f[key].dims[0][0] == f[S.EPOCH]  # the epoch numbers are the first axis's scale


def test_norms_have_the_parameter_names_as_their_scale(tmp_path):
    path = tmp_path / "run.h5"
    names = ["hidden1.linear.weight", "hidden1.linear.bias"]
    writer = RecordingWriter(path, parameter_names=names, chunk_cache=0)
    writer.append({S.EPOCH: np.arange(3), S.norm("gradient"): np.ones((3, 2)), S.metric("loss"): np.zeros(3)})
    writer.commit()
    writer.close("complete", epoch=2)
    with h5py.File(path, "r") as f:
        norms = f[S.norm("gradient")]
        assert norms.dims[0][0] == f[S.EPOCH]
        assert [n.decode() if isinstance(n, bytes) else n for n in norms.dims[1][0][:]] == names
        assert len(f[S.metric("loss")].dims[0]) == 1  # the epoch scale only


def test_a_negative_chunk_cache_is_refused(tmp_path):
    with pytest.raises(ParameterError, match="chunk_cache"):
        RecordingWriter(tmp_path / "run.h5", chunk_cache=-1)


def _datasets(path) -> dict:
    """Every dataset of a recording (shape, dtype, chunks, values) and its dimension labels, by path."""
    out: dict = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            out[name] = (obj.shape, obj.dtype, obj.chunks, obj[()], [d.label for d in obj.dims])

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return out


def _assert_same_datasets(a, b):
    da, db = _datasets(a), _datasets(b)
    assert sorted(da) == sorted(db)
    for name in da:
        (sa, ta, ca, va, la), (sb, tb, cb, vb, lb) = da[name], db[name]
        assert (sa, ta, ca, la) == (sb, tb, cb, lb), name
        np.testing.assert_array_equal(va, vb, err_msg=name)


def test_small_datasets_written_later_with_write_rows_equal_one_append(tmp_path):
    """A writer may append the large datasets block by block and the small ones for many blocks at once."""
    rng = np.random.default_rng(1)
    layer, loss = S.layer("hidden1"), S.metric("loss")
    acts, losses = rng.standard_normal((50, 4, 3)).astype(np.float32), rng.standard_normal(50)
    one = RecordingWriter(tmp_path / "one.h5", config={"x": 1})
    one.append({S.EPOCH: np.arange(50), layer: acts, loss: losses})
    one.close("complete")
    split = RecordingWriter(tmp_path / "split.h5", config={"x": 1}, chunk_cache=0)
    for start in (0, 20):  # two blocks of layers, then every loss at once
        stop = 50 if start else 20
        split.append({S.EPOCH: np.arange(start, stop), layer: acts[start:stop]})
    split.write_rows({loss: losses}, 0)
    split.close("complete")
    _assert_same_datasets(tmp_path / "one.h5", tmp_path / "split.h5")


def test_write_rows_refuses_rows_that_are_committed_or_not_appended(tmp_path):
    from data import RecordingError

    writer = RecordingWriter(tmp_path / "run.h5", config={})
    writer.append({S.EPOCH: np.arange(10), S.metric("loss"): np.zeros(10)})
    writer.commit()
    writer.append({S.EPOCH: np.arange(10, 15), S.metric("loss"): np.zeros(5)})
    with pytest.raises(RecordingError, match="committed 10, appended 15"):
        writer.write_rows({S.metric("accuracy"): np.ones(5)}, 9)  # row 9 is committed
    with pytest.raises(RecordingError, match="committed 10, appended 15"):
        writer.write_rows({S.metric("accuracy"): np.ones(6)}, 10)  # row 15 is not appended
    writer.write_rows({S.metric("accuracy"): np.ones(5)}, 10)
    writer.close("complete")
    with h5py.File(tmp_path / "run.h5", "r") as f:  # rows 0-9 never had an accuracy: fill values
        np.testing.assert_array_equal(f[S.metric("accuracy")][:], [np.nan] * 10 + [1.0] * 5)


def test_a_recording_started_from_a_template_is_the_recording_built_alone(tmp_path):
    from data import load_task
    from data.recording import RecordingTemplate

    task = load_task("spirals")
    common = {
        "probe": task.probe,
        "grid": (task.grid, task.grid_shape, task.extent),
        "attrs": {"layers": ["hidden1", "output"]},
        "parameter_names": ["hidden1.weight", "hidden1.bias"],
    }
    rng = np.random.default_rng(2)
    block = {
        S.EPOCH: np.arange(40),
        S.layer("hidden1"): rng.standard_normal((40, 194, 3)).astype(np.float32),
        S.parameter("hidden1.weight"): rng.standard_normal((40, 3, 2)).astype(np.float32),
        S.norm("gradient"): rng.random((40, 2)),
        S.metric("loss"): rng.random(40),
    }
    shapes = {path: (values.shape[1:], values.dtype) for path, values in block.items() if path != S.EPOCH}
    template = RecordingTemplate(**common, datasets=shapes)
    for name, kwargs in (("alone", {}), ("a", {"template": template}), ("b", {"template": template})):
        writer = RecordingWriter(tmp_path / f"{name}.h5", config={"seed": name}, **common, **kwargs)
        writer.append(block)
        writer.close("complete")
    for name in ("a", "b"):
        _assert_same_datasets(tmp_path / "alone.h5", tmp_path / f"{name}.h5")
        with h5py.File(tmp_path / f"{name}.h5", "r") as f:
            assert f.attrs["config"] == f'{{"seed": "{name}"}}' and f.attrs["status"] == "complete"
            assert f[S.layer("hidden1")].dims[0][0] == f[S.EPOCH]


def test_final_metrics_are_the_last_committed_row(tmp_path):
    from data.recording import open_recording

    writer = RecordingWriter(tmp_path / "run.h5", config={})
    losses = np.linspace(1.0, 0.1, 30)
    writer.append({S.EPOCH: np.arange(30), S.metric("loss"): losses, S.metric("accuracy"): losses / 2})
    writer.commit()
    writer.append({S.EPOCH: np.arange(30, 35), S.metric("loss"): np.zeros(5), S.metric("accuracy"): np.zeros(5)})
    with open_recording(tmp_path / "run.h5") as rec:  # the 5 uncommitted rows are not seen
        assert rec.final_metrics == rec.metrics.iloc[-1].to_dict() == {"loss": 0.1, "accuracy": 0.05}
    writer.close("complete")
    empty = RecordingWriter(tmp_path / "empty.h5", config={})
    empty.close("interrupted")
    with open_recording(tmp_path / "empty.h5") as rec:
        assert rec.final_metrics == {} and len(rec.metrics) == 0


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_whole_chunks_written_directly_read_back_as_written(tmp_path, compression):
    """Blocks that start and end inside chunks and span whole ones: the whole chunks go to the file
    as they are (uncompressed), the partial ones through HDF5; plain h5py reads every row back."""
    from data.recording import _direct_chunk_rows, _write_rows

    rng = np.random.default_rng(1)
    values = rng.standard_normal((100, 4, 3)).astype(np.float32)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        ds = f.create_dataset(
            "x", shape=(0, 4, 3), maxshape=(None, 4, 3), chunks=(8, 4, 3), dtype=np.float32, compression=compression
        )
        direct = _direct_chunk_rows(ds)
        assert direct == (8 if compression is None else 0)
        start = 0
        for k in (3, 5, 16, 1, 29, 46):  # ends on, before and after chunk boundaries; 40 rows after row 54
            ds.id.set_extent((start + k, 4, 3))
            _write_rows(ds, start, values[start : start + k], direct)
            start += k
    with h5py.File(tmp_path / "x.h5", "r") as f:
        np.testing.assert_array_equal(f["x"][:], values)
    with h5py.File(tmp_path / "y.h5", "w") as f:  # chunks that do not hold whole rows: never written directly
        assert (
            _direct_chunk_rows(
                f.create_dataset("y", shape=(0, 4, 3), maxshape=(None, 4, 3), chunks=(8, 2, 3), dtype=np.float32)
            )
            == 0
        )
        assert _direct_chunk_rows(f.create_dataset("z", data=values)) == 0  # not chunked


def _chunk_index_nodes(data: bytes) -> list[int]:
    """File offsets of the v1 B-tree nodes of chunked datasets ('TREE', node type 1)."""
    offsets, i = [], data.find(b"TREE")
    while i >= 0:
        if data[i + 4] == 1:
            offsets.append(i)
        i = data.find(b"TREE", i + 4)
    return offsets


@pytest.mark.parametrize("from_template", [False, True])
def test_chunk_index_nodes_start_on_a_page(tmp_path, from_template):
    """A SIGKILL can cut the kernel's copy of a write between two pages; a chunk-index node within one page
    is never half new, half old (a node across a page boundary once lost the chunk of committed rows)."""
    from data.recording import RecordingTemplate

    path = tmp_path / "run.h5"
    layer = S.layer("hidden1")
    template = RecordingTemplate(datasets={layer: ((64, 64), np.float32)}) if from_template else None
    writer = RecordingWriter(path, config={"x": 1}, template=template)
    for first in range(0, 1600, 100):  # rows of 16 KiB: 16 a chunk, 100 chunks, more than a node holds (64)
        writer.append({S.EPOCH: np.arange(first, first + 100), layer: np.ones((100, 64, 64), np.float32)})
        writer.commit()
    writer.close("complete", epoch=1599)
    nodes = _chunk_index_nodes(path.read_bytes())
    assert len(nodes) >= 4  # the epoch numbers' node, and the layer's root and at least two leaves
    assert [i % 4096 for i in nodes] == [0] * len(nodes)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f[layer][::97, 0, 0], np.ones(17, np.float32))
        marker = f[S.COMMIT].id.get_offset()  # rewritten at every commit: within one page too
        assert marker // 4096 == (marker + f[S.COMMIT].id.get_storage_size() - 1) // 4096


def _blocks_through_background_writer(path, blocks, *, commit_after, writer_cls=None):
    """Hand ``blocks`` (dicts of arrays) to a BackgroundWriter as the Recorder does: each block's arrays view one
    buffer that is overwritten (reused) as soon as the writer calls the block's ``done``."""
    from data.recording import BackgroundWriter

    writer = (writer_cls or RecordingWriter)(path, config={"x": 1})
    background = BackgroundWriter(writer)
    for i, block in enumerate(blocks):
        buffers = {key: value.copy() for key, value in block.items()}  # what the block's views view
        views = {key: buf[:] for key, buf in buffers.items()}

        def done(buffers=buffers):
            for buf in buffers.values():
                buf[...] = -7  # the training side writes its next rows into the buffer

        background.put(lambda views=views, done=done, i=i: (views, None, done, i in commit_after), 1)
    return background


def test_background_writer_writes_small_datasets_of_many_blocks_before_their_commit(tmp_path):
    """The small datasets (parameters, norms, metrics) are kept until the commit that claims them, as copies:
    the file equals one append of every row, although each block's buffer was reused at once."""
    from data.recording import SMALL_ROW_BYTES, split_small

    rng = np.random.default_rng(2)
    layer, out, weight, loss = S.layer("hidden1"), S.layer("output"), S.parameter("w"), S.metric("loss")
    n = 90
    rows = {
        S.EPOCH: np.arange(n),
        layer: rng.standard_normal((n, 40, 30)).astype(np.float32),  # 4800 bytes a row: large
        out: rng.standard_normal((n, 40, 1)).astype(np.float32),  # 160 bytes a row: small
        weight: rng.standard_normal((n, 3, 2)).astype(np.float32),
        loss: rng.standard_normal(n),
    }
    large, small = split_small(rows)
    assert sorted(large) == [S.EPOCH, layer] and sorted(small) == sorted([out, weight, loss])
    assert rows[layer][0].nbytes >= SMALL_ROW_BYTES > rows[out][0].nbytes
    one = RecordingWriter(tmp_path / "one.h5", config={"x": 1})
    one.append(rows)
    one.close("complete")
    cuts = [0, 7, 30, 31, 64, n]  # blocks of 7, 23, 1, 33 and 26 rows; commits after the 2nd and the last
    blocks = [{key: value[a:b] for key, value in rows.items()} for a, b in zip(cuts[:-1], cuts[1:])]
    background = _blocks_through_background_writer(tmp_path / "split.h5", blocks, commit_after={1, 4})
    background.close("complete")
    _assert_same_datasets(tmp_path / "one.h5", tmp_path / "split.h5")


def test_rows_whose_small_datasets_could_not_be_written_are_not_claimed(tmp_path):
    """A writer that fails writing the small datasets of uncommitted blocks closes the file with only the rows
    committed before: rows without their parameters and metrics are never claimed."""
    from data import RecordingError, open_recording

    class Failing(RecordingWriter):
        calls = 0

        def write_rows(self, block, start):
            if S.EPOCH not in block:  # the small datasets (append() writes the others through here too)
                Failing.calls += 1
                if Failing.calls > 1:  # the first commit's small rows go through, the later ones fail
                    raise OSError(28, "No space left on device")
            super().write_rows(block, start)

    n = 40
    rows = {
        S.EPOCH: np.arange(n),
        S.layer("hidden1"): np.ones((n, 40, 30), np.float32),
        S.metric("loss"): np.arange(n, dtype=float),
    }
    blocks = [{key: value[a : a + 10] for key, value in rows.items()} for a in range(0, n, 10)]
    background = _blocks_through_background_writer(tmp_path / "run.h5", blocks, commit_after={0, 3}, writer_cls=Failing)
    with pytest.raises(RecordingError, match="No space left"):
        background.close("complete")
    with open_recording(tmp_path / "run.h5") as rec:
        assert rec.status == "failed" and rec.epochs.tolist() == list(range(10))
        np.testing.assert_array_equal(rec.metrics["loss"].to_numpy(), np.arange(10.0))
    with h5py.File(tmp_path / "run.h5", "r") as f:  # plain h5py: the marker claims the first block only
        assert int(f[S.COMMIT][0]) == 10


def _grow_in_place(monkeypatch) -> None:
    """Make a writer change its file's structure in place after a commit, as hud did before it made the change
    in a copy of the file (``RecordingWriter._restructure``)."""

    def in_place(self, change):
        change(self.f)
        self._may_cut = True  # (HDF5's next flush may cut the file: see RecordingWriter._flush)
        for d in self._open_datasets.values():
            d.reopen(d.ds)

    monkeypatch.setattr(RecordingWriter, "_restructure", in_place)


def test_a_flush_cut_before_its_superblock_leaves_the_committed_rows_readable(tmp_path, monkeypatch):
    """A SIGKILL during a flush can leave on disk the new nodes of a chunk index that has just split, and the
    superblock of before the flush (HDF5 writes it last).  Its end-of-allocation address must cover those
    nodes: the superblock on disk claims the space reserved ahead, so the committed rows read back exactly.

    Without that, reading any row of the dataset failed ("addr overflow"; seen once in 1000 kills).
    Datasets no longer grow in place after a commit (a copy of the file grows: see the next test), but
    other changes still allocate HDF5 metadata in place (a checkpoint whose shape changed); the growth
    is made in place here to split a chunk index after a commit."""
    import os
    import shutil

    _grow_in_place(monkeypatch)

    rng = np.random.default_rng(3)
    layer = S.layer("hidden1")
    rows = rng.standard_normal((80, 300, 256)).astype(np.float32)  # 300 KB a row: one row a chunk
    path, cut = tmp_path / "run.h5", tmp_path / "cut.h5"
    writer = RecordingWriter(path, config={}, chunk_cache=0)
    writer.append({S.EPOCH: np.arange(60), layer: rows[:60]})
    writer.commit()
    fd = os.open(path, os.O_RDWR)
    try:
        writer.append({S.EPOCH: np.arange(60, 80), layer: rows[60:]})  # 80 chunks: the index's 64-entry node splits
        superblock = os.pread(fd, 48, 0)  # on disk when the next flush starts
        writer.flush()
        shutil.copy(path, cut)  # the file as the flush left it...
    finally:
        os.close(fd)
    with open(cut, "r+b") as f:  # ...but with the superblock of before it: the flush was cut before its end
        f.write(superblock)
    writer.close("complete")
    with h5py.File(cut, "r") as f:  # plain h5py
        assert int(f[S.COMMIT][0]) == 60
        np.testing.assert_array_equal(f[layer][:60], rows[:60])
    with h5py.File(path, "r") as f:  # the file closed normally: its true end again, cut there
        assert f.id.get_filesize() == os.path.getsize(path)
        np.testing.assert_array_equal(f[layer][:], rows)


def _torn_images(before: bytes, after: bytes, page: int = 4096) -> list[bytearray]:
    """The files a flush cut short by a SIGKILL can leave: HDF5 writes a flush's metadata in address order
    and its superblock (the first 96 bytes) last, so a cut leaves every page before some address as
    the flush wrote it and the rest as before, with either superblock.  One image per changed page."""
    n = max(len(before), len(after))
    a, b = before.ljust(n, b"\0"), after.ljust(n, b"\0")
    cuts = sorted({k // page * page for k in range(96, n, page) if a[k : k + page] != b[k : k + page]} | {n})
    images = []
    for cut in cuts:
        for superblock in (a, b):
            image = bytearray(b[:cut] + a[cut:])
            image[:96] = superblock[:96]
            images.append(image)
    return images


@pytest.mark.parametrize("case", ["planned", "unplanned", "grown in place"])
def test_a_flush_cut_anywhere_leaves_the_committed_rows_readable(tmp_path, monkeypatch, case):
    """Whatever prefix of a flush after a commit reaches the disk before a SIGKILL, the committed rows read
    back exactly with plain h5py: no such flush changes a chunk index.  When the rows of the run are
    known, every chunk of each dataset is allocated at its start; without a plan, a dataset that must
    grow after a commit grows in a copy of the file renamed over it, and the flush that follows only
    writes rows.

    Growing in place after a commit (as hud did before) splits the index's 64-entry node (the dataset
    grows past 64 chunks), and some cuts leave a file whose committed rows do not read back: the model
    finds the failure bench_crash.py saw (4 of 600 longer kills, "wrong B-tree signature")."""
    import os

    if case == "grown in place":
        _grow_in_place(monkeypatch)
    rng = np.random.default_rng(5)
    layer = S.layer("hidden1")
    rows = rng.standard_normal((90, 300, 256)).astype(np.float32)  # 300 KB a row: one row a chunk
    path = tmp_path / "run.h5"
    writer = RecordingWriter(path, config={}, chunk_cache=0, planned_rows=90 if case == "planned" else None)
    writer.append({S.EPOCH: np.arange(60), layer: rows[:60]})
    writer.commit()
    inode = os.stat(path).st_ino
    writer.append({S.EPOCH: np.arange(60, 90), layer: rows[60:]})  # 90 chunks
    assert (os.stat(path).st_ino != inode) == (case == "unplanned")  # grown in a new version of the file
    before = path.read_bytes()
    writer.flush()
    after = path.read_bytes()
    writer.close("complete")
    broken = []
    for k, image in enumerate(_torn_images(before, after)):
        cut = tmp_path / f"cut{k}.h5"
        cut.write_bytes(image)
        try:
            with h5py.File(cut, "r") as f:  # plain h5py
                assert int(f[S.COMMIT][0]) == 60
                np.testing.assert_array_equal(f[layer][:60], rows[:60])
        except (OSError, AssertionError) as exc:
            broken.append(str(exc).splitlines()[0][:80])
        os.remove(cut)
    if case == "grown in place":
        assert any("B-tree" in b or "addr overflow" in b for b in broken), broken
    else:
        assert broken == []
    with h5py.File(path, "r") as f:
        assert f[layer].shape[0] == 90  # closed: cut to its rows
        np.testing.assert_array_equal(f[layer][:], rows)


def test_a_planned_recording_has_every_chunk_from_its_start_and_is_cut_to_its_rows_when_closed(tmp_path):
    """``planned_rows``: each dataset is made that long at its first rows, all its chunks allocated (the
    index never changes again), the file sparse; a run that stops early is cut to its committed rows."""
    import os

    rng = np.random.default_rng(1)
    layer, loss = S.layer("hidden1"), S.metric("loss")
    acts = rng.standard_normal((40, 50, 64)).astype(np.float32)  # 12.8 KB a row: 20 rows a chunk
    path = tmp_path / "run.h5"
    writer = RecordingWriter(path, config={}, planned_rows=40_000)
    writer.append({S.EPOCH: np.arange(10), layer: acts[:10], loss: np.arange(10.0)})
    ds = writer.f[layer]
    assert ds.shape[0] == writer.f[S.EPOCH].shape[0] == writer.f[loss].shape[0] == 40_000
    assert ds.id.get_num_chunks() == 2000  # 40,000 rows of 20: every chunk, before any is written
    writer.commit()
    writer.append({S.EPOCH: np.arange(10, 40), layer: acts[10:]})  # no loss: its rows get fill values
    writer.commit()
    assert ds.id.get_num_chunks() == 2000 and ds.shape[0] == 40_000
    assert os.path.getsize(path) > 40_000 * acts[0].nbytes  # 512 MB long, but the chunks not written take no space:
    assert os.stat(path).st_blocks * 512 < 40 * acts[0].nbytes + (33 << 20)  # (16 MB ahead, twice)
    writer.close("stopped")
    with h5py.File(path, "r") as f:  # plain h5py: the rows, nothing after them
        assert f[layer].shape == (40, 50, 64) and f[S.EPOCH].shape == (40,)
        np.testing.assert_array_equal(f[layer][:], acts)
        np.testing.assert_array_equal(f[loss][:], [*range(10)] + [np.nan] * 30)
        np.testing.assert_array_equal(f[S.EPOCH][:], np.arange(40))
    # the chunks past the rows are freed; the file stays as long (other datasets' chunks lie after them)
    # and sparse: what it takes on disk is what was written, and hud's summary says both
    assert os.stat(path).st_blocks * 512 < 40 * acts[0].nbytes + (17 << 20)
    from data import open_recording

    with open_recording(path) as rec:
        assert rec.size_on_disk < (17 << 20) and rec.file_length > 40_000 * acts[0].nbytes
        assert "on disk (a sparse file of" in rec.summary()


def test_a_planned_recording_resumed_after_a_crash_overwrites_the_rows_past_its_marker(tmp_path):
    """A killed planned recording keeps its datasets' length (no index change on resume); the resumed
    run writes over the uncommitted rows and the closed file holds exactly the committed history."""
    import shutil

    rng = np.random.default_rng(2)
    layer = S.layer("hidden1")
    acts = rng.standard_normal((30, 20, 16)).astype(np.float32)
    path, killed = tmp_path / "run.h5", tmp_path / "killed.h5"
    writer = RecordingWriter(path, config={}, planned_rows=30)
    writer.append({S.EPOCH: np.arange(12), layer: acts[:12]})
    writer.commit()
    writer.append({S.EPOCH: np.arange(12, 20), layer: np.full((8, 20, 16), 7.0, np.float32)})  # never committed
    writer.flush()
    shutil.copy(path, killed)  # the file a SIGKILL now would leave
    writer.close("complete")
    resumed = RecordingWriter(killed, mode="resume", planned_rows=30)
    assert (resumed.rows, resumed.last_epoch) == (12, 11)
    assert resumed.f[layer].shape[0] == 30  # kept: its chunks stay where they are
    _append_the_rest_and_check(resumed, killed, layer, acts, 12)


def _append_the_rest_and_check(writer: RecordingWriter, path, layer: str, acts: np.ndarray, start: int) -> None:
    """Append rows ``start:`` of ``acts``, close, and check with plain h5py that the file holds exactly ``acts``."""
    writer.append({S.EPOCH: np.arange(start, len(acts)), layer: acts[start:]})
    writer.close("complete")
    with h5py.File(path, "r") as f:
        assert int(f[S.COMMIT][0]) == len(acts)
        np.testing.assert_array_equal(f[layer][:], acts)
        np.testing.assert_array_equal(f[S.EPOCH][:], np.arange(len(acts)))


def test_a_new_recording_takes_its_path_at_its_first_commit_and_stale_temporary_files_go(tmp_path):
    """Until its first commit a new file lives under a temporary name (a kill while its chunks are
    allocated leaves nothing at the path); the temporary file of a process that no longer runs is
    removed when the next recording of that name is created."""
    import os
    import subprocess

    path = tmp_path / "run.h5"
    gone = subprocess.Popen(["true"])  # a process id that no longer runs
    gone.wait()
    stale = tmp_path / f".run.h5.creating-{gone.pid}"
    stale.write_bytes(b"left by a killed run")
    writer = RecordingWriter(path, config={}, planned_rows=10)
    assert not stale.exists()
    writer.append({S.EPOCH: np.arange(3), S.layer("hidden1"): np.ones((3, 4, 2), np.float32)})
    writer.flush()
    assert not path.exists() and (tmp_path / f".run.h5.creating-{os.getpid()}").exists()
    writer.commit()
    assert path.exists() and not (tmp_path / f".run.h5.creating-{os.getpid()}").exists()
    writer.close("complete")
    with h5py.File(path, "r") as f:
        assert int(f[S.COMMIT][0]) == 3 and f[S.layer("hidden1")].shape == (3, 4, 2)
    empty = RecordingWriter(tmp_path / "empty.h5", config={})
    empty.close("failed", message="nothing recorded")  # closing puts a recording with no rows in place too
    with h5py.File(tmp_path / "empty.h5", "r") as f:
        assert int(f[S.COMMIT][0]) == 0


def test_a_full_disk_while_planned_chunks_are_written_is_one_error_and_the_committed_rows_stay(tmp_path, monkeypatch):
    """A planned recording reserves its chunks' space on disk as they are written (a plan over 64 MB is
    not reserved at once): when that fails, writing stops with one RecordingError before HDF5 writes
    anything, and the file holds every committed row (read with plain h5py)."""
    import errno
    import os

    from data import RecordingError
    from data import recording as R

    rng = np.random.default_rng(4)
    layer = S.layer("hidden1")
    rows = rng.standard_normal((120, 300, 256)).astype(np.float32)  # 300 KB a row and a chunk: 600 MB planned
    path = tmp_path / "run.h5"
    writer = RecordingWriter(path, config={}, chunk_cache=0, planned_rows=2000)
    writer.append({S.EPOCH: np.arange(30), layer: rows[:30]})
    writer.commit()
    assert os.stat(path).st_blocks * 512 < 100 << 20  # reserved as written: 16 MB runs, not the 600 MB

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(R.os, "posix_fallocate", full)
    with pytest.raises(RecordingError, match="no room for .* No space left on device"):
        writer.append({S.EPOCH: np.arange(30, 120), layer: rows[30:]})  # past the chunks reserved so far
    writer.discard_uncommitted()
    writer.close("failed", message="the disk is full")  # the status fits in the space reserved ahead
    with h5py.File(path, "r") as f:
        n = int(f[S.COMMIT][0])
        assert n == 30 and f[layer].shape[0] == 30
        np.testing.assert_array_equal(f[layer][:n], rows[:30])
    from data import open_recording

    with open_recording(path) as rec:
        assert rec.status == "failed" and rec.last_epoch == 29


def test_a_run_resumed_past_its_plan_grows_its_datasets_in_a_copy(tmp_path, monkeypatch):
    """Resuming with a longer plan makes the datasets that long in a sparse copy renamed over the file:
    the file at the path never changes a chunk index under its committed rows.  If the copy's growth
    fails (as a SIGKILL would stop it), the file is as it was and no copy is left."""
    import os

    rng = np.random.default_rng(6)
    layer = S.layer("hidden1")
    acts = rng.standard_normal((40, 30, 16)).astype(np.float32)
    path = tmp_path / "run.h5"
    writer = RecordingWriter(path, config={}, planned_rows=10)
    writer.append({S.EPOCH: np.arange(10), layer: acts[:10]})
    writer.close("complete")
    before = path.read_bytes()

    def broken_resize(self, size, axis=None):
        raise OSError("killed while growing")

    with monkeypatch.context() as m:
        m.setattr(h5py.Dataset, "resize", broken_resize)
        with pytest.raises(OSError, match="killed while growing"):
            RecordingWriter(path, mode="resume", planned_rows=40)
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["run.h5"]

    inode = os.stat(path).st_ino
    resumed = RecordingWriter(path, mode="resume", planned_rows=40)
    assert os.stat(path).st_ino != inode  # the copy, renamed over the file
    assert resumed.f[layer].shape[0] == resumed.f[S.EPOCH].shape[0] == 40 and resumed.committed == 10
    assert resumed.f[layer].id.get_num_chunks() == -(-40 // resumed.f[layer].chunks[0])  # every chunk, at once
    _append_the_rest_and_check(resumed, path, layer, acts, 10)


def test_the_first_checkpointed_commit_makes_both_slots_and_later_commits_only_overwrite(tmp_path):
    """No commit after the first changes the file's structure: the checkpoint's other slot is made with the
    first (a slot made at the second commit was once left half made by a SIGKILL: the file could not be
    listed).  The marker claims the slot written last."""
    path = tmp_path / "run.h5"
    writer = RecordingWriter(path, config={}, planned_rows=10)

    def objects() -> list[str]:
        names: list[str] = []
        writer.f.visit(names.append)
        return names

    state = np.arange(6.0)
    writer.append({S.EPOCH: np.arange(3), S.metric("loss"): np.ones(3)})
    writer.commit({"epoch": np.int64(2), "optimizer.exp_avg": state})
    made = objects()
    assert S.checkpoint(0, "optimizer.exp_avg") in made and S.checkpoint(1, "optimizer.exp_avg") in made
    writer.append({S.EPOCH: np.arange(3, 6), S.metric("loss"): np.ones(3)})
    writer.commit({"epoch": np.int64(5), "optimizer.exp_avg": state + 1})
    assert objects() == made
    assert writer.checkpoint()["epoch"] == 5
    np.testing.assert_array_equal(writer.checkpoint()["optimizer.exp_avg"], state + 1)
    writer.close("complete")
