"""Training: state, pure steps, data parallelism, optimisers.

Every piece is a public function you can use in your own loop; ``jdl.fit`` is sugar
over them.
"""

from jdl.train import callbacks
from jdl.train.callbacks import Checkpoint
from jdl.train.checkpoint import CheckpointMismatchError, latest_step, restore_state, save_state
from jdl.train.history import History, metric_mode
from jdl.train.loop import evaluate, fit
from jdl.train.optim import (
    OPTIMIZERS,
    SCHEDULES,
    as_optimizer,
    learning_rate,
    make_schedule,
    optimizer,
)
from jdl.train.parallel import STRATEGIES, ParallelStep, data_mesh, default_strategy, parallelize
from jdl.train.runner import default_metrics
from jdl.train.state import TrainState, create_state, model_input, state_from_variables
from jdl.train.step import MASK_KEY, bind_axis_name, eval_step, train_step
from jdl.train.sweeps import SweepResult, sweep

__all__ = [
    "Checkpoint",
    "CheckpointMismatchError",
    "History",
    "callbacks",
    "default_metrics",
    "evaluate",
    "fit",
    "latest_step",
    "restore_state",
    "save_state",
    "MASK_KEY",
    "OPTIMIZERS",
    "SCHEDULES",
    "STRATEGIES",
    "SweepResult",
    "ParallelStep",
    "TrainState",
    "as_optimizer",
    "bind_axis_name",
    "create_state",
    "data_mesh",
    "default_strategy",
    "eval_step",
    "learning_rate",
    "make_schedule",
    "metric_mode",
    "model_input",
    "optimizer",
    "parallelize",
    "state_from_variables",
    "sweep",
    "train_step",
]
