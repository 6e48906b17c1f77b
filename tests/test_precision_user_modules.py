"""Reduced precision for plain ``nn.Module``s users pass (not sciSR architectures)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import sciSR
from sciSR.pipeline import Pipeline
from sciSR.precision import fp32_marked, profile_model


class _ResidualSubPixel(nn.Module):
    """A user's network: conv head, residual body with a long skip, sub-pixel tail."""

    def __init__(self, s: int = 2, f: int = 32) -> None:
        super().__init__()
        self.head = nn.Conv2d(1, f, 3, padding=1)
        blocks = [nn.Sequential(nn.Conv2d(f, f, 3, padding=1), nn.ReLU()) for _ in range(4)]
        self.body = nn.Sequential(*blocks)
        self.up = nn.Sequential(nn.Conv2d(f, s * s, 3, padding=1), nn.PixelShuffle(s))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        return self.up(h + self.body(h))


def test_plain_module_gets_fp32_image_layers_and_unrounded_output() -> None:
    torch.manual_seed(0)
    m = _ResidualSubPixel()
    prof = profile_model(m, 1, 2)
    assert prof.fp32_layers == ("head", "up.0")  # entry conv, and the conv feeding the pixel shuffle
    x = (np.linspace(0, 1, 32 * 40).reshape(1, 1, 32, 40) + 100.0).astype(np.float32)  # large offset
    p16 = Pipeline.build(m, 2, precision="bf16", norm=None, tile=0)
    p32 = Pipeline.build(m, 2, precision="fp32", norm=None, tile=0)
    y16, y32 = p16.run(x, p16.fit(x)), p32.run(x, p32.fit(x))
    assert {id(q) for q in fp32_marked(p16.model)} == {id(p16.model.head), id(p16.model.up[0])}
    # bf16 has 8 mantissa bits: rounding ~100-valued outputs would leave steps of 0.5
    exact = float(np.mean(y16 == torch.from_numpy(y16).bfloat16().float().numpy()))
    assert exact < 0.01
    assert np.abs(y16 - y32).max() < 0.05 * np.abs(y32 - y32.mean()).max()
    # the user's module is untouched and plain downscale works with it
    assert not fp32_marked(m) and all(not q._forward_pre_hooks for q in m.modules())
    assert sciSR.downscale(x[0, 0], model=m, scale=2).shape == (64, 80)
