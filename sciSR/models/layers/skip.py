"""Global (input → output) skip connections when input and output channel counts differ."""

from __future__ import annotations

import torch


def check_skip_channels(name: str, in_channels: int, out_channels: int) -> None:
    """Raise unless a global skip from ``in_channels`` to ``out_channels`` is defined.

    Defined: equal counts, one input channel (broadcast to every output) or one output channel
    (the mean of the inputs).
    """
    if in_channels != out_channels and 1 not in (in_channels, out_channels):
        raise ValueError(
            f"{name} adds its (interpolated) input to its output: out_channels ({out_channels}) must "
            f"equal in_channels ({in_channels}), or one of them must be 1"
        )


def skip(x: torch.Tensor, out_channels: int) -> torch.Tensor:
    """The input as a residual base with ``out_channels`` channels (see :func:`check_skip_channels`)."""
    if x.shape[1] == out_channels or x.shape[1] == 1:
        return x
    return x.mean(dim=1, keepdim=True)
