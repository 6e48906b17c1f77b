"""NIfTI adapter on the shipped MNI152 slab: the DESIGN §4 affine rule, headers, 4-D, masks."""

from __future__ import annotations

import itertools

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import xarray as xr

import sciSR
from sciSR.data import sample_path
from sciSR.io.nifti import pick_axes, refine_matrix

SLAB = "mni152_t1_slab.nii.gz"
FAST = {"device": "cpu", "precision": "fp32"}


@pytest.fixture
def slab():
    return sample_path(SLAB)


def bicubic_slices(vol: np.ndarray, s: int) -> np.ndarray:
    """Reference: bicubic over axes (0, 1) of every axial slice. Shape ``(I, J, K) -> (sI, sJ, K)``."""
    t = torch.from_numpy(np.moveaxis(vol, 2, 0)[:, None].astype(np.float32))
    return np.moveaxis(
        F.interpolate(t, scale_factor=s, mode="bicubic", align_corners=False)[:, 0].numpy(), 0, 2
    )


def world(a: np.ndarray, ijk) -> np.ndarray:
    return (a @ np.append(np.asarray(ijk, float), 1.0))[:3]


def save_variant(path, data, affine, *, sform_code=2, qform_code=2, dtype=None, slope=None, zooms=None):
    img = nib.Nifti1Image(data, affine)
    if dtype is not None:
        img.header.set_data_dtype(dtype)
    img.set_sform(affine, code=sform_code)
    img.set_qform(affine, code=qform_code)
    if zooms is not None:
        img.header.set_zooms(zooms)
    if slope is not None:
        img.header.set_slope_inter(*slope)
    nib.save(img, path)
    return path


def test_sample_header(slab):
    img = nib.load(slab)
    assert img.shape == (197, 233, 10) and img.get_data_dtype() == np.int16
    assert int(img.header["sform_code"]) == 2 and int(img.header["qform_code"]) == 2
    ds = sciSR.open(slab)
    assert ds.attrs["scisr_format"] == "nifti" and ds.image.dtype == np.float32
    np.testing.assert_array_equal(ds.image.values, np.asanyarray(img.dataobj))


def test_roundtrip_affine_rule_and_header(tmp_path, slab):
    out = tmp_path / "t1_x2.nii.gz"
    res = sciSR.downscale(slab, model="bicubic", scale=2, out=out)
    src, hr = nib.load(slab), nib.load(out)
    a, s = src.affine, 2
    assert hr.shape == (394, 466, 10)
    assert hr.get_data_dtype() == np.float32
    assert np.isnan(hr.header["scl_slope"]) or hr.header["scl_slope"] in (0, 1)
    assert hr.dataobj.slope == 1.0 and hr.dataobj.inter == 0.0
    a_new = a @ refine_matrix(2, (0, 1))
    np.testing.assert_array_equal(hr.header.get_sform(), a_new)
    np.testing.assert_allclose(hr.header.get_qform(), a_new, atol=1e-6)
    assert (int(hr.header["sform_code"]), int(hr.header["qform_code"])) == (2, 2)
    assert hr.header.get_zooms() == (0.5, 0.5, 1.0)
    assert hr.header["descrip"].item().startswith(b"sciSR x2 bicubic")
    # the centre of each old voxel is the mean of its s*s sub-voxel centres
    for ijk in [(0, 0, 0), (17, 101, 3), (196, 232, 9)]:
        subs = [
            world(a_new, (s * ijk[0] + p, s * ijk[1] + q, ijk[2]))
            for p, q in itertools.product(range(s), repeat=2)
        ]
        np.testing.assert_allclose(np.mean(subs, axis=0), world(a, ijk), atol=1e-12)
    # FOV corners unchanged
    n = np.array(src.shape)
    np.testing.assert_allclose(world(a_new, [-0.5] * 3), world(a, [-0.5] * 3))
    np.testing.assert_allclose(world(a_new, np.array(hr.shape) - 0.5), world(a, n - 0.5))
    # the two wrong formulas shift the image (this is what the rule protects against)
    assert not np.allclose(a @ np.diag([0.5, 0.5, 1, 1]), a_new)
    assert not np.allclose(nib.affines.rescale_affine(a, src.shape, (0.5, 0.5, 1), hr.shape), a_new)
    v = np.asanyarray(src.dataobj)
    # clip="auto" is on for NIfTI: bicubic clipped to the input's range (magnitude image)
    np.testing.assert_allclose(
        np.asanyarray(hr.dataobj), np.clip(bicubic_slices(v, 2), v.min(), v.max()), atol=1e-3
    )
    assert res.image.attrs["scisr_scale"] == 2


def test_axes_default_to_finest_and_can_be_chosen(tmp_path, slab):
    img = nib.load(slab)
    data = np.asanyarray(img.dataobj)[:40, :30]
    aff = np.diag([1.0, 3.0, 1.0, 1.0])
    aff[:3, 3] = [-20, 10, 5]
    p = save_variant(tmp_path / "aniso.nii", data, aff)
    assert pick_axes(None, (1.0, 3.0, 1.0), 3) == (0, 2)
    assert pick_axes(None, (1.0, 1.0, 1.0), 3) == (0, 1)
    assert pick_axes(None, (2.0, 1.0, 1.0), 4) == (1, 2)
    res = sciSR.downscale(p, model="bicubic", scale=2, out=tmp_path / "a2.nii")
    assert res.image.shape == (80, 30, 20)
    hr = nib.load(tmp_path / "a2.nii")
    assert hr.header.get_zooms() == (0.5, 3.0, 0.5)
    np.testing.assert_array_equal(hr.affine, aff @ refine_matrix(2, (0, 2)))
    res = sciSR.downscale(p, model="bicubic", scale=2, axes=(1, 2))
    assert res.image.shape == (40, 60, 20)
    with pytest.raises(ValueError, match="two different voxel axes"):
        sciSR.downscale(p, model="bicubic", scale=2, axes=(1, 1))


def test_4d_each_volume_its_own_statistics(tmp_path, slab):
    vol = np.asanyarray(nib.load(slab).dataobj)[60:120, 80:150].astype(np.float32)
    data = np.stack([vol, 2 * vol, vol], axis=-1)
    data[..., 2] = np.where(vol > 0, vol + 100, 0)
    aff = nib.load(slab).affine
    p = save_variant(tmp_path / "four.nii.gz", data, aff, zooms=(1.0, 1.0, 1.0, 2.5))
    torch.manual_seed(0)
    model = sciSR.create_model("espcn", scale=2, pretrained=False, channels=(8, 4))
    out = tmp_path / "four_x2.nii.gz"
    res = sciSR.downscale(p, model=model, scale=2, out=out, **FAST)
    hr = nib.load(out)
    assert hr.shape == (120, 140, 10, 3)
    assert hr.header.get_zooms() == (0.5, 0.5, 1.0, 2.5)
    params = __import__("json").loads(res.image.attrs["scisr_norm_params"])
    assert res.image.attrs["scisr_norm"] == "percentile" and len(params) == 3
    nz = vol[vol != 0]
    np.testing.assert_allclose([params[0]["lo"], params[0]["hi"]], np.percentile(nz, [1, 99]), rtol=1e-6)
    np.testing.assert_allclose(params[1]["hi"], 2 * params[0]["hi"], rtol=1e-6)
    y = np.asanyarray(hr.dataobj)
    np.testing.assert_allclose(y[..., 1], 2 * y[..., 0], rtol=1e-4, atol=1e-3)  # same normalized input


def test_codes_oblique_affine_and_packed_source(tmp_path, slab):
    vol = np.asanyarray(nib.load(slab).dataobj)[50:110, 60:140, :4]
    c, s_ = np.cos(0.3), np.sin(0.3)
    aff = np.array([[c, -s_, 0, -30], [s_, c, 0, -40], [0, 0, 2.0, 7], [0, 0, 0, 1]])
    raw = vol.astype(np.int16)
    p = save_variant(
        tmp_path / "obl.nii", raw, aff, sform_code=4, qform_code=1, dtype=np.int16, slope=(0.5, 10.0)
    )
    src = nib.load(p)
    phys = np.asanyarray(src.dataobj)
    np.testing.assert_allclose(phys, raw * 0.5 + 10)
    out = tmp_path / "obl_x2.nii"
    res = sciSR.downscale(p, model="bicubic", scale=2, out=out)
    hr = nib.load(out)
    assert (int(hr.header["sform_code"]), int(hr.header["qform_code"])) == (4, 1)
    np.testing.assert_allclose(hr.header.get_sform(), aff @ refine_matrix(2, (0, 1)), atol=1e-12)
    np.testing.assert_allclose(hr.header.get_qform(), aff @ refine_matrix(2, (0, 1)), atol=1e-5)
    assert hr.get_data_dtype() == np.float32 and hr.dataobj.slope == 1.0  # never int16 + slope for float
    np.testing.assert_allclose(
        np.asanyarray(hr.dataobj), np.clip(bicubic_slices(phys, 2), phys.min(), phys.max()), atol=1e-3
    )
    back = sciSR.downscale(p, model="bicubic", scale=2, dtype="source", out=tmp_path / "obl_src.nii")
    assert back.image.dtype == np.int16
    hr2 = nib.load(tmp_path / "obl_src.nii")
    assert hr2.get_data_dtype() == np.int16 and (hr2.dataobj.slope, hr2.dataobj.inter) == (0.5, 10.0)
    f = res.image.values
    np.testing.assert_array_equal(
        np.asanyarray(hr2.dataobj.get_unscaled()), np.clip(np.rint((f - 10) / 0.5), -32768, 32767)
    )


def test_background_mask(tmp_path, slab):
    plain = sciSR.downscale(slab, model="bicubic", scale=2).image.values
    masked = sciSR.downscale(slab, model="bicubic", scale=2, mask_background=True).image.values
    from scipy.ndimage import binary_erosion

    lr_fg = np.asanyarray(nib.load(slab).dataobj) != 0
    bg = np.repeat(np.repeat(~lr_fg, 2, 0), 2, 1)
    assert (masked[bg] == 0).all()
    assert (plain[bg] != 0).any()  # bicubic rings into the background unless masked
    assert np.isfinite(masked).all()
    core = binary_erosion(lr_fg, structure=np.ones((7, 7, 1), bool))  # ≥ 3 voxels from the background
    core = np.repeat(np.repeat(core, 2, 0), 2, 1)
    np.testing.assert_allclose(masked[core], plain[core], atol=1e-3)


def test_bad_inputs(tmp_path, slab):
    trunc = tmp_path / "trunc.nii.gz"
    trunc.write_bytes(slab.read_bytes()[: slab.stat().st_size // 2])
    with pytest.raises(ValueError) as e:
        sciSR.downscale(trunc, model="bicubic", scale=2, out=tmp_path / "o.nii.gz")
    assert "\n" not in str(e.value) and str(trunc) in str(e.value)
    local = tmp_path / "t1.nii.gz"
    local.write_bytes(slab.read_bytes())
    with pytest.raises(ValueError, match="input"):
        sciSR.downscale(local, model="bicubic", scale=2, out=local)
    assert local.read_bytes() == slab.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t1.nii.gz", "trunc.nii.gz"]


def test_clip_defaults_on_for_mri_and_keeps_the_zero_background(tmp_path, slab):
    v = np.asanyarray(nib.load(slab).dataobj)
    auto = sciSR.downscale(slab, model="bicubic", scale=2).image.values
    free = sciSR.downscale(slab, model="bicubic", scale=2, clip=False).image.values
    assert free.min() < 0 and free.max() > v.max()  # bicubic rings past both ends
    # the range is that of every voxel (0 background included), not of the head the
    # percentile statistics were fitted on
    assert auto.min() == v.min() == 0 and auto.max() == v.max()
    np.testing.assert_array_equal(auto, np.clip(free, v.min(), v.max()))
    # other formats keep values as computed unless asked
    a = xr.DataArray(v[..., 0].astype(np.float32), dims=("y", "x"))
    assert float(sciSR.downscale(a, model="bicubic", scale=2).min()) < 0
