"""EDSR and EDSR-baseline (Lim et al., CVPRW 2017): deep residual network without batch norm."""

from __future__ import annotations

import torch
from torch import nn

from .base import SRModel
from .layers import PixelShuffleUpsampler, ResBlock, default_conv
from .layers.deconv import lr_cells
from .registry import register_model

EDSR_PAPER = "Lim et al., Enhanced Deep Residual Networks for Single Image Super-Resolution, CVPRW 2017"


class EDSR(SRModel):
    """Head conv → ``n_resblocks`` residual blocks + conv (global skip) → pixel-shuffle tail.

    Layer names follow the official release (``head.0``, ``body.N``, ``tail.0``, ``tail.1``) so
    its checkpoints load directly. No built-in RGB mean shift: see
    :meth:`SRModel.set_input_transform` for imported weights.

    Shape:
        ``(N, C, H, W) -> (N, C_out, H*scale, W*scale)``.
    """

    name = "edsr"
    paper = EDSR_PAPER
    scales = (2, 3, 4)

    def __init__(
        self,
        scale: int = 4,
        in_channels: int = 1,
        out_channels: int | None = None,
        n_resblocks: int = 32,
        n_feats: int = 256,
        res_scale: float = 0.1,
        kernel_size: int = 3,
    ) -> None:
        super().__init__(scale, in_channels, out_channels)
        self.head = nn.Sequential(default_conv(self.in_channels, n_feats, kernel_size))
        self.body = nn.Sequential(
            *[ResBlock(n_feats, kernel_size, res_scale=res_scale) for _ in range(n_resblocks)],
            default_conv(n_feats, n_feats, kernel_size),
        )
        self.tail = nn.Sequential(
            PixelShuffleUpsampler(self.scale, n_feats),
            default_conv(n_feats, self.out_channels, kernel_size),
        )
        self.config = {"n_resblocks": n_resblocks, "n_feats": n_feats, "res_scale": res_scale}

    def forward_sr(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(x)
        x = x + self.body(x)
        return self.tail(x)


@register_model("edsr", paper=EDSR_PAPER, tiny={"n_resblocks": 2, "n_feats": 8})
def edsr(scale: int = 4, in_channels: int = 1, out_channels: int | None = None, **kw) -> EDSR:
    """EDSR: 32 residual blocks × 256 features, residual scaling 0.1 (×2/×3/×4)."""
    return EDSR(scale, in_channels, out_channels, **kw)


@register_model("edsr_baseline", paper=EDSR_PAPER, tiny={"n_resblocks": 2, "n_feats": 8})
def edsr_baseline(scale: int = 4, in_channels: int = 1, out_channels: int | None = None, **kw) -> EDSR:
    """EDSR-baseline: 16 residual blocks × 64 features, no residual scaling (×2/×3/×4)."""
    kw = {"n_resblocks": 16, "n_feats": 64, "res_scale": 1.0, **kw}
    return EDSR(scale, in_channels, out_channels, **kw)


class MDSR(SRModel):
    """Multi-scale deep SR (Lim et al. 2017): one shared body, scale-specific heads and tails.

    Head conv → scale-specific pre-processing (two 5×5 residual blocks per scale) → shared body
    of ``n_resblocks`` residual blocks + conv (global skip) → scale-specific pixel-shuffle
    upsampler → shared tail conv. Paper default: 80 blocks × 64 features with branches for ×2,
    ×3 and ×4 (7.95 M parameters for RGB; the paper rounds to 8.0 M).

    The instance's ``scale`` selects the branch; :meth:`set_scale` switches it (multi-scale
    training draws a scale per mini-batch; parameters of the inactive branches then get no
    gradient, which optimizers skip). ``branches=None`` builds only the branch of ``scale``
    (a single-scale model for fine-tuning; its keys are ``pre_process.0``, ``upsample.0``).

    Layer names follow the official release (``head.0``, ``pre_process.{i}.{0,1}.body.*``,
    ``body.N``, ``upsample.{i}.*``, ``tail.0``) with ``i`` the index of the scale in ``branches``
    (official order 2, 3, 4), so official checkpoints load directly. No built-in RGB mean shift.

    Shape:
        ``(N, C, H, W) -> (N, C_out, H*scale, W*scale)``.
    """

    name = "mdsr"
    paper = EDSR_PAPER
    scales = (2, 3, 4)

    def __init__(
        self,
        scale: int = 4,
        in_channels: int = 1,
        out_channels: int | None = None,
        n_resblocks: int = 80,
        n_feats: int = 64,
        kernel_size: int = 3,
        branches: tuple[int, ...] | None = (2, 3, 4),
    ) -> None:
        super().__init__(scale, in_channels, out_channels)
        self.branches = tuple(int(b) for b in branches) if branches is not None else (self.scale,)
        for b in self.branches:
            if b not in self.scales:
                raise ValueError(f"mdsr branches must be among {list(self.scales)}, got {b}")
        if self.scale not in self.branches:
            raise ValueError(f"mdsr was built with branches {list(self.branches)}, not ×{self.scale}")
        self.head = nn.Sequential(default_conv(self.in_channels, n_feats, kernel_size))
        self.pre_process = nn.ModuleList(
            nn.Sequential(ResBlock(n_feats, 5), ResBlock(n_feats, 5)) for _ in self.branches
        )
        self.body = nn.Sequential(
            *[ResBlock(n_feats, kernel_size) for _ in range(n_resblocks)],
            default_conv(n_feats, n_feats, kernel_size),
        )
        self.upsample = nn.ModuleList(PixelShuffleUpsampler(b, n_feats) for b in self.branches)
        self.tail = nn.Sequential(default_conv(n_feats, self.out_channels, kernel_size))
        self.config = {
            "n_resblocks": n_resblocks,
            "n_feats": n_feats,
            "kernel_size": kernel_size,
            "branches": list(self.branches),
        }

    def set_scale(self, scale: int) -> MDSR:
        """Select the ×``scale`` branch (one of ``branches``); returns ``self``."""
        scale = int(scale)
        if scale not in self.branches:
            raise ValueError(f"mdsr has branches {list(self.branches)}, not ×{scale}")
        self.scale = scale
        self._rf_cache = "unset"
        return self

    def receptive_field(self) -> int:
        k = self.config["kernel_size"]
        lr = 1 + 2 * 2 * 2 + (2 * self.config["n_resblocks"] + 1) * (k // 2) + 1  # head, pre, body, up conv
        stages = 2 if self.scale == 4 else 1
        return lr + (lr_cells(1, 2) if stages == 2 else 0) + lr_cells(k // 2, self.scale)

    def forward_sr(self, x: torch.Tensor) -> torch.Tensor:
        i = self.branches.index(self.scale)
        x = self.pre_process[i](self.head(x))
        x = x + self.body(x)
        return self.tail(self.upsample[i](x))


@register_model("mdsr", paper=EDSR_PAPER, tiny={"n_resblocks": 2, "n_feats": 8, "branches": None})
def mdsr(scale: int = 4, in_channels: int = 1, out_channels: int | None = None, **kw) -> MDSR:
    """MDSR: 80 residual blocks × 64 features shared by ×2/×3/×4 branches (scale selects one)."""
    return MDSR(scale, in_channels, out_channels, **kw)
