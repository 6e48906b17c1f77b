"""Evaluation metrics for super-resolved fields and images.

Point-wise metrics (:func:`rmse`, :func:`mae`, :func:`bias`, :func:`correlation`, :func:`psnr`,
:func:`quantile_errors`) take arrays of equal shape and ignore cells that are non-finite in either
array (masked values). Image-protocol helpers (:func:`rgb_to_y`, :func:`shave`, :func:`ssim`)
follow the classic SR evaluation: BT.601 luma, ``scale`` pixels cropped at each border, SSIM with
an 11×11 Gaussian window (σ=1.5), population covariances, statistics of the valid region only.
"""

from __future__ import annotations

import numpy as np


def _pair(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, r = np.asarray(pred, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if p.shape != r.shape:
        raise ValueError(f"shapes differ: prediction {p.shape} vs reference {r.shape}")
    ok = np.isfinite(p) & np.isfinite(r)
    if not ok.any():
        raise ValueError("no cell is finite in both prediction and reference")
    return p[ok], r[ok]


def rmse(pred: np.ndarray, ref: np.ndarray) -> float:
    """Root-mean-square error ``sqrt(mean((pred - ref)²))`` over cells finite in both."""
    p, r = _pair(pred, ref)
    return float(np.sqrt(np.mean((p - r) ** 2)))


def mae(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean absolute error ``mean(|pred - ref|)`` over cells finite in both."""
    p, r = _pair(pred, ref)
    return float(np.mean(np.abs(p - r)))


def bias(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean error ``mean(pred - ref)`` over cells finite in both (positive: prediction too high)."""
    p, r = _pair(pred, ref)
    return float(np.mean(p - r))


def correlation(pred: np.ndarray, ref: np.ndarray) -> float:
    """Pearson correlation over cells finite in both; NaN when either is constant there."""
    p, r = _pair(pred, ref)
    dp, dr = p - p.mean(), r - r.mean()
    den = float(np.sqrt(np.sum(dp * dp) * np.sum(dr * dr)))
    return float(np.sum(dp * dr) / den) if den > 0 else float("nan")


def _data_range(ref: np.ndarray, data_range: float | None) -> float:
    rng = float(np.max(ref) - np.min(ref)) if data_range is None else float(data_range)
    if not rng > 0:
        raise ValueError(
            f"data range must be positive, got {rng:g} (a constant reference has no range); pass data_range="
        )
    return rng


def psnr(pred: np.ndarray, ref: np.ndarray, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio ``10·log10(range² / MSE)`` in dB over cells finite in both.

    Args:
        pred: Prediction.
        ref: Reference, same shape.
        data_range: Peak-to-peak range (1 for images in [0, 1]); default: the reference's
            ``max - min`` over the compared cells.

    Returns:
        PSNR in dB (``inf`` for identical arrays).

    Raises:
        ValueError: Shapes differ, no common finite cell, or a non-positive range.
    """
    p, r = _pair(pred, ref)
    rng = _data_range(r, data_range)
    mse = float(np.mean((p - r) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(rng**2 / mse))


def _gaussian_window(size: int, sigma: float) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(
    pred: np.ndarray,
    ref: np.ndarray,
    data_range: float | None = None,
    win: int = 11,
    sigma: float = 1.5,
    masked: bool = False,
) -> float:
    """Mean structural similarity of two 2-D fields (Wang et al. 2004).

    Local means, variances and covariance are Gaussian-weighted (``win × win`` taps, ``sigma``),
    population (not sample) statistics, ``K1 = 0.01``, ``K2 = 0.03``; the SSIM map is averaged over
    the valid region (``win // 2`` cells cropped at each border). This is
    ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)``.

    Args:
        pred: Prediction.
        ref: Reference, same shape.
        data_range: Peak-to-peak range; default: the reference's ``max - min``.
        win: Odd window side (≥ 3).
        sigma: Gaussian standard deviation in cells.
        masked: Accept non-finite (masked) cells: the SSIM map is then averaged over the
            positions whose whole ``win × win`` window is finite in both fields (land-masked
            ocean fields, nodata holes), and the default range is that of the finite reference.

    Returns:
        Mean SSIM.

    Raises:
        ValueError: Not two 2-D arrays of one shape, non-finite cells (unless ``masked``; then:
            no fully valid window), an even or too small window, a field smaller than the
            window, or a non-positive range.

    Shape:
        ``(H, W), (H, W) -> scalar``.
    """
    from scipy.ndimage import correlate1d

    p, r = np.asarray(pred, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if p.shape != r.shape or p.ndim != 2:
        raise ValueError(f"ssim needs two 2-D arrays of one shape, got {p.shape} and {r.shape}")
    ok = np.isfinite(p) & np.isfinite(r)
    if not ok.all() and not masked:
        raise ValueError("ssim needs finite arrays; pass masked=True to score only fully valid windows")
    if win < 3 or win % 2 == 0:
        raise ValueError(f"ssim window must be odd and at least 3, got win={win}")
    if min(p.shape) < win:
        raise ValueError(
            f"ssim needs fields of at least {win}×{win} cells, got {p.shape}; pass a smaller win="
        )
    rng = _data_range(r[ok], data_range)
    g = _gaussian_window(win, sigma)
    h = win // 2
    if not ok.all():
        from scipy.ndimage import minimum_filter

        keep = minimum_filter(ok.astype(np.uint8), size=win, mode="constant", cval=0)[h:-h, h:-h] > 0
        if not keep.any():
            raise ValueError(f"ssim: no {win}×{win} window is free of masked cells; pass a smaller win=")
        p, r = np.where(ok, p, 0.0), np.where(ok, r, 0.0)

    def filt(a: np.ndarray) -> np.ndarray:
        a = correlate1d(correlate1d(a, g, axis=0, mode="reflect"), g, axis=1, mode="reflect")
        return a[h:-h, h:-h]

    mu_p, mu_r = filt(p), filt(r)
    cov_pp = filt(p * p) - mu_p**2
    cov_rr = filt(r * r) - mu_r**2
    cov_pr = filt(p * r) - mu_p * mu_r
    c1, c2 = (0.01 * rng) ** 2, (0.03 * rng) ** 2
    s = ((2 * mu_p * mu_r + c1) * (2 * cov_pr + c2)) / ((mu_p**2 + mu_r**2 + c1) * (cov_pp + cov_rr + c2))
    return float(s.mean()) if ok.all() else float(s[keep].mean())


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma (``[16, 235]`` scaled to the input range) of an RGB image ``(..., 3)`` in [0, 1].

    Shape:
        ``(H, W, 3) -> (H, W)``.
    """
    img = np.asarray(img, dtype=np.float64)
    return (16.0 + 65.481 * img[..., 0] + 128.553 * img[..., 1] + 24.966 * img[..., 2]) / 255.0


def shave(a: np.ndarray, border: int) -> np.ndarray:
    """Crop ``border`` pixels from each side of the last two axes.

    Raises:
        ValueError: Negative border, or nothing left after cropping.
    """
    if border < 0:
        raise ValueError(f"border must be >= 0, got {border}")
    if border and min(np.shape(a)[-2:]) <= 2 * border:
        raise ValueError(f"cannot shave {border} pixels from each side of a {np.shape(a)[-2:]} array")
    return a[..., border:-border, border:-border] if border > 0 else a


def quantile_errors(
    pred: np.ndarray, ref: np.ndarray, q: tuple[float, ...] = (0.01, 0.5, 0.99)
) -> dict[float, float]:
    """Difference of distribution quantiles ``Q_pred(q) - Q_ref(q)`` (extremes matter for precipitation).

    Quantiles use numpy's default (linear) interpolation over the cells finite in both arrays.
    """
    p, r = _pair(pred, ref)
    return {float(k): float(np.quantile(p, k) - np.quantile(r, k)) for k in q}


def conservation_error(hr: np.ndarray, lr: np.ndarray, scale: int) -> float:
    """Max abs difference between the ``scale × scale`` block means of ``hr`` and the coarse cells ``lr``.

    Blocks or coarse cells that are not finite are skipped.

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


def radial_power_spectrum(field: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of a 2-D field.

    Each Fourier mode ``(k_y, k_x)`` (cycles per cell, ``numpy.fft.fftfreq``) carries the power
    ``|F|² / (H·W)²``, its share of the field's variance (Parseval: the powers of all modes but the
    mean sum to the variance; a sinusoid of amplitude ``A`` puts ``A²/4`` in each of its two modes).
    Modes are grouped into rings of width ``1/n``, ``n = min(H, W)``, centred on ``k = j/n``
    (``j = floor(n·|k| + 1/2)``, ``|k| = hypot(k_y, k_x)``) for ``j = 1 … n // 2``; each ring's power is
    the mean over its modes. The mean (``k = 0``) and the corner modes beyond ``k = (n//2 + 0.5)/n``
    are left out. A mode exactly between two rings goes to the outer one.

    Args:
        field: Finite 2-D field (at least 2 cells on each side).

    Returns:
        ``(k, power)``: ring wavenumbers ``j/n`` in cycles per cell and the mean power per mode.

    Raises:
        ValueError: Not a 2-D field of at least 2×2 cells, or non-finite cells.

    Shape:
        ``(H, W) -> (K,), (K,)`` with ``K = min(H, W) // 2``.
    """
    f = np.asarray(field, dtype=np.float64)
    if f.ndim != 2 or min(f.shape) < 2:
        raise ValueError(
            f"radial_power_spectrum needs a 2-D field of at least 2×2 cells, got shape {f.shape}"
        )
    if not np.isfinite(f).all():
        raise ValueError("radial_power_spectrum needs a finite field; crop or fill masked cells first")
    h, w = f.shape
    power = np.abs(np.fft.fft2(f)) ** 2 / float(h * w) ** 2
    k = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :])
    n = min(h, w)
    ring = np.floor(k * n + 0.5 + 1e-9).astype(np.int64).ravel()  # ties (j + ½) go outwards
    n_rings = n // 2 + 1
    keep = ring < n_rings
    total = np.bincount(ring[keep], weights=power.ravel()[keep], minlength=n_rings)
    count = np.bincount(ring[keep], minlength=n_rings)
    return np.arange(1, n_rings) / n, total[1:] / count[1:]
