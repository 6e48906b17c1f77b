"""Making LR inputs from HR data (DESIGN §4: block mean or antialiased bicubic, never torch nearest).

Three degradations, all on the cell-centred grid (LR cell ``i`` covers HR cells ``s·i … s·i + s - 1``):

* ``"area"``: the block mean. Conservative: each coarse cell is the average of its sub-cells
  (fluxes, precipitation, any field where the coarse value is a cell average).
* ``"bicubic"``: ``torch.nn.functional.interpolate(mode="bicubic", antialias=True)``. Its kernel is
  Keys' cubic with ``a = -0.5`` stretched by ``s``, the same kernel and sample positions as MATLAB's
  ``imresize(x, 1/s, 'bicubic')``, so away from the borders the two agree to float rounding. In the
  two outermost LR cells at each border they differ (by up to a few % of the range): torch drops
  the taps that fall outside the array and renormalises the rest, MATLAB mirrors the array. The project's
  shipped weights and their scores use this one.
* ``"matlab"``: MATLAB ``imresize`` bicubic including its mirrored borders
  (:func:`sciSR.resize.imresize_matlab`), the convention of the SR benchmark scripts.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def _area(hr: torch.Tensor, scale: int) -> torch.Tensor:
    return F.avg_pool2d(hr, scale)


def _bicubic_torch(hr: torch.Tensor, scale: int) -> torch.Tensor:
    h, w = hr.shape[-2:]
    size = (h // scale, w // scale)
    return F.interpolate(hr, size=size, mode="bicubic", align_corners=False, antialias=True)


def _bicubic_matlab(hr: torch.Tensor, scale: int) -> torch.Tensor:
    from ..resize import imresize_matlab

    return imresize_matlab(hr, scale=1.0 / scale)


_DEGRADE_FUNCS: dict[str, Callable[[torch.Tensor, int], torch.Tensor]] = {
    "bicubic": _bicubic_torch,
    "area": _area,
    "matlab": _bicubic_matlab,
}

#: Names accepted by :func:`degrade`.
DEGRADATIONS: tuple[str, ...] = tuple(_DEGRADE_FUNCS)


def degrade(hr: torch.Tensor, scale: int, method: str = "bicubic") -> torch.Tensor:
    """Downsample ``hr`` by an integer ``scale`` on the cell-centred grid.

    Args:
        hr: HR batch; height and width must be multiples of ``scale``.
        scale: Integer factor (≥ 1).
        method: ``"bicubic"`` (torch antialiased bicubic), ``"area"`` (block mean) or
            ``"matlab"`` (MATLAB ``imresize`` bicubic); see the module notes.

    Returns:
        The LR batch, same dtype and device.

    Raises:
        ValueError: Unknown method, a tensor that is not 4-D, a scale below 1, or a size that is
            not a multiple of ``scale``.

    Shape:
        ``(N, C, s·H, s·W) -> (N, C, H, W)``.
    """
    fn = _DEGRADE_FUNCS.get(method)
    if fn is None:
        raise ValueError(f"unknown degradation '{method}'; choose one of {DEGRADATIONS}")
    if hr.ndim != 4:
        raise ValueError(
            f"degrade needs an (N, C, H, W) tensor, got shape {tuple(hr.shape)}; add [None, None]"
        )
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    scale = int(scale)
    h, w = hr.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"HR size {h}×{w} is not a multiple of scale {scale}; crop it first")
    return hr.clone() if scale == 1 else fn(hr, scale)
