"""Resumable batch jobs: inputs (globs, folders), manifest, resume, retries, failures, kills."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import sciSR
from sciSR.batch_manifest import MANIFEST_NAME
from sciSR.cli import main
from sciSR.data import sample_path
from sciSR.parallel import downscale_files, expand_inputs

TIF = "etopo5_alps.tif"
NC = "cmip5_tas_mpi-esm-lr_2005.nc"
NII = "mni152_t1_slab.nii.gz"


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _copies(folder: Path, names: dict[str, str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy(sample_path(src), folder / dst)) for dst, src in names.items()]


def _same_values(a: Path, b: Path) -> None:
    x, y = sciSR.open(a), sciSR.open(b)
    assert set(x.data_vars) == set(y.data_vars)
    for v in x.data_vars:
        np.testing.assert_array_equal(x[v].values, y[v].values)
        assert x[v].shape == y[v].shape


def _manifest(out: Path) -> dict:
    return json.loads((out / MANIFEST_NAME).read_text())


def _tif(path: Path, crs: str, shape: tuple[int, int], origin: tuple[float, float], res: float) -> Path:
    import rasterio
    from affine import Affine

    data = np.arange(shape[0] * shape[1], dtype="float32").reshape(shape) / 7.0
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=shape[0],
        width=shape[1],
        count=1,
        dtype="float32",
        crs=crs,
        transform=Affine(res, 0.0, origin[0], 0.0, -res, origin[1]),
    ) as dst:
        dst.write(data, 1)
    return path


def test_expand_inputs_globs_folders_and_duplicates(tmp_path) -> None:
    a, b = _copies(tmp_path / "in", {"b.tif": TIF, "a.nc": NC})
    (tmp_path / "in" / "notes.txt").write_text("not data")
    shutil.copy(a, tmp_path / "in" / ".hidden.tif")
    store = tmp_path / "in" / "c.zarr"
    store.mkdir()
    (store / "zarr.json").write_text("{}")
    got = expand_inputs([tmp_path / "in", str(tmp_path / "in" / "*.nc"), store])
    assert got == [b, a, store]  # folder sorted; the pattern and the store repeat earlier inputs
    assert expand_inputs([str(tmp_path / "in" / "*.tif")]) == [a]
    with pytest.raises(FileNotFoundError, match="no file matches"):
        expand_inputs([str(tmp_path / "in" / "*.grib")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no file sciSR reads"):
        expand_inputs([tmp_path / "empty"])


def test_manifest_records_each_file(tmp_path) -> None:
    srcs = _copies(tmp_path / "in", {"dem.tif": TIF, "tas.nc": NC})
    results = downscale_files(srcs, tmp_path / "out", "bicubic", 2, manifest=True)
    assert [r.status for r in results] == ["done", "done"]
    m = _manifest(tmp_path / "out")
    assert m["settings"]["model"] == "bicubic" and m["settings"]["scale"] == 2
    assert m["settings"]["scisr_version"] == sciSR.__version__
    assert m["summary"] == {"done": 2, "failed": 0, "pending": 0}
    e = {Path(x["source"]).name: x for x in m["entries"]}
    out = Path(e["dem.tif"]["output"])
    assert out == (tmp_path / "out" / "dem_x2.tif").resolve()
    assert e["dem.tif"]["output_fingerprint"]["sha256"] == _sha(out)
    assert e["dem.tif"]["output_fingerprint"]["size"] == out.stat().st_size
    assert e["tas.nc"]["source_fingerprint"]["sha256"] == _sha(srcs[1])
    assert e["tas.nc"]["variables"]["tas"]["shape"] == [3, 192, 384]
    assert e["dem.tif"]["attempts"] == 1 and e["dem.tif"]["error"] is None and e["dem.tif"]["seconds"] > 0
    assert e["dem.tif"]["start"] <= e["dem.tif"]["end"] and e["dem.tif"]["worker"]


@pytest.mark.filterwarnings("ignore:.*kept as raw numbers")
def test_resume_skips_finished_and_redoes_missing_corrupt_and_changed(tmp_path) -> None:
    names = {"a.tif": TIF, "b.tif": TIF, "c.tif": TIF, "d.nc": NC, "e.tif": TIF}
    srcs = _copies(tmp_path / "in", names)
    ref = tmp_path / "ref"
    downscale_files(srcs, ref, "bicubic", 2)
    out = tmp_path / "out"
    downscale_files(srcs, out, "bicubic", 2, manifest=True)
    keep_stat = (out / "a_x2.tif").stat()
    (out / "b_x2.tif").unlink()  # missing
    with open(out / "c_x2.tif", "r+b") as f:  # truncated
        f.truncate(1000)
    st = (out / "e_x2.tif").stat()  # same size, same mtime, one byte changed
    data = bytearray((out / "e_x2.tif").read_bytes())
    data[-1] ^= 0xFF
    (out / "e_x2.tif").write_bytes(bytes(data))
    os.utime(out / "e_x2.tif", ns=(st.st_atime_ns, st.st_mtime_ns))
    shutil.copy(sample_path("coads_sst_climatology.nc"), srcs[3])  # changed input
    results = downscale_files(srcs, out, "bicubic", 2, resume=True)
    assert [r.status for r in results] == ["skipped", "done", "done", "done", "done"]
    assert (out / "a_x2.tif").stat().st_mtime_ns == keep_stat.st_mtime_ns  # not rewritten
    for n in ("a", "b", "c", "e"):
        _same_values(out / f"{n}_x2.tif", ref / f"{n}_x2.tif")
    assert "SST" in sciSR.open(out / "d_x2.nc").data_vars  # the new input's output
    again = downscale_files(srcs, out, "bicubic", 2, resume=True)
    assert [r.status for r in again] == ["skipped"] * 5


def test_resume_checks_zarr_store_outputs_file_by_file(tmp_path) -> None:
    srcs = _copies(tmp_path / "in", {"a.tif": TIF, "b.tif": TIF})
    out = tmp_path / "out"
    downscale_files(srcs, out, "bicubic", 2, suffix=".zarr", manifest=True)
    fp = _manifest(out)["entries"][0]["output_fingerprint"]
    assert fp["files"] > 1 and "sha256" in fp
    chunk = max((p for p in (out / "b_x2.zarr").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    st = chunk.stat()
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    os.utime(chunk, ns=(st.st_atime_ns, st.st_mtime_ns))
    results = downscale_files(srcs, out, "bicubic", 2, suffix=".zarr", resume=True)
    assert [r.status for r in results] == ["skipped", "done"]
    _same_values(out / "b_x2.zarr", out / "a_x2.zarr")


def test_resume_redoes_everything_when_settings_change(tmp_path) -> None:
    srcs = _copies(tmp_path / "in", {"a.tif": TIF, "b.tif": TIF})
    downscale_files(srcs, tmp_path / "out", "bicubic", 2, manifest=True)
    other = downscale_files(srcs, tmp_path / "out", "bicubic", 2, resume=True, norm="zscore")
    assert [r.status for r in other] == ["done", "done"]
    same = downscale_files(srcs, tmp_path / "out", "bicubic", 2, resume=True, norm="zscore")
    assert [r.status for r in same] == ["skipped", "skipped"]


def test_failed_file_is_retried_and_recorded(tmp_path) -> None:
    good = _copies(tmp_path / "in", {"a.tif": TIF})[0]
    bad = tmp_path / "in" / "broken.nc"
    bad.write_bytes(b"not a netcdf file")
    results = downscale_files(
        [good, bad], tmp_path / "out", "bicubic", 2, manifest=True, retries=2, raise_errors=False
    )
    assert results[0].ok and results[0].attempts == 1
    assert results[1].status == "failed" and results[1].attempts == 3 and "broken.nc" in results[1].error
    e = _manifest(tmp_path / "out")["entries"][1]
    assert e["status"] == "failed" and e["attempts"] == 3 and "broken.nc" in e["error"]
    assert e["output_fingerprint"] is None and not (tmp_path / "out" / "broken_x2.nc").exists()
    bad.unlink()
    shutil.copy(sample_path(NC), bad)  # fixed: the resumed job does only this file
    results = downscale_files([good, bad], tmp_path / "out", "bicubic", 2, resume=True)
    assert [r.status for r in results] == ["skipped", "done"]


def test_disk_full_mid_write_fails_that_file_only(tmp_path, monkeypatch) -> None:
    from sciSR.io.geotiff import GeoTiffAdapter

    srcs = _copies(tmp_path / "in", {"a.tif": TIF, "b.nc": NC})
    before = [_sha(p) for p in srcs]
    calls = []

    def full_disk(self, ds, path, **kw):  # half a file, then the disk is full
        calls.append(path)
        Path(path).write_bytes(b"II*\0" + b"\0" * 4096)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(GeoTiffAdapter, "write", full_disk)
    out = tmp_path / "out"
    results = downscale_files(srcs, out, "bicubic", 2, manifest=True, raise_errors=False)
    assert calls  # the write really went through the patched writer
    assert results[0].status == "failed" and "no space left" in results[0].error
    assert results[1].ok
    assert sorted(p.name for p in out.iterdir()) == ["b_x2.nc", MANIFEST_NAME]  # no partial, no temp
    assert [e["status"] for e in _manifest(out)["entries"]] == ["failed", "done"]
    assert [_sha(p) for p in srcs] == before


def test_manifest_that_cannot_be_updated_warns_and_the_job_goes_on(tmp_path, monkeypatch) -> None:
    from sciSR.batch_manifest import Manifest

    real_save, calls = Manifest.save, []

    def save_once(self):  # the first write works, later ones meet a full disk
        calls.append(1)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(self)

    monkeypatch.setattr(Manifest, "save", save_once)
    srcs = _copies(tmp_path / "in", {"a.tif": TIF, "b.tif": TIF})
    with pytest.warns(RuntimeWarning, match="cannot update the batch manifest"):
        results = downscale_files(srcs, tmp_path / "out", "bicubic", 2, manifest=True)
    assert all(r.ok for r in results)
    assert [e["status"] for e in _manifest(tmp_path / "out")["entries"]] == ["pending", "pending"]
    monkeypatch.setattr(Manifest, "save", real_save)
    again = downscale_files(srcs, tmp_path / "out", "bicubic", 2, resume=True)
    assert [r.status for r in again] == ["done", "done"]  # not recorded, so redone


def test_mixed_grids_and_crs_in_one_batch(tmp_path) -> None:
    a = _tif(tmp_path / "geo.tif", "EPSG:4326", (10, 12), (5.0, 47.0), 0.1)
    b = _tif(tmp_path / "utm.tif", "EPSG:32633", (8, 6), (500000.0, 5200000.0), 1000.0)
    c = _copies(tmp_path, {"tas.nc": NC})[0]
    results = downscale_files([a, b, c], tmp_path / "out", "bicubic", 2, manifest=True)
    assert all(r.ok for r in results)
    for src, r in zip([a, b], results):
        x, y = sciSR.open(src), sciSR.open(r.output)
        assert y.rio.crs == x.rio.crs
        assert y["band_data"].shape[-2:] == tuple(2 * n for n in x["band_data"].shape[-2:])
        assert y.rio.bounds() == pytest.approx(x.rio.bounds())
        single = sciSR.downscale(src, model="bicubic", scale=2)
        np.testing.assert_allclose(y["band_data"].values, single["band_data"].values, rtol=1e-6)
    shapes = [next(iter(e["variables"].values()))["shape"] for e in _manifest(tmp_path / "out")["entries"]]
    assert shapes == [[1, 20, 24], [1, 16, 12], [3, 192, 384]]


def test_output_folder_that_cannot_be_written_is_refused_before_work(tmp_path, capsys) -> None:
    if not Path("/sys").is_dir():
        pytest.skip("needs /sys (Linux), which no user can create folders in")
    with pytest.raises(PermissionError, match="not writable"):
        downscale_files([sample_path(TIF)], "/sys/scisr-test-out", "bicubic", 2)
    assert not Path("/sys/scisr-test-out").exists()
    assert (
        main(["batch", str(sample_path(TIF)), "-o", "/sys/scisr-test-out", "-m", "bicubic", "-s", "2"]) == 1
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]] and "not writable" in err[0] and err[0].startswith("scisr: error:")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder_is_refused(tmp_path) -> None:
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="not writable"):
            downscale_files([sample_path(TIF)], out, "bicubic", 2, manifest=True)
        assert list(out.iterdir()) == []
    finally:
        out.chmod(0o700)


def test_foreign_manifest_file_is_not_replaced(tmp_path) -> None:
    (tmp_path / "out").mkdir()
    foreign = tmp_path / "out" / "notes.json"
    foreign.write_text('{"mine": 1}')
    with pytest.raises(ValueError, match="not a sciSR batch manifest"):
        downscale_files([sample_path(TIF)], tmp_path / "out", "bicubic", 2, manifest=foreign, resume=True)
    assert foreign.read_text() == '{"mine": 1}' and sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "notes.json"
    ]


def test_cli_unreachable_scheduler_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch) -> None:
    import socket

    import sciSR.parallel

    monkeypatch.setattr(sciSR.parallel, "CONNECT_TIMEOUT", 2)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "out"
    rc = main(
        [
            "batch",
            str(sample_path(TIF)),
            "-o",
            str(out),
            "-m",
            "bicubic",
            "--scheduler",
            f"tcp://127.0.0.1:{port}",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and "cannot reach the dask scheduler" in err[0]
    assert not out.exists()


def test_cli_workers_and_scheduler_are_exclusive(tmp_path, capsys) -> None:
    rc = main(
        [
            "batch",
            str(sample_path(TIF)),
            "-o",
            str(tmp_path / "o"),
            "--workers",
            "2",
            "--scheduler",
            "tcp://x:1",
        ]
    )
    assert rc == 2 and "pass one of them" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_batch_folder_resume_and_summary(tmp_path, capsys) -> None:
    _copies(tmp_path / "in", {"a.tif": TIF, "b.nii.gz": NII})
    args = ["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", "bicubic", "-s", "2"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "done          2" in err and (tmp_path / "out" / MANIFEST_NAME).exists()
    (tmp_path / "out" / "b_x2.nii.gz").unlink()
    assert main([*args, "--resume"]) == 0
    err = capsys.readouterr().err
    assert "skip " in err and "done          1" in err and "skipped       1" in err
    assert (tmp_path / "out" / "b_x2.nii.gz").exists()


@pytest.mark.slow
def test_cli_workers_runs_on_a_local_cluster(tmp_path, capsys) -> None:
    pytest.importorskip("dask.distributed")
    _copies(tmp_path / "in", {"a.tif": TIF, "b.tif": TIF})
    out = tmp_path / "out"
    args = ["batch", str(tmp_path / "in" / "*.tif"), "-o", str(out), "-m", "bicubic", "-s", "2"]
    assert main([*args, "--workers", "2"]) == 0
    entries = _manifest(out)["entries"]
    assert all(e["worker"].startswith("tcp://") for e in entries)
    single = sciSR.downscale(sample_path(TIF), model="bicubic", scale=2)
    for n in "ab":
        np.testing.assert_array_equal(
            sciSR.open(out / f"{n}_x2.tif")["band_data"].values, single["band_data"].values
        )


# ---- kills ---------------------------------------------------------------------------------------


def _temps(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".scisr-")]


def _wait_for(cond, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_worker_killed_mid_write_loses_nothing(tmp_path, monkeypatch) -> None:
    distributed = pytest.importorskip("dask.distributed")
    from sciSR.io.safety import parse_temp_name

    srcs = _copies(tmp_path / "in", {f"{n}.tif": TIF for n in "abc"})
    ref = tmp_path / "ref"
    downscale_files(srcs[:1], ref, "bicubic", 2)
    out = tmp_path / "out"
    monkeypatch.setenv("SCISR_TEST_SLOW_WRITE", "1.0")  # inherited by the worker processes
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        import threading

        killed: list[int] = []

        def kill_first_writer() -> None:
            def tmp_pids() -> list[int]:
                # temporary outputs of worker processes (not the manifest's, which this process writes)
                pids = [parse_temp_name(n).pid for n in _temps(out)] if out.exists() else []
                return [p for p in pids if p != os.getpid()]

            if _wait_for(lambda: bool(tmp_pids()), 25):
                pid = tmp_pids()[0]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        t = threading.Thread(target=kill_first_writer)
        t.start()
        results = downscale_files(srcs, out, "bicubic", 2, client=client, manifest=True)
        t.join()
    assert killed, "no worker was caught writing"
    assert all(r.ok for r in results)
    for n in "abc":
        _same_values(out / f"{n}_x2.tif", ref / "a_x2.tif")
    assert _temps(out) == []  # the dead writer's temporary file was removed
    assert _manifest(out)["summary"]["done"] == 3


@pytest.mark.slow
def test_batch_process_killed_then_resumed_gives_complete_identical_outputs(tmp_path) -> None:
    srcs = _copies(tmp_path / "in", {f"{n}.tif": TIF for n in "abcd"})
    ref = tmp_path / "ref"
    downscale_files(srcs[:1], ref, "bicubic", 2)
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "sciSR",
        "batch",
        str(tmp_path / "in"),
        "-o",
        str(out),
        "-m",
        "bicubic",
        "-s",
        "2",
    ]
    env = {**os.environ, "SCISR_TEST_SLOW_WRITE": "0.6", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:

        def done_and_writing() -> bool:
            if not (out / MANIFEST_NAME).exists() or not _temps(out):
                return False
            try:
                return _manifest(out)["summary"]["done"] >= 1
            except (ValueError, KeyError):
                return False

        assert _wait_for(done_and_writing, 90), "the batch never had a finished file and a write under way"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    finished = [p for p in out.iterdir() if p.name.endswith("_x2.tif") and not p.name.startswith(".")]
    assert 1 <= len(finished) < 4 and _temps(out)  # killed mid-job, a temporary file left behind
    for p in finished:  # whatever carries an output name is complete
        _same_values(p, ref / "a_x2.tif")
    r = subprocess.run(
        [*cmd, "--resume"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"skipped       {_manifest_count(r.stderr, 'skipped')}" in r.stderr
    assert _manifest_count(r.stderr, "skipped") >= 1 and _manifest_count(r.stderr, "done") >= 1
    for n in "abcd":
        _same_values(out / f"{n}_x2.tif", ref / "a_x2.tif")
    assert _temps(out) == []
    assert _manifest(out)["summary"] == {"done": 4, "failed": 0, "pending": 0}


def _manifest_count(summary: str, status: str) -> int:
    line = next(x for x in summary.splitlines() if x.startswith(status + " "))
    return int(line.split()[1])
