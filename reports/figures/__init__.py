"""hud's figures: each draws on an Axes (or a Figure for multi-panel ones) and returns it.

Figure functions never save or show.  Called with ``ax=None`` they draw on
pyplot's current Axes (a notebook's inline figure); :mod:`reports.report` gives
them Axes of plain :class:`matplotlib.figure.Figure` objects instead.  Figures
that are expensive to compute are ``...Display`` objects, built once
(``from_network`` / ``from_activations``) and plotted many times
(``.plot(ax=...)``), like scikit-learn's ``DecisionBoundaryDisplay``.

One module owns each figure kind:

- :mod:`.curves`: :func:`learning_curves` (mean and spread over seeds).
- :mod:`.success`: :func:`success_rates` (Wilson intervals), :func:`epochs_to_threshold`.
- :mod:`.trajectories`: :class:`TrajectoryDisplay` (PCA trajectories in one shared basis).
- :mod:`.hidden`: :class:`HiddenSpaceDisplay` (points, output boundaries, shaded regions) and
  :class:`HiddenSpaceAnimation` (its evolution over epochs).
- :mod:`.plane`: :class:`DecisionBoundaryDisplay` (the input-plane boundary with the data).
- :mod:`.unit_maps`: :func:`unit_maps` (a Figure, one Axes per unit) and :func:`unit_mosaic` (tiled on one Axes).
- :mod:`.geometry`: :func:`geometry_metrics` (effective rank, saturation, NC1, ... over epochs).
- :mod:`.cka`: :func:`cka_heatmap` (epoch x epoch, run x run).
- :mod:`.norms`: :func:`weight_norm_growth` (per layer).
- :mod:`._style`: :func:`cell_palette` (one colour per configuration), :func:`class_colors`.
"""

from ._style import CELL_COLORS, cell_palette, class_colors, mean_and_spread
from .cka import cka_heatmap
from .curves import learning_curves
from .geometry import METRIC_LABELS, geometry_metrics
from .hidden import HiddenSpaceAnimation, HiddenSpaceDisplay
from .norms import weight_norm_growth
from .plane import DecisionBoundaryDisplay
from .success import epochs_to_threshold, success_rates
from .trajectories import TrajectoryDisplay
from .unit_maps import unit_maps, unit_mosaic

__all__ = [
    "CELL_COLORS",
    "METRIC_LABELS",
    "DecisionBoundaryDisplay",
    "HiddenSpaceAnimation",
    "HiddenSpaceDisplay",
    "TrajectoryDisplay",
    "cell_palette",
    "cka_heatmap",
    "class_colors",
    "epochs_to_threshold",
    "geometry_metrics",
    "learning_curves",
    "mean_and_spread",
    "success_rates",
    "unit_maps",
    "unit_mosaic",
    "weight_norm_growth",
]
