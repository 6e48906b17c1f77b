"""Consistency constraints on reserved evaluation data: exact coarse totals at no cost in RMSE?

Held-out fields (../shared/DATA.md: evaluation only, nothing here is tuned on them):

* NCEP Stage IV hourly precipitation (Debian ``r-cran-stars`` ``nc/test_stageiv_xyt.nc``), **hours
  16–22**, 4 km polar-stereographic grid (uniform cell weights), mm/h;
* EURO-CORDEX EUR-11 ``tas`` (Debian ``libncarg-data`` ``nug/tas_rotated_grid_EUR11.nc``), 0.11°
  rotated-pole grid, K, downscaled as an xarray Dataset so the constraint uses ``cos`` of the rotated
  latitude as area weights.

The truth is cropped to a multiple of 4 and coarsened ×4 by the (area-weighted) block mean; the LR
is super-resolved by ``sciSR.downscale`` (fp32) without and with each constraint. Columns:

* ``RMSE``: against the truth (mean over fields); ``vs none``: change against the same model
  without a constraint, in percent;
* ``softmax`` uses the log of the output as logits (weights trained without the layer), which
  makes it equal to ``mult``; ``softmax/logits`` takes the network's normalized output as the logits,
  the layer a model trained with ``TrainConfig(constraint="softmax")`` has;
* ``consistency``: ``max |coarsen(SR) − LR| / max |LR|`` with the constraint's own coarsening (the
  area-weighted block mean), over all fields.

Run:  python benchmarks/constraints.py [--heldout ~/.cache/scisr-heldout] [--quick]
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

import sciSR
from sciSR import constraints as C
from sciSR.grid import Grid

STAGEIV = "r-cran-stars/usr/lib/R/site-library/stars/nc/test_stageiv_xyt.nc"
PR_VAR = "Total_precipitation_surface_1_Hour_Accumulation"
HOURS = range(16, 23)
EUR11 = "libncarg-data/usr/share/ncarg/data/nug/tas_rotated_grid_EUR11.nc"
SCALE = 4
#: ``softmax/logits`` takes the network's normalized output as the logits (the layer of a model
#: trained with it) instead of the log of the output (the default for weights trained without it)
KINDS = (None, "add", "mult", "softmax", "softmax/logits")


def _constraint(kind: str | None) -> str | C.Constraint | None:
    return C.Constraint("softmax", logits="output") if kind == "softmax/logits" else kind


def weighted_coarsen(hr: np.ndarray, w: np.ndarray | None, s: int = SCALE) -> np.ndarray:
    """Area-weighted block mean (uniform when ``w`` is ``None``); ``w`` broadcastable to ``hr``."""
    ww = np.ones_like(hr) if w is None else np.broadcast_to(w, hr.shape)
    h, wd = hr.shape[-2:]
    shape = (*hr.shape[:-2], h // s, s, wd // s, s)
    return (ww * hr).reshape(shape).sum(axis=(-3, -1)) / ww.reshape(shape).sum(axis=(-3, -1))


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def stageiv_rows(root: Path, models: list[tuple[str, str | None]]) -> list[dict]:
    with xr.open_dataset(root / STAGEIV) as ds:
        pr = ds[PR_VAR].values[list(HOURS)].astype(np.float64)
    h, w = pr.shape[-2] // SCALE * SCALE, pr.shape[-1] // SCALE * SCALE
    hr = pr[:, :h, :w]
    lr = weighted_coarsen(hr, None)
    rows = []
    for model, weights in models:
        base = None
        for kind in KINDS:
            sr = sciSR.downscale(
                lr,
                model=model,
                scale=SCALE,
                weights=weights,
                precision="fp32",
                progress=False,
                constraint=_constraint(kind),
            )
            rows.append(_row("Stage IV pr h16–22", model, weights, kind, sr, hr, lr, None, base))
            base = rows[-1]["rmse"] if kind is None else base
    return rows


def eur11_rows(root: Path, models: list[tuple[str, str | None]]) -> list[dict]:
    with xr.open_dataset(root / EUR11) as src:
        ds = src.isel(time=0, height=0).load()
    s = SCALE
    ny, nx = ds.sizes["rlat"] // s * s, ds.sizes["rlon"] // s * s
    hr_ds = ds.isel(rlat=slice(0, ny), rlon=slice(0, nx))
    hr = hr_ds.tas.values.astype(np.float64)
    w_hr = C.latitude_weights(hr_ds.rlat.values)[:, None]  # cos(rotated latitude): the cell areas
    lr = weighted_coarsen(hr, w_hr)
    lr_ds = xr.Dataset(
        {
            "tas": (("rlat", "rlon"), lr.astype(np.float32), hr_ds.tas.attrs),
            "rotated_pole": hr_ds.rotated_pole,
        },
        coords={
            "rlat": ("rlat", _coarse_axis(hr_ds.rlat.values, s), hr_ds.rlat.attrs),
            "rlon": ("rlon", _coarse_axis(hr_ds.rlon.values, s), hr_ds.rlon.attrs),
        },
    )
    aw = C.area_weights_for_grid(Grid(lr_ds, "rlat", "rlon"), s)
    assert aw is not None and aw.rows is not None
    rows = []
    for model, weights in models:
        base = None
        for kind in KINDS:
            out = sciSR.downscale(
                lr_ds,
                model=model,
                scale=s,
                weights=weights,
                precision="fp32",
                progress=False,
                constraint=_constraint(kind),
            )
            sr = out.tas.values
            rows.append(_row("EUR-11 tas", model, weights, kind, sr, hr, lr, aw.rows[:, None], base))
            base = rows[-1]["rmse"] if kind is None else base
    return rows


def _coarse_axis(v: np.ndarray, s: int) -> np.ndarray:
    """LR centres of a regular HR axis (the file's coordinates are regular only to float32 rounding)."""
    d = (v[-1] - v[0]) / (v.size - 1)
    return v[0] + (s - 1) / 2 * d + s * d * np.arange(v.size // s)


def _row(data, model, weights, kind, sr, hr, lr, w, base) -> dict:
    back = weighted_coarsen(np.asarray(sr, np.float64), w)
    cons = float(np.max(np.abs(back - lr)) / np.max(np.abs(lr)))
    r = rmse(sr, hr)
    return {
        "data": data,
        "model": model + (f" ({weights})" if weights else ""),
        "constraint": kind or "none",
        "rmse": r,
        "vs_none": None if base is None else 100.0 * (r / base - 1.0),
        "consistency": cons,
        "min": float(np.min(sr)),
    }


def print_table(rows: list[dict]) -> None:
    print("| data | model | constraint | RMSE | vs none | consistency | min |")
    print("|---|---|---|---:|---:|---:|---:|")
    for r in rows:
        vs = "" if r["vs_none"] is None else f"{r['vs_none']:+.2f}%"
        print(
            f"| {r['data']} | {r['model']} | {r['constraint']} | {r['rmse']:.4f} | {vs} | "
            f"{r['consistency']:.1e} | {r['min']:.3g} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--heldout", type=Path, default=Path.home() / ".cache/scisr-heldout")
    ap.add_argument("--quick", action="store_true", help="shipped tuned weights only (no natural rcan)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    pr_models = [("bicubic", None), ("rcan", "precip")] + ([] if args.quick else [("rcan", None)])
    tas_models = [("bicubic", None), ("rcan", "temperature")] + ([] if args.quick else [("rcan", None)])
    rows = stageiv_rows(args.heldout, pr_models) + eur11_rows(args.heldout, tas_models)
    print_table(rows)


if __name__ == "__main__":
    main()
