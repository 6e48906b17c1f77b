"""Accuracy cost of reduced precision on real fields: does the fast path change the science?

For each field (DEMs and climate grids from the training pool, see ../shared/DATA.md; the shipped
samples when the pool is absent) the truth is coarsened by block means and super-resolved with the
shipped ESPCN weights at ×2 and ×4:

* ``fp32``: ``precision="fp32"``;
* ``bf16``: sciSR's reduced-precision path (bf16 autocast, image-space layers in fp32);
* ``bf16 whole``: the whole network under bf16 autocast (what a plain ``torch.autocast`` gives);

and compared with the truth (RMSE, and the change against fp32 in percent), with fp32 (RMS
difference), and for terraces (share of identical neighbouring values). ``auto`` is what the
default call runs on this machine. ESPCN has no skip connection, so it is the hardest case for
bf16: every value passes through its bf16 middle layer.

Run:  python benchmarks/precision.py [--pool ~/.cache/scisr-pool]
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

import sciSR
from sciSR.pipeline import Pipeline
from sciSR.precision import release_fp32


def block_mean(a: np.ndarray, s: int) -> np.ndarray:
    h, w = a.shape[-2] // s * s, a.shape[-1] // s * s
    a = a[..., :h, :w]
    return a.reshape(*a.shape[:-2], h // s, s, w // s, s).mean(axis=(-3, -1))


def identical_share(y: np.ndarray) -> float:
    pairs = [(np.diff(y, axis=-1) == 0).ravel(), (np.diff(y, axis=-2) == 0).ravel()]
    return float(np.mean(np.concatenate(pairs)))


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a.astype(np.float64) - b) ** 2)))


def fields(pool: Path) -> dict[str, tuple[np.ndarray, str]]:
    """Named 2-D (or stacked) real fields with units."""
    import xarray as xr

    out: dict[str, tuple[np.ndarray, str]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if (pool / "DONE").exists():
            e5 = xr.open_dataset(pool / "dem/etopo5.cdf")["ROSE"].values.astype(np.float32)
            out["ETOPO5 Himalaya DEM"] = (e5[1300:1812, 900:1412], "m")
            out["ETOPO5 N. America DEM"] = (e5[1500:1756, 3000:3256], "m")
            tas = xr.open_dataset(pool / "climate/tas_rectilinear_grid_2D.nc")["tas"].values[:4]
            out["CMIP5 tas (4 months)"] = (tas.astype(np.float32), "K")
            pr = xr.open_dataset(pool / "precip/test_stageiv_xyt.nc")
            v = pr["Total_precipitation_surface_1_Hour_Accumulation"].values[:16]
            out["Stage IV precip (hours 0-15)"] = (v.astype(np.float32), "mm/h")
        try:
            import matplotlib.cbook as cbook

            dem = cbook.get_sample_data("jacksboro_fault_dem.npz")["elevation"].astype(np.float32)
            out["Jacksboro 3″ DEM"] = (dem, "m")
        except (OSError, KeyError):
            pass
        from sciSR.data import sample_path

        alps = sciSR.open(sample_path("etopo5_alps.tif"))["band_data"].values[0]
        out["sample: ETOPO5 Alps DEM"] = (alps.astype(np.float32), "m")
        tas = sciSR.open(sample_path("cmip5_tas_mpi-esm-lr_2005.nc"))["tas"].values
        out["sample: CMIP5 tas"] = (tas.astype(np.float32), "K")
    return out


def run_whole_bf16(lr: np.ndarray, scale: int) -> np.ndarray:
    pipe = Pipeline.build("espcn", scale, precision="bf16", progress=False)
    release_fp32(pipe.model)
    block = lr.reshape(-1, 1, *lr.shape[-2:])
    return pipe.run(block, pipe.fit(block)).reshape(*lr.shape[:-2], *(d * scale for d in lr.shape[-2:]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", type=Path, default=Path.home() / ".cache/scisr-pool")
    args = ap.parse_args()
    auto = Pipeline.build("espcn", 4).engine.precision
    print(f"shipped ESPCN; the default call (precision='auto') runs {auto} on this machine")
    print(
        f"{'field':30} {'s':>2} {'unit':>5} {'bicubic':>9} {'fp32':>9} {'bf16':>9} {'Δ%':>7} "
        f"{'|bf16-fp32|':>11} {'whole bf16':>10} {'Δ%':>7} {'identical neighbours fp32/bf16/whole':>38}"
    )
    for name, (truth_full, unit) in fields(args.pool).items():
        for s in (2, 4):
            lr = block_mean(truth_full, s)
            truth = truth_full[..., : lr.shape[-2] * s, : lr.shape[-1] * s]
            yb = sciSR.downscale(lr, model="bicubic", scale=s)
            y32 = sciSR.downscale(lr, model="espcn", scale=s, precision="fp32")
            y16 = sciSR.downscale(lr, model="espcn", scale=s, precision="bf16")
            yw = run_whole_bf16(lr, s)
            e32, e16, ew = rmse(y32, truth), rmse(y16, truth), rmse(yw, truth)
            print(
                f"{name:30} {s:2d} {unit:>5} {rmse(yb, truth):9.4g} {e32:9.4g} {e16:9.4g} "
                f"{100 * (e16 / e32 - 1):+6.2f}% {rmse(y16, y32):11.3g} "
                f"{ew:10.4g} {100 * (ew / e32 - 1):+6.2f}% "
                f"{100 * identical_share(y32):11.2f}% {100 * identical_share(y16):7.2f}% "
                f"{100 * identical_share(yw):7.2f}%",
                flush=True,
            )


if __name__ == "__main__":
    main()
