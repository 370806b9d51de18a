"""Networks built from a dataclass config, with stable layer names.

Hidden layers are named ``hidden1``, ``hidden2``, ... and the last layer
``output``; these names are the keys of a recording.  Each hidden layer is a
:class:`Dense` module (``linear`` then ``act``), so a forward hook on
``hiddenK`` sees the post-activation output and one on ``hiddenK.linear`` the
pre-activation.  The network returns the output layer's pre-activations
(logits); the output non-linearity belongs to the loss.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.modules.module import _global_forward_hooks, _global_forward_pre_hooks

from data.errors import ParameterError, check_choice, check_keys, check_number

__all__ = ["NetworkConfig", "Network", "Dense", "Polar", "build_network", "ACTIVATIONS", "ARCHITECTURES"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "relu": nn.ReLU,
    "linear": nn.Identity,
}
#: each activation applied in place (where it has such a form), for passes without autograd
_IN_PLACE = {nn.Tanh: torch.tanh_, nn.Sigmoid: torch.sigmoid_, nn.ReLU: torch.relu_}
ARCHITECTURES = ("mlp", "polar")


@dataclass(frozen=True)
class NetworkConfig:
    """What a network is: sizes, activations, architecture and initialisation.

    Parameters
    ----------
    n_inputs, n_outputs : int
        Input and output sizes.
    hidden : sequence of int
        Units in each hidden layer, first to last; may be empty (a linear model).
    activation : str or sequence of str
        Hidden-layer activation, one of 'tanh', 'sigmoid', 'relu', 'linear', for
        every layer or one per layer.
    architecture : {'mlp', 'polar'}
        'polar' is the course's PolarNet: the inputs (x, y) first become
        (r, atan2(y, x)) in a layer named ``polar``; needs ``n_inputs == 2``.
    init : float or None
        Standard deviation of the course's ``normal(0, init)`` initialisation
        of every weight and bias; None keeps PyTorch's default.
    shortcut : bool
        Shortcut connections: every layer also receives the inputs and the
        outputs of all earlier hidden layers.
    """

    n_inputs: int
    n_outputs: int
    hidden: tuple[int, ...] = (10,)
    activation: str | tuple[str, ...] = "tanh"
    architecture: str = "mlp"
    init: float | None = None
    shortcut: bool = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        check_number("n_inputs", self.n_inputs, low=1, integer=True)
        check_number("n_outputs", self.n_outputs, low=1, integer=True)
        if isinstance(self.hidden, (int, float)) or isinstance(self.hidden, str):
            raise ParameterError(f"hidden must be a list of layer sizes, e.g. [10, 10]; got {self.hidden!r}")
        hidden = tuple(self.hidden)
        for k, h in enumerate(hidden):
            check_number(f"hidden[{k}]", h, low=1, integer=True)
        set_(self, "hidden", hidden)
        acts = (self.activation,) * len(hidden) if isinstance(self.activation, str) else tuple(self.activation)
        if len(acts) != len(hidden):
            raise ParameterError(
                f"activation must be one name or one per hidden layer ({len(hidden)}); got {list(acts)!r}"
            )
        for k, a in enumerate(acts):
            check_choice(f"activation[{k}]" if not isinstance(self.activation, str) else "activation", a, ACTIVATIONS)
        set_(self, "activation", self.activation if isinstance(self.activation, str) else acts)
        check_choice("architecture", self.architecture, ARCHITECTURES)
        if self.architecture == "polar" and self.n_inputs != 2:
            raise ParameterError(f"architecture 'polar' needs n_inputs == 2; got n_inputs={self.n_inputs}")
        if self.init is not None:
            set_(self, "init", float(check_number("init", self.init, low=0, low_open=True)))
        if not isinstance(self.shortcut, bool):
            raise ParameterError(f"shortcut must be true or false; got {self.shortcut!r}")

    @property
    def activations(self) -> tuple[str, ...]:
        """The activation of each hidden layer."""
        a = self.activation
        return (a,) * len(self.hidden) if isinstance(a, str) else tuple(a)

    @property
    def layer_names(self) -> list[str]:
        """Names of the recordable layers: the hidden layers, then ``output``."""
        return [f"hidden{k + 1}" for k in range(len(self.hidden))] + ["output"]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; ``NetworkConfig.from_dict`` inverts it."""
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        d["activation"] = self.activation if isinstance(self.activation, str) else list(self.activation)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NetworkConfig:
        """Build a config from :meth:`to_dict`'s output (unknown keys are an error)."""
        check_keys("network", d, [f.name for f in dataclasses.fields(cls)])
        d = dict(d)
        if isinstance(d.get("activation"), list):
            d["activation"] = tuple(d["activation"])
        if "hidden" in d and isinstance(d["hidden"], list):
            d["hidden"] = tuple(d["hidden"])
        return cls(**d)


class Dense(nn.Module):
    """A hidden layer: ``act(linear(x))``."""

    def __init__(self, n_in: int, n_out: int, activation: str) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        self.act = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.linear(x)
        # Without autograd, and with no hook seeing the pre-activation, the activation overwrites it: the
        # same values without a second layer-sized tensor (a 10,000-sample probe pass of 784-256-128-10: ~37 -> ~32 ms)
        in_place = _IN_PLACE.get(type(self.act))
        if in_place is not None and not torch.is_grad_enabled() and not self._hooked():
            return in_place(pre)
        return self.act(pre)

    def _hooked(self) -> bool:
        """Whether a forward hook may hold the pre-activation (on the linear map, the activation, or all modules)."""
        return bool(
            self.linear._forward_hooks
            or self.act._forward_hooks
            or self.act._forward_pre_hooks
            or _global_forward_hooks
            or _global_forward_pre_hooks
        )


class Polar(nn.Module):
    """(x, y) -> (r, atan2(y, x)): the first stage of the course's PolarNet."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = torch.sqrt(x[:, 0] ** 2 + x[:, 1] ** 2)
        a = torch.atan2(x[:, 1], x[:, 0])
        return torch.stack([r, a], dim=1)


class Network(nn.Module):
    """A feed-forward network built from a :class:`NetworkConfig`.

    ``forward(x)`` maps inputs of shape (n_samples, n_inputs) to output-layer
    pre-activations of shape (n_samples, n_outputs).

    Attributes
    ----------
    tap : dict or None
        When a dict, each forward pass stores every hidden layer's output and
        the logits in it under their layer names (``hidden1``, ..., ``output``),
        as forward hooks would, at a fraction of their cost: the recorder uses
        it for hud's own networks and hooks for any other module.
    """

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        if config.architecture == "polar":
            self.polar = Polar()
        width = config.n_inputs
        total = width
        for k, (h, act) in enumerate(zip(config.hidden, config.activations)):
            self.add_module(f"hidden{k + 1}", Dense(total if config.shortcut else width, h, act))
            width = h
            total += h
        self.output = nn.Linear(total if config.shortcut else width, config.n_outputs)
        self._names = tuple(f"hidden{k + 1}" for k in range(len(config.hidden)))
        self.tap: dict[str, torch.Tensor] | None = None

    @property
    def hidden_layers(self) -> list[str]:
        """Names of the hidden layers, first to last."""
        return list(self._names)

    @property
    def layer_names(self) -> list[str]:
        """The hidden layers, then ``output``."""
        return self.config.layer_names

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tap, shortcut = self.tap, self.config.shortcut
        if self.config.architecture == "polar":
            x = self.polar(x)
        seen = [x]
        for name in self._names:
            x = getattr(self, name)(torch.cat(seen, dim=1) if shortcut else x)
            if tap is not None:
                tap[name] = x
            if shortcut:
                seen.append(x)
        out = self.output(torch.cat(seen, dim=1) if shortcut else x)
        if tap is not None:
            tap["output"] = out
        return out


def build_network(config: NetworkConfig | Mapping[str, Any], *, seed: int | None = 0) -> Network:
    """Build a network, its initial weights a deterministic function of ``seed``.

    Parameters
    ----------
    config : NetworkConfig or dict
    seed : int or None
        Seed of the initial weights, independent of the global RNG and of any
        data or shuffling seed: two builds with the same config and seed have
        bit-identical weights.  None draws from the global RNG.

    Returns
    -------
    Network
    """
    if not isinstance(config, NetworkConfig):
        if not isinstance(config, Mapping):
            raise ParameterError(f"config must be a NetworkConfig or a dict; got {type(config).__name__}")
        config = NetworkConfig.from_dict(config)
    if seed is None:
        return _init(Network(config), config, None)
    check_number("seed", seed, low=0, integer=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = Network(config)
        gen = torch.Generator().manual_seed(seed)
        return _init(net, config, gen)


def _init(net: Network, config: NetworkConfig, gen: torch.Generator | None) -> Network:
    if config.init is not None:
        with torch.no_grad():
            for p in net.parameters():
                p.normal_(0.0, config.init, generator=gen)
    return net


def count_parameters(net: nn.Module) -> int:
    """Number of trainable scalars in ``net``."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
