"""Science metrics: masks, area weights, image protocol, spectra, consistency, detail fractions,
ensembles and the registry, each against an independent reference (numpy, scipy, skimage or a
written-out formula) on the shipped samples."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.integrate import quad
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from sciSR import metrics
from sciSR.data import sample_path


def _dem() -> np.ndarray:
    import rasterio

    with rasterio.open(sample_path("etopo5_alps.tif")) as src:
        return src.read(1).astype(np.float64)  # 96 × 128 metres


def _bicubic_up(lr: np.ndarray, s: int) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(lr, dtype=np.float64))[None, None]
    return F.interpolate(t, scale_factor=s, mode="bicubic", align_corners=False)[0, 0].numpy()


def _block(a: np.ndarray, s: int) -> np.ndarray:
    h, w = a.shape[-2:]
    return a.reshape(*a.shape[:-2], h // s, s, w // s, s).mean(axis=(-3, -1))


@pytest.fixture(scope="module")
def dem_pair() -> tuple[np.ndarray, np.ndarray]:
    ref = _dem()
    return _bicubic_up(_block(ref, 4), 4) + 15.0, ref


@pytest.fixture(scope="module")
def tas() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Real global temperature (3 × 96 × 192), its latitudes and latitude bounds."""
    import xarray as xr

    with xr.open_dataset(sample_path("cmip5_tas_mpi-esm-lr_2005.nc")) as ds:
        return ds["tas"].values.astype(np.float64), ds["lat"].values, ds["lat_bnds"].values


# ------------------------------------------------------------------ weights and masks
def test_area_weighted_pointwise_metrics_match_numpy_on_a_global_grid(tas) -> None:
    ref, lat, _ = tas
    pred = _bicubic_up(_block(ref[0], 4), 4)
    ref = ref[0]
    w = metrics.latitude_weights(lat)
    assert w.shape == (96, 1)
    full = np.broadcast_to(w, ref.shape).ravel()
    d = (pred - ref).ravel()
    assert metrics.rmse(pred, ref, weights=w) == pytest.approx(
        np.sqrt(np.average(d**2, weights=full)), rel=1e-12
    )
    assert metrics.mae(pred, ref, weights=w) == pytest.approx(np.average(np.abs(d), weights=full), rel=1e-12)
    assert metrics.bias(pred, ref, weights=w) == pytest.approx(np.average(d, weights=full), rel=1e-9)
    cov = np.cov(pred.ravel(), ref.ravel(), aweights=full)
    want_r = cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1])
    assert metrics.correlation(pred, ref, weights=w) == pytest.approx(want_r, rel=1e-12)
    # the weighting matters on this grid: polar rows have the largest errors
    assert metrics.rmse(pred, ref, weights=w) < 0.95 * metrics.rmse(pred, ref)
    mse = np.average(d**2, weights=full)
    assert metrics.psnr(pred, ref, weights=w) == pytest.approx(
        10 * np.log10(np.ptp(ref) ** 2 / mse), rel=1e-12
    )


def test_cell_area_weights_from_bounds(tas) -> None:
    _, lat, lat_b = tas
    a = metrics.cell_area_weights(lat_b)
    assert a.shape == (96, 1)
    assert a.sum() == pytest.approx(2.0, rel=1e-9)  # ∫ cos φ dφ over the sphere
    # proportional to cos φ to first order in the cell height
    ratio = (a[:, 0] / np.deg2rad(lat_b[:, 1] - lat_b[:, 0])) / np.cos(np.deg2rad(lat))
    np.testing.assert_allclose(ratio[1:-1], 1.0, atol=2e-3)  # pole rows: cos φ at the centre is too crude
    lon_b = np.stack([np.arange(192) * 1.875, np.arange(1, 193) * 1.875], axis=1)
    assert metrics.cell_area_weights(lat_b, lon_b).sum() == pytest.approx(4 * np.pi, rel=1e-9)


def test_explicit_mask_equals_indexing_and_combines_with_non_finite(dem_pair) -> None:
    pred, ref = dem_pair
    pred = pred.copy()
    pred[:5, :5] = np.nan
    mask = np.zeros(ref.shape, bool)
    mask[20:70, 30:100] = True
    mask[40, 40] = False
    ok = mask & np.isfinite(pred)
    p, r = pred[ok], ref[ok]
    assert metrics.rmse(pred, ref, mask=mask) == pytest.approx(np.sqrt(np.mean((p - r) ** 2)), rel=1e-12)
    assert metrics.bias(pred, ref, mask=mask) == pytest.approx(np.mean(p - r), rel=1e-9)
    assert metrics.rfne(pred, ref, mask=mask) == pytest.approx(
        np.linalg.norm(p - r) / np.linalg.norm(r), rel=1e-12
    )
    # a row mask broadcasts; a mask of the wrong shape is refused with both shapes
    rows = np.zeros((96, 1), bool)
    rows[10:50] = True
    assert metrics.mae(pred, ref, mask=rows) == pytest.approx(metrics.mae(pred[10:50], ref[10:50]), rel=1e-12)
    with pytest.raises(
        ValueError, match=r"^mask of shape \(3, 3\) does not broadcast to the data shape \(96, 128\)$"
    ):
        metrics.rmse(pred, ref, mask=np.ones((3, 3), bool))
    with pytest.raises(ValueError, match="inside the mask"):
        metrics.rmse(pred, ref, mask=np.zeros(ref.shape, bool))
    with pytest.raises(ValueError, match="non-negative"):
        metrics.rmse(pred, ref, weights=-np.ones((96, 1)))
    # weights of zero exclude cells like a mask does
    assert metrics.rmse(pred, ref, weights=mask.astype(float)) == pytest.approx(
        metrics.rmse(pred, ref, mask=mask), rel=1e-12
    )


@pytest.mark.parametrize(
    "name", [n for n, m in metrics.METRICS.items() if m.kind == "deterministic" and not m.needs]
)
def test_every_metric_names_both_shapes_when_they_differ(name: str) -> None:
    a, b = np.zeros((20, 24)), np.zeros((24, 20))
    with pytest.raises(ValueError, match=r"shapes differ: prediction \(20, 24\) vs reference \(24, 20\)"):
        metrics.compute(name, a, b)


# ------------------------------------------------------------------ image protocol
def test_psnr_y_and_ssim_y_match_skimage_on_the_photo() -> None:
    with Image.open(sample_path("ladybird_crop.png")) as im:
        hr8 = np.asarray(im.convert("RGB"), dtype=np.float64)  # 0 … 255
    s = 4
    lr = _block(np.moveaxis(hr8, -1, 0), s)
    sr8 = np.stack([_bicubic_up(c, s) for c in lr], axis=-1)
    y_hr = rgb2ycbcr(hr8 / 255.0)[..., 0][s:-s, s:-s]
    y_sr = rgb2ycbcr(np.clip(sr8, 0, 255) / 255.0)[..., 0][s:-s, s:-s]
    want_psnr = peak_signal_noise_ratio(y_hr, y_sr, data_range=255.0)
    want_ssim = structural_similarity(
        y_hr, y_sr, data_range=255.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    sr_c = np.clip(sr8, 0, 255)
    assert metrics.psnr_y(sr_c, hr8, s, channel_axis=-1) == pytest.approx(want_psnr, rel=1e-10)
    assert metrics.ssim_y(sr_c, hr8, s, channel_axis=-1) == pytest.approx(want_ssim, rel=1e-10)
    # channels first, [0, 1] input, and through the registry (border = scale)
    chw = np.moveaxis(sr_c, -1, 0) / 255.0
    assert metrics.psnr_y(chw, np.moveaxis(hr8, -1, 0) / 255.0, s, channel_axis=-3) == pytest.approx(
        want_psnr, rel=1e-10
    )
    y_full_sr = metrics.rgb_to_y(sr_c / 255.0)
    y_full_hr = metrics.rgb_to_y(hr8 / 255.0)
    assert metrics.compute("psnr_y", y_full_sr, y_full_hr, border=s) == pytest.approx(want_psnr, rel=1e-10)
    # the field version uses the reference's own range and no shave: a different number
    assert metrics.psnr(y_full_sr, y_full_hr) != pytest.approx(want_psnr, rel=1e-3)


def test_weighted_and_stacked_ssim_against_skimage_maps(dem_pair) -> None:
    pred, ref = dem_pair
    _, smap = structural_similarity(
        ref, pred, data_range=4000.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, full=True
    )
    inner = smap[5:-5, 5:-5]
    w = np.zeros((96, 1))
    w[40:80] = 2.0  # only rows 40 … 79 count (map rows 35 … 74 of the cropped map)
    got = metrics.ssim(pred, ref, data_range=4000.0, weights=w)
    assert got == pytest.approx(float(inner[35:75].mean()), rel=1e-10)
    # a stack pools the maps: two halves of equal size give the mean of their SSIMs
    a, b = (pred[:, :64], ref[:, :64]), (pred[:, 64:], ref[:, 64:])
    stacked = metrics.compute("ssim", np.stack([a[0], b[0]]), np.stack([a[1], b[1]]))
    r = max(np.ptp(a[1]), np.ptp(b[1]))
    want = np.mean([metrics.ssim(x, y, data_range=np.ptp(np.stack([a[1], b[1]]))) for x, y in (a, b)])
    assert r > 0 and stacked == pytest.approx(want, rel=1e-10)
    with pytest.raises(ValueError, match="2-D"):
        metrics.ssim(np.stack([pred, pred]), np.stack([ref, ref]))


# ------------------------------------------------------------------ distributions and spectra
def test_weighted_quantiles_reduce_to_numpy_and_follow_the_weights(dem_pair) -> None:
    pred, ref = dem_pair
    q = (0.95, 0.99, 0.999)
    plain = metrics.quantile_errors(pred, ref)
    assert tuple(plain) == q
    for k in q:
        assert plain[k] == pytest.approx(np.quantile(pred, k) - np.quantile(ref, k), rel=1e-12)
    equal = metrics.quantile_errors(pred, ref, weights=np.full((96, 1), 3.0))
    for k in q:
        assert equal[k] == pytest.approx(plain[k], rel=1e-12, abs=1e-9)
    # hand example: values 0, 10, 20 with weights 2, 1, 1: cumulative 2, 3, 4, plotting positions
    # (C − w)/(C_n − w_n) = 0, 2/3, 1, so the median is 7.5 (unweighted: 10)
    x, zero = np.array([[0.0, 10.0, 20.0]]), np.zeros((1, 3))
    wq = metrics.quantile_errors(x, zero, (0.5, 0.25), weights=np.array([[2.0, 1.0, 1.0]]))
    assert wq[0.5] == pytest.approx(7.5) and wq[0.25] == pytest.approx(3.75)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metrics.quantile_errors(pred, ref, (95,))


def test_log_spectral_distance_exact_cases(dem_pair) -> None:
    pred, ref = dem_pair
    assert metrics.log_spectral_distance(ref, ref) == 0.0
    # doubling the anomaly multiplies every ring's power by 4: 10·log10(4) dB everywhere
    anomaly = ref - ref.mean()
    assert metrics.log_spectral_distance(2 * anomaly + 7, anomaly) == pytest.approx(
        10 * np.log10(4), rel=1e-12
    )
    # written-out definition from the radial spectra
    _, pp = metrics.radial_power_spectrum(pred)
    _, pr = metrics.radial_power_spectrum(ref)
    want = np.sqrt(np.mean((10 * np.log10(pp / pr)) ** 2))
    assert metrics.log_spectral_distance(pred, ref) == pytest.approx(want, rel=1e-12)
    assert want > 1.0  # bicubic has lost fine-scale power
    with pytest.raises(ValueError, match="takes no weights"):
        metrics.log_spectral_distance(pred, ref, weights=np.ones((96, 1)))


def test_masked_spectrum_keeps_the_variance_of_a_stationary_field() -> None:
    rng = np.random.default_rng(3)
    f = rng.normal(0.0, 2.0, (64, 64))
    mask = np.ones(f.shape, bool)
    mask[::7, :] = False  # 10 rows of 64 missing
    _k, p_full = metrics.radial_power_spectrum(f)
    _k, p_mask = metrics.radial_power_spectrum(np.where(mask, f, np.nan), mask=mask)
    assert p_mask.mean() == pytest.approx(p_full.mean(), rel=0.05)
    stack = np.stack([f, 3 * f])
    _k, p_stack = metrics.radial_power_spectrum(stack)
    np.testing.assert_allclose(p_stack, 5 * p_full, rtol=1e-12)  # mean of 1× and 9× the power


# ------------------------------------------------------------------ consistency through D
def test_consistency_error_through_the_degradation_registry(dem_pair) -> None:
    from sciSR.train.degrade import degrade

    pred, ref = dem_pair
    lr = _block(ref, 4)
    rep = np.kron(lr, np.ones((4, 4)))
    assert metrics.consistency_error(rep, lr, 4) == pytest.approx(0.0, abs=1e-9)
    assert metrics.consistency_error(pred, lr, 4, reduce="max") == pytest.approx(
        metrics.conservation_error(pred, lr, 4), rel=1e-12
    )
    want_mean = np.mean(np.abs(_block(pred, 4) - lr))
    assert metrics.consistency_error(pred, lr, 4) == pytest.approx(want_mean, rel=1e-12)
    assert metrics.consistency_error(pred, lr, 4, relative=True) == pytest.approx(
        want_mean / np.mean(np.abs(lr)), rel=1e-12
    )
    # a Gaussian LR is reproduced exactly by the truth, not by the block mean
    t = torch.from_numpy(ref)[None, None]
    lr_g = degrade(t, 4, "gaussian", sigma=1.5)[0, 0].numpy()
    assert metrics.consistency_error(ref, lr_g, 4, "gaussian", sigma=1.5) == pytest.approx(0.0, abs=1e-9)
    assert metrics.consistency_error(ref, lr_g, 4, "area") > 5.0
    # weights: the LR weights are block means of the HR weights
    w = np.linspace(0.2, 1.0, 96)[:, None]
    lw = _block(np.broadcast_to(w, ref.shape), 4)
    want_w = np.sum(lw * np.abs(_block(pred, 4) - lr)) / np.sum(lw)
    assert metrics.consistency_error(pred, lr, 4, weights=w) == pytest.approx(want_w, rel=1e-12)
    # a masked HR cell removes its LR block only
    mask = np.ones(ref.shape, bool)
    mask[5, 9] = False
    keep = np.ones(lr.shape, bool)
    keep[1, 2] = False
    assert metrics.consistency_error(pred, lr, 4, mask=mask) == pytest.approx(
        np.mean(np.abs(_block(pred, 4) - lr)[keep]), rel=1e-12
    )
    with pytest.raises(ValueError, match=r"lr shape \(24, 31\) does not match the prediction \(96, 128\)"):
        metrics.consistency_error(pred, lr[:, :31], 4)
    with pytest.raises(ValueError, match="kspace"):
        metrics.consistency_error(np.where(mask, pred, np.nan), lr, 4, "kspace")


# ------------------------------------------------------------------ detail fractions
def test_detail_fractions_classify_hand_made_cells() -> None:
    b = np.zeros((1, 8))
    y = np.array([[10.0, 10.0, 10.0, 10.0, 0.0, 0.0, 0.0, 0.0]])
    p = np.array([[10.0, 0.5, 25.0, -3.0, 8.0, 0.2, 0.0, 0.0]])
    # τ = 1: cells 0 (p = y) improvement; 1 (unchanged) omission; 2 (overshoot by 15) hallucination;
    # 3 (wrong way) hallucination; 4 (invented detail) hallucination; 5 (below τ both) not counted
    got = metrics.detail_fractions(p, y, b, tol=1.0)
    assert got["improvement"] == pytest.approx(1 / 5)
    assert got["omission"] == pytest.approx(1 / 5)
    assert got["hallucination"] == pytest.approx(3 / 5)
    assert got["detail_share"] == pytest.approx(5 / 8)
    # default τ = 0.1 × RMS(y − b); weights count cells
    rms = np.sqrt(np.mean(y**2))
    assert metrics.detail_fractions(p, y, b)["tol"] == pytest.approx(0.1 * rms)
    w = np.array([[3.0, 1, 1, 1, 1, 1, 1, 1]])
    assert metrics.detail_fractions(p, y, b, tol=1.0, weights=w)["improvement"] == pytest.approx(3 / 7)


def test_detail_fractions_on_the_dem(dem_pair) -> None:
    pred, ref = dem_pair
    base = pred - 15.0  # the bicubic baseline
    truth_like = metrics.detail_fractions(ref, ref, base)
    assert truth_like["improvement"] == pytest.approx(1.0)  # the truth recovers every detail cell
    same = metrics.detail_fractions(base, ref, base)
    assert same["omission"] == pytest.approx(1.0)
    noisy = base + np.random.default_rng(0).normal(0, 300.0, ref.shape)
    f = metrics.detail_fractions(noisy, ref, base)
    assert f["hallucination"] > 0.5
    assert sum(f[k] for k in ("improvement", "hallucination", "omission")) == pytest.approx(1.0)


# ------------------------------------------------------------------ ensembles
def _crps_integral(x: np.ndarray, y: float) -> float:
    """∫ (F_ens(t) − 1{t ≥ y})² dt by quadrature between the breakpoints."""
    pts = np.sort(np.concatenate([x, [y]]))
    total = 0.0
    for a, b in itertools.pairwise(pts):
        if b > a:
            total += quad(lambda t: (np.mean(x <= t) - float(t >= y)) ** 2, a, b)[0]
    return total


def test_crps_matches_the_integral_and_the_pairwise_formula(tas) -> None:
    ref = tas[0][0, 40:44, 10:14]  # 16 real temperatures
    rng = np.random.default_rng(5)
    ens = ref[None] + rng.normal(0.5, 2.0, (6, *ref.shape))
    m = ens.shape[0]
    want_std, want_fair = [], []
    for i, j in np.ndindex(ref.shape):
        x, y = ens[:, i, j], ref[i, j]
        pair = np.abs(x[:, None] - x[None, :]).sum()
        want_std.append(np.abs(x - y).mean() - pair / (2 * m * m))
        want_fair.append(np.abs(x - y).mean() - pair / (2 * m * (m - 1)))
        assert want_std[-1] == pytest.approx(_crps_integral(x, y), rel=1e-7)
    assert metrics.crps_ensemble(ens, ref) == pytest.approx(np.mean(want_std), rel=1e-12)
    assert metrics.crps_ensemble(ens, ref, fair=True) == pytest.approx(np.mean(want_fair), rel=1e-12)
    assert metrics.crps_ensemble(ens, ref) < np.mean([metrics.mae(x, ref) for x in ens])
    assert metrics.compute("crps_fair", ens, ref) < metrics.compute("crps", ens, ref)
    # members on another axis; mismatched shapes named
    assert metrics.crps_ensemble(np.moveaxis(ens, 0, -1), ref, member_axis=-1) == pytest.approx(
        np.mean(want_std), rel=1e-12
    )
    with pytest.raises(ValueError, match=r"ensemble shape \(6, 4, 4\) .* observation shape \(4, 5\)"):
        metrics.crps_ensemble(ens, np.zeros((4, 5)))


def test_rank_histogram_and_spread_skill_on_calibrated_and_overconfident_ensembles() -> None:
    rng = np.random.default_rng(11)
    n, m = 20000, 9
    centre = rng.normal(0, 5, n)
    obs = centre + rng.normal(0, 1, n)
    good = centre[None] + rng.normal(0, 1, (m, n))
    tight = centre[None] + rng.normal(0, 0.3, (m, n))
    h = metrics.rank_histogram(good, obs)
    assert h.shape == (m + 1,) and h.sum() == pytest.approx(1.0)
    assert np.abs(h - 1 / (m + 1)).max() < 0.015
    ht = metrics.rank_histogram(tight, obs)
    assert ht[0] + ht[-1] > 0.6  # U shape: the truth is often outside an over-confident ensemble
    assert metrics.spread_skill_ratio(good, obs) == pytest.approx(1.0, abs=0.03)
    assert metrics.spread_skill_ratio(good, obs, corrected=False) == pytest.approx(
        np.sqrt(m / (m + 1)), abs=0.03
    )
    assert metrics.spread_skill_ratio(tight, obs) < 0.5
    # ties (dry cells): the rank is uniform over the tied positions
    zeros = metrics.rank_histogram(np.zeros((4, 5000)), np.zeros(5000))
    assert np.abs(zeros - 0.2).max() < 0.03
    with pytest.raises(ValueError, match="at least 2 members"):
        metrics.spread_skill_ratio(good[:1], obs)


# ------------------------------------------------------------------ registry
def test_registry_metadata_and_context(dem_pair) -> None:
    pred, ref = dem_pair
    for name, e in metrics.METRICS.items():
        assert e.name == name and e.units in ("data", "dB", "1", "fraction") and e.description
    assert set(metrics.DEFAULT_METRICS) <= set(metrics.METRICS)
    # the flags agree with the numbers: a better prediction moves each metric towards its best
    worse = pred + np.random.default_rng(2).normal(0, 200.0, ref.shape)
    lr = _block(ref, 4)
    ctx = {"lr": lr, "scale": 4, "baseline": np.kron(lr, np.ones((4, 4)))}
    # (not lsd: white noise adds the fine-scale power bicubic lacks, so it can lower the LSD)
    for name in ("rmse", "mae", "rfne", "psnr", "ssim", "correlation", "consistency", "improvement"):
        e = metrics.METRICS[name]
        good, bad = metrics.compute(name, pred, ref, **ctx), metrics.compute(name, worse, ref, **ctx)
        assert (good > bad) == e.higher_is_better, name
    with pytest.raises(ValueError, match="unknown metric 'psnr_z'"):
        metrics.compute("psnr_z", pred, ref)
    with pytest.raises(ValueError, match=r"^metric 'consistency' needs lr=, scale=$"):
        metrics.compute("consistency", pred, ref)
