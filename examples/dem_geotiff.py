"""Super-resolve an ETOPO5 DEM crop ×4 with the shipped ESPCN and check the georeferencing.

Run:  python examples/dem_geotiff.py [OUTDIR]
"""

import sys
from pathlib import Path

import rasterio
from rasterio.transform import Affine

import sciSR
from sciSR.data import sample_path

out = Path(sys.argv[1] if len(sys.argv) > 1 else "example-out")
out.mkdir(exist_ok=True)
src = sample_path("etopo5_alps.tif")

sciSR.downscale(src, model="espcn", scale=4, out=out / "etopo5_alps_x4.tif")

with rasterio.open(src) as a, rasterio.open(out / "etopo5_alps_x4.tif") as b:
    print("size:", (a.height, a.width), "->", (b.height, b.width))
    print("CRS kept:", a.crs == b.crs, "| bounds kept:", a.bounds == b.bounds)
    print("transform rule T·scale(1/4):", b.transform == a.transform @ Affine.scale(1 / 4))
