"""The example scripts run as documented and print what they promise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize(
    ("script", "expect"),
    [
        ("arrays_quickstart.py", "bicubic: (2, 40, 52) -> (2, 160, 208)"),
        ("climate_netcdf.py", "history:"),
        ("dem_geotiff.py", "transform rule T·scale(1/4): True"),
        ("mri_nifti.py", "voxel centre kept: True"),
    ],
)
def test_example_runs(script: str, expect: str, tmp_path) -> None:
    r = subprocess.run(
        [sys.executable, str(EXAMPLES / script), str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert expect in r.stdout
    assert "False" not in r.stdout
