"""The one training/evaluation loop (`fit`, `evaluate`) and the tasks it runs.

train, finetune, distill and pruning recovery all call `fit`; what differs between them is the task
(how a batch becomes a loss) and the set-up around it, never the loop.
"""

from dlcli.engine.loop import EpochCallback, FitResult, evaluate, fit, predict
from dlcli.engine.tasks import ClassificationTask, DistillationTask, Task

__all__ = [
    "ClassificationTask", "DistillationTask", "EpochCallback", "FitResult", "Task", "evaluate", "fit",
    "predict",
]
