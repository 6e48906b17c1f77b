"""Fine-tune the shipped photo RCAN ×4 on near-surface air temperature (the ``"temperature"`` weights).

Data (training pool only): CMIP5 ``tas`` (Debian libncarg-data ``nug/tas_rectilinear_grid_2D.nc``,
12 monthly means on a 96×192 Gaussian-like grid, gathered by ``tools/fetch-training-pool.sh``);
months 1–11 train, month 12 validates. Each month is scaled by its own min/max, as
``sciSR.downscale`` normalizes an input, so the weights record ``scisr_norm=minmax`` without fixed
statistics (the fields are normalized here and passed as a ``TrainingData``); LR by block mean
(``degradation="area"``); no 90° rotations or flips (temperature has a north–south gradient).
Patches are 64 HR cells: RCAN's channel attention pools over the whole patch, so patches much
smaller than the fields it will see make its statistics differ at inference.

The script is the public API only: ``sciSR.finetune`` then ``sciSR.downscale``.

Usage:
    python recipes/finetune/temperature.py --out sciSR/models/weights/rcan_x4_c1_temperature.safetensors
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import sciSR
from sciSR import metrics

POOL = Path.home() / ".cache" / "scisr-pool"


def minmax(f: np.ndarray) -> np.ndarray:
    """``f`` scaled to [0, 1] by its own range (float32), as ``sciSR.downscale`` scales an input."""
    f = np.asarray(f, dtype=np.float32)
    return (f - f.min()) / (f.max() - f.min())


def block_mean(a: np.ndarray, s: int) -> np.ndarray:
    """Block mean of ``a`` (cropped to a multiple of ``s``)."""
    h, w = a.shape[0] // s * s, a.shape[1] // s * s
    return a[:h, :w].reshape(h // s, s, w // s, s).mean(axis=(1, 3))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--patch", type=int, default=64)
    args = ap.parse_args()
    import xarray as xr

    src = POOL / "climate" / "tas_rectilinear_grid_2D.nc"
    if not src.is_file():
        raise SystemExit(f"{src} is missing; run tools/fetch-training-pool.sh first")
    with xr.open_dataset(src, decode_times=False) as ds:
        tas = ds["tas"].values.astype(np.float32)
    from sciSR.train.datasets import TrainingData

    val = tas[11]
    data = TrainingData(
        train=[minmax(f) for f in tas[:11]],
        val=[minmax(val)],
        norm={"kind": "minmax", "fixed": False, "params": {}},
        source=f"{src.name}: tas months 1-11 (each scaled by its own min/max); validation: month 12",
    )
    net = sciSR.finetune(
        "rcan", data, scale=4, steps=args.steps, lr=args.lr, batch_size=args.batch_size, patch=args.patch,
        augment=False, min_std=0.0, out=args.out, seed=0, log_every=max(args.steps // 8, 1),
        progress=True,
        metadata={
            "scisr_recipe": "recipes/finetune/temperature.py",
            "scisr_tag": "temperature",
            "scisr_finetuned_from": "rcan_x4",
            "training_data": data.source,
        },
    )
    lr = block_mean(val, 4)
    hr = val[: lr.shape[0] * 4, : lr.shape[1] * 4]
    scores = {
        name: metrics.rmse(sciSR.downscale(lr, model=m, scale=4, precision="fp32", progress=False), hr)
        for name, m in (("finetuned", net), ("bicubic", "bicubic"), ("photo rcan", "rcan"))
    }
    print(json.dumps({"validation_month_12_rmse_K": scores}, indent=1))


if __name__ == "__main__":
    main()
