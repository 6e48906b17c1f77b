"""Ensembles on reserved evaluation data: is the spread of a TTA ensemble a useful uncertainty?

Held-out fields (../shared/DATA.md: evaluation only, nothing here is tuned on them):

* NCEP Stage IV hourly precipitation (Debian ``r-cran-stars`` ``nc/test_stageiv_xyt.nc``), **hours
  16–22**, 4 km polar-stereographic grid, mm/h, passed as a numpy array (square cells: all eight
  augmentations are valid);
* EURO-CORDEX EUR-11 ``tas`` (Debian ``libncarg-data`` ``nug/tas_rotated_grid_EUR11.nc``), 0.11°
  rotated-pole grid, K, passed as an xarray Dataset so the augmentation rule reads the grid.

The truth is cropped to a multiple of 4 and coarsened ×4 by the block mean (area-weighted by
``cos`` of the rotated latitude for EUR-11); the LR is super-resolved by
``sciSR.downscale(..., ensemble=...)`` in fp32. Columns (unweighted means over all cells and fields):

* ``M``: members; ``SSR``: :func:`sciSR.metrics.spread_skill_ratio` (1: calibrated, < 1:
  under-dispersed); ``CRPS``: :func:`sciSR.metrics.crps_ensemble` (standard estimator);
  ``MAE mean``: MAE of the ensemble mean (the target is CRPS ≤ MAE mean);
* ``RMSE mean`` / ``RMSE det``: RMSE of the ensemble mean and of the deterministic run (member 0,
  the un-augmented input, is exactly the deterministic ``downscale`` output);
* ``outer ranks``: share of the rank histogram in its two outermost bins (``2/(M+1)`` when reliable).

Run:  python benchmarks/ensemble.py [--heldout ~/.cache/scisr-heldout] [--quick]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

import sciSR
from sciSR import metrics as M

STAGEIV = "r-cran-stars/usr/lib/R/site-library/stars/nc/test_stageiv_xyt.nc"
PR_VAR = "Total_precipitation_surface_1_Hour_Accumulation"
HOURS = list(range(16, 23))
EUR11 = "libncarg-data/usr/share/ncarg/data/nug/tas_rotated_grid_EUR11.nc"
SCALE = 4
COMMON = dict(scale=SCALE, precision="fp32", progress=False)


def coarsen(hr: np.ndarray, w: np.ndarray | None = None, s: int = SCALE) -> np.ndarray:
    """(Area-weighted) block mean over ``s×s`` blocks of the last two axes."""
    ww = np.ones_like(hr) if w is None else np.broadcast_to(w, hr.shape)
    h, wd = hr.shape[-2:]
    shape = (*hr.shape[:-2], h // s, s, wd // s, s)
    return (ww * hr).reshape(shape).sum(axis=(-3, -1)) / ww.reshape(shape).sum(axis=(-3, -1))


def stageiv(root: Path) -> tuple[np.ndarray, np.ndarray]:
    with xr.open_dataset(root / STAGEIV) as ds:
        pr = ds[PR_VAR].values[HOURS].astype(np.float64)
    h, w = pr.shape[-2] // SCALE * SCALE, pr.shape[-1] // SCALE * SCALE
    hr = pr[:, :h, :w]
    return coarsen(hr).astype(np.float32), hr


def eur11(root: Path, steps: int) -> tuple[xr.Dataset, np.ndarray]:
    with xr.open_dataset(root / EUR11) as src:
        ds = src.isel(time=slice(0, steps), height=0).load()
    ny, nx = ds.sizes["rlat"] // SCALE * SCALE, ds.sizes["rlon"] // SCALE * SCALE
    hr_ds = ds.isel(rlat=slice(0, ny), rlon=slice(0, nx))
    hr = hr_ds.tas.transpose("time", "rlat", "rlon").values.astype(np.float64)
    w = np.cos(np.deg2rad(hr_ds.rlat.values))[:, None]
    lr = coarsen(hr, w).astype(np.float32)

    def axis(v: np.ndarray) -> np.ndarray:
        d = (v[-1] - v[0]) / (v.size - 1)
        return v[0] + (SCALE - 1) / 2 * d + SCALE * d * np.arange(v.size // SCALE)

    lr_ds = xr.Dataset(
        {"tas": (("time", "rlat", "rlon"), lr, hr_ds.tas.attrs), "rotated_pole": hr_ds.rotated_pole},
        coords={
            "time": hr_ds.time,
            "rlat": ("rlat", axis(hr_ds.rlat.values), hr_ds.rlat.attrs),
            "rlon": ("rlon", axis(hr_ds.rlon.values), hr_ds.rlon.attrs),
        },
    )
    return lr_ds, hr


def row(data: str, label: str, ens: np.ndarray, hr: np.ndarray, secs: float) -> dict[str, Any]:
    mean = ens.mean(axis=0)
    hist = M.rank_histogram(ens, hr)
    return {
        "data": data,
        "ensemble": label,
        "m": ens.shape[0],
        "ssr": M.spread_skill_ratio(ens, hr),
        "crps": M.crps_ensemble(ens, hr),
        "mae_mean": float(np.mean(np.abs(mean - hr))),
        "rmse_mean": float(np.sqrt(np.mean((mean - hr) ** 2))),
        "rmse_det": float(np.sqrt(np.mean((ens[0] - hr) ** 2))),
        "outer": float(hist[0] + hist[-1]),
        "secs": secs,
    }


def run(data: str, label: str, lr: Any, hr: np.ndarray, **kw: Any) -> dict[str, Any]:
    t = time.perf_counter()
    out = sciSR.downscale(lr, **COMMON, **kw)
    secs = time.perf_counter() - t
    if isinstance(out, xr.Dataset):
        print(f"  {label}: members {out.attrs['scisr_ensemble_members']}", flush=True)
        out = out.tas.transpose("realization", "time", "rlat", "rlon").values
    return row(data, label, np.asarray(out, np.float64), hr, secs)


def print_table(rows: list[dict[str, Any]]) -> None:
    print("| data | ensemble | M | SSR | CRPS | MAE mean | RMSE mean | RMSE det | outer ranks | s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['data']} | {r['ensemble']} | {r['m']} | {r['ssr']:.3f} | {r['crps']:.4f} | "
            f"{r['mae_mean']:.4f} | {r['rmse_mean']:.4f} | {r['rmse_det']:.4f} | {r['outer']:.2f} | "
            f"{r['secs']:.0f} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--heldout", type=Path, default=Path.home() / ".cache/scisr-heldout")
    ap.add_argument("--quick", action="store_true", help="tuned weights only, one EUR-11 time step")
    ap.add_argument("--steps", type=int, default=2, help="EUR-11 time steps")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    rows = []
    pr_lr, pr_hr = stageiv(args.heldout)
    pr_runs = [("rcan precip TTA", dict(model="rcan", weights="precip", ensemble=8))]
    if not args.quick:
        pr_runs += [
            ("rcan natural TTA", dict(model="rcan", ensemble=8)),
            ("rcan weights natural+precip+temperature",
             dict(model="rcan", ensemble=["rcan_x4_c1.safetensors", "precip", "temperature"])),
        ]
    for label, kw in pr_runs:
        if isinstance(kw.get("ensemble"), list):
            kw["ensemble"] = [_weights_path(w) for w in kw["ensemble"]]
        rows.append(run("Stage IV pr h16–22", label, pr_lr, pr_hr, **kw))
        print_table(rows[-1:])
    tas_lr, tas_hr = eur11(args.heldout, 1 if args.quick else args.steps)
    tas_runs = [("rcan temperature TTA", dict(model="rcan", weights="temperature", ensemble=8))]
    if not args.quick:
        tas_runs += [("rcan natural TTA", dict(model="rcan", ensemble=8))]
    for label, kw in tas_runs:
        rows.append(run("EUR-11 tas", label, tas_lr, tas_hr, **kw))
        print_table(rows[-1:])
    print()
    print_table(rows)


def _weights_path(w: str) -> str:
    """Shipped weight file names become paths; tags stay tags."""
    if w.endswith(".safetensors"):
        return str(Path(sciSR.__file__).parent / "models" / "weights" / w)
    return w


if __name__ == "__main__":
    main()
