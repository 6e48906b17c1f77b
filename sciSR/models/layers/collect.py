"""Collect intermediate predictions (recursive supervision, pyramid levels) through ``forward``."""

from __future__ import annotations

import torch

from ..base import SRModel


def forward_collecting(model: SRModel, x: torch.Tensor) -> list[torch.Tensor]:
    """Run ``model(x)`` and return the predictions its ``forward_sr`` recorded.

    The model's ``forward_sr`` appends each intermediate prediction to ``model._collected``
    when that attribute is a list. Every recorded tensor gets the same output transform as the
    final output (see :meth:`SRModel.set_input_transform`), so all are in the caller's units.
    """
    model._collected = []
    try:
        model(x)
        outs = list(model._collected)
    finally:
        model._collected = None
    mean = model.input_mean
    if mean is not None or model.value_range != 1.0:
        outs = [
            (y / model.value_range) + (mean if mean is not None and y.shape[1] == mean.shape[1] else 0.0)
            for y in outs
        ]
    return outs


def record(model: SRModel, y: torch.Tensor) -> None:
    """Append ``y`` to the model's collection when one is open (no-op otherwise)."""
    if isinstance(getattr(model, "_collected", None), list):
        model._collected.append(y)
