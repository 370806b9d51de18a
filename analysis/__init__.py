"""Pure analyses of recordings: arrays in, arrays, DataFrames or small result objects out.

- :mod:`analysis.pca`: one PCA basis for every epoch (and run), trajectories, Procrustes.
- :mod:`analysis.geometry`: saturation, dead units, effective rank, NC1, linear probes, CKA, codes.
- :mod:`analysis.dynamics`: learning curves, thresholds, success rates, weight / gradient / update norms.
- :mod:`analysis.boundaries`: outputs and hidden-unit maps over a plane, output boundaries in hidden space.

Nothing here opens files or draws.
"""

from . import boundaries, dynamics, geometry, pca

__all__ = ["pca", "boundaries", "geometry", "dynamics"]
