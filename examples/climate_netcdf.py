"""Downscale a CMIP5 near-surface temperature grid ×4, lazily with dask, to NetCDF and Zarr.

Run:  python examples/climate_netcdf.py [OUTDIR]
"""

import sys
from pathlib import Path

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
print("lat spacing:", float(ds.lat[1] - ds.lat[0]), "->", float(back.lat[1] - back.lat[0]))
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
