"""Experiment files: TOML loading, defaults, grid expansion, overrides and bad input."""

from __future__ import annotations

import glob
import json
import os
import re

import pytest

from data import ParameterError, load_task
from models.experiments import (
    GRID_AXES,
    Experiment,
    RunSpec,
    apply_overrides,
    format_value,
    load_experiment,
    parse_assignment,
    parse_experiment,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUNDLED = sorted(glob.glob(os.path.join(ROOT, "experiments", "*.toml")))


def _exp(**tables):
    data = {"name": "t", "task": {"name": "xor"}, "grid": {"seeds": 2}}
    data.update(tables)
    return data


def _write(tmp_path, text: str, name: str = "exp.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# ----------------------------------------------------------------------------- bundled experiments


def test_the_bundled_experiments_are_there():
    names = {os.path.basename(p)[:-5] for p in BUNDLED}
    assert {"encoder", "star16", "xor", "spirals_polar", "spirals_raw", "degenerate", "digits"} <= names


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: os.path.basename(p))
def test_each_bundled_experiment_loads_and_expands(path):
    exp = load_experiment(path)
    runs = exp.runs()
    assert exp.name == os.path.basename(path)[:-5] and exp.description
    assert len(runs) == len({r.id for r in runs}) >= 8
    assert all(re.fullmatch(r"[A-Za-z0-9._+-]+", r.id) for r in runs)
    assert len(exp.grid["seed"]) >= 2  # several seeds
    assert {"loss", "optimizer"} <= set(exp.grid)  # each compares losses and optimizers
    json.dumps(exp.to_dict(), allow_nan=False)
    assert Experiment.same_runs(exp, exp.to_dict())


# ----------------------------------------------------------------------------- meaning and defaults


def test_defaults_are_filled_in_from_the_task_and_train():
    exp = parse_experiment(_exp(), source="dir/xor-seeds.toml")
    hints = load_task("xor").hints
    assert exp.to_dict() == {
        "name": "t",
        "description": "",
        "task": {"name": "xor", "seed": 0, "grid_size": 101},
        "network": {
            "hidden": hints["hidden"],
            "activation": hints["activation"],
            "architecture": "mlp",
            "init": None,
            "shortcut": False,
        },
        "training": {
            "epochs": 1000,
            "batch_size": None,
            "stop_loss": None,
            "stop_accuracy": None,
            "loss": "bce",
            "optimizer": "sgd",
            "lr": None,
            "weight_decay": 0.0,
        },
        "record": {"schedule": "every", "layers": None, "preactivation": False},
        "grid": {"seed": [0, 1]},
    }
    data = _exp()
    del data["name"]
    assert parse_experiment(data, source="dir/xor-seeds.toml").name == "xor-seeds"


def test_grid_expands_to_the_cartesian_product_in_toml_order():
    exp = parse_experiment(
        _exp(
            training={"epochs": 5, "lr": 0.3},
            grid={
                "optimizer": ["sgd", {"name": "adam", "lr": 0.01}],
                "loss": ["sse", "bce"],
                "seed": [3, 7],
                "hidden": [[2], [4, 4]],
            },
        )
    )
    assert list(exp.axes) == ["optimizer", "loss", "seed", "hidden"]
    assert "optimizer" not in exp.training and "loss" not in exp.training and "hidden" not in exp.network
    runs = exp.runs()
    assert len(runs) == 2 * 2 * 2 * 2
    assert runs[0].id == "optimizer-sgd_loss-sse_hidden-2_seed-3"
    assert runs[1].id == "optimizer-sgd_loss-sse_hidden-2_seed-7"  # the seed innermost
    assert runs[-1].id == "optimizer-adam_loss-bce_hidden-4x4_seed-7"
    assert runs[-1].cell == {"optimizer": {"name": "adam", "lr": 0.01}, "loss": "bce", "hidden": [4, 4]}
    assert (runs[0].lr, runs[-1].lr) == (0.3, 0.01)  # [training].lr, then the optimizer table's own
    assert runs[-1].network["hidden"] == [4, 4] and runs[-1].network["n_inputs"] == 2
    assert runs[0].file == runs[0].id + ".h5"


def test_seeds_shorthand_and_optimizer_defaults():
    exp = parse_experiment(_exp(grid={"optimizer": ["momentum", "adam"], "seeds": 3}))
    assert exp.grid["seed"] == [0, 1, 2]
    runs = exp.runs()
    assert [r.seed for r in runs[:3]] == [0, 1, 2]
    assert runs[0].lr == 0.1 and runs[3].lr == 0.001  # each optimizer's default learning rate
    assert runs[0].train_kwargs()["seed"] == runs[0].train_kwargs()["init_seed"] == 0


def test_optimizer_tables_of_one_name_get_distinct_ids():
    grid = {"optimizer": [{"name": "momentum", "momentum": 0.5}, {"name": "momentum", "momentum": 0.9}]}
    ids = [r.id for r in parse_experiment(_exp(grid=grid)).runs()]
    assert ids[0] == "optimizer-momentum-momentum0.5_seed-0" and ids[1] == "optimizer-momentum-momentum0.9_seed-0"


def test_run_spec_round_trips_through_json():
    run = parse_experiment(_exp(grid={"lr": [0.1, 0.2], "weight_decay": [0, 0.01]})).runs()[-1]
    again = RunSpec.from_dict(json.loads(json.dumps(run.to_dict())))
    assert again == run and again.weight_decay == 0.01 and again.lr == 0.2
    assert again.load_task().name == "xor" and again.network_config().hidden == (2,)


def test_format_value():
    assert format_value({"name": "adam", "lr": 0.01}) == "adam(lr=0.01)"
    assert format_value([10, 10]) == "10x10" and format_value(["tanh", "relu"]) == "tanh+relu"
    assert format_value(None) == "default" and format_value(True) == "true" and format_value(1e-5) == "1e-05"


# ----------------------------------------------------------------------------- overrides (the CLI's flags)


def test_assignments_are_toml_values_or_bare_words():
    assert parse_assignment("training.lr=0.1") == ("training.lr", 0.1)
    assert parse_assignment("network.hidden = [4, 4]") == ("network.hidden", [4, 4])
    assert parse_assignment("training.loss=sse") == ("training.loss", "sse")
    assert parse_assignment("record.preactivation=true") == ("record.preactivation", True)
    for bad in ("training.lr", "=3", "training..lr=1"):
        with pytest.raises(ParameterError, match="--set must be KEY=VALUE"):
            parse_assignment(bad)


def test_overrides_set_single_values_and_the_seeds(tmp_path):
    path = _write(
        tmp_path,
        'name = "o"\n[task]\nname = "xor"\n[training]\nepochs = 100\n[grid]\nloss = ["sse", "bce"]\nseed = [5, 6]\n',
    )
    exp = load_experiment(path, overrides={"training.lr": 0.7, "network.hidden": [3]}, epochs=7, seeds=3)
    assert exp.training["epochs"] == 7 and exp.training["lr"] == 0.7 and exp.network["hidden"] == [3]
    assert exp.grid["seed"] == [0, 1, 2]
    data = {"task": {"name": "xor"}, "training": {"optimizer": "adam"}}
    with pytest.raises(ParameterError, match="training.optimizer is 'adam', not a table"):
        apply_overrides(data, {"training.optimizer.lr": 0.1})


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        (
            {"trainig": {}},
            "unknown key 'trainig' in the experiment's top level (did you mean 'training'?); allowed: name, desc",
        ),
        ({"training": {"lrr": 0.1}}, "unknown key 'lrr' in [training] (did you mean 'lr'?); allowed: epochs,"),
        ({"network": {"hiden": [3]}}, "unknown key 'hiden' in [network] (did you mean 'hidden'?)"),
        ({"record": {"scheduel": "log"}}, "unknown key 'scheduel' in [record] (did you mean 'schedule'?)"),
        ({"grid": {"sed": [1]}}, "unknown key 'sed' in [grid] (did you mean 'seed'?)"),
        (
            {"grid": {"optimizer": [{"name": "adam", "betta1": 0.8}]}},
            "unknown key 'betta1' in grid.optimizer[0] (optimizer 'adam') (did you mean 'beta1'?)",
        ),
        ({"training": {"epochs": "100"}}, "training.epochs must be an integer >= 0; got '100' (a string)"),
        ({"training": {"epochs": 1.5}}, "training.epochs must be an integer >= 0; got 1.5 (a number)"),
        ({"training": {"lr": "fast"}}, "training.lr must be a finite number; got 'fast' (a string)"),
        ({"network": {"hidden": 10}}, "network.hidden must be a list of layer sizes, e.g. [10, 10]; got 10"),
        ({"network": {"shortcut": 1}}, "network.shortcut must be true or false; got 1 (an integer)"),
        ({"grid": {"lr": 0.1}}, "grid.lr must be a list of values (an axis of the grid); got 0.1 (a number)"),
        ({"grid": {"lr": [0.1, "x"]}}, "grid.lr[1] must be a finite number; got 'x' (a string)"),
        ({"grid": {"loss": ["sse", "mse"]}}, "grid.loss[1] must be one of 'sse', 'bce', 'softmax'; got 'mse'"),
        ({"grid": {}}, "the grid is empty: [grid] must vary at least one axis"),
        ({"grid": {"loss": []}}, "grid.loss is empty: an axis needs at least one value"),
        ({"grid": {"seeds": 0}}, "grid.seeds must be an integer >= 1; got 0"),
        ({"grid": {"seeds": 2, "seed": [1]}}, "grid.seeds and grid.seed both set the seeds; give one"),
        ({"grid": {"loss": ["sse", "sse"]}}, "grid.loss lists 'sse' twice"),
        (
            {"training": {"loss": "sse"}, "grid": {"loss": ["sse", "bce"]}},
            "training.loss is fixed in [training] and varied in [grid]: give one",
        ),
        (
            {"grid": {"lr": [0.1], "optimizer": [{"name": "adam", "lr": 0.01}]}},
            "the learning rate is set twice, by grid.lr and by the optimizer table",
        ),
        ({"grid": {"loss": ["softmax"]}}, "loss 'softmax' needs a multiclass task"),
        ({"task": {"name": "xorr"}}, "task.name must be one of 'xor',"),
        ({"task": {"name": "encoder", "nn": 3}}, "[task]: task 'encoder' got an unknown option 'nn'; allowed: n"),
        ({"task": {"noise": 0.1}}, "[task] must have name = '<task>'"),
        ({"record": {"layers": ["hiden1"]}}, "record.layers: 'hiden1' is not a layer of this network"),
        ({"name": "a b"}, "name must hold only letters, digits"),
        ({"training": {"optimizer": {"lr": 0.1}}}, "training.optimizer must name its optimizer"),
    ],
)
def test_bad_experiments_fail_with_one_clear_message(tables, message):
    data = _exp(**tables)
    with pytest.raises(ParameterError) as info:
        parse_experiment(data, source="bad.toml")
    text = str(info.value)
    assert text.startswith("bad.toml: ") and message in text, text
    assert "\n" not in text


def test_file_errors(tmp_path):
    with pytest.raises(ParameterError, match="does not exist"):
        load_experiment(tmp_path / "nope.toml")
    with pytest.raises(ParameterError, match="not valid TOML"):
        load_experiment(_write(tmp_path, "name = \n"))


def test_every_grid_axis_is_documented_in_the_readme():
    with open(os.path.join(ROOT, "experiments", "README.md")) as f:
        text = f.read()
    for axis in GRID_AXES:
        assert f"`{axis}`" in text, axis
