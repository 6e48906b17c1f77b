"""Training: degradations, patch datasets, losses and a small trainer loop."""

from .degrade import degrade
from .trainer import TrainConfig, train

__all__ = ["TrainConfig", "degrade", "train"]
