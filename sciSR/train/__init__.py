"""Training: ``sciSR.train(...)``, ``sciSR.finetune(...)``, degradations, patch samplers, losses, the loop.

The package is callable: ``sciSR.train("edsr_baseline", data="DIV2K/", scale=4)`` runs
:func:`sciSR.train.api.train`, while ``sciSR.train.degrade``, ``sciSR.train.fit`` and the other
names below stay reachable as attributes.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .api import finetune, train
from .degrade import degrade
from .trainer import TrainConfig, evaluate, fit

__all__ = ["TrainConfig", "degrade", "evaluate", "finetune", "fit", "train"]


class _CallableModule(types.ModuleType):
    """The ``sciSR.train`` module, callable as :func:`sciSR.train.api.train`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
