"""Training: Keras's `Model` API, jit-compiled Optax steps, the `fit` loop, callbacks, checkpoints, many devices."""

from jaxcomponents.training.callbacks import (BackupAndRestore, Callback, CallbackList, CSVLogger, EarlyStopping,
                                             History, LambdaCallback, LearningCurves, LearningRateScheduler,
                                             ModelCheckpoint, ProgbarLogger, ReduceLROnPlateau, TensorBoard,
                                             TerminateOnNaN)
from jaxcomponents.training.checkpoint import CheckpointError, Checkpointer
from jaxcomponents.training.folder_lock import FolderInUseError
from jaxcomponents.training.freeze import freeze, label_params, partition
from jaxcomponents.training.loop import NonFiniteLossError, evaluate, fit
from jaxcomponents.training.model import Model, load_model
from jaxcomponents.training.parallel import data_mesh, initialize_distributed, replicate, shard_batch
from jaxcomponents.training.predict import predict
from jaxcomponents.training.state import TrainState
from jaxcomponents.training.step import Step, make_eval_step, make_train_step

__all__ = [
    "BackupAndRestore", "CSVLogger", "Callback", "CallbackList", "CheckpointError", "Checkpointer", "EarlyStopping",
    "FolderInUseError", "History", "LambdaCallback", "LearningCurves", "LearningRateScheduler", "Model", "ModelCheckpoint",
    "NonFiniteLossError", "ProgbarLogger", "ReduceLROnPlateau", "Step", "TensorBoard", "TerminateOnNaN", "TrainState",
    "data_mesh", "evaluate", "fit", "freeze", "initialize_distributed", "label_params", "load_model", "make_eval_step",
    "make_train_step", "partition", "predict", "replicate", "shard_batch",
]
