"""Task builders: shapes, the course's definitions, determinism, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from data import HudError, ParameterError, load_task, task_names
from data.tasks import star16_targets


def test_every_task_builds_consistently():
    for name in task_names():
        if name == "custom":
            continue
        task = load_task(name)
        assert task.inputs.dtype == np.float32 and task.targets.dtype == np.float32
        assert task.inputs.shape == (task.n_samples, task.n_inputs)
        assert task.targets.shape == (task.n_samples, task.n_outputs)
        assert task.labels.shape == (task.n_samples,)
        assert len(task.probe) == task.n_samples
        if task.n_inputs == 2:
            ny, nx = task.grid_shape
            assert task.grid.shape == (ny * nx, 2)
            x0, x1, y0, y1 = task.extent
            assert x0 <= task.inputs[:, 0].min() and task.inputs[:, 0].max() <= x1
            assert y0 <= task.inputs[:, 1].min() and task.inputs[:, 1].max() <= y1
        else:
            assert task.grid is None
        # options rebuild the same task
        again = load_task(name, **task.options)
        np.testing.assert_array_equal(again.inputs, task.inputs)
        np.testing.assert_array_equal(again.targets, task.targets)


def test_xor():
    task = load_task("xor")
    np.testing.assert_array_equal(task.targets[:, 0], np.logical_xor(task.inputs[:, 0], task.inputs[:, 1]))


def test_spirals_match_the_course_formula():
    task = load_task("spirals")
    assert task.n_samples == 194
    i = 5
    phi, r = i * np.pi / 16, 6.5 * (104 - i) / 104
    np.testing.assert_allclose(task.inputs[i], [r * np.cos(phi), r * np.sin(phi)], rtol=1e-6)
    np.testing.assert_allclose(task.inputs[97 + i], [-r * np.cos(phi), -r * np.sin(phi)], rtol=1e-6)
    assert task.labels[i] == 1 and task.labels[97 + i] == 0
    assert task.labels.sum() == 97


def test_spiral_noise_is_deterministic_in_the_seed():
    a, b, c = (load_task("spirals", noise=0.2, seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.inputs, b.inputs)
    assert not np.array_equal(a.inputs, c.inputs)
    assert not np.array_equal(a.inputs, load_task("spirals").inputs)


def test_encoders():
    enc = load_task("encoder")
    assert (enc.n_inputs, enc.n_outputs) == (9, 9)
    np.testing.assert_array_equal(enc.targets, np.eye(9))
    assert load_task("encoder", n=5).n_inputs == 5
    assert load_task("encoder838").hints["hidden"] == [3]


def test_star16_rows():
    t = star16_targets()
    assert t.shape == (16, 8)
    for k in range(8):
        assert set(np.flatnonzero(t[k])) == {k, (k + 1) % 8}
        assert set(np.flatnonzero(t[8 + k])) == {(k - 1) % 8, k, (k + 1) % 8}
    task = load_task("star16")
    assert task.kind == "multilabel" and task.n_inputs == 16


def test_custom_targets_from_csv_and_npy(tmp_path):
    t = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0]], float)
    np.savetxt(tmp_path / "t.csv", t, delimiter=",")
    np.save(tmp_path / "t.npy", t)
    for f in ("t.csv", "t.npy"):
        task = load_task("custom", targets=str(tmp_path / f))
        np.testing.assert_array_equal(task.targets, t)
        np.testing.assert_array_equal(task.inputs, np.eye(3))
        assert task.kind == "multilabel"


def test_custom_rejects_pickles_and_garbage(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ParameterError, match="could not be read"):
        load_task("custom", targets=str(tmp_path / "obj.npy"))
    (tmp_path / "bad.csv").write_text("a,b\nc,d\n")
    with pytest.raises(ParameterError, match="could not be read"):
        load_task("custom", targets=str(tmp_path / "bad.csv"))
    with pytest.raises(ParameterError, match="no such file"):
        load_task("custom", targets=str(tmp_path / "missing.csv"))


def test_sklearn_tasks_match_sklearn():
    from sklearn.datasets import load_digits, make_moons

    x, y = make_moons(n_samples=50, noise=0.2, random_state=3)
    task = load_task("moons", n_samples=50, noise=0.2, seed=3)
    np.testing.assert_allclose(task.inputs, x, rtol=1e-6)
    np.testing.assert_array_equal(task.labels, y)
    d = load_task("digits")
    assert (d.n_samples, d.n_inputs, d.n_outputs) == (1797, 64, 10)
    np.testing.assert_array_equal(d.labels, load_digits().target)
    assert d.inputs.max() == 1.0
    assert load_task("blobs", centers=4).n_outputs == 4


def test_degenerate_has_80_positive_of_100():
    task = load_task("degenerate")
    assert task.n_samples == 100 and np.all(task.inputs == 1)
    assert task.targets.sum() == 80


def test_linear_least_squares_matches_numpy_polyfit():
    task = load_task("linear", n_samples=200, noise=0.3, seed=4)
    w = task.least_squares()
    slope, intercept = np.polyfit(task.inputs[:, 0], task.targets[:, 0], 1)
    np.testing.assert_allclose(w[:, 0], [slope, intercept], rtol=1e-5)


def test_task_arrays_are_read_only():
    task = load_task("xor")
    with pytest.raises(ValueError):
        task.inputs[0, 0] = 5


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: load_task("spiral"), "task must be one of .*got 'spiral' \\(did you mean 'spirals'\\?\\)"),
        (lambda: load_task("spirals", nosie=0.1), "unknown option 'nosie'.*did you mean 'noise'"),
        (lambda: load_task("spirals", noise=-1), "noise must be a number >= 0; got -1"),
        (lambda: load_task("encoder", n=1.5), "n must be an integer"),
        (lambda: load_task("xor", seed=-3), "seed must be an integer >= 0; got -3"),
        (lambda: load_task("custom"), "task 'custom'"),
    ],
)
def test_bad_input_names_parameter_allowed_and_received(call, fragment):
    with pytest.raises(HudError, match=fragment):
        call()
