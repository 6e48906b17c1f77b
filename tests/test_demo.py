"""`scisr demo`: the README's main job runs on the shipped samples, scores make sense, figures are right.

One demo run at the README's default scale (×4) is shared by the tests of this module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import sciSR
from sciSR.data import list_samples, sample_path
from sciSR.demo import BASELINES, block_mean, learned_models, load_field, nifti_view, run_demo

SCALE = 4
DPI = 110  # run_demo saves at this resolution

#: samples on which a model card of the shipped weights claims a win over a baseline at ×4
#: (espcn_x4_c1.md: photos, Y channel: 33.62 vs 32.59 dB for bicubic)
CARD_WINS = {("espcn", "ladybird_crop.png"): "bicubic"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("demo")
    figures: dict[str, Any] = {}
    records = run_demo(out, scale=SCALE, log=lambda _m: None, on_figure=figures.__setitem__)
    by = {(r["sample"], r["model"]): r for r in records}
    return {"out": out, "records": records, "by": by, "figures": figures}


def _stem(name: str) -> tuple[str, str]:
    stem = name.split(".")[0]
    return stem, name[len(stem) :]


def _coarsen_loop(f: np.ndarray, s: int) -> np.ndarray:
    """Block mean written as a sum of the s² shifted sub-grids (independent of the demo's reshape)."""
    h, w = f.shape[-2] // s, f.shape[-1] // s
    f = f[..., : h * s, : w * s]
    return sum(f[..., a::s, b::s] for a in range(s) for b in range(s)) / s**2


def test_block_mean_matches_the_sub_grid_mean_and_conserves() -> None:
    f = np.random.default_rng(0).random((3, 8, 12))
    lr = block_mean(f, 4)
    assert lr.shape == (3, 2, 3)
    np.testing.assert_allclose(lr, _coarsen_loop(f, 4), rtol=0, atol=1e-12)
    assert sciSR.metrics.conservation_error(np.kron(lr[0], np.ones((4, 4))), lr[0], 4) < 1e-12
    g = f[0].copy()
    g[1, 1] = np.nan
    assert np.isnan(block_mean(g, 4)[0, 0]) and np.isfinite(block_mean(g, 4)[0, 1])


def test_every_sample_and_model_is_scored(demo) -> None:
    models = [*BASELINES, *learned_models(SCALE)]
    assert "espcn" in models  # the shipped ×4 weights are found
    assert len(list_samples()) >= 5
    assert sorted(demo["by"]) == sorted((s, m) for s in list_samples() for m in models)
    saved = json.loads((demo["out"] / "report.json").read_text())
    assert saved == json.loads(json.dumps(demo["records"]))
    report = (demo["out"] / "report.md").read_text()
    assert report.count("\n| ") == len(demo["records"]) + 1  # header + one row per record


def test_nearest_score_equals_an_independent_computation(demo) -> None:
    for name in list_samples():
        ref = load_field(sample_path(name), SCALE).values
        nearest = np.kron(_coarsen_loop(ref, SCALE), np.ones((SCALE, SCALE)))
        ok = np.isfinite(nearest) & np.isfinite(ref)
        want = float(np.sqrt(np.mean((nearest[ok] - ref[ok]) ** 2)))
        assert demo["by"][(name, "nearest")]["rmse"] == pytest.approx(want, rel=1e-9), name


def test_scores_rank_and_lie_in_a_plausible_range(demo) -> None:
    by = demo["by"]
    for name in list_samples():
        ref = load_field(sample_path(name), SCALE).values
        spread = float(np.nanstd(ref))
        near, bic = by[(name, "nearest")], by[(name, "bicubic")]
        # on real fields bicubic beats pixel replication, and every shipped model beats it too
        assert bic["rmse"] < 0.9 * near["rmse"], name
        for m in learned_models(SCALE):
            assert by[(name, m)]["rmse"] < near["rmse"], (name, m)
        for m in [*BASELINES, *learned_models(SCALE)]:
            r = by[(name, m)]
            assert 0.005 * spread < r["rmse"] < 0.5 * spread, (name, m, r["rmse"], spread)
            assert 15.0 < r["psnr"] < 50.0, (name, m)
            assert abs(r["bias"]) < 0.02 * spread, (name, m)
            assert 0.6 < r["ssim"] < 1.0, (name, m)  # masked fields: over fully valid windows
        if np.isnan(ref).any():  # SSIM ranks like RMSE there too
            assert by[(name, "bicubic")]["ssim"] > near["ssim"], name
        # block means are what nearest reproduces: its bias is zero up to rounding
        assert abs(near["bias"]) < 1e-6 * spread, name  # float32 rounding only
    for (model, name), baseline in CARD_WINS.items():
        assert by[(name, model)]["rmse"] < by[(name, baseline)]["rmse"], (model, name)


def test_whole_file_outputs_are_on_the_refined_grid(demo) -> None:
    import nibabel as nib
    import rasterio
    from PIL import Image
    from rasterio.transform import Affine

    out: Path = demo["out"]
    s = SCALE
    for name in list_samples():
        stem, ext = _stem(name)
        assert (out / f"{stem}_x{s}{ext}").exists(), name

    # CF grids: on a regular axis every old centre is the mean of its s sub-cell centres
    for name, dims in {
        "cmip5_tas_mpi-esm-lr_2005.nc": ("lon",),
        "coads_sst_climatology.nc": ("COADSY", "COADSX"),
    }.items():
        a, b = sciSR.open(sample_path(name)), sciSR.open(out / f"{_stem(name)[0]}_x{s}.nc")
        for dim in dims:
            old, new = a[dim].values, b[dim].values
            assert new.size == s * old.size
            np.testing.assert_allclose(new.reshape(-1, s).mean(axis=1), old, atol=1e-9)
            assert np.all(np.diff(new) > 0)
        var = next(v for v in b.data_vars if a[v].ndim == 3)
        old_nan = np.isnan(a[var].values)
        np.testing.assert_array_equal(np.isnan(b[var].values), old_nan.repeat(s, -2).repeat(s, -1))
    # Gaussian latitudes (irregular, with bounds): each cell's bounds split into s equal parts,
    # every new centre in the middle of its part
    a = sciSR.open(sample_path("cmip5_tas_mpi-esm-lr_2005.nc"))
    b = sciSR.open(out / f"cmip5_tas_mpi-esm-lr_2005_x{s}.nc")
    lo, hi = a.lat_bnds.values[:, :1], a.lat_bnds.values[:, 1:]
    edges = lo + (hi - lo) * np.arange(s + 1) / s
    new_b = b.lat_bnds.values.reshape(-1, s, 2)
    np.testing.assert_allclose(new_b[..., 0], edges[:, :-1], atol=1e-9)
    np.testing.assert_allclose(new_b[..., 1], edges[:, 1:], atol=1e-9)
    np.testing.assert_allclose(b.lat.values, b.lat_bnds.values.mean(axis=1), atol=1e-9)

    with (
        rasterio.open(sample_path("etopo5_alps.tif")) as ra,
        rasterio.open(out / f"etopo5_alps_x{s}.tif") as rb,
    ):
        assert (rb.height, rb.width) == (s * ra.height, s * ra.width)
        assert rb.crs == ra.crs
        assert rb.transform.almost_equals(ra.transform @ Affine.scale(1 / s), precision=1e-12)
        np.testing.assert_allclose(tuple(rb.bounds), tuple(ra.bounds), atol=1e-9)

    na, nb = nib.load(sample_path("mni152_t1_slab.nii.gz")), nib.load(out / f"mni152_t1_slab_x{s}.nii.gz")
    assert nb.shape == (s * na.shape[0], s * na.shape[1], na.shape[2])
    S = np.diag([1 / s, 1 / s, 1.0, 1.0])
    S[:2, 3] = (1 / s - 1) / 2
    np.testing.assert_allclose(nb.affine, na.affine @ S, atol=1e-6)

    with (
        Image.open(sample_path("ladybird_crop.png")) as ia,
        Image.open(out / f"ladybird_crop_x{s}.png") as ib,
    ):
        assert ib.size == (s * ia.size[0], s * ia.size[1]) and ib.mode == ia.mode == "RGB"


def _panels(fig: Any) -> list[Any]:
    """The figure's panels (axes that are not colour bars)."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def test_figures_have_every_panel_filled(demo) -> None:
    from PIL import Image

    models = [*BASELINES, *learned_models(SCALE)]
    ncol = 1 + len(models)
    for name in list_samples():
        fig = demo["figures"][name]
        panels = _panels(fig)
        assert len(panels) == 2 * ncol, name
        # top row: original + one field per model; bottom row: RMSE bars + one error map per model
        top, bottom = panels[:ncol], panels[ncol:]
        assert all(len(ax.images) == 1 for ax in top + bottom[1:]), name
        assert len(bottom[0].patches) == len(models) and not bottom[0].images, name
        titles = [ax.get_title() for ax in panels]
        for m in models[1:]:
            assert any(t.startswith(m) for t in titles[:ncol]) and f"|error| {m}" in titles, (name, m)
        for ax in top + bottom[1:]:
            a = np.ma.masked_invalid(np.asarray(ax.images[0].get_array(), dtype=float))
            assert a.count() > 0.3 * a.size and float(a.max() - a.min()) > 0, (name, ax.get_title())
        # the saved PNG is this figure at the demo's resolution
        w, h = (fig.get_size_inches() * DPI).round().astype(int)
        with Image.open(demo["out"] / f"{_stem(name)[0]}_x{SCALE}_demo.png") as png:
            assert abs(png.size[0] - w) <= 2 and abs(png.size[1] - h) <= 2, name


def test_figures_have_units_and_coordinate_axes(demo) -> None:
    bars = {
        "cmip5_tas_mpi-esm-lr_2005.nc": "[K]",
        "coads_sst_climatology.nc": "[Deg C]",
        "etopo5_alps.tif": "[m]",
        "mni152_t1_slab.nii.gz": "[a.u.]",
        "ladybird_crop.png": "[8-bit levels]",
    }
    axes_labels = {
        "cmip5_tas_mpi-esm-lr_2005.nc": ("longitude [°E]", "latitude [°N]"),
        "coads_sst_climatology.nc": ("longitude [°E]", "latitude [°N]"),
        "etopo5_alps.tif": ("longitude [°E]", "latitude [°N]"),
        "mni152_t1_slab.nii.gz": ("x [mm], left → right", "y [mm], posterior → anterior"),
        "ladybird_crop.png": ("x [pixel]", "y [pixel]"),
    }
    for name, unit in bars.items():
        fig = demo["figures"][name]
        cbars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
        labels = [cb.get_ylabel() for cb in cbars]
        expected = 1 if name.endswith(".png") else 2  # a colour photo needs no colour bar
        assert len(cbars) == expected and all(unit in lab for lab in labels), (name, labels)
        assert any(lab.startswith("|error|") for lab in labels), name
        top = _panels(fig)[0]
        assert (top.get_xlabel(), top.get_ylabel()) == axes_labels[name]


def _row_on_top(
    a: np.ndarray, origin: str, extent: tuple[float, ...], ylim: tuple[float, float]
) -> np.ndarray:
    """The row of an ``imshow`` array that appears at the top of the screen (matplotlib's placement rules)."""
    y_row0, y_last = (extent[2], extent[3]) if origin == "lower" else (extent[3], extent[2])
    upward = ylim[1] > ylim[0]  # the y axis increases toward the top of the screen
    return a[0] if (y_row0 > y_last) == upward else a[-1]


def _on_top(im: Any) -> np.ndarray:
    return _row_on_top(np.asarray(im.get_array()), im.origin, im.get_extent(), im.axes.get_ylim())


@pytest.mark.parametrize(
    ("name", "lat"),
    [
        ("cmip5_tas_mpi-esm-lr_2005.nc", "lat"),
        ("coads_sst_climatology.nc", "COADSY"),
        ("etopo5_alps.tif", "y"),
    ],
)
def test_maps_are_drawn_north_up_in_their_coordinates(demo, name: str, lat: str) -> None:
    fig = demo["figures"][name]
    im = _panels(fig)[0].images[0]
    field = load_field(sample_path(name), SCALE)
    ds = sciSR.open(sample_path(name))
    lats = ds[lat].values[: field.values.shape[0]]
    north = int(np.argmax(lats))
    np.testing.assert_array_equal(_on_top(im), field.values[north])
    y0, y1 = im.axes.get_ylim()
    assert y1 > y0  # latitude ticks increase upward
    _, _, bottom, top = im.get_extent()
    assert min(bottom, top) < lats.min() < lats.max() < max(bottom, top)
    assert "north up" in fig.get_suptitle()


def test_mri_is_grey_and_in_neurological_orientation(demo) -> None:
    import nibabel as nib

    fig = demo["figures"]["mni152_t1_slab.nii.gz"]
    assert "neurological" in fig.get_suptitle()
    im = _panels(fig)[0].images[0]
    assert im.get_cmap().name.startswith("gray")
    field = load_field(sample_path("mni152_t1_slab.nii.gz"), SCALE)
    np.testing.assert_array_equal(np.asarray(im.get_array()), field.view.orient(field.values))
    # world coordinates of every voxel of the drawn slice, from the affine (RAS+: x right, y anterior)
    aff = nib.load(sample_path("mni152_t1_slab.nii.gz")).affine
    h, w = field.values.shape
    ii, jj = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    xyz = nib.affines.apply_affine(aff, np.stack([ii, jj, np.zeros_like(ii)], -1))
    wx, wy = field.view.orient(xyz[..., 0]), field.view.orient(xyz[..., 1])
    assert np.all(np.diff(wx, axis=1) > 0)  # subject's right on the right of the screen
    assert np.all(_row_on_top(wy, im.origin, im.get_extent(), im.axes.get_ylim()) == wy.max())  # anterior up


def test_photo_is_drawn_in_colour(demo) -> None:
    fig = demo["figures"]["ladybird_crop.png"]
    top = _panels(fig)[: 1 + len(BASELINES) + len(learned_models(SCALE))]
    for ax in top:
        a = np.asarray(ax.images[0].get_array())
        assert a.ndim == 3 and a.shape[-1] == 3, ax.get_title()
    field = load_field(sample_path("ladybird_crop.png"), SCALE)
    assert field.rgb and field.values.shape[0] == 3
    a = np.asarray(top[0].images[0].get_array())
    np.testing.assert_allclose(a, np.moveaxis(field.values, 0, -1) / 255.0)
    assert top[0].images[0].origin == "upper"  # first image row at the top, as stored


def test_nifti_view_follows_a_flipped_affine(tmp_path) -> None:
    import nibabel as nib

    # i runs to the subject's left (x decreasing), j posterior (y decreasing): LPS storage
    aff = np.diag([-2.0, -1.0, 3.0, 1.0])
    aff[:3, 3] = [50.0, 60.0, -10.0]
    p = tmp_path / "lps.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((6, 5, 2), np.float32), aff), p)
    view, cmap = nifti_view(None, ("i", "j"), (6, 5), p)
    assert cmap == "gray" and view.transpose and view.flip_cols and view.origin == "upper"
    # x edges: centres 50 … 40 step −2; y edges: centres 60 … 56
    assert view.extent == (39.0, 51.0, 55.5, 60.5)
    xyz = nib.affines.apply_affine(
        aff, np.stack([*np.meshgrid(np.arange(6), np.arange(5), indexing="ij"), np.zeros((6, 5))], -1)
    )
    wx, wy = view.orient(xyz[..., 0]), view.orient(xyz[..., 1])
    assert np.all(np.diff(wx, axis=1) > 0)  # right on the right
    assert np.all(np.diff(wy, axis=0) < 0)  # origin "upper": row 0 (drawn at the top) is most anterior
