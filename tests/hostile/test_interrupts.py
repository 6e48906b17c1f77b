"""Signals mid-write end the command promptly, remove partial outputs and keep previous outputs.

Real ``scisr`` subprocesses get SIGINT/SIGTERM/SIGHUP while a temporary output exists. Most cases
hold the write open with the test hook ``SCISR_TEST_SLOW_WRITE`` (see :mod:`sciSR.interrupts`);
one interrupts a real, large NetCDF write inside the netCDF library. Time bounds are generous
(they catch hangs, not slowness).
"""

from __future__ import annotations

import _thread
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import sciSR
from sciSR.interrupts import EXIT_CODES
from sciSR.io.safety import HOST_TAG, remove_stale_temps, temp_path

from .conftest import NC, NII, TIF, checksum, leftovers, one_line

#: a process that does not end this long after the signal is considered hung
HANG_S = 60


def _start(*args: str, slow: float | None = 120, **popen: object) -> subprocess.Popen:
    env = dict(os.environ, SCISR_NO_PROGRESS="1", PYTHONWARNINGS="ignore")
    if slow:
        env["SCISR_TEST_SLOW_WRITE"] = str(slow)
    return subprocess.Popen(
        [sys.executable, "-m", "sciSR", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **popen,
    )


def _wait_for_temp(
    proc: subprocess.Popen, folder: Path, timeout: float = 120, ignore: str = ""
) -> list[Path]:
    """The temporary outputs in ``folder`` once one appears (names containing ``ignore`` aside)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p for p in leftovers(folder) if not ignore or ignore not in p.name]
        if found:
            return found
        if proc.poll() is not None:
            pytest.fail(f"the command ended (rc {proc.returncode}) before writing: {proc.stderr.read()}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail("no temporary output appeared")


def _signal_and_wait(proc: subprocess.Popen, sig: int) -> tuple[int, str]:
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=HANG_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"the command hung after {signal.Signals(sig).name}")
    return proc.returncode, err


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sample", "out_name", "sig"),
    [
        (NC, "prev.nc", "SIGINT"),
        (TIF, "prev.zarr", "SIGTERM"),
        (TIF, "prev.tif", "SIGHUP"),
        (NII, "prev.nii.gz", "SIGTERM"),
    ],
)
def test_signal_mid_write_keeps_previous_output(guard, sample, out_name, sig) -> None:
    src = guard.sample(sample)
    out = guard.root / out_name
    sciSR.downscale(src, model="bicubic", scale=2, out=out)  # the previous output
    guard.watch(out)
    proc = _start("downscale", str(src), "-o", str(out), "-m", "bicubic", "-s", "3")
    _wait_for_temp(proc, guard.root)
    rc, err = _signal_and_wait(proc, getattr(signal, sig))
    assert rc == EXIT_CODES[sig] == 128 + getattr(signal, sig)
    line = one_line(err)
    assert line.startswith(f"scisr: interrupted ({sig})") and "removed partial output" in line


@pytest.mark.slow
def test_sigterm_during_batch_removes_every_partial_output(guard) -> None:
    srcs = [guard.sample(NC, f"t{i}.nc") for i in range(3)]
    out = guard.root / "out"
    proc = _start("batch", *map(str, srcs), "-o", str(out), "-m", "bicubic", "-s", "2")
    _wait_for_temp(proc, out, ignore="scisr-manifest")  # a file's write, not the manifest's own
    rc, err = _signal_and_wait(proc, signal.SIGTERM)
    assert rc == 143 and "interrupted (SIGTERM)" in err
    assert [p.name for p in out.iterdir()] == ["scisr-manifest.json"]  # every file listed as pending


@pytest.mark.slow
def test_ctrl_c_inside_a_real_netcdf_write(guard) -> None:
    """No test hook: the signal lands while the netCDF library writes a large file."""
    n = 1000
    rng = np.random.default_rng(0)
    xr.Dataset(
        {"t": (("lat", "lon"), rng.random((n, n), dtype=np.float32))},
        coords={"lat": np.linspace(-60, 60, n), "lon": np.linspace(0, 120, n)},
    ).to_netcdf(guard.root / "big.nc")
    guard.watch(guard.root / "big.nc")
    big, out = guard.root / "big.nc", guard.root / "big_x4.nc"
    proc = _start("downscale", str(big), "-o", str(out), "-m", "bicubic", "-s", "4", slow=None)
    _wait_for_temp(proc, guard.root)
    rc, err = _signal_and_wait(proc, signal.SIGINT)
    assert rc == 130, err
    assert not (guard.root / "big_x4.nc").exists()


# ---------------------------------------------------------------- stale temporary outputs
def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def _named(folder: Path, kind: str, host: str, pid: int, target: str) -> Path:
    return folder / f".scisr-{kind}-{host}-{pid}-0123abcd-{target}"


def test_stale_temps_of_dead_processes_are_removed_by_the_next_write(guard) -> None:
    pid = _dead_pid()
    stale_file = _named(guard.root, "tmp", HOST_TAG, pid, "a.nc")
    stale_file.write_bytes(b"partial")
    stale_dir = _named(guard.root, "tmp", HOST_TAG, pid, "b.zarr")
    (stale_dir / "v").mkdir(parents=True)
    (stale_dir / "v" / "c0").write_bytes(b"chunk")
    sciSR.downscale(guard.sample(TIF), model="bicubic", scale=2, out=guard.root / "new.tif")
    assert not stale_file.exists() and not stale_dir.exists()


def test_temps_of_live_processes_and_other_hosts_are_kept(guard) -> None:
    live = _named(guard.root, "tmp", HOST_TAG, os.getppid(), "a.nc")
    other = "ffffffff" if HOST_TAG != "ffffffff" else "eeeeeeee"
    other_host = _named(guard.root, "tmp", other, _dead_pid(), "b.nc")
    mine = temp_path(guard.root / "c.nc")
    for p in (live, other_host, mine):
        p.write_bytes(b"in flight")
    try:
        assert remove_stale_temps(guard.root) == []
        sciSR.downscale(guard.sample(TIF), model="bicubic", scale=2, out=guard.root / "new.tif")
        assert live.exists() and other_host.exists() and mine.exists()
    finally:
        for p in (live, other_host, mine):
            p.unlink()


def test_orphaned_previous_store_is_restored(guard) -> None:
    """A process killed between the two renames of a Zarr swap left only the old store."""
    store = guard.root / "res.zarr"
    sciSR.downscale(guard.sample(TIF), model="bicubic", scale=2, out=store)
    before = checksum(store)
    backup = _named(guard.root, "old", HOST_TAG, _dead_pid(), "res.zarr")
    store.rename(backup)
    assert remove_stale_temps(guard.root) == [backup]
    assert checksum(store) == before and not backup.exists()


def test_stale_backup_beside_a_complete_output_is_removed(guard) -> None:
    store = guard.root / "res.zarr"
    sciSR.downscale(guard.sample(TIF), model="bicubic", scale=2, out=store)
    backup = _named(guard.root, "old", HOST_TAG, _dead_pid(), "res.zarr")
    backup.mkdir()
    (backup / "zarr.json").write_text("{}")
    remove_stale_temps(guard.root)
    assert not backup.exists() and store.is_dir()


# ---------------------------------------------------------------- failed writes
def test_model_failure_during_a_lazy_zarr_write_leaves_nothing(guard) -> None:
    import torch

    n = 48
    src = guard.root / "in.zarr"
    xr.Dataset(
        {"t": (("time", "lat", "lon"), np.random.default_rng(1).random((12, n, n), dtype=np.float32))},
        coords={"time": np.arange(12), "lat": np.linspace(-30, 30, n), "lon": np.linspace(0, 60, n)},
    ).chunk({"time": 1}).to_zarr(src, zarr_format=3, consolidated=True)
    guard.watch(src)
    out = guard.root / "out.zarr"
    sciSR.downscale(src, model="bicubic", scale=2, out=out)
    guard.watch(out)

    class FailsOnFifthCall(torch.nn.Module):
        calls = 0

        def forward(self, x):
            type(self).calls += 1
            if type(self).calls == 5:
                raise RuntimeError("model failed on the fifth chunk")
            return torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")

    with pytest.raises(RuntimeError, match="fifth chunk"):
        sciSR.downscale(src, model=FailsOnFifthCall(), scale=2, out=out, tile=0)


def test_failed_netcdf_write_leaves_nothing(guard) -> None:
    src = guard.sample(NC)
    with pytest.raises(ValueError, match="float16"):
        sciSR.downscale(src, model="bicubic", scale=2, out=guard.root / "o.nc", dtype="float16")
    assert not (guard.root / "o.nc").exists()


def test_keyboard_interrupt_in_library_use_is_prompt_and_cleans_up(guard, monkeypatch) -> None:
    src = guard.sample(TIF)
    out = guard.root / "o.tif"
    monkeypatch.setenv("SCISR_TEST_SLOW_WRITE", "3")
    timer = threading.Timer(0.5, _thread.interrupt_main)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            sciSR.downscale(src, model="bicubic", scale=2, out=out)
    finally:
        timer.cancel()
    deadline = time.monotonic() + HANG_S  # the abandoned writer thread removes its output
    while leftovers(guard.root) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not out.exists()


# ---------------------------------------------------------------- full disks
def _file_size_limit(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def _big_netcdf(guard) -> Path:
    n = 400
    p = guard.root / "in.nc"
    rng = np.random.default_rng(2)
    xr.Dataset(
        {"t": (("lat", "lon"), rng.random((n, n), dtype=np.float32))},
        coords={"lat": np.linspace(-60, 60, n), "lon": np.linspace(0, 120, n)},
    ).to_netcdf(p)
    guard.watch(p)
    return p


@pytest.mark.slow
@pytest.mark.parametrize("out_name", ["o.nc", "o.zarr", "o.tif"])
def test_full_disk_is_one_line_naming_the_output(guard, out_name) -> None:
    src = _big_netcdf(guard)
    proc = _start(
        "downscale",
        str(src),
        "-o",
        str(guard.root / out_name),
        "-m",
        "bicubic",
        "-s",
        "2",
        slow=None,
        preexec_fn=_file_size_limit(100_000),
    )
    _, err = proc.communicate(timeout=HANG_S * 2)
    assert proc.returncode == 1
    line = one_line(err)
    assert line.startswith("scisr: error: cannot write") and out_name in line
    assert not (guard.root / out_name).exists()


# ---------------------------------------------------------------- the handlers themselves
_HANDLER_SCRIPT = """
import os, signal, sys, time
from pathlib import Path
from sciSR import interrupts
from sciSR.io.safety import remove_path
d = Path(sys.argv[1])
interrupts.install_handlers("scisr")
tmp = d / ".scisr-tmp-partial"
tmp.mkdir()
(tmp / "chunk").write_bytes(b"x")
interrupts.track(tmp, remove_path)
with interrupts.critical():
    os.kill(os.getpid(), signal.{sig})
    time.sleep(0.2)
    (d / "published").write_text("the critical section ran to its end")
time.sleep(30)
(d / "after").write_text("must not happen")
"""


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP", "SIGINT"])
def test_signal_inside_a_critical_section_waits_for_its_end(guard, sig) -> None:
    script = _HANDLER_SCRIPT.replace("{sig}", sig)
    r = subprocess.run(
        [sys.executable, "-c", script, str(guard.root)], capture_output=True, text=True, timeout=HANG_S
    )
    assert r.returncode == EXIT_CODES[sig]
    assert (guard.root / "published").exists() and not (guard.root / "after").exists()
    assert f"interrupted ({sig}); removed partial output" in r.stderr


def test_ignored_signals_stay_ignored(guard) -> None:
    """``nohup`` and background jobs start with SIGHUP/SIGINT ignored: the command keeps that."""
    script = (
        "import signal\nfrom sciSR import interrupts\n"
        "signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
        "restore = interrupts.install_handlers()\n"
        "print(signal.getsignal(signal.SIGHUP) is signal.SIG_IGN)\n"
        "print(signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL)\n"
        "restore()\nprint(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)\n"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=HANG_S)
    assert r.stdout.split() == ["True", "True", "True"], r.stderr


def test_temporary_names_of_long_targets_fit_and_keep_the_extension(guard) -> None:
    target = guard.root / ("é" * 120 + ".nii.gz")  # 247 bytes
    tmp = temp_path(target)
    assert len(tmp.name.encode()) <= 255 and tmp.name.endswith("~.nii.gz")
    short = temp_path(guard.root / "a.nc")
    assert short.name.endswith("-a.nc") and short.name.startswith(f".scisr-tmp-{HOST_TAG}-{os.getpid()}-")
