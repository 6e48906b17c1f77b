"""Peak memory and throughput of file-to-file downscaling (streamed GeoTIFF / NetCDF / Zarr).

Each case runs in a fresh subprocess; its peak resident set size is that child's own
``ru_maxrss`` (``resource.getrusage(RUSAGE_SELF)`` at its end, Linux: KiB), so imports (torch,
xarray, GDAL) are included. Throughput is HR output megapixels per second of the
downscale call (input writing excluded).

Usage::

    .venv/bin/python benchmarks/memory.py                      # 4000×4000 float32 GeoTIFF ×4, bicubic + espcn
    .venv/bin/python benchmarks/memory.py --size 4000 --models bicubic --formats tif nc zarr
    .venv/bin/python benchmarks/memory.py --eager              # the same calls with the whole file in memory

Targets (issue "Scale out"): peak RSS < 800 MB (aim < 500 MB) for ×4 of a 4000×4000 float32 GeoTIFF.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import sciSR
src, out, model, scale, eager = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1"
t = time.perf_counter()
if eager:
    ds = sciSR.open(src).load()
    sciSR.write(sciSR.downscale(ds, model=model, scale=scale, progress=False), out)
else:
    sciSR.downscale(src, model=model, scale=scale, out=out, progress=False)
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_input(path: Path, size: int, fmt: str, steps: int = 1) -> None:
    """A smooth float32 field of ``size × size`` (``steps`` time steps for NetCDF/Zarr), written lazily."""
    import numpy as np

    yy = np.linspace(0, 8 * np.pi, size, dtype=np.float32)[:, None]
    if fmt == "tif":
        import rasterio
        from rasterio.transform import from_origin
        from rasterio.windows import Window

        prof = dict(
            driver="GTiff",
            width=size,
            height=size,
            count=1,
            dtype="float32",
            crs="EPSG:3857",
            transform=from_origin(0, 0, 100, 100),
            tiled=True,
            blockxsize=256,
            blockysize=256,
        )
        with rasterio.open(path, "w", **prof) as dst:
            for y0 in range(0, size, 512):
                rows = yy[y0 : y0 + 512]
                xx = np.linspace(0, 6 * np.pi, size, dtype=np.float32)[None, :]
                dst.write((np.sin(rows) * np.cos(xx) * 10 + 280)[None], window=Window(0, y0, size, len(rows)))
        return
    import dask.array as dsa
    import xarray as xr

    x = dsa.linspace(0, 6 * np.pi, size, chunks=size, dtype=np.float32)
    field = dsa.sin(dsa.from_array(yy[:, 0], chunks=512))[:, None] * dsa.cos(x)[None, :] * 10 + 280
    data = dsa.stack([field.astype(np.float32) + t for t in range(steps)]).rechunk((1, 512, size))
    ds = xr.Dataset(
        {"tas": (("time", "lat", "lon"), data, {"units": "K"})},
        coords={
            "time": np.arange(steps),
            "lat": ("lat", np.linspace(-60, 60, size), {"units": "degrees_north"}),
            "lon": ("lon", np.linspace(0, 120, size), {"units": "degrees_east"}),
        },
    )
    if fmt == "nc":
        ds.to_netcdf(path, encoding={"tas": {"chunksizes": (1, 512, 512)}})
    else:
        ds.to_zarr(path, mode="w")


def run_case(src: Path, out: Path, model: str, scale: int, eager: bool) -> dict[str, float]:
    """Run one call in a child process; return its peak RSS (MiB) and timing."""
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(src), str(out), model, str(scale), "1" if eager else "0"],
        capture_output=True,
        text=True,
        env={"SCISR_NO_PROGRESS": "1", **__import__("os").environ},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{model} on {src.name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=4000, help="LR edge in pixels")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--steps", type=int, default=1, help="time steps of the NetCDF/Zarr input")
    ap.add_argument("--models", nargs="+", default=["bicubic", "espcn"])
    ap.add_argument("--formats", nargs="+", default=["tif"], choices=["tif", "nc", "zarr"])
    ap.add_argument("--eager", action="store_true", help="load the input and write the output whole")
    ap.add_argument("--dir", default=None, help="work directory (default: a temporary one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for fmt in args.formats:
            src = Path(tmp) / f"in.{fmt}"
            make_input(src, args.size, fmt, args.steps)
            in_mb = sum(f.stat().st_size for f in ([src] if src.is_file() else src.rglob("*"))) / 2**20
            for model in args.models:
                out = Path(tmp) / f"out_{model}.{fmt}"
                rec = run_case(src, out, model, args.scale, args.eager)
                hr_mpx = args.steps * (args.size * args.scale) ** 2 / 1e6
                rec.update(
                    format=fmt,
                    model=model,
                    lr=f"{args.size}x{args.size}",
                    scale=args.scale,
                    steps=args.steps,
                    input_mib=round(in_mb, 1),
                    hr_mpx=hr_mpx,
                    mpx_per_s=round(hr_mpx / rec["seconds"], 2),
                    mode="eager" if args.eager else "streamed",
                )
                rec["seconds"] = round(rec["seconds"], 1)
                rec["peak_rss_mib"] = round(rec["peak_rss_mib"], 0)
                print(json.dumps(rec), flush=True)
                if out.is_dir():
                    import shutil

                    shutil.rmtree(out)
                else:
                    out.unlink(missing_ok=True)


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"# total {time.perf_counter() - t0:.0f} s", file=sys.stderr)
