"""Continue training shipped photo weights on the packed training pool (a second, CPU-sized stage).

Same photos, degradation and validation as ``train_zoo.py``; the start is an existing weight file.
The texture filter can be lowered (``--min-std 0``) so that flat patches are seen too, and
``--stretch`` scales each photo to [0, 1] as ``sciSR.downscale`` scales a field: BT.601 luma of
colour photos stays inside [16, 235]/255, so a network trained on it alone never sees the zeros of
a min-max-normalized field's minimum (an MRI background), and may add an offset there.

Usage:
    python recipes/pretrain/continue_photos.py --model carn_m --scale 4 \
        --weights sciSR/models/weights/carn_m_x4_c1.safetensors --steps 600 --min-std 0 --out OUT.safetensors
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import train_zoo

import sciSR
from sciSR.models.weights_io import read_state_dict
from sciSR.train import TrainConfig, fit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--scale", type=int, required=True)
    ap.add_argument("--weights", type=Path, required=True)
    ap.add_argument("--pack", type=Path, default=Path(".pack"))
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--patch", type=int, default=96)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--min-std", type=float, default=0.0)
    ap.add_argument(
        "--stretch", action="store_true",
        help="scale each photo to [0, 1] (min-max), as downscale scales fields: photo luma alone never "
        "reaches 0 (BT.601 studio range), so a network may add an offset to zero-valued regions",
    )
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    _sd, meta = read_state_dict(args.weights)
    spec = json.loads(meta["spec"])
    net = sciSR.create_model(
        args.model, scale=args.scale, pretrained=args.weights, **dict(spec.get("extra") or {})
    )
    train, val, names = train_zoo._photos(args.pack)
    if args.stretch:
        train = [train_zoo._minmax(t) for t in train]
    cfg = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, patch=args.patch, lr=args.lr, lr_min=1e-6,
        warmup=20, ema=0.99, min_std=args.min_std, degradation="bicubic", log_every=max(args.steps // 6, 1),
    )
    first = json.loads(meta.get("training", "{}"))
    stage = {"steps": args.steps, "batch_size": args.batch_size, "patch": args.patch, "lr": args.lr,
             "min_std": args.min_std, "stretch": args.stretch, "device": "cpu"}
    extra = {
        "scisr_norm": "minmax",
        "training_data": json.dumps(names),
        "scisr_recipe": (
            f"{meta.get('scisr_recipe', 'recipes/pretrain/train_zoo.py')}, then "
            f"recipes/pretrain/continue_photos.py --steps {args.steps} --min-std {args.min_std}"
            + (" --stretch" if args.stretch else "")
        ),
        "scisr_first_stage": json.dumps({"config": first.get("config"), "seconds": first.get("seconds"),
                                         "precision": first.get("precision")}),
        "scisr_second_stage": json.dumps(stage),
    }
    rec = fit(net, train, cfg, val_images=val, out=args.out, metadata=extra, progress=True)
    print(json.dumps(rec["history"][-1]))


if __name__ == "__main__":
    main()
