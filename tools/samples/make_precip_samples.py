"""Build the shipped Stage IV and ETOPO5 samples of the precipitation recipe from the training pool.

Run once by a maintainer (``python tools/samples/make_precip_samples.py``); reads
``~/.cache/scisr-pool`` (``tools/fetch-training-pool.sh``) and writes two small NetCDF files into
``recipes/hydrology/data`` (the precipitation recipe's own data, provenance in its PROVENANCE.md):

* ``stageiv_florence_h00_15.nc``: NCEP Stage IV hourly precipitation (r-cran-stars
  ``test_stageiv_xyt.nc``, Apache-2.0), hours 0–15 only (hours 16–22 are reserved for evaluation),
  the full 118×87 grid with its 2-D ``lat``/``lon``; values and attributes unchanged.
* ``etopo5_carolinas.nc``: ETOPO5 relief (``ROSE``, metres; NOAA, public domain) cropped to the
  Stage IV domain plus 1°, source grid and ascending latitude kept.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

POOL = Path.home() / ".cache" / "scisr-pool"
OUT = Path(__file__).resolve().parents[2] / "recipes" / "hydrology" / "data"


def main() -> None:
    with xr.open_dataset(POOL / "precip" / "test_stageiv_xyt.nc") as ds:
        pr = ds.isel(time=slice(0, 16)).load()
    pr.attrs["history"] = (
        pr.attrs.get("history", "") + "\nsciSR sample: hours 0-15 of r-cran-stars test_stageiv_xyt.nc"
    ).strip()
    enc = {v: {"zlib": True, "complevel": 9} for v in pr.data_vars}
    pr.to_netcdf(OUT / "stageiv_florence_h00_15.nc", encoding=enc)
    lat, lon = pr["lat"].values, pr["lon"].values % 360.0
    with xr.open_dataset(POOL / "dem" / "etopo5.cdf") as e:
        z = e["ROSE"]
        ydim, xdim = z.dims
        ey, ex = e[ydim].values, e[xdim].values
        iy = np.where((ey >= lat.min() - 1) & (ey <= lat.max() + 1))[0]
        ix = np.where((ex >= lon.min() - 1) & (ex <= lon.max() + 1))[0]
        crop = e[["ROSE"]].isel({ydim: slice(iy[0], iy[-1] + 1), xdim: slice(ix[0], ix[-1] + 1)}).load()
    crop.attrs["history"] = "sciSR sample: ETOPO5 (ferret-datasets etopo5.cdf) around the Stage IV domain"
    crop.to_netcdf(OUT / "etopo5_carolinas.nc", encoding={"ROSE": {"zlib": True, "complevel": 9}})


if __name__ == "__main__":
    main()
