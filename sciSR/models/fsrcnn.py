"""FSRCNN (Dong, Loy & Tang, ECCV 2016): hourglass CNN in LR space with a deconvolution upsampler."""

from __future__ import annotations

import torch
from torch import nn

from .base import SRModel
from .layers.deconv import CenteredConvTranspose2d, lr_cells
from .registry import register_model

FSRCNN_PAPER = "Dong et al., Accelerating the Super-Resolution Convolutional Neural Network, ECCV 2016"


class FSRCNN(SRModel):
    """Feature extraction 5×5 (d) → shrinking 1×1 (s) → m × mapping 3×3 (s) → expanding 1×1 (d)
    → 9×9 deconvolution with stride = scale. PReLU (one slope per channel) after every layer but
    the deconvolution.

    Paper default FSRCNN(d=56, s=12, m=4): 12,464 weights for one channel (the paper counts
    weights only; biases and PReLU slopes add 345). Any integer scale.

    Deconvolution alignment: stride ``scale``, kernel 9, and a crop ``p = ceil((9 - scale)/2)``
    at the start (``output_padding = 2p - (9 - scale)`` at the end) so the output is exactly
    ``scale·H`` and each LR cell's kernel is centred on that cell's sub-cells (exact for odd
    scales; half an HR pixel early for even scales, where a 9-tap kernel cannot be centred; for
    scales above 9 the output is padded instead). See
    :class:`~sciSR.models.layers.deconv.CenteredConvTranspose2d`. The ``deconv`` parameters have
    ``nn.ConvTranspose2d`` layout.

    Shape:
        ``(N, C, H, W) -> (N, C_out, H*scale, W*scale)``.
    """

    name = "fsrcnn"
    paper = FSRCNN_PAPER

    def __init__(self, scale: int = 4, in_channels: int = 1, out_channels: int | None = None,
                 d: int = 56, s: int = 12, m: int = 4, deconv_kernel: int = 9) -> None:
        super().__init__(scale, in_channels, out_channels)
        self.feature_extraction = nn.Sequential(nn.Conv2d(self.in_channels, d, 5, padding=2), nn.PReLU(d))
        self.shrinking = nn.Sequential(nn.Conv2d(d, s, 1), nn.PReLU(s))
        mapping: list[nn.Module] = []
        for _ in range(m):
            mapping += [nn.Conv2d(s, s, 3, padding=1), nn.PReLU(s)]
        self.mapping = nn.Sequential(*mapping)
        self.expanding = nn.Sequential(nn.Conv2d(s, d, 1), nn.PReLU(d))
        self.deconv = CenteredConvTranspose2d(d, self.out_channels, deconv_kernel, self.scale)
        self.config = {"d": d, "s": s, "m": m, "deconv_kernel": deconv_kernel}
        for mod in self.modules():  # the paper: He init for convs, N(0, 0.001) for the deconvolution
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, a=0.25, nonlinearity="leaky_relu")
                nn.init.zeros_(mod.bias)
        nn.init.normal_(self.deconv.weight, std=1e-3)
        nn.init.zeros_(self.deconv.bias)

    def receptive_field(self) -> int:
        return lr_cells(2 + self.config["m"], 1) + self.deconv.lr_reach()

    def forward_sr(self, x: torch.Tensor) -> torch.Tensor:
        x = self.expanding(self.mapping(self.shrinking(self.feature_extraction(x))))
        return self.deconv(x)


@register_model("fsrcnn", paper=FSRCNN_PAPER, tiny={"d": 8, "s": 4, "m": 1})
def fsrcnn(scale: int = 4, in_channels: int = 1, out_channels: int | None = None, **kw) -> FSRCNN:
    """FSRCNN(d=56, s=12, m=4), PReLU, 9×9 deconvolution upsampling (any integer scale)."""
    return FSRCNN(scale, in_channels, out_channels, **kw)
