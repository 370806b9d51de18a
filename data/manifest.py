"""The manifest of a runs folder (``manifest.json``): its name, format and the only reader and writer.

``hud run`` writes it (the experiment's config, and each run's parameters and
status); ``hud ls`` and ``hud report`` read it.  Like the HDF5 schema it is a
contract, so one module owns it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from ._version import __version__
from .errors import FormatVersionError, RecordingError

__all__ = ["MANIFEST_NAME", "MANIFEST_FORMAT", "MANIFEST_VERSION", "read_manifest", "write_manifest"]

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "hud-experiment"
MANIFEST_VERSION = 1


def read_manifest(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest of a runs folder, or None if it has none.

    Parameters
    ----------
    folder : str or path
        A runs folder (``hud run -o FOLDER``).

    Returns
    -------
    dict or None
        The manifest as written by :func:`write_manifest`.

    Raises
    ------
    RecordingError
        The manifest exists but cannot be read, is not a hud experiment manifest, or has no list of runs.
    FormatVersionError
        It was written in a format version this hud cannot read.
    """
    path = os.path.join(os.fspath(folder), MANIFEST_NAME)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError) as exc:
        raise RecordingError(f"manifest {path!r} cannot be read as JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise RecordingError(f'{path!r} is not a hud experiment manifest (no "format": {MANIFEST_FORMAT!r})')
    version = manifest.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= MANIFEST_VERSION:
        raise FormatVersionError(
            f"manifest {path!r} has format_version {version!r}; this hud ({__version__}) reads version "
            f"{MANIFEST_VERSION}: upgrade hud to read it"
        )
    if not isinstance(manifest.get("runs"), list):
        raise RecordingError(f"manifest {path!r} has no list of runs")
    return manifest


def write_manifest(folder: str | os.PathLike, manifest: Mapping[str, Any]) -> None:
    """Write the manifest atomically: a temporary file in the folder, synced, then ``os.replace``.

    Parameters
    ----------
    folder : str or path
    manifest : mapping
        JSON-serializable, with no NaN or infinity.
    """
    folder = os.fspath(folder)
    path = os.path.join(folder, MANIFEST_NAME)
    tmp = os.path.join(folder, f".{MANIFEST_NAME}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
