"""Bad inputs: each raises one clear error and never leaves a (partial) output file behind."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import xarray as xr

import sciSR
from sciSR.io import atomic_path, list_adapters
from sciSR.io.netcdf import NetCDFAdapter


def _listing(d):
    return sorted(p.name for p in d.iterdir())


@pytest.fixture
def work(tmp_path, tas_path):
    src = tmp_path / "in.nc"
    shutil.copy(tas_path, src)
    return tmp_path, src


def test_missing_file(work):
    d, _ = work
    with pytest.raises(FileNotFoundError, match=r"no such file.*nope.nc"):
        sciSR.downscale(d / "nope.nc", model="bicubic", scale=2, out=d / "o.nc")
    with pytest.raises(FileNotFoundError):
        sciSR.open(d / "nope.nc")
    assert _listing(d) == ["in.nc"]


def test_unknown_extension_lists_supported(work):
    d, src = work
    weird = d / "in.xyz"
    weird.write_bytes(b"not a format sciSR knows\n")  # (a NetCDF named .xyz is read by its content)
    with pytest.raises(ValueError, match=r"unknown extension '.xyz'; supported: .*\.nc.*\.zarr"):
        sciSR.open(weird)
    with pytest.raises(ValueError, match=r"unknown extension"):
        sciSR.downscale(src, model="bicubic", scale=2, out=d / "o.xyz")
    assert _listing(d) == ["in.nc", "in.xyz"]


def test_no_spatial_dims(work):
    d, _ = work
    ds = xr.Dataset({"v": (("a", "b"), np.zeros((3, 4)))})
    ds.to_netcdf(d / "nodims.nc")
    with pytest.raises(
        ValueError, match=r"no spatial dims found in 'v' \(dims \('a', 'b'\)\).*spatial_dims="
    ):
        sciSR.downscale(d / "nodims.nc", model="bicubic", scale=2, out=d / "o.nc")
    assert "o.nc" not in _listing(d)


def test_irregular_spacing(work):
    d, _ = work
    ds = xr.Dataset(
        {"v": (("lat", "lon"), np.zeros((4, 3)))},
        coords={"lat": [0.0, 1.0, 3.0, 4.0], "lon": [0.0, 1.0, 2.0]},
    )
    ds.to_netcdf(d / "irr.nc")
    with pytest.raises(ValueError, match=r"'lat' is irregularly spaced .*bounds"):
        sciSR.downscale(d / "irr.nc", model="bicubic", scale=2, out=d / "o.nc")
    assert "o.nc" not in _listing(d)


def test_missing_variable_lists_variables(work):
    d, src = work
    with pytest.raises(ValueError, match=r"\['pr'\] not in the dataset.*'tas'"):
        sciSR.downscale(src, model="bicubic", scale=2, variables=["pr"], out=d / "o.nc")
    assert _listing(d) == ["in.nc"]


def test_truncated_file(work):
    d, src = work
    data = src.read_bytes()
    (d / "cut.nc").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ValueError, match=r"cut\.nc.*truncated"):
        sciSR.open(d / "cut.nc")
    with pytest.raises(ValueError, match=r"truncated"):
        sciSR.downscale(d / "cut.nc", model="bicubic", scale=2, out=d / "o.nc")
    (d / "cut4.nc").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(ValueError, match=r"cannot read .*cut4\.nc as netcdf"):
        sciSR.open(d / "cut4.nc")
    assert "o.nc" not in _listing(d)


@pytest.mark.parametrize("bad", ["missing_dir/o.nc", "in.nc/o.nc"])
def test_unwritable_output_dir(work, bad):
    d, src = work
    with pytest.raises(FileNotFoundError, match=r"output directory .* (does not exist|is not a directory)"):
        sciSR.downscale(src, model="bicubic", scale=2, out=d / bad)
    assert _listing(d) == ["in.nc"]


def test_output_equal_to_input(work):
    d, src = work
    before = src.read_bytes()
    with pytest.raises(ValueError, match=r"is the input file"):
        sciSR.downscale(src, model="bicubic", scale=2, out=src)
    ds = sciSR.open(src)
    with pytest.raises(ValueError, match=r"is the input file"):
        sciSR.write(ds, src)
    out = sciSR.downscale(ds, model="bicubic", scale=2)  # derived data keep their origin
    with pytest.raises(ValueError, match=r"is the input file"):
        sciSR.write(out, d / "." / "in.nc")
    ds.close()
    assert src.read_bytes() == before and _listing(d) == ["in.nc"]


def test_failed_write_leaves_nothing_and_keeps_old_output(work, monkeypatch):
    d, src = work
    target = d / "o.nc"
    target.write_bytes(b"previous")

    def broken(self, ds, path, **kw):
        path.write_bytes(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(NetCDFAdapter, "write", broken)
    with pytest.raises(RuntimeError, match=r"disk full"):
        sciSR.downscale(src, model="bicubic", scale=2, out=target)
    assert target.read_bytes() == b"previous" and _listing(d) == ["in.nc", "o.nc"]


def test_zarr_directory_replaced_atomically(tas, tmp_path):
    out = tmp_path / "o.zarr"
    sciSR.write(tas.isel(time=[0]), out)
    sciSR.write(tas.isel(time=[0, 1]), out)
    assert sciSR.open(out).sizes["time"] == 2 and _listing(tmp_path) == ["o.zarr"]
    with pytest.raises(FileExistsError, match=r"overwrite=True"):
        sciSR.write(tas, out, overwrite=False)


def test_atomic_path_removes_temp_on_error(tmp_path):
    with pytest.raises(KeyError), atomic_path(tmp_path / "x.tif") as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith("x.tif")
        tmp.mkdir()
        raise KeyError("boom")
    assert _listing(tmp_path) == []


def test_registry_has_xarray_formats():
    adapters = list_adapters()
    assert {"netcdf", "zarr"} <= set(adapters)
    assert ".nc" in adapters["netcdf"].extensions and adapters["zarr"].extensions == (".zarr",)


def test_longest_extension_wins_and_entry_points_register(monkeypatch, tmp_path):
    from importlib import metadata

    from sciSR.io import Adapter, adapter_for_path, base

    class Gz(Adapter):
        name = "test-gz"
        extensions = (".gz",)

    class NcGz(Adapter):
        name = "test-ncgz"
        extensions = (".nc.gz",)

    class FakeEntryPoint:
        name = "ncgz"

        def load(self):
            return NcGz

    monkeypatch.setattr(base, "_ADAPTERS", dict(base._ADAPTERS))
    monkeypatch.setattr(base, "_LOADED", False)
    monkeypatch.setattr(
        metadata, "entry_points", lambda group: [FakeEntryPoint()] if group == "sciSR.adapters" else []
    )
    base.register_adapter(Gz)
    assert isinstance(adapter_for_path(tmp_path / "a.nc.gz", must_exist=False), NcGz)
    assert isinstance(adapter_for_path(tmp_path / "a.tar.gz", must_exist=False), Gz)
    with pytest.raises(TypeError, match="lower-case"):
        base.register_adapter(type("Bad", (Adapter,), {"name": "bad", "extensions": (".NC",)}))


def test_describe_sample(tas_path):
    from sciSR.io import describe

    text = describe(tas_path)
    assert "format: netcdf" in text
    assert "tas (time: 3, lat: 96, lon: 192) float32  spatial dims (lat, lon)  valid 100.0%" in text
    assert "Gaussian latitudes (N=96" in text and "extent [-90, 90]" in text
    assert "spacing 1.875 degrees_east" in text and "x is periodic" in text
