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
        (
            "arrays_quickstart.py",
            # 4×10 masked cells ×4² sub-cells; the rest finite
            ["bicubic: (2, 40, 52) -> (2, 160, 208) float32 | NaN cells carried: 640", "finite: 65920"],
        ),
        (
            "climate_netcdf.py",
            [
                "lon spacing: 1.875 -> 0.46875",
                "sub-cells split each Gaussian cell in 4: True",
                "centres in the middle of their bounds: True",
                "extent kept: -90.0 90.0",
                "sciSR 0.1.0 downscale model=bicubic scale=4",
            ],
        ),
        (
            "dem_geotiff.py",
            ["size: (96, 128) -> (384, 512)", "CRS kept: True | bounds kept: True", "T·scale(1/4): True"],
        ),
        (
            "mri_nifti.py",
            [
                "shape: (197, 233, 10) -> (394, 466, 10) | zooms: (1.0, 1.0, 1.0) -> (0.5, 0.5, 1.0)",
                "voxel centre kept: True",
                "sform code kept: True",
            ],
        ),
    ],
)
def test_example_runs(script: str, expect: list[str], tmp_path) -> None:
    r = subprocess.run(
        [sys.executable, str(EXAMPLES / script), str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    for line in expect:
        assert line in r.stdout, f"{script}: {line!r} not printed:\n{r.stdout[-2000:]}"
    assert "False" not in r.stdout
