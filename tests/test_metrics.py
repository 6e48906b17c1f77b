"""Metrics agree with scikit-image and with their definitions."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.data import camera
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from sciSR import metrics


def test_psnr_and_ssim_match_skimage_on_a_real_photo() -> None:
    ref = camera().astype(np.float64) / 255.0
    noisy = np.clip(ref + np.random.default_rng(0).normal(0, 0.05, ref.shape), 0, 1)
    assert metrics.psnr(noisy, ref, data_range=1.0) == pytest.approx(
        peak_signal_noise_ratio(ref, noisy, data_range=1.0)
    )
    sk = structural_similarity(
        ref, noisy, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert metrics.ssim(noisy, ref, data_range=1.0) == pytest.approx(sk, abs=2e-3)


def test_field_metrics_ignore_masked_cells() -> None:
    ref = np.arange(12, dtype=float).reshape(3, 4)
    pred = ref + 1.0
    pred[0, 0] = np.nan
    assert metrics.bias(pred, ref) == pytest.approx(1.0)
    assert metrics.rmse(pred, ref) == pytest.approx(1.0)
    assert metrics.correlation(pred, ref) == pytest.approx(1.0)


def test_conservation_error_of_block_replication_is_zero() -> None:
    lr = np.random.default_rng(0).random((5, 6))
    hr = np.repeat(np.repeat(lr, 3, 0), 3, 1)
    assert metrics.conservation_error(hr, lr, 3) == pytest.approx(0.0, abs=1e-12)


def test_rgb_to_y_bt601_and_shave() -> None:
    assert metrics.rgb_to_y(np.array([1.0, 1.0, 1.0])) == pytest.approx(235 / 255)
    assert metrics.shave(np.zeros((10, 12)), 2).shape == (6, 8)


def test_power_spectrum_peaks_at_the_wave_frequency() -> None:
    _y, x = np.mgrid[0:64, 0:64]
    k, p = metrics.radial_power_spectrum(np.sin(2 * np.pi * x / 8))
    assert abs(k[np.argmax(p)] - 1 / 8) < 0.02
