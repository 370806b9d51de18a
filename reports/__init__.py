"""Figures, reports and the ``hud`` command line (the user-facing layer)."""

__all__: list[str] = []
