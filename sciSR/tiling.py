"""Tiling in LR index space with a halo, and merging in HR space (DESIGN §5).

Windows all have the same size (so tiles batch), are clamped to the array (no artificial
padding at true borders) and overlap by at least ``2 * halo``. In ``crop`` mode every HR pixel
is taken from exactly one tile, cut at the middle of each overlap, so each kept pixel has at
least ``halo`` LR pixels of real context on every interior side: for a translation-equivariant
CNN whose receptive field is ≤ halo this reproduces whole-image inference to float rounding.
``hann`` and ``gaussian`` blend overlapping tiles for networks that are not equivariant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

BLEND_MODES = ("crop", "hann", "gaussian")


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Evenly spread starts of ``window``-long windows covering ``[0, length)``.

    Consecutive windows overlap by at least ``window - stride``.
    """
    if window >= length:
        return [0]
    n = math.ceil((length - window) / stride) + 1
    return [int(round(i * (length - window) / (n - 1))) for i in range(n)]


@dataclass(frozen=True)
class Window:
    """One tile: the LR window read, and the HR region of it that is kept (crop mode).

    ``y0:y1, x0:x1`` index the LR array; ``ky0:ky1, kx0:kx1`` the kept part in LR units
    (absolute); the four ``border`` flags say which sides lie on the array's true border.
    """

    y0: int
    y1: int
    x0: int
    x1: int
    ky0: int
    ky1: int
    kx0: int
    kx1: int
    top: bool
    bottom: bool
    left: bool
    right: bool


def _axis_plan(length: int, window: int, stride: int) -> list[tuple[int, int, int, int]]:
    starts = window_starts(length, window, stride)
    w = min(window, length)
    out = []
    for i, s in enumerate(starts):
        k0 = 0 if i == 0 else (starts[i - 1] + w + s) // 2
        k1 = length if i == len(starts) - 1 else (s + w + starts[i + 1]) // 2
        out.append((s, s + w, k0, k1))
    return out


@dataclass(frozen=True)
class Tiler:
    """Split an LR array into halo'd windows and merge the HR results.

    Args:
        tile: Core tile size in LR pixels (window = tile + 2·halo, at most the array).
        halo: LR pixels of context on each interior side (≥ the model's receptive field).
        scale: Upscaling factor.
        blend: ``"crop"`` (equivariant nets), ``"hann"`` or ``"gaussian"`` (others).
    """

    tile: int
    halo: int
    scale: int
    blend: str = "crop"

    def __post_init__(self) -> None:
        if self.blend not in BLEND_MODES:
            raise ValueError(f"unknown blend '{self.blend}'; choose one of {BLEND_MODES}")
        if self.tile < 1 or self.halo < 0:
            raise ValueError(f"tile must be ≥ 1 and overlap ≥ 0, got tile={self.tile}, overlap={self.halo}")

    def window_size(self, h: int, w: int) -> tuple[int, int]:
        """LR window height and width used for an ``h × w`` array."""
        p = self.tile + 2 * self.halo
        return min(p, h), min(p, w)

    def windows(self, h: int, w: int) -> list[Window]:
        """All windows covering an ``h × w`` LR array."""
        ph, pw = self.window_size(h, w)
        rows = _axis_plan(h, ph, self.tile)
        cols = _axis_plan(w, pw, self.tile)
        return [
            Window(y0, y1, x0, x1, ky0, ky1, kx0, kx1, y0 == 0, y1 == h, x0 == 0, x1 == w)
            for (y0, y1, ky0, ky1) in rows
            for (x0, x1, kx0, kx1) in cols
        ]

    def weight(self, win: Window, device: torch.device | None = None) -> torch.Tensor:
        """HR blending weight of one window, ``(hH, hW)``; flat (=1) toward true borders.

        Shape:
            ``(s·(y1-y0), s·(x1-x0))``.
        """
        s = self.scale
        wy = _ramp_1d((win.y1 - win.y0) * s, 2 * self.halo * s, self.blend, win.top, win.bottom)
        wx = _ramp_1d((win.x1 - win.x0) * s, 2 * self.halo * s, self.blend, win.left, win.right)
        return torch.from_numpy(np.outer(wy, wx).astype(np.float32)).to(device)

    def merge_into(self, out: torch.Tensor, wsum: torch.Tensor | None, y: torch.Tensor, win: Window) -> None:
        """Write one HR tile ``y`` (``(C, sh, sw)``) into ``out`` (``(C, sH, sW)``).

        In crop mode only the kept region is copied; in blend modes ``y·weight`` is accumulated
        into ``out`` and the weight into ``wsum`` (divide at the end).
        """
        s = self.scale
        if self.blend == "crop":
            oy, ox = (win.ky0 - win.y0) * s, (win.kx0 - win.x0) * s
            hy, hx = (win.ky1 - win.ky0) * s, (win.kx1 - win.kx0) * s
            out[:, win.ky0 * s : win.ky1 * s, win.kx0 * s : win.kx1 * s] = y[:, oy : oy + hy, ox : ox + hx]
            return
        assert wsum is not None
        w = self.weight(win, y.device)
        out[:, win.y0 * s : win.y1 * s, win.x0 * s : win.x1 * s] += y * w
        wsum[win.y0 * s : win.y1 * s, win.x0 * s : win.x1 * s] += w


def _ramp_1d(n: int, ramp: int, mode: str, flat_start: bool, flat_end: bool) -> np.ndarray:
    """1-D blending profile of length ``n``; strictly positive everywhere."""
    x = np.ones(n, dtype=np.float64)
    if mode == "gaussian":
        c = (n - 1) / 2
        sigma = max(n / 8, 1.0)
        g = np.exp(-0.5 * ((np.arange(n) - c) / sigma) ** 2)
        if flat_start:
            g[: int(c) + 1] = 1.0
        if flat_end:
            g[int(math.ceil(c)) :] = 1.0
        return np.maximum(g, 1e-3)
    ramp = min(ramp, n // 2)
    if ramp > 0:
        r = np.sin(0.5 * np.pi * (np.arange(ramp) + 0.5) / ramp) ** 2
        if not flat_start:
            x[:ramp] = r
        if not flat_end:
            x[n - ramp :] = np.minimum(x[n - ramp :], r[::-1])
    return x
