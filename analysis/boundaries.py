"""What a network computes over a plane: outputs, hidden-unit maps and decision boundaries.

Three pictures of the course:

1. **Input plane.**  :func:`network_outputs` evaluates the network over a grid
   of 2-D inputs (e.g. ``task.grid``); :func:`unit_maps` gives each hidden
   unit's activation over the same grid as continuous values
   ``(n_units, n_y, n_x)`` (a threshold is an option, not the default).
2. **Hidden space, exact.**  For the last hidden layer, each output unit k is
   an affine function of the hidden point h: its boundary is the line
   (2 hidden units) or plane (3 units) ``W[k] @ h + b[k] = 0``, with W, b the
   output layer's weights.  :func:`output_hyperplanes` returns them as a
   :class:`Hyperplanes` whose :meth:`~Hyperplanes.clip` gives the segment (or
   polygon) inside a box.  :func:`encoder_points` gives the hidden point of
   each one-hot input -- for an N-2-N encoder, ``tanh(W1[:, j] + b1)``.
3. **Hidden space, general.**  For a layer that is not the last hidden layer,
   or has more than 3 units, :func:`hidden_plane_field` pushes a grid of a
   plane of that layer's space (the layer space itself for 2 units, else a
   2-D PCA plane mapped back through the inverse PCA) through the rest of the
   network; the boundaries are the zero contours of the returned field.

A network is given as an ``nn.Module`` (any; the hidden-space pictures need a
hud :class:`models.Network` or an ``nn.Sequential``), or as a
:class:`models.NetworkConfig` (or its dict) plus ``params``, a mapping
parameter name -> ndarray, loaded with ``load_state_dict`` into
``models.build_network(config)``.  Networks are evaluated on a float64 copy on
the CPU, under ``torch.no_grad()``; the module passed in is never changed.

Layer names are those of ``network.named_modules()``: hud networks name their
hidden layers ``hidden1``, ``hidden2``, ... (post-activation; ``hiddenK.linear``
is the pre-activation) and the final linear layer ``output``.

Non-finite parameters or grid points raise :class:`~data.errors.ParameterError`.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from data.errors import ParameterError, check_choice, check_number
from models import Network, NetworkConfig, build_network

from ._checks import as_array, shape_error

__all__ = [
    "load_network",
    "layer_outputs",
    "network_outputs",
    "unit_maps",
    "encoder_points",
    "Hyperplanes",
    "output_hyperplanes",
    "forward_from",
    "PlaneField",
    "hidden_plane_field",
    "OUTPUTS",
]

#: What :func:`network_outputs` and friends return: logits, or after a sigmoid / softmax.
OUTPUTS = ("logits", "sigmoid", "softmax")
_BATCH = 65536


# ----------------------------------------------------------------------------- networks


def load_network(network: Any, *, params: Mapping[str, Any] | None = None) -> nn.Module:
    """A float64 CPU copy of a network in eval mode, with ``params`` loaded if given.

    Parameters
    ----------
    network : nn.Module, NetworkConfig or dict
        A module (copied, never changed), or a config to build with
        ``models.build_network``.
    params : mapping parameter name -> ndarray, optional
        A full state dict (e.g. one epoch of a recording's weights); required
        with a config.

    Returns
    -------
    nn.Module
    """
    if isinstance(network, nn.Module):
        net = copy.deepcopy(network).to(device="cpu")
    elif isinstance(network, (NetworkConfig, Mapping)):
        if params is None:
            raise ParameterError(
                "params must be given (a mapping parameter name -> ndarray) when network is a config; got None"
            )
        net = build_network(network, seed=0)  # every parameter is overwritten below
    else:
        raise ParameterError(
            f"network must be an nn.Module, a NetworkConfig or a config dict; got {type(network).__name__}"
        )
    net = net.to(torch.float64).eval()  # before loading: float64 params are kept exactly
    if params is not None:
        _load_params(net, params)
    for name, p in net.named_parameters():
        if not torch.isfinite(p).all():
            raise ParameterError(
                f"parameter {name!r} holds NaN or inf (a diverged run?): the network's outputs are undefined"
            )
    return net


def _network(network: Any, params: Mapping[str, Any] | None) -> nn.Module:
    """``network`` itself when it is already what :func:`load_network` makes (float64, CPU, eval) and no
    ``params`` are given, else :func:`load_network`'s copy.  For functions that only run forward passes
    under ``no_grad`` and never change the module: a display built from one network calls several of
    them, and copying the network each time was most of their cost."""
    if params is None and isinstance(network, nn.Module) and not network.training:
        tensors = [*network.parameters(), *network.buffers()]
        if all(t.dtype == torch.float64 and t.device.type == "cpu" for t in tensors):
            for name, p in network.named_parameters():
                if not torch.isfinite(p).all():
                    raise ParameterError(
                        f"parameter {name!r} holds NaN or inf (a diverged run?): the network's outputs are undefined"
                    )
            return network
    return load_network(network, params=params)


def _load_params(net: nn.Module, params: Mapping[str, Any]) -> None:
    if not isinstance(params, Mapping):
        raise ParameterError(f"params must be a mapping parameter name -> ndarray; got {type(params).__name__}")
    expected = net.state_dict()
    missing = [k for k in expected if k not in params]
    unexpected = [k for k in params if k not in expected]
    if missing or unexpected:
        raise ParameterError(
            f"params must hold exactly the network's parameters {list(expected)}; "
            f"missing {missing}, unexpected {unexpected}"
        )
    state = {}
    for key, ref in expected.items():
        value = np.asarray(params[key])
        if value.shape != tuple(ref.shape):
            raise shape_error(f"params[{key!r}]", str(tuple(ref.shape)), value)
        state[key] = torch.as_tensor(value, dtype=ref.dtype)
    net.load_state_dict(state)


def _modules(net: nn.Module) -> dict[str, nn.Module]:
    return {name: m for name, m in net.named_modules() if name}


def _default_layers(net: nn.Module) -> list[str]:
    names = getattr(net, "layer_names", None)
    if names is None:
        raise ParameterError(
            "layers must be given for a network that is not a hud Network: names from "
            f"network.named_modules(), e.g. {list(_modules(net))[:6]}"
        )
    return list(names)


def _as_points(name: str, points: Any, width: int | None, dims: str) -> torch.Tensor:
    expected = f"(n_points, {dims})" + (f" = (n_points, {width})" if width is not None else "")
    arr = as_array(name, points, expected=expected, ndim=2)
    if width is not None and arr.shape[1] != width:
        raise shape_error(name, expected, arr)
    if not np.isfinite(arr).all():
        raise ParameterError(f"{name} holds NaN or inf; every point must be finite")
    return torch.as_tensor(np.asarray(arr, dtype=np.float64))


def _n_inputs(net: nn.Module) -> int | None:
    cfg = getattr(net, "config", None)
    if isinstance(cfg, NetworkConfig):
        return cfg.n_inputs
    for m in net.modules():
        if isinstance(m, nn.Linear):
            return m.in_features
    return None


def _apply_output(logits: np.ndarray, output: str) -> np.ndarray:
    if output == "sigmoid":
        return 1.0 / (1.0 + np.exp(-logits))
    if output == "softmax":
        z = np.exp(logits - logits.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)
    return logits


def layer_outputs(
    network: Any,
    inputs: Any,
    *,
    layers: str | Sequence[str] | None = None,
    params: Mapping[str, Any] | None = None,
    pre_activation: bool = False,
) -> dict[str, np.ndarray]:
    """The outputs of named layers on some inputs, captured with forward hooks.

    Parameters
    ----------
    network : nn.Module, NetworkConfig or dict
        See :func:`load_network`.
    inputs : ndarray of shape (n_points, n_inputs)
    layers : str or sequence of str, optional
        Module names; default the hud network's hidden layers and ``output``.
    params : mapping parameter name -> ndarray, optional
    pre_activation : bool
        For hud layers ``hiddenK``, capture ``hiddenK.linear`` (before the
        activation) instead.

    Returns
    -------
    dict layer name -> ndarray of shape (n_points, n_units), float64
    """
    net = load_network(network, params=params)
    x = _as_points("inputs", inputs, _n_inputs(net), "n_inputs")
    names = [layers] if isinstance(layers, str) else list(layers) if layers is not None else _default_layers(net)
    modules = _modules(net)
    targets = {}
    for name in names:
        check_choice("layers", name, list(modules))
        target = name
        if pre_activation and f"{name}.linear" in modules:
            target = f"{name}.linear"
        targets[name] = modules[target]
    store: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    handles = []
    for name, module in targets.items():

        def hook(_m: nn.Module, _i: Any, out: Any, name: str = name) -> None:
            if not isinstance(out, torch.Tensor):
                raise ParameterError(f"layer {name!r} does not output a single tensor; pick another layer")
            store[name].append(out.detach().clone().reshape(out.shape[0], -1))

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            for start in range(0, x.shape[0], _BATCH):
                net(x[start : start + _BATCH])
    finally:
        for h in handles:
            h.remove()
    return {name: torch.cat(parts).numpy() for name, parts in store.items()}


def network_outputs(
    network: Any,
    grid: Any,
    *,
    params: Mapping[str, Any] | None = None,
    output: str = "logits",
) -> np.ndarray:
    """The network's output at every grid point of the input plane.

    Parameters
    ----------
    network : nn.Module, NetworkConfig or dict
        See :func:`load_network`.
    grid : ndarray of shape (n_grid, n_inputs)
        E.g. ``task.grid`` (row-major over ``task.grid_shape``).
    params : mapping parameter name -> ndarray, optional
        The weights to evaluate at (e.g. one recorded epoch).
    output : {'logits', 'sigmoid', 'softmax'}
        The network's own output (the output layer's pre-activations), or
        after the loss's output non-linearity.

    Returns
    -------
    ndarray of shape (n_grid, n_outputs), float64
    """
    check_choice("output", output, OUTPUTS)
    net = _network(network, params)
    x = _as_points("grid", grid, _n_inputs(net), "n_inputs")
    with torch.no_grad():
        logits = torch.cat([net(x[s : s + _BATCH]) for s in range(0, x.shape[0], _BATCH)]).numpy()
    return _apply_output(logits, output)


def unit_maps(
    network: Any,
    grid: Any,
    *,
    layer: str,
    grid_shape: tuple[int, int] | None = None,
    params: Mapping[str, Any] | None = None,
    threshold: float | None = None,
    pre_activation: bool = False,
) -> np.ndarray:
    """Each unit's activation over the input plane.

    Parameters
    ----------
    network : nn.Module, NetworkConfig or dict
    grid : ndarray of shape (n_grid, n_inputs)
        Row-major over ``grid_shape`` (y outer, x inner), like ``task.grid``.
    layer : str
        E.g. 'hidden1' (or 'output').
    grid_shape : (n_y, n_x), optional
        Reshape to maps; default keep the flat grid axis.
    params : mapping parameter name -> ndarray, optional
    threshold : float, optional
        Return ``activation > threshold`` (bool) instead of the continuous values.
    pre_activation : bool
        Maps of the unit's net input instead of its activation.

    Returns
    -------
    ndarray of shape (n_units, n_y, n_x), or (n_units, n_grid) without ``grid_shape``
    """
    acts = layer_outputs(network, grid, layers=layer, params=params, pre_activation=pre_activation)[layer].T
    if grid_shape is not None:
        shape = tuple(int(s) for s in grid_shape) if isinstance(grid_shape, Sequence) else ()
        if len(shape) != 2 or shape[0] * shape[1] != acts.shape[1]:
            raise ParameterError(
                f"grid_shape must be (n_y, n_x) with n_y * n_x = n_grid = {acts.shape[1]}; got {grid_shape!r}"
            )
        acts = acts.reshape(acts.shape[0], *shape)
    if threshold is not None:
        return acts > check_number("threshold", threshold)
    return acts


def encoder_points(network: Any, *, layer: str = "hidden1", params: Mapping[str, Any] | None = None) -> np.ndarray:
    """The hidden point of each one-hot input: for an N-2-N tanh encoder, ``tanh(W1[:, j] + b1)``.

    Returns
    -------
    ndarray of shape (n_inputs, n_units)
        Row j is the layer's activation on the input e_j.
    """
    net = load_network(network, params=params)
    n = _n_inputs(net)
    if n is None:
        raise ParameterError("network has no nn.Linear layer to tell its number of inputs")
    return layer_outputs(net, np.eye(n), layers=layer)[layer]


# ----------------------------------------------------------------------------- exact hyperplanes


@dataclass(frozen=True)
class Hyperplanes:
    """Affine boundaries ``weights[k] @ h + biases[k] = 0`` in a layer's space.

    Attributes
    ----------
    weights : ndarray of shape (n_boundaries, n_units)
    biases : ndarray of shape (n_boundaries,)
    labels : tuple
        What each boundary separates: the output unit k, or a pair (i, j) of
        output units after :meth:`pairwise`.
    layer : str or None
        The layer whose space this is.
    """

    weights: np.ndarray
    biases: np.ndarray
    labels: tuple = ()
    layer: str | None = None

    @property
    def n_units(self) -> int:
        return int(self.weights.shape[1])

    def __len__(self) -> int:
        return int(self.weights.shape[0])

    def evaluate(self, points: Any) -> np.ndarray:
        """``points @ weights.T + biases``: zero on the boundaries.

        Parameters
        ----------
        points : ndarray of shape (n_points, n_units)

        Returns
        -------
        ndarray of shape (n_points, n_boundaries)
        """
        pts = as_array("points", points, expected=f"(n_points, n_units) = (n_points, {self.n_units})", ndim=2)
        if pts.shape[1] != self.n_units:
            raise shape_error("points", f"(n_points, n_units) = (n_points, {self.n_units})", pts)
        return np.asarray(pts, dtype=np.float64) @ self.weights.T + self.biases

    def pairwise(self) -> Hyperplanes:
        """Boundaries between each pair of outputs i < j: (w_i - w_j) @ h + (b_i - b_j) = 0 (softmax classes)."""
        pairs = list(itertools.combinations(range(len(self)), 2))
        if not pairs:
            raise ParameterError("pairwise boundaries need at least 2 output units; got 1")
        w = np.stack([self.weights[i] - self.weights[j] for i, j in pairs])
        b = np.array([self.biases[i] - self.biases[j] for i, j in pairs])
        return Hyperplanes(w, b, tuple(pairs), self.layer)

    def clip(self, k: int, box: Sequence[float]) -> np.ndarray | None:
        """The part of boundary ``k`` inside a box: a segment in 2-D, a polygon in 3-D.

        Parameters
        ----------
        k : int
            Which boundary.
        box : (x_min, x_max, y_min, y_max) or (x_min, x_max, y_min, y_max, z_min, z_max)
            One (min, max) pair per unit.

        Returns
        -------
        ndarray of shape (2, 2) (segment end points), (n_corners, 3) (polygon, in
        order around its edge), or None if the boundary misses the box or is
        degenerate (zero weights).
        """
        if self.n_units not in (2, 3):
            raise ParameterError(
                f"clip needs a 2- or 3-unit layer (a line or a plane); this layer has {self.n_units} units: "
                "use hidden_plane_field for a 2-D PCA plane"
            )
        k = int(check_number("k", k, low=0, high=len(self) - 1, integer=True))
        lo, hi = _box(box, self.n_units)
        w, b = self.weights[k], float(self.biases[k])
        if not np.any(w != 0):
            return None
        scale = float(np.abs(w).sum() * np.maximum(np.abs(lo), np.abs(hi)).max() + abs(b) + 1.0)
        tol = 1e-12 * scale
        pts = []
        d = self.n_units
        for i in range(d):  # edges along axis i
            others = [j for j in range(d) if j != i]
            for corner in itertools.product(*[(lo[j], hi[j]) for j in others]):
                rest = b + sum(w[j] * c for j, c in zip(others, corner))
                if abs(w[i]) > 0:
                    t = -rest / w[i]
                    if lo[i] - tol <= t <= hi[i] + tol:
                        p = np.empty(d)
                        p[others] = corner
                        p[i] = min(max(t, lo[i]), hi[i])
                        pts.append(p)
                elif abs(rest) <= tol:  # the whole edge lies on the boundary
                    for t in (lo[i], hi[i]):
                        p = np.empty(d)
                        p[others] = corner
                        p[i] = t
                        pts.append(p)
        uniq: list[np.ndarray] = []
        for p in pts:
            if not any(np.abs(p - q).max() <= 1e-9 * (1 + np.abs(q).max()) for q in uniq):
                uniq.append(p)
        if len(uniq) < 2 or (d == 3 and len(uniq) < 3):
            return None
        arr = np.array(uniq)
        if d == 2:
            if len(arr) > 2:  # boundary along a box side: keep its extreme points
                order = np.argsort(arr @ np.array([-w[1], w[0]]))
                arr = arr[[order[0], order[-1]]]
            return arr
        return _order_polygon(arr, w)

    def segments(self, box: Sequence[float]) -> list[np.ndarray | None]:
        """:meth:`clip` of every boundary."""
        return [self.clip(k, box) for k in range(len(self))]


def _box(box: Sequence[float], d: int) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(box, dtype=np.float64).ravel() if box is not None else np.empty(0)
    names = "(x_min, x_max, y_min, y_max" + (", z_min, z_max)" if d == 3 else ")")
    if arr.shape != (2 * d,) or not np.isfinite(arr).all():
        raise ParameterError(f"box must be {names}; got {box!r}")
    lo, hi = arr[0::2], arr[1::2]
    if np.any(hi <= lo):
        raise ParameterError(f"box must be {names} with each min < max; got {box!r}")
    return lo, hi


def _order_polygon(pts: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Order points of a convex planar polygon around its centroid."""
    c = pts.mean(axis=0)
    n = normal / np.linalg.norm(normal)
    a = np.cross(n, [1.0, 0.0, 0.0])
    if np.linalg.norm(a) < 1e-6:
        a = np.cross(n, [0.0, 1.0, 0.0])
    a /= np.linalg.norm(a)
    bvec = np.cross(n, a)
    rel = pts - c
    return pts[np.argsort(np.arctan2(rel @ bvec, rel @ a))]


def _hud(net: nn.Module, what: str) -> Network:
    if not isinstance(net, Network):
        raise ParameterError(f"{what} needs a hud Network (models.build_network); got {type(net).__name__}")
    if net.config.shortcut:
        raise ParameterError(
            f"{what} is not defined for a network with shortcut connections: later layers also see the inputs"
        )
    return net


def _width(net: nn.Module, layer: str) -> int:
    module = _modules(net)[layer]
    linear = getattr(module, "linear", module)
    if isinstance(linear, nn.Linear):
        return int(linear.out_features)
    raise ParameterError(f"layer {layer!r} has no linear part to tell its width")


def output_hyperplanes(
    network: Any, *, layer: str | None = None, params: Mapping[str, Any] | None = None
) -> Hyperplanes:
    """The output units' exact boundaries in the last hidden layer's space.

    Output unit k's pre-activation is ``W[k] @ h + b[k]`` with W, b the output
    layer's weights, so its boundary (sigmoid output 0.5, logit 0) is a line for
    2 hidden units and a plane for 3.

    Parameters
    ----------
    network : hud Network, NetworkConfig or dict
    layer : str, optional
        The last hidden layer (the default); any other layer raises
        ParameterError (use :func:`hidden_plane_field`).
    params : mapping parameter name -> ndarray, optional

    Returns
    -------
    Hyperplanes
        One boundary per output unit, in the layer's space (n_units >= 2).
    """
    net = _hud(_network(network, params), "output_hyperplanes")
    hidden = net.hidden_layers
    if not hidden:
        raise ParameterError("output_hyperplanes needs a network with a hidden layer; this one has none")
    if layer is None:
        layer = hidden[-1]
    check_choice("layer", layer, hidden)
    if layer != hidden[-1]:
        raise ParameterError(
            f"layer must be the last hidden layer {hidden[-1]!r} for exact output boundaries; got {layer!r} "
            "(use hidden_plane_field to push a grid of that layer's space through the rest of the network)"
        )
    n_units = _width(net, layer)
    if n_units < 2:
        raise ParameterError(f"layer {layer!r} must have at least 2 units for a 2-D picture; it has {n_units}")
    w = net.output.weight.detach().numpy().copy()
    b = net.output.bias.detach().numpy().copy() if net.output.bias is not None else np.zeros(w.shape[0])
    return Hyperplanes(w, b, tuple(range(w.shape[0])), layer)


# ----------------------------------------------------------------------------- pushing grids forward


def _rest(net: nn.Module, layer: str) -> list[nn.Module]:
    """The modules that map ``layer``'s output to the network's output."""
    if isinstance(net, Network):
        _hud(net, "pushing a layer's points through the rest of the network")
        hidden = net.hidden_layers
        check_choice("layer", layer, hidden)
        return [getattr(net, name) for name in hidden[hidden.index(layer) + 1 :]] + [net.output]
    if isinstance(net, nn.Sequential):
        names = [name for name, _ in net.named_children()]
        check_choice("layer", layer, names)
        return list(net.children())[names.index(layer) + 1 :]
    raise ParameterError(
        f"pushing a layer's points forward needs a hud Network or an nn.Sequential; got {type(net).__name__}"
    )


def forward_from(
    network: Any,
    hidden: Any,
    *,
    layer: str,
    params: Mapping[str, Any] | None = None,
    output: str = "logits",
) -> np.ndarray:
    """Push points of a layer's space through the rest of the network.

    Parameters
    ----------
    network : hud Network or nn.Sequential, NetworkConfig or dict
    hidden : ndarray of shape (n_points, n_units)
        Points in the space of ``layer``'s outputs.
    layer : str
        A hidden layer (e.g. 'hidden1'), or a child of an nn.Sequential.
    params : mapping parameter name -> ndarray, optional
    output : {'logits', 'sigmoid', 'softmax'}

    Returns
    -------
    ndarray of shape (n_points, n_outputs), float64
    """
    check_choice("output", output, OUTPUTS)
    net = _network(network, params)
    rest = _rest(net, layer)
    width = _width(net, layer) if isinstance(net, Network) else None
    x = _as_points("hidden", hidden, width, "n_units")
    outs = []
    with torch.no_grad():
        for s in range(0, x.shape[0], _BATCH):
            h = x[s : s + _BATCH]
            for module in rest:
                h = module(h)
            outs.append(h)
    return _apply_output(torch.cat(outs).numpy(), output)


@dataclass(frozen=True)
class PlaneField:
    """The network's outputs over a 2-D plane of a layer's space.

    Attributes
    ----------
    layer : str
    grid : ndarray of shape (n_grid, 2)
        Plane coordinates, row-major over ``grid_shape`` (y outer, x inner).
    grid_shape : (n_y, n_x)
    extent : (x_min, x_max, y_min, y_max)
        Of the plane coordinates (for ``imshow`` / ``contour``).
    hidden : ndarray of shape (n_grid, n_units)
        The grid mapped into the layer's space: ``mean + grid @ components``.
    values : ndarray of shape (n_outputs, n_y, n_x)
        The outputs there; the boundaries are the contours at ``level``.
    level : float
        0 for logits, 0.5 after a sigmoid or softmax (with more than two
        softmax classes the class boundaries are where two outputs are equal,
        not a contour at a level: use :meth:`Hyperplanes.pairwise` or compare outputs).
    components : ndarray of shape (2, n_units)
        The plane's axes (identity for a 2-unit layer, else principal axes).
    mean : ndarray of shape (n_units,)
        The plane's origin.
    points : ndarray of shape (n_samples, 2) or None
        The given hidden points in plane coordinates.
    """

    layer: str
    grid: np.ndarray
    grid_shape: tuple[int, int]
    extent: tuple[float, float, float, float]
    hidden: np.ndarray
    values: np.ndarray
    level: float
    components: np.ndarray
    mean: np.ndarray
    points: np.ndarray | None = None


def hidden_plane_field(
    network: Any,
    *,
    layer: str,
    points: Any = None,
    params: Mapping[str, Any] | None = None,
    basis: Any = None,
    extent: Sequence[float] | None = None,
    grid_size: int = 101,
    margin: float = 0.1,
    output: str = "logits",
) -> PlaneField:
    """The output field over a plane of a hidden layer's space, for boundary contours.

    The plane is the layer's own space for 2 units; otherwise the plane of the
    first two principal axes -- of ``basis`` if given (e.g. a
    :class:`analysis.pca.TrajectoryPCA` fitted on all epochs, so the plane stays
    put while training goes on), else of ``points``.  Grid points of the plane
    are mapped back into the layer's space (the inverse PCA) and pushed through
    the rest of the network.

    Parameters
    ----------
    network : hud Network or nn.Sequential, NetworkConfig or dict
    layer : str
        A hidden layer with at least 2 units.
    points : ndarray of shape (n_samples, n_units), optional
        Hidden points of the probe set at these weights: fit the PCA plane
        (when no ``basis``) and set the extent (when no ``extent``).
    params : mapping parameter name -> ndarray, optional
    basis : object with ``components_`` (>= 2, n_units) and ``mean_`` (n_units,), optional
        A fitted PCA (TrajectoryPCA or scikit-learn's).
    extent : (x_min, x_max, y_min, y_max), optional
        In plane coordinates; default the points' bounding box plus ``margin``.
    grid_size : int
        Grid points per axis.
    margin : float
        Fraction of the points' range added on each side.
    output : {'logits', 'sigmoid', 'softmax'}

    Returns
    -------
    PlaneField
    """
    check_choice("output", output, OUTPUTS)
    n = int(check_number("grid_size", grid_size, low=2, high=4000, integer=True))
    margin = check_number("margin", margin, low=0)
    net = _network(network, params)
    _rest(net, layer)  # validates the layer and the architecture
    width = _width(net, layer)
    if width < 2:
        raise ParameterError(f"layer {layer!r} must have at least 2 units for a 2-D picture; it has {width}")
    pts = None
    if points is not None:
        pts = _as_points("points", points, width, "n_units").numpy()
    if basis is not None:
        comps = np.asarray(getattr(basis, "components_", None), dtype=np.float64)
        mean = np.asarray(getattr(basis, "mean_", None), dtype=np.float64)
        if comps.ndim != 2 or comps.shape[0] < 2 or comps.shape[1] != width or mean.shape != (width,):
            raise ParameterError(
                f"basis must be a fitted PCA with components_ of shape (>= 2, n_units = {width}) and mean_ of "
                f"shape ({width},); got {type(basis).__name__}"
            )
        comps = comps[:2]
    elif width == 2:
        comps, mean = np.eye(2), np.zeros(2)
    else:
        if pts is None or len(pts) < 2:
            raise ParameterError(
                f"points (n_samples >= 2, {width}) or a fitted basis must be given for a {width}-unit layer: "
                "they define its PCA plane"
            )
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2).fit(pts)
        comps, mean = pca.components_.astype(np.float64), pca.mean_.astype(np.float64)
    plane_pts = None if pts is None else (pts - mean) @ comps.T
    if extent is not None:
        lo, hi = _box(extent, 2)
    elif plane_pts is not None:
        lo, hi = plane_pts.min(axis=0), plane_pts.max(axis=0)
        pad = (hi - lo) * margin
        pad[pad == 0] = 1.0
        lo, hi = lo - pad, hi + pad
    else:
        raise ParameterError("points or extent must be given: they set the part of the plane to draw")
    xs, ys = np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)
    xx, yy = np.meshgrid(xs, ys)
    grid = np.stack([xx.ravel(), yy.ravel()], axis=1)
    hidden = mean + grid @ comps
    values = forward_from(net, hidden, layer=layer, output=output)
    return PlaneField(
        layer=layer,
        grid=grid,
        grid_shape=(n, n),
        extent=(float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])),
        hidden=hidden,
        values=values.T.reshape(values.shape[1], n, n),
        level=0.0 if output == "logits" else 0.5,
        components=comps,
        mean=mean,
        points=plane_pts,
    )
