"""The manifest of a runs folder: written atomically, read back, and refused with one clear error when it is not one."""

from __future__ import annotations

import json
import os

import pytest

from data.errors import FormatVersionError, ParameterError, RecordingError, check_choice, did_you_mean
from data.manifest import MANIFEST_FORMAT, MANIFEST_NAME, MANIFEST_VERSION, read_manifest, write_manifest


def _manifest(**extra):
    return {"format": MANIFEST_FORMAT, "format_version": MANIFEST_VERSION, "name": "x", "runs": [], **extra}


def test_round_trip_and_no_temporary_file_left(tmp_path):
    m = _manifest(runs=[{"id": "a", "status": "complete", "final_loss": 0.25}])
    write_manifest(tmp_path, m)
    assert read_manifest(tmp_path) == m
    assert os.listdir(tmp_path) == [MANIFEST_NAME]
    assert json.loads((tmp_path / MANIFEST_NAME).read_text()) == m  # plain JSON any tool can read


def test_a_folder_without_manifest_has_none(tmp_path):
    assert read_manifest(tmp_path) is None


def test_nan_is_refused_rather_than_written_as_invalid_json(tmp_path):
    with pytest.raises(ValueError):
        write_manifest(tmp_path, _manifest(loss=float("nan")))
    assert os.listdir(tmp_path) == []  # neither a manifest nor a temporary file


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        ("{not json", RecordingError, "cannot be read as JSON"),
        (json.dumps({"format": "something else", "runs": []}), RecordingError, "not a hud experiment manifest"),
        (json.dumps(_manifest(format_version=99)), FormatVersionError, "format_version 99"),
        (json.dumps({k: v for k, v in _manifest().items() if k != "runs"}), RecordingError, "no list of runs"),
    ],
)
def test_bad_manifests_raise_one_clear_error(tmp_path, text, error, match):
    (tmp_path / MANIFEST_NAME).write_text(text)
    with pytest.raises(error, match=match):
        read_manifest(tmp_path)


def test_did_you_mean_names_the_closest_allowed_value():
    assert did_you_mean("momentun", ["sgd", "momentum", "adam"]) == " (did you mean 'momentum'?)"
    assert did_you_mean("zzz", ["sgd", "adam"]) == ""
    assert did_you_mean(3, ["sgd"]) == ""
    expected = r"optimizer must be one of 'sgd', 'adam'; got 'adan' \(did you mean 'adam'\?\)"
    with pytest.raises(ParameterError, match=expected):
        check_choice("optimizer", "adan", ["sgd", "adam"])
