"""The scisr command: help, models, errors as one line with non-zero exit, shared options."""

from __future__ import annotations

import subprocess
import sys

from sciSR.cli import main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sciSR.cli", *args], capture_output=True, text=True)


def test_help_lists_commands() -> None:
    r = run("--help")
    assert r.returncode == 0
    for cmd in ("models", "info", "downscale", "demo"):
        assert cmd in r.stdout


def test_models_lists_registry(capsys) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "bicubic" in out and "rcan" in out and "baseline" in out


def test_errors_are_one_line_without_traceback(tmp_path) -> None:
    r = run("downscale", str(tmp_path / "missing.nc"), "-o", str(tmp_path / "o.nc"))
    assert r.returncode == 1
    assert r.stderr.startswith("scisr: error:") and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "o.nc").exists()


def test_debug_shows_traceback(tmp_path) -> None:
    r = run("--debug", "downscale", str(tmp_path / "missing.nc"), "-o", str(tmp_path / "o.nc"))
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_usage_error_is_one_line_with_exit_code_2() -> None:
    r = run("downscale")
    assert r.returncode == 2
    assert r.stderr == "scisr: error: missing argument 'SRC' (see 'scisr downscale --help')\n"


def test_debug_after_the_subcommand(tmp_path) -> None:
    r = run("downscale", str(tmp_path / "missing.nc"), "-o", str(tmp_path / "o.nc"), "--debug")
    assert r.returncode != 0 and "Traceback" in r.stderr and "no such option" not in r.stderr


def test_python_dash_m_sciSR() -> None:
    r = subprocess.run([sys.executable, "-m", "sciSR", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "Usage: scisr" in r.stdout and "batch" in r.stdout


def _options(command) -> dict[str, tuple]:
    return {
        p.name: (tuple(p.opts), tuple(p.secondary_opts), p.help, str(p.type), p.default, p.multiple)
        for p in command.params
        if p.param_type_name == "option"
    }


def test_batch_has_every_option_of_downscale_with_the_same_help() -> None:
    from sciSR.cli import PIPELINE_OPTIONS, batch_cmd, downscale_cmd

    down, batch = _options(downscale_cmd), _options(batch_cmd)
    shared = set(down) - {"out", "progress"}
    assert len(shared) == len(PIPELINE_OPTIONS) + 1  # + --debug
    for name in shared:
        assert batch.get(name) == down[name], name


def test_batch_passes_shared_options_through(tmp_path, monkeypatch) -> None:
    import sciSR.parallel

    seen = {}

    def fake(paths, out_dir, model, scale, **kw):
        seen.update(kw, model=model, scale=scale)
        return []

    monkeypatch.setattr(sciSR.parallel, "downscale_files", fake)
    args = ["batch", "a.nc", "-o", str(tmp_path), "-m", "espcn", "-s", "2", "--tile", "32", "--norm", "none"]
    assert main([*args, "--random-init", "--channels", "2", "-v", "tas", "--dtype", "source"]) == 0
    assert seen["model"] == "espcn" and seen["scale"] == 2 and seen["tile"] == 32 and seen["norm"] is None
    assert seen["pretrained"] is False and seen["in_channels"] == 2 and seen["variables"] == ["tas"]
    assert seen["dtype"] == "source"


def test_signal_handlers_are_restored_after_main() -> None:
    import signal

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    assert main(["models"]) == 0
    assert {s: signal.getsignal(s) for s in before} == before


def test_warnings_are_one_line() -> None:
    from sciSR.data import sample_path

    r = run("info", str(sample_path("coads_sst_climatology.nc")))  # its year-0 calendar cannot be decoded
    assert r.returncode == 0
    err = r.stderr.strip().splitlines()
    assert err and all(line.startswith("scisr: warning:") for line in err)


def test_constraint_option_makes_the_output_consistent(tmp_path) -> None:
    import numpy as np
    import xarray as xr

    from sciSR.data import sample_path

    src = sample_path("cmip5_tas_mpi-esm-lr_2005.nc")
    out = tmp_path / "tas_x2.nc"
    assert (
        main(["downscale", str(src), "-o", str(out), "-m", "bicubic", "-s", "2", "--constraint", "add"]) == 0
    )
    with xr.open_dataset(src) as lr, xr.open_dataset(out) as hr:
        assert hr.tas.attrs["scisr_constraint"].startswith("add")
        w = np.cos(np.deg2rad(hr.lat.values))[:, None] * np.ones(hr.sizes["lon"])  # cos φ cell weights
        t = hr.tas.isel(time=0).values
        blocks = (t * w).reshape(-1, 2, t.shape[1] // 2, 2).sum(axis=(1, 3))
        wsum = w.reshape(-1, 2, w.shape[1] // 2, 2).sum(axis=(1, 3))
        np.testing.assert_allclose(blocks / wsum, lr.tas.isel(time=0).values, rtol=1e-5)


def test_unknown_constraint_is_one_line(tmp_path) -> None:
    from sciSR.data import sample_path

    r = run(
        "downscale",
        str(sample_path("cmip5_tas_mpi-esm-lr_2005.nc")),
        "-o",
        str(tmp_path / "o.nc"),
        "-m",
        "bicubic",
        "-s",
        "2",
        "--constraint",
        "bogus",
    )
    assert r.returncode == 1 and "unknown constraint" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.nc").exists()
