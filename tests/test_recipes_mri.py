"""The MRI recipes (``recipes/mri``): in-plane ×2 and SMORE-style through-plane SR of T1 volumes.

Unit checks of the through-plane building blocks (the thick-slice operator, the self-supervised
pairs, the orientation handling of inference, the one-axis affine) against independent numpy
formulas, and smoke runs of both recipes on a cut of the shipped MNI152 slab (``recipes/mri/smoke.toml``)
checking the written NIfTI files' shapes, affines and zooms and the scores' tables.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "recipes" / "mri" / "smoke.toml"


def load(name: str) -> types.ModuleType:
    path = ROOT / "recipes" / "mri" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"recipe_mri_{name}", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tp() -> types.ModuleType:
    return load("throughplane")


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCISR_NO_PROGRESS", "1")


def _moving_mean(x: np.ndarray, axis: int, start: int, scale: int, width: int) -> np.ndarray:
    """Mean of ``width`` consecutive voxels from ``start`` in every block of ``scale`` along ``axis``."""
    idx = [np.take(x, np.arange(start + o, x.shape[axis], scale), axis=axis) for o in range(width)]
    return np.mean(idx, axis=0)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_thick_slices_reduce_only_the_slice_axis(tp: types.ModuleType, axis: int) -> None:
    rng = np.random.default_rng(0)
    hr = rng.normal(size=(8, 12, 16)).astype(np.float32)
    # contiguous slices of 2: the block mean along `axis`
    lr = tp.thick_slices(hr, axis, 2, 2.0)
    np.testing.assert_allclose(lr, _moving_mean(hr, axis, 0, 2, 2), atol=1e-5)
    # spacing 4, thickness 2 (gap 2): centred at 4i + 1.5, so HR voxels 4i+1 and 4i+2
    lr4 = tp.thick_slices(hr, axis, 4, 2.0)
    np.testing.assert_allclose(lr4, _moving_mean(hr, axis, 1, 4, 2), atol=1e-5)
    expect = list(hr.shape)
    expect[axis] //= 4
    assert list(lr4.shape) == expect


@pytest.mark.parametrize("axis", [0, 2])
def test_pairs_are_in_plane_slices_degraded_along_rows(tp: types.ModuleType, axis: int) -> None:
    rng = np.random.default_rng(1)
    vol = rng.normal(size=(10, 14, 6)).astype(np.float32)
    inputs, targets = tp.make_pairs(vol, axis, 2, 2.0)
    planes = np.moveaxis(vol, axis, 0)
    n = planes.shape[0]
    assert len(inputs) == len(targets) == 2 * n
    # targets: the slices perpendicular to `axis`, then their transposes
    for i in range(n):
        np.testing.assert_array_equal(targets[i], planes[i])
        np.testing.assert_array_equal(targets[n + i], planes[i].T)
    # inputs: the pair's target averaged over row pairs, then interpolated back along the rows only
    for x, y in zip(inputs, targets):
        assert x.shape == y.shape
        rows = 0.5 * (y[0::2] + y[1::2])
        np.testing.assert_allclose(x, tp.upsample_rows(rows[None], 2)[0], atol=1e-5)
        cols = 0.5 * (y[:, 0::2] + y[:, 1::2])
        assert not np.allclose(x[:, : 2 * cols.shape[1]], np.repeat(cols, 2, axis=1), atol=1e-3)


def test_pairs_leave_the_column_direction_untouched(tp: types.ModuleType) -> None:
    # a volume varying only along j: the in-plane (i, j) slices degraded along i (rows) stay exact,
    # the transposed ones (rows = j) lose detail
    j = np.arange(16, dtype=np.float32)
    vol = np.broadcast_to(np.sin(1.3 * j)[None, :, None], (12, 16, 3)).copy()
    inputs, targets = tp.make_pairs(vol, 2, 2, 2.0)
    for x, y in zip(inputs[:3], targets[:3]):
        np.testing.assert_allclose(x, y, atol=1e-5)
    for x, y in zip(inputs[3:], targets[3:]):
        assert np.abs(x - y).max() > 0.1


class _RowSmoother(torch.nn.Module):
    """A fixed [1, 2, 1]/4 filter along the rows (zero padding): not symmetric in rows and columns."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, (3, 1), padding=(1, 0), bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, 2.0, 1.0]).reshape(1, 1, 3, 1) / 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_inference_runs_the_network_along_the_slice_axis(tp: types.ModuleType, axis: int) -> None:
    from scipy import ndimage

    rng = np.random.default_rng(2)
    lr = rng.normal(size=(6, 7, 5)).astype(np.float32)
    out = tp.apply_throughplane(_RowSmoother(), lr, axis, 2, batch=3)
    up = tp.interpolate_axis(lr, axis, 2, "cubic")
    expect = ndimage.convolve1d(up, np.array([1.0, 2.0, 1.0]) / 4, axis=axis, mode="constant")
    shape = list(lr.shape)
    shape[axis] *= 2
    for key in ("planes_q", "planes_p", "mean"):
        assert list(out[key].shape) == shape
        np.testing.assert_allclose(out[key], expect, atol=1e-5)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_interpolation_baseline_changes_one_axis(tp: types.ModuleType, axis: int) -> None:
    rng = np.random.default_rng(3)
    lr = rng.normal(size=(4, 5, 6)).astype(np.float32)
    near = tp.interpolate_axis(lr, axis, 3, "nearest")
    np.testing.assert_array_equal(near, np.repeat(lr, 3, axis=axis))
    lin = tp.interpolate_axis(lr, axis, 2, "linear")
    # cell-centred linear ×2: interior HR sample 2i+1 sits 1/4 of the way from LR i to i+1
    a = np.take(lr, np.arange(0, lr.shape[axis] - 1), axis=axis)
    b = np.take(lr, np.arange(1, lr.shape[axis]), axis=axis)
    got = np.take(lin, np.arange(1, 2 * lr.shape[axis] - 1, 2), axis=axis)
    np.testing.assert_allclose(got, 0.75 * a + 0.25 * b, atol=1e-5)


def test_one_axis_affine_matches_the_nifti_rule(tp: types.ModuleType) -> None:
    from sciSR.io.nifti import refine_matrix

    common = sys.modules["mri_common"]
    rot = np.array([[0.0, -1.0, 0.0], [0.9, 0.0, 0.3], [-0.3, 0.0, 0.9]])
    A = np.eye(4)
    A[:3, :3] = rot @ np.diag([1.0, 1.2, 0.8])
    A[:3, 3] = [-90.0, 12.0, 40.0]
    for s, ax in ((2, 2), (4, 0), (3, 1)):
        new = common.refine_affine(A, s, (ax,))
        np.testing.assert_allclose(new, A @ refine_matrix(s, [ax]))
        np.testing.assert_allclose(common.refine_affine(A @ common.coarsen_matrix(s, (ax,)), s, (ax,)), A)
        # the centre of LR voxel 0 is the mean of the centres of its s refined voxels
        idx = np.zeros((s, 4))
        idx[:, 3] = 1
        idx[:, ax] = np.arange(s)
        np.testing.assert_allclose((new @ idx.T).mean(axis=1), A[:, 3])


def _config(tmp_path: Path, **replace: str) -> Path:
    text = SMOKE.read_text()
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "smoke.toml"
    path.write_text(text)
    return path


@pytest.mark.slow
def test_throughplane_recipe_smoke(tp: types.ModuleType, tmp_path: Path) -> None:
    import nibabel as nib

    import sciSR

    out = tmp_path / "tp"
    s = tp.main(["--config", str(SMOKE), "--out", str(out)])
    src = nib.load(str(sciSR.data.sample_path("mni152_t1_slab.nii.gz"))).slicer[50:146, 60:180, :]
    lr = nib.load(str(out / "lr.nii.gz"))
    sr = nib.load(str(out / "smore_x2.nii.gz"))
    assert lr.shape == (96, 120, 5) and sr.shape == (96, 120, 10)
    np.testing.assert_allclose(lr.header.get_zooms(), (1.0, 1.0, 2.0))
    np.testing.assert_allclose(sr.header.get_zooms(), (1.0, 1.0, 1.0))
    np.testing.assert_allclose(sr.affine, src.affine)  # refined one-axis affine = the HR grid
    np.testing.assert_allclose(sr.get_qform(), src.affine)
    assert sr.get_data_dtype() == np.float32
    umask = os.umask(0)
    os.umask(umask)
    assert (out / "smore_x2.nii.gz").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (out / "smore_vdsr.safetensors").is_file() and (out / "metrics.csv").is_file()
    m = s["metrics"]
    assert {"nearest", "linear", "cubic", "smore (mean of both)"} <= set(m)
    assert m["cubic"]["psnr"] > m["nearest"]["psnr"]
    assert 0 < s["mask_voxels"] < 96 * 120 * 10
    # the thick-slice volume itself as input (a real acquisition): the output lands on the HR grid again
    cfg = _config(
        tmp_path,
        **{
            'volume = "sample:mni152_t1_slab.nii.gz"': f'volume = "{out / "lr.nii.gz"}"',
            "crop = { i = [50, 146], j = [60, 180] }": "",
            "simulate = true": "simulate = false",
        },
    )
    s2 = tp.main(["--config", str(cfg), "--out", str(tmp_path / "real")])
    sr2 = nib.load(str(tmp_path / "real" / "smore_x2.nii.gz"))
    assert sr2.shape == (96, 120, 10) and "metrics" not in s2
    np.testing.assert_allclose(sr2.affine, src.affine)


@pytest.mark.slow
def test_inplane_recipe_smoke(tmp_path: Path) -> None:
    import nibabel as nib
    import pandas as pd

    import sciSR

    ip = load("inplane")
    out = tmp_path / "ip"
    s = ip.main(["--config", str(SMOKE), "--out", str(out)])
    hr = nib.load(str(sciSR.data.sample_path("mni152_t1_slab.nii.gz"))).slicer[50:146, 60:180, 5:7]
    lr = nib.load(str(out / "lr_kspace.nii.gz"))
    sr = nib.load(str(out / "t1_x2_finetuned.nii.gz"))
    assert lr.shape == (48, 60, 2) and sr.shape == (96, 120, 2)
    np.testing.assert_allclose(lr.header.get_zooms(), (2.0, 2.0, 1.0))
    np.testing.assert_allclose(sr.header.get_zooms(), (1.0, 1.0, 1.0))
    np.testing.assert_allclose(sr.affine, hr.affine)
    assert s["output_affine_equals_hr"] and s["output_shape_equals_hr"]
    t = pd.read_csv(out / "report" / "metrics.csv", index_col=[0, 1]).xs("image", level="variable")
    assert {"nearest", "bilinear", "bicubic", "block", "espcn", "espcn[finetuned]"} <= set(t.index)
    assert t.loc["bicubic", "psnr"] > t.loc["nearest", "psnr"]
    assert s["metrics"]["espcn[finetuned]"]["psnr"] == pytest.approx(t.loc["espcn[finetuned]", "psnr"])
    assert (out / "espcn_x2_mri_finetuned.safetensors").is_file()
    assert 0 < s["mask_voxels"] < 96 * 120 * 2


def test_brain_mask_file_is_cut_like_the_volume(tp: types.ModuleType, tmp_path: Path) -> None:
    import nibabel as nib

    common = sys.modules["mri_common"]
    full = np.zeros((9, 10, 11), dtype=np.uint8)
    full[2:7, 3:8, 4:9] = 1
    nib.save(nib.Nifti1Image(full, np.eye(4)), str(tmp_path / "mask.nii.gz"))
    crop = {"k": [1, 11]}
    vol = np.ones((9, 10, 10), dtype=np.float32)[:, :, :8]  # then cut to a multiple of 4 along k
    got = common.brain_mask(vol, "mask.nii.gz", tmp_path, crop=crop)
    np.testing.assert_array_equal(got, full[:, :, 1:9] > 0)
    with pytest.raises(SystemExit, match="shape"):
        common.brain_mask(np.ones((12, 10, 8), dtype=np.float32), "mask.nii.gz", tmp_path, crop=crop)
    auto = common.brain_mask(np.pad(np.full((3, 3, 3), 100.0), 2), "auto", tmp_path)
    assert auto.sum() == 27 and auto[3, 3, 3] and not auto[0, 0, 0]


def test_throughplane_refuses_inconsistent_thickness_and_gap(tp: types.ModuleType, tmp_path: Path) -> None:
    cfg = _config(tmp_path, **{"thickness = 2.0": "thickness = 2.0\ngap = 1.0"})
    with pytest.raises(SystemExit, match="slice spacing"):
        tp.main(["--config", str(cfg), "--out", str(tmp_path / "bad")])
    assert not (tmp_path / "bad" / "smore_x2.nii.gz").exists()
