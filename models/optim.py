"""Optimizers by name, with validated hyperparameters; torch.optim underneath.

The lesson's momentum, delta_w <- alpha delta_w - eta dE/dw; w <- w + delta_w,
is exactly ``torch.optim.SGD(momentum=alpha)`` at a constant learning rate, and
its Adam (bias-corrected m and v) is ``torch.optim.Adam``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import torch

from data.errors import ParameterError, check_choice, check_keys, check_number

__all__ = ["get_optimizer", "OPTIMIZERS", "optimizer_options", "state_keys", "state_norms"]


class _Spec(NamedTuple):
    lr: float
    options: dict[str, tuple[Any, dict[str, Any]]]  # name -> (default, check_number kwargs)


_UNIT = {"low": 0, "high": 1, "high_open": True}
_POS = {"low": 0, "low_open": True}
_BETAS = {"beta1": (0.9, _UNIT), "beta2": (0.999, _UNIT), "eps": (1e-8, _POS)}

OPTIMIZERS: dict[str, _Spec] = {
    "sgd": _Spec(0.1, {}),
    "momentum": _Spec(0.1, {"momentum": (0.9, _UNIT)}),
    "nesterov": _Spec(0.1, {"momentum": (0.9, _UNIT)}),
    "adam": _Spec(0.001, dict(_BETAS)),
    "adamw": _Spec(0.001, {**_BETAS, "weight_decay": (0.01, {"low": 0})}),
    "rmsprop": _Spec(0.01, {"alpha": (0.99, _UNIT), "eps": (1e-8, _POS), "momentum": (0.0, _UNIT)}),
    "lbfgs": _Spec(
        1.0, {"history_size": (10, {"low": 1, "integer": True}), "max_iter": (20, {"low": 1, "integer": True})}
    ),
}


def optimizer_options(name: str, **options: Any) -> dict[str, Any]:
    """The full, validated hyperparameters of optimizer ``name`` (defaults filled in).

    Parameters
    ----------
    name : str
        One of ``OPTIMIZERS``: 'sgd', 'momentum', 'nesterov', 'adam', 'adamw',
        'rmsprop', 'lbfgs'.
    **options
        ``lr`` and the optimizer's own hyperparameters (``momentum`` for
        momentum/nesterov; ``beta1``, ``beta2``, ``eps`` for adam/adamw, plus
        ``weight_decay`` for adamw; ``alpha``, ``eps``, ``momentum`` for rmsprop;
        ``history_size``, ``max_iter`` for lbfgs).

    Returns
    -------
    dict
        ``{'lr': ..., <hyperparameter>: ...}``.
    """
    check_choice("optimizer", name, OPTIMIZERS)
    spec = OPTIMIZERS[name]
    check_keys(f"optimizer {name!r}", options, ["lr", *spec.options])
    lr = options.get("lr")
    out: dict[str, Any] = {"lr": spec.lr if lr is None else float(check_number("lr", lr, **_POS))}
    for key, (default, rule) in spec.options.items():
        value = options.get(key, default)
        if rule.get("integer") and isinstance(value, float) and value.is_integer():
            value = int(value)
        out[key] = check_number(key, value, **rule)
    return out


def get_optimizer(name: str, params: Iterable[torch.nn.Parameter], **options: Any) -> torch.optim.Optimizer:
    """Build a torch optimizer by name.

    Parameters
    ----------
    name : str
        See :func:`optimizer_options`.
    params : iterable of Parameter
        Usually ``network.parameters()``.
    **options
        ``lr`` and hyperparameters; see :func:`optimizer_options`.

    Returns
    -------
    torch.optim.Optimizer
    """
    o = optimizer_options(name, **options)
    params = list(params)
    if not params:
        raise ParameterError("params must hold at least one parameter; got none")
    lr = o["lr"]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name in ("momentum", "nesterov"):
        return torch.optim.SGD(params, lr=lr, momentum=o["momentum"], nesterov=name == "nesterov")
    if name in ("adam", "adamw"):
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        extra = {"weight_decay": o["weight_decay"]} if name == "adamw" else {}
        return cls(params, lr=lr, betas=(o["beta1"], o["beta2"]), eps=o["eps"], **extra)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=o["alpha"], eps=o["eps"], momentum=o["momentum"])
    return torch.optim.LBFGS(
        params, lr=lr, history_size=o["history_size"], max_iter=o["max_iter"], line_search_fn="strong_wolfe"
    )


#: optimizer state entries summarised by their norm, and the name they are recorded under
STATE_KEYS = {"momentum_buffer": "momentum", "exp_avg": "adam_m", "exp_avg_sq": "adam_v", "square_avg": "rmsprop_v"}


def state_keys(optimizer: torch.optim.Optimizer) -> list[str]:
    """The optimizer-state entries that ``optimizer`` keeps (keys of ``STATE_KEYS``)."""
    group = optimizer.param_groups[0] if optimizer.param_groups else {}
    if isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
        return ["exp_avg", "exp_avg_sq"]
    if isinstance(optimizer, torch.optim.RMSprop):
        return ["square_avg"] + (["momentum_buffer"] if group.get("momentum") else [])
    if isinstance(optimizer, torch.optim.SGD) and group.get("momentum"):
        return ["momentum_buffer"]
    return []


def state_norms(optimizer: torch.optim.Optimizer, params: Iterable[torch.nn.Parameter]) -> dict[str, list[float]]:
    """L2 norms of the optimizer's per-parameter state (momentum buffer, Adam's m and v).

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
    params : iterable of Parameter
        The parameters, in the order wanted.

    Returns
    -------
    dict
        Recorded name ('momentum', 'adam_m', 'adam_v', 'rmsprop_v') to a list of
        norms, one per parameter; NaN where that parameter has no state yet
        (before the first step).  The keys depend only on the optimizer's type.
    """
    params = list(params)
    out: dict[str, list[float]] = {}
    for key in state_keys(optimizer):
        values = []
        for p in params:
            buf = optimizer.state.get(p, {}).get(key)
            values.append(float(torch.linalg.vector_norm(buf)) if isinstance(buf, torch.Tensor) else float("nan"))
        out[STATE_KEYS[key]] = values
    return out
