"""Rebuild the NetCDF samples of sciSR/data/samples from the training pool (maintainers only).

Run from the repository root after tools/fetch-training-pool.sh; documented in
sciSR/data/samples/PROVENANCE.md. Values, coordinates and attributes are copied unchanged (netCDF4
with auto mask/scale off); only the record (time) dimension is cut and one history line added.
"""

from pathlib import Path

import netCDF4

POOL = Path.home() / ".cache/scisr-pool/climate"
OUT = Path("sciSR/data/samples")


def crop(src, dst, keep_vars, tslice, fmt, note):
    with netCDF4.Dataset(src) as s, netCDF4.Dataset(dst, "w", format=fmt) as d:
        s.set_auto_maskandscale(False)
        attrs = {k: s.getncattr(k) for k in s.ncattrs()}
        hist = attrs.get("history", "")
        attrs["history"] = (hist + "\n" if hist else "") + note
        d.setncatts(attrs)
        for name, dim in s.dimensions.items():
            n = len(range(*tslice.indices(len(dim)))) if dim.isunlimited() else len(dim)
            d.createDimension(name, None if dim.isunlimited() else n)
        for name, v in s.variables.items():
            if name not in keep_vars:
                continue
            fill = v.getncattr("_FillValue") if "_FillValue" in v.ncattrs() else None
            nv = d.createVariable(name, v.dtype, v.dimensions, fill_value=fill)
            nv.setncatts({k: v.getncattr(k) for k in v.ncattrs() if k != "_FillValue"})
            sel = tuple(tslice if s.dimensions[dn].isunlimited() else slice(None) for dn in v.dimensions)
            nv[...] = v[sel]


crop(
    POOL / "tas_rectilinear_grid_2D.nc",
    OUT / "cmip5_tas_mpi-esm-lr_2005.nc",
    ["lon", "lon_bnds", "lat", "lat_bnds", "time", "time_bnds", "tas"],
    slice(0, 3),
    "NETCDF3_CLASSIC",
    "sciSR sample: time steps 0-2 (Jan-Mar 2005) of libncarg-data nug/tas_rectilinear_grid_2D.nc",
)
crop(
    POOL / "coads_climatology.cdf",
    OUT / "coads_sst_climatology.nc",
    ["COADSX", "COADSY", "TIME", "SST"],
    slice(0, 3),
    "NETCDF3_CLASSIC",
    "sciSR sample: SST, months 0-2 (Jan-Mar) of ferret-datasets coads_climatology.cdf",
)
