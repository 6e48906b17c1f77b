"""Interpolation baselines on the cell-centred grid (``align_corners=False``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import SRModel
from .registry import register_model


class Interpolation(SRModel):
    """Parameter-free upsampling by ``torch.nn.functional.interpolate``.

    ``nearest`` replicates each cell into s×s sub-cells (``nearest-exact`` sampling, which is
    exact for integer scales); ``bilinear``/``bicubic`` use ``align_corners=False`` so sub-cell
    centres lie at ``c + (k - (s-1)/2)·d/s`` of the original grid. Bicubic is not clamped.

    Shape:
        ``(N, C, H, W) -> (N, C, H*scale, W*scale)``.
    """

    upsampling = "none"
    paper = "Keys 1981 (cubic convolution, a = -0.75 as in PyTorch)"

    def __init__(self, mode: str, scale: int, in_channels: int = 1, out_channels: int | None = None) -> None:
        super().__init__(scale, in_channels, in_channels)
        if out_channels not in (None, in_channels):
            raise ValueError(f"{mode} interpolation keeps the channel count ({in_channels})")
        self.mode = mode
        self.registry_name = mode
        self.config = {"mode": mode}

    def receptive_field(self) -> int:
        return {"nearest": 0, "bilinear": 1, "bicubic": 2}[self.mode]

    def forward_sr(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 1:
            return x
        if self.mode == "nearest":
            return F.interpolate(x, scale_factor=self.scale, mode="nearest-exact")
        return F.interpolate(x, scale_factor=self.scale, mode=self.mode, align_corners=False)


def _builder(mode: str):
    def build(scale: int = 4, in_channels: int = 1, out_channels: int | None = None) -> Interpolation:
        return Interpolation(mode, scale, in_channels, out_channels)

    build.__doc__ = f"{mode.capitalize()} interpolation baseline (any integer scale, no weights)."
    return build


for _mode in ("nearest", "bilinear", "bicubic"):
    register_model(_mode, paper="interpolation baseline", trainable=False)(_builder(_mode))
