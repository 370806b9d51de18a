"""Validation shared by the analysis modules (private).

Every public analysis function validates its arrays here, so that a wrong shape,
a wrong rank or a wrong type fails with one :class:`~data.errors.ParameterError`
whose message names the parameter, the expected shape in named dimensions and
the shape received.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from data.errors import ParameterError

__all__: list[str] = []

ACTS_SHAPE = "(n_epochs, n_samples, n_units) or (n_samples, n_units)"

#: Largest number of float64 elements a chunked computation holds at once (64 MiB).
CHUNK_ELEMENTS = 8 * 2**20


def shape_error(name: str, expected: str, got: Any) -> ParameterError:
    """A ParameterError naming ``name``, the expected shape and the shape received."""
    shape = getattr(got, "shape", None)
    received = f"shape {tuple(shape)}" if shape is not None else f"a {type(got).__name__}"
    return ParameterError(f"{name} must be an array of shape {expected}; got {received}")


def as_array(name: str, value: Any, *, expected: str, ndim: int | Sequence[int], dtype: Any = None) -> np.ndarray:
    """``value`` as a numeric ndarray of one of the given ranks, else ParameterError."""
    try:
        arr = np.asarray(value) if dtype is None else np.asarray(value, dtype=dtype)
    except (TypeError, ValueError):
        raise shape_error(name, expected, value) from None
    ndims = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if arr.ndim not in ndims or arr.dtype.kind not in "biuf" or 0 in arr.shape:
        raise shape_error(name, expected, arr)
    return arr


def as_acts(name: str, value: Any, *, allow_single: bool = True) -> tuple[np.ndarray, bool]:
    """Activations as an array of shape (n_epochs, n_samples, n_units).

    Returns
    -------
    acts : ndarray of shape (n_epochs, n_samples, n_units)
        A view of the input where possible (no copy, dtype kept).
    single : bool
        Whether the input was one epoch of shape (n_samples, n_units).
    """
    expected = ACTS_SHAPE if allow_single else "(n_epochs, n_samples, n_units)"
    arr = as_array(name, value, expected=expected, ndim=(2, 3) if allow_single else 3)
    if arr.ndim == 2:
        return arr[None], True
    return arr, False


def as_labels(name: str, value: Any, n_samples: int) -> np.ndarray:
    """Class labels as an integer array of shape (n_samples,)."""
    arr = as_array(name, value, expected=f"(n_samples,) = ({n_samples},)", ndim=1)
    if arr.shape[0] != n_samples:
        raise shape_error(name, f"(n_samples,) = ({n_samples},), one label per sample", arr)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ParameterError(f"{name} must hold integer class labels; got non-integer values")
        arr = arr.astype(np.int64)
    return arr


def finite_epochs(acts: np.ndarray) -> np.ndarray:
    """Boolean mask of shape (n_epochs,): True where an epoch holds only finite values."""
    return np.array([np.isfinite(a).all() for a in acts], dtype=bool)


def epoch_chunks(acts: np.ndarray) -> Iterator[slice]:
    """Slices of the epoch axis whose float64 copies stay under ``CHUNK_ELEMENTS``."""
    n_epochs = acts.shape[0]
    per_epoch = max(1, int(np.prod(acts.shape[1:])))
    step = max(1, CHUNK_ELEMENTS // per_epoch)
    for start in range(0, n_epochs, step):
        yield slice(start, min(start + step, n_epochs))


def epoch_labels(name: str, epochs: Any, n_epochs: int) -> np.ndarray:
    """Epoch numbers of shape (n_epochs,): ``epochs`` if given, else 0..n_epochs-1."""
    if epochs is None:
        return np.arange(n_epochs)
    arr = as_array(name, epochs, expected=f"(n_epochs,) = ({n_epochs},)", ndim=1)
    if arr.shape[0] != n_epochs:
        raise shape_error(name, f"(n_epochs,) = ({n_epochs},), one epoch number per recorded epoch", arr)
    return arr


def tidy(values: np.ndarray, *, epochs: np.ndarray, layer: str | None, metric: str) -> pd.DataFrame:
    """A tidy frame with columns epoch, layer, metric, value from values of shape (n_epochs,)."""
    return pd.DataFrame(
        {
            "epoch": np.asarray(epochs),
            "layer": pd.Series([layer] * len(values), dtype=object),
            "metric": pd.Series([metric] * len(values), dtype=object),
            "value": np.asarray(values, dtype=np.float64),
        }
    )
