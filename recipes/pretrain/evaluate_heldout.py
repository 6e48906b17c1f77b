"""Held-out scores of a model against bicubic, for model cards.

Data (all reserved for evaluation by the project's data rules; never trained or tuned on):

* photos: Debian ``libjxl-testdata`` (``jxl/flower/flower.png``, ``jxl/hdr_room.png``,
  ``external/wesaturate/500px/*_srgb8.png``); classic protocol: BT.601 luma, LR by antialiased
  bicubic, ``scale`` pixels shaved, PSNR/SSIM with an 11×11 Gaussian window;
* DEM: Debian ``r-cran-stars`` ``tif/olinda_dem_utm25s.tif``; LR by block mean; RMSE in metres;
* precipitation: Stage IV hourly precipitation (``r-cran-stars`` ``nc/test_stageiv_xyt.nc``),
  **hours 16–22 only** (hours 0–15 are the training part); LR by block mean; RMSE in mm/h;
* temperature (``--ncarg``): EURO-CORDEX 0.11° ``tas`` (``libncarg-data`` nug/tas_rotated_grid_EUR11.nc);
  LR by block mean; RMSE in K;
* MRI (``--mricron``, ×2 models): Colin27 T1 (``mricron-data`` templates/ch2.nii.gz), every 4th axial
  slice containing brain; LR by k-space truncation of each slice; PSNR inside the brain mask of
  ``ch2bet.nii.gz`` (data range = the volume's range).

Photos are also scored with the standard SR benchmark protocol (``photos_y_matlab``: LR by MATLAB
``imresize`` bicubic, bicubic baseline by MATLAB ``imresize``).

Usage:
    python recipes/pretrain/evaluate_heldout.py --model espcn --scale 4 \
        --libjxl DIR_OF_libjxl-testdata --stars DIR_OF_r-cran-stars [--ncarg DIR] [--mricron DIR] \
        [--weights FILE] [--json OUT]
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
EUR11 = "usr/share/ncarg/data/nug/tas_rotated_grid_EUR11.nc"
CH2 = "usr/share/mricron/templates/ch2.nii.gz"
CH2_BRAIN = "usr/share/mricron/templates/ch2bet.nii.gz"


def crop(a: np.ndarray, s: int) -> np.ndarray:
    return a[: a.shape[0] // s * s, : a.shape[1] // s * s]


def photo_scores(
    model: str,
    weights: str | None,
    scale: int,
    root: Path,
    precision: str = "fp32",
    protocol: str = "bicubic",
) -> dict[str, float]:
    """Y-channel PSNR/SSIM on the reserved photos; ``protocol`` = the LR maker ("bicubic" or "matlab")."""
    from sciSR.resize import imresize_matlab

    ps, ss, pb, sb = [], [], [], []
    for rel in PHOTOS:
        hr = crop(load_luma(root / rel), scale)
        lr = degrade(torch.from_numpy(hr)[None, None], scale, protocol)[0, 0].numpy()
        for name, p_list, s_list in ((model, ps, ss), ("bicubic", pb, sb)):
            if name == "bicubic" and protocol == "matlab":
                sr = imresize_matlab(torch.from_numpy(lr)[None, None], scale=float(scale))[0, 0].numpy()
                a, b = metrics.shave(sr, scale), metrics.shave(hr, scale)
                p_list.append(metrics.psnr(a, b, data_range=1.0))
                s_list.append(metrics.ssim(a, b, data_range=1.0))
                continue
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


def mri_scores(model: str, weights: str | None, scale: int, root: Path, precision: str = "fp32") -> dict:
    """PSNR inside the brain mask of k-space-truncated Colin27 slices (whole-volume normalization)."""
    import nibabel as nib

    vol = np.asarray(nib.load(root / CH2).dataobj, dtype=np.float64)
    brain = np.asarray(nib.load(root / CH2_BRAIN).dataobj) > 0
    keep = [k for k in range(0, vol.shape[2], 4) if brain[:, :, k].mean() > 0.05]
    hr = np.stack([crop(vol[:, :, k], scale) for k in keep])
    mask = np.stack([crop(brain[:, :, k], scale) for k in keep])
    lr = degrade(torch.from_numpy(hr)[:, None], scale, "kspace")[:, 0].numpy()
    rng = float(vol.max() - vol.min())
    out = {}
    for name in (model, "bicubic"):
        sr = sciSR.downscale(
            lr,
            model=name,
            scale=scale,
            weights=weights if name == model else None,
            precision=precision,
            progress=False,
        )
        err = (np.asarray(sr, dtype=np.float64) - hr)[mask]
        out["psnr" if name == model else "psnr_bicubic"] = float(10 * np.log10(rng**2 / np.mean(err**2)))
    out["n"] = len(keep)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--libjxl", type=Path, required=True)
    ap.add_argument("--stars", type=Path, required=True)
    ap.add_argument("--ncarg", type=Path, help="extracted libncarg-data (temperature rows)")
    ap.add_argument("--mricron", type=Path, help="extracted mricron-data (MRI rows, ×2 models)")
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
        "photos_y_matlab": photo_scores(
            args.model, args.weights, args.scale, args.libjxl, args.precision, protocol="matlab"
        ),
    }
    with rasterio.open(args.stars / DEM) as f:
        res["dem_olinda_m"] = field_scores([f.read(1)], args.model, args.weights, args.scale, args.precision)
    with xr.open_dataset(args.stars / PRECIP) as ds:
        pr = ds["Total_precipitation_surface_1_Hour_Accumulation"].values
    res["stageiv_h16_22_mm_per_h"] = field_scores(
        [pr[h] for h in PRECIP_HOURS], args.model, args.weights, args.scale, args.precision
    )
    if args.ncarg:
        with xr.open_dataset(args.ncarg / EUR11) as ds:
            tas = ds["tas"].values.reshape(-1, *ds["tas"].shape[-2:])
        res["tas_eur11_K"] = field_scores(list(tas), args.model, args.weights, args.scale, args.precision)
    if args.mricron and args.scale == 2:
        res["mri_colin27_brain"] = mri_scores(
            args.model, args.weights, args.scale, args.mricron, args.precision
        )
    print(json.dumps(res, indent=2))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()


#: Model-card rows: ``(result key, data, protocol, score, metric, decimals)``; ``{n}`` is the number of
#: fields or photos, ``{s}`` the scale.
CARD_ROWS: tuple[tuple[str, str, str, str, str, int], ...] = (
    ("photos_y", "{n} photos, Debian libjxl-testdata", "Y channel, antialiased bicubic LR, {s} px shaved",
     "psnr", "PSNR dB", 2),
    ("photos_y", "{n} photos, Debian libjxl-testdata", "Y channel, antialiased bicubic LR, {s} px shaved",
     "ssim", "SSIM", 4),
    ("photos_y_matlab", "{n} photos, Debian libjxl-testdata",
     "Y channel, MATLAB bicubic LR and baseline, {s} px shaved", "psnr", "PSNR dB", 2),
    ("photos_y_matlab", "{n} photos, Debian libjxl-testdata",
     "Y channel, MATLAB bicubic LR and baseline, {s} px shaved", "ssim", "SSIM", 4),
    ("dem_olinda_m", "Olinda DEM (r-cran-stars, UTM 25S, 90 m)", "block-mean LR", "rmse", "RMSE m", 3),
    ("stageiv_h16_22_mm_per_h", "Stage IV precipitation, hours 16–22 ({n} fields)", "block-mean LR", "rmse",
     "RMSE mm/h", 3),
    ("tas_eur11_K", "EURO-CORDEX EUR-11 tas (libncarg-data)", "block-mean LR", "rmse", "RMSE K", 4),
    ("mri_colin27_brain", "Colin27 T1, {n} axial slices (mricron-data)", "k-space truncation LR, brain mask",
     "psnr", "PSNR dB", 2),
)


def card_rows(res: dict, first: str | None = None) -> list[tuple[str, str, str, float, float, int]]:
    """Model-card rows ``(data, protocol, metric, model, bicubic, decimals)`` of a :func:`main` result.

    The card writer (``model_card.py``) and the test that recomputes cards both use this, so a card
    row and its recomputation always mean the same thing. Rows of the result key ``first`` come
    first (a domain card leads with its domain's score); parts missing from ``res`` are left out.
    """
    keys = [k for k in dict.fromkeys(r[0] for r in CARD_ROWS)]
    if first is not None:
        keys = [first, *[k for k in keys if k != first]]
    rows = []
    for key in keys:
        part = res.get(key)
        for k, data, protocol, score, metric, dec in CARD_ROWS:
            if k != key or part is None:
                continue
            fmt = {"n": part.get("n", ""), "s": res["scale"]}
            rows.append((data.format(**fmt), protocol.format(**fmt), metric, part[score],
                         part[f"{score}_bicubic"], dec))
    return rows
