"""CMSC (Hu et al., 2018): cascaded multi-scale cross network, pre-upsampling."""

from __future__ import annotations

import torch
from torch import nn

from ..resize import check_upsampler
from .base import SRModel
from .layers.collect import forward_collecting, record
from .layers.deconv import lr_cells
from .layers.skip import check_skip_channels, skip
from .registry import register_model

CMSC_PAPER = ("Hu et al., Single Image Super-Resolution via Cascaded Multi-Scale Cross Network, "
              "arXiv:1802.08808, 2018")


class MSCModule(nn.Module):
    """Multi-scale cross module: a 3×3 branch and a 5×5 branch that exchange information.

    ``n_layers`` times: both branches receive the average of the two branch states
    (merge-and-run crossing) on top of their own pre-activated convolution,
    ``a ← conv3(relu(a)) + (a+b)/2`` and ``b ← conv5(relu(b)) + (a+b)/2``; the module returns the
    average of the two branches. The averaging paths make the module an identity at zero weights,
    i.e. a residual module.

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self, n_feats: int, n_layers: int = 2) -> None:
        super().__init__()
        self.branch3 = nn.ModuleList(
            nn.Sequential(nn.ReLU(), nn.Conv2d(n_feats, n_feats, 3, padding=1)) for _ in range(n_layers)
        )
        self.branch5 = nn.ModuleList(
            nn.Sequential(nn.ReLU(), nn.Conv2d(n_feats, n_feats, 5, padding=2)) for _ in range(n_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = b = x
        for f3, f5 in zip(self.branch3, self.branch5, strict=True):
            m = (a + b) * 0.5
            a, b = f3(a) + m, f5(b) + m
        return (a + b) * 0.5


class CMSC(SRModel):
    """Feature extraction (two 3×3 convs) → ``n_subnets`` cascaded subnetworks of ``n_modules``
    MSC modules each, every subnetwork learning residual features over the extracted features;
    after every subnetwork a shared reconstruction conv predicts the residual to the
    interpolated input, giving an intermediate HR estimate; the output is their learnable
    weighted average (weights initialised to ``1/n_subnets``). :meth:`intermediate_predictions`
    returns the estimates for the cascaded-supervision loss.

    Paper facts (arXiv:1802.08808): a feature extraction network, cascaded subnetworks of
    stacked multi-scale cross (MSC) modules whose branches of different kernel sizes exchange
    information (merge-and-run), residual-features learning in each stage (each stage learns
    the relative information between HR and LR features), cascaded supervision of every
    intermediate prediction, and an assembled (weighted-average) final prediction. Our
    reading of residual-features learning: a skip from the feature extractor into every
    subnetwork output, ``h_i = subnet_i(h_{i-1}) + h_0``, so each stage estimates the HR–LR
    feature difference; the 3×3/5×5 branch sizes, pre-upsampling and the global residual over
    the interpolated input are also our reading of the method.

    Unverified configuration: we could not check the paper's layer counts. The defaults (64
    features as in the VDSR/DRRN family the paper compares with, 3 subnetworks × 4 MSC modules
    × 2 cross layers, one shared reconstruction conv) are our choice, configurable, and give
    3.38 M parameters for one channel; no published count is asserted. No batch normalization
    (it breaks tiling in train mode).

    Shape:
        ``(N, C, H, W) -> (N, C_out, H*scale, W*scale)``.
    """

    name = "cmsc"
    paper = CMSC_PAPER
    upsampling = "pre"

    def __init__(self, scale: int = 4, in_channels: int = 1, out_channels: int | None = None,
                 n_feats: int = 64, n_subnets: int = 3, n_modules: int = 4, n_layers: int = 2,
                 upsampler: str = "bicubic") -> None:
        super().__init__(scale, in_channels, out_channels)
        check_skip_channels("cmsc", self.in_channels, self.out_channels)
        self.upsampler = check_upsampler(upsampler)
        self.features = nn.Sequential(
            nn.Conv2d(self.in_channels, n_feats, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
        )
        self.subnets = nn.ModuleList(
            nn.Sequential(*[MSCModule(n_feats, n_layers) for _ in range(n_modules)]) for _ in range(n_subnets)
        )
        self.reconstruction = nn.Sequential(nn.ReLU(), nn.Conv2d(n_feats, self.out_channels, 3, padding=1))
        self.fusion_weights = nn.Parameter(torch.full((n_subnets,), 1.0 / n_subnets))
        self.config = {"n_feats": n_feats, "n_subnets": n_subnets, "n_modules": n_modules,
                       "n_layers": n_layers, "upsampler": upsampler}
        self._collected: list[torch.Tensor] | None = None

    def receptive_field(self) -> int:
        c = self.config
        hr = 2 + c["n_subnets"] * c["n_modules"] * c["n_layers"] * 2 + 1  # 5×5 branch dominates
        return lr_cells(hr, self.scale) + 2

    def intermediate_predictions(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The fused output and the per-subnetwork HR estimates.

        Shape:
            ``(N, C, H, W) -> (N, C_out, sH, sW), [(N, C_out, sH, sW)] * n_subnets``.
        """
        outs = forward_collecting(self, x)
        return outs[-1], outs[:-1]

    def forward_sr(self, x: torch.Tensor) -> torch.Tensor:
        base = skip(x, self.out_channels)
        h0 = self.features(x)
        h = h0
        out = torch.zeros((), dtype=x.dtype, device=x.device)
        for i, subnet in enumerate(self.subnets):
            h = subnet(h) + h0  # residual-features learning
            y = self.reconstruction(h) + base
            record(self, y)
            out = out + self.fusion_weights[i] * y
        record(self, out)
        return out


@register_model("cmsc", paper=CMSC_PAPER, tiny={"n_feats": 8, "n_subnets": 2, "n_modules": 1, "n_layers": 1})
def cmsc(scale: int = 4, in_channels: int = 1, out_channels: int | None = None, **kw) -> CMSC:
    """CMSC: cascaded subnets of multi-scale cross (3×3/5×5) modules, fused estimates."""
    return CMSC(scale, in_channels, out_channels, **kw)
