"""Contiguous storage for a network's parameters, gradients and optimizer state.

``train`` keeps every parameter, its gradient and each optimizer-state tensor
(momentum buffer, Adam's m and v) as views into one flat buffer, so a
recorder copies a whole epoch's weights, gradients and optimizer state with a
single tensor copy instead of one per parameter.  The values are bit-identical
to the usual per-tensor storage: the optimizers update the views in place.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .optim import state_keys

__all__ = ["FlatStorage"]


class FlatStorage:
    """Parameters, gradients and optimizer state as views into flat buffers.

    Parameters
    ----------
    params : list of (name, Parameter)
        Every parameter of a module, all on one device with one dtype.
    keys : sequence of str
        The optimizer's state keys (``models.optim.state_keys``): each gets a
        slot in ``whole``, NaN until the optimizer has made its state.

    Attributes
    ----------
    names : list of str
    keys : list of str
    offsets : list of int
        Start of each parameter in the flat buffers, then the total size.
    whole : Tensor of shape ((2 + n_keys) * n_scalars,)
        ``params``, ``grads``, then each key's state slot, one after the other.
    params : Tensor of shape (n_scalars,)
    grads : Tensor of shape (n_scalars,)
    states : dict of str to Tensor of shape (n_scalars,)
        Optimizer state by torch's key ('momentum_buffer', 'exp_avg', ...),
        present once the optimizer has created it (after its first step).
    """

    def __init__(self, params: list[tuple[str, nn.Parameter]], keys: Sequence[str] = ()) -> None:
        self.names = [n for n, _ in params]
        self.keys = list(keys)
        self._tensors = [p for _, p in params]
        sizes = [p.numel() for p in self._tensors]
        self.offsets = [0]
        for n in sizes:
            self.offsets.append(self.offsets[-1] + n)
        n = self.offsets[-1]
        like = self._tensors[0]
        with torch.no_grad():
            self.whole = like.new_full(((2 + len(self.keys)) * n,), float("nan"))
            self.params = self.whole[:n]
            torch.cat([p.detach().reshape(-1) for p in self._tensors], out=self.params)
            for p, view in zip(self._tensors, self._views(self.params)):
                p.data = view
            self.grads = self.whole[n : 2 * n]
            self.grads.zero_()
            for p, view in zip(self._tensors, self._views(self.grads)):
                p.grad = view
        self._slots = {key: self.whole[(2 + j) * n : (3 + j) * n] for j, key in enumerate(self.keys)}
        self.states: dict[str, torch.Tensor] = {}
        self._adopted = False

    @classmethod
    def possible(cls, module: nn.Module, optimizer: torch.optim.Optimizer) -> bool:
        """Whether ``module``'s parameters can share one buffer under ``optimizer``."""
        params = list(module.parameters())
        if not params or isinstance(optimizer, torch.optim.LBFGS) or any(optimizer.state.values()):
            return False
        owned = {id(p) for g in optimizer.param_groups for p in g["params"]}
        return (
            len({(p.device, p.dtype) for p in params}) == 1
            and all(p.requires_grad and p.grad is None and id(p) in owned for p in params)
            and len(owned) == len(params)
        )

    def _views(self, flat: torch.Tensor) -> list[torch.Tensor]:
        return [flat[a:b].view_as(p) for p, a, b in zip(self._tensors, self.offsets[:-1], self.offsets[1:])]

    def zero_grad(self) -> None:
        """Zero every gradient with one operation."""
        self.grads.zero_()

    def adopt_state(self, optimizer: torch.optim.Optimizer) -> None:
        """Move the optimizer's per-parameter state tensors into flat buffers (once it has made them)."""
        if self._adopted:
            return
        keys = state_keys(optimizer)
        per_param = [optimizer.state.get(p, {}) for p in self._tensors]
        if keys and not all(key in st for key in keys for st in per_param):
            return
        with torch.no_grad():
            for key in keys:
                flat = self._slots.get(key)
                if flat is None:  # a key not foreseen: a buffer of its own
                    flat = torch.cat([st[key].reshape(-1) for st in per_param])
                else:
                    torch.cat([st[key].reshape(-1) for st in per_param], out=flat)
                for st, view in zip(per_param, self._views(flat)):
                    st[key] = view
                self.states[key] = flat
        self._adopted = True
