"""Write the model card (Markdown) of a weight file from its training record and held-out scores.

Usage:
    python recipes/pretrain/model_card.py WEIGHTS.safetensors HELDOUT.json > WEIGHTS.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sciSR.models.weights_io import read_state_dict


def card(weights: Path, heldout: dict) -> str:
    sd, meta = read_state_dict(weights)
    spec = json.loads(meta["spec"])
    rec = json.loads(meta["training"])
    cfg = rec["config"]
    data = json.loads(meta.get("training_data", "[]"))
    val = json.loads(meta.get("validation_data", "[]"))
    last = rec["history"][-1]
    ph, dem, pr = heldout["photos_y"], heldout["dem_olinda_m"], heldout["stageiv_h16_22_mm_per_h"]
    prec = heldout.get("precision", "fp32")
    params = sum(t.numel() for t in sd.values())
    lines = [
        f"# Model card: `{weights.stem}`",
        "",
        f"* **Architecture**: `{spec['name']}` ({spec['paper']}), ×{spec['scale']}, "
        f"{spec['in_channels']} channel, default configuration, {params:,} parameters, "
        f"receptive field {spec['receptive_field']} LR px.",
        f"* **Produced by**: `{meta.get('recipe', 'recipes/pretrain/train_photos.py')}` "
        "(sciSR's own recipe), "
        f"{cfg['steps']:,} Adam steps, batch {cfg['batch_size']}, HR patches {cfg['patch']}×{cfg['patch']}, "
        f"lr {cfg['lr']:g} → {cfg['lr_min']:g} (cosine), {cfg['loss']} loss, seed {cfg['seed']}, "
        f"{rec['seconds'] / 60:.0f} min on one CPU thread.",
        "* **Training data** (project training pool only): BT.601 luma of "
        f"{len(data)} photos — Debian mate-backgrounds, plasma-workspace-wallpapers and lomiri-wallpapers "
        "(shrunk to ≤ 1280 px, which hides JPEG blocking) and scikit-image sample photos; LR made by "
        f"antialiased bicubic; textured patches only (std ≥ 0.04): {', '.join(data)}.",
        f"* **Validation during training** (held out of training, training pool): {', '.join(val)} — "
        f"final PSNR {last['psnr']:.2f} dB vs bicubic {last['psnr_bicubic']:.2f} dB.",
        '* **Inputs**: values normalized to about [0, 1]; `norm="auto"` applies a global min-max '
        "normalization (recorded in the weights' metadata as `scisr_norm=minmax`).",
        "",
        "## Held-out scores (reserved evaluation data, never trained or tuned on)",
        "",
        f"Produced by `recipes/pretrain/evaluate_heldout.py`, computed at {prec} "
        f'(`sciSR.downscale(..., precision="{prec}")`).',
        "",
        "| data | protocol | metric | this model | bicubic |",
        "|---|---|---|---:|---:|",
        f"| {ph['n']} photos, Debian libjxl-testdata | Y channel, antialiased bicubic LR, "
        f"{spec['scale']} px shaved | PSNR dB | {ph['psnr']:.2f} | {ph['psnr_bicubic']:.2f} |",
        f"| same | same | SSIM | {ph['ssim']:.4f} | {ph['ssim_bicubic']:.4f} |",
        f"| Olinda DEM (r-cran-stars, UTM 25S, 90 m) | block-mean LR | RMSE m | {dem['rmse']:.3f} | "
        f"{dem['rmse_bicubic']:.3f} |",
        f"| Stage IV precipitation, hours 16–22 ({pr['n']} fields) | block-mean LR | RMSE mm/h | "
        f"{pr['rmse']:.3f} | {pr['rmse_bicubic']:.3f} |",
        "",
        "## Limits",
        "",
        "* Trained on natural-photo luma: a generic sharpening prior, not a physical downscaling model. "
        "Fine-tune on domain data before scientific use; check conservation and extremes "
        "(`sciSR.metrics.conservation_error`, `quantile_errors`).",
        "* The block-mean degradation of the domain rows differs from the bicubic degradation it was trained "
        "on; scores there show transfer, not a tuned result.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    w, h = Path(sys.argv[1]), Path(sys.argv[2])
    sys.stdout.write(card(w, json.loads(h.read_text())))
