"""ESRGAN (Wang et al., ECCVW 2018): RRDBNet generator and VGG-style discriminator.

RRDBNet stacks residual-in-residual dense blocks (no batch norm) and upsamples with nearest
neighbour ×2 + conv stages. Layer names follow the BasicSR "new" layout (``conv_first``,
``body.N.rdb1.conv1`` ... ``conv5``, ``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``,
``conv_last``) so BasicSR / Real-ESRGAN checkpoints map onto it one to one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import SRModel
from .layers.init import scaled_kaiming_init
from .registry import register_model

ESRGAN_PAPER = "Wang et al., ESRGAN: Enhanced Super-Resolution Generative Adversarial Networks, ECCVW 2018"


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3×3 convs (growth ``gc``), LeakyReLU(0.2), scaled residual.

    The five convs are initialised by :func:`scaled_kaiming_init` (Kaiming × 0.1, as in the
    official ESRGAN/BasicSR code); the other RRDBNet convs keep PyTorch's default init, as there.

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self, n_feats: int = 64, gc: int = 32, res_scale: float = 0.2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(n_feats, gc, 3, padding=1)
        self.conv2 = nn.Conv2d(n_feats + gc, gc, 3, padding=1)
        self.conv3 = nn.Conv2d(n_feats + 2 * gc, gc, 3, padding=1)
        self.conv4 = nn.Conv2d(n_feats + 3 * gc, gc, 3, padding=1)
        self.conv5 = nn.Conv2d(n_feats + 4 * gc, n_feats, 3, padding=1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)
        self.res_scale = res_scale
        scaled_kaiming_init([self.conv1, self.conv2, self.conv3, self.conv4, self.conv5], 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x + x5 * self.res_scale


class RRDB(nn.Module):
    """Residual-in-residual dense block: three RDBs and a scaled outer residual.

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self, n_feats: int = 64, gc: int = 32, res_scale: float = 0.2) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(n_feats, gc, res_scale)
        self.rdb2 = ResidualDenseBlock(n_feats, gc, res_scale)
        self.rdb3 = ResidualDenseBlock(n_feats, gc, res_scale)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.rdb3(self.rdb2(self.rdb1(x))) * self.res_scale


class RRDBNet(SRModel):
    """conv_first → ``n_blocks`` RRDBs → conv_body (+ skip) → nearest ×2 + conv + LReLU stages →
    conv_hr + LReLU → conv_last.

    ×4 uses two ×2 stages (``conv_up1``, ``conv_up2``) and ×8 three (``conv_up3``). As in BasicSR,
    ×2 and ×1 models pixel-unshuffle the input by 2 and 4 first (``conv_first`` then sees
    ``4·C`` or ``16·C`` channels) and keep the ×4 body; their input is padded to a multiple of 2
    or 4 and, because the unshuffle phase depends on the position, they are not
    translation-equivariant (tiles are blended).

    Shape:
        ``(N, C_in, H, W) -> (N, C_out, H*scale, W*scale)``.
    """

    name = "esrgan"
    paper = ESRGAN_PAPER
    scales = (1, 2, 4, 8)

    def __init__(self, scale: int = 4, in_channels: int = 1, out_channels: int | None = None,
                 n_feats: int = 64, n_blocks: int = 23, gc: int = 32, res_scale: float = 0.2) -> None:
        super().__init__(scale, in_channels, out_channels)
        self.unshuffle = {1: 4, 2: 2}.get(self.scale, 1)
        if self.unshuffle > 1:
            # instance overrides of the class-level contract attributes
            self.size_multiple = self.unshuffle  # type: ignore[misc]
            self.equivariant = False  # type: ignore[misc]
        n_up = {8: 3}.get(self.scale, 2)
        self.n_up = n_up
        self.conv_first = nn.Conv2d(self.in_channels * self.unshuffle**2, n_feats, 3, padding=1)
        self.body = nn.Sequential(*[RRDB(n_feats, gc, res_scale) for _ in range(n_blocks)])
        self.conv_body = nn.Conv2d(n_feats, n_feats, 3, padding=1)
        for i in range(1, n_up + 1):
            setattr(self, f"conv_up{i}", nn.Conv2d(n_feats, n_feats, 3, padding=1))
        self.conv_hr = nn.Conv2d(n_feats, n_feats, 3, padding=1)
        self.conv_last = nn.Conv2d(n_feats, self.out_channels, 3, padding=1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)
        self.config = {"n_feats": n_feats, "n_blocks": n_blocks, "gc": gc, "res_scale": res_scale}

    def forward_sr(self, x: torch.Tensor) -> torch.Tensor:
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for i in range(1, self.n_up + 1):
            conv = getattr(self, f"conv_up{i}")
            feat = self.lrelu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


class ESRGANDiscriminator(nn.Module):
    """VGG-style discriminator of ESRGAN (BasicSR ``VGGStyleDiscriminator`` layout).

    Five stages ``conv{i}_0`` (3×3, stride 1) and ``conv{i}_1`` (4×4, stride 2), batch norm after
    every conv but ``conv0_0``, LeakyReLU(0.2), then ``linear1`` (→100) and ``linear2`` (→1). The
    paper's 128×128 input leaves a 4×4 map; an adaptive average pool to ``pool_size`` (identity
    for 128×128 inputs, so BasicSR VGG128 weights load unchanged) lets it accept any input size.
    Returns logits (the relativistic loss of ESRGAN works on logits).

    Shape:
        ``(N, C, H, W) -> (N, 1)``.
    """

    def __init__(self, in_channels: int = 1, n_feats: int = 64, pool_size: int = 4) -> None:
        super().__init__()
        chans = [n_feats, 2 * n_feats, 4 * n_feats, 8 * n_feats, 8 * n_feats]
        prev = in_channels
        for i, c in enumerate(chans):
            setattr(self, f"conv{i}_0", nn.Conv2d(prev, c, 3, 1, 1, bias=i == 0))
            if i > 0:
                setattr(self, f"bn{i}_0", nn.BatchNorm2d(c, affine=True))
            setattr(self, f"conv{i}_1", nn.Conv2d(c, c, 4, 2, 1, bias=False))
            setattr(self, f"bn{i}_1", nn.BatchNorm2d(c, affine=True))
            prev = c
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        self.linear1 = nn.Linear(prev * pool_size * pool_size, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)
        self.n_stages = len(chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(self.n_stages):
            x = getattr(self, f"conv{i}_0")(x)
            if i > 0:
                x = getattr(self, f"bn{i}_0")(x)
            x = self.lrelu(x)
            x = self.lrelu(getattr(self, f"bn{i}_1")(getattr(self, f"conv{i}_1")(x)))
        x = self.pool(x).flatten(1)
        return self.linear2(self.lrelu(self.linear1(x)))


@register_model("esrgan", paper=ESRGAN_PAPER, tiny={"n_feats": 8, "n_blocks": 1, "gc": 4})
def esrgan(scale: int = 4, in_channels: int = 1, out_channels: int | None = None, **kw) -> RRDBNet:
    """RRDBNet (ESRGAN generator): 23 RRDBs, 64 features, growth 32, residual scaling 0.2 (×1/×2/×4/×8)."""
    return RRDBNet(scale, in_channels, out_channels, **kw)
