"""Evaluation metrics for super-resolved fields and images.

Every point-wise metric takes a prediction and a reference of one shape (any number of leading
axes; the last two are spatial where it matters) and scores the cells that are

* finite in both arrays (NaN, ``inf``: masked values),
* inside ``mask`` when one is given (boolean, broadcastable to the data; ``True`` = score this
  cell: a brain mask, a land or ocean mask), and
* of positive weight when ``weights`` are given.

``weights`` (non-negative, broadcastable to the data) turn every mean into a weighted mean
``Σ w·x / Σ w``: on a latitude/longitude grid pass ``cos φ`` per row (:func:`latitude_weights`,
shape ``(H, 1)``) or the cell areas (:func:`cell_area_weights`), so that a polar row of a global
grid does not count as much as an equatorial one.

Image-protocol helpers (:func:`rgb_to_y`, :func:`shave`, :func:`psnr_y`, :func:`ssim_y`) follow
the classic SR evaluation: BT.601 luma, ``scale`` pixels cropped at each border, SSIM with an
11×11 Gaussian window (σ = 1.5), population covariances. :func:`psnr` and :func:`ssim` are the
plain field versions (data range from the reference).

:data:`METRICS` maps a name to a :class:`Metric` (function, higher-is-better, units, the extra
context it needs) so that reports select metrics by name; :func:`compute` calls one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

ArrayLike = Any


# ----------------------------------------------------------------------------- input handling
def _broadcast(a: ArrayLike, shape: tuple[int, ...], what: str, dtype: Any) -> np.ndarray:
    arr = np.asarray(a, dtype=dtype)
    try:
        return np.broadcast_to(arr, shape)
    except ValueError:
        raise ValueError(
            f"{what} of shape {arr.shape} does not broadcast to the data shape {shape}"
        ) from None


def _check_shapes(pred: np.ndarray, ref: np.ndarray) -> None:
    if pred.shape != ref.shape:
        raise ValueError(f"shapes differ: prediction {pred.shape} vs reference {ref.shape}")


def _weights(weights: ArrayLike | None, shape: tuple[int, ...]) -> np.ndarray | None:
    if weights is None:
        return None
    w = _broadcast(weights, shape, "weights", np.float64)
    if not (np.isfinite(w).all() and (w >= 0).all()):
        raise ValueError("weights must be finite and non-negative (cos φ, cell areas)")
    return w


def _valid(arrays: tuple[np.ndarray, ...], mask: ArrayLike | None, w: np.ndarray | None) -> np.ndarray:
    shape = arrays[0].shape
    ok = np.ones(shape, dtype=bool)
    for a in arrays:
        ok &= np.isfinite(a)
    if mask is not None:
        ok &= _broadcast(mask, shape, "mask", bool)
    if w is not None:
        ok &= w > 0
    return ok


def _pair_w(
    pred: ArrayLike, ref: ArrayLike, mask: ArrayLike | None = None, weights: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The scored cells as flat float64 arrays ``(p, r, w)`` (``w`` all ones without weights).

    Raises:
        ValueError: Shapes differ, a mask or weights that do not broadcast, negative weights, or
            no cell left to score.
    """
    p, r = np.asarray(pred, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    _check_shapes(p, r)
    w = _weights(weights, p.shape)
    ok = _valid((p, r), mask, w)
    if not ok.any():
        where = " inside the mask" if mask is not None or weights is not None else ""
        raise ValueError(f"no cell is finite in both prediction and reference{where}")
    return p[ok], r[ok], (w[ok] if w is not None else np.ones(int(ok.sum())))


def _mean(x: np.ndarray, w: np.ndarray) -> float:
    return float(np.sum(w * x) / np.sum(w))


def latitude_weights(lat: ArrayLike) -> np.ndarray:
    """``cos φ`` per row of a latitude/longitude grid (degrees), shaped ``(H, 1)`` to broadcast.

    Shape:
        ``(H,) -> (H, 1)``.
    """
    lat = np.asarray(lat, dtype=np.float64)
    if lat.ndim != 1 or not np.all(np.abs(lat) <= 90.0):
        raise ValueError(f"latitude_weights needs 1-D latitudes in [-90, 90] degrees, got shape {lat.shape}")
    return np.clip(np.cos(np.deg2rad(lat)), 0.0, None)[:, None]


def cell_area_weights(lat_bounds: ArrayLike, lon_bounds: ArrayLike | None = None) -> np.ndarray:
    """Cell areas on the unit sphere from CF bounds (degrees): ``|sin φ₂ − sin φ₁| · |λ₂ − λ₁|`` (radians).

    Args:
        lat_bounds: ``(H, 2)`` latitude bounds.
        lon_bounds: ``(W, 2)`` longitude bounds; ``None``: one column of relative row areas.

    Shape:
        ``(H, 2), (W, 2) -> (H, W)``; ``(H, 2) -> (H, 1)``.
    """
    lb = np.asarray(lat_bounds, dtype=np.float64)
    if lb.ndim != 2 or lb.shape[1] != 2:
        raise ValueError(f"lat_bounds must have shape (H, 2), got {lb.shape}")
    rows = np.abs(np.sin(np.deg2rad(lb[:, 1])) - np.sin(np.deg2rad(lb[:, 0])))[:, None]
    if lon_bounds is None:
        return rows
    xb = np.asarray(lon_bounds, dtype=np.float64)
    if xb.ndim != 2 or xb.shape[1] != 2:
        raise ValueError(f"lon_bounds must have shape (W, 2), got {xb.shape}")
    return rows * np.deg2rad(np.abs(xb[:, 1] - xb[:, 0]))[None, :]


# ----------------------------------------------------------------------------- point-wise errors
def rmse(pred: ArrayLike, ref: ArrayLike, *, mask: ArrayLike = None, weights: ArrayLike = None) -> float:
    """Root-mean-square error ``sqrt(Σ w (p − r)² / Σ w)`` over the scored cells (module notes)."""
    p, r, w = _pair_w(pred, ref, mask, weights)
    return float(np.sqrt(_mean((p - r) ** 2, w)))


def mae(pred: ArrayLike, ref: ArrayLike, *, mask: ArrayLike = None, weights: ArrayLike = None) -> float:
    """Mean absolute error ``Σ w |p − r| / Σ w`` over the scored cells."""
    p, r, w = _pair_w(pred, ref, mask, weights)
    return _mean(np.abs(p - r), w)


def bias(pred: ArrayLike, ref: ArrayLike, *, mask: ArrayLike = None, weights: ArrayLike = None) -> float:
    """Mean error ``Σ w (p − r) / Σ w`` (positive: prediction too high)."""
    p, r, w = _pair_w(pred, ref, mask, weights)
    return _mean(p, w) - _mean(r, w)


def correlation(
    pred: ArrayLike, ref: ArrayLike, *, mask: ArrayLike = None, weights: ArrayLike = None
) -> float:
    """Pearson correlation (weighted: weighted means and covariances); NaN when either is constant."""
    p, r, w = _pair_w(pred, ref, mask, weights)
    dp, dr = p - _mean(p, w), r - _mean(r, w)
    den = float(np.sqrt(np.sum(w * dp * dp) * np.sum(w * dr * dr)))
    return float(np.sum(w * dp * dr) / den) if den > 0 else float("nan")


def rfne(pred: ArrayLike, ref: ArrayLike, *, mask: ArrayLike = None, weights: ArrayLike = None) -> float:
    """Relative Frobenius norm error ``‖p − r‖_F / ‖r‖_F`` (weighted: ``sqrt(Σ w (p−r)² / Σ w r²)``).

    The SuperBench benchmark (Ren et al., 2023) reports this error for scientific SR; it is
    dimensionless and NaN when the reference is zero on every scored cell.
    """
    p, r, w = _pair_w(pred, ref, mask, weights)
    den = float(np.sum(w * r * r))
    return float(np.sqrt(np.sum(w * (p - r) ** 2) / den)) if den > 0 else float("nan")


def _data_range(ref: np.ndarray, data_range: float | None) -> float:
    rng = float(np.max(ref) - np.min(ref)) if data_range is None else float(data_range)
    if not rng > 0:
        raise ValueError(
            f"data range must be positive, got {rng:g} (a constant reference has no range); pass data_range="
        )
    return rng


def psnr(
    pred: ArrayLike,
    ref: ArrayLike,
    data_range: float | None = None,
    *,
    mask: ArrayLike = None,
    weights: ArrayLike = None,
) -> float:
    """Peak signal-to-noise ratio ``10·log10(range² / MSE)`` in dB over the scored cells (field version).

    Args:
        pred: Prediction.
        ref: Reference, same shape.
        data_range: Peak-to-peak range (1 for images in [0, 1]); default: the reference's
            ``max - min`` over the scored cells.
        mask: Cells to score (``True``); see the module notes.
        weights: Area weights; the MSE is then weighted.

    Returns:
        PSNR in dB (``inf`` for identical arrays).

    Raises:
        ValueError: Shapes differ, no cell to score, or a non-positive range.
    """
    p, r, w = _pair_w(pred, ref, mask, weights)
    rng = _data_range(r, data_range)
    mse = _mean((p - r) ** 2, w)
    return float("inf") if mse == 0 else float(10.0 * np.log10(rng**2 / mse))


def _gaussian_window(size: int, sigma: float) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(
    pred: ArrayLike,
    ref: ArrayLike,
    data_range: float | None = None,
    win: int = 11,
    sigma: float = 1.5,
    masked: bool = False,
    *,
    mask: ArrayLike = None,
    weights: ArrayLike = None,
    stack: bool = False,
) -> float:
    """Mean structural similarity of 2-D fields (Wang et al. 2004), field version.

    Local means, variances and covariance are Gaussian-weighted (``win × win`` taps, ``sigma``),
    population (not sample) statistics, ``K1 = 0.01``, ``K2 = 0.03``; the SSIM map is averaged over
    the valid region (``win // 2`` cells cropped at each border). This is
    ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)``. Leading axes hold separate fields: the SSIM maps of all of
    them are pooled into one mean.

    Args:
        pred: Prediction.
        ref: Reference, same shape.
        data_range: Peak-to-peak range; default: the reference's ``max - min`` over its valid cells.
        win: Odd window side (≥ 3).
        sigma: Gaussian standard deviation in cells.
        masked: Accept non-finite (masked) cells: the SSIM map is then averaged over the
            positions whose whole ``win × win`` window is finite in both fields (land-masked
            ocean fields, nodata holes), and the default range is that of the finite reference.
        mask: Cells to score (``True``); implies ``masked``: cells outside it count as masked.
        weights: Weights of the SSIM map positions (broadcast to the fields, cropped like the
            map): a weighted mean of the map.
        stack: Accept leading axes (separate fields whose SSIM maps are pooled).

    Returns:
        Mean SSIM.

    Raises:
        ValueError: Shapes differ, not 2-D (unless ``stack``), non-finite cells (unless ``masked`` or
            ``mask``; then: no fully valid window), an even or too small window, a field smaller
            than the window, or a non-positive range.

    Shape:
        ``(..., H, W), (..., H, W) -> scalar``.
    """
    from scipy.ndimage import correlate1d, minimum_filter

    p, r = np.asarray(pred, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    _check_shapes(p, r)
    if p.ndim < 2:
        raise ValueError(f"ssim needs 2-D fields (..., H, W), got shape {p.shape}")
    if p.ndim > 2 and not stack:
        raise ValueError(
            f"ssim needs 2-D arrays, got shape {p.shape}; metrics.METRICS['ssim'] scores stacks (..., H, W)"
        )
    w = _weights(weights, p.shape)
    ok = _valid((p, r), mask, None)
    if not ok.all() and not (masked or mask is not None):
        raise ValueError("ssim needs finite arrays; pass masked=True to score only fully valid windows")
    if win < 3 or win % 2 == 0:
        raise ValueError(f"ssim window must be odd and at least 3, got win={win}")
    if min(p.shape[-2:]) < win:
        raise ValueError(
            f"ssim needs fields of at least {win}×{win} cells, got {p.shape}; pass a smaller win="
        )
    if not ok.any():
        raise ValueError(f"ssim: no {win}×{win} window is free of masked cells; pass a smaller win=")
    rng = _data_range(r[ok], data_range)
    g = _gaussian_window(win, sigma)
    h = win // 2
    inner = (..., slice(h, -h), slice(h, -h))
    keep = np.ones(p.shape, dtype=bool)[inner]
    if not ok.all():
        size = (1,) * (p.ndim - 2) + (win, win)
        keep = minimum_filter(ok.astype(np.uint8), size=size, mode="constant", cval=0)[inner] > 0
        p, r = np.where(ok, p, 0.0), np.where(ok, r, 0.0)
    if w is not None:
        w = w[inner]
        keep = keep & (w > 0)
    if not keep.any():
        raise ValueError(f"ssim: no {win}×{win} window is free of masked cells; pass a smaller win=")

    def filt(a: np.ndarray) -> np.ndarray:
        a = correlate1d(correlate1d(a, g, axis=-2, mode="reflect"), g, axis=-1, mode="reflect")
        return a[inner]

    mu_p, mu_r = filt(p), filt(r)
    cov_pp = filt(p * p) - mu_p**2
    cov_rr = filt(r * r) - mu_r**2
    cov_pr = filt(p * r) - mu_p * mu_r
    c1, c2 = (0.01 * rng) ** 2, (0.03 * rng) ** 2
    s = ((2 * mu_p * mu_r + c1) * (2 * cov_pr + c2)) / ((mu_p**2 + mu_r**2 + c1) * (cov_pp + cov_rr + c2))
    if w is None:
        return float(s[keep].mean())
    return _mean(s[keep], w[keep])


def rgb_to_y(img: ArrayLike, channel_axis: int = -1) -> np.ndarray:
    """BT.601 luma (``[16, 235]`` scaled to the input range) of an RGB image in [0, 1].

    Args:
        img: RGB image with its 3 channels on ``channel_axis``.
        channel_axis: Axis of the channels (``-1``: ``(H, W, 3)``; ``-3``: ``(3, H, W)``).

    Shape:
        ``(..., H, W, 3) -> (..., H, W)``.
    """
    img = np.moveaxis(np.asarray(img, dtype=np.float64), channel_axis, -1)
    if img.shape[-1] != 3:
        raise ValueError(f"rgb_to_y needs 3 channels on axis {channel_axis}, got shape {img.shape}")
    return (16.0 + 65.481 * img[..., 0] + 128.553 * img[..., 1] + 24.966 * img[..., 2]) / 255.0


def shave(a: ArrayLike, border: int) -> Any:
    """Crop ``border`` pixels from each side of the last two axes.

    Raises:
        ValueError: Negative border, or nothing left after cropping.
    """
    if border < 0:
        raise ValueError(f"border must be >= 0, got {border}")
    if border and min(np.shape(a)[-2:]) <= 2 * border:
        raise ValueError(f"cannot shave {border} pixels from each side of a {np.shape(a)[-2:]} array")
    return a[..., border:-border, border:-border] if border > 0 else a


def _image_protocol(
    pred: ArrayLike,
    ref: ArrayLike,
    border: int,
    channel_axis: int | None,
    max_value: float | None,
    mask: ArrayLike,
    weights: ArrayLike,
) -> tuple[np.ndarray, np.ndarray, Any, Any]:
    p, r = np.asarray(pred, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    _check_shapes(p, r)
    peak = max_value
    if peak is None:
        peak = 255.0 if np.nanmax(r) > 1.0 + 1e-6 else 1.0
    p, r = p / peak, r / peak
    if channel_axis is not None:
        p, r = rgb_to_y(p, channel_axis), rgb_to_y(r, channel_axis)
    shape = p.shape
    m = None if mask is None else shave(_broadcast(mask, shape, "mask", bool), border)
    w = None if weights is None else shave(_broadcast(weights, shape, "weights", np.float64), border)
    return shave(p, border), shave(r, border), m, w


def psnr_y(
    pred: ArrayLike,
    ref: ArrayLike,
    border: int = 0,
    *,
    channel_axis: int | None = None,
    max_value: float | None = None,
    mask: ArrayLike = None,
    weights: ArrayLike = None,
) -> float:
    """PSNR in the natural-image SR protocol: BT.601 Y channel, ``border`` pixels shaved, range 1.

    Images are divided by ``max_value`` (default: 255 when the reference exceeds 1, else 1),
    converted to Y with :func:`rgb_to_y` when ``channel_axis`` is given (grey images are used as
    they are), cropped by ``border`` (the scale, by convention) and scored with
    ``data_range = 1``: ``psnr_y(sr, hr, 4, channel_axis=-1)`` is the figure SR papers report
    for ×4 on Set5.

    Shape:
        ``(..., H, W[, 3]) -> scalar``.
    """
    p, r, m, w = _image_protocol(pred, ref, border, channel_axis, max_value, mask, weights)
    return psnr(p, r, data_range=1.0, mask=m, weights=w)


def ssim_y(
    pred: ArrayLike,
    ref: ArrayLike,
    border: int = 0,
    *,
    channel_axis: int | None = None,
    max_value: float | None = None,
    mask: ArrayLike = None,
    weights: ArrayLike = None,
) -> float:
    """SSIM in the natural-image SR protocol (as :func:`psnr_y`; 11×11 Gaussian window, σ = 1.5).

    Shape:
        ``(..., H, W[, 3]) -> scalar``.
    """
    p, r, m, w = _image_protocol(pred, ref, border, channel_axis, max_value, mask, weights)
    return ssim(p, r, data_range=1.0, mask=m, weights=w, stack=True)


# ----------------------------------------------------------------------------- distributions
def _weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> float:
    """Weighted quantile; with equal weights exactly numpy's default (linear, type 7).

    Sorted values ``x_(i)`` with cumulative weights ``C_i`` sit at plotting positions
    ``u_i = (C_i − w_i) / (C_n − w_n)`` and the quantile interpolates linearly between them
    (equal weights give ``u_i = (i − 1)/(n − 1)``, numpy's rule).
    """
    order = np.argsort(x, kind="stable")
    xs, ws = x[order], w[order]
    if xs.size == 1:
        return float(xs[0])
    c = np.cumsum(ws)
    u = (c - ws) / (c[-1] - ws[-1])
    return float(np.interp(q, u, xs))


def quantile_errors(
    pred: ArrayLike,
    ref: ArrayLike,
    q: tuple[float, ...] = (0.95, 0.99, 0.999),
    *,
    mask: ArrayLike = None,
    weights: ArrayLike = None,
) -> dict[float, float]:
    """Difference of distribution quantiles ``Q_pred(q) − Q_ref(q)`` (extremes matter for precipitation).

    Quantiles use numpy's default (linear) interpolation over the scored cells; with ``weights``
    the weighted generalisation of that rule (equal weights reproduce it exactly).

    Raises:
        ValueError: A quantile outside [0, 1], or as the point-wise metrics.
    """
    if any(not 0.0 <= float(k) <= 1.0 for k in q):
        raise ValueError(f"quantiles must lie in [0, 1], got {tuple(q)}")
    p, r, w = _pair_w(pred, ref, mask, weights)
    if weights is None:
        return {float(k): float(np.quantile(p, k) - np.quantile(r, k)) for k in q}
    return {float(k): _weighted_quantile(p, w, k) - _weighted_quantile(r, w, k) for k in q}


# ----------------------------------------------------------------------------- consistency
def conservation_error(hr: ArrayLike, lr: ArrayLike, scale: int) -> float:
    """Max abs difference between the ``scale × scale`` block means of ``hr`` and the coarse cells ``lr``.

    Blocks or coarse cells that are not finite are skipped. :func:`consistency_error` generalises
    this to any degradation operator, masks and weights.

    Raises:
        ValueError: ``hr`` is not ``scale`` times ``lr`` on the last two axes, or no block is finite.

    Shape:
        ``(..., s·H, s·W), (..., H, W) -> scalar``.
    """
    hr = np.asarray(hr, dtype=np.float64)
    lr = np.asarray(lr, dtype=np.float64)
    *lead, hh, ww = hr.shape
    want = (*lead, hh // scale, ww // scale)
    if hh % scale or ww % scale or lr.shape != want:
        raise ValueError(
            f"conservation_error needs hr of shape (..., {scale}·H, {scale}·W) and lr (..., H, W); "
            f"got {hr.shape} and {lr.shape}"
        )
    blocks = hr.reshape(*lead, hh // scale, scale, ww // scale, scale).mean(axis=(-3, -1))
    err = np.abs(blocks - lr)
    ok = np.isfinite(err)
    if not ok.any():
        raise ValueError("no block is finite in both hr and lr")
    return float(err[ok].max())


def coarsen(hr: ArrayLike, scale: int, degradation: str = "area", **options: Any) -> np.ndarray:
    """Apply a registered degradation operator (:mod:`sciSR.train.degrade`) to a numpy stack, in float64.

    NaN cells propagate to every LR cell whose operator support touches them (``"kspace"`` is
    global: any NaN is refused).

    Raises:
        ValueError: Unknown degradation or option, sizes not multiples of ``scale``, NaN with ``"kspace"``.

    Shape:
        ``(..., s·H, s·W) -> (..., H, W)`` (``"slice"``: only its axis shrinks).
    """
    import torch

    from .train.degrade import degrade

    a = np.asarray(hr, dtype=np.float64)
    if a.ndim < 2:
        raise ValueError(f"coarsen needs fields (..., H, W), got shape {a.shape}")
    if degradation == "kspace" and not np.isfinite(a).all():
        raise ValueError("the 'kspace' degradation is global: it needs fields without masked or NaN cells")
    lead, hw = a.shape[:-2], a.shape[-2:]
    t = torch.from_numpy(np.ascontiguousarray(a.reshape(-1, 1, *hw)))
    out = degrade(t, scale, degradation, **options).numpy()
    return out.reshape(*lead, *out.shape[-2:])


def consistency_error(
    pred: ArrayLike,
    lr: ArrayLike,
    scale: int,
    degradation: str = "area",
    *,
    mask: ArrayLike = None,
    weights: ArrayLike = None,
    reduce: str = "mean",
    relative: bool = False,
    **options: Any,
) -> float:
    """How far the prediction is from reproducing its input: ``|D(pred) − lr|`` through the operator ``D``.

    ``D`` is the degradation that made ``lr`` from the truth (``"area"``: block mean, the
    conservation of Harder et al. 2023; ``"gaussian"``, ``"kspace"``, ``"slice"``... with their
    ``options``; see :func:`sciSR.train.degrade.degrade`). A perfectly consistent SR output has 0.

    Args:
        pred: SR output on the HR grid.
        lr: The LR input the prediction was made from.
        scale: Integer factor.
        degradation: Registered degradation name.
        mask: HR cells to trust (``True``); LR cells whose operator support touches an excluded or
            non-finite HR cell are skipped.
        weights: HR weights; the LR weights are ``D(weights)`` (for ``"area"`` the block mean,
            proportional to the coarse cell area).
        reduce: ``"mean"`` (weighted mean absolute error) or ``"max"``.
        relative: Divide by the (weighted) mean ``|lr|`` over the scored LR cells.
        **options: Degradation options (``sigma``, ``axis``...).

    Returns:
        The error in data units (dimensionless when ``relative``).

    Raises:
        ValueError: ``lr`` does not have the shape ``D(pred)`` has (both shapes named), unknown
            ``reduce``, or no LR cell to score.

    Shape:
        ``(..., s·H, s·W), (..., H, W) -> scalar``.
    """
    if reduce not in ("mean", "max"):
        raise ValueError(f"reduce must be 'mean' or 'max', got {reduce!r}")
    p = np.array(pred, dtype=np.float64)
    low = np.asarray(lr, dtype=np.float64)
    if p.ndim < 2:
        raise ValueError(f"consistency_error needs fields (..., H, W), got shape {p.shape}")
    if mask is not None:
        p[~_broadcast(mask, p.shape, "mask", bool)] = np.nan
    coarse = coarsen(p, scale, degradation, **options)
    if coarse.shape != low.shape:
        raise ValueError(
            f"lr shape {low.shape} does not match the prediction {p.shape} coarsened by {scale} "
            f"('{degradation}' gives {coarse.shape})"
        )
    w = None
    if weights is not None:
        w_hr = np.ascontiguousarray(_weights(weights, p.shape))
        w = coarsen(w_hr, scale, degradation, **options)
    err = np.abs(coarse - low)
    ok = _valid((err,), None, w)
    if not ok.any():
        raise ValueError("no LR cell is finite in both the coarsened prediction and lr")
    ww = w[ok] if w is not None else np.ones(int(ok.sum()))
    val = float(err[ok].max()) if reduce == "max" else _mean(err[ok], ww)
    if relative:
        den = _mean(np.abs(low[ok]), ww)
        val = val / den if den > 0 else float("nan")
    return val


# ----------------------------------------------------------------------------- detail added or missed
def detail_fractions(
    pred: ArrayLike,
    ref: ArrayLike,
    baseline: ArrayLike,
    *,
    tol: float | None = None,
    mask: ArrayLike = None,
    weights: ArrayLike = None,
) -> dict[str, float]:
    """Improvement, hallucination and omission fractions of the detail a model adds to a baseline.

    The idea is opensr-test's (Aybar et al., "A comprehensive benchmark for optical remote
    sensing image super-resolution", IEEE GRSL 2024): judge the SR output by where it lies between
    the upsampled LR image and the truth, cell by cell, and count where it got closer to the
    truth (improvement), where it changed the image away from the truth (hallucination), and
    where it left missing detail missing (omission). The formulation below is ours and works for
    any degradation operator ``D``: the baseline is ``b = U(D(truth))``, an interpolator ``U``
    (bicubic by default in :func:`sciSR.evaluate`) applied to the very LR the model saw, so the
    "detail" is whatever ``D`` removed and ``U`` cannot restore.

    Per scored cell, with truth ``y``, prediction ``p`` and baseline ``b``:
    missing detail ``δ = y − b``, added detail ``Δ = p − b``, error ``ε = p − y``, tolerance
    ``τ`` (default ``0.1 × RMS(δ)`` over the scored cells, our choice). Detail cells are those
    with ``|δ| > τ`` or ``|Δ| > τ``; each falls into exactly one class:

    * improvement: ``|ε| < |δ| − τ`` (closer to the truth than the baseline by more than τ);
    * hallucination: not an improvement and ``|Δ| > τ`` (changed, but not towards the truth);
    * omission: not an improvement and ``|Δ| ≤ τ`` (a missing detail left as the baseline had it).

    The three fractions are (weighted) shares of the detail cells and sum to 1.

    Returns:
        ``{"improvement", "hallucination", "omission"}`` fractions (NaN when there are no detail
        cells), plus ``"tol"`` (τ used) and ``"detail_share"`` (detail cells / scored cells).

    Raises:
        ValueError: Shapes differ, ``tol`` negative, no cell to score.
    """
    p, r = np.asarray(pred, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    _check_shapes(p, r)
    if b.shape != r.shape:
        raise ValueError(f"shapes differ: baseline {b.shape} vs reference {r.shape}")
    w = _weights(weights, p.shape)
    ok = _valid((p, r, b), mask, w)
    if not ok.any():
        raise ValueError("no cell is finite in prediction, reference and baseline")
    ww = w[ok] if w is not None else np.ones(int(ok.sum()))
    delta, added, err = r[ok] - b[ok], p[ok] - b[ok], p[ok] - r[ok]
    if tol is None:
        tau = 0.1 * float(np.sqrt(_mean(delta**2, ww)))
    else:
        tau = float(tol)
        if not (np.isfinite(tau) and tau >= 0):
            raise ValueError(f"tol must be a non-negative number in data units, got {tol!r}")
    detail = (np.abs(delta) > tau) | (np.abs(added) > tau)
    improve = np.abs(err) < np.abs(delta) - tau
    halluc = ~improve & (np.abs(added) > tau)
    omit = ~improve & ~halluc
    total = float(np.sum(ww[detail]))
    out = {"tol": tau, "detail_share": total / float(np.sum(ww))}
    for name, cls in (("improvement", improve), ("hallucination", halluc), ("omission", omit)):
        out[name] = float(np.sum(ww[detail & cls]) / total) if total > 0 else float("nan")
    return out


# ----------------------------------------------------------------------------- spectra
def _fill_invalid(f: np.ndarray, mask: ArrayLike | None) -> tuple[np.ndarray, np.ndarray]:
    """Fields with invalid cells set to each field's valid mean; also the valid share per field."""
    ok = _valid((f,), mask, None)
    lead = f.shape[:-2]
    flat, okf = f.reshape(-1, *f.shape[-2:]), ok.reshape(-1, *f.shape[-2:])
    out = np.empty_like(flat)
    share = np.empty(flat.shape[0])
    for i, (a, m) in enumerate(zip(flat, okf, strict=True)):
        if not m.any():
            raise ValueError("radial_power_spectrum: a field has no valid cell inside the mask")
        out[i] = np.where(m, a, a[m].mean())
        share[i] = m.mean()
    return out.reshape(*lead, *f.shape[-2:]), share.reshape(lead)


def radial_power_spectrum(field: ArrayLike, *, mask: ArrayLike = None) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of a 2-D field (mean over leading fields).

    Each Fourier mode ``(k_y, k_x)`` (cycles per cell, ``numpy.fft.fftfreq``) carries the power
    ``|F|² / (H·W)²``, its share of the field's variance (Parseval: the powers of all modes but the
    mean sum to the variance; a sinusoid of amplitude ``A`` puts ``A²/4`` in each of its two modes).
    Modes are grouped into rings of width ``1/n``, ``n = min(H, W)``, centred on ``k = j/n``
    (``j = floor(n·|k| + 1/2)``, ``|k| = hypot(k_y, k_x)``) for ``j = 1 … n // 2``; each ring's power is
    the mean over its modes. The mean (``k = 0``) and the corner modes beyond ``k = (n//2 + 0.5)/n``
    are left out. A mode exactly between two rings goes to the outer one. Leading axes hold separate
    fields; their spectra are averaged.

    With ``mask``, cells outside it or non-finite are set to the field's mean over its valid cells
    (a zero anomaly) and the power is divided by the valid share of the field, which keeps the
    variance of a stationary field; the mask's edges still leak some power across wavenumbers, so
    compare masked spectra only with spectra under the same mask.

    Args:
        field: 2-D field (at least 2 cells on each side), or a stack ``(..., H, W)``.
        mask: Cells to use (``True``); without it every cell must be finite.

    Returns:
        ``(k, power)``: ring wavenumbers ``j/n`` in cycles per cell and the mean power per mode.

    Raises:
        ValueError: Fewer than 2 dims or under 2×2 cells, or non-finite cells without ``mask``.

    Shape:
        ``(..., H, W) -> (K,), (K,)`` with ``K = min(H, W) // 2``.
    """
    f = np.asarray(field, dtype=np.float64)
    if f.ndim < 2 or min(f.shape[-2:]) < 2:
        raise ValueError(
            f"radial_power_spectrum needs a 2-D field of at least 2×2 cells, got shape {f.shape}"
        )
    share = np.ones(f.shape[:-2])
    if mask is None:
        if not np.isfinite(f).all():
            raise ValueError(
                "radial_power_spectrum needs a finite field; crop or fill masked cells first, or pass mask="
            )
    else:
        f, share = _fill_invalid(f, mask)
    h, w = f.shape[-2:]
    power = np.abs(np.fft.fft2(f, axes=(-2, -1))) ** 2 / float(h * w) ** 2
    power = (power / share[..., None, None]).reshape(-1, h, w).mean(axis=0)
    k = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :])
    n = min(h, w)
    ring = np.floor(k * n + 0.5 + 1e-9).astype(np.int64).ravel()  # ties (j + ½) go outwards
    n_rings = n // 2 + 1
    keep = ring < n_rings
    total = np.bincount(ring[keep], weights=power.ravel()[keep], minlength=n_rings)
    count = np.bincount(ring[keep], minlength=n_rings)
    return np.arange(1, n_rings) / n, total[1:] / count[1:]


def log_spectral_distance(
    pred: ArrayLike, ref: ArrayLike, *, mask: ArrayLike = None, weights: ArrayLike = None
) -> float:
    """Log-spectral distance ``sqrt(mean_k (10·log10(P_pred(k) / P_ref(k)))²)`` in dB.

    ``P`` are the radially averaged spectra of :func:`radial_power_spectrum` (rings ``k = j/n``,
    equal weight per ring; rings where either power is 0 are skipped). 0 dB: the prediction has
    the reference's power at every scale; 3 dB on average: a factor 2 in power. Cells outside
    ``mask`` or non-finite in either field are filled in both (see :func:`radial_power_spectrum`).

    Raises:
        ValueError: Shapes differ; ``weights`` given (a Fourier spectrum needs the regular grid,
            area weights do not apply); no ring with power in both.

    Shape:
        ``(..., H, W), (..., H, W) -> scalar``.
    """
    if weights is not None:
        raise ValueError(
            "log_spectral_distance takes no weights (the FFT needs the regular grid); pass weights=None"
        )
    p, r = np.asarray(pred, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    _check_shapes(p, r)
    ok = _valid((p, r), mask, None)
    m = None if ok.all() else ok
    _, pp = radial_power_spectrum(p, mask=m)
    _, pr = radial_power_spectrum(r, mask=m)
    good = (pp > 0) & (pr > 0)
    if not good.any():
        raise ValueError("log_spectral_distance: no wavenumber has power in both fields")
    return float(np.sqrt(np.mean((10.0 * np.log10(pp[good] / pr[good])) ** 2)))


# ----------------------------------------------------------------------------- ensembles
def _ensemble(
    ens: ArrayLike, obs: ArrayLike, member_axis: int, mask: ArrayLike, weights: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Members ``(m, n)`` and observations ``(n,)`` at the scored cells, and their weights."""
    e = np.moveaxis(np.asarray(ens, dtype=np.float64), member_axis, 0)
    y = np.asarray(obs, dtype=np.float64)
    if e.shape[1:] != y.shape:
        raise ValueError(
            f"ensemble shape {np.shape(ens)} (members on axis {member_axis}) does not match "
            f"observation shape {y.shape}"
        )
    if e.shape[0] < 2:
        raise ValueError(f"an ensemble needs at least 2 members, got {e.shape[0]}")
    w = _weights(weights, y.shape)
    ok = _valid((y,), mask, w) & np.isfinite(e).all(axis=0)
    if not ok.any():
        raise ValueError("no cell is finite in every member and the observation")
    return e[:, ok], y[ok], (w[ok] if w is not None else np.ones(int(ok.sum())))


def crps_ensemble(
    ens: ArrayLike,
    obs: ArrayLike,
    *,
    member_axis: int = 0,
    fair: bool = False,
    mask: ArrayLike = None,
    weights: ArrayLike = None,
) -> float:
    """Continuous ranked probability score of an ensemble, exact estimator, (weighted) mean over cells.

    Standard (the CRPS of the ensemble's empirical distribution; Gneiting & Raftery 2007)::

        CRPS = (1/m) Σ_i |x_i − y| − 1/(2m²) Σ_i Σ_j |x_i − x_j|

    Fair (``fair=True``; Ferro 2014): the second term divided by ``2m(m−1)`` instead, an unbiased
    estimate of the CRPS the ensemble's parent distribution would get (it does not reward small
    ensembles for being under-dispersed). ``Σ_i Σ_j |x_i − x_j|`` is evaluated exactly from the
    sorted members as ``2 Σ_i (2i − m − 1) x_(i)``. The standard CRPS is at most the members'
    mean absolute error (its first term); that it is below the MAE of the ensemble *mean* is a
    property of a useful ensemble, not a theorem.

    Args:
        ens: Members on ``member_axis``.
        obs: Truth, the shape of ``ens`` without the member axis.
        member_axis: Axis of the members.
        fair: Fair (unbiased) estimator.
        mask: Cells to score (``True``).
        weights: Area weights of the cells.

    Returns:
        Mean CRPS in data units (lower is better).

    Raises:
        ValueError: Shapes do not match (both named), fewer than 2 members, no cell to score.

    Shape:
        ``(M, ...), (...) -> scalar``.
    """
    e, y, w = _ensemble(ens, obs, member_axis, mask, weights)
    m = e.shape[0]
    skill = np.abs(e - y[None]).mean(axis=0)
    xs = np.sort(e, axis=0)
    coef = (2 * np.arange(1, m + 1) - m - 1).astype(np.float64)
    pair_sum = 2.0 * np.tensordot(coef, xs, axes=(0, 0))
    spread = pair_sum / (2.0 * m * (m - 1) if fair else 2.0 * m * m)
    return _mean(skill - spread, w)


def rank_histogram(
    ens: ArrayLike,
    obs: ArrayLike,
    *,
    member_axis: int = 0,
    mask: ArrayLike = None,
    weights: ArrayLike = None,
    seed: int = 0,
) -> np.ndarray:
    """Rank (Talagrand) histogram: how often the truth falls below, between, above the sorted members.

    The rank of ``y`` among ``m`` members is the number of members below it, ``0 … m``; ties
    (members equal to ``y``, e.g. zero precipitation) are broken uniformly at random with a
    generator seeded by ``seed`` (Hamill 2001). A reliable ensemble gives a flat histogram;
    U-shaped: under-dispersed; dome-shaped: over-dispersed.

    Returns:
        Relative (weighted) frequencies of ranks ``0 … m``, summing to 1.

    Shape:
        ``(M, ...), (...) -> (M + 1,)``.
    """
    e, y, w = _ensemble(ens, obs, member_axis, mask, weights)
    m = e.shape[0]
    below = np.sum(e < y[None], axis=0)
    ties = np.sum(e == y[None], axis=0)
    rng = np.random.default_rng(seed)
    rank = below + np.floor(rng.random(y.shape) * (ties + 1)).astype(np.int64)
    hist = np.bincount(rank, weights=w, minlength=m + 1)
    return hist / hist.sum()


def spread_skill_ratio(
    ens: ArrayLike,
    obs: ArrayLike,
    *,
    member_axis: int = 0,
    corrected: bool = True,
    mask: ArrayLike = None,
    weights: ArrayLike = None,
) -> float:
    """Spread–skill ratio: ensemble spread over the RMSE of the ensemble mean (1: calibrated).

    ``spread = sqrt(mean_w(var_i))`` with ``var_i`` the unbiased (``ddof=1``) member variance
    per cell, ``skill = sqrt(mean_w((x̄ − y)²))``. With ``corrected`` (default) the spread is
    multiplied by ``sqrt((m+1)/m)`` (Fortin et al. 2014): for a finite ensemble drawn from the
    truth's distribution, ``E[(x̄ − y)²] = (m+1)/m · σ²``, so the corrected ratio is 1 in
    expectation. Below 1: over-confident (under-dispersed) ensemble.

    Shape:
        ``(M, ...), (...) -> scalar``.
    """
    e, y, w = _ensemble(ens, obs, member_axis, mask, weights)
    m = e.shape[0]
    spread = np.sqrt(_mean(e.var(axis=0, ddof=1), w))
    if corrected:
        spread *= np.sqrt((m + 1) / m)
    skill = np.sqrt(_mean((e.mean(axis=0) - y) ** 2, w))
    return float(spread / skill) if skill > 0 else float("inf")


# ----------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class Metric:
    """A registered metric.

    Attributes:
        name: Registry name.
        fn: ``fn(pred, ref, *, mask, weights, **needs) -> float``.
        higher_is_better: ``True``/``False``, or ``None`` when the ideal is ``target`` (bias: 0).
        units: ``"data"`` (the variable's units), ``"dB"``, ``"1"`` (dimensionless) or ``"fraction"``.
        target: Ideal value.
        needs: Context keywords ``fn`` requires besides the two arrays: ``lr``, ``scale``,
            ``degradation``, ``degradation_options``, ``baseline``, ``border``.
        kind: ``"deterministic"`` (``pred`` a field) or ``"ensemble"`` (``pred`` has members on axis 0).
        weighted: Whether ``weights`` apply.
        description: One line for reports.
    """

    name: str
    fn: Callable[..., float]
    higher_is_better: bool | None
    units: str
    target: float
    needs: tuple[str, ...] = ()
    kind: str = "deterministic"
    weighted: bool = True
    description: str = ""


METRICS: dict[str, Metric] = {}


def register_metric(metric: Metric) -> Metric:
    """Add ``metric`` to :data:`METRICS` (a third-party metric plugs in the same way)."""
    METRICS[metric.name] = metric
    return metric


def _q(level: float) -> Callable[..., float]:
    def fn(pred: ArrayLike, ref: ArrayLike, *, mask: ArrayLike = None, weights: ArrayLike = None) -> float:
        return quantile_errors(pred, ref, (level,), mask=mask, weights=weights)[level]

    return fn


def _consistency(reduce: str) -> Callable[..., float]:
    def fn(
        pred: ArrayLike,
        ref: ArrayLike,
        *,
        lr: ArrayLike,
        scale: int,
        degradation: str = "area",
        degradation_options: dict[str, Any] | None = None,
        mask: ArrayLike = None,
        weights: ArrayLike = None,
    ) -> float:
        return consistency_error(
            pred,
            lr,
            scale,
            degradation,
            mask=mask,
            weights=weights,
            reduce=reduce,
            **(degradation_options or {}),
        )

    return fn


def _detail(key: str) -> Callable[..., float]:
    def fn(
        pred: ArrayLike,
        ref: ArrayLike,
        *,
        baseline: ArrayLike,
        mask: ArrayLike = None,
        weights: ArrayLike = None,
    ) -> float:
        return detail_fractions(pred, ref, baseline, mask=mask, weights=weights)[key]

    return fn


def _border(fn: Callable[..., float]) -> Callable[..., float]:
    def wrapped(pred: ArrayLike, ref: ArrayLike, *, border: int = 0, **kw: Any) -> float:
        return fn(pred, ref, border, **kw)

    return wrapped


def _fair(fair: bool) -> Callable[..., float]:
    def fn(ens: ArrayLike, obs: ArrayLike, *, mask: ArrayLike = None, weights: ArrayLike = None) -> float:
        return crps_ensemble(ens, obs, fair=fair, mask=mask, weights=weights)

    return fn


for _m in (
    Metric("rmse", rmse, False, "data", 0.0, description="root-mean-square error"),
    Metric("mae", mae, False, "data", 0.0, description="mean absolute error"),
    Metric("bias", bias, None, "data", 0.0, description="mean error (prediction − truth)"),
    Metric("correlation", correlation, True, "1", 1.0, description="Pearson correlation"),
    Metric("rfne", rfne, False, "1", 0.0, description="relative Frobenius norm error"),
    Metric("psnr", psnr, True, "dB", float("inf"), description="PSNR, range of the truth (field version)"),
    Metric(
        "ssim",
        partial(ssim, stack=True),
        True,
        "1",
        1.0,
        description="SSIM, range of the truth (field version)",
    ),
    Metric(
        "psnr_y",
        _border(psnr_y),
        True,
        "dB",
        float("inf"),
        ("border",),
        description="PSNR, image protocol (Y channel, border shaved, range 1)",
    ),
    Metric(
        "ssim_y",
        _border(ssim_y),
        True,
        "1",
        1.0,
        ("border",),
        description="SSIM, image protocol (Y channel, border shaved, range 1)",
    ),
    Metric(
        "lsd",
        log_spectral_distance,
        False,
        "dB",
        0.0,
        weighted=False,
        description="log-spectral distance of the radially averaged power spectra",
    ),
    Metric("q95_error", _q(0.95), None, "data", 0.0, description="95th percentile: prediction − truth"),
    Metric("q99_error", _q(0.99), None, "data", 0.0, description="99th percentile: prediction − truth"),
    Metric("q999_error", _q(0.999), None, "data", 0.0, description="99.9th percentile: prediction − truth"),
    Metric(
        "consistency",
        _consistency("mean"),
        False,
        "data",
        0.0,
        ("lr", "scale", "degradation", "degradation_options"),
        description="mean |D(prediction) − LR| through the degradation operator D",
    ),
    Metric(
        "consistency_max",
        _consistency("max"),
        False,
        "data",
        0.0,
        ("lr", "scale", "degradation", "degradation_options"),
        description="max |D(prediction) − LR| through the degradation operator D",
    ),
    Metric(
        "improvement",
        _detail("improvement"),
        True,
        "fraction",
        1.0,
        ("baseline",),
        description="share of detail cells brought closer to the truth than the baseline",
    ),
    Metric(
        "hallucination",
        _detail("hallucination"),
        False,
        "fraction",
        0.0,
        ("baseline",),
        description="share of detail cells changed but not towards the truth",
    ),
    Metric(
        "omission",
        _detail("omission"),
        False,
        "fraction",
        0.0,
        ("baseline",),
        description="share of detail cells left as the baseline had them",
    ),
    Metric(
        "crps",
        _fair(False),
        False,
        "data",
        0.0,
        kind="ensemble",
        description="CRPS of the ensemble (exact, standard estimator)",
    ),
    Metric(
        "crps_fair",
        _fair(True),
        False,
        "data",
        0.0,
        kind="ensemble",
        description="CRPS of the ensemble (exact, fair estimator)",
    ),
    Metric(
        "spread_skill",
        spread_skill_ratio,
        None,
        "1",
        1.0,
        kind="ensemble",
        description="ensemble spread / RMSE of the ensemble mean (corrected for finite size)",
    ),
):
    register_metric(_m)

#: Metrics :func:`sciSR.evaluate` reports by default (deterministic models).
DEFAULT_METRICS: tuple[str, ...] = (
    "rmse",
    "mae",
    "bias",
    "correlation",
    "rfne",
    "psnr",
    "ssim",
    "lsd",
    "q95_error",
    "q99_error",
    "q999_error",
    "consistency",
    "improvement",
    "hallucination",
    "omission",
)


def compute(
    name: str,
    pred: ArrayLike,
    ref: ArrayLike,
    *,
    mask: ArrayLike = None,
    weights: ArrayLike = None,
    **context: Any,
) -> float:
    """Evaluate the registered metric ``name`` on ``pred`` against ``ref``.

    Args:
        name: Key of :data:`METRICS`.
        pred: Prediction (ensemble metrics: members on axis 0).
        ref: Truth.
        mask: Cells to score (``True``).
        weights: Area weights (ignored by metrics that are not ``weighted``).
        **context: Extra inputs; only those the metric ``needs`` are passed on.

    Raises:
        ValueError: Unknown metric (the known ones are listed), or missing context.
    """
    entry = METRICS.get(name)
    if entry is None:
        raise ValueError(f"unknown metric {name!r}; choose from {', '.join(sorted(METRICS))}")
    required = [k for k in entry.needs if k not in ("degradation", "degradation_options", "border")]
    missing = [k for k in required if context.get(k) is None]
    if missing:
        raise ValueError(f"metric {name!r} needs {', '.join(f'{k}=' for k in missing)}")
    kw = {k: context[k] for k in entry.needs if k in context}
    return float(entry.fn(pred, ref, mask=mask, weights=weights if entry.weighted else None, **kw))
