"""Training: jit-compiled Optax steps, the `fit` loop, checkpoints, many devices."""

from jaxcomponents.training.callbacks import (Callback, CSVLogger, EarlyStopping, History, LearningCurves,
                                             ReduceLROnPlateau, TensorBoard)
from jaxcomponents.training.checkpoint import CheckpointError, Checkpointer
from jaxcomponents.training.freeze import freeze, label_params, partition
from jaxcomponents.training.loop import NonFiniteLossError, evaluate, fit
from jaxcomponents.training.parallel import data_mesh, initialize_distributed, replicate, shard_batch
from jaxcomponents.training.predict import predict
from jaxcomponents.training.state import TrainState
from jaxcomponents.training.step import Step, make_eval_step, make_train_step

__all__ = [
    "CSVLogger", "Callback", "CheckpointError", "Checkpointer", "EarlyStopping", "History", "LearningCurves",
    "NonFiniteLossError", "ReduceLROnPlateau", "Step", "TensorBoard", "TrainState", "data_mesh", "evaluate", "fit",
    "freeze", "initialize_distributed", "label_params", "make_eval_step", "make_train_step", "partition", "predict",
    "replicate", "shard_batch",
]
