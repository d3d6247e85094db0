"""Keras's callbacks by their Keras names (`keras.callbacks`), for `jaxcomponents.Model.fit` and `fit`.

Example:
  >>> from jaxcomponents import callbacks
  >>> stop = callbacks.EarlyStopping(monitor="val_loss", patience=3)
"""

from jaxcomponents.training.callbacks import (BackupAndRestore, Callback, CallbackList, CSVLogger, EarlyStopping,
                                             History, LambdaCallback, LearningCurves, LearningRateScheduler,
                                             ModelCheckpoint, ProgbarLogger, ReduceLROnPlateau, RemoteMonitor,
                                             SwapEMAWeights, TensorBoard, TerminateOnNaN)
from jaxcomponents.training.orbax_checkpoint import OrbaxCheckpoint

__all__ = [
    "BackupAndRestore", "CSVLogger", "Callback", "CallbackList", "EarlyStopping", "History", "LambdaCallback",
    "LearningCurves", "LearningRateScheduler", "ModelCheckpoint", "OrbaxCheckpoint", "ProgbarLogger",
    "ReduceLROnPlateau", "RemoteMonitor", "SwapEMAWeights", "TensorBoard", "TerminateOnNaN",
]
