"""Networks, losses, optimizers, the training loop and the recorder callback."""

from .batched import MemberSpec, train_batched
from .losses import LOSSES, Loss, accuracy, get_loss
from .networks import ACTIVATIONS, Dense, Network, NetworkConfig, Polar, build_network, count_parameters
from .optim import OPTIMIZERS, get_optimizer, optimizer_options
from .recorder import Recorder, Schedule, expected_recording_size, load_network
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
    "MemberSpec",
    "Network",
    "NetworkConfig",
    "Polar",
    "Recorder",
    "Schedule",
    "TrainResult",
    "TrainState",
    "accuracy",
    "build_network",
    "count_parameters",
    "expected_recording_size",
    "get_loss",
    "get_optimizer",
    "load_network",
    "optimizer_options",
    "train",
    "train_batched",
]
