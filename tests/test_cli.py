"""The scisr command: help, models, errors as one line with non-zero exit."""

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


def test_usage_error_exit_code() -> None:
    r = run("downscale")
    assert r.returncode == 2


def test_warnings_are_one_line() -> None:
    from sciSR.data import sample_path

    r = run("info", str(sample_path("coads_sst_climatology.nc")))  # its year-0 calendar cannot be decoded
    assert r.returncode == 0
    err = r.stderr.strip().splitlines()
    assert err and all(line.startswith("scisr: warning:") for line in err)
