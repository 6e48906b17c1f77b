"""Degradations against independent references: block mean by reshape-mean, antialiased bicubic by a
written-out kernel sum (torch's truncated borders and MATLAB's mirrored borders), hand-computed taps,
and MATLAB ``imresize`` (sciSR.resize) as an oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sciSR.data import sample_path
from sciSR.resize import imresize_matlab
from sciSR.train import degrade
from sciSR.train.degrade import DEGRADATIONS


def _luma() -> np.ndarray:
    with Image.open(sample_path("ladybird_crop.png")) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
    return (16 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def _dem() -> np.ndarray:
    import rasterio

    with rasterio.open(sample_path("etopo5_alps.tif")) as src:
        return src.read(1).astype(np.float64)


def _keys(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys (1981) cubic convolution kernel, piece by piece."""
    x = np.abs(x)
    near = (a + 2) * x**3 - (a + 3) * x**2 + 1
    far = a * (x**3 - 5 * x**2 + 8 * x - 4)
    return np.where(x < 1, near, np.where(x < 2, far, 0.0))


def _shrink_matrix(n: int, s: int, border: str) -> np.ndarray:
    """(n/s, n) matrix of an antialiased bicubic shrink by ``s``: LR cell ``i`` is centred at HR coordinate
    ``s·(i + ½)`` (HR cell ``j`` at ``j + ½``), weights ``Keys((j + ½ - centre)/s)``; taps outside the
    axis are dropped (``"truncate"``) or folded back with the edge sample repeated (``"mirror"``)."""
    m = np.zeros((n // s, n))
    for i in range(n // s):
        centre = s * (i + 0.5)
        for j in range(int(np.floor(centre - 2 * s)) - 1, int(np.ceil(centre + 2 * s)) + 1):
            wgt = float(_keys((j + 0.5 - centre) / s))
            if 0 <= j < n:
                m[i, j] += wgt
            elif border == "mirror":
                m[i, -j - 1 if j < 0 else 2 * n - j - 1] += wgt
        m[i] /= m[i].sum()
    return m


def test_area_is_the_block_mean_per_image_and_channel() -> None:
    dem = _dem()  # 96 × 128
    # (2, 2, 96, 128)
    hr = np.stack([np.stack([dem, dem[::-1] * 0.5]), np.stack([dem[:, ::-1], dem**2 / 1000])])
    for s in (2, 3, 4):
        h, w = (96 // s) * s, (128 // s) * s
        x = hr[..., :h, :w]
        want = x.reshape(2, 2, h // s, s, w // s, s).mean(axis=(3, 5))
        got = degrade(torch.from_numpy(np.ascontiguousarray(x)), s, "area").numpy()
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("s", [2, 3, 4])
def test_bicubic_is_the_antialiased_keys_kernel_with_truncated_borders(s: int) -> None:
    y = _luma()[17 : 17 + 12 * s, 40 : 40 + 16 * s]  # real photo, not square
    got = degrade(torch.from_numpy(np.ascontiguousarray(y))[None, None], s, "bicubic")[0, 0].numpy()
    rows, cols = _shrink_matrix(y.shape[0], s, "truncate"), _shrink_matrix(y.shape[1], s, "truncate")
    np.testing.assert_allclose(got, rows @ y @ cols.T, rtol=0, atol=1e-12)


@pytest.mark.parametrize("s", [2, 3, 4])
def test_matlab_is_the_antialiased_keys_kernel_with_mirrored_borders(s: int) -> None:
    y = _luma()[5 : 5 + 12 * s, 100 : 100 + 10 * s]
    got = degrade(torch.from_numpy(np.ascontiguousarray(y))[None, None], s, "matlab")[0, 0].numpy()
    rows, cols = _shrink_matrix(y.shape[0], s, "mirror"), _shrink_matrix(y.shape[1], s, "mirror")
    np.testing.assert_allclose(got, rows @ y @ cols.T, rtol=0, atol=1e-12)


def test_bicubic_taps_hand_computed_at_x2() -> None:
    """×2: weights ½·Keys(d/2) at d = 3.5, 1.5, -0.5, -2.5 from the LR centres are
    -3/256, 29/256, 111/256, -9/256 (Keys a = -0.5: ½·k(1.75) = -0.01171875, ½·k(0.75) = 0.11328125,
    ½·k(0.25) = 0.43359375, ½·k(1.25) = -0.03515625). A vertical line at HR column 8 (centre 8.5)
    therefore gives LR columns 2…5 = (-3, 29, 111, -9)/256 and zeros elsewhere."""
    hr = torch.zeros(1, 1, 8, 16, dtype=torch.float64)
    hr[..., 8] = 1.0
    want = np.array([0, 0, -3, 29, 111, -9, 0, 0]) / 256
    for method in ("bicubic", "matlab"):
        lr = degrade(hr, 2, method)[0, 0].numpy()
        np.testing.assert_allclose(lr, np.tile(want, (4, 1)), rtol=0, atol=1e-15, err_msg=method)


@pytest.mark.parametrize("s", [2, 3, 4])
def test_bicubic_equals_matlab_imresize_inside_and_differs_only_at_two_border_cells(s: int) -> None:
    y = torch.from_numpy(np.ascontiguousarray(_luma()[:24 * s, 64 : 64 + 20 * s]))[None, None]
    ours = degrade(y, s, "bicubic")[0, 0].numpy()
    ref = imresize_matlab(y, scale=1.0 / s)[0, 0].numpy()
    np.testing.assert_allclose(ours[2:-2, 2:-2], ref[2:-2, 2:-2], rtol=0, atol=1e-12)
    assert np.abs(ours - ref).max() > 1e-3  # the borders really differ (see the module notes)
    np.testing.assert_allclose(degrade(y, s, "matlab")[0, 0].numpy(), ref, rtol=0, atol=1e-12)


def test_bicubic_averages_out_a_nyquist_pattern_and_keeps_dtype() -> None:
    stripes = torch.zeros(1, 1, 16, 40)
    stripes[..., ::2] = 1.0
    options = {"slice": {"axis": -1}}  # the one-axis degradation, across the stripes
    for method in DEGRADATIONS:
        lr = degrade(stripes, 4, method, **options.get(method, {}))
        want = (1, 1, 16, 10) if method == "slice" else (1, 1, 4, 10)
        assert lr.dtype == torch.float32 and lr.shape == want, method
        # point sampling would give 0 or 1; the antialiasing kernels give the mean away from the borders
        assert float((lr[..., 2:-2] - 0.5).abs().max()) < 1e-6, method
        assert float((lr - 0.5).abs().max()) < 0.1, method


def test_degrade_input_checks() -> None:
    x = torch.rand(1, 1, 12, 16)
    assert torch.equal(degrade(x, 1), x) and degrade(x, 1) is not x
    with pytest.raises(ValueError, match="not a multiple"):
        degrade(torch.rand(1, 1, 10, 12), 4)
    with pytest.raises(ValueError, match="unknown degradation 'nearest'"):
        degrade(x, 2, "nearest")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        degrade(x[0], 2)
    with pytest.raises(ValueError, match="positive integer"):
        degrade(x, 0)
