"""Training throughput: patches/s of ``sciSR.train.fit`` with its defaults against plain fp32.

The default (``precision="auto"``) trains under bf16 autocast in channels_last layout on CPUs with
native bf16 and on CUDA; the baseline is the same loop with ``precision="fp32"`` and contiguous
layout, in the same process. Each run builds batches from a real photo (the shipped ladybird
sample), takes ``--warmup`` steps, then times ``--steps`` steps (the loop's own ``patches_per_s``
record over the timed steps), with the batch and patch sizes ``sciSR.train`` uses by default at ×4.
Ratios are what this reports; absolute numbers depend on the machine.

Usage:
    python benchmarks/train.py                     # espcn, edsr_baseline, rcan (shipped), rcan (half depth)
    python benchmarks/train.py --models rcan --steps 4
"""

from __future__ import annotations

import argparse
import platform

import numpy as np
import torch

import sciSR
from sciSR.data import sample_path
from sciSR.train import TrainConfig, fit
from sciSR.train.data import load_luma

MODELS: dict[str, tuple[str, dict]] = {
    "espcn": ("espcn", {}),
    "edsr_baseline": ("edsr_baseline", {}),
    "rcan (shipped config)": ("rcan", {"n_resgroups": 4, "n_resblocks": 6, "n_feats": 48}),
    "rcan (half depth 5x20x64)": ("rcan", {"n_resgroups": 5, "n_resblocks": 20}),
}


def patches_per_s(name: str, kwargs: dict, precision: str, args: argparse.Namespace) -> float:
    """Timed patches/s of one configuration (after warm-up steps)."""
    img = load_luma(sample_path("ladybird_crop.png"))
    torch.manual_seed(0)
    model = sciSR.create_model(name, scale=args.scale, pretrained=False, **kwargs)
    cfg = TrainConfig(
        steps=args.warmup + args.steps,
        batch_size=args.batch_size,
        patch=args.patch,
        log_every=args.warmup,
        precision=precision,
        channels_last=None if precision == "auto" else False,
        lr=1e-4,
    )
    rec = fit(model, [img], cfg, progress=False)
    timed = [h for h in rec["history"] if h["step"] > args.warmup]
    return float(np.mean([h["patches_per_s"] for h in timed]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--scale", type=int, default=4)
    # the defaults of sciSR.train/finetune at ×4: batch 16, 48-pixel LR patches (192 HR)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--patch", type=int, default=192)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--steps", type=int, default=4)
    args = ap.parse_args()
    from sciSR.engine import cpu_has_fast_bf16

    print(
        f"CPU: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, native bf16: {cpu_has_fast_bf16()}"
    )
    print(f"batch {args.batch_size} × {args.patch}² HR patches, ×{args.scale}, {args.steps} timed steps\n")
    print("| model | fp32 patches/s | default patches/s | default / fp32 |")
    print("|---|---|---|---|")
    for label in args.models.split(","):
        name, kwargs = MODELS[label.strip()]
        base = patches_per_s(name, kwargs, "fp32", args)
        fast = patches_per_s(name, kwargs, "auto", args)
        print(f"| {label} | {base:.1f} | {fast:.1f} | {fast / base:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
