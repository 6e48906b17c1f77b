"""Rebuild the shipped GeoTIFF, NIfTI and photo samples from the training pool (DATA.md).

Run once by a maintainer (not at run time)::

    tools/fetch-training-pool.sh          # ETOPO5 + photos into ~/.cache/scisr-pool
    pip install nilearn                              # only to read the bundled MNI152 template
    python tools/samples/make_raster_samples.py

The exact crops written here are recorded in ``sciSR/data/samples/PROVENANCE.md``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

POOL = Path(os.environ.get("SCISR_POOL", Path.home() / ".cache" / "scisr-pool"))
OUT = Path(__file__).resolve().parents[2] / "sciSR" / "data" / "samples"

# ETOPO5 crop (western Alps, Ligurian Sea, Corsica): centre rows/cols of the 5' grid.
ETOPO_ROWS = slice(1560, 1656)  # lat centres -90 + i/12: 40.0 ... 47.91667 (ascending in the source)
ETOPO_COLS = slice(60, 188)  # lon centres j/12: 5.0 ... 15.58333
MNI_SLICES = slice(95, 105)  # axial slices k (z = -72 + k mm)
PHOTO = ("LadyBird.jpg", (1672, 712, 1928, 968))  # (left, upper, right, lower) PIL box


def make_dem() -> Path:
    """ETOPO5 crop → north-up int16 GeoTIFF with the exact 5′ georeferencing."""
    import rasterio
    import xarray as xr
    from rasterio.transform import Affine

    with xr.open_dataset(POOL / "dem" / "etopo5.cdf", decode_times=False) as ds:
        rose = ds["ROSE"].isel(ETOPO05_Y=ETOPO_ROWS, ETOPO05_X=ETOPO_COLS)
        lat = rose["ETOPO05_Y"].values
        vals = rose.values
    d = 1.0 / 12.0
    lat0 = -90.0 + ETOPO_ROWS.start * d
    lon0 = ETOPO_COLS.start * d
    assert abs(lat[0] - lat0) < 1e-9
    data = np.flipud(np.rint(vals)).astype(np.int16)  # ascending lat → north-up rows
    north = lat0 + (data.shape[0] - 1) * d + d / 2
    transform = Affine(d, 0.0, lon0 - d / 2, 0.0, -d, north)
    path = OUT / "etopo5_alps.tif"
    profile = dict(
        driver="GTiff",
        width=data.shape[1],
        height=data.shape[0],
        count=1,
        dtype="int16",
        crs="EPSG:4326",
        transform=transform,
        tiled=True,
        blockxsize=64,
        blockysize=64,
        compress="deflate",
        predictor=2,
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
        dst.set_band_description(1, "elevation")
        dst.update_tags(1, units="m", long_name="Relief Of the Surface of the Earth")
        dst.update_tags(
            AREA_OR_POINT="Area",
            source="ETOPO5 (NOAA NGDC) via Debian ferret-datasets etopo5.cdf",
            crop="rows 1560:1656, cols 60:188 of the 2161x4320 5-arc-minute grid",
        )
    return path


def make_nifti() -> Path:
    """Ten axial slices of the MNI152 (2009a sym) T1 template at 1 mm, as int16 NIfTI-1."""
    import nibabel as nib
    import nilearn

    src = (
        Path(nilearn.__file__).parent
        / "datasets"
        / "data"
        / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
    )
    img = nib.load(src)
    data = np.asanyarray(img.dataobj)[:, :, MNI_SLICES].astype(np.int16)
    affine = img.affine.copy()
    affine[:3, 3] = img.affine[:3, :3] @ np.array([0, 0, MNI_SLICES.start]) + img.affine[:3, 3]
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.int16)
    out = nib.Nifti1Image(data, affine, hdr)
    out.set_sform(affine, code=int(img.header["sform_code"]))
    out.set_qform(affine, code=int(img.header["sform_code"]))
    out.header.set_xyzt_units("mm")
    out.header["descrip"] = b"MNI152 2009a sym T1, axial slices 95:105"
    path = OUT / "mni152_t1_slab.nii.gz"
    nib.save(out, path)
    return path


def make_photo() -> Path:
    """A textured 256x256 RGB crop of a mate-backgrounds photo, saved lossless as PNG."""
    from PIL import Image

    name, box = PHOTO
    with Image.open(POOL / "photos" / name) as im:
        crop = im.convert("RGB").crop(box)
    path = OUT / "ladybird_crop.png"
    crop.save(path, optimize=True)
    return path


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for fn in (make_dem, make_nifti, make_photo):
        p = fn()
        print(f"{p.relative_to(OUT.parents[2])}: {p.stat().st_size} bytes")
