"""Pretrain a 1-channel sciSR model on the photo training pool (DIV2K stand-in) and save safetensors.

Photos: Debian mate-backgrounds / plasma-workspace-wallpapers / lomiri wallpapers (gathered by
``tools/fetch-training-pool.sh`` into ``~/.cache/scisr-pool/photos``) plus skimage and
scikit-learn sample photos. Training is on BT.601 luma in [0, 1]; LR by antialiased bicubic.
Validation: skimage ``camera`` and ``astronaut`` (held out of the training set).

Usage:
    python recipes/pretrain/train_photos.py --model espcn --scale 4 --steps 20000 \
        --out sciSR/models/weights/espcn_x4_c1.safetensors
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import sciSR
from sciSR.train import TrainConfig, train
from sciSR.train.data import load_luma

POOL = Path.home() / ".cache" / "scisr-pool" / "photos"
VAL_NAMES = ("camera", "astronaut")
SKIMAGE_TRAIN = ("coffee", "chelsea", "rocket", "brick", "grass", "gravel", "hubble_deep_field", "moon")


def _skimage_luma(name: str) -> np.ndarray:
    from skimage import data

    im = getattr(data, name)().astype(np.float32)
    im = im / (65535.0 if im.max() > 255 else 255.0)
    if im.ndim == 3:
        im = (16.0 + 65.481 * im[..., 0] + 128.553 * im[..., 1] + 24.966 * im[..., 2]) / 255.0
    return im.astype(np.float32)


def training_images(pool: Path, max_side: int) -> tuple[list[np.ndarray], list[str]]:
    """Luma of every pool photo (shrunk to ``max_side``, hiding JPEG blocking) and skimage photos."""
    paths = sorted(pool.glob("*.jpg"))
    if not paths:
        raise SystemExit(f"no photos in {pool}; run tools/fetch-training-pool.sh first")
    imgs = [load_luma(p, max_side) for p in paths]
    names = [p.name for p in paths]
    for n in SKIMAGE_TRAIN:
        imgs.append(_skimage_luma(n))
        names.append(f"skimage.{n}")
    return imgs, names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="espcn")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--patch", type=int, default=96)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--max-side", type=int, default=1280)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--log-every", type=int, default=1000)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    imgs, names = training_images(POOL, args.max_side)
    val = [_skimage_luma(n) for n in VAL_NAMES]
    model = sciSR.create_model(args.model, scale=args.scale, in_channels=1, pretrained=False)
    cfg = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        patch=args.patch,
        lr=args.lr,
        threads=args.threads,
        log_every=args.log_every,
    )
    meta = {
        "training_data": json.dumps(names),
        "validation_data": json.dumps([f"skimage.{n}" for n in VAL_NAMES]),
        "recipe": "recipes/pretrain/train_photos.py",
    }
    rec = train(model, imgs, cfg, val_images=val, out=args.out, metadata=meta)
    print(json.dumps({"final": rec["history"][-1], "seconds": rec["seconds"]}))


if __name__ == "__main__":
    main()
