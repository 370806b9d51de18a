"""The lesson's loss functions, with an optional weight-decay penalty.

Every loss takes the output layer's pre-activations ``s`` (logits) and the
targets ``t``, applies its own output non-linearity ``z = f(s)``, sums over
output units and averages over samples:

- ``sse``: E = 1/2 sum_i (t_i - z_i)^2, with sigmoid outputs (``output='sigmoid'``,
  the default) or linear ones (``output='linear'``, for regression);
- ``bce``: E = sum_i -t_i log z_i - (1 - t_i) log(1 - z_i), sigmoid outputs,
  computed as BCE-with-logits so that dE/ds = z - t exactly and stably;
- ``softmax``: E = -sum_i t_i log softmax(s)_i (log-softmax + negative log
  likelihood), so dE/ds = softmax(s) - t.

The weight-decay penalty (lambda/2) sum_j w_j^2 is separate from the data term
(the MAP view of the lesson); its gradient is lambda * w.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from data.errors import ParameterError, check_choice, check_number

__all__ = ["Loss", "get_loss", "LOSSES", "accuracy"]

LOSSES = ("sse", "bce", "softmax")
_OUTPUTS = {"sse": ("sigmoid", "linear"), "bce": ("sigmoid",), "softmax": ("softmax",)}


@dataclass(frozen=True)
class Loss:
    """A loss: its data term, its output non-linearity and its weight-decay penalty.

    Build one with :func:`get_loss`.  Calling it returns data term + penalty.
    """

    name: str
    weight_decay: float = 0.0
    output: str = "sigmoid"
    decay_biases: bool = False

    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        """The network's output z = f(s).

        Parameters
        ----------
        logits : Tensor of shape (..., n_outputs)
            E.g. (n_samples, n_outputs), or (n_epochs, n_samples, n_outputs) for a recorder's block.
        """
        if self.output == "sigmoid":
            return torch.sigmoid(logits)
        if self.output == "softmax":
            return torch.softmax(logits, dim=-1)
        return logits

    def activation_numpy(self, logits: np.ndarray) -> np.ndarray:
        """:meth:`activation` in numpy (to within a float32 rounding), for a recorder's writer thread.

        A torch operation there would start an OpenMP team of its own beside training's: with
        torch using every core, that slowed training down by a fifth.

        Parameters
        ----------
        logits : ndarray of shape (..., n_outputs)

        Returns
        -------
        ndarray of logits' shape and dtype (a new array)
        """
        x = np.asarray(logits)
        if self.output == "sigmoid":
            e = np.exp(-np.abs(x))  # never overflows
            return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        if self.output == "softmax":
            e = np.exp(x - x.max(axis=-1, keepdims=True))
            return (e / e.sum(axis=-1, keepdims=True)).astype(x.dtype, copy=False)
        return x.copy()

    def data_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The data term: summed over output units, averaged over samples.

        Parameters
        ----------
        logits : Tensor of shape (n_samples, n_outputs)
        targets : Tensor of shape (n_samples, n_outputs)
            For 'softmax' also accepted: class indices of shape (n_samples,).

        Returns
        -------
        Tensor of shape ()
        """
        n = max(logits.shape[0], 1)
        if self.name == "softmax":
            logp = F.log_softmax(logits, dim=-1)
            if targets.dim() == 1:
                return F.nll_loss(logp, targets.long(), reduction="sum") / n
            return -(targets * logp).sum() / n
        if self.name == "bce":
            return F.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / n
        z = self.activation(logits)
        return 0.5 * ((targets - z) ** 2).sum() / n

    def decayed(self, params: nn.Module | Iterable[tuple[str, torch.Tensor]]) -> list[torch.Tensor]:
        """The parameters the penalty applies to: weights (tensors with 2+ dims), and biases if asked."""
        named = params.named_parameters() if isinstance(params, nn.Module) else params
        return [p for _, p in named if p.requires_grad and (self.decay_biases or p.dim() >= 2)]

    def penalty(self, params: nn.Module | Iterable[tuple[str, torch.Tensor]]) -> torch.Tensor:
        """(lambda/2) sum_j w_j^2 over the decayed parameters; 0 when weight_decay is 0.

        Parameters
        ----------
        params : nn.Module or iterable of (name, Tensor)
        """
        if not self.weight_decay:
            return torch.zeros(())
        return 0.5 * self.weight_decay * sum((p * p).sum() for p in self.decayed(params))

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, *, model: nn.Module | None = None) -> torch.Tensor:
        """Data term plus, when ``model`` is given, the weight-decay penalty."""
        loss = self.data_loss(logits, targets)
        if model is not None and self.weight_decay:
            loss = loss + self.penalty(model)
        return loss

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "weight_decay": self.weight_decay,
            "output": self.output,
            "decay_biases": self.decay_biases,
        }


def get_loss(name: str, *, weight_decay: float = 0.0, output: str | None = None, decay_biases: bool = False) -> Loss:
    """Return a loss by name.

    Parameters
    ----------
    name : {'sse', 'bce', 'softmax'}
    weight_decay : float
        lambda of the penalty (lambda/2) sum_j w_j^2, >= 0.
    output : str, optional
        The output non-linearity; only 'sse' has a choice ('sigmoid', the
        default, or 'linear').
    decay_biases : bool
        Whether biases are decayed too (default: weights only, as in the lesson).

    Returns
    -------
    Loss
    """
    check_choice("loss", name, LOSSES)
    weight_decay = float(check_number("weight_decay", weight_decay, low=0))
    allowed = _OUTPUTS[name]
    output = allowed[0] if output is None else check_choice(f"output (for loss {name!r})", output, allowed)
    return Loss(name=name, weight_decay=weight_decay, output=output, decay_biases=bool(decay_biases))


def accuracy(outputs: np.ndarray | torch.Tensor, targets: np.ndarray | torch.Tensor, kind: str) -> float:
    """Fraction of samples classified correctly.

    Parameters
    ----------
    outputs : array of shape (n_samples, n_outputs)
        Network outputs z after the output non-linearity.
    targets : array of shape (n_samples, n_outputs)
    kind : {'binary', 'multiclass', 'multilabel', 'regression'}
        binary and multilabel: every output on the target's side of 0.5;
        multiclass: the largest output is the target class; regression: NaN.

    Returns
    -------
    float
    """
    check_choice("kind", kind, ("binary", "multiclass", "multilabel", "regression"))
    if kind == "regression":
        return float("nan")
    z = torch.as_tensor(outputs)
    t = torch.as_tensor(targets)
    if kind == "multiclass":
        if t.dim() == 1:
            return (z.argmax(-1) == t).float().mean().item()
        return (z.argmax(-1) == t.argmax(-1)).float().mean().item()
    if z.shape != t.shape:
        raise ParameterError(f"outputs and targets must have the same shape; got {tuple(z.shape)} and {tuple(t.shape)}")
    return ((z > 0.5) == (t > 0.5)).all(dim=-1).float().mean().item()
