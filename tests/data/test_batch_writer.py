"""The batch writer's chunk pool: its layout, and what one process writes another sees."""

from __future__ import annotations

import math
import os

import numpy as np

from data.batch_writer import ChunkPool, _shared_fd, chunk_layout

SPEC = {"rows": 33, "members": 5, "params": 21, "states": 2, "sources": [("hidden1", (3, 7)), ("z", (1, 7))]}


def test_a_chunks_buffers_are_disjoint_aligned_and_shaped():
    layout, size = chunk_layout(SPEC)
    assert layout["params"][1] == layout["grads"][1] == (33, 5, 21)
    assert layout["state"][1] == (33, 2, 5, 21)
    assert layout["hidden1"][1] == (33, 5, 3, 7) and layout["z"][1] == (33, 5, 1, 7)
    spans = sorted((offset, offset + math.prod(shape)) for offset, shape in layout.values())
    assert all(a_end <= b for (_, a_end), (b, _) in zip(spans, spans[1:]))  # no overlap
    assert all(offset % 16 == 0 for offset, _ in layout.values())  # 64-byte aligned floats
    assert spans[-1][1] <= size


def test_a_shared_pool_mapped_twice_shows_each_write_in_both():
    layout, size = chunk_layout(SPEC)
    fd = _shared_fd(4 * 3 * size)
    ours = ChunkPool(SPEC, 3, fd=os.dup(fd))
    theirs = ChunkPool(SPEC, 3, fd=fd)  # as the writer process maps it
    ours.views(2)["hidden1"][4, 1] = np.arange(21, dtype=np.float32).reshape(3, 7)
    ours.views(0)["params"][:] = 1.5
    np.testing.assert_array_equal(theirs.views(2)["hidden1"][4, 1], np.arange(21).reshape(3, 7))
    assert (theirs.views(0)["params"] == 1.5).all() and not theirs.views(1)["params"].any()
    ours.close()
    theirs.close()
