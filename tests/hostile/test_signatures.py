"""Files whose name lies about their content, and files that are empty, truncated or garbage."""

from __future__ import annotations

import gzip
import shutil
import struct

import numpy as np
import pytest

import sciSR
from sciSR.cli import main
from sciSR.data import sample_path
from sciSR.io.signature import FormatMismatchWarning, sniff

from .conftest import NC, NC_COADS, NII, PNG, TIF, one_line, run_scisr


def _values(ds):
    name = next(v for v in ds.data_vars if ds[v].ndim >= 2)
    return np.asarray(ds[name].values)


# ---------------------------------------------------------------- signatures (unit level)
def _nifti1(order: str = "<") -> bytes:
    head = bytearray(352)
    head[0:4] = struct.pack(order + "i", 348)
    head[344:348] = b"n+1\0"
    return bytes(head)


def _nifti2() -> bytes:
    head = bytearray(544)
    head[0:4] = struct.pack("<i", 540)
    head[4:12] = b"n+2\0\r\n\x1a\n"
    return bytes(head)


def _bmp() -> bytes:
    return b"BM" + b"\0" * 12 + struct.pack("<I", 40) + b"\0" * 40


@pytest.mark.parametrize(
    ("head", "adapter", "what"),
    [
        (b"CDF\x01" + b"\0" * 60, "netcdf", "NetCDF-3 classic"),
        (b"CDF\x02" + b"\0" * 60, "netcdf", "NetCDF-3 64-bit offset"),
        (b"CDF\x05" + b"\0" * 60, "netcdf", "NetCDF-3 CDF-5"),
        (b"\x89HDF\r\n\x1a\n" + b"\0" * 60, "netcdf", "HDF5/NetCDF-4"),
        (b"\0" * 512 + b"\x89HDF\r\n\x1a\n" + b"\0" * 60, "netcdf", "HDF5/NetCDF-4"),
        (b"II*\0" + b"\0" * 60, "geotiff", "TIFF"),
        (b"MM\0*" + b"\0" * 60, "geotiff", "TIFF"),
        (b"II+\0" + b"\0" * 60, "geotiff", "BigTIFF"),
        (b"MM\0+" + b"\0" * 60, "geotiff", "BigTIFF"),
        (_nifti1("<"), "nifti", "NIfTI-1"),
        (_nifti1(">"), "nifti", "NIfTI-1"),
        (_nifti2(), "nifti", "NIfTI-2"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 60, "image", "PNG"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 60, "image", "JPEG"),
        (b"RIFF\0\0\0\0WEBPVP8 " + b"\0" * 60, "image", "WebP"),
        (_bmp(), "image", "BMP"),
    ],
)
def test_signature_table(guard, head, adapter, what) -> None:
    p = guard.file("probe.bin", head)
    sig = sniff(p)
    assert sig is not None and (sig.adapter, sig.what) == (adapter, what)


@pytest.mark.parametrize(
    "head",
    [b"", b"CDF", b"hello world\n", b"\0" * 400, b"BM" + b"\0" * 30, b"GIF89a" + b"\0" * 30, b"PK\x03\x04"],
)
def test_unknown_content_is_not_guessed(guard, head) -> None:
    assert sniff(guard.file("probe.bin", head)) is None


def test_gzip_of_nifti_and_of_something_else(guard) -> None:
    assert sniff(guard.file("a.nii.gz", gzip.compress(_nifti1()))).what == "gzip-compressed NIfTI-1"
    assert sniff(guard.file("b.nii.gz", gzip.compress(b"not a header" * 50))) is None


# ---------------------------------------------------------------- wrong extensions
@pytest.mark.parametrize(
    ("sample", "as_name", "adapter"),
    [
        (NC_COADS, "coads.tif", "netcdf"),
        (TIF, "dem.nc", "geotiff"),
        (PNG, "photo.tif", "image"),
        (TIF, "dem.png", "geotiff"),
    ],
)
def test_content_decides_over_a_wrong_extension(guard, sample, as_name, adapter) -> None:
    liar = guard.sample(sample, as_name)
    with pytest.warns(FormatMismatchWarning, match=f"not .* as its extension says; reading it as {adapter}"):
        ds = sciSR.open(liar)
    assert ds.attrs["scisr_format"] == adapter
    np.testing.assert_array_equal(_values(ds), _values(sciSR.open(sample_path(sample))))


def test_content_whose_library_needs_the_extension_is_refused_with_the_fix(guard) -> None:
    """nibabel picks NIfTI readers by file name: a NIfTI named .nc cannot be read as it is."""
    liar = guard.sample(NII, "brain.nc")
    with pytest.warns(FormatMismatchWarning), pytest.raises(ValueError) as e:
        sciSR.open(liar)
    msg = str(e.value)
    assert "\n" not in msg and "the extension says netcdf" in msg and "rename it with a .nii extension" in msg


def test_netcdf4_named_tif_keeps_its_cf_coordinates(guard) -> None:
    src = sciSR.open(sample_path(NC))
    liar = guard.root / "tas.tif"
    src.to_netcdf(liar, format="NETCDF4", engine="netcdf4")
    guard.watch(liar)
    with pytest.warns(FormatMismatchWarning, match="HDF5/NetCDF-4"):
        ds = sciSR.open(liar)
    assert "tas" in ds and "lat" in ds.coords and ds.attrs["scisr_format"] == "netcdf"
    np.testing.assert_allclose(ds["lat"].values, src["lat"].values)


def test_zarr_store_named_nc(guard) -> None:
    store = guard.root / "store.nc"
    sciSR.downscale(guard.sample(TIF), model="bicubic", scale=2, out=guard.root / "s.zarr")
    (guard.root / "s.zarr").rename(store)
    guard.watch(store)
    with pytest.warns(FormatMismatchWarning, match="Zarr"):
        ds = sciSR.open(store)
    assert ds.sizes["x"] == 256


def test_cli_warns_once_in_one_line_and_writes_the_right_result(guard) -> None:
    liar = guard.sample(NC_COADS, "sst.tif")
    out = guard.root / "sst_x2.nc"
    r = run_scisr("downscale", str(liar), "-o", str(out), "-s", "2")
    assert r.returncode == 0, r.stderr
    err = [line for line in r.stderr.splitlines() if "extension says" in line]
    assert len(err) == 1 and err[0].startswith("scisr: warning:") and "NetCDF-3" in err[0]
    assert sciSR.open(out)["SST"].shape[-2:] == (180, 360)


def test_unknown_extension_names_the_real_format(guard, capsys) -> None:
    p = guard.sample(NC, "data.dat")
    assert main(["info", str(p)]) == 1
    err = one_line(capsys.readouterr().err)
    assert "unknown extension '.dat'" in err and "NetCDF-3 classic" in err and "rename it with a .nc" in err


# ---------------------------------------------------------------- empty, truncated, garbage
@pytest.mark.parametrize("name", ["e.nc", "e.tif", "e.nii.gz", "e.png"])
def test_empty_file(guard, capsys, name) -> None:
    p = guard.file(name, b"")
    assert main(["downscale", str(p), "-o", str(guard.root / f"o_{name}"), "-s", "2"]) == 1
    assert "the file is empty (0 bytes)" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize("sample", [NC, TIF, NII, PNG])
def test_truncated_file(guard, capsys, sample) -> None:
    data = sample_path(sample).read_bytes()
    p = guard.file(f"cut_{sample}", data[: len(data) // 2])
    out = guard.root / f"o_{sample}"
    assert main(["downscale", str(p), "-o", str(out), "-s", "2"]) == 1
    err = one_line(capsys.readouterr().err)
    assert err.startswith("scisr: error:") and str(p) in err
    assert not out.exists()


def test_truncated_netcdf4(guard, capsys) -> None:
    full = guard.root / "full.nc"
    sciSR.open(sample_path(NC)).to_netcdf(full, format="NETCDF4", engine="netcdf4")
    data = full.read_bytes()
    full.unlink()
    p = guard.file("cut4.nc", data[: len(data) // 3])
    assert main(["info", str(p)]) == 1
    assert "cannot read" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize("name", ["noise.nc", "noise.tif", "noise.nii.gz", "noise.png"])
def test_random_bytes(guard, capsys, name) -> None:
    p = guard.file(name, np.random.default_rng(3).bytes(5000))
    assert main(["info", str(p)]) == 1
    err = one_line(capsys.readouterr().err)
    assert err.startswith("scisr: error: cannot read") and name in err


def test_text_file_named_nc(guard) -> None:
    p = guard.file("notes.nc", b"this is not a netcdf file\n" * 10)
    with pytest.raises(ValueError, match=r"cannot read .*notes\.nc"):
        sciSR.open(p)


def test_directory_without_zarr_metadata(guard) -> None:
    d = guard.root / "fake.zarr"
    (d / "t").mkdir(parents=True)
    (d / "t" / "0.0").write_bytes(b"\0" * 16)
    guard.watch(d)
    with pytest.raises(ValueError, match="not a Zarr store"):
        sciSR.open(d)


def test_directory_named_like_a_file(guard) -> None:
    d = guard.root / "folder.tif"
    d.mkdir()
    with pytest.raises(ValueError, match="is a directory, not a geotiff file"):
        sciSR.open(d)


def test_gzip_garbage_named_nii_gz(guard) -> None:
    p = guard.file("g.nii.gz", gzip.compress(b"garbage" * 100))
    with pytest.raises(ValueError, match=r"cannot read .*g\.nii\.gz"):
        sciSR.open(p)


def test_uncompressed_nifti_named_nii_gz(guard) -> None:
    raw = gzip.decompress(sample_path(NII).read_bytes())
    p = guard.file("plain.nii.gz", raw)
    try:
        ds = sciSR.open(p)
    except ValueError as e:
        assert "plain.nii.gz" in str(e) and "\n" not in str(e)
    else:
        assert ds["image"].shape == sciSR.open(sample_path(NII))["image"].shape


def test_symlink_loop_as_input(guard, capsys) -> None:
    a, b = guard.root / "a.nc", guard.root / "b.nc"
    a.symlink_to(b)
    b.symlink_to(a)
    assert main(["info", str(a)]) == 1
    assert one_line(capsys.readouterr().err).startswith("scisr: error:")


def test_copy_of_sample_is_identical_to_the_sample(guard) -> None:
    """Control case: a faithful copy reads exactly like the shipped sample."""
    p = guard.root / "copy.nc"
    shutil.copy(sample_path(NC), p)
    guard.watch(p)
    np.testing.assert_array_equal(_values(sciSR.open(p)), _values(sciSR.open(sample_path(NC))))
