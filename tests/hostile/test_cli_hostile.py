"""The command line under hostile use: every failure is one line with the right exit status."""

from __future__ import annotations

import pytest

import sciSR
from sciSR.cli import main

from .conftest import NC, TIF, one_line, run_scisr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["downscale"], "missing argument 'SRC'"),
        (["downscale", "x.nc"], "missing option '-o'"),
        (["downscale", "x.nc", "-o", "y.nc", "--bogus"], "no such option"),
        (["downscale", "x.nc", "-o", "y.nc", "-s", "two"], "'two' is not a valid integer"),
        (["downscale", "x.nc", "-o", "y.nc", "-s", "0"], "0 is not in the range"),
        (["downscale", "x.nc", "-o", "y.nc", "-s", "2.5"], "'2.5' is not a valid integer"),
        (["downscale", "x.nc", "-o", "y.nc", "--blend", "smear"], "'smear' is not one of"),
        (["downscale", "x.nc", "-o", "y.nc", "--tile", "-4"], "-4 is not in the range"),
        (["frobnicate"], "no such command 'frobnicate'"),
        (["batch", "-o", "out"], "missing argument 'SOURCES...'"),
        (["info"], "missing argument 'PATH'"),
    ],
)
def test_usage_errors_are_one_line_with_status_2(guard, capsys, args, words) -> None:
    assert main(args) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("scisr: error:") and words in line and "--help" in line


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["downscale", "{root}/missing.nc", "-o", "{root}/o.nc"], "no such file"),
        (["downscale", "{nc}", "-o", "{root}/o.xyz"], "unknown extension '.xyz'"),
        (["downscale", "{nc}", "-o", "{root}/o.nc", "-m", "bogus"], "unknown model 'bogus'"),
        (["downscale", "{nc}", "-o", "{root}/o.nc", "-m", "vdsr"], "--random-init"),
        (["downscale", "{nc}", "-o", "{root}/o.nc", "-v", "nope"], "not in the dataset"),
        (["downscale", "{nc}", "-o", "{root}/o.nc", "--dtype", "bogus"], "unknown output dtype"),
        (["downscale", "{nc}", "-o", "{root}/o.nc", "-w", "{root}/none.pth"], "none.pth"),
        (["info", "{root}/missing.tif"], "no such file"),
        (["batch", "{nc}", "-o", "{root}/out", "-m", "bogus"], "1 of 1 files failed"),
    ],
)
def test_errors_are_one_line_with_status_1(guard, capsys, args, words) -> None:
    nc = guard.sample(NC)
    argv = [a.format(root=guard.root, nc=nc) for a in args]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("scisr: error:") and words in "\n".join(err)
    if argv[0] != "batch":
        one_line("\n".join(err))
    assert not (guard.root / "o.nc").exists()


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_before_or_after_the_subcommand(guard, where) -> None:
    args = ["info", str(guard.root / "missing.nc")]
    args = ["--debug", *args] if where == "before" else [*args, "--debug"]
    r = run_scisr(*args)
    assert r.returncode == 1 and "Traceback" in r.stderr and "FileNotFoundError" in r.stderr


def test_python_dash_m_runs_the_command(guard) -> None:
    src = guard.sample(TIF)
    out = guard.root / "o.tif"
    r = run_scisr("downscale", str(src), "-o", str(out), "-s", "2")
    assert r.returncode == 0, r.stderr
    assert sciSR.open(out).sizes["x"] == 256
    assert run_scisr("--version").stdout.startswith("scisr")


def test_batch_failure_is_status_1_not_the_usage_status(guard, capsys) -> None:
    bad = guard.file("bad.tif", b"II*\0garbage")
    assert main(["batch", str(bad), "-o", str(guard.root / "out"), "-s", "2"]) == 1
    assert (
        capsys.readouterr().err.strip().splitlines()[-1] == "scisr: error: 1 of 1 files failed (listed above)"
    )


def test_dash_dash_keeps_a_file_named_like_an_option(guard, capsys, monkeypatch) -> None:
    guard.sample(TIF, "--debug.tif")
    monkeypatch.chdir(guard.root)
    assert main(["info", "--", "--debug.tif"]) == 0
    assert "format: geotiff" in capsys.readouterr().out
