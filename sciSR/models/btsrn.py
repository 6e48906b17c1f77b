"""BTSRN (Fan et al., CVPRW 2017): balanced two-stage residual network with PConv blocks."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..resize import check_upsampler
from .base import SRModel, upsample_bicubic
from .layers.skip import check_skip_channels, skip
from .registry import register_model

BTSRN_PAPER = "Fan et al., Balanced Two-Stage Residual Networks for Image Super-Resolution, CVPRW 2017"


class PConvBlock(nn.Module):
    """Two-layer projected-convolution residual block: ``x + conv3x3(lrelu(conv1x1(lrelu(x))))``.

    The 1×1 convolution projects the ``n_feats`` features to ``proj`` channels, the 3×3
    convolution maps them back. Pre-activation with LeakyReLU(0.2), no batch normalization (the
    paper's PConv block; the official code, ``model_resnet_up.py``, uses the same layout).

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self, n_feats: int, proj: int, slope: float = 0.2) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.LeakyReLU(slope),
            nn.Conv2d(n_feats, proj, 1),
            nn.LeakyReLU(slope),
            nn.Conv2d(proj, n_feats, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UpStage(nn.Module):
    """BTSRN upsampling layer: ``nearest(x) + deconv(lrelu(x))``, deconvolution kernel = stride = ``r``.

    With kernel equal to stride every LR cell maps onto exactly its own ``r × r`` block of
    sub-cells, so the layer is centred on the refined grid (DESIGN §4) and reaches no neighbour.

    Shape:
        ``(N, C, H, W) -> (N, C, r*H, r*W)``.
    """

    def __init__(self, n_feats: int, r: int, slope: float = 0.2) -> None:
        super().__init__()
        self.r = int(r)
        self.act = nn.LeakyReLU(slope)
        self.deconv = nn.ConvTranspose2d(n_feats, n_feats, self.r, stride=self.r)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.r, mode="nearest") + self.deconv(self.act(x))


def _stages(scale: int) -> list[int]:
    """×2 stages for powers of two, one ×scale stage otherwise (none at ×1)."""
    if scale == 1:
        return []
    if scale & (scale - 1) == 0:
        return [2] * int(math.log2(scale))
    return [scale]


class BTSRN(SRModel):
    """Input conv → LR stage (``n_lr`` PConv blocks) → upsampling → HR stage (``n_hr`` PConv
    blocks) → LeakyReLU → output conv, plus the bicubic-upsampled input.

    Paper: two stages of residual blocks (6 in LR space, 4 in HR space) joined by up-sampling
    layers that sum nearest-neighbour upsampling and a deconvolution; two-layer projected
    convolution (PConv) residual blocks; 10 residual blocks in the NTIRE 2017 model. Official
    code (``ychfan/sr_ntire2017``, ``model_resnet_up.py``): 128 features projected to 64 in each
    PConv block, a 1×1 input conv, LeakyReLU(0.2) pre-activation everywhere, each ×2 up-sampling
    layer is
    ``nearest(x) + deconv(lrelu(x))`` with kernel = stride = 2, ×4 uses two of them with one
    PConv block between, a 1×1 output conv after a LeakyReLU, and the network predicts the
    residual over the bicubic-upsampled input.

    Our reading where the code is silent: ×8 (and other powers of two) chain ×2 layers with a
    block between each pair; other scales use one layer of kernel = stride = ``scale`` (the
    official ×3 model does this); convolutions use zero "same" padding where the official code
    crops valid convolutions of a symmetrically padded input; the official code feeds
    ``x - 0.5`` (images in [0, 1]) while sciSR normalises data globally. The bicubic skip uses
    torch bicubic by default; ``upsampler="matlab"`` gives the ``a = -0.5`` kernel of the
    PIL/``scipy.misc.imresize`` bicubic the official code used (PIL clamps at the border where
    MATLAB mirrors).

    Shape:
        ``(N, C, H, W) -> (N, C_out, H*scale, W*scale)``.
    """

    name = "btsrn"
    paper = BTSRN_PAPER

    def __init__(self, scale: int = 4, in_channels: int = 1, out_channels: int | None = None,
                 n_feats: int = 128, proj: int = 64, n_lr: int = 6, n_hr: int = 4, slope: float = 0.2,
                 upsampler: str = "bicubic") -> None:
        super().__init__(scale, in_channels, out_channels)
        check_skip_channels("btsrn", self.in_channels, self.out_channels)
        self.upsampler = check_upsampler(upsampler)
        self.head = nn.Conv2d(self.in_channels, n_feats, 1)
        self.lr_stage = nn.Sequential(*[PConvBlock(n_feats, proj, slope) for _ in range(n_lr)])
        stages = _stages(self.scale)
        self.up = nn.ModuleList(UpStage(n_feats, r, slope) for r in stages)
        self.between = nn.ModuleList(PConvBlock(n_feats, proj, slope) for _ in stages[1:])
        self.hr_stage = nn.Sequential(*[PConvBlock(n_feats, proj, slope) for _ in range(n_hr)])
        self.tail = nn.Sequential(nn.LeakyReLU(slope), nn.Conv2d(n_feats, self.out_channels, 1))
        self.config = {"n_feats": n_feats, "proj": proj, "n_lr": n_lr, "n_hr": n_hr, "slope": slope,
                       "upsampler": upsampler}

    def receptive_field(self) -> int:
        # the convolutions (structural bound) in parallel with the bicubic skip (2 LR cells)
        return max(super().receptive_field() or 0, 2 if self.scale > 1 else 0)

    def forward_sr(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lr_stage(self.head(x))
        for i, up in enumerate(self.up):
            if i > 0:
                h = self.between[i - 1](h)
            h = up(h)
        y = self.tail(self.hr_stage(h))
        return y + skip(upsample_bicubic(x, self.scale, self.upsampler), self.out_channels)


@register_model("btsrn", paper=BTSRN_PAPER, tiny={"n_feats": 8, "proj": 4, "n_lr": 1, "n_hr": 1})
def btsrn(scale: int = 4, in_channels: int = 1, out_channels: int | None = None, **kw) -> BTSRN:
    """BTSRN: 6 LR + 4 HR PConv blocks, nearest + deconvolution upsampling, residual over bicubic."""
    return BTSRN(scale, in_channels, out_channels, **kw)
