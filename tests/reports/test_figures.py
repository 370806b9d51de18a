"""Figure functions on small constructed data: each draws, labels its axes, titles, and has a legend or colour bar."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from analysis import boundaries, dynamics, geometry  # noqa: E402
from data.errors import ParameterError  # noqa: E402
from models import NetworkConfig, build_network  # noqa: E402
from reports import figures  # noqa: E402


def _drawn(ax, *, legend=True, colorbar=False):
    """The checks every figure must pass: content, axis labels, a title, and a legend or colour bar."""
    ax.figure.canvas.draw()
    content = ax.lines + ax.collections + ax.images + ax.patches + ax.texts
    assert content, "nothing drawn"
    assert ax.get_title().strip(), "no title"
    assert ax.get_xlabel().strip() and (ax.get_ylabel().strip() or not ax.get_yticks().size), "unlabelled axis"
    if legend:
        assert ax.get_legend() is not None and ax.get_legend().get_texts(), "no legend"
    if colorbar:
        assert len(ax.figure.axes) > 1, "no colour bar"


@pytest.fixture
def curves():
    rng = np.random.default_rng(0)
    frames = {}
    for cfg in ("sse · adam", "bce · adam"):
        for seed in range(3):
            loss = np.exp(-np.arange(50) / (10 + 5 * seed)) + rng.uniform(0, 0.01, 50)
            acc = np.clip(np.arange(50) / 40 + 0.1 * seed, 0, 1)
            frames[f"{cfg}-{seed}"] = pd.DataFrame(
                {"loss": loss, "accuracy": acc}, index=pd.Index(range(50), name="epoch")
            )
    df = dynamics.learning_curves(frames)
    df["config"] = df["run"].str.rsplit("-", n=1).str[0]
    return df


def test_learning_curves_draw_mean_and_band_per_config_with_a_log_scale(curves):
    ax = figures.learning_curves(curves, metric="loss", palette={"sse · adam": "#0072B2", "bce · adam": "#D55E00"})
    _drawn(ax)
    assert ax.get_yscale() == "log"
    means = [line for line in ax.lines if line.get_label().startswith(("sse", "bce"))]
    assert [line.get_color() for line in means] == ["#0072B2", "#D55E00"]
    assert len(ax.collections) == 2  # one band per config
    ax2 = figures.learning_curves(curves, metric="accuracy", ax=plt.figure().add_subplot())
    assert ax2.get_yscale() == "linear" and ax2.get_ylim()[1] <= 1.05


def test_learning_curves_mark_where_a_diverged_run_ends(curves):
    curves = curves.copy()
    bad = (curves["run"] == "sse · adam-0") & (curves["epoch"] > 20)
    curves.loc[bad, "value"] = np.nan
    ax = figures.learning_curves(curves, runs=True, statuses={"sse · adam-0": "diverged"})
    _drawn(ax)
    assert "diverged" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_learning_curves_reject_a_frame_without_the_columns():
    with pytest.raises(ParameterError, match="columns run, epoch, metric, value"):
        figures.learning_curves(pd.DataFrame({"x": [1]}))


@pytest.mark.parametrize(
    ("draw", "frame", "match"),
    [
        (figures.learning_curves, [[1, 2]], "got list"),
        (
            lambda d: figures.weight_norm_growth(d, layer="hidden1"),
            pd.DataFrame({"run": ["a"], "epoch": [0], "value": [1.0], "config": ["g"]}),
            r"it has no layer \(its columns: run, epoch, value, config\)",
        ),
        (
            lambda d: figures.geometry_metrics(d, metric="nc1"),
            pd.DataFrame({"run": ["a"], "epoch": [0], "metric": ["nc1"], "value": [1.0]}),
            "it has no config",
        ),
    ],
)
def test_figures_name_the_missing_columns_and_what_they_got(draw, frame, match):
    with pytest.raises(ParameterError, match=match):
        draw(frame)


def test_success_rates_show_wilson_intervals():
    rates = {"sse": dynamics.success_rate([True, False, False, True]), "bce": dynamics.success_rate([True] * 4)}
    ax = figures.success_rates(rates, criterion="100 % accuracy")
    _drawn(ax)
    low, high = dynamics.wilson_interval(2, 4)
    bars = ax.containers  # errorbar containers hold the interval
    segs = [c for c in bars if hasattr(c, "lines")][0].lines[2][0].get_segments()[0]
    np.testing.assert_allclose(sorted(segs[:, 0]), [low, high])
    assert "2/4" in [t.get_text() for t in ax.texts]


def test_epochs_to_threshold_keeps_runs_that_never_reach_it():
    df = pd.DataFrame({"config": ["a", "a", "b"], "epochs": [10.0, np.nan, 30.0]})
    ax = figures.epochs_to_threshold(df, criterion="loss 0.01")
    _drawn(ax)
    assert "not reached" in [t.get_text() for t in ax.get_legend().get_texts()]


def _acts(n_epochs=6, n_samples=12, n_units=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_samples, 2))
    w = rng.normal(size=(n_epochs, 2, n_units)).cumsum(axis=0)
    return np.tanh(np.einsum("si,eiu->esu", x, w))


def test_trajectory_display_shares_one_basis_and_limits_between_runs():
    acts = {"a": _acts(seed=0), "b": _acts(seed=1)}
    labels = np.repeat([0, 1], 6)
    disp = figures.TrajectoryDisplay.from_activations(
        acts, epochs={"a": np.arange(6) * 10, "b": np.arange(6) * 10}, labels=labels, layer="hidden1"
    )
    fig, (ax1, ax2) = plt.subplots(1, 2)
    disp.plot("a", ax=ax1)
    disp.plot("b", ax=ax2)
    _drawn(ax1)
    assert ax1.get_xlim() == ax2.get_xlim() and "% of variance" in ax1.get_xlabel()
    frame = disp.to_frame()
    assert set(frame["run"]) == {"a", "b"} and {"pc1", "pc2", "epoch", "label"} <= set(frame.columns)
    with pytest.raises(ParameterError, match="at least 2 units"):
        figures.TrajectoryDisplay.from_activations({"a": _acts(n_units=1)})


def _net(hidden=2, n_in=2, n_out=1):
    return build_network(NetworkConfig(n_in, n_out, (hidden,)), seed=0)


def test_hidden_space_of_two_units_has_exact_boundary_lines_labelled_by_output_unit():
    net = build_network(NetworkConfig(4, 4, (2,)), seed=1)
    points = boundaries.encoder_points(net)
    disp = figures.HiddenSpaceDisplay.from_network(
        net, points, layer="hidden1", labels=np.arange(4), extent=(-1.1, 1.1, -1.1, 1.1), epoch=7
    )
    assert disp.exact and len(disp.segments) == 4
    ax = disp.plot()
    _drawn(ax)
    assert ax.get_title() == "hidden space of hidden1 at epoch 7"
    texts = {t.get_text() for t in ax.texts}
    drawn_units = {str(k + 1) for k, seg in enumerate(disp.segments) if seg is not None}
    assert drawn_units <= texts  # each boundary numbered by its output unit (points are numbered too)
    # the exact lines agree with the analysis: W[k] @ h + b[k] = 0 on each segment
    planes = boundaries.output_hyperplanes(net)
    for k, seg in enumerate(disp.segments):
        if seg is not None:
            np.testing.assert_allclose(planes.evaluate(seg)[:, k], 0, atol=1e-9)


def test_hidden_space_of_many_units_draws_contours_in_a_pca_plane():
    net = _net(hidden=5)
    grid = np.random.default_rng(0).normal(size=(30, 2))
    points = boundaries.layer_outputs(net, grid, layers="hidden1")["hidden1"]
    disp = figures.HiddenSpaceDisplay.from_network(net, points, layer="hidden1", labels=(grid[:, 0] > 0).astype(int))
    assert not disp.exact and disp.axis_labels == ("hidden1 PC1", "hidden1 PC2")
    _drawn(disp.plot())


def test_hidden_space_animation_renders_frames_of_one_size():
    net = build_network(NetworkConfig(4, 4, (2,)), seed=1)
    displays = []
    for epoch, scale in enumerate((0.5, 1.0, 2.0)):
        with __import__("torch").no_grad():
            net.hidden1.linear.weight.mul_(scale)
        displays.append(
            figures.HiddenSpaceDisplay.from_network(
                net, boundaries.encoder_points(net), layer="hidden1", extent=(-1.1, 1.1, -1.1, 1.1), epoch=epoch
            )
        )
    anim = figures.HiddenSpaceAnimation(displays, fig=plt.figure(figsize=(3, 3)))
    frames = list(anim.frames(dpi=40))
    assert len(frames) == 3 and frames[0].shape == (120, 120, 4)
    assert not np.array_equal(frames[0], frames[2])


def test_level_lines_trace_a_circle_and_the_level_between_two_classes():
    from reports.figures._style import level_lines

    fig, ax = plt.subplots()
    xs = np.linspace(-2, 2, 81)
    xx, yy = np.meshgrid(xs, np.linspace(-2, 2, 61))  # n_y != n_x: the orientation matters
    values = xx**2 + yy**2 - 1.0
    values[0, 0] = np.nan  # a missing corner is skipped, not drawn
    lines, segs = level_lines(ax, values, (-2, 2, -2, 2), [0.0], color="r", linewidth=2)
    radius = np.hypot(*np.concatenate(segs).T)
    np.testing.assert_allclose(radius, 1.0, atol=2e-3)  # linear interpolation on a 0.05 grid
    assert lines in ax.collections and lines.get_linewidth()[0] == 2
    # the 0.5 level of a 0/1 field (x > 0.3) is the vertical line half way between the grid columns either side
    _, segs = level_lines(ax, (xx > 0.3).astype(float), (-2, 2, -2, 2), [0.5])
    col = np.searchsorted(xs, 0.3)
    np.testing.assert_allclose(np.concatenate(segs)[:, 0], (xs[col - 1] + xs[col]) / 2)
    assert level_lines(ax, values, (-2, 2, -2, 2), [9.0]) == (None, [])  # a level never crossed
    plt.close(fig)


def test_decision_boundary_display_draws_the_plane_the_boundary_and_the_data():
    net = _net(hidden=4)
    xs = np.linspace(-2, 2, 21)
    xx, yy = np.meshgrid(xs, xs)
    grid = np.stack([xx.ravel(), yy.ravel()], axis=1)
    disp = figures.DecisionBoundaryDisplay.from_network(net, grid, grid_shape=(21, 21), extent=(-2, 2, -2, 2))
    np.testing.assert_allclose(disp.values.reshape(-1), boundaries.network_outputs(net, grid, output="sigmoid")[:, 0])
    inputs = np.array([[0.5, 0.5], [-1.0, 1.0]])
    ax = disp.plot(inputs, [0, 1])
    _drawn(ax, colorbar=True)
    assert ax.get_xlabel() == "input x1"
    with pytest.raises(ParameterError, match="grid_shape"):
        figures.DecisionBoundaryDisplay.from_network(net, grid, grid_shape=(20, 20), extent=(-2, 2, -2, 2))


def test_unit_maps_one_panel_per_unit_and_the_mosaic():
    maps = np.random.default_rng(0).uniform(-1, 1, size=(5, 8, 8))
    fig = figures.unit_maps(maps, extent=(0, 1, 0, 1), activation="tanh", max_units=4)
    visible = [ax for ax in fig.axes if ax.get_visible() and ax.images]
    assert len(visible) == 4 and "first 4 of 5" in fig._suptitle.get_text()
    ax = figures.unit_mosaic(maps, activation="tanh")
    _drawn(ax, legend=False, colorbar=True)
    assert [t.get_text() for t in ax.texts] == ["1", "2", "3", "4", "5"]
    with pytest.raises(ParameterError, match="n_units, n_y, n_x"):
        figures.unit_mosaic(maps[0])


def test_geometry_metrics_over_epochs():
    acts = _acts(n_epochs=8, n_units=4)
    rows = []
    for run, cfg in (("r1", "a"), ("r2", "a"), ("r3", "b")):
        df = geometry.layer_metrics(
            acts, layer="hidden1", metrics=["effective_rank", "saturation"], activation="tanh", epochs=np.arange(8) * 5
        )
        rows.append(df.assign(run=run, config=cfg))
    data = pd.concat(rows)
    ax = figures.geometry_metrics(data, metric="effective_rank", layer="hidden1")
    _drawn(ax)
    assert ax.get_ylabel() == "effective rank"
    ax = figures.geometry_metrics(data, metric="nc1", ax=plt.figure().add_subplot())
    assert "no finite values" in ax.texts[0].get_text()


def test_cka_heatmaps_epoch_by_epoch_and_run_by_run():
    acts = _acts(n_epochs=6)
    mat = geometry.cka_matrix(acts)
    ax = figures.cka_heatmap(mat, labels=list(range(0, 60, 10)), title="CKA, epoch x epoch")
    _drawn(ax, legend=False, colorbar=True)
    np.testing.assert_allclose(ax.images[0].get_array().data, mat)
    runs = geometry.cka_across_runs([acts[-1:], _acts(seed=1)[-1:], _acts(seed=2)[-1:]])[0]
    ax = figures.cka_heatmap(runs, axis_name="run", groups=["a", "a", "b"], ax=plt.figure().add_subplot())
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]


def test_weight_norm_growth_per_layer():
    params = {"hidden1.linear.weight": np.cumsum(np.ones((10, 3, 2)), axis=0), "output.weight": np.ones((10, 1, 3))}
    data = dynamics.weight_norms(params).assign(run="r", config="sse · sgd")
    ax = figures.weight_norm_growth(data, layer="hidden1")
    _drawn(ax)
    assert ax.get_yscale() == "log"


def test_cell_palette_is_stable_and_distinct():
    pal = figures.cell_palette(["a", "b", "c"])
    assert pal == figures.cell_palette(["a", "b", "c"]) and len(set(pal.values())) == 3
    assert pal["a"] == figures.CELL_COLORS[0]
