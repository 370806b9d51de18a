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
