"""``scisr batch`` / ``downscale_files``: a job never replaces its own inputs; checks run first."""

from __future__ import annotations

import pytest

import sciSR
from sciSR.cli import main
from sciSR.io.safety import OutputError
from sciSR.parallel import downscale_files

from .conftest import NC, NC_COADS, TIF, one_line


def _listing(d):
    return sorted(p.name for p in d.iterdir())


def test_output_that_is_another_input_is_refused_cli(guard, capsys) -> None:
    data = guard.root / "data"
    guard.sample(TIF, "dem.tif", folder=data)
    guard.sample(TIF, "dem_x2.tif", folder=data)  # a previous result, listed as an input
    before = _listing(data)
    rc = main(["batch", str(data / "dem.tif"), str(data / "dem_x2.tif"), "-o", str(data), "-s", "2"])
    assert rc == 1
    err = one_line(capsys.readouterr().err)
    assert "is the input" in err and "dem_x2.tif" in err
    assert _listing(data) == before  # nothing ran: not even dem_x2_x2.tif


def test_output_that_is_another_input_is_refused_api(guard) -> None:
    a = guard.sample(NC, "t.nc")
    b = guard.sample(NC, "t_x3.nc")
    with pytest.raises(OutputError, match="is the input"):
        downscale_files([a, b], guard.root, "bicubic", 3)
    assert _listing(guard.root) == ["t.nc", "t_x3.nc"]


def test_out_dir_inside_an_input_store_is_refused(guard) -> None:
    store = guard.root / "in.zarr"
    sciSR.downscale(guard.sample(TIF), model="bicubic", scale=2, out=store)
    guard.watch(store)
    with pytest.raises(OutputError, match="inside the input"):
        downscale_files([store], store / "out", "bicubic", 2)
    assert not (store / "out").exists()


def test_out_dir_that_is_an_input_is_refused(guard, capsys) -> None:
    src = guard.sample(NC)
    assert main(["batch", str(src), "-o", str(src), "-s", "2"]) == 1
    assert "is the input" in one_line(capsys.readouterr().err)


def test_out_dir_that_is_a_file_is_refused(guard, capsys) -> None:
    src = guard.sample(NC)
    f = guard.file("results", b"a file, not a folder")
    assert main(["batch", str(src), "-o", str(f), "-s", "2"]) == 1
    assert "is an existing file" in one_line(capsys.readouterr().err)


def test_output_store_containing_an_input_is_refused(guard) -> None:
    store = guard.root / "t_x2.zarr"
    inner = guard.sample(NC, "inner.nc", folder=store)
    src = guard.sample(NC, "t.nc")
    with pytest.raises(OutputError, match="contains the input"):
        downscale_files([src, inner], guard.root, "bicubic", 2, suffix=".zarr")
    assert inner.exists()


def test_existing_plain_folder_as_one_output_stops_the_whole_job(guard) -> None:
    a, b = guard.sample(NC, "a.nc"), guard.sample(TIF, "b.tif")
    blocker = guard.root / "out" / "b_x2.zarr"
    blocker.mkdir(parents=True)
    (blocker / "keep.txt").write_text("keep")
    guard.watch(blocker)
    with pytest.raises(OutputError, match="not a Zarr store"):
        downscale_files([a, b], guard.root / "out", "bicubic", 2, suffix=".zarr")
    assert _listing(guard.root / "out") == ["b_x2.zarr"]  # a_x2.zarr was not written either


def test_two_inputs_one_output_name(guard, capsys) -> None:
    a, b = guard.sample(TIF, "x.tif"), guard.sample(NC, "x.nc")
    assert main(["batch", str(a), str(b), "-o", str(guard.root / "o"), "--suffix", ".zarr", "-s", "2"]) == 1
    err = one_line(capsys.readouterr().err)
    assert "same output" in err and "x.tif" in err and "x.nc" in err
    assert not (guard.root / "o").exists()


def test_same_input_twice(guard) -> None:
    a = guard.sample(TIF)
    with pytest.raises(ValueError, match="same output"):
        downscale_files([a, a], guard.root / "o", "bicubic", 2)


def test_unknown_suffix_is_refused_before_running(guard) -> None:
    a = guard.sample(TIF)
    with pytest.raises(ValueError, match="unknown extension"):
        downscale_files([a], guard.root / "o", "bicubic", 2, suffix=".xyz")
    assert not (guard.root / "o").exists()


def test_suffix_without_dot(guard) -> None:
    a = guard.sample(TIF, "dem.tif")
    results = downscale_files([a], guard.root / "o", "bicubic", 2, suffix="zarr")
    assert results[0].ok and results[0].output.endswith("dem_x2.zarr")


def test_corrupt_and_missing_inputs_fail_alone_with_exit_1(guard, capsys) -> None:
    good = guard.sample(NC_COADS, "good.nc")
    bad = guard.file("bad.nc", b"CDF\x01" + b"\x00" * 40)
    missing = guard.root / "missing.tif"
    out = guard.root / "o"
    rc = main(["batch", str(good), str(bad), str(missing), "-o", str(out), "-s", "2"])
    assert rc == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "scisr: error: 2 of 3 files failed (listed above)"
    assert sum(line.startswith("ERR") for line in err) == 2
    assert _listing(out) == ["good_x2.nc", "scisr-manifest.json"]
