"""Held-out scores of a model against bicubic, for model cards.

Data (all reserved for evaluation by the project's data rules; never trained or tuned on):

* photos: Debian ``libjxl-testdata`` (``jxl/flower/flower.png``, ``jxl/hdr_room.png``,
  ``external/wesaturate/500px/*_srgb8.png``); classic protocol: BT.601 luma, LR by antialiased
  bicubic, ``scale`` pixels shaved, PSNR/SSIM with an 11×11 Gaussian window;
* DEM: Debian ``r-cran-stars`` ``tif/olinda_dem_utm25s.tif``; LR by block mean; RMSE in metres;
* precipitation: Stage IV hourly precipitation (``r-cran-stars`` ``nc/test_stageiv_xyt.nc``),
  **hours 16–22 only** (hours 0–15 are the training part); LR by block mean; RMSE in mm/h.

Usage:
    python recipes/pretrain/evaluate_heldout.py --model espcn --scale 4 \
        --libjxl DIR_OF_libjxl-testdata --stars DIR_OF_r-cran-stars [--weights FILE] [--json OUT]
(DIRs are the extracted package roots, e.g. ``dpkg-deb -x libjxl-testdata_*.deb DIR``.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import sciSR
from sciSR import metrics
from sciSR.train.data import load_luma
from sciSR.train.degrade import degrade

PHOTOS = (
    "usr/share/libjxl-testdata/jxl/flower/flower.png",
    "usr/share/libjxl-testdata/jxl/hdr_room.png",
    "usr/share/libjxl-testdata/external/wesaturate/500px/cvo9xd_keong_macan_srgb8.png",
    "usr/share/libjxl-testdata/external/wesaturate/500px/tmshre_riaphotographs_srgb8.png",
    "usr/share/libjxl-testdata/external/wesaturate/500px/u76c0g_bliznaca_srgb8.png",
)
DEM = "usr/lib/R/site-library/stars/tif/olinda_dem_utm25s.tif"
PRECIP = "usr/lib/R/site-library/stars/nc/test_stageiv_xyt.nc"
PRECIP_HOURS = range(16, 23)


def crop(a: np.ndarray, s: int) -> np.ndarray:
    return a[: a.shape[0] // s * s, : a.shape[1] // s * s]


def photo_scores(
    model: str, weights: str | None, scale: int, root: Path, precision: str = "fp32"
) -> dict[str, float]:
    ps, ss, pb, sb = [], [], [], []
    for rel in PHOTOS:
        hr = crop(load_luma(root / rel), scale)
        lr = degrade(torch.from_numpy(hr)[None, None], scale, "bicubic")[0, 0].numpy()
        for name, p_list, s_list in ((model, ps, ss), ("bicubic", pb, sb)):
            sr = sciSR.downscale(
                lr,
                model=name,
                scale=scale,
                weights=weights if name == model else None,
                norm=None,
                precision=precision,
                progress=False,
            )
            a, b = metrics.shave(sr, scale), metrics.shave(hr, scale)
            p_list.append(metrics.psnr(a, b, data_range=1.0))
            s_list.append(metrics.ssim(a, b, data_range=1.0))
    return {
        "psnr": float(np.mean(ps)),
        "ssim": float(np.mean(ss)),
        "psnr_bicubic": float(np.mean(pb)),
        "ssim_bicubic": float(np.mean(sb)),
        "n": len(PHOTOS),
    }


def field_scores(
    fields: list[np.ndarray], model: str, weights: str | None, scale: int, precision: str = "fp32"
) -> dict[str, float]:
    rm, rb = [], []
    for f in fields:
        hr = crop(f.astype(np.float64), scale)
        lr = hr.reshape(hr.shape[0] // scale, scale, hr.shape[1] // scale, scale).mean(axis=(1, 3))
        sr = sciSR.downscale(
            lr, model=model, scale=scale, weights=weights, precision=precision, progress=False
        )
        bic = sciSR.downscale(lr, model="bicubic", scale=scale, progress=False)
        rm.append(metrics.rmse(sr, hr))
        rb.append(metrics.rmse(bic, hr))
    return {"rmse": float(np.mean(rm)), "rmse_bicubic": float(np.mean(rb)), "n": len(fields)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--libjxl", type=Path, required=True)
    ap.add_argument("--stars", type=Path, required=True)
    ap.add_argument("--json", type=Path)
    ap.add_argument(
        "--precision", default="fp32", help="fp32 (the cards' figures), auto (this machine's default) or bf16"
    )
    args = ap.parse_args()

    import rasterio
    import xarray as xr

    res = {
        "model": args.model,
        "scale": args.scale,
        "precision": args.precision,
        "photos_y": photo_scores(args.model, args.weights, args.scale, args.libjxl, args.precision),
    }
    with rasterio.open(args.stars / DEM) as f:
        res["dem_olinda_m"] = field_scores(
            [f.read(1)], args.model, args.weights, args.scale, args.precision
        )
    with xr.open_dataset(args.stars / PRECIP) as ds:
        pr = ds["Total_precipitation_surface_1_Hour_Accumulation"].values
    res["stageiv_h16_22_mm_per_h"] = field_scores(
        [pr[h] for h in PRECIP_HOURS], args.model, args.weights, args.scale, args.precision
    )
    print(json.dumps(res, indent=2))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
