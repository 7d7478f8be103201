"""The one training/evaluation loop (`Trainer`, `evaluate`) and the tasks it runs.

train, finetune, distill and pruning recovery all run a `Trainer`; what differs between them is the
task (how a batch becomes a loss) and the set-up around it, never the loop.
"""

from dlcli.engine.loop import (
    Callbacks,
    FitResult,
    LoopOptions,
    StopTraining,
    Trainer,
    evaluate,
    predict,
)
from dlcli.engine.state import TrainerState
from dlcli.engine.tasks import ClassificationTask, DistillationTask, Task

__all__ = [
    "Callbacks", "ClassificationTask", "DistillationTask", "FitResult", "LoopOptions", "StopTraining", "Task",
    "Trainer", "TrainerState", "evaluate", "predict",
]
