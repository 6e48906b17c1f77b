"""Interpolation conventions for pre-upsampling and bicubic skips: torch bicubic and MATLAB ``imresize``.

Two bicubic conventions are in use in super-resolution, both on the cell-centred grid
(output pixel ``i`` of an axis resized by ``s`` samples input coordinate ``(i + 0.5)/s - 0.5``):

* ``"bicubic"``: ``torch.nn.functional.interpolate(mode="bicubic", align_corners=False)``, the
  Keys kernel with ``a = -0.75``, border samples replicated. sciSR's default.
* ``"matlab"``: MATLAB's ``imresize(..., 'bicubic')``, the Keys kernel with ``a = -0.5``, borders
  mirrored symmetrically (``x[-1] = x[0]``, ``x[-2] = x[1]``, ...), and, when shrinking, the
  kernel stretched by ``1/s`` (antialiasing). Networks trained on MATLAB-made inputs (the
  original SRCNN, VDSR, DRCN, DRRN, LapSRN weights) expect this one.

:func:`imresize_matlab` reproduces MATLAB's index and weight computation (``contributions`` in
``imresize.m``): for output index ``i`` (1-based) the input coordinate is
``u = i/s + (1 - 1/s)/2``; the taps are ``floor(u - w/2) + (0 … ceil(w) + 1)`` with kernel width
``w = 4`` (``4/s`` when antialiasing a shrink), weights ``h(u - j)`` normalised to sum 1, and tap
indices outside ``1…n`` folded back into the axis by symmetric mirroring. Computation is in
floating point throughout (MATLAB rounds integer images; no rounding happens here).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

#: Names accepted by :func:`upsample` (and by the ``upsampler=`` option of pre-upsampling models).
UPSAMPLERS: tuple[str, ...] = ("bicubic", "matlab")


def cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel (``a = -0.5`` in MATLAB, ``-0.75`` in torch/OpenCV).

    Shape:
        ``(...) -> (...)``.
    """
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    inner = (a + 2) * ax3 - (a + 3) * ax2 + 1
    outer = a * ax3 - 5 * a * ax2 + 8 * a * ax - 4 * a
    return np.where(ax <= 1, inner, np.where(ax <= 2, outer, 0.0))


def matlab_contributions(
    in_len: int, out_len: int, scale: float, antialias: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Tap indices (0-based, mirrored into the axis) and weights of MATLAB bicubic ``imresize``.

    Args:
        in_len: Input length of the axis.
        out_len: Output length of the axis.
        scale: Output/input scale of the axis (MATLAB uses the requested scale, not
            ``out_len / in_len``, when a scale factor is given).
        antialias: Stretch the kernel by ``1/scale`` when ``scale < 1`` (MATLAB's default).

    Returns:
        ``(indices, weights)``, both ``(out_len, taps)``; ``weights`` rows sum to 1.
    """
    if in_len < 1 or out_len < 1:
        raise ValueError(f"imresize needs non-empty axes, got input {in_len} → output {out_len}")
    shrink = antialias and scale < 1
    width = 4.0 / scale if shrink else 4.0
    i = np.arange(1, out_len + 1, dtype=np.float64)
    u = i / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = math.ceil(width) + 2
    idx = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # 1-based
    d = u[:, None] - idx
    w = scale * cubic(scale * d) if shrink else cubic(d)
    w = w / w.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    idx0 = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    return idx0, w


def _resize_axis(x: Any, dim: int, out_len: int, scale: float, antialias: bool) -> Any:
    import torch

    idx, w = matlab_contributions(x.shape[dim], out_len, scale, antialias)
    idx_t = torch.as_tensor(idx, device=x.device)
    w_t = torch.as_tensor(w, dtype=x.dtype, device=x.device)
    shape = [1] * x.ndim
    shape[dim] = out_len
    out = None
    for p in range(idx.shape[1]):
        term = x.index_select(dim, idx_t[:, p]) * w_t[:, p].reshape(shape)
        out = term if out is None else out + term
    return out


def imresize_matlab(
    x: Any,
    scale: float | tuple[float, float] | None = None,
    size: tuple[int, int] | None = None,
    antialias: bool = True,
) -> Any:
    """MATLAB ``imresize(x, scale, 'bicubic')`` over the last two axes.

    Args:
        x: Tensor or array ``(..., H, W)``; integer inputs are computed in float32.
        scale: Scale factor (one for both axes or ``(s_h, s_w)``); the output is
            ``ceil(H·s_h) × ceil(W·s_w)`` as in MATLAB.
        size: Output ``(H_out, W_out)`` instead of ``scale`` (the per-axis scale is then
            ``H_out/H``, ``W_out/W``).
        antialias: Antialias when shrinking (MATLAB's default ``'Antialiasing', true``).

    Returns:
        The resized data, of the input's type (tensor or array) and floating dtype;
        float16/bfloat16 tensors are computed in float32 and cast back.

    Raises:
        ValueError: Neither or both of ``scale`` and ``size`` given, or a non-positive value.

    Shape:
        ``(..., H, W) -> (..., H_out, W_out)``.
    """
    import torch

    if (scale is None) == (size is None):
        raise ValueError("imresize_matlab needs exactly one of scale= or size=")
    is_numpy = not isinstance(x, torch.Tensor)
    t = torch.as_tensor(np.asarray(x)) if is_numpy else x
    if t.ndim < 2:
        raise ValueError(f"imresize_matlab resizes the last two axes; got shape {tuple(t.shape)}")
    in_hw = (int(t.shape[-2]), int(t.shape[-1]))
    if size is not None:
        out_hw = (int(size[0]), int(size[1]))
        if min(out_hw) < 1:
            raise ValueError(f"output size must be positive, got {size}")
        scales = (out_hw[0] / in_hw[0], out_hw[1] / in_hw[1])
    else:
        sh, sw = (scale, scale) if isinstance(scale, (int, float)) else scale  # type: ignore[misc]
        scales = (float(sh), float(sw))
        if min(scales) <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        out_hw = (math.ceil(in_hw[0] * scales[0]), math.ceil(in_hw[1] * scales[1]))
    out_dtype = t.dtype if t.is_floating_point() else torch.float32
    low = out_dtype in (torch.float16, torch.bfloat16) or not t.is_floating_point()
    work = t.to(torch.float32) if low else t
    # MATLAB resizes the axis with the smaller scale first (ties: rows first)
    order = sorted(range(2), key=lambda k: (scales[k], k))
    for k in order:
        dim = work.ndim - 2 + k
        if out_hw[k] != in_hw[k] or scales[k] != 1.0:
            work = _resize_axis(work, dim, out_hw[k], scales[k], antialias)
    work = work.to(out_dtype)
    return work.numpy() if is_numpy else work


def _torch_bicubic(x: Any, scale: int) -> Any:
    import torch.nn.functional as F

    return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)


def _matlab_bicubic(x: Any, scale: int) -> Any:
    return imresize_matlab(x, scale=float(scale))


_UPSAMPLE_FUNCS: dict[str, Callable[[Any, int], Any]] = {
    "bicubic": _torch_bicubic,
    "matlab": _matlab_bicubic,
}


def check_upsampler(method: str) -> str:
    """Validate an upsampler name (see :data:`UPSAMPLERS`).

    Raises:
        ValueError: Unknown name.
    """
    if method not in _UPSAMPLE_FUNCS:
        raise ValueError(
            f"unknown upsampler {method!r}; choose 'bicubic' (torch, a=-0.75, sciSR's default) or "
            f"'matlab' (MATLAB imresize, a=-0.5, needed by weights trained on MATLAB-made inputs)"
        )
    return method


def upsample(x: Any, scale: int, method: str = "bicubic") -> Any:
    """Upsample a ``(N, C, H, W)`` tensor by an integer ``scale`` with the named convention.

    Shape:
        ``(N, C, H, W) -> (N, C, H*scale, W*scale)``.
    """
    fn = _UPSAMPLE_FUNCS[check_upsampler(method)]
    return x if scale == 1 else fn(x, scale)
