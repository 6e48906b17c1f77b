"""EnhanceNet (Sajjadi et al., ICCV 2017): residual generator on top of bicubic, and its texture loss.

The generator learns the residual between the HR image and the bicubic interpolation of the LR
input. Upsampling is nearest-neighbour followed by a convolution (no checkerboard artefacts of
transposed convolutions). The texture loss (patch-wise Gram matrices of feature maps) is used in
training only; it is provided here as :func:`gram_matrix` and :func:`texture_loss`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import SRModel, upsample_bicubic
from .layers import ResBlock
from .registry import register_model

ENHANCENET_PAPER = (
    "Sajjadi et al., EnhanceNet: Single Image Super-Resolution Through Automated Texture Synthesis, "
    "ICCV 2017"
)


class EnhanceNet(SRModel):
    """Conv + ReLU → ``n_blocks`` residual blocks → (nearest ×2 → conv → ReLU) stages → conv + ReLU →
    conv to ``C_out``; the bicubic interpolation of the input is added to the output.

    Powers of two use ×2 stages (two for the paper's ×4); other scales one nearest ×scale stage;
    ×1 has no upsampling stage. Nearest upsampling, convolutions and the bicubic residual are all
    translation-equivariant, so the network tiles exactly.

    Shape:
        ``(N, C_in, H, W) -> (N, C_out, H*scale, W*scale)``.
    """

    name = "enhancenet"
    paper = ENHANCENET_PAPER
    scales = ()

    def __init__(self, scale: int = 4, in_channels: int = 1, out_channels: int | None = None,
                 n_feats: int = 64, n_blocks: int = 10) -> None:
        super().__init__(scale, in_channels, out_channels)
        self.conv_first = nn.Conv2d(self.in_channels, n_feats, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(n_feats, 3) for _ in range(n_blocks)])
        s = self.scale
        self.stages = [] if s == 1 else ([2] * int(math.log2(s)) if s & (s - 1) == 0 else [s])
        self.upconvs = nn.ModuleList(nn.Conv2d(n_feats, n_feats, 3, padding=1) for _ in self.stages)
        self.conv_hr = nn.Conv2d(n_feats, n_feats, 3, padding=1)
        self.conv_last = nn.Conv2d(n_feats, self.out_channels, 3, padding=1)
        self.config = {"n_feats": n_feats, "n_blocks": n_blocks}

    def forward_sr(self, x: torch.Tensor) -> torch.Tensor:
        feat = F.relu(self.conv_first(x))
        feat = self.body(feat)
        for r, conv in zip(self.stages, self.upconvs):
            feat = F.relu(conv(F.interpolate(feat, scale_factor=r, mode="nearest")))
        out = self.conv_last(F.relu(self.conv_hr(feat)))
        base = upsample_bicubic(x, self.scale)
        if base.shape[1] == out.shape[1]:
            return out + base
        # C_in != C_out: add the channel mean of the bicubic image (keeps the residual formulation)
        return out + base.mean(dim=1, keepdim=True)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix of feature maps, normalized by the number of entries ``C·H·W``.

    Shape:
        ``(N, C, H, W) -> (N, C, C)``.
    """
    if features.ndim != 4:
        raise ValueError(f"gram_matrix expects (N, C, H, W) features, got shape {tuple(features.shape)}")
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def texture_loss(features_sr: torch.Tensor | Sequence[torch.Tensor],
                 features_hr: torch.Tensor | Sequence[torch.Tensor],
                 patch: int = 16,
                 weights: Sequence[float] | None = None) -> torch.Tensor:
    """EnhanceNet texture loss: squared distance between Gram matrices of local feature patches.

    The feature maps (e.g. VGG ``conv2_1``, ``conv3_1`` activations of the SR and HR images) are
    cut into non-overlapping ``patch × patch`` windows (the remainder at the right/bottom edges is
    dropped; maps smaller than ``patch`` are used whole) and the mean squared difference of the
    per-window Gram matrices is returned, summed over layers with ``weights``.

    Args:
        features_sr: Features of the super-resolved image, one tensor or one per layer.
        features_hr: Features of the reference HR image, same shapes.
        patch: Window size in feature-map pixels (16 in the paper).
        weights: Per-layer weights (default 1 each).

    Returns:
        Scalar loss.

    Shape:
        each feature pair ``(N, C, H, W)``, output ``()``.
    """
    sr = [features_sr] if isinstance(features_sr, torch.Tensor) else list(features_sr)
    hr = [features_hr] if isinstance(features_hr, torch.Tensor) else list(features_hr)
    if len(sr) != len(hr):
        raise ValueError(f"{len(sr)} SR feature maps but {len(hr)} HR feature maps")
    ws = [1.0] * len(sr) if weights is None else list(weights)
    if len(ws) != len(sr):
        raise ValueError(f"{len(ws)} weights for {len(sr)} feature maps")
    total = sr[0].new_zeros(())
    for a, b, wgt in zip(sr, hr, ws):
        if a.shape != b.shape:
            raise ValueError(f"feature shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
        total = total + wgt * F.mse_loss(_patch_grams(a, patch), _patch_grams(b, patch))
    return total


def _patch_grams(f: torch.Tensor, patch: int) -> torch.Tensor:
    n, c, h, w = f.shape
    ph, pw = min(patch, h), min(patch, w)
    f = f[..., : (h // ph) * ph, : (w // pw) * pw]
    # (N, C, nh, ph, nw, pw) -> (N*nh*nw, C, ph, pw)
    f = f.reshape(n, c, h // ph, ph, w // pw, pw).permute(0, 2, 4, 1, 3, 5).reshape(-1, c, ph, pw)
    return gram_matrix(f)


@register_model("enhancenet", paper=ENHANCENET_PAPER, tiny={"n_feats": 8, "n_blocks": 2})
def enhancenet(scale: int = 4, in_channels: int = 1, out_channels: int | None = None, **kw) -> EnhanceNet:
    """EnhanceNet generator: 10 residual blocks × 64 features, nearest upsampling, bicubic residual."""
    return EnhanceNet(scale, in_channels, out_channels, **kw)
