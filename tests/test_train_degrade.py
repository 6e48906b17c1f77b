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
from sciSR.train.degrade import DEGRADATIONS, add_noise, reduced_axes


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


# --------------------------------------------------------------------------- independent libraries


@pytest.mark.parametrize("s", [2, 3, 4])
def test_bicubic_equals_pillow_bicubic_reduce_and_area_equals_pillow_reduce(s: int) -> None:
    """Pillow's BICUBIC resize (Keys a = -0.5 stretched by s, out-of-image taps dropped) and its
    box ``reduce`` are separate implementations of the "bicubic" and "area" conventions."""
    y = np.ascontiguousarray(_luma()[30 : 30 + 12 * s, 7 : 7 + 15 * s], dtype=np.float32)
    im = Image.fromarray(y)  # mode "F"
    t = torch.from_numpy(y)[None, None]
    pil_bicubic = np.asarray(im.resize((15, 12), Image.Resampling.BICUBIC))
    np.testing.assert_allclose(degrade(t, s, "bicubic")[0, 0].numpy(), pil_bicubic, rtol=0, atol=2e-6)
    pil_area = np.asarray(im.reduce(s))
    np.testing.assert_allclose(degrade(t, s, "area")[0, 0].numpy(), pil_area, rtol=0, atol=1e-6)


def test_a_line_at_the_border_hand_computed_at_x2() -> None:
    """A vertical line on HR column 0 at ×2. The kernel ½·Keys(d/2) has taps ±0.5, ±1.5, ±2.5, ±3.5 HR
    cells from an LR centre with weights 111, 29, -9, -3 (/256). LR column 0 (centre between HR
    columns 0 and 1) sees the line through its 111 tap; MATLAB also through the mirrored 29 tap
    (HR -1 → 0): 140/256; torch drops the three outside taps and renormalises: 111/239. LR column 1
    sees HR column 0 through its -9 tap, and MATLAB through the mirrored -3 tap as well: -12/256;
    torch: -9/259 (one tap, -3, dropped). Nothing beyond."""
    hr = torch.zeros(1, 1, 6, 16, dtype=torch.float64)
    hr[..., 0] = 1.0
    want = {"matlab": [140 / 256, -12 / 256], "bicubic": [111 / 239, -9 / 259]}
    for method, first in want.items():
        lr = degrade(hr, 2, method)[0, 0].numpy()
        row = np.array(first + [0.0] * 6)
        np.testing.assert_allclose(lr, np.tile(row, (3, 1)), rtol=0, atol=1e-15, err_msg=method)


# --------------------------------------------------------------------------- gaussian


@pytest.mark.parametrize(("s", "sigma"), [(3, 1.3), (3, None), (5, 0.7)])
def test_gaussian_is_scipy_gaussian_filter_sampled_at_the_block_centres(s: int, sigma: float | None) -> None:
    """Odd s: the LR centres are HR cells ``s·i + s//2``, so the reference is scipy's filter (reflect
    borders, truncated at 4σ) followed by point sampling; σ defaults to s/2."""
    from scipy.ndimage import gaussian_filter

    dem = _dem()[: 15 * s, : 20 * s]
    x = np.stack([dem, dem[::-1] * 0.3])[None]  # (1, 2, H, W): channels filtered independently
    sig = s / 2 if sigma is None else sigma
    ref = gaussian_filter(x, sigma=(0, 0, sig, sig), mode="reflect", truncate=4.0)
    ref = ref[..., s // 2 :: s, s // 2 :: s]
    kw = {} if sigma is None else {"sigma": sigma}
    got = degrade(torch.from_numpy(np.ascontiguousarray(x)), s, "gaussian", **kw).numpy()
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9 * np.abs(dem).max())
    one = torch.from_numpy(np.ascontiguousarray(x))
    assert torch.equal(degrade(one, 1, "gaussian", sigma=2.0), one)  # scale 1: identity, blur included


@pytest.mark.parametrize(("s", "sigma"), [(2, 1.0), (4, None), (4, 0.0)])
def test_gaussian_at_even_scales_centres_the_kernel_between_hr_cells(s: int, sigma: float | None) -> None:
    """Even s: the LR centre ``s·i + (s-1)/2`` lies between two HR cells; the reference sums the
    Gaussian at the half-integer offsets over a symmetric-padded array, tap by tap (σ = 0: the mean of
    the two cells around the centre)."""
    y = _luma()[60 : 60 + 9 * s, 10 : 10 + 11 * s]
    sig = s / 2 if sigma is None else sigma
    reach = 4.0 * sig + 0.5
    pad = int(np.ceil(reach)) + s
    yp = np.pad(y, pad, mode="symmetric")
    ref = np.zeros((9, 11))
    for i in range(9):
        for j in range(11):
            ci, cj = s * i + (s - 1) / 2, s * j + (s - 1) / 2
            rows = [r for r in range(int(ci - reach) - 1, int(ci + reach) + 2) if abs(r - ci) <= reach]
            cols = [c for c in range(int(cj - reach) - 1, int(cj + reach) + 2) if abs(c - cj) <= reach]
            if sig > 0:
                wr = np.array([np.exp(-0.5 * ((r - ci) / sig) ** 2) for r in rows])
                wc = np.array([np.exp(-0.5 * ((c - cj) / sig) ** 2) for c in cols])
            else:
                wr, wc = np.ones(len(rows)), np.ones(len(cols))
            block = yp[np.ix_(np.array(rows) + pad, np.array(cols) + pad)]
            ref[i, j] = wr @ block @ wc / (wr.sum() * wc.sum())
    kw = {} if sigma is None else {"sigma": sigma}
    got = degrade(torch.from_numpy(np.ascontiguousarray(y))[None, None], s, "gaussian", **kw)[0, 0].numpy()
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    if sigma == 0.0:  # two cells each way: the mean of the central 2×2 of every 4×4 block
        blocks = y.reshape(9, 4, 11, 4)[:, 1:3, :, 1:3].mean(axis=(1, 3))
        np.testing.assert_allclose(got, blocks, rtol=0, atol=1e-12)


def test_gaussian_kernel_wider_than_the_array_mirrors_repeatedly() -> None:
    """σ = 3 on a 6-cell axis: taps reach far beyond both ends; mirroring the axis again and again makes
    a constant stay constant and matches scipy's reflect mode (which mirrors the same way)."""
    from scipy.ndimage import gaussian_filter

    x = np.arange(18, dtype=np.float64).reshape(3, 6) ** 1.5
    got = degrade(torch.from_numpy(x)[None, None], 3, "gaussian", sigma=3.0)[0, 0].numpy()
    ref = gaussian_filter(x, 3.0, mode="reflect")[1::3, 1::3]
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    flat = degrade(torch.full((1, 1, 6, 6), 2.5, dtype=torch.float64), 3, "gaussian", sigma=3.0)
    np.testing.assert_allclose(flat.numpy(), 2.5, rtol=0, atol=1e-14)


# --------------------------------------------------------------------------- k-space


def _band_limited(h: int, w: int) -> tuple[np.ndarray, object]:
    def f(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        return (
            1.5
            + np.sin(2 * np.pi * 3 * yy / h + 0.3)
            + 0.5 * np.cos(2 * np.pi * 2 * xx / w - 1.0)
            + 0.7 * np.cos(2 * np.pi * (2 * yy / h - 1 * xx / w) + 0.4)
        )

    return f(np.arange(h)[:, None], np.arange(w)[None, :]), f


@pytest.mark.parametrize(("s", "h", "w"), [(2, 20, 28), (4, 32, 48), (3, 27, 45), (4, 28, 36)])
def test_kspace_of_a_band_limited_field_is_the_field_at_the_lr_cell_centres(s: int, h: int, w: int) -> None:
    """Frequencies (3 and 2 cycles per axis) below the LR Nyquist frequency survive the truncation, and the
    LR samples sit at the LR cell centres ``s·i + (s-1)/2`` (even and odd LR sizes)."""
    hr, f = _band_limited(h, w)
    centres = [s * np.arange(n // s) + (s - 1) / 2 for n in (h, w)]
    want = f(centres[0][:, None], centres[1][None, :])
    got32 = degrade(torch.from_numpy(hr.astype(np.float32))[None, None], s, "kspace")[0, 0]
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.numpy(), want, rtol=0, atol=1e-5)
    got64 = degrade(torch.from_numpy(hr)[None, None], s, "kspace")[0, 0].numpy()
    np.testing.assert_allclose(got64, want, rtol=0, atol=1e-12)
    # a constant stays constant (the m/n scaling)
    flat = degrade(torch.full((1, 1, h, w), 7.25, dtype=torch.float64), s, "kspace")
    np.testing.assert_allclose(flat.numpy(), 7.25, rtol=0, atol=1e-12)


def _kspace_axis_reference(x: np.ndarray, s: int, axis: int) -> np.ndarray:
    """One axis with numpy's FFT: shift by (s-1)/2 HR cells (phase ramp), keep the centred block
    ``k = -m/2 … m/2 - 1`` of the fftshift'ed frequencies (what a scanner acquires), inverse FFT at
    the LR size, scale by m/n, real part."""
    n = x.shape[axis]
    m = n // s
    k = np.fft.fftfreq(n, 1 / n)
    shape = [1, 1]
    shape[axis] = n
    spec = np.fft.fft(x, axis=axis) * np.exp(2j * np.pi * (s - 1) / 2 * k / n).reshape(shape)
    centred = np.fft.fftshift(spec, axes=axis)
    block = np.take(centred, np.arange(n // 2 - m // 2, n // 2 - m // 2 + m), axis=axis)
    return (np.fft.ifft(np.fft.ifftshift(block, axes=axis), axis=axis) * m / n).real


@pytest.mark.parametrize("s", [2, 3, 4])
def test_kspace_is_per_axis_the_real_part_of_the_asymmetric_central_block_of_the_spectrum(s: int) -> None:
    """On a real DEM with even and odd LR sizes (s = 4: 24 × 30 LR cells; s = 3: 32 × 42)."""
    dem = _dem()[: (96 // s) * s, : (120 // s) * s]
    ref = _kspace_axis_reference(_kspace_axis_reference(dem, s, 0), s, 1)
    t = torch.from_numpy(np.ascontiguousarray(dem))[None, None]
    got = degrade(t, s, "kspace")[0, 0].numpy()
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9 * np.abs(dem).max())
    mag = degrade(t, s, "kspace", magnitude=True)[0, 0].numpy()
    np.testing.assert_allclose(mag, np.abs(got), rtol=0, atol=1e-9)
    # separable and flip-symmetric: transposing or flipping the field transposes/flips the result
    np.testing.assert_allclose(degrade(t.transpose(-1, -2), s, "kspace")[0, 0].numpy(), got.T, atol=1e-9)
    np.testing.assert_allclose(degrade(t.flip(-1), s, "kspace")[0, 0].numpy(), got[:, ::-1], atol=1e-9)


# --------------------------------------------------------------------------- slice


@pytest.mark.parametrize("axis", [-2, -1])
def test_contiguous_slices_are_the_block_mean_along_one_axis_only(axis: int) -> None:
    x = _dem()[:96, :120][None, None]
    t = torch.from_numpy(np.ascontiguousarray(x))
    for s in (2, 3, 4):
        got = degrade(t, s, "slice", axis=axis).numpy()
        if axis == -2:
            want = x.reshape(1, 1, 96 // s, s, 120).mean(axis=3)
        else:
            want = x.reshape(1, 1, 96, 120 // s, s).mean(axis=4)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)
        # thickness=scale, gap=0 spelled out gives the same
        same = degrade(t, s, "slice", axis=axis, thickness=s, gap=0).numpy()
        np.testing.assert_array_equal(same, got)


def test_slice_thickness_and_gap_weights() -> None:
    """s = 4, gap 2: thickness 2 centred in each block of 4 → the mean of slices 1 and 2 of each block.
    s = 2, thickness 3 (overlapping slices): weights 1/6, 1/3, 1/3, 1/6 on slices 2i-1 … 2i+2, the
    first slice mirrored (slice -1 → slice 0)."""
    y = _luma()[:48, :20]
    t = torch.from_numpy(np.ascontiguousarray(y))[None, None]
    thin = degrade(t, 4, "slice", gap=2)[0, 0].numpy()
    np.testing.assert_allclose(thin, y.reshape(12, 4, 20)[:, 1:3].mean(axis=1), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(degrade(t, 4, "slice", thickness=2)[0, 0].numpy(), thin)
    thick = degrade(t, 2, "slice", thickness=3)[0, 0].numpy()
    padded = np.concatenate([y[:1], y, y[-1:]])  # slice -1 = slice 0, slice 48 = slice 47
    want = np.stack([padded[2 * i : 2 * i + 4].T @ np.array([1, 2, 2, 1]) / 6 for i in range(24)])
    np.testing.assert_allclose(thick, want, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="must equal the slice spacing"):
        degrade(t, 4, "slice", thickness=3, gap=2)
    with pytest.raises(ValueError, match="axis -2 \\(rows\\) or -1"):
        degrade(t, 4, "slice", axis=0)
    with pytest.raises(ValueError, match="thickness must be positive"):
        degrade(t, 4, "slice", gap=4)
    with pytest.raises(ValueError, match="not a multiple of scale 5"):
        degrade(t, 5, "slice")  # only the sliced axis (48 rows) has to divide
    assert degrade(t[..., :19], 4, "slice").shape == (1, 1, 12, 19)


# --------------------------------------------------------------------------- noise, options, dtypes


def test_noise_is_reproducible_with_a_seed_and_has_the_requested_spread() -> None:
    hr = torch.from_numpy(np.ascontiguousarray(_luma()[:128, :128], dtype=np.float32))[None, None]
    hr = hr.expand(8, 1, 128, 128).contiguous()
    clean = degrade(hr, 2, "area")
    a = degrade(hr, 2, "area", noise=0.05, generator=torch.Generator().manual_seed(3))
    b = degrade(hr, 2, "area", noise=0.05, generator=torch.Generator().manual_seed(3))
    c = degrade(hr, 2, "area", noise=0.05, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    eps = (a - clean).double()
    assert abs(float(eps.std()) - 0.05) < 0.002  # 32768 draws: sd of the estimate ≈ 0.0002
    assert abs(float(eps.mean())) < 0.002
    assert not torch.equal(eps[0], eps[1])  # independent per sample
    assert torch.equal(degrade(hr, 2, "area", noise=0), clean)
    # the same noise as add_noise on the clean LR with the same seed
    again = add_noise(clean, 0.05, torch.Generator().manual_seed(3))
    assert torch.equal(again, a)
    with pytest.raises(ValueError, match="noise must be a standard deviation"):
        degrade(hr, 2, "area", noise=-0.1)


def test_option_errors_name_what_each_method_takes() -> None:
    x = torch.rand(1, 1, 8, 8)
    with pytest.raises(ValueError, match=r"'gaussian' takes sigma, truncate .*got sgma"):
        degrade(x, 2, "gaussian", sgma=1.0)
    with pytest.raises(ValueError, match=r"'area' takes no options .*got sigma"):
        degrade(x, 2, "area", sigma=1.0)
    with pytest.raises(ValueError, match="sigma >= 0"):
        degrade(x, 2, "gaussian", sigma=-1.0)
    assert reduced_axes("slice", axis=-1) == (-1,)
    assert reduced_axes("kspace") == (-2, -1)
    with pytest.raises(ValueError, match="unknown degradation 'box'"):
        reduced_axes("box")


@pytest.mark.parametrize("method", ["gaussian", "kspace", "slice", "matlab"])
def test_low_precision_inputs_are_computed_in_float32_and_returned_in_their_dtype(method: str) -> None:
    x = torch.from_numpy(np.ascontiguousarray(_luma()[:32, :48], dtype=np.float32))[None, None]
    ref = degrade(x, 4, method)
    for dt in (torch.bfloat16, torch.float16):
        got = degrade(x.to(dt), 4, method)
        assert got.dtype == dt and got.shape == ref.shape
        torch.testing.assert_close(got.float(), ref, rtol=0, atol=2e-2)
