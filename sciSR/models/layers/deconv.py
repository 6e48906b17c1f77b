"""Transposed convolution centred on the cell-centred grid, for any stride, kernel and scale.

A transposed convolution with stride ``s`` and kernel ``k`` spreads LR cell ``i`` over the HR
pixels ``i*s - p ... i*s - p + k - 1``. With the usual "crop ``p``" convention the kernel centre
lands at ``i*s - p + (k-1)/2``, while the centre of LR cell ``i`` on the refined grid (DESIGN §4:
each cell split into ``s`` sub-cells) is at ``i*s + (s-1)/2``. :class:`CenteredConvTranspose2d`
therefore crops ``p = ceil((k - s) / 2)`` pixels at the start and whatever is needed at the end
so that the output is exactly ``s·H``:

* ``k - s`` even (``k=9, s=3``; ``k=4, s=2``; ``k=17, s=3``): the kernel is exactly centred;
* ``k - s`` odd (``k=9, s=2`` or ``s=4``): centring is impossible with a symmetric tap layout;
  the kernel sits half an HR pixel early and training absorbs the offset into the weights;
* ``s > k`` (a 9×9 FSRCNN kernel at ×12): ``p`` is negative, i.e. the output is padded (the
  HR pixels no tap reaches receive only the bias), which ``nn.ConvTranspose2d`` cannot express.

For ``0 ≤ k - s`` this equals ``nn.ConvTranspose2d(padding=p, output_padding=2p - (k - s))``;
the parameters have the same names and shapes as ``nn.ConvTranspose2d`` (checkpoints map).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class CenteredConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` with stride ``scale`` whose output is exactly ``scale·H × scale·W``.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Square kernel size ``k`` (any ``k ≥ 1``).
        scale: Stride ``s`` (the upscaling factor of this layer).
        bias: Learnable bias.
        groups: Channel groups (``groups=in_channels=out_channels`` for a depthwise layer).

    Shape:
        ``(N, C_in, H, W) -> (N, C_out, s*H, s*W)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        scale: int,
        bias: bool = True,
        groups: int = 1,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride=scale, padding=0, bias=bias, groups=groups
        )
        self.scale = int(scale)
        self.offset = math.ceil((int(kernel_size) - self.scale) / 2)

    def lr_reach(self) -> int:
        """Largest distance, in input pixels, from the input pixel whose cell holds an output pixel
        to any input pixel that contributes to it (exact, from the tap layout)."""
        s, k, off = self.scale, self.kernel_size[0], self.offset
        reach = 0
        for o in range(s):  # output pixels of input cell 0
            for i in range(-k - 1, k + 2):
                t = o + off - i * s  # tap index of input i on output o
                if 0 <= t < k:
                    reach = max(reach, abs(i))
        return reach

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        s = self.scale
        y = F.conv_transpose2d(x, self.weight, None, stride=s, groups=self.groups)
        h, w = x.shape[-2:]
        left = -self.offset
        top = -self.offset
        right = s * w - (y.shape[-1] + left)
        bottom = s * h - (y.shape[-2] + top)
        y = F.pad(y, (left, right, top, bottom))  # negative values crop
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y


def bilinear_kernel_1d(scale: int, size: int) -> torch.Tensor:
    """Linear-interpolation taps for a :class:`CenteredConvTranspose2d` (LapSRN's initialisation)."""
    s = int(scale)
    off = math.ceil((size - s) / 2)
    t = torch.arange(size, dtype=torch.float64)
    d = ((t - off - (s - 1) / 2) / s).abs()
    return (1 - d).clamp(min=0).float()


@torch.no_grad()
def init_interpolation(layer: CenteredConvTranspose2d, taps: torch.Tensor) -> None:
    """Set a transposed convolution to a separable per-channel interpolation kernel.

    Channel ``c`` maps to channel ``c`` (other weights zero); the bias is zeroed.
    """
    k2 = torch.outer(taps, taps).to(layer.weight)
    layer.weight.zero_()
    cin_per_group = layer.weight.shape[0] // layer.groups
    cout_per_group = layer.weight.shape[1]
    for c in range(min(layer.in_channels, layer.out_channels)):
        g_in = c // cin_per_group if layer.groups > 1 else 0
        j = c - g_in * cout_per_group if layer.groups > 1 else c
        if 0 <= j < cout_per_group:
            layer.weight[c, j] = k2
    if layer.bias is not None:
        layer.bias.zero_()


def lr_cells(half_width: float, factor: int) -> int:
    """LR cells crossed by a stencil of ``half_width`` pixels at resolution ``factor`` × LR.

    Summing this over consecutive stages bounds a network's LR receptive field from above.
    """
    return math.ceil(half_width / factor) if half_width > 0 else 0
