"""VDSR (Kim, Lee & Lee, CVPR 2016): very deep residual network on the bicubic-upsampled input."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

import torch
from torch import nn

from ..resize import check_upsampler
from .base import SRModel
from .layers.deconv import lr_cells
from .layers.skip import check_skip_channels, skip
from .registry import register_model

VDSR_PAPER = "Kim et al., Accurate Image Super-Resolution Using Very Deep Convolutional Networks, CVPR 2016"


def clip_gradients(parameters: nn.Module | Iterable[torch.Tensor], theta: float, lr: float) -> float:
    """VDSR's adjustable gradient clipping: clamp every gradient element to ``[-θ/γ, θ/γ]``.

    With the learning rate ``γ`` large at the start of training (0.1 in the paper, divided by 10
    every 20 epochs) the bound is tight, and it loosens as ``γ`` decays, so the effective step
    ``γ·g`` stays within ``θ``. Call it between ``loss.backward()`` and ``optimizer.step()`` with
    the optimizer's current learning rate. The paper does not publish ``θ``; sciSR's default
    (:attr:`VDSR.clip_theta`) is 0.01.

    Args:
        parameters: A module or an iterable of parameters.
        theta: The clipping constant ``θ`` (> 0).
        lr: The current learning rate ``γ`` (> 0).

    Returns:
        The bound ``θ/γ`` that was applied.
    """
    if theta <= 0 or lr <= 0:
        raise ValueError(f"theta and lr must be > 0, got theta={theta}, lr={lr}")
    params = parameters.parameters() if isinstance(parameters, nn.Module) else parameters
    bound = float(theta) / float(lr)
    for p in params:
        if p.grad is not None:
            p.grad.clamp_(-bound, bound)
    return bound


class VDSR(SRModel):
    """``depth`` 3×3 convolutions (ReLU between), predicting the residual to the bicubic input.

    Paper defaults: 20 layers, 64 filters, zero padding to keep the size, He initialisation,
    SGD (momentum 0.9, weight decay 1e-4, lr 0.1 ÷10 every 20 epochs) with adjustable gradient
    clipping (:func:`clip_gradients`, or :meth:`clip_gradients` on the instance). Any integer
    scale (one network serves several scales in the paper). The paper's input is the MATLAB
    bicubic-interpolated image: ``upsampler="matlab"`` reproduces it (needed to run the original
    weights); the default is torch bicubic (see :mod:`sciSR.resize`).

    Shape:
        ``(N, C, H, W) -> (N, C_out, H*scale, W*scale)``; the global residual needs
        ``C_out == C`` or one of them 1 (see :mod:`sciSR.models.layers.skip`).
    """

    name = "vdsr"
    paper = VDSR_PAPER
    upsampling = "pre"
    #: Default ``θ`` of the adjustable gradient clipping (the paper leaves it unpublished).
    clip_theta: float = 0.01
    #: Training defaults of the paper (for recipes).
    training_defaults: ClassVar[dict[str, float | int | str]] = {
        "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4,
        "lr_step_epochs": 20, "lr_gamma": 0.1, "epochs": 80, "patch_hr": 41,
    }

    def __init__(self, scale: int = 4, in_channels: int = 1, out_channels: int | None = None,
                 depth: int = 20, n_feats: int = 64, upsampler: str = "bicubic") -> None:
        super().__init__(scale, in_channels, out_channels)
        self.upsampler = check_upsampler(upsampler)
        if depth < 2:
            raise ValueError(f"depth must be ≥ 2, got {depth}")
        check_skip_channels("vdsr", self.in_channels, self.out_channels)
        layers: list[nn.Module] = [nn.Conv2d(self.in_channels, n_feats, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(n_feats, n_feats, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(n_feats, self.out_channels, 3, padding=1))
        self.body = nn.Sequential(*layers)
        self.config = {"depth": depth, "n_feats": n_feats, "upsampler": upsampler}
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # He et al. initialisation, as in the paper
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def clip_gradients(self, lr: float, theta: float | None = None) -> float:
        """Adjustable gradient clipping of this model's gradients (see :func:`clip_gradients`)."""
        return clip_gradients(self, self.clip_theta if theta is None else theta, lr)

    def receptive_field(self) -> int:
        # bicubic reaches 2 LR px; `depth` 3×3 convs at HR reach `depth` HR px
        return lr_cells(self.config["depth"], self.scale) + 2

    def forward_sr(self, x: torch.Tensor) -> torch.Tensor:
        return skip(x, self.out_channels) + self.body(x)


@register_model("vdsr", paper=VDSR_PAPER, tiny={"depth": 4, "n_feats": 8})
def vdsr(scale: int = 4, in_channels: int = 1, out_channels: int | None = None, **kw) -> VDSR:
    """VDSR: 20 conv layers × 64 filters, global residual, pre-upsampling (any integer scale)."""
    return VDSR(scale, in_channels, out_channels, **kw)


__all__ = ["VDSR", "clip_gradients"]
