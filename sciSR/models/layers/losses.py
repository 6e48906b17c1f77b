"""Losses that belong to an architecture's paper (the training package has the general ones)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def charbonnier_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Charbonnier penalty ``mean(sqrt((pred - target)^2 + eps^2))`` (LapSRN, Lai et al. 2017).

    A differentiable L1: robust to outliers, smooth at zero. ``eps=1e-3`` as in the paper.
    """
    return torch.sqrt((pred - target) ** 2 + eps * eps).mean()


def multiscale_charbonnier_loss(
    preds: Sequence[torch.Tensor], target: torch.Tensor, eps: float = 1e-3
) -> torch.Tensor:
    """LapSRN's multi-scale loss: Charbonnier at every pyramid level, summed.

    The target of a level with a smaller size than ``target`` is its block mean (``area``
    downsampling: each coarse cell is the mean of its sub-cells, DESIGN §4).

    Args:
        preds: Pyramid outputs, coarse to fine (e.g. ×2, ×4, ×8).
        target: HR target at the finest level's size.
        eps: Charbonnier epsilon.
    """
    total = target.new_zeros(())
    for p in preds:
        t = target if p.shape[-2:] == target.shape[-2:] else F.adaptive_avg_pool2d(target, p.shape[-2:])
        total = total + charbonnier_loss(p, t, eps)
    return total
