"""Making LR inputs from HR data (DESIGN §4: block mean or antialiased bicubic, never torch nearest).

Every degradation works on the cell-centred grid: LR cell ``i`` of an axis reduced by ``s`` covers
HR cells ``s·i … s·i + s - 1`` and its centre lies at HR index coordinate ``c_i = s·i + (s - 1)/2``
(HR cell ``j`` centred at ``j``). Borders are treated by symmetric mirroring (``x[-1] = x[0]``,
``x[-2] = x[1]``, ...) unless a method says otherwise.

* ``"bicubic"``: ``torch.nn.functional.interpolate(mode="bicubic", antialias=True)``. Its kernel is
  Keys' cubic with ``a = -0.5`` stretched by ``s``, the same kernel and sample positions as MATLAB's
  ``imresize(x, 1/s, 'bicubic')``, so away from the borders the two agree to float rounding. In the
  two outermost LR cells at each border they differ (by up to a few % of the range): torch drops
  the taps that fall outside the array and renormalises the rest, MATLAB mirrors the array. The project's
  shipped weights and their scores use this one.
* ``"matlab"``: MATLAB ``imresize`` bicubic including its mirrored borders
  (:func:`sciSR.resize.imresize_matlab`), the convention of the SR benchmark scripts.
* ``"area"``: the block mean. Conservative: each coarse cell is the average of its sub-cells
  (fluxes, precipitation, any field where the coarse value is a cell average).
* ``"gaussian"``: Gaussian blur then decimation at the LR cell centres (the "BD" degradation of
  the SR literature).
* ``"kspace"``: truncation of the 2-D Fourier spectrum to its central ``1/s`` (MRI acquired at a
  lower matrix size).
* ``"slice"``: a rectangular slice profile along one axis only (through-plane MRI: thick slices).

Any method also takes ``noise`` (standard deviation of additive Gaussian noise in data units,
added to the LR) and ``generator`` (a ``torch.Generator`` that makes the noise reproducible);
see :func:`add_noise`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def _mirror(idx: np.ndarray, n: int) -> np.ndarray:
    """Fold indices into ``0 … n-1`` by symmetric mirroring (``-1 → 0``, ``n → n-1``; any distance)."""
    period = np.concatenate([np.arange(n), np.arange(n - 1, -1, -1)])
    return period[np.mod(idx, 2 * n)]


def _centres(n: int, s: int) -> np.ndarray:
    """HR index coordinates of the ``n // s`` LR cell centres."""
    return s * np.arange(n // s, dtype=np.float64) + (s - 1) / 2.0


def _matrix_from_taps(n: int, first: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``(m, n)`` matrix from per-row taps ``first[i] + k`` (any integers) with ``weights[i, k]``,
    taps outside the axis mirrored back in, rows normalised to sum 1."""
    m, k = weights.shape
    idx = _mirror(first[:, None] + np.arange(k)[None, :], n)
    mat = np.zeros((m, n))
    np.add.at(mat, (np.repeat(np.arange(m), k), idx.ravel()), weights.ravel())
    return mat / mat.sum(axis=1, keepdims=True)


@lru_cache(maxsize=64)
def gaussian_matrix(n: int, scale: int, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """Weights of :func:`_gaussian` along one axis of length ``n``.

    Row ``i`` holds ``exp(-(j - c_i)² / (2σ²))`` for the HR cells ``j`` with
    ``|j - c_i| ≤ truncate·σ + ½``, mirrored at the borders and normalised to sum 1. With ``σ = 0``
    it takes the HR cell at ``c_i`` (odd ``s``) or the mean of the two cells around it (even ``s``).

    Shape:
        ``-> (n // scale, n)``, float64.
    """
    c = _centres(n, scale)
    reach = truncate * sigma + 0.5
    first = np.ceil(c - reach).astype(np.int64)
    k = int(np.floor(c[0] + reach) - first[0]) + 1 if len(c) else 1
    d = first[:, None] + np.arange(k)[None, :] - c[:, None]
    inside = np.abs(d) <= reach + 1e-9
    if sigma > 0:
        w = np.where(inside, np.exp(-0.5 * (d / sigma) ** 2), 0.0)
    else:
        w = np.where(np.abs(d) <= 0.5 + 1e-9, 1.0, 0.0)
    return _matrix_from_taps(n, first, w)


@lru_cache(maxsize=64)
def slice_matrix(n: int, scale: int, thickness: float) -> np.ndarray:
    """Weights of :func:`_slice` along one axis of length ``n``.

    Row ``i`` holds, for each HR slice ``j`` (covering ``[j - ½, j + ½]``), the length of its
    overlap with the LR slice profile ``[c_i - t/2, c_i + t/2]``, divided by ``t``; mirrored at
    the borders.

    Shape:
        ``-> (n // scale, n)``, float64.
    """
    c = _centres(n, scale)
    lo, hi = c - thickness / 2.0, c + thickness / 2.0
    first = np.floor(lo + 0.5).astype(np.int64)
    k = int(np.floor(hi[0] + 0.5) - first[0]) + 1 if len(c) else 1
    j = first[:, None] + np.arange(k)[None, :]
    w = np.clip(np.minimum(j + 0.5, hi[:, None]) - np.maximum(j - 0.5, lo[:, None]), 0.0, None)
    return _matrix_from_taps(n, first, w)


def _apply_matrix(x: torch.Tensor, mat: np.ndarray, dim: int) -> torch.Tensor:
    """Contract axis ``dim`` (-2 or -1) of ``x`` with ``mat`` ``(m, n)``; low-precision floats in float32."""
    work = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    m = torch.as_tensor(mat, dtype=work.dtype, device=work.device)
    out = m @ work if dim == -2 else work @ m.T
    return out.to(x.dtype)


def _area(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """Block mean: ``lr[i, j] = mean(hr[s·i : s·i + s, s·j : s·j + s])``.

    Shape:
        ``(N, C, s·H, s·W) -> (N, C, H, W)``.
    """
    return F.avg_pool2d(hr, scale)


def _bicubic_torch(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """``lr[i] = Σ_j k((j - c_i)/s) hr[j] / Σ_j k((j - c_i)/s)`` over the HR cells inside the array,
    ``k`` Keys' cubic (``a = -0.5``), per axis (torch ``interpolate(..., antialias=True)``).

    Shape:
        ``(N, C, s·H, s·W) -> (N, C, H, W)``.
    """
    h, w = hr.shape[-2:]
    size = (h // scale, w // scale)
    return F.interpolate(hr, size=size, mode="bicubic", align_corners=False, antialias=True)


def _bicubic_matlab(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """As ``"bicubic"`` with the taps outside the array mirrored in (MATLAB ``imresize``).

    Shape:
        ``(N, C, s·H, s·W) -> (N, C, H, W)``.
    """
    from ..resize import imresize_matlab

    return imresize_matlab(hr, scale=1.0 / scale)


def _gaussian(
    hr: torch.Tensor, scale: int, sigma: float | None = None, truncate: float = 4.0
) -> torch.Tensor:
    """Gaussian blur of standard deviation ``σ`` (HR cells), sampled at the LR cell centres.

    ``lr[i] = Σ_j g(j - c_i) hr[j] / Σ_j g(j - c_i)`` per axis, ``g(d) = exp(-d²/(2σ²))`` over
    ``|d| ≤ truncate·σ + ½`` (the truncation of ``scipy.ndimage.gaussian_filter``), ``c_i = s·i + (s-1)/2``
    the centre of LR cell ``i`` (the centre of its block, as for ``"area"``), borders mirrored. For
    odd ``s`` this is exactly ``gaussian_filter(hr, σ, mode="reflect")[s//2::s, s//2::s]``; for even
    ``s`` the centres fall between HR cells and the kernel is sampled at half-integer offsets.

    Default ``σ = s/2`` (our choice): inside the kernel-width ranges of the "Gaussian8" blind-SR
    benchmark (Gu et al., CVPR 2019: 0.8–1.6 at ×2, 1.35–2.4 at ×3, 1.8–3.2 at ×4), and it
    attenuates the LR Nyquist frequency to ``exp(-π²/8) ≈ 0.29`` of its amplitude at every scale.

    Shape:
        ``(N, C, s·H, s·W) -> (N, C, H, W)``.
    """
    sig = 0.5 * scale if sigma is None else float(sigma)
    if not math.isfinite(sig) or sig < 0 or not truncate > 0:
        raise ValueError(
            f"gaussian degradation needs sigma >= 0 and truncate > 0, got {sigma!r} and {truncate!r}"
        )
    h, w = hr.shape[-2:]
    out = _apply_matrix(hr, gaussian_matrix(h, scale, sig, float(truncate)), -2)
    return _apply_matrix(out, gaussian_matrix(w, scale, sig, float(truncate)), -1)


def _kspace_axis(x: torch.Tensor, scale: int, dim: int) -> torch.Tensor:
    """Keep the central ``n/s`` frequencies of axis ``dim`` (complex in, complex out), see :func:`_kspace`."""
    n = x.shape[dim]
    m = n // scale
    spec = torch.fft.fft(x, dim=dim)
    k = np.fft.fftfreq(n, d=1.0 / n).round().astype(np.int64)  # signed integer frequencies
    weight = np.where(np.abs(k) < m / 2, 1.0, np.where(np.abs(k) == m / 2, 0.5, 0.0))
    keep = np.nonzero(weight)[0]
    # shift by (s - 1)/2 HR cells so the LR samples fall on the LR cell centres
    phase = np.exp(2j * np.pi * k[keep] * (scale - 1) / 2.0 / n) * weight[keep] * (m / n)
    shape = [1] * x.ndim
    shape[dim] = len(keep)
    cdtype = spec.dtype
    picked = spec.index_select(dim, torch.as_tensor(keep, device=x.device))
    picked = picked * torch.as_tensor(phase, dtype=cdtype, device=x.device).reshape(shape)
    lr_spec = torch.zeros(
        *[m if d == dim % x.ndim else s for d, s in enumerate(x.shape)], dtype=cdtype, device=x.device
    )
    lr_spec.index_add_(dim, torch.as_tensor(np.mod(k[keep], m), device=x.device), picked)
    return torch.fft.ifft(lr_spec, dim=dim)


def _kspace(hr: torch.Tensor, scale: int, magnitude: bool = False) -> torch.Tensor:
    """Truncation of the 2-D spectrum to its central ``1/s`` in both axes (MRI at a lower matrix size).

    Per axis of length ``n`` (``m = n/s`` kept): ``X = FFT(x)``; the frequencies ``|k| < m/2`` are kept,
    and for even ``m`` the two bins ``k = ±m/2`` with half weight each, which is the real part of
    the usual asymmetric acquisition ``k = -m/2 … m/2 - 1`` along that axis (a real field stays real,
    and the 2-D operator, applied axis by axis, commutes with flips and transposes);
    ``lr = (m/n)·IFFT_m(X_kept · exp(2πi·k·(s-1)/(2n)))``. The factor ``m/n`` keeps a constant field
    constant; the phase ramp puts LR sample ``i`` at the LR cell centre ``s·i + (s-1)/2``, so a field
    band-limited below the LR Nyquist frequency comes out exactly sampled at the LR cell centres.
    The field is treated as periodic (the FFT's assumption); sharp edges ring (Gibbs), as in real
    truncated acquisitions.

    Args:
        magnitude: Return ``|lr|`` (what an MRI scanner reconstructs from the truncated complex
            data) instead of its real part (default: the linear operator; signed fields keep their sign).

    Shape:
        ``(N, C, s·H, s·W) -> (N, C, H, W)``.
    """
    dtype = hr.dtype
    work = hr.float() if dtype in (torch.float16, torch.bfloat16) else hr
    out = _kspace_axis(_kspace_axis(work, scale, -2), scale, -1)
    res = out.abs() if magnitude else out.real
    return res.to(dtype).contiguous()


def _slice(
    hr: torch.Tensor,
    scale: int,
    axis: int = -2,
    thickness: float | None = None,
    gap: float | None = None,
) -> torch.Tensor:
    """Thick slices along one axis: a rectangular slice profile, spacing ``s`` HR slices.

    LR slice ``i`` is centred at ``c_i = s·i + (s-1)/2`` and averages the HR slices over
    ``[c_i - t/2, c_i + t/2]`` weighted by their overlap (``t`` = ``thickness`` in HR slices, may be
    fractional or larger than ``s`` for overlapping slices); slices beyond the borders are mirrored.
    The slice spacing is ``s`` by construction, so ``thickness + gap = s``: pass either (default
    ``thickness = s``, ``gap = 0``: contiguous slices, the block mean along ``axis``). Only ``axis``
    is reduced; the other axis keeps its size.

    Args:
        axis: ``-2`` (rows, ``H``) or ``-1`` (columns, ``W``); ``2``/``3`` are accepted as aliases.
        thickness: Slice thickness in HR slices.
        gap: Gap between slices in HR slices (``thickness = s - gap``).

    Shape:
        ``(N, C, s·H, W) -> (N, C, H, W)`` for ``axis=-2``.
    """
    dim = _slice_dim(axis)
    t = _slice_thickness(scale, thickness, gap)
    return _apply_matrix(hr, slice_matrix(hr.shape[dim], scale, t), dim)


def _slice_dim(axis: Any) -> int:
    if axis not in (-2, -1, 2, 3):
        raise ValueError(f"slice degradation reduces axis -2 (rows) or -1 (columns), got axis={axis!r}")
    return -2 if axis in (-2, 2) else -1


def _slice_thickness(scale: int, thickness: float | None, gap: float | None) -> float:
    if thickness is None:
        t = scale - (0.0 if gap is None else float(gap))
    else:
        t = float(thickness)
        if gap is not None and not math.isclose(t + float(gap), scale):
            raise ValueError(
                f"slice thickness {thickness} + gap {gap} must equal the slice spacing, scale {scale}; "
                f"pass only one of them"
            )
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"slice thickness must be positive, got {t:g} (thickness={thickness}, gap={gap})")
    return t


@dataclass(frozen=True)
class Degradation:
    """A registered degradation: ``fn(hr, scale, **options)`` and the axes it reduces.

    Attributes:
        fn: The operator on a 4-D tensor.
        options: Keyword options ``fn`` accepts (beyond ``hr`` and ``scale``).
        axes: Given the options, the tensor dims reduced by ``scale``.
    """

    fn: Callable[..., torch.Tensor]
    options: tuple[str, ...] = ()
    axes: Callable[[dict[str, Any]], tuple[int, ...]] = lambda _opts: (-2, -1)


_REGISTRY: dict[str, Degradation] = {
    "bicubic": Degradation(_bicubic_torch),
    "area": Degradation(_area),
    "matlab": Degradation(_bicubic_matlab),
    "gaussian": Degradation(_gaussian, ("sigma", "truncate")),
    "kspace": Degradation(_kspace, ("magnitude",)),
    "slice": Degradation(
        _slice, ("axis", "thickness", "gap"), lambda opts: (_slice_dim(opts.get("axis", -2)),)
    ),
}

#: Names accepted by :func:`degrade`.
DEGRADATIONS: tuple[str, ...] = tuple(_REGISTRY)


def reduced_axes(method: str, **options: Any) -> tuple[int, ...]:
    """The dims (``-2``, ``-1``) that ``method`` with ``options`` shrinks by the scale.

    Raises:
        ValueError: Unknown method.
    """
    return _lookup(method).axes(options)


def _lookup(method: str) -> Degradation:
    entry = _REGISTRY.get(method)
    if entry is None:
        raise ValueError(f"unknown degradation '{method}'; choose one of {DEGRADATIONS}")
    return entry


def add_noise(x: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``x + σ·ε`` with ``ε ~ N(0, 1)`` per element (σ in data units, e.g. normalized units in training).

    The noise is drawn in ``x``'s dtype on the generator's device (``x``'s device without a
    generator) and moved to ``x``: one seeded CPU generator gives the same noise for a CPU and a
    GPU tensor.

    Raises:
        ValueError: ``sigma`` negative or not finite.

    Shape:
        ``(...) -> (...)``.
    """
    sigma = float(sigma)
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"noise must be a standard deviation >= 0 in data units, got {sigma!r}")
    if sigma == 0:
        return x
    dev = generator.device if generator is not None else x.device
    eps = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=dev)
    return x + sigma * eps.to(x.device)


def degrade(
    hr: torch.Tensor,
    scale: int,
    method: str = "bicubic",
    *,
    noise: float | None = None,
    generator: torch.Generator | None = None,
    **options: Any,
) -> torch.Tensor:
    """Downsample ``hr`` by an integer ``scale`` on the cell-centred grid, optionally adding noise.

    Args:
        hr: HR batch; the reduced axes must be multiples of ``scale``.
        scale: Integer factor (≥ 1).
        method: One of :data:`DEGRADATIONS` (see the module notes and each method's formula).
        noise: Standard deviation of Gaussian noise added to the LR (data units); ``None``/0: none.
        generator: Makes the noise reproducible (see :func:`add_noise`).
        **options: Method options: ``"gaussian"``: ``sigma`` (HR cells, default ``scale/2``),
            ``truncate`` (4); ``"kspace"``: ``magnitude`` (False); ``"slice"``: ``axis`` (-2),
            ``thickness`` (``scale``), ``gap`` (0).

    Returns:
        The LR batch, same dtype and device.

    Raises:
        ValueError: Unknown method or option, a tensor that is not 4-D, a scale below 1, a size
            that is not a multiple of ``scale``, or a bad option value.

    Shape:
        ``(N, C, s·H, s·W) -> (N, C, H, W)`` (``"slice"``: only its ``axis`` shrinks).
    """
    entry = _lookup(method)
    unknown = sorted(set(options) - set(entry.options))
    if unknown:
        takes = f"takes {', '.join(entry.options)}" if entry.options else "takes no options"
        raise ValueError(f"degradation '{method}' {takes} (plus noise, generator); got {', '.join(unknown)}")
    if hr.ndim != 4:
        raise ValueError(
            f"degrade needs an (N, C, H, W) tensor, got shape {tuple(hr.shape)}; add [None, None]"
        )
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    scale = int(scale)
    axes = entry.axes(options)
    if any(hr.shape[d] % scale for d in axes):
        size = "×".join(str(hr.shape[d]) for d in axes)
        raise ValueError(f"HR size {size} is not a multiple of scale {scale}; crop it first")
    lr = hr.clone() if scale == 1 else entry.fn(hr, scale, **options)
    if noise:
        lr = add_noise(lr, noise, generator)
    return lr
