"""Optimizers, learning-rate schedules, gradient clipping and resumable state.

Works with any dict of name -> Tensor (such as ``Module.parameters``); it never imports ``autograd.nn``.
"""

from autograd.optim.adam import Adam
from autograd.optim.loss_scaler import LossScaler
from autograd.optim.optimizer import Optimizer, OptimizerStateError
from autograd.optim.schedulers import CosineScheduler, LRScheduler
from autograd.optim.sgd import SGD

__all__ = ["Optimizer", "OptimizerStateError", "SGD", "Adam", "LRScheduler", "CosineScheduler", "LossScaler"]
