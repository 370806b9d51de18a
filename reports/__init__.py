"""Figures, reports and the ``hud`` command line (the user-facing layer).

- :mod:`reports.figures`: figure functions (Axes in, Axes out) and ``...Display`` objects.
- :func:`build_report`: a runs folder in; a multi-page PDF, PNGs, CSVs and GIFs out.

``from reports import figures, build_report`` imports them on first use, so that
the command line (``reports.cli``) starts without loading matplotlib and torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["figures", "build_report", "ReportResult", "ReportError"]

_LAZY = {"build_report": "report", "ReportResult": "report", "ReportError": "report"}


def __getattr__(name: str) -> Any:
    if name == "figures":
        return importlib.import_module(".figures", __name__)
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
