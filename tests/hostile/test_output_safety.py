"""Outputs never touch inputs; only a previous output of the same kind is ever replaced."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import sciSR
from sciSR.cli import main
from sciSR.io.safety import OutputError

from .conftest import NC, NII, TIF, checksum, one_line


def _down(src, out, **kw):
    return sciSR.downscale(src, model="bicubic", scale=2, out=out, **kw)


def _zarr_store(guard, name="prev.zarr"):
    """A real Zarr store written by sciSR (a previous output)."""
    out = guard.root / name
    _down(guard.sample(TIF, "src_for_store.tif"), out)
    return out


# ---------------------------------------------------------------- existing outputs
def test_plain_directory_named_zarr_is_not_replaced(guard) -> None:
    src = guard.sample(TIF)
    out = guard.root / "results.zarr"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    (out / "sub").mkdir()
    (out / "sub" / "data.csv").write_text("1,2,3")
    guard.watch(out)
    with pytest.raises(OutputError, match="not a Zarr store"):
        _down(src, out)


def test_plain_directory_named_zarr_is_not_replaced_cli(guard, capsys) -> None:
    src = guard.sample(NC)
    out = guard.root / "keep.zarr"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    guard.watch(out)
    assert main(["downscale", str(src), "-o", str(out), "-s", "2"]) == 1
    err = one_line(capsys.readouterr().err)
    assert err.startswith("scisr: error:") and "not a Zarr store" in err and "choose a new name" in err


def test_empty_directory_named_zarr_is_not_replaced(guard) -> None:
    out = guard.root / "empty.zarr"
    out.mkdir()
    guard.watch(out)
    with pytest.raises(OutputError, match="not a Zarr store"):
        _down(guard.sample(TIF), out)


@pytest.mark.parametrize("ext", [".nc", ".tif", ".nii.gz", ".png"])
def test_directory_named_like_a_file_is_not_replaced(guard, capsys, ext) -> None:
    out = guard.root / f"folder{ext}"
    out.mkdir()
    (out / "a.txt").write_text("a")
    guard.watch(out)
    src = guard.sample(NII if ext == ".nii.gz" else TIF)
    assert main(["downscale", str(src), "-o", str(out), "-s", "2"]) == 1
    assert "is an existing directory" in one_line(capsys.readouterr().err)


def test_file_named_zarr_is_not_replaced_by_a_store(guard) -> None:
    out = guard.file("notes.zarr", b"plain text, not a store")
    with pytest.raises(OutputError, match="existing file, not a Zarr store"):
        _down(guard.sample(TIF), out)


def test_uppercase_zarr_extension_is_checked_too(guard) -> None:
    out = guard.root / "DATA.ZARR"
    out.mkdir()
    (out / "x").write_text("x")
    guard.watch(out)
    with pytest.raises(OutputError, match="not a Zarr store"):
        _down(guard.sample(TIF), out)


def test_previous_zarr_output_is_replaced(guard) -> None:
    out = _zarr_store(guard)
    before = checksum(out)
    _down(guard.sample(NC), out)  # another input: the store's content changes
    assert checksum(out) != before
    got = sciSR.open(out)
    assert "tas" in got and got.sizes["lat"] == 192


def test_previous_file_output_is_replaced(guard) -> None:
    src = guard.sample(TIF)
    out = guard.root / "out.tif"
    out.write_bytes(b"an old output")
    _down(src, out)
    assert sciSR.open(out).sizes["x"] == 256


def test_fifo_as_output_is_refused(guard) -> None:
    out = guard.root / "pipe.nc"
    os.mkfifo(out)
    with pytest.raises(OutputError, match="not a regular file"):
        _down(guard.sample(NC), out)
    assert out.exists()


def test_symlink_to_plain_directory_as_zarr_output_is_refused(guard) -> None:
    real = guard.root / "real_dir"
    real.mkdir()
    (real / "f.txt").write_text("keep")
    link = guard.root / "link.zarr"
    link.symlink_to(real, target_is_directory=True)
    guard.watch(real, link)
    with pytest.raises(OutputError, match="not a Zarr store"):
        _down(guard.sample(TIF), link)


def test_overwrite_false_keeps_existing(guard) -> None:
    ds = sciSR.open(guard.sample(TIF))
    out = guard.file("exists.nc", b"previous")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        sciSR.write(ds, out, overwrite=False)


# ---------------------------------------------------------------- inputs vs outputs
def test_input_inside_output_zarr_folder_is_refused(guard) -> None:
    store = guard.root / "project.zarr"
    src = guard.sample(NC, folder=store)
    with pytest.raises(OutputError, match="contains the input"):
        _down(src, store)
    assert src.exists()


def test_input_inside_output_zarr_folder_is_refused_cli(guard, capsys) -> None:
    store = guard.root / "work.zarr"
    src = guard.sample(TIF, folder=store / "raw")
    (store / "zarr.json").write_text("{}")  # even when the folder looks like a store
    guard.watch(store)
    assert main(["downscale", str(src), "-o", str(store), "-s", "2"]) == 1
    assert "contains the input" in one_line(capsys.readouterr().err)


def test_output_inside_input_store_is_refused(guard) -> None:
    store = _zarr_store(guard, "in.zarr")
    guard.watch(store)
    with pytest.raises(OutputError, match="inside the input"):
        _down(store, store / "out.nc")


def test_output_inside_input_store_is_refused_cli(guard, capsys) -> None:
    store = _zarr_store(guard, "in.zarr")
    guard.watch(store)
    sub = next(p for p in store.iterdir() if p.is_dir())
    assert main(["downscale", str(store), "-o", str(sub / "x2.zarr"), "-s", "2"]) == 1
    assert "inside the input" in one_line(capsys.readouterr().err)


def test_output_equal_to_input_is_refused(guard) -> None:
    src = guard.sample(NC)
    with pytest.raises(OutputError, match="is the input"):
        _down(src, src)


def test_output_equal_to_input_is_refused_cli(guard, capsys) -> None:
    src = guard.sample(NII)
    assert main(["downscale", str(src), "-o", str(src), "-s", "2"]) == 1
    assert "is the input" in one_line(capsys.readouterr().err)


def test_output_equal_to_input_spelled_differently(guard, monkeypatch) -> None:
    src = guard.sample(TIF, folder=guard.root / "d")
    monkeypatch.chdir(guard.root)
    with pytest.raises(OutputError, match="is the input"):
        _down(src, "d/../d/./" + TIF)


def test_output_symlink_to_input_is_refused(guard) -> None:
    src = guard.sample(TIF)
    link = guard.root / "alias.tif"
    link.symlink_to(src)
    guard.watch(link)
    with pytest.raises(OutputError, match="is the input"):
        _down(src, link)


def test_input_symlink_target_as_output_is_refused(guard) -> None:
    real = guard.sample(NC)
    link = guard.root / "link.nc"
    link.symlink_to(real)
    guard.watch(link)
    with pytest.raises(OutputError, match="is the input"):
        _down(link, real)


def test_hardlink_to_input_is_refused(guard) -> None:
    src = guard.sample(TIF)
    hard = guard.root / "hard.tif"
    os.link(src, hard)
    guard.watch(hard)
    with pytest.raises(OutputError, match="is the input"):
        _down(src, hard)


def test_symlinked_folder_holding_the_input(guard) -> None:
    src = guard.sample(TIF, folder=guard.root / "real")
    (guard.root / "alias").symlink_to(guard.root / "real", target_is_directory=True)
    with pytest.raises(OutputError, match="is the input"):
        _down(src, guard.root / "alias" / TIF)


# ---------------------------------------------------------------- sciSR.write and xarray outputs
def test_write_onto_the_source_of_a_dataset_is_refused(guard) -> None:
    src = guard.sample(NC)
    ds = sciSR.open(src)
    with pytest.raises(OutputError, match="is the input"):
        sciSR.write(ds, src)


def test_write_of_a_result_onto_its_source_is_refused(guard) -> None:
    src = guard.sample(NC)
    hr = sciSR.downscale(sciSR.open(src), model="bicubic", scale=2)
    with pytest.raises(OutputError, match="is the input"):
        sciSR.write(hr, src)


def test_write_of_a_dataarray_into_its_source_store_is_refused(guard) -> None:
    store = _zarr_store(guard, "src.zarr")
    guard.watch(store)
    da = sciSR.open(store)["band_data"]
    with pytest.raises(OutputError, match="inside the input"):
        sciSR.downscale(da, model="bicubic", scale=2, out=store / "o.nc")


def test_write_into_plain_directory_named_zarr_is_refused(guard) -> None:
    ds = sciSR.open(guard.sample(TIF))
    out = guard.root / "d.zarr"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    guard.watch(out)
    with pytest.raises(OutputError, match="not a Zarr store"):
        sciSR.write(ds, out)


# ---------------------------------------------------------------- output folders
def test_missing_output_folder(guard, capsys) -> None:
    src = guard.sample(TIF)
    assert main(["downscale", str(src), "-o", str(guard.root / "no" / "o.tif"), "-s", "2"]) == 1
    assert "does not exist" in one_line(capsys.readouterr().err)


def test_output_folder_is_a_file(guard) -> None:
    src = guard.sample(TIF)
    blocker = guard.file("blocker", b"x")
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        _down(src, blocker / "o.tif")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_permission_denied_output_folder(guard, capsys) -> None:
    src = guard.sample(TIF)
    ro = guard.root / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert main(["downscale", str(src), "-o", str(ro / "o.tif"), "-s", "2"]) == 1
        assert "not writable" in one_line(capsys.readouterr().err)
    finally:
        ro.chmod(0o700)


def test_unwritable_output_folder_reported_before_running(guard, capsys, monkeypatch) -> None:
    """Same check as above for runs as root (where permissions do not stop writes)."""
    import sciSR.io.safety as safety

    src = guard.sample(TIF)
    ro = guard.root / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(safety.os, "access", lambda p, mode: Path(p) != ro and real_access(p, mode))
    assert main(["downscale", str(src), "-o", str(ro / "o.tif"), "-s", "2"]) == 1
    assert "output directory" in one_line(capsys.readouterr().err) and not any(ro.iterdir())


def test_dangling_symlink_output_becomes_a_file(guard) -> None:
    src = guard.sample(TIF)
    link = guard.root / "dangling.tif"
    link.symlink_to(guard.root / "nowhere" / "x.tif")
    _down(src, link)
    assert not link.is_symlink() and link.is_file()
    assert not (guard.root / "nowhere").exists()


def test_refused_output_runs_nothing(guard, monkeypatch) -> None:
    """The check happens before the model is built or any data are read."""
    import sciSR.io.base as base

    src = guard.sample(NC)
    calls = []
    monkeypatch.setattr(base, "build_pipeline", lambda *a, **k: calls.append(a))
    with pytest.raises(OutputError):
        _down(src, src)
    assert calls == []


def test_result_is_intact_after_refused_then_allowed_write(guard) -> None:
    src = guard.sample(TIF)
    with pytest.raises(OutputError):
        _down(src, src)
    hr = _down(src, guard.root / "ok.tif")
    back = sciSR.open(guard.root / "ok.tif")
    np.testing.assert_allclose(back["band_data"].values, hr["band_data"].values, equal_nan=True)


# ---------------------------------------------------------------- more of our own
def test_read_only_previous_output_is_protected(guard) -> None:
    out = guard.file("final.tif", b"a result someone protected with chmod a-w")
    out.chmod(0o444)
    try:
        with pytest.raises(OutputError, match="read-only"):
            _down(guard.sample(TIF), out)
    finally:
        out.chmod(0o644)


def test_very_long_output_name(guard) -> None:
    out = guard.root / ("x" * 246 + ".tif")
    _down(guard.sample(TIF), out)
    assert sciSR.open(out).sizes["x"] == 256


def test_spaces_and_unicode_in_names(guard, capsys) -> None:
    src = guard.sample(NC, "température été.nc", folder=guard.root / "dossier à espaces")
    out = guard.root / "dossier à espaces" / "résultat ×2.zarr"
    assert main(["downscale", str(src), "-o", str(out), "-s", "2"]) == 0
    assert sciSR.open(out)["tas"].shape[-2:] == (192, 384)


def test_fifo_as_input_is_refused_without_blocking(guard, capsys) -> None:
    fifo = guard.root / "stream.nc"
    os.mkfifo(fifo)
    assert main(["info", str(fifo)]) == 1
    assert "not a regular file" in one_line(capsys.readouterr().err)


def test_device_behind_a_symlink_is_refused(guard, capsys) -> None:
    link = guard.root / "zeros.tif"
    link.symlink_to("/dev/zero")
    assert main(["downscale", str(link), "-o", str(guard.root / "o.tif")]) == 1
    assert "not a regular file" in one_line(capsys.readouterr().err)


def test_dangling_symlink_as_input(guard, capsys) -> None:
    link = guard.root / "gone.nc"
    link.symlink_to(guard.root / "deleted.nc")
    assert main(["info", str(link)]) == 1
    assert "symbolic link to a missing path" in one_line(capsys.readouterr().err)
