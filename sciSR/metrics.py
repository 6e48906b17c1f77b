"""Evaluation metrics for super-resolved fields and images.

All functions take numpy arrays of equal shape and ignore non-finite cells (masked values).
Image-protocol helpers (:func:`rgb_to_y`, :func:`shave`) follow the classic SR evaluation:
BT.601 luma, ``scale`` pixels cropped at each border, SSIM with an 11×11 Gaussian window (σ=1.5).
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
    """Root-mean-square error over cells finite in both."""
    p, r = _pair(pred, ref)
    return float(np.sqrt(np.mean((p - r) ** 2)))


def bias(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean error ``mean(pred - ref)``."""
    p, r = _pair(pred, ref)
    return float(np.mean(p - r))


def correlation(pred: np.ndarray, ref: np.ndarray) -> float:
    """Pearson correlation over cells finite in both."""
    p, r = _pair(pred, ref)
    return float(np.corrcoef(p, r)[0, 1])


def psnr(pred: np.ndarray, ref: np.ndarray, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB; ``data_range`` defaults to the reference's max - min."""
    p, r = _pair(pred, ref)
    rng = float(r.max() - r.min()) if data_range is None else float(data_range)
    mse = float(np.mean((p - r) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(rng**2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(
    pred: np.ndarray, ref: np.ndarray, data_range: float | None = None, win: int = 11, sigma: float = 1.5
) -> float:
    """Mean structural similarity of two 2-D fields (Wang et al. 2004, Gaussian window, valid region).

    Shape:
        ``(H, W), (H, W) -> scalar``.
    """
    from scipy.ndimage import correlate1d

    p, r = np.asarray(pred, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if p.shape != r.shape or p.ndim != 2:
        raise ValueError(f"ssim needs two 2-D arrays of one shape, got {p.shape} and {r.shape}")
    if not (np.isfinite(p).all() and np.isfinite(r).all()):
        raise ValueError("ssim needs finite arrays; crop or fill masked cells first")
    rng = float(r.max() - r.min()) if data_range is None else float(data_range)
    g = _gaussian_window(win, sigma)

    def filt(a: np.ndarray) -> np.ndarray:
        a = correlate1d(correlate1d(a, g, axis=0, mode="reflect"), g, axis=1, mode="reflect")
        h = win // 2
        return a[h:-h, h:-h]

    mu_p, mu_r = filt(p), filt(r)
    cov_pp = filt(p * p) - mu_p**2
    cov_rr = filt(r * r) - mu_r**2
    cov_pr = filt(p * r) - mu_p * mu_r
    c1, c2 = (0.01 * rng) ** 2, (0.03 * rng) ** 2
    s = ((2 * mu_p * mu_r + c1) * (2 * cov_pr + c2)) / ((mu_p**2 + mu_r**2 + c1) * (cov_pp + cov_rr + c2))
    return float(s.mean())


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma (``[16, 235]`` scaled to the input range) of an RGB image ``(..., 3)`` in [0, 1].

    Shape:
        ``(H, W, 3) -> (H, W)``.
    """
    img = np.asarray(img, dtype=np.float64)
    return (16.0 + 65.481 * img[..., 0] + 128.553 * img[..., 1] + 24.966 * img[..., 2]) / 255.0


def shave(a: np.ndarray, border: int) -> np.ndarray:
    """Crop ``border`` pixels from each side of the last two axes."""
    return a[..., border:-border, border:-border] if border > 0 else a


def quantile_errors(
    pred: np.ndarray, ref: np.ndarray, q: tuple[float, ...] = (0.01, 0.5, 0.99)
) -> dict[float, float]:
    """Difference of distribution quantiles ``Q_pred(q) - Q_ref(q)`` (extremes matter for precipitation)."""
    p, r = _pair(pred, ref)
    return {float(k): float(np.quantile(p, k) - np.quantile(r, k)) for k in q}


def conservation_error(hr: np.ndarray, lr: np.ndarray, scale: int) -> float:
    """Max abs difference between the block means of ``hr`` and the coarse cells ``lr``.

    Shape:
        ``(..., s·H, s·W), (..., H, W) -> scalar``.
    """
    hr = np.asarray(hr, dtype=np.float64)
    *lead, hh, ww = hr.shape
    blocks = hr.reshape(*lead, hh // scale, scale, ww // scale, scale).mean(axis=(-3, -1))
    return float(np.nanmax(np.abs(blocks - np.asarray(lr, dtype=np.float64))))


def radial_power_spectrum(field: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of a 2-D field (wavenumber in cycles per cell, power).

    Shape:
        ``(H, W) -> (K,), (K,)``.
    """
    f = np.asarray(field, dtype=np.float64)
    f = f - f.mean()
    power = np.abs(np.fft.fftshift(np.fft.fft2(f))) ** 2
    h, w = f.shape
    ky, kx = np.meshgrid(
        np.fft.fftshift(np.fft.fftfreq(h)), np.fft.fftshift(np.fft.fftfreq(w)), indexing="ij"
    )
    k = np.hypot(ky, kx)
    bins = np.linspace(0, 0.5, min(h, w) // 2 + 1)
    idx = np.digitize(k.ravel(), bins) - 1
    valid = (idx >= 0) & (idx < len(bins) - 1)
    total = np.bincount(idx[valid], weights=power.ravel()[valid], minlength=len(bins) - 1)
    count = np.maximum(np.bincount(idx[valid], minlength=len(bins) - 1), 1)
    return 0.5 * (bins[1:] + bins[:-1]), total / count
