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
    return [round(i * (length - window) / (n - 1)) for i in range(n)]


def fit_window(length: int, tile: int, halo: int) -> int:
    """Window size for one axis: the fewest windows of at most ``tile + 2·halo`` that cover it.

    The windows are then shrunk to the smallest equal size that still covers ``length`` with
    overlaps of ``2·halo``, so no LR pixel is processed more often than the halo requires
    (spreading full-size windows instead can overlap far more than ``2·halo``).
    """
    full = tile + 2 * halo
    if full >= length:
        return length
    n = math.ceil((length - 2 * halo) / tile)
    return min(full, math.ceil((length + (n - 1) * 2 * halo) / n))


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


def _lattice_plan(length: int, tile: int, halo: int) -> list[tuple[int, int, int, int]]:
    """Windows whose kept cores are ``[k·tile, (k+1)·tile)`` (the last one shorter).

    Each window is ``tile + 2·halo`` long (at most ``length``), centred on its core and shifted
    inward at the array's ends, so every interior side of a core keeps at least ``halo`` pixels of
    context.
    """
    w = min(tile + 2 * halo, length)
    out = []
    for k0 in range(0, length, tile):
        k1 = min(k0 + tile, length)
        start = min(max(k0 - halo, 0), length - w)
        out.append((start, start + w, k0, k1))
    return out


@dataclass(frozen=True)
class Tiler:
    """Split an LR array into halo'd windows and merge the HR results.

    Args:
        tile: Core tile size in LR pixels (window = tile + 2·halo, at most the array).
        halo: LR pixels of context on each interior side (≥ the model's receptive field).
        scale: Upscaling factor.
        blend: ``"crop"`` (equivariant nets), ``"hann"`` or ``"gaussian"`` (others).
        lattice: Crop mode only: kept cores on the regular lattice ``k·tile`` (the last one
            shorter) instead of windows spread evenly; blocks grouped from whole cores then have
            equal sizes, which file formats with regular chunks (Zarr, NetCDF-4) need.
    """

    tile: int
    halo: int
    scale: int
    blend: str = "crop"
    lattice: bool = False

    def __post_init__(self) -> None:
        if self.blend not in BLEND_MODES:
            raise ValueError(f"unknown blend '{self.blend}'; choose one of {BLEND_MODES}")
        if self.tile < 1 or self.halo < 0:
            raise ValueError(f"tile must be ≥ 1 and overlap ≥ 0, got tile={self.tile}, overlap={self.halo}")

    def window_size(self, h: int, w: int) -> tuple[int, int]:
        """LR window height and width used for an ``h × w`` array (see :func:`fit_window`)."""
        return fit_window(h, self.tile, self.halo), fit_window(w, self.tile, self.halo)

    def windows(self, h: int, w: int) -> list[Window]:
        """All windows covering an ``h × w`` LR array."""
        if self.lattice and self.blend == "crop":
            rows = _lattice_plan(h, self.tile, self.halo)
            cols = _lattice_plan(w, self.tile, self.halo)
        else:
            ph, pw = self.window_size(h, w)
            rows = _axis_plan(h, ph, self.tile)
            cols = _axis_plan(w, pw, self.tile)
        return [
            Window(y0, y1, x0, x1, ky0, ky1, kx0, kx1, y0 == 0, y1 == h, x0 == 0, x1 == w)
            for (y0, y1, ky0, ky1) in rows
            for (x0, x1, kx0, kx1) in cols
        ]

    def weight(self, win: Window, device: torch.device | None = None) -> torch.Tensor:
        """HR blending weight of one window; flat (=1) toward true borders, 0 at interior edges.

        Shape:
            ``(s·(y1-y0), s·(x1-x0))``.
        """
        s = self.scale
        wy = _ramp_1d((win.y1 - win.y0) * s, self.halo * s, self.blend, win.top, win.bottom)
        wx = _ramp_1d((win.x1 - win.x0) * s, self.halo * s, self.blend, win.left, win.right)
        return torch.from_numpy(np.outer(wy, wx).astype(np.float32)).to(device)

    def touching(self, wins: list[Window], region: tuple[int, int, int, int]) -> list[Window]:
        """The windows of ``wins`` that contribute to the HR block of the LR ``region``.

        ``region`` is ``(y0, y1, x0, x1)`` in LR pixels; crop mode keeps the windows whose kept core
        meets it, blend modes every window that overlaps it. The order of ``wins`` is kept.
        """
        y0, y1, x0, x1 = region
        if self.blend == "crop":
            return [w for w in wins if w.ky0 < y1 and w.ky1 > y0 and w.kx0 < x1 and w.kx1 > x0]
        return [w for w in wins if w.y0 < y1 and w.y1 > y0 and w.x0 < x1 and w.x1 > x0]

    def merge_into(
        self,
        out: torch.Tensor,
        wsum: torch.Tensor | None,
        y: torch.Tensor,
        win: Window,
        block: tuple[int, int, int, int] | None = None,
    ) -> None:
        """Write one HR tile ``y`` (``(C, sh, sw)``) into ``out`` (``(C, sH, sW)``).

        In crop mode only the kept region is copied; in blend modes ``y·weight`` is accumulated
        into ``out`` and the weight into ``wsum`` (divide at the end).

        Args:
            out: HR accumulator: the whole array, or the block described by ``block``.
            wsum: Weight accumulator of the same HR size (``None`` in crop mode).
            y: The window's HR output.
            win: The window.
            block: ``(ly0, lx0, hh, hw)``: ``out`` holds the HR block of ``hh × hw`` pixels whose
                top-left corner is LR pixel ``(ly0, lx0)``; ``None``: ``out`` is the whole array.
        """
        s = self.scale
        by, bx = (0, 0) if block is None else (block[0] * s, block[1] * s)
        hh, hw = out.shape[-2:] if block is None else block[2:]
        if self.blend == "crop":
            ty0, ty1, tx0, tx1 = win.ky0 * s, win.ky1 * s, win.kx0 * s, win.kx1 * s
        else:
            ty0, ty1, tx0, tx1 = win.y0 * s, win.y1 * s, win.x0 * s, win.x1 * s
        # the window's HR target, clipped to the block, in block coordinates
        cy0, cy1 = max(ty0 - by, 0), min(ty1 - by, hh)
        cx0, cx1 = max(tx0 - bx, 0), min(tx1 - bx, hw)
        if cy0 >= cy1 or cx0 >= cx1:
            return
        # the same pixels in the window's own HR coordinates
        wy0, wx0 = cy0 + by - win.y0 * s, cx0 + bx - win.x0 * s
        wy1, wx1 = wy0 + (cy1 - cy0), wx0 + (cx1 - cx0)
        if self.blend == "crop":
            out[:, cy0:cy1, cx0:cx1] = y[:, wy0:wy1, wx0:wx1]
            return
        assert wsum is not None
        w = self.weight(win, y.device)
        if self.halo == 0:
            w = torch.ones_like(w)
        w = w[wy0:wy1, wx0:wx1]
        out[:, cy0:cy1, cx0:cx1] += y[:, wy0:wy1, wx0:wx1] * w
        wsum[cy0:cy1, cx0:cx1] += w


def _ramp_1d(n: int, halo: int, mode: str, flat_start: bool, flat_end: bool) -> np.ndarray:
    """1-D blending profile of length ``n`` (HR pixels) for a window with ``halo`` HR pixels of context.

    On interior sides the outer ``halo // 2`` pixels get weight 0 (they are the ones most
    disturbed by the window edge), then the weight rises over ``halo`` pixels (raised cosine
    or Gaussian flank) to 1. Neighbouring windows overlap by ≥ ``2·halo``, so every pixel keeps
    a positive total weight. Sides on the array's true border stay flat (weight 1).
    """
    x = np.ones(n, dtype=np.float64)
    margin = min(halo // 2, n // 4)
    ramp = max(min(halo, n // 2 - margin), 1)
    t = (np.arange(ramp) + 0.5) / ramp
    r = np.exp(-0.5 * ((1.0 - t) / 0.4) ** 2) if mode == "gaussian" else np.sin(0.5 * np.pi * t) ** 2
    prof = np.concatenate([np.zeros(margin), r])
    k = len(prof)
    if not flat_start:
        x[:k] = np.minimum(x[:k], prof)
    if not flat_end:
        x[n - k :] = np.minimum(x[n - k :], prof[::-1])
    return x
