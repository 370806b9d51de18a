"""Tasks (inputs, targets, probe set, input-plane grid), errors, and recordings."""

from ._version import __version__
from .errors import FormatVersionError, HudError, NotRecordedError, ParameterError, RecordingError
from .recording import Recording, open_recording
from .tasks import TASK_KINDS, Probe, Task, load_task, task_names

__all__ = [
    "__version__",
    "TASK_KINDS",
    "FormatVersionError",
    "HudError",
    "NotRecordedError",
    "ParameterError",
    "RecordingError",
    "Probe",
    "Recording",
    "Task",
    "load_task",
    "open_recording",
    "task_names",
]
