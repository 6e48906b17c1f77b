"""Throughput of ``sciSR.downscale`` on a space-chunked, lazily opened array with a dask
``LocalCluster`` of 1 and of 2 worker processes (1 thread each), shipped ``rcan`` ×4.

Usage: ``python benchmarks/dask_scaling.py [--size 384] [--chunk 192] [--tile 64]``.
Prints one table row per worker count and the ratio of throughputs (LR megapixels per second).
The model is CPU-bound; on a shared machine the figures are noisy.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import xarray as xr


def make_store(path: Path, size: int) -> None:
    """A smooth random field of ``size × size`` written to Zarr."""
    rng = np.random.default_rng(0)
    k = np.fft.fftfreq(size)
    spec = rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size))
    spec /= 1e-3 + np.hypot(*np.meshgrid(k, k)) ** 1.5
    z = np.real(np.fft.ifft2(spec)).astype(np.float32)
    ds = xr.Dataset({"z": (("y", "x"), z)}, coords={"y": np.arange(size) * 1.0, "x": np.arange(size) * 1.0})
    ds.to_zarr(path, mode="w")


def run(path: Path, workers: int, chunk: int, tile: int) -> float:
    """Seconds to compute the ×4 result with ``workers`` processes (cluster start not counted)."""
    from dask.distributed import Client, LocalCluster

    import sciSR

    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cl,
        Client(cl),
    ):
        ds = xr.open_zarr(path, chunks={"y": chunk, "x": chunk})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            out = sciSR.downscale(ds, model="rcan", scale=4, tile=tile, progress=False)
        t0 = time.perf_counter()
        out.z.data.compute()
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--chunk", type=int, default=192)
    ap.add_argument("--tile", type=int, default=64)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "field.zarr"
        make_store(path, args.size)
        mpx = args.size**2 / 1e6
        rows = {n: run(path, n, args.chunk, args.tile) for n in (1, 2)}
    print(f"rcan ×4, {args.size}² LR, chunks {args.chunk}², tile {args.tile}")
    print("| workers | seconds | LR Mpx/s |")
    print("|---|---|---|")
    for n, sec in rows.items():
        print(f"| {n} | {sec:.1f} | {mpx / sec:.4f} |")
    print(f"ratio 2 vs 1 workers: {rows[1] / rows[2]:.2f}×")


if __name__ == "__main__":
    main()
