"""Metrics against independent references on real, non-constant data (shipped DEM and photo).

Every comparison uses a prediction whose errors vary in space (a block-mean ×4 coarsening of the
real field brought back by bicubic interpolation), so RMSE, MAE and |bias| differ, and masks in
the prediction and the reference fall on different cells.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.stats import pearsonr
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from sciSR import metrics
from sciSR.data import sample_path


def _dem() -> np.ndarray:
    import rasterio

    with rasterio.open(sample_path("etopo5_alps.tif")) as src:
        return src.read(1).astype(np.float64)  # 96 × 128 metres


def _rgb() -> np.ndarray:
    with Image.open(sample_path("ladybird_crop.png")) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0  # 256 × 256 × 3


def _coarse_then_bicubic(ref: np.ndarray, s: int = 4) -> np.ndarray:
    h, w = ref.shape
    lr = np.array([[ref[i * s : (i + 1) * s, j * s : (j + 1) * s].mean() for j in range(w // s)]
                   for i in range(h // s)])
    up = F.interpolate(torch.from_numpy(lr)[None, None], scale_factor=s, mode="bicubic", align_corners=False)
    return up[0, 0].numpy()


@pytest.fixture(scope="module")
def dem_pair() -> tuple[np.ndarray, np.ndarray]:
    ref = _dem()
    return _coarse_then_bicubic(ref) + 15.0, ref  # + a small offset so that the bias is clearly not 0


@pytest.fixture(scope="module")
def masked_pair(dem_pair: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prediction NaN on one block, reference +inf on another; ``ok`` = cells finite in both."""
    pred, ref = dem_pair[0].copy(), dem_pair[1].copy()
    pred[10:30, 5:40] = np.nan
    ref[60:70, 90:120] = np.inf
    ok = np.ones(ref.shape, bool)
    ok[10:30, 5:40] = False
    ok[60:70, 90:120] = False
    return pred, ref, ok


# ------------------------------------------------------------------ point-wise errors
def test_rmse_mae_bias_on_a_real_dem_match_written_out_formulas(dem_pair) -> None:
    pred, ref = dem_pair
    d = (pred - ref).ravel()
    n = d.size
    want_rmse = np.linalg.norm(d) / np.sqrt(n)
    want_mae = sum(abs(v) for v in d.tolist()) / n
    want_bias = pred.sum() / n - ref.sum() / n
    # the data separate the three: a metric computing another one fails
    assert want_rmse > 1.2 * want_mae and want_mae > 3 * abs(want_bias) and abs(want_bias) > 5.0
    assert metrics.rmse(pred, ref) == pytest.approx(want_rmse, rel=1e-12)
    assert metrics.mae(pred, ref) == pytest.approx(want_mae, rel=1e-12)
    assert metrics.bias(pred, ref) == pytest.approx(want_bias, rel=1e-9)
    assert metrics.bias(ref, pred) == pytest.approx(-want_bias, rel=1e-9)  # sign: pred - ref


def test_pointwise_metrics_use_exactly_the_cells_finite_in_both(masked_pair) -> None:
    pred, ref, ok = masked_pair
    p, r = pred[ok], ref[ok]
    assert 0 < ok.sum() < ok.size
    d = np.ma.masked_invalid(pred - ref)
    assert d.count() == ok.sum()
    assert metrics.rmse(pred, ref) == pytest.approx(float(np.sqrt((d**2).mean())), rel=1e-12)
    assert metrics.mae(pred, ref) == pytest.approx(float(np.abs(d).mean()), rel=1e-12)
    assert metrics.bias(pred, ref) == pytest.approx(float(d.mean()), rel=1e-9)
    assert metrics.correlation(pred, ref) == pytest.approx(pearsonr(p, r).statistic, rel=1e-12)
    # PSNR's default range is the reference's over the compared cells
    assert metrics.psnr(pred, ref) == pytest.approx(
        peak_signal_noise_ratio(r, p, data_range=r.max() - r.min()), rel=1e-12
    )
    got = metrics.quantile_errors(pred, ref, q=(0.05, 0.5, 0.95))
    pn, rn = np.where(ok, pred, np.nan), np.where(ok, ref, np.nan)
    for q, v in got.items():
        assert v == pytest.approx(np.nanpercentile(pn, 100 * q) - np.nanpercentile(rn, 100 * q), rel=1e-12)


def test_correlation_matches_scipy_and_is_nan_for_a_constant(dem_pair) -> None:
    pred, ref = dem_pair
    noisy = pred + np.random.default_rng(1).normal(0, 300.0, pred.shape)
    want = pearsonr(noisy.ravel(), ref.ravel()).statistic
    assert 0.3 < want < 0.99
    assert metrics.correlation(noisy, ref) == pytest.approx(want, rel=1e-12)
    assert np.isnan(metrics.correlation(np.full_like(ref, 3.0), ref))


def test_pointwise_metrics_refuse_mismatched_or_empty_input() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.rmse(np.zeros((3, 4)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="no cell is finite"):
        metrics.mae(np.full((2, 2), np.nan), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="data range"):
        metrics.psnr(np.ones((4, 4)), np.full((4, 4), 2.0))


# ------------------------------------------------------------------ PSNR and SSIM vs scikit-image
def test_psnr_matches_skimage_with_given_and_default_range(dem_pair) -> None:
    pred, ref = dem_pair
    rng_ref = ref.max() - ref.min()
    assert abs((pred.max() - pred.min()) - rng_ref) > 100  # the default must come from ref, not pred
    assert metrics.psnr(pred, ref) == pytest.approx(peak_signal_noise_ratio(ref, pred, data_range=rng_ref),
                                                    rel=1e-12)
    assert metrics.psnr(pred, ref, data_range=5000.0) == pytest.approx(
        peak_signal_noise_ratio(ref, pred, data_range=5000.0), rel=1e-12
    )
    assert metrics.psnr(ref, ref) == float("inf")


def test_ssim_matches_skimage_sr_protocol_on_real_luma() -> None:
    y = metrics.rgb_to_y(_rgb())
    pred = _coarse_then_bicubic(y, 4)
    sk = structural_similarity(y, pred, data_range=1.0, gaussian_weights=True, sigma=1.5,
                               use_sample_covariance=False)
    assert 0.3 < sk < 0.95
    assert metrics.ssim(pred, y, data_range=1.0) == pytest.approx(sk, rel=1e-10)
    # default range is the reference's
    sk_default = structural_similarity(y, pred, data_range=y.max() - y.min(), gaussian_weights=True,
                                       sigma=1.5, use_sample_covariance=False)
    assert sk_default != pytest.approx(sk, rel=1e-4)
    assert metrics.ssim(pred, y) == pytest.approx(sk_default, rel=1e-10)
    # window and sigma are honoured: skimage's Gaussian window is 2·round(3.5σ)+1 wide (9 for σ=1)
    sk9 = structural_similarity(y, pred, data_range=1.0, gaussian_weights=True, sigma=1.0,
                                use_sample_covariance=False)
    assert metrics.ssim(pred, y, data_range=1.0, win=9, sigma=1.0) == pytest.approx(sk9, rel=1e-10)


def test_ssim_on_a_real_dem_rectangle_and_its_input_checks(dem_pair) -> None:
    pred, ref = dem_pair
    pred, ref = pred[:, 3:], ref[:, 3:]  # non-square, odd width
    sk = structural_similarity(ref, pred, data_range=4000.0, gaussian_weights=True, sigma=1.5,
                               use_sample_covariance=False)
    assert metrics.ssim(pred, ref, data_range=4000.0) == pytest.approx(sk, rel=1e-10)
    assert metrics.ssim(ref, ref) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="at least 11"):
        metrics.ssim(ref[:10, :20], ref[:10, :20])
    with pytest.raises(ValueError, match="odd"):
        metrics.ssim(ref, ref, win=10)
    with pytest.raises(ValueError, match="finite"):
        metrics.ssim(np.where(ref > 3000, np.nan, ref), ref)
    with pytest.raises(ValueError, match="2-D"):
        metrics.ssim(ref[None], ref[None])


def test_masked_ssim_averages_only_fully_valid_windows(dem_pair) -> None:
    pred, ref = dem_pair
    hole = pred.copy()
    hole[:, 40:] = np.nan  # everything right of column 40 is masked
    got = metrics.ssim(hole, ref, data_range=4000.0, masked=True)
    # reference: skimage's full SSIM map of the left part, averaged over positions whose window
    # stays inside it (columns 5 ... 34, rows 5 ... H-6)
    _, smap = structural_similarity(
        ref[:, :40], pred[:, :40], data_range=4000.0, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, full=True,
    )
    assert got == pytest.approx(float(smap[5:-5, 5:35].mean()), rel=1e-10)
    # the masked values do not matter, and an all-masked window set is refused
    other = hole.copy()
    other[:, 40:] = -1e9
    other[:, 40:] = np.nan
    assert metrics.ssim(other, ref, data_range=4000.0, masked=True) == got
    with pytest.raises(ValueError, match="no 11×11 window"):
        metrics.ssim(np.where(np.arange(ref.shape[1]) % 9 == 0, np.nan, pred), ref, masked=True)


# ------------------------------------------------------------------ image-protocol helpers
def test_rgb_to_y_matches_skimage_bt601() -> None:
    rgb = _rgb()
    want = rgb2ycbcr(rgb)[..., 0] / 255.0
    np.testing.assert_allclose(metrics.rgb_to_y(rgb), want, rtol=0, atol=1e-12)
    assert metrics.rgb_to_y(np.array([1.0, 1.0, 1.0])) == pytest.approx(235 / 255)
    assert metrics.rgb_to_y(np.zeros(3)) == pytest.approx(16 / 255)


def test_shave_crops_each_side_of_the_last_two_axes() -> None:
    a = np.moveaxis(_rgb(), -1, 0)[:, :30, :41]  # (3, 30, 41)
    got = metrics.shave(a, 3)
    assert got.shape == (3, 24, 35)
    np.testing.assert_array_equal(got, np.take(np.take(a, range(3, 27), axis=1), range(3, 38), axis=2))
    assert metrics.shave(a, 0) is a
    with pytest.raises(ValueError, match="cannot shave"):
        metrics.shave(a, 15)


# ------------------------------------------------------------------ conservation
def test_conservation_error_is_block_mean_mismatch_on_a_real_dem(dem_pair) -> None:
    pred, ref = dem_pair
    s = 4
    rows = np.add.reduceat(ref, np.arange(0, 96, s), axis=0)
    lr = np.add.reduceat(rows, np.arange(0, 128, s), axis=1) / s**2
    # bicubic upsampling is not conservative: compare with an explicit loop over blocks
    want = max(abs(pred[i * s : i * s + s, j * s : j * s + s].mean() - lr[i, j])
               for i in range(lr.shape[0]) for j in range(lr.shape[1]))
    assert want > 10
    assert metrics.conservation_error(pred, lr, s) == pytest.approx(want, rel=1e-12)
    # replicating each coarse cell conserves exactly; one sub-cell raised by d moves its block by d/s²
    hr = np.kron(lr, np.ones((s, s)))
    assert metrics.conservation_error(hr, lr, s) == pytest.approx(0.0, abs=1e-9)
    hr[37, 81] += 160.0
    assert metrics.conservation_error(hr, lr, s) == pytest.approx(160.0 / s**2, rel=1e-9)
    # leading axes are kept apart, and a masked block is skipped
    stack_hr, stack_lr = np.stack([hr, np.kron(lr, np.ones((s, s)))]), np.stack([lr, lr])
    assert metrics.conservation_error(stack_hr, stack_lr, s) == pytest.approx(10.0, rel=1e-9)
    stack_hr[0, 36:40, 80:84] = np.nan
    assert metrics.conservation_error(stack_hr, stack_lr, s) == pytest.approx(0.0, abs=1e-9)


def test_conservation_error_refuses_mismatched_grids() -> None:
    with pytest.raises(ValueError, match="needs hr of shape"):
        metrics.conservation_error(np.zeros((12, 12)), np.zeros((4, 3)), 3)
    with pytest.raises(ValueError, match="needs hr of shape"):
        metrics.conservation_error(np.zeros((12, 12)), np.zeros((4, 1)), 3)  # would broadcast
    with pytest.raises(ValueError, match="needs hr of shape"):
        metrics.conservation_error(np.zeros((13, 12)), np.zeros((4, 4)), 3)


# ------------------------------------------------------------------ power spectrum
def _ring_reference(f: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mode by mode: DFT by direct summation, signed integer frequencies, and the ring found in exact
    rational arithmetic, ``(j - ½)² ≤ n²·|k|² < (j + ½)²`` with ``n = min(H, W)`` (ties outwards)."""
    from fractions import Fraction

    h, w = f.shape
    n = min(h, w)
    yy, xx = np.mgrid[0:h, 0:w]
    total, count = np.zeros(n // 2 + 1), np.zeros(n // 2 + 1, int)
    for u in range(h):
        for v in range(w):
            coef = (f * np.exp(-2j * np.pi * (u * yy / h + v * xx / w))).sum() / (h * w)
            su = u if 2 * u < h else u - h
            sv = v if 2 * v < w else v - w
            k2 = Fraction(n * su, h) ** 2 + Fraction(n * sv, w) ** 2
            j = 0
            while k2 >= Fraction(2 * j + 1, 2) ** 2:
                j += 1
            if j <= n // 2:
                total[j] += abs(coef) ** 2
                count[j] += 1
    return np.arange(1, n // 2 + 1) / n, total[1:] / count[1:], count[1:]


def test_power_spectrum_matches_a_mode_by_mode_reference_on_a_real_dem() -> None:
    f = _dem()[40:58, 70:94]  # 18 × 24, real relief, not square
    k, p = metrics.radial_power_spectrum(f)
    k_ref, p_ref, _count = _ring_reference(f)
    np.testing.assert_allclose(k, k_ref, rtol=0, atol=1e-15)
    np.testing.assert_allclose(p, p_ref, rtol=1e-9)
    # transposing the field (the other axis is the short one) gives the same spectrum
    k_t, p_t = metrics.radial_power_spectrum(f.T)
    np.testing.assert_allclose(p_t, p, rtol=1e-9)
    np.testing.assert_allclose(k_t, k, rtol=0)


@pytest.mark.parametrize(("shape", "axis"), [((64, 64), 1), ((48, 64), 0), ((48, 64), 1)])
def test_a_sinusoid_puts_its_variance_in_its_ring(shape: tuple[int, int], axis: int) -> None:
    """A·sin(2π x/8) on any grid: two modes of power A²/4 at |k| = 1/8 cycles per cell, nothing else."""
    amp = 3.0
    coord = np.indices(shape)[axis]
    f = 7.0 + amp * np.sin(2 * np.pi * coord / 8 + 0.3)  # an offset: the mean is not in the spectrum
    k, p = metrics.radial_power_spectrum(f)
    n = min(shape)
    ring = n // 8  # k = 1/8 is ring n/8
    assert k[ring - 1] == pytest.approx(1 / 8)
    # ring size counted by hand: signed integer frequency pairs (i/H, j/W) whose |k|·n rounds to n/8
    iy = np.fft.fftfreq(shape[0]) * n
    ix = np.fft.fftfreq(shape[1]) * n
    size = sum(1 for a in iy for b in ix if ring - 0.5 <= np.sqrt(a * a + b * b) < ring + 0.5)
    assert p[ring - 1] == pytest.approx(2 * amp**2 / 4 / size, rel=1e-9)
    others = np.delete(p, ring - 1)
    assert others.max() < 1e-20


def test_power_spectrum_uses_the_euclidean_wavenumber() -> None:
    """A diagonal wave with k_x = k_y = 4/64 has |k| = 0.0884 (ring 6 of 64), not 8/64 or 4/64."""
    y, x = np.mgrid[0:64, 0:64]
    k, p = metrics.radial_power_spectrum(np.cos(2 * np.pi * 4 * (x + y) / 64))
    assert k[int(np.argmax(p))] == pytest.approx(6 / 64)
    assert int(np.argmax(p)) + 1 == round(np.hypot(4, 4))


def test_power_spectrum_sees_lost_fine_scales_and_checks_input(dem_pair) -> None:
    pred, ref = dem_pair
    k, p_ref = metrics.radial_power_spectrum(ref)
    _k, p_pred = metrics.radial_power_spectrum(pred)
    fine = k > 1 / 8  # beyond the coarse grid's Nyquist (×4): bicubic has lost about half of it
    assert p_pred[fine].sum() < 0.7 * p_ref[fine].sum()
    np.testing.assert_allclose(p_pred[:2], p_ref[:2], rtol=0.05)  # large scales survive coarsening
    with pytest.raises(ValueError, match="finite"):
        metrics.radial_power_spectrum(np.where(ref > 3000, np.nan, ref))
    with pytest.raises(ValueError, match="2-D"):
        metrics.radial_power_spectrum(ref[0])


# ------------------------------------------------------------------ precision, edge sizes, messages
def test_metrics_compute_in_float64_whatever_the_input_dtype(dem_pair) -> None:
    """int16 DEMs (squares overflow in int16) and float32 model outputs give the float64 results."""
    pred, ref = dem_pair
    p16, r16 = np.round(pred).astype(np.int16), ref.astype(np.int16)
    p64, r64 = p16.astype(np.float64), r16.astype(np.float64)
    for fn in (metrics.rmse, metrics.mae, metrics.bias, metrics.psnr, metrics.correlation):
        assert fn(p16, r16) == pytest.approx(fn(p64, r64), rel=1e-12), fn.__name__
    p32, r32 = pred.astype(np.float32), ref.astype(np.float32)
    p32_64, r32_64 = p32.astype(np.float64), r32.astype(np.float64)
    for fn in (metrics.rmse, metrics.mae, metrics.bias, metrics.psnr, metrics.ssim):
        assert fn(p32, r32) == pytest.approx(fn(p32_64, r32_64), rel=1e-12), fn.__name__
    lr32 = r32.reshape(24, 4, 32, 4).mean(axis=(1, 3), dtype=np.float64).astype(np.float32)
    assert metrics.conservation_error(p32, lr32, 4) == pytest.approx(
        metrics.conservation_error(p32_64, lr32.astype(np.float64), 4), rel=1e-12
    )
    spec32, spec64 = metrics.radial_power_spectrum(r32)[1], metrics.radial_power_spectrum(r32_64)[1]
    np.testing.assert_allclose(spec32, spec64, rtol=1e-12)
    rgb32 = _rgb().astype(np.float32)
    y32 = metrics.rgb_to_y(rgb32)
    assert y32.dtype == np.float64
    np.testing.assert_allclose(y32, metrics.rgb_to_y(rgb32.astype(np.float64)), rtol=1e-15)


def test_correlation_of_small_values_and_of_a_constant(dem_pair) -> None:
    pred, ref = dem_pair
    small_p, small_r = pred[:8, :8] * 1e-6, ref[:8, :8] * 1e-6  # products far below 1
    want = pearsonr(small_p.ravel(), small_r.ravel()).statistic
    assert metrics.correlation(small_p, small_r) == pytest.approx(want, rel=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NaN for a constant, without a division warning
        assert np.isnan(metrics.correlation(ref, np.full_like(ref, 2.0)))


def test_ssim_window_limits(dem_pair) -> None:
    pred, ref = dem_pair
    # the smallest window (3 taps: skimage uses 2·int(3.5σ + 0.5) + 1 = 3 for σ = 0.3)
    sk3 = structural_similarity(ref, pred, data_range=4000.0, gaussian_weights=True, sigma=0.3,
                                use_sample_covariance=False)
    assert metrics.ssim(pred, ref, data_range=4000.0, win=3, sigma=0.3) == pytest.approx(sk3, rel=1e-10)
    # a field exactly one window wide has one valid SSIM value
    sk11 = structural_similarity(ref[:11, :11], pred[:11, :11], data_range=4000.0, gaussian_weights=True,
                                 sigma=1.5, use_sample_covariance=False)
    assert metrics.ssim(pred[:11, :11], ref[:11, :11], data_range=4000.0) == pytest.approx(sk11, rel=1e-10)
    with pytest.raises(ValueError, match=r"^ssim window must be odd and at least 3, got win=1$"):
        metrics.ssim(pred, ref, win=1)


def test_shave_edge_sizes() -> None:
    a = np.arange(3 * 7 * 9.0).reshape(3, 7, 9)
    np.testing.assert_array_equal(metrics.shave(a, 1), a[:, 1:6, 1:8])
    np.testing.assert_array_equal(metrics.shave(a, 3), a[:, 3:4, 3:6])  # one row left
    with pytest.raises(ValueError, match=r"^cannot shave 4 pixels from each side of a \(7, 9\) array$"):
        metrics.shave(a, 4)
    with pytest.raises(ValueError, match=r"^border must be >= 0, got -1$"):
        metrics.shave(a, -1)


def test_tiny_fields_and_exact_error_messages() -> None:
    f = np.array([[1.0, 3.0, 0.0, 2.0, 5.0, 1.0], [2.0, 0.0, 4.0, 1.0, 1.0, 3.0]])  # 2 × 6: one ring, k = ½
    k, p = metrics.radial_power_spectrum(f)
    _k_ref, p_ref, _count = _ring_reference(f)
    np.testing.assert_allclose(k, [0.5])
    np.testing.assert_allclose(p, p_ref, rtol=1e-12)
    with pytest.raises(ValueError, match=r"^radial_power_spectrum needs a finite field; crop or fill"):
        metrics.radial_power_spectrum(np.where(f > 4, np.inf, f))
    with pytest.raises(ValueError, match=r"^no cell is finite in both prediction and reference$"):
        metrics.rmse(np.array([np.nan, 1.0]), np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match=r"^ssim needs finite arrays; pass masked=True to score only"):
        metrics.ssim(np.full((12, 12), np.nan), np.zeros((12, 12)))
    with pytest.raises(ValueError, match=r"^no block is finite in both hr and lr$"):
        metrics.conservation_error(np.full((4, 4), np.nan), np.zeros((2, 2)), 2)


def test_int16_data_spanning_more_than_int16_range(dem_pair) -> None:
    """Packed int16 fields can span -32768…32767: the reference range must not overflow."""
    pred, ref = dem_pair
    r16 = np.clip(ref * 8, -32000, 32000).astype(np.int16)  # -2.4·10⁴ … 3.1·10⁴, range > 32767
    p16 = np.clip(np.round(pred * 8), -32000, 32000).astype(np.int16)
    r64, p64 = r16.astype(np.float64), p16.astype(np.float64)
    assert r64.max() - r64.min() > 32767
    assert metrics.psnr(p16, r16) == pytest.approx(
        peak_signal_noise_ratio(r64, p64, data_range=r64.max() - r64.min()), rel=1e-12
    )
    assert metrics.ssim(p16, r16) == pytest.approx(metrics.ssim(p64, r64), rel=1e-12)
