"""DRCN (Kim et al., CVPR 2016) and DRRN (Tai et al., CVPR 2017): recursive pre-upsampling nets."""

from __future__ import annotations

import torch
from torch import nn

from ..resize import check_upsampler
from .base import SRModel
from .layers.collect import forward_collecting, record
from .layers.deconv import lr_cells
from .layers.skip import check_skip_channels, skip
from .registry import register_model

DRCN_PAPER = "Kim et al., Deeply-Recursive Convolutional Network for Image Super-Resolution, CVPR 2016"
DRRN_PAPER = "Tai et al., Image Super-Resolution via Deep Recursive Residual Network, CVPR 2017"


class DRCN(SRModel):
    """Embedding net (two 3×3 convs) → one 3×3 conv applied ``recursions`` times with shared
    weights → shared reconstruction net (two 3×3 convs) applied to every recursion's state, each
    plus the interpolated input (skip to reconstruction) → learnable weighted ensemble.

    Paper defaults: 256 filters, 16 recursions, ensemble weights initialised to ``1/16``;
    1,775,121 parameters for one channel (the DRRN paper lists DRCN as 1,774 K).
    :meth:`intermediate_predictions` returns the ``recursions`` predictions for the
    recursive-supervision loss ``α·mean_d ||y_d - y||² + (1-α)·||ensemble - y||²``. The paper's
    input is the MATLAB bicubic-interpolated image (``upsampler="matlab"``, needed to run the
    original weights); the default is torch bicubic (see :mod:`sciSR.resize`).

    Shape:
        ``(N, C, H, W) -> (N, C_out, H*scale, W*scale)``.
    """

    name = "drcn"
    paper = DRCN_PAPER
    upsampling = "pre"

    def __init__(self, scale: int = 4, in_channels: int = 1, out_channels: int | None = None,
                 n_feats: int = 256, recursions: int = 16, upsampler: str = "bicubic") -> None:
        super().__init__(scale, in_channels, out_channels)
        check_skip_channels("drcn", self.in_channels, self.out_channels)
        self.upsampler = check_upsampler(upsampler)
        if recursions < 1:
            raise ValueError(f"recursions must be ≥ 1, got {recursions}")
        self.embedding = nn.Sequential(
            nn.Conv2d(self.in_channels, n_feats, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(n_feats, n_feats, 3, padding=1), nn.ReLU(inplace=True),
        )
        self.inference = nn.Sequential(nn.Conv2d(n_feats, n_feats, 3, padding=1), nn.ReLU(inplace=True))
        self.reconstruction = nn.Sequential(
            nn.Conv2d(n_feats, n_feats, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(n_feats, self.out_channels, 3, padding=1),
        )
        self.ensemble_weights = nn.Parameter(torch.full((recursions,), 1.0 / recursions))
        self.config = {"n_feats": n_feats, "recursions": recursions, "upsampler": upsampler}
        self._collected: list[torch.Tensor] | None = None

    def receptive_field(self) -> int:
        return lr_cells(2 + self.config["recursions"] + 2, self.scale) + 2

    def intermediate_predictions(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The ensemble output and the ``recursions`` intermediate predictions, all at HR.

        Shape:
            ``(N, C, H, W) -> (N, C_out, sH, sW), [(N, C_out, sH, sW)] * recursions``.
        """
        outs = forward_collecting(self, x)
        return outs[-1], outs[:-1]

    def forward_train(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Training outputs for recursive supervision: the ``recursions`` intermediate predictions
        followed by the weighted ensemble (the final output), all at HR. Kim et al.'s loss
        ``α/D · Σ_d l(y_d) + (1 - α) · l(ensemble)`` is these outputs weighted by
        ``[α / D] * D + [1 - α]`` (:mod:`sciSR.train.losses`).

        Shape:
            ``(N, C, H, W) -> [(N, C_out, sH, sW)] * (recursions + 1)``.
        """
        return forward_collecting(self, x)

    def forward_sr(self, x: torch.Tensor) -> torch.Tensor:
        base = skip(x, self.out_channels)
        h = self.embedding(x)
        out = torch.zeros((), dtype=x.dtype, device=x.device)
        for d in range(self.config["recursions"]):
            h = self.inference(h)
            y = self.reconstruction(h) + base
            record(self, y)
            out = out + self.ensemble_weights[d] * y
        record(self, out)
        return out


class DRRN(SRModel):
    """``n_blocks`` recursive blocks, each an entry 3×3 conv followed by ``n_units`` residual units
    whose two convolutions are shared within the block (pre-activation: activation → conv; every
    unit adds the block's entry output), then a reconstruction conv plus the interpolated input.

    Paper default B1U25 (52 conv layers, 128 filters): 297,601 convolution parameters for one
    channel (the paper: 297 K). The paper's residual units are pre-activation units (He et al.
    2016) and the official Caffe prototxts (``tyshiwo/DRRN_CVPR17``) put BatchNorm + Scale +
    ReLU before every convolution, the first one included (on the interpolated input) and the
    reconstruction conv; the normalization layers are per position, not shared by the
    recursion. ``batch_norm=True`` builds that (``BatchNorm2d`` = BatchNorm + Scale; 13,058
    more parameters for B1U25 with one channel). The default ``batch_norm=False`` keeps only
    the ReLUs and leaves the raw input un-activated (a ReLU on normalized physical data would
    drop its negative half): batch norm in train mode makes tiles depend on each other, and
    eval-mode batch norm is a per-channel affine map, so either is exact when tiled in eval mode.
    Entry convs of blocks after the first are pre-activated as well (the prototxts have one block).
    The official input is the MATLAB bicubic-interpolated image (``upsampler="matlab"``); the
    default is torch bicubic (see :mod:`sciSR.resize`).

    Shape:
        ``(N, C, H, W) -> (N, C_out, H*scale, W*scale)``.
    """

    name = "drrn"
    paper = DRRN_PAPER
    upsampling = "pre"

    def __init__(self, scale: int = 4, in_channels: int = 1, out_channels: int | None = None,
                 n_feats: int = 128, n_blocks: int = 1, n_units: int = 25, batch_norm: bool = False,
                 upsampler: str = "bicubic") -> None:
        super().__init__(scale, in_channels, out_channels)
        check_skip_channels("drrn", self.in_channels, self.out_channels)
        if n_blocks < 1 or n_units < 0:
            raise ValueError(f"drrn needs n_blocks ≥ 1 and n_units ≥ 0, got {n_blocks}, {n_units}")
        self.upsampler = check_upsampler(upsampler)
        self.entries = nn.ModuleList(
            nn.Conv2d(self.in_channels if b == 0 else n_feats, n_feats, 3, padding=1) for b in range(n_blocks)
        )
        # the two convolutions shared by the units of each block (Sequential keeps the key names
        # ``units.B.1`` / ``units.B.3``; the ReLUs at 0 and 2 are applied in forward_sr)
        self.units = nn.ModuleList(
            nn.Sequential(
                nn.ReLU(), nn.Conv2d(n_feats, n_feats, 3, padding=1),
                nn.ReLU(), nn.Conv2d(n_feats, n_feats, 3, padding=1),
            )
            for _ in range(n_blocks)
        )
        self.exit = nn.Sequential(nn.ReLU(), nn.Conv2d(n_feats, self.out_channels, 3, padding=1))
        self.batch_norm = bool(batch_norm)
        if self.batch_norm:
            self.entry_norms = nn.ModuleList(
                nn.BatchNorm2d(self.in_channels if b == 0 else n_feats) for b in range(n_blocks)
            )
            self.unit_norms = nn.ModuleList(
                nn.ModuleList(nn.BatchNorm2d(n_feats) for _ in range(2 * n_units)) for _ in range(n_blocks)
            )
            self.exit_norm = nn.BatchNorm2d(n_feats)
        self.config = {"n_feats": n_feats, "n_blocks": n_blocks, "n_units": n_units,
                       "batch_norm": self.batch_norm, "upsampler": upsampler}

    def receptive_field(self) -> int:
        c = self.config
        return lr_cells((1 + 2 * c["n_units"]) * c["n_blocks"] + 1, self.scale) + 2

    def _pre(self, h: torch.Tensor, norm: nn.Module | None) -> torch.Tensor:
        return torch.relu(norm(h) if norm is not None else h)

    def forward_sr(self, x: torch.Tensor) -> torch.Tensor:
        bn = self.batch_norm
        h = x
        for b, (entry, unit) in enumerate(zip(self.entries, self.units, strict=True)):
            if bn:
                h = self._pre(h, self.entry_norms[b])
            elif b > 0:
                h = torch.relu(h)
            h0 = entry(h)
            h = h0
            for u in range(self.config["n_units"]):
                na = self.unit_norms[b][2 * u] if bn else None
                nb = self.unit_norms[b][2 * u + 1] if bn else None
                t = unit[1](self._pre(h, na))
                h = unit[3](self._pre(t, nb)) + h0
        y = self.exit[1](self._pre(h, self.exit_norm if bn else None))
        return y + skip(x, self.out_channels)


@register_model("drcn", paper=DRCN_PAPER, tiny={"n_feats": 8, "recursions": 3})
def drcn(scale: int = 4, in_channels: int = 1, out_channels: int | None = None, **kw) -> DRCN:
    """DRCN: 16 shared-weight recursions × 256 filters, ensemble of intermediate predictions."""
    return DRCN(scale, in_channels, out_channels, **kw)


@register_model("drrn", paper=DRRN_PAPER, tiny={"n_feats": 8, "n_blocks": 2, "n_units": 2})
def drrn(scale: int = 4, in_channels: int = 1, out_channels: int | None = None, **kw) -> DRRN:
    """DRRN B1U25: one recursive block of 25 weight-shared residual units, 128 filters."""
    return DRRN(scale, in_channels, out_channels, **kw)
