"""Weight initialisations that belong to an architecture's paper or official code."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def scaled_kaiming_init(modules: list[nn.Module], scale: float = 0.1) -> None:
    """Kaiming-normal weights (fan-in, ReLU gain) times ``scale`` and zero biases for every conv.

    The "smaller initialization" of ESRGAN (Wang et al. 2018) as the official code and BasicSR
    implement it (``default_init_weights(..., scale=0.1)``): residual branches start close to
    zero, which the paper reports makes very deep residual networks easier to train.

    Args:
        modules: Modules whose ``Conv2d`` sub-modules (themselves included) are initialised.
        scale: Factor applied to the Kaiming-normal weights.
    """
    for module in modules:
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
                m.weight.mul_(scale)
                if m.bias is not None:
                    m.bias.zero_()
