"""Hostile-input suite: every case checks its inputs byte for byte and scans for leftovers.

The ``guard`` fixture records a checksum of every input a case registers (files, directory
trees such as Zarr stores, symlinks) plus the shipped samples, and after the case asserts that
none changed and that no temporary output (``.scisr-*``) is left anywhere under the case's
folder or beside the samples.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sciSR.data import sample_path

SAMPLES_DIR = sample_path("etopo5_alps.tif").parent
NC = "cmip5_tas_mpi-esm-lr_2005.nc"
NC_COADS = "coads_sst_climatology.nc"
TIF = "etopo5_alps.tif"
PNG = "ladybird_crop.png"
NII = "mni152_t1_slab.nii.gz"


def checksum(path: Path) -> str:
    """Content hash of a file, a symlink (its text and its target) or a directory tree."""
    h = hashlib.sha256()
    if path.is_symlink():
        h.update(b"link:" + os.readlink(path).encode())
    if not path.exists():
        return h.hexdigest() + ":missing"
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            h.update(str(p.relative_to(path)).encode())
            if p.is_file():
                h.update(p.read_bytes())
    else:
        h.update(path.read_bytes())
    return h.hexdigest()


def leftovers(*roots: Path) -> list[Path]:
    """Temporary outputs of sciSR (names starting with ``.scisr-``) under ``roots``."""
    found: list[Path] = []
    for root in roots:
        if root.exists():
            found += [p for p in root.rglob(".scisr-*")]
    return found


class Guard:
    """Inputs of one case, their checksums, and the folder scanned for leftovers."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sums: dict[Path, str] = {}
        self.watch(*sorted(SAMPLES_DIR.iterdir()))

    def watch(self, *paths: Path) -> None:
        """Record the current checksum of ``paths`` (they must be unchanged at the end)."""
        for p in paths:
            self.sums[Path(p)] = checksum(Path(p))

    def sample(self, name: str, as_name: str | None = None, folder: Path | None = None) -> Path:
        """Copy a shipped sample into the case folder (optionally renamed) and watch it."""
        d = folder or self.root
        d.mkdir(parents=True, exist_ok=True)
        dst = d / (as_name or name)
        shutil.copy(sample_path(name), dst)
        self.watch(dst)
        return dst

    def file(self, name: str, data: bytes) -> Path:
        """A file with the given bytes in the case folder, watched."""
        p = self.root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        self.watch(p)
        return p

    def check(self) -> None:
        changed = [str(p) for p, s in self.sums.items() if checksum(p) != s]
        assert not changed, f"inputs changed: {changed}"
        left = leftovers(self.root, SAMPLES_DIR)
        assert not left, f"temporary outputs left behind: {left}"


@pytest.fixture
def guard(tmp_path: Path) -> Iterator[Guard]:
    g = Guard(tmp_path)
    yield g
    g.check()


def one_line(text: str) -> str:
    """The single line of an error output (fails when there are more)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got {len(lines)}: {text!r}"
    return lines[0]


def run_scisr(*args: str, cwd: Path | None = None, **kw: object) -> subprocess.CompletedProcess:
    """``python -m sciSR ARGS`` in a subprocess (text output captured)."""
    env = dict(os.environ, SCISR_NO_PROGRESS="1", PYTHONWARNINGS="ignore::DeprecationWarning")
    return subprocess.run(
        [sys.executable, "-m", "sciSR", *args], capture_output=True, text=True, cwd=cwd, env=env, **kw
    )
