"""Downscale a CMIP5 near-surface temperature grid ×4, lazily with dask, to NetCDF and Zarr.

Run:  python examples/climate_netcdf.py [OUTDIR]
"""

import sys
from pathlib import Path

import numpy as np
import xarray as xr

import sciSR
from sciSR.data import sample_path

out = Path(sys.argv[1] if len(sys.argv) > 1 else "example-out")
out.mkdir(exist_ok=True)

ds = xr.open_dataset(sample_path("cmip5_tas_mpi-esm-lr_2005.nc"), chunks={"time": 1})  # dask-backed
hr = sciSR.downscale(ds, model="bicubic", scale=4)  # lazy until written
print(hr["tas"])
sciSR.write(hr, out / "tas_x4.nc")
sciSR.write(hr, out / "tas_x4.zarr")

back = sciSR.open(out / "tas_x4.nc")
print("lon spacing:", float(ds.lon[1] - ds.lon[0]), "->", float(back.lon[1] - back.lon[0]))
# Gaussian latitudes are irregular: each cell is split into 4 equal parts of its bounds, and every
# new centre sits in the middle of its part, so the bounds still span -90 … 90
old_b, new_b = ds.lat_bnds.values, back.lat_bnds.values.reshape(-1, 4, 2)
parts = old_b[:, :1] + (old_b[:, 1:] - old_b[:, :1]) * np.arange(5) / 4  # 5 edges per old cell
split = np.stack([parts[:, :4], parts[:, 1:]], axis=-1)  # (cells, 4 sub-cells, lower/upper)
print("sub-cells split each Gaussian cell in 4:", bool(np.allclose(new_b, split)))
print(
    "centres in the middle of their bounds:",
    bool(np.allclose(back.lat, back.lat_bnds.mean(back.lat_bnds.dims[1]))),
)
print("extent kept:", float(back.lat_bnds.min()), float(back.lat_bnds.max()))
print("history:", back.attrs["history"].splitlines()[-1])

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(1, 2, figsize=(10, 3), layout="constrained")
ds.tas[0].plot(ax=ax[0])
back.tas[0].plot(ax=ax[1])
ax[0].set_title("CMIP5 tas, 1.875°")
ax[1].set_title("bicubic ×4")
fig.savefig(out / "tas_x4.png", dpi=100)
print("wrote", out)
