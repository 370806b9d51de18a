"""Networks, losses, optimizers, the training loop and the recorder callback."""

from .losses import LOSSES, Loss, accuracy, get_loss
from .networks import ACTIVATIONS, Dense, Network, NetworkConfig, Polar, build_network, count_parameters
from .optim import OPTIMIZERS, get_optimizer, optimizer_options
from .training import METRICS, STATUSES, Callback, TrainResult, TrainState, train

__all__ = [
    "ACTIVATIONS",
    "LOSSES",
    "METRICS",
    "OPTIMIZERS",
    "STATUSES",
    "Callback",
    "Dense",
    "Loss",
    "Network",
    "NetworkConfig",
    "Polar",
    "TrainResult",
    "TrainState",
    "accuracy",
    "build_network",
    "count_parameters",
    "get_loss",
    "get_optimizer",
    "optimizer_options",
    "train",
]
