"""load_training_data on real shipped samples, pool files when present, and DIV2K-style folders written
here: what is read, how fields are cropped, split and normalized, and that the statistics recorded for
the weights are the ones sciSR.downscale then applies."""

from __future__ import annotations

import json
import warnings
from itertools import product
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sciSR.data import sample_path
from sciSR.normalize import Normalizer
from sciSR.train.data import PatchSampler, load_luma, load_rgb
from sciSR.train.datasets import TrainingData, _largest_valid_rectangle, load_training_data

POOL = Path.home() / ".cache" / "scisr-pool"


def _raw(name: str, var: str) -> np.ndarray:
    import sciSR.io

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(sciSR.io.open_dataset(sample_path(name))[var].values, dtype=np.float64)


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    with Image.open(sample_path("ladybird_crop.png")) as im:
        return np.asarray(im.convert("RGB"))


def _save(path: Path, a: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)


def _div2k(root: Path, rgb: np.ndarray, hr_size: tuple[int, int] = (48, 64), valid: bool = True) -> None:
    """DIV2K layout: 3 train and 1 valid HR photos (crops of the sample) with LR_bicubic/X4 made by Pillow."""
    sets = {"train": ["0001", "0002", "0003"], "valid": ["0801"]} if valid else {"train": ["0001", "0002"]}
    k = 0
    for part, stems in sets.items():
        for stem in stems:
            hr = rgb[20 * k : 20 * k + hr_size[0], 30 * k : 30 * k + hr_size[1]]
            k += 1
            _save(root / f"DIV2K_{part}_HR" / f"{stem}.png", hr)
            lr = Image.fromarray(hr[:48, :64]).resize((16, 12), Image.Resampling.BICUBIC)
            _save(root / f"DIV2K_{part}_LR_bicubic" / "X4" / f"{stem}x4.png", np.asarray(lr))


# --------------------------------------------------------------------------- photo folders


def test_div2k_layout_gives_lr_pairs_and_the_valid_folder_as_validation(tmp_path, rgb) -> None:
    _div2k(tmp_path / "DIV2K", rgb)
    td = load_training_data(tmp_path / "DIV2K", scale=4)
    assert isinstance(td, TrainingData) and td.channels == 1
    assert len(td.train) == 3 and len(td.val) == 1 and len(td.train_lr) == 3 and len(td.val_lr) == 1
    for i, stem in enumerate(["0001", "0002", "0003"]):
        np.testing.assert_array_equal(td.train[i], load_luma(tmp_path / f"DIV2K/DIV2K_train_HR/{stem}.png"))
        lr_file = tmp_path / f"DIV2K/DIV2K_train_LR_bicubic/X4/{stem}x4.png"
        np.testing.assert_array_equal(td.train_lr[i], load_luma(lr_file))
        assert td.train[i].shape == (48, 64) and td.train_lr[i].shape == (12, 16)
    np.testing.assert_array_equal(td.val[0], load_luma(tmp_path / "DIV2K/DIV2K_valid_HR/0801.png"))
    assert "DIV2K_train_HR (3 images with DIV2K_train_LR_bicubic/X4 pairs)" in td.source
    assert "validation DIV2K_valid_HR" in td.source
    # photos keep their [0, 1] scale; the weights record a non-fixed minmax like the shipped photo weights
    assert td.norm == {"kind": "minmax", "fixed": False, "params": {}}
    assert td.weight_metadata() == {
        "scisr_norm": "minmax",
        "scisr_norm_params": "{}",
        "scisr_norm_fixed": "0",
    }
    # the sampler takes the pairs
    lr, hr = PatchSampler(td.train, 4, patch=32, lr_images=td.train_lr, seed=1).batch(4)
    assert lr.shape == (4, 1, 8, 8) and hr.shape == (4, 1, 32, 32)
    # RGB and the HR folder itself (its LR sibling is found)
    td3 = load_training_data(tmp_path / "DIV2K" / "DIV2K_train_HR", scale=4, channels=3, val_fraction=0)
    assert len(td3.train) == 3 and td3.val == [] and td3.train[0].shape == (3, 48, 64)
    np.testing.assert_array_equal(
        td3.train_lr[1], load_rgb(tmp_path / "DIV2K/DIV2K_train_LR_bicubic/X4/0002x4.png")
    )


def test_div2k_layout_crops_hr_to_its_lr_pair_and_checks_the_pairs(tmp_path, rgb) -> None:
    _div2k(tmp_path / "D", rgb, hr_size=(50, 66), valid=False)  # HR 50 × 66 for LR 12 × 16
    with pytest.warns(UserWarning, match="2 of 2 fields have sides that are not multiples of scale 4"):
        td = load_training_data(tmp_path / "D", scale=4, val_fraction=0.5)
    assert [f.shape for f in td.train + td.val] == [(48, 64), (48, 64)]
    full = load_luma(tmp_path / "D/DIV2K_train_HR/0001.png")
    assert any(np.array_equal(f, full[:48, :64]) for f in td.train + td.val)
    # no LR folder for ×2: HR only, LR made by degradation
    td2 = load_training_data(tmp_path / "D", scale=2, val_fraction=0.5)
    assert td2.train_lr is None and "no DIV2K_train_LR_bicubic/X2" in td2.source
    # max_side breaks the pairing: said, and the pairs are dropped
    with pytest.warns(UserWarning, match="max_side=40 shrinks the HR photos"):
        td3 = load_training_data(tmp_path / "D", scale=4, max_side=40, val_fraction=0.5)
    assert td3.train_lr is None and max(td3.train[0].shape) <= 40
    (tmp_path / "D/DIV2K_train_LR_bicubic/X4/0002x4.png").unlink()
    with pytest.raises(ValueError, match=r"has no LR image for 0002.png \(expected 0002x4.png\)"):
        load_training_data(tmp_path / "D", scale=4)


def test_image_folder_is_searched_recursively_and_bad_folders_are_named(tmp_path, rgb) -> None:
    _save(tmp_path / "imgs" / "a.png", rgb[:64, :80])
    _save(tmp_path / "imgs" / "sub" / "b.jpg", rgb[100:180, 50:150])
    _save(tmp_path / "imgs" / ".hidden" / "c.png", rgb[:40, :40])
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    td = load_training_data(tmp_path / "imgs", scale=2, val_fraction=0.5)
    assert sorted(f.shape for f in td.train + td.val) == [(64, 80), (80, 100)]
    assert "image folder" in td.source and "2 photos (luma in [0, 1])" in td.source
    assert len(td.train) == 1 and len(td.val) == 1
    # per_field stretches each photo to [0, 1]
    pf = load_training_data(tmp_path / "imgs", scale=2, val_fraction=0.5, norm="per_field")
    assert all(float(f.min()) == 0.0 and float(f.max()) == 1.0 for f in pf.train + pf.val)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no images in .*empty"):
        load_training_data(tmp_path / "empty", scale=2)
    (tmp_path / "imgs" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match=r"cannot read image .*broken.png"):
        load_training_data(tmp_path / "imgs", scale=2)
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        load_training_data(tmp_path / "missing", scale=2)


def test_image_paths_as_luma_or_rgb(tmp_path, rgb) -> None:
    paths = [tmp_path / "x.png", tmp_path / "y.png"]
    _save(paths[0], rgb[:40, :60])
    _save(paths[1], rgb[50:110, 10:70])
    td = load_training_data(paths, scale=4, channels=3, val_fraction=0)
    np.testing.assert_array_equal(td.train[0], load_rgb(paths[0]))
    assert td.train[1].shape == (3, 60, 60) and td.channels == 3
    with pytest.raises(ValueError, match="1 \\(luma\\) or 3 \\(RGB\\) channels"):
        load_training_data(paths, scale=4, channels=2)


# --------------------------------------------------------------------------- domain data


def test_geotiff_single_field_is_split_in_halves_and_normalized_with_training_statistics() -> None:
    dem = _raw("etopo5_alps.tif", "band_data")[0]  # 96 × 128
    td = load_training_data(sample_path("etopo5_alps.tif"), scale=4)
    assert "split in two halves" in td.source and "left 64" in td.source
    lo, hi = dem[:, :64].min(), dem[:, :64].max()  # training half only
    assert td.norm == {"kind": "minmax", "fixed": True, "params": {"min": lo, "max": hi}}
    np.testing.assert_allclose(td.train[0], (dem[:, :64] - lo) / (hi - lo), rtol=0, atol=1e-6)
    np.testing.assert_allclose(td.val[0], (dem[:, 64:] - lo) / (hi - lo), rtol=0, atol=1e-6)
    assert td.train[0].dtype == np.float32
    meta = td.weight_metadata()
    assert (
        set(meta) == {"scisr_norm", "scisr_norm_params", "scisr_norm_fixed"}
        and meta["scisr_norm_fixed"] == "1"
    )
    assert json.loads(meta["scisr_norm_params"]) == {"min": lo, "max": hi}
    back = Normalizer.from_attrs(meta)
    np.testing.assert_allclose(back.forward(dem[:, :64]), td.train[0], atol=1e-6)
    np.testing.assert_allclose(td.normalizer().inverse(td.val[0]), dem[:, 64:], atol=1e-3)


def test_weights_saved_with_the_metadata_make_downscale_use_the_training_statistics(tmp_path) -> None:
    import sciSR
    from sciSR.models.registry import create_model
    from sciSR.models.weights_io import save_weights

    td = load_training_data(sample_path("etopo5_alps.tif"), scale=2)
    path = tmp_path / "espcn_dem.safetensors"
    save_weights(create_model("espcn", scale=2, in_channels=1, pretrained=False), path, td.weight_metadata())
    da = sciSR.open(sample_path("etopo5_alps.tif"))["band_data"].isel(band=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = sciSR.downscale(da * 0.5 + 100, model="espcn", scale=2, weights=path)
    # not refitted to the (changed) input: the fixed training statistics
    assert out.attrs["scisr_norm"] == "minmax"
    assert json.loads(out.attrs["scisr_norm_params"]) == td.norm["params"]


def test_netcdf_time_slices_are_fields_split_by_seed_and_normalized_three_ways() -> None:
    tas = _raw("cmip5_tas_mpi-esm-lr_2005.nc", "tas")  # 3 × 96 × 192
    td = load_training_data(sample_path("cmip5_tas_mpi-esm-lr_2005.nc"), scale=4, seed=0)
    assert len(td.train) == 2 and len(td.val) == 1 and "tas (3 fields 96×192 along time)" in td.source
    raw_none = load_training_data(sample_path("cmip5_tas_mpi-esm-lr_2005.nc"), scale=4, norm="none", seed=0)
    assert raw_none.norm["kind"] == "none" and raw_none.weight_metadata()["scisr_norm"] == "none"
    val_i = next(i for i in range(3) if np.allclose(raw_none.val[0], tas[i]))
    train = [tas[i] for i in range(3) if i != val_i]
    for got, want in zip(raw_none.train, train):
        np.testing.assert_array_equal(got, want.astype(np.float32))
    lo, hi = min(t.min() for t in train), max(t.max() for t in train)
    assert td.norm["params"] == {"min": lo, "max": hi}
    np.testing.assert_allclose(td.val[0], (tas[val_i] - lo) / (hi - lo), atol=1e-6)
    pf = load_training_data(sample_path("cmip5_tas_mpi-esm-lr_2005.nc"), scale=4, norm="per_field")
    assert pf.norm == {"kind": "minmax", "fixed": False, "params": {}}
    for f in pf.train + pf.val:
        assert float(f.min()) == 0.0 and float(f.max()) == 1.0
    # deterministic with the seed; another seed can pick another field
    again = load_training_data(sample_path("cmip5_tas_mpi-esm-lr_2005.nc"), scale=4, norm="none", seed=0)
    np.testing.assert_array_equal(again.val[0], raw_none.val[0])
    picks = {
        next(
            i
            for i in range(3)
            if np.allclose(
                load_training_data(
                    sample_path("cmip5_tas_mpi-esm-lr_2005.nc"), scale=4, norm="none", seed=s
                ).val[0],
                tas[i],
            )
        )
        for s in range(6)
    }
    assert len(picks) > 1


def test_masked_fields_are_cropped_to_their_largest_valid_rectangle() -> None:
    sst = _raw("coads_sst_climatology.nc", "SST")  # 3 × 90 × 180, land NaN
    with pytest.warns(UserWarning, match="3 of 3 fields have NaN/masked cells: 3 cropped"):
        td = load_training_data(sample_path("coads_sst_climatology.nc"), scale=2, norm="none", val_fraction=0)
    for got, field in zip(td.train, sst):
        assert np.isfinite(got).all()
        y0, y1, x0, x1 = _largest_valid_rectangle(np.isfinite(field))
        h, w = (y1 - y0) // 2 * 2, (x1 - x0) // 2 * 2
        np.testing.assert_array_equal(got, field[y0 : y0 + h, x0 : x0 + w].astype(np.float32))
    assert "largest all-valid rectangle" in td.source


def test_largest_valid_rectangle_against_brute_force() -> None:
    rng = np.random.default_rng(5)
    for _ in range(40):
        mask = rng.random((7, 9)) < rng.uniform(0.5, 0.95)
        y0, y1, x0, x1 = _largest_valid_rectangle(mask)
        assert mask[y0:y1, x0:x1].all()
        best = max(
            (
                (b - a) * (d - c)
                for a, b, c, d in product(range(7), range(1, 8), range(9), range(1, 10))
                if b > a and d > c and mask[a:b, c:d].all()
            ),
            default=0,
        )
        assert (y1 - y0) * (x1 - x0) == best


def test_nifti_slices_along_an_axis_skip_near_empty_ones() -> None:
    import nibabel as nib

    vol = np.asarray(nib.load(sample_path("mni152_t1_slab.nii.gz")).dataobj, dtype=np.float64)  # 197×233×10
    td = load_training_data(sample_path("mni152_t1_slab.nii.gz"), scale=2, norm="none", val_fraction=0)
    assert len(td.train) == 10 and td.train[3].shape == (196, 232)
    np.testing.assert_array_equal(td.train[3], vol[:196, :232, 3].astype(np.float32))
    side = load_training_data(
        sample_path("mni152_t1_slab.nii.gz"), scale=2, axis=0, norm="none", val_fraction=0
    )
    level = 0.1 * np.percentile(np.abs(vol), 99)
    kept = [i for i in range(197) if (np.abs(vol[i]) > level).mean() >= 0.05]
    assert 0 < len(kept) < 197 and len(side.train) == len(kept)
    np.testing.assert_array_equal(side.train[0], vol[kept[0], :232, :10].astype(np.float32))
    assert f"{197 - len(kept)} near-empty skipped" in side.source
    # a nibabel image and a numpy volume with axis= read the same
    img = load_training_data(
        nib.load(sample_path("mni152_t1_slab.nii.gz")), scale=2, axis=0, norm="none", val_fraction=0
    )
    arr = load_training_data(vol, scale=2, axis=0, norm="none", val_fraction=0)
    for other in (img, arr):
        assert len(other.train) == len(side.train)
        np.testing.assert_array_equal(other.train[5], side.train[5])
    with pytest.raises(ValueError, match=r"axis 3 is out of range .* pass axis=0, 1 or 2"):
        load_training_data(sample_path("mni152_t1_slab.nii.gz"), scale=2, axis=3)


def test_xarray_objects_variables_and_channels() -> None:
    import sciSR

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = sciSR.open(sample_path("cmip5_tas_mpi-esm-lr_2005.nc"))
    td = load_training_data(ds["tas"].isel(time=0), scale=4)
    assert len(td.train) == 1 and len(td.val) == 1 and "DataArray tas" in td.source
    with pytest.raises(ValueError, match=r"no variable 'pr' in .*available: .*tas"):
        load_training_data(ds, scale=4, variables="pr")
    with pytest.raises(ValueError, match="no spatial dims found in 'time_bnds'"):
        load_training_data(ds, scale=4, variables=["time_bnds"])
    # two variables as two channels
    two = ds.assign(tas2=ds["tas"] * 2)
    td2 = load_training_data(two, scale=4, variables=["tas", "tas2"], channels=2, norm="none", val_fraction=0)
    assert td2.channels == 2 and td2.train[0].shape == (2, 96, 192)
    np.testing.assert_allclose(td2.train[1][1], 2 * td2.train[1][0], rtol=1e-6)
    with pytest.raises(ValueError, match="channels=3 needs 3 variables"):
        load_training_data(ds, scale=4, variables="tas", channels=4 - 1)
    with pytest.raises(ValueError, match="axis= slices volumes"):
        load_training_data(ds, scale=4, axis=0)


def test_numpy_arrays_and_bad_options() -> None:
    rng = np.random.default_rng(0)
    stack = rng.random((5, 30, 41))
    with pytest.warns(UserWarning, match="5 of 5 fields have sides that are not multiples of scale 3"):
        td = load_training_data(stack, scale=3, norm="none", val_fraction=0.2, seed=1)
    assert len(td.train) == 4 and len(td.val) == 1 and td.train[0].shape == (30, 39)
    four = load_training_data(rng.random((2, 3, 24, 24)), scale=2, channels=3, val_fraction=0)
    assert four.train[0].shape == (3, 24, 24) and len(four.train) == 2
    assert load_training_data([stack[0][:24, :24], stack[1]], scale=2, val_fraction=0).train[1].shape == (
        30,
        40,
    )
    with pytest.raises(ValueError, match=r"shape \(2, 4, 24, 24\) as 3-channel"):
        load_training_data(rng.random((2, 4, 24, 24)), scale=2, channels=3)
    with pytest.raises(ValueError, match="unknown norm 'zscore'"):
        load_training_data(stack, scale=2, norm="zscore")
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\)"):
        load_training_data(stack, scale=2, val_fraction=1.0)
    with pytest.raises(ValueError, match="scale must be a positive integer"):
        load_training_data(stack, scale=0)
    with pytest.raises(TypeError, match="cannot train on dict"):
        load_training_data({"a": 1}, scale=2)
    with pytest.raises(ValueError, match="the list is empty"):
        load_training_data([], scale=2)
    nan = np.full((20, 20), np.nan)
    with pytest.raises(ValueError, match="no usable training field"), pytest.warns(UserWarning):
        load_training_data(nan, scale=2)


# ------------------------------------------------------------------ training pool (skipped without it)


@pytest.mark.skipif(
    not (POOL / "precip" / "test_stageiv_xyt.nc").exists(), reason="training pool not fetched"
)
def test_pool_stage_iv_training_hours_give_patches() -> None:
    import sciSR

    ds = sciSR.open(POOL / "precip" / "test_stageiv_xyt.nc")
    da = ds["Total_precipitation_surface_1_Hour_Accumulation"].isel(time=slice(0, 16))  # training hours only
    with pytest.warns(UserWarning, match="16 of 16 fields"):
        td = load_training_data(da, scale=4)
    assert len(td.train) == 14 and len(td.val) == 2 and td.train[0].shape == (116, 84)
    raw = da.values[:, :116, :84]
    assert td.norm["params"]["min"] >= float(raw.min()) and td.norm["params"]["max"] <= float(raw.max())
    assert max(float(f.max()) for f in td.train) == pytest.approx(1.0)
    lr, hr = PatchSampler(td.train, 4, patch=48, method="area", min_std=0.01, augment=False).batch(4, 1)
    torch.testing.assert_close(lr, torch.nn.functional.avg_pool2d(hr, 4))


@pytest.mark.skipif(not (POOL / "dem" / "etopo20.cdf").exists(), reason="training pool not fetched")
def test_pool_etopo_single_grid_is_split_and_photos_folder_reads() -> None:
    td = load_training_data(POOL / "dem" / "etopo20.cdf", scale=4)  # 540 × 1081
    assert [f.shape for f in td.train + td.val] == [(540, 540), (540, 540)]
    assert "single field split in two halves" in td.source
    photos = sorted((POOL / "photos").glob("*.jpg"))[:3]
    if photos:
        tp = load_training_data(photos, scale=4, max_side=256, val_fraction=0)
        assert len(tp.train) == 3 and all(max(f.shape) <= 256 for f in tp.train)


def test_zarr_store_and_band_dim_as_channels(tmp_path) -> None:
    import xarray as xr

    import sciSR

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = sciSR.open(sample_path("cmip5_tas_mpi-esm-lr_2005.nc"))
        ds[["tas"]].to_zarr(tmp_path / "tas.zarr")
    td = load_training_data(tmp_path / "tas.zarr", scale=4, norm="none", val_fraction=0)
    assert len(td.train) == 3 and "tas.zarr: tas (3 fields 96×192 along time)" in td.source
    np.testing.assert_array_equal(td.train[2], ds["tas"].values[2])
    bands = xr.DataArray(np.random.default_rng(0).random((3, 40, 48)), dims=("band", "y", "x"), name="refl")
    rgb = load_training_data(bands, scale=4, channels=3, norm="per_field", val_fraction=0)
    assert len(rgb.train) == 1 and rgb.train[0].shape == (3, 40, 48)
    for c in range(3):  # per_field: each channel of each field by its own range
        assert float(rgb.train[0][c].min()) == 0.0 and float(rgb.train[0][c].max()) == 1.0
    one = load_training_data(bands, scale=4, val_fraction=0)  # one channel: each band is a field
    assert len(one.train) == 3 and "along band" in one.source
