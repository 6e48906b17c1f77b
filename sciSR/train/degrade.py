"""Making LR inputs from HR data (DESIGN §4: block mean or antialiased bicubic, never torch nearest)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

DEGRADATIONS = ("bicubic", "area")


def degrade(hr: torch.Tensor, scale: int, method: str = "bicubic") -> torch.Tensor:
    """Downsample ``hr`` by ``scale`` on the cell-centred grid.

    ``"bicubic"`` is antialiased bicubic (the MATLAB ``imresize`` convention used by SR
    benchmarks); ``"area"`` is the block mean (conservative, for fluxes and fields where each
    coarse cell is the average of its sub-cells). Sizes must be multiples of ``scale``.

    Shape:
        ``(N, C, s·H, s·W) -> (N, C, H, W)``.
    """
    h, w = hr.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"HR size {h}×{w} is not a multiple of scale {scale}; crop it first")
    if method == "area":
        return F.avg_pool2d(hr, scale)
    if method == "bicubic":
        return F.interpolate(
            hr, size=(h // scale, w // scale), mode="bicubic", align_corners=False, antialias=True
        )
    raise ValueError(f"unknown degradation '{method}'; choose one of {DEGRADATIONS}")
