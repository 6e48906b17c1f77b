"""LapSRN (Lai et al., CVPR 2017) and MS-LapSRN (Lai et al., TPAMI 2018): Laplacian pyramid SR."""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import SRModel
from .layers.collect import forward_collecting, record
from .layers.deconv import CenteredConvTranspose2d, bilinear_kernel_1d, init_interpolation, lr_cells
from .layers.losses import charbonnier_loss, multiscale_charbonnier_loss
from .registry import register_model

LAPSRN_PAPER = "Lai et al., Deep Laplacian Pyramid Networks for Fast and Accurate Super-Resolution, CVPR 2017"
MSLAPSRN_PAPER = ("Lai et al., Fast and Accurate Image Super-Resolution with Deep Laplacian Pyramid "
                  "Networks, TPAMI 2018")

__all__ = ["LapSRN", "MSLapSRN", "charbonnier_loss", "multiscale_charbonnier_loss"]


def _levels(scale: int) -> int:
    return int(math.log2(scale))


def _image_upsampler(channels: int, kernel: int) -> CenteredConvTranspose2d:
    """Per-channel ×2 transposed conv of the image branch without bias (as in the official code),
    initialised to bilinear interpolation."""
    up = CenteredConvTranspose2d(channels, channels, kernel, 2, bias=False, groups=channels)
    init_interpolation(up, bilinear_kernel_1d(2, kernel))
    return up


def _feature_upsampler(n_feats: int, kernel: int) -> CenteredConvTranspose2d:
    up = CenteredConvTranspose2d(n_feats, n_feats, kernel, 2)
    init_interpolation(up, bilinear_kernel_1d(2, kernel))
    return up


class _PyramidModel(SRModel):
    """Shared pieces of the two pyramid networks."""

    scales = (2, 4, 8)
    upsampling = "progressive"

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """All pyramid outputs, coarse to fine (×2, ×4, ... up to ×scale), for the multi-scale
        Charbonnier loss (:func:`~sciSR.models.layers.losses.multiscale_charbonnier_loss`).

        Shape:
            ``(N, C, H, W) -> [(N, C_out, 2^l H, 2^l W) for l = 1..log2(scale)]``.
        """
        return forward_collecting(self, x)

    def forward_train(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Training outputs for multi-scale supervision: the pyramid levels, coarse to fine (the
        last is the final output). Lai et al. supervise every level with the Charbonnier loss
        against the HR image reduced to the level's size (:mod:`sciSR.train.losses`).

        Shape:
            ``(N, C, H, W) -> [(N, C_out, 2^l H, 2^l W) for l = 1..log2(scale)]``.
        """
        return self.pyramid(x)


class LapSRN(_PyramidModel):
    """Laplacian pyramid network: ``log2(scale)`` levels, each doubling the resolution.

    Feature extraction branch: an input conv (LeakyReLU 0.2), then per level ``depth`` 3×3
    convs (64 filters, LeakyReLU 0.2) → ×2 transposed conv → LeakyReLU → a 3×3 conv predicting
    the residual (sub-band) image. Image reconstruction branch: the previous level's image
    upsampled ×2 by a 4×4 transposed conv without bias (bilinear initialisation, per channel)
    plus that residual. Parameters are not shared across levels. Returns the finest level;
    :meth:`pyramid` returns all of them.

    Feature up-kernel: the official code (``phoenix104104/LapSRN``, ``init_LapSRN_model.m``)
    uses ``f × f`` transposed convs with ``f = conv_f = 3``; the default ``up_kernel=3``
    follows it and gives 814,242 parameters for the ×4 model with one channel (published:
    812 K); 4×4 feature up-kernels, the size of the image branch's kernel, give 871,586.
    Cropping: the official 3×3 layer crops one HR row/column at the end (kernel centre half an
    HR pixel after the cell centre), :class:`CenteredConvTranspose2d` crops one at the start
    (half a pixel before); weights ported from the official files need that one-pixel shift.

    Shape:
        ``(N, C, H, W) -> (N, C_out, H*scale, W*scale)``.
    """

    name = "lapsrn"
    paper = LAPSRN_PAPER

    def __init__(self, scale: int = 4, in_channels: int = 1, out_channels: int | None = None,
                 n_feats: int = 64, depth: int = 10, up_kernel: int = 3, slope: float = 0.2) -> None:
        super().__init__(scale, in_channels, out_channels)
        c_out = self.out_channels
        self.conv_in = nn.Sequential(nn.Conv2d(self.in_channels, n_feats, 3, padding=1), nn.LeakyReLU(slope))
        self.features = nn.ModuleList()
        self.residuals = nn.ModuleList()
        self.image_up = nn.ModuleList()
        for _ in range(_levels(self.scale)):
            layers: list[nn.Module] = []
            for _ in range(depth):
                layers += [nn.Conv2d(n_feats, n_feats, 3, padding=1), nn.LeakyReLU(slope)]
            layers += [_feature_upsampler(n_feats, up_kernel), nn.LeakyReLU(slope)]
            self.features.append(nn.Sequential(*layers))
            self.residuals.append(nn.Conv2d(n_feats, c_out, 3, padding=1))
            self.image_up.append(_image_upsampler(c_out, 4))
        # the image branch starts from the input: channels must match (or broadcast from 1)
        self._expand = c_out != self.in_channels
        if self._expand and self.in_channels != 1:
            raise ValueError("lapsrn upsamples its input image: out_channels must equal in_channels or in=1")
        self.config = {"n_feats": n_feats, "depth": depth, "up_kernel": up_kernel, "slope": slope}

    def receptive_field(self) -> int:
        c = self.config
        feat_reach = self.features[0][-2].lr_reach()
        img_reach = self.image_up[0].lr_reach()
        rf_feat, rf_img = 1, 0
        for lvl in range(_levels(self.scale)):
            f = 2**lvl
            rf_feat += lr_cells(c["depth"], f) + lr_cells(feat_reach, f)
            rf_img += lr_cells(img_reach, f)
        rf_feat += lr_cells(1, 2 ** _levels(self.scale))
        return max(rf_feat, rf_img)

    def forward_sr(self, x: torch.Tensor) -> torch.Tensor:
        img = x.expand(-1, self.out_channels, -1, -1) if self._expand else x
        feat = self.conv_in(x)
        for features, residual, image_up in zip(self.features, self.residuals, self.image_up, strict=True):
            feat = features(feat)
            img = image_up(img) + residual(feat)
            record(self, img)
        return img


class RecursiveBlock(nn.Module):
    """MS-LapSRN recursive block: ``depth`` pre-activated convs (LeakyReLU → 3×3 conv).

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self, n_feats: int, depth: int, slope: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [nn.LeakyReLU(slope), nn.Conv2d(n_feats, n_feats, 3, padding=1)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class MSLapSRN(_PyramidModel):
    """Multi-scale LapSRN: one set of parameters for every pyramid level and scale.

    Feature embedding conv (LR, no activation) → per level: ``R`` applications of one recursive
    block of ``D`` pre-activated convs (LeakyReLU → 3×3 conv) with shared-source local skip
    (each recursion adds the level's input features) → LeakyReLU → ×2 transposed conv; a
    residual-prediction conv on the transposed conv's output (no activation between them);
    image branch as in LapSRN. All of it (block, upsamplers, residual conv) is shared across
    levels, so the same weights serve ×2, ×4 and ×8 (``scale`` sets the number of levels).
    This is the layout of the official code (``init_MSLapSRN_model.m``, local residual
    learning ``'SS'``).

    Parameter count: 222,801 for D5R8 with one channel and the official 3×3 feature
    up-kernel (``up_kernel=3``, the default; published: 222 K); 4×4 gives 251,473.

    Shape:
        ``(N, C, H, W) -> (N, C_out, H*scale, W*scale)``.
    """

    name = "ms_lapsrn"
    paper = MSLAPSRN_PAPER

    def __init__(self, scale: int = 4, in_channels: int = 1, out_channels: int | None = None,
                 n_feats: int = 64, depth: int = 5, recursions: int = 8, up_kernel: int = 3,
                 slope: float = 0.2) -> None:
        super().__init__(scale, in_channels, out_channels)
        c_out = self.out_channels
        self.conv_in = nn.Conv2d(self.in_channels, n_feats, 3, padding=1)
        self.block = RecursiveBlock(n_feats, depth, slope)
        self.feature_up = nn.Sequential(nn.LeakyReLU(slope), _feature_upsampler(n_feats, up_kernel))
        self.residual = nn.Conv2d(n_feats, c_out, 3, padding=1)
        self.image_up = _image_upsampler(c_out, 4)
        self._expand = c_out != self.in_channels
        if self._expand and self.in_channels != 1:
            raise ValueError("ms_lapsrn upsamples its input: out_channels must equal in_channels or in=1")
        self.config = {"n_feats": n_feats, "depth": depth, "recursions": recursions, "up_kernel": up_kernel,
                       "slope": slope}

    def receptive_field(self) -> int:
        c = self.config
        feat_reach = self.feature_up[1].lr_reach()
        rf_feat, rf_img = 1, 0
        for lvl in range(_levels(self.scale)):
            f = 2**lvl
            rf_feat += lr_cells(c["depth"] * c["recursions"], f) + lr_cells(feat_reach, f)
            rf_img += lr_cells(self.image_up.lr_reach(), f)
        rf_feat += lr_cells(1, 2 ** _levels(self.scale))
        return max(rf_feat, rf_img)

    def forward_sr(self, x: torch.Tensor) -> torch.Tensor:
        img = x.expand(-1, self.out_channels, -1, -1) if self._expand else x
        feat = self.conv_in(x)
        for _ in range(_levels(self.scale)):
            h = feat
            for _ in range(self.config["recursions"]):
                h = self.block(h) + feat
            feat = self.feature_up(h)
            img = self.image_up(img) + self.residual(feat)
            record(self, img)
        return img


@register_model("lapsrn", paper=LAPSRN_PAPER, tiny={"n_feats": 8, "depth": 1})
def lapsrn(scale: int = 4, in_channels: int = 1, out_channels: int | None = None, **kw) -> LapSRN:
    """LapSRN: progressive ×2 levels (×2/×4/×8), 10 convs per level, Charbonnier-trained."""
    return LapSRN(scale, in_channels, out_channels, **kw)


@register_model("ms_lapsrn", paper=MSLAPSRN_PAPER, tiny={"n_feats": 8, "depth": 1, "recursions": 2})
def ms_lapsrn(scale: int = 4, in_channels: int = 1, out_channels: int | None = None, **kw) -> MSLapSRN:
    """MS-LapSRN D5R8: parameters shared across pyramid levels and recursions (×2/×4/×8)."""
    return MSLapSRN(scale, in_channels, out_channels, **kw)
