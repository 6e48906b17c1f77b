"""IDN (Hui, Wang & Gao, CVPR 2018): information distillation network."""

from __future__ import annotations

import torch
from torch import nn

from .base import SRModel, upsample_bicubic
from .layers.deconv import CenteredConvTranspose2d
from .layers.skip import check_skip_channels, skip
from .registry import register_model

IDN_PAPER = ("Hui et al., Fast and Accurate Single Image Super-Resolution via Information Distillation "
             "Network, CVPR 2018")


def _conv(cin: int, cout: int, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1, groups=groups)


class DBlock(nn.Module):
    """Distillation block: enhancement unit (two 3-conv stacks; after the first, ``d`` channels
    are split off and concatenated to the block input — the distilled short path — while the
    rest goes through the second stack, whose output is added to that concatenation) followed
    by a 1×1 compression unit.

    With ``n_feats=64, d=16`` the stacks are 64→48→32(g)→64 and 48→64→48(g)→80; the middle conv
    of each is a group conv (``groups=4``). LeakyReLU(0.05) after every 3×3 conv.

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self, n_feats: int = 64, d: int = 16, groups: int = 4, slope: float = 0.05) -> None:
        super().__init__()
        nf = n_feats
        act = nn.LeakyReLU(slope)
        self.d = d
        self.enhancement_top = nn.Sequential(
            _conv(nf, nf - d), act, _conv(nf - d, nf - 2 * d, groups), act, _conv(nf - 2 * d, nf), act
        )
        self.enhancement_bottom = nn.Sequential(
            _conv(nf - d, nf), act, _conv(nf, nf - d, groups), act, _conv(nf - d, nf + d), act
        )
        self.compression = nn.Conv2d(nf + d, nf, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.enhancement_top(x)
        keep, distilled = t[:, : t.shape[1] - self.d], t[:, t.shape[1] - self.d :]
        y = self.enhancement_bottom(keep) + torch.cat([x, distilled], dim=1)
        return self.compression(y)


class IDN(SRModel):
    """FBlock (two 3×3 convs) → ``n_blocks`` DBlocks → 17×17 transposed conv (stride = scale)
    → plus the bicubic-upsampled input.

    Paper defaults: 64 features, 4 DBlocks, ``d=16`` (slice ratio 1/4), group convs with 4
    groups, LeakyReLU(0.05): 552,769 parameters for one channel and any scale (the upsampler's
    kernel does not depend on the scale) — the paper's 553 K. The transposed conv is centred
    on the cell-centred grid (``CenteredConvTranspose2d``; reference ports use padding 8 and
    ``output_padding = scale - 1``, which is half a pixel off at ×2 and one pixel off at ×3/×4).

    Shape:
        ``(N, C, H, W) -> (N, C_out, H*scale, W*scale)``.
    """

    name = "idn"
    paper = IDN_PAPER

    def __init__(self, scale: int = 4, in_channels: int = 1, out_channels: int | None = None,
                 n_feats: int = 64, d: int = 16, n_blocks: int = 4, groups: int = 4,
                 deconv_kernel: int = 17, slope: float = 0.05) -> None:
        super().__init__(scale, in_channels, out_channels)
        check_skip_channels("idn", self.in_channels, self.out_channels)
        act = nn.LeakyReLU(slope)
        self.fblock = nn.Sequential(_conv(self.in_channels, n_feats), act, _conv(n_feats, n_feats), act)
        self.dblocks = nn.Sequential(*[DBlock(n_feats, d, groups, slope) for _ in range(n_blocks)])
        self.deconv = CenteredConvTranspose2d(n_feats, self.out_channels, deconv_kernel, self.scale)
        self.config = {"n_feats": n_feats, "d": d, "n_blocks": n_blocks, "groups": groups,
                       "deconv_kernel": deconv_kernel, "slope": slope}

    def receptive_field(self) -> int:
        lr = 2 + 6 * self.config["n_blocks"] + self.deconv.lr_reach()
        return max(lr, 2)

    def forward_sr(self, x: torch.Tensor) -> torch.Tensor:
        base = skip(upsample_bicubic(x, self.scale), self.out_channels)
        return base + self.deconv(self.dblocks(self.fblock(x)))


@register_model("idn", paper=IDN_PAPER, tiny={"n_feats": 16, "d": 4, "n_blocks": 1, "deconv_kernel": 5})
def idn(scale: int = 4, in_channels: int = 1, out_channels: int | None = None, **kw) -> IDN:
    """IDN: FBlock, 4 distillation blocks, 17×17 transposed-conv upsampler, bicubic skip."""
    return IDN(scale, in_channels, out_channels, **kw)


__all__ = ["IDN", "DBlock"]
