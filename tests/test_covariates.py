"""Static HR covariates (sciSR.covariates): space-to-depth, channel concat, eager == dask-chunked,
grid checks, weights/covariate agreement, training with a covariate and its metadata round trip."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
import xarray as xr

import sciSR
from sciSR import covariates as cov
from sciSR.data import sample_path
from sciSR.pipeline import Pipeline

S = 2


@pytest.fixture(scope="module")
def tas() -> xr.Dataset:
    """A 32×40 window of the CMIP5 sample with its cell bounds (the Gaussian latitudes need them)."""
    with xr.open_dataset(sample_path("cmip5_tas_mpi-esm-lr_2005.nc")) as ds:
        return ds[["tas", "lat_bnds", "lon_bnds"]].isel(lat=slice(20, 52), lon=slice(0, 40)).load()


def _hr_cov(da: xr.Dataset, s: int = S) -> xr.DataArray:
    """A smooth covariate on the refined grid of ``da`` (a function of the HR coordinates)."""
    c = cov.hr_coords(da, s)
    lat, lon = np.meshgrid(c["lat"], c["lon"], indexing="ij")
    return xr.DataArray(np.cos(np.deg2rad(lat)) * np.sin(np.deg2rad(3 * lon)), dims=("lat", "lon"), coords=c)


def _net(in_ch: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sciSR.create_model("espcn", scale=S, in_channels=in_ch, out_channels=1, pretrained=False)


def test_unshuffle_matches_torch_and_layout() -> None:
    rng = np.random.default_rng(0)
    f = rng.normal(size=(12, 8))
    u = cov.unshuffle(f, 4)
    assert u.shape == (16, 3, 2)
    ref = torch.nn.functional.pixel_unshuffle(torch.from_numpy(f)[None, None], 4)[0].numpy()
    np.testing.assert_array_equal(u, ref)
    # channel i·s + j holds sub-cell (i, j) of each LR cell
    np.testing.assert_array_equal(u[1 * 4 + 3], f[1::4, 3::4])
    with pytest.raises(ValueError, match="multiples"):
        cov.unshuffle(f[:10], 4)


def test_stack_concat_shapes_and_normalization() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(5, 2, size=(10, 14)), rng.random((10, 14))
    given = cov.as_input({"orog": a, "lsm": b})
    st = cov.stack_for_shape(given, S, (5, 7))
    assert st.lr.shape == (2 * S * S, 5, 7)
    np.testing.assert_allclose(st.lr[:4].mean(), 0, atol=1e-6)  # z-scored on the whole field
    np.testing.assert_allclose(st.lr[0], (a[0::2, 0::2] - a.mean()) / a.std(), rtol=1e-5)
    z = np.zeros((3, 1, 5, 7), np.float32)
    out = st.append_to(z, (0, 5), [(0, 7)])
    assert out.shape == (3, 1 + 8, 5, 7)
    np.testing.assert_array_equal(out[2, 1:], st.lr)
    part = st.append_to(z[..., 1:3, :4], (1, 3), [(5, 7), (0, 2)])  # wrapped columns
    np.testing.assert_array_equal(part[0, 1:], np.concatenate([st.lr[:, 1:3, 5:7], st.lr[:, 1:3, 0:2]], -1))


def test_numpy_path_tiled_equals_whole_and_uses_covariate() -> None:
    rng = np.random.default_rng(2)
    x = rng.random((18, 22)).astype(np.float32)
    orog = rng.random((36, 44))
    m = _net(1 + S * S)
    whole = sciSR.downscale(x, model=m, scale=S, covariates={"orog": orog}, tile=0)
    tiled = sciSR.downscale(x, model=m, scale=S, covariates={"orog": orog}, tile=7)
    assert whole.shape == (36, 44)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    other = sciSR.downscale(x, model=m, scale=S, covariates={"orog": orog[::-1].copy()}, tile=0)
    assert np.abs(other - whole).max() > 1e-4  # the covariate reaches the network


def test_xarray_eager_equals_dask_chunked(tas: xr.Dataset) -> None:
    m = _net(1 + S * S)
    c = _hr_cov(tas)
    eager = sciSR.downscale(tas, model=m, scale=S, covariates={"orog": c})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lazy = sciSR.downscale(
            tas.chunk({"time": 1, "lat": 16, "lon": 20}), model=m, scale=S, covariates={"orog": c}, tile=9
        )
    assert lazy.tas.chunks is not None and len(lazy.tas.chunks[1]) == 2 and len(lazy.tas.chunks[2]) == 2
    got = lazy.compute()
    assert got.tas.shape == (3, 64, 80)
    np.testing.assert_allclose(got.tas.values, eager.tas.values, atol=1e-4)
    np.testing.assert_array_equal(got.lat.values, c.lat.values)


def test_covariate_grid_mismatch_errors(tas: xr.Dataset) -> None:
    m = _net(1 + S * S)
    c = _hr_cov(tas)
    with pytest.raises(ValueError, match=r"'lat' coordinates .*differ from the HR grid"):
        sciSR.downscale(tas, model=m, scale=S, covariates={"orog": c.assign_coords(lat=c.lat + 0.5)})
    with pytest.raises(ValueError, match=r"is 62×80 but the HR grid of the 32×40 input at scale 2 is 64×80"):
        sciSR.downscale(tas, model=m, scale=S, covariates={"orog": c.isel(lat=slice(0, 62))})
    with pytest.raises(ValueError, match="has shape \\(64, 78\\) but the HR grid"):
        sciSR.downscale(tas.tas.values[0], model=m, scale=S, covariates={"orog": c.values[:, :78]})
    with pytest.raises(ValueError, match="NaN/inf"):
        sciSR.downscale(tas, model=m, scale=S, covariates={"orog": c.where(c.lat > 0)})
    with pytest.raises(ValueError, match="one static 2-D field"):
        sciSR.downscale(tas, model=m, scale=S, covariates={"orog": c.expand_dims(t=2)})


def test_module_channel_mismatch_error() -> None:
    m = _net(1)  # no room for covariate channels
    x = np.random.default_rng(3).random((8, 8)).astype(np.float32)
    with pytest.raises(ValueError, match=r"takes 1 input channels.*in_channels=C\+4"):
        sciSR.downscale(x, model=m, scale=S, covariates={"orog": np.ones((16, 16)) * np.arange(16)})


@pytest.fixture(scope="module")
def trained(tas: xr.Dataset, tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, str]:
    out = str(tmp_path_factory.mktemp("cov") / "w.safetensors")
    grid = tas.lat.values[:, None] + 0.0 * tas.lon.values[None, :]
    tas = tas.tas
    orog = xr.DataArray(np.cos(np.deg2rad(grid)), dims=("lat", "lon"))  # on the training (HR) grid
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = sciSR.train(
            "espcn",
            tas,
            scale=S,
            steps=3,
            batch_size=2,
            patch=8,
            covariates={"orog": orog},
            degradation="area",
            log_every=3,
            device="cpu",
            progress=False,
            out=out,
        )
    return net, out


def test_training_steps_with_covariate(trained: tuple[torch.nn.Module, str]) -> None:
    net, _ = trained
    assert net.in_channels == 1 + S * S and net.spec.out_channels == 1
    hist = net.training_record["history"]
    assert hist and np.isfinite(hist[-1]["loss"]) and "psnr" in hist[-1]


def test_split_batch_never_degrades_covariates() -> None:
    hr = torch.randn(2, 2, 8, 8)
    lr = torch.randn(2, 2, 4, 4)
    x, y = cov.split_batch(lr, hr, 1, 2)
    assert x.shape == (2, 1 + 4, 4, 4) and y.shape == (2, 1, 8, 8)
    torch.testing.assert_close(x[:, 1:], torch.nn.functional.pixel_unshuffle(hr[:, 1:], 2))
    torch.testing.assert_close(x[:, :1], lr[:, :1])


def test_metadata_round_trip_and_mismatch_errors(
    tas: xr.Dataset, trained: tuple[torch.nn.Module, str]
) -> None:
    net, path = trained
    from sciSR.models import catalog

    recs = cov.records_of(catalog.read_metadata(path))
    assert [r["name"] for r in recs] == ["orog"] and recs[0]["norm"] == "zscore"
    assert set(recs[0]["params"]) == {"mean", "std"}
    lr = tas  # any input: the covariate lies on its refined grid
    c = _hr_cov(lr)
    from_file = sciSR.downscale(lr, model="espcn", weights=path, scale=S, covariates={"orog": c})
    from_net = sciSR.downscale(lr, model=net, scale=S, covariates={"orog": c})
    np.testing.assert_allclose(from_file.tas.values, from_net.tas.values, atol=1e-5)
    # the recorded normalization is applied, not one fitted on the new field
    pipe = Pipeline.build("espcn", S, weights=path, covariates={"orog": c.values})
    st = cov.stack_for_shape(pipe.covariates, S, lr.tas.shape[-2:])
    p = recs[0]["params"]
    np.testing.assert_allclose(st.lr[0], (c.values[0::2, 0::2] - p["mean"]) / p["std"], rtol=1e-5)
    with pytest.raises(ValueError, match=r"trained with covariates \['orog'\]; pass covariates="):
        sciSR.downscale(lr, model="espcn", weights=path, scale=S)
    with pytest.raises(ValueError, match=r"do not match .* \['orog'\]"):
        sciSR.downscale(lr, model=net, scale=S, covariates={"lsm": c})
    with pytest.raises(ValueError, match="trained without covariates; drop covariates="):
        sciSR.downscale(lr, model="rcan", weights="temperature", scale=4, covariates={"orog": c})
    assert json.loads(net.scisr_metadata["scisr_covariates"])[0]["name"] == "orog"
