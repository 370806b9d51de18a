"""The one exception hierarchy of hud, and the validators that raise it.

Every error a user can cause is a :class:`HudError`; subclasses also inherit the
matching built-in exception so ``except ValueError`` keeps working.  Messages name
the parameter, what is allowed, and the value received.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "HudError",
    "ParameterError",
    "RecordingError",
    "FormatVersionError",
    "NotRecordedError",
    "check_choice",
    "check_number",
    "check_keys",
    "closest",
    "did_you_mean",
]


class HudError(Exception):
    """Base class of every error hud raises on purpose."""


class ParameterError(HudError, ValueError):
    """A parameter has a value (or type, or shape) that is not allowed."""


class RecordingError(HudError, OSError):
    """A recording cannot be opened, read or written."""


class FormatVersionError(RecordingError):
    """A recording was written in a format version this hud cannot read."""


class NotRecordedError(HudError, KeyError):
    """An epoch or layer was asked for that the recording does not hold."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


def closest(value: str, allowed: Iterable[str]) -> str | None:
    """Return the allowed name closest to ``value``, or None if none is close."""
    matches = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
    return matches[0] if matches else None


def did_you_mean(value: Any, allowed: Iterable[Any]) -> str:
    """`` (did you mean 'x'?)`` naming the allowed name closest to ``value``, or '' if none is close."""
    hint = closest(value, [a for a in allowed if isinstance(a, str)]) if isinstance(value, str) else None
    return f" (did you mean {hint!r}?)" if hint else ""


def _fmt_allowed(allowed: Iterable[Any]) -> str:
    return ", ".join(repr(a) for a in allowed)


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise ParameterError.

    Parameters
    ----------
    name : str
        The parameter's name, as the user wrote it.
    value : object
        The value received.
    allowed : iterable
        The allowed values.
    """
    allowed = list(allowed)
    if value in allowed:
        return value
    raise ParameterError(f"{name} must be one of {_fmt_allowed(allowed)}; got {value!r}{did_you_mean(value, allowed)}")


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
) -> float | int:
    """Return ``value`` if it is a finite number in the given range.

    Parameters
    ----------
    name : str
        The parameter's name.
    value : object
        The value received.
    low, high : float, optional
        Bounds; ``None`` means unbounded.
    low_open, high_open : bool
        Whether the bound itself is excluded.
    integer : bool
        Whether the value must be an integer.
    """
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or not math.isfinite(value):
        kind = "an integer" if integer else "a finite number"
        raise ParameterError(f"{name} must be {kind}{_range_text(low, high, low_open, high_open)}; got {value!r}")
    if (low is not None and (value < low or (low_open and value == low))) or (
        high is not None and (value > high or (high_open and value == high))
    ):
        kind = "an integer" if integer else "a number"
        raise ParameterError(f"{name} must be {kind}{_range_text(low, high, low_open, high_open)}; got {value!r}")
    return value


def _range_text(low, high, low_open, high_open) -> str:
    if low is None and high is None:
        return ""
    if high is None:
        return f" {'>' if low_open else '>='} {low}"
    if low is None:
        return f" {'<' if high_open else '<='} {high}"
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    return f" in {left}{low}, {high}{right}"


def check_keys(name: str, given: Mapping[str, Any] | Iterable[str], allowed: Iterable[str]) -> None:
    """Raise ParameterError naming the first key of ``given`` not in ``allowed``."""
    allowed = list(allowed)
    for key in given:
        if key not in allowed:
            raise ParameterError(
                f"{name} got an unknown option {key!r}; allowed: {', '.join(allowed) or '(none)'}"
                + did_you_mean(key, allowed)
            )
