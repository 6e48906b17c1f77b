"""Ensembles: ``downscale(..., ensemble=)`` members, the augmentation rule, CF output, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

import sciSR
from sciSR import ensemble as E
from sciSR.data import sample_path

CMIP = "cmip5_tas_mpi-esm-lr_2005.nc"
WEIGHTS = sciSR.__path__[0] + "/models/weights/"


@pytest.fixture(scope="module")
def field() -> np.ndarray:
    """A real 32×40 LR field (CMIP5 tas) as a bare array."""
    with xr.open_dataset(sample_path(CMIP)) as ds:
        return ds.tas.isel(time=0).values[30:62, 60:100].astype(np.float32)


def _projected(values: np.ndarray, dy: float = 1000.0, dx: float = 1000.0) -> xr.Dataset:
    ny, nx = values.shape
    return xr.Dataset(
        {"z": (("y", "x"), values, {"units": "m"})},
        coords={
            "y": ("y", 5.0e5 - dy * np.arange(ny), {"standard_name": "projection_y_coordinate"}),
            "x": ("x", 1.0e5 + dx * np.arange(nx), {"standard_name": "projection_x_coordinate"}),
        },
    )


def test_equivariant_model_gives_identical_members(field):
    ens = sciSR.downscale(field, model="bicubic", scale=4, ensemble=8)
    det = sciSR.downscale(field, model="bicubic", scale=4)
    assert ens.shape == (8, 128, 160)
    np.testing.assert_array_equal(ens[0], det)
    # bicubic is symmetric under the whole square group: every transformed member comes back equal
    np.testing.assert_allclose(ens, np.broadcast_to(det, ens.shape), rtol=0, atol=1e-4)
    mean, spread = E.mean_and_spread(ens)
    assert mean.shape == det.shape and float(spread.max()) < 1e-4


def test_members_are_inverse_transformed_outputs(field):
    ens = sciSR.downscale(field, model="espcn", scale=4, ensemble=8)
    names = list(E.AUGMENTATIONS)
    for i, name in enumerate(names):
        aug = E.AUGMENTATIONS[name]
        lr = np.ascontiguousarray(aug.forward(field))
        expect = aug.inverse(sciSR.downscale(lr, model="espcn", scale=4))
        np.testing.assert_allclose(ens[i], expect, rtol=0, atol=1e-4, err_msg=name)
    # espcn is not rotation-equivariant: the ensemble has spread
    assert float(E.mean_and_spread(ens)[1].mean()) > 1e-3


def test_torch_input_stacks_tensors(field):
    t = torch.from_numpy(field)
    ens = sciSR.downscale(t, model="bicubic", scale=2, ensemble=3)
    assert isinstance(ens, torch.Tensor) and tuple(ens.shape) == (3, 64, 80)
    arr = sciSR.downscale(field, model="bicubic", scale=2, ensemble=3)
    np.testing.assert_allclose(ens.numpy(), arr, atol=1e-6)


def test_xarray_realization_dim_is_cf_annotated():
    with xr.open_dataset(sample_path(CMIP)) as src:
        ds = src.isel(time=slice(0, 2), lat=slice(20, 52), lon=slice(0, 40)).load()
    ens = sciSR.downscale(ds, model="bicubic", scale=2, ensemble=4)
    det = sciSR.downscale(ds, model="bicubic", scale=2)
    assert ens.tas.dims == ("realization", *det.tas.dims)
    r = ens.realization
    assert r.attrs["standard_name"] == "realization" and r.attrs["units"] == "1"
    assert r.values.tolist() == [0, 1, 2, 3]
    assert r.attrs["scisr_members"] == "0: identity; 1: flip_x; 2: flip_y; 3: rot180"
    assert ens.attrs["scisr_ensemble"] == "tta" and ens.tas.attrs["scisr_ensemble"] == "tta"
    for c in ("lat", "lon", "time"):
        np.testing.assert_array_equal(ens[c].values, det[c].values)
    assert ens.tas.attrs["units"] == det.tas.attrs["units"]
    assert "lat_bnds" in ens and "realization" not in ens.lat_bnds.dims
    np.testing.assert_array_equal(ens.tas.isel(realization=0).values, det.tas.values)
    np.testing.assert_allclose(ens.tas.values, np.broadcast_to(det.tas.values, ens.tas.shape), atol=1e-3)
    mean, spread = E.mean_and_spread(ens)
    assert "realization" not in mean.tas.dims
    assert mean.tas.attrs["cell_methods"].endswith("realization: mean")
    assert spread.tas.attrs["cell_methods"].endswith("realization: standard_deviation")


def test_lat_lon_grid_refuses_rotations_of_non_square_cells():
    with xr.open_dataset(sample_path(CMIP)) as src:
        ds = src.isel(time=0, lat=slice(60, 84), lon=slice(0, 24)).load()  # 1.875° cells near 40-85° N
    assert E.valid_augmentations(E.grid_facts(ds, "lat", "lon")) == ["identity", "flip_x", "flip_y", "rot180"]
    with pytest.raises(ValueError, match=r"'rot90' needs square cells.*latitude/longitude.*augment="):
        sciSR.downscale(ds, model="bicubic", scale=2, augment=("flip_x", "rot90"))
    with pytest.raises(ValueError, match=r"ensemble=8.*only 4 augmentation"):
        sciSR.downscale(ds, model="bicubic", scale=2, ensemble=8)


def test_irregular_axis_refuses_its_flip(field):
    ds = _projected(field)
    ds = ds.assign_coords(x=("x", 1.0e5 + 1000.0 * np.arange(40) ** 1.2, ds.x.attrs))
    assert E.valid_augmentations(E.grid_facts(ds, "y", "x")) == ["identity", "flip_y"]
    with pytest.raises(ValueError, match="'flip_x' needs uniform spacing along x"):
        E.valid_augmentations(E.grid_facts(ds, "y", "x"), ("flip_x",))


def test_projected_square_grid_rotations_match_array_members(field):
    ds = _projected(field)
    assert len(E.valid_augmentations(E.grid_facts(ds, "y", "x"))) == 8
    ens = sciSR.downscale(ds, model="espcn", scale=4, ensemble=8)
    arr = sciSR.downscale(field, model="espcn", scale=4, ensemble=8)
    det = sciSR.downscale(ds, model="espcn", scale=4)
    np.testing.assert_allclose(ens.z.values, arr, rtol=0, atol=1e-3)
    np.testing.assert_array_equal(ens.x.values, det.x.values)
    np.testing.assert_array_equal(ens.y.values, det.y.values)
    rect = _projected(field, dy=1000.0, dx=2000.0)  # 1 km × 2 km cells: no rotation
    assert "rot90" not in E.valid_augmentations(E.grid_facts(rect, "y", "x"))


def test_path_input_writes_realization(tmp_path):
    out = tmp_path / "ens.nc"
    res = sciSR.downscale(sample_path(CMIP), model="bicubic", scale=2, ensemble=2, out=out)
    assert res.tas.sizes["realization"] == 2
    with xr.open_dataset(out) as back:
        assert back.realization.attrs["standard_name"] == "realization"
        assert back.attrs["scisr_ensemble_members"] == "identity, flip_x"


class _DropNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = 2
        self.body = nn.Conv2d(1, 4, 3, padding=1)
        self.drop = nn.Dropout(0.5)
        self.up = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.drop(self.body(x)))


def test_mc_dropout_members_differ_and_repeat(field):
    torch.manual_seed(0)
    net = _DropNet()
    a = sciSR.downscale(field, model=net, scale=2, ensemble=3, ensemble_method="mc_dropout", norm=None)
    b = sciSR.downscale(field, model=net, scale=2, ensemble=3, ensemble_method="mc_dropout", norm=None)
    det = sciSR.downscale(field, model=net, scale=2, norm=None)
    np.testing.assert_array_equal(a, b)  # seeded per member
    assert not np.allclose(a[0], a[1])
    assert not np.allclose(a[0], det)  # dropout was on; the deterministic call has it off
    assert type(net) is _DropNet and net.training  # the caller's module is untouched


def test_mc_dropout_refuses_model_without_dropout(field):
    with pytest.raises(ValueError, match=r"'espcn' has no dropout layers.*ensemble=N.*weight files"):
        sciSR.downscale(field, model="espcn", scale=4, ensemble=4, ensemble_method="mc_dropout")


def test_weights_ensemble_of_two_shipped_files(field):
    files = [WEIGHTS + "fsrcnn_x2_c1.safetensors", WEIGHTS + "espcn_x2_c1.safetensors"]
    x = field[:16, :16]
    ens = sciSR.downscale(x, model="auto", scale=2, ensemble=files)
    assert ens.shape == (2, 32, 32)
    for i, f in enumerate(files):
        np.testing.assert_array_equal(ens[i], sciSR.downscale(x, model="auto", scale=2, weights=f))
    assert not np.allclose(ens[0], ens[1])
    ds = _projected(x)
    res = sciSR.downscale(ds, model="auto", scale=2, ensemble=files)
    assert res.attrs["scisr_ensemble"] == "weights"
    assert res.realization.attrs["scisr_members"] == "0: fsrcnn_x2_c1.safetensors; 1: espcn_x2_c1.safetensors"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(ensemble=8, augment=()), r"ensemble=8 .*only 1 augmentation.*mc_dropout"),
        (dict(ensemble=4, augment=("spin",)), "unknown augmentation 'spin'"),
        (dict(ensemble=1), r"ensemble=1 .*pass ensemble=<2\.\.8>"),
        (dict(ensemble=True), "number of members"),
        (dict(ensemble=2, ensemble_method="bootstrap"), "unknown ensemble_method 'bootstrap'"),
        (dict(ensemble=["a.safetensors", "b.safetensors"], weights="precip"), "not also in weights="),
        (dict(ensemble=2, out="x.nc"), "out= is for xarray"),
        (dict(ensemble=["precip"]), "at least 2 weight files"),
    ],
)
def test_bad_ensemble_options(field, kwargs, match):
    with pytest.raises(ValueError, match=match):
        sciSR.downscale(field, model="bicubic", scale=2, **kwargs)


def test_mean_and_spread_needs_members():
    with pytest.raises(ValueError, match="at least 2 members"):
        E.mean_and_spread(np.zeros((1, 4, 4)))
    with pytest.raises(ValueError, match="no 'realization' dimension"):
        E.mean_and_spread(xr.DataArray(np.zeros((2, 2)), dims=("y", "x")))
    m, s = E.mean_and_spread(np.stack([np.zeros((2, 2)), 2 * np.ones((2, 2))]))
    np.testing.assert_allclose(m, 1.0)
    np.testing.assert_allclose(s, np.sqrt(2.0))
