"""Training: state, pure steps, data parallelism, optimisers.

Every piece is a public function you can use in your own loop; ``jdl.fit`` is sugar
over them.
"""

from jdl.train import callbacks

# EMA and ReduceLROnPlateau are also reachable here, documented once, in jdl.train.callbacks.
from jdl.train.callbacks import EMA as EMA
from jdl.train.callbacks import BestCheckpoint, Checkpoint
from jdl.train.callbacks import ReduceLROnPlateau as ReduceLROnPlateau
from jdl.train.checkpoint import (
    CheckpointCorruptError,
    CheckpointMismatchError,
    latest_step,
    restore_state,
    save_state,
)
from jdl.train.compile_cache import compile_cache_dir, enable_compile_cache
from jdl.train.debug import NonFiniteError
from jdl.train.ema import averaged_params, ema_params
from jdl.train.evaluation import evaluate
from jdl.train.export import ModelFileError, load_model, read_model_info, save_model
from jdl.train.history import History, metric_mode
from jdl.train.loop import fit
from jdl.train.optim import (
    OPTIMIZERS,
    SCHEDULES,
    as_optimizer,
    learning_rate,
    make_schedule,
    optimizer,
)
from jdl.train.parallel import STRATEGIES, ParallelStep, data_mesh, default_strategy, parallelize
from jdl.train.precision import PRECISIONS, LossScaleState, dynamic_loss_scale
from jdl.train.prediction import predict
from jdl.train.results import SweepResult
from jdl.train.resume import ResumeMismatchError
from jdl.train.runner import default_metrics
from jdl.train.search import search
from jdl.train.sharding import (
    FSDP_MIN_SIZE,
    fsdp_mesh,
    fsdp_spec,
    per_device_bytes,
    shard_state,
    state_shardings,
)
from jdl.train.state import (
    MODEL_INPUTS,
    TrainState,
    create_state,
    model_input,
    model_kwargs,
    state_from_variables,
)
from jdl.train.step import MASK_KEY, bind_axis_name, eval_step, train_step
from jdl.train.sweeps import sweep

__all__ = [
    "BestCheckpoint",
    "Checkpoint",
    "averaged_params",
    "ema_params",
    "CheckpointCorruptError",
    "CheckpointMismatchError",
    "ResumeMismatchError",
    "History",
    "NonFiniteError",
    "callbacks",
    "compile_cache_dir",
    "default_metrics",
    "enable_compile_cache",
    "evaluate",
    "fit",
    "PRECISIONS",
    "LossScaleState",
    "dynamic_loss_scale",
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
    "FSDP_MIN_SIZE",
    "fsdp_mesh",
    "fsdp_spec",
    "per_device_bytes",
    "shard_state",
    "state_shardings",
    "eval_step",
    "learning_rate",
    "make_schedule",
    "metric_mode",
    "MODEL_INPUTS",
    "model_input",
    "model_kwargs",
    "optimizer",
    "parallelize",
    "predict",
    "save_model",
    "load_model",
    "read_model_info",
    "ModelFileError",
    "state_from_variables",
    "search",
    "sweep",
    "train_step",
]
