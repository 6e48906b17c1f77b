"""Write the model card (Markdown) of a sciSR-trained weight file from its metadata and held-out scores.

The training record, data names, normalization and (for fine-tuned files) the parent are read from
the safetensors metadata that :func:`sciSR.train.fit` wrote; the held-out rows come from
``evaluate_heldout.py``'s JSON through its :func:`card_rows`, so a card and its recomputation in
``tests/models/test_weights_heldout.py`` always mean the same thing. For photo weights the training
validation figure (skimage ``camera`` and ``astronaut``) is recomputed here on the CPU in fp32.

Usage:
    python recipes/pretrain/model_card.py WEIGHTS.safetensors HELDOUT.json [--device TEXT] > WEIGHTS.md
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import evaluate_heldout

from sciSR.models.weights_io import read_state_dict

#: What each tag's weights were fine-tuned on, and their limits.
DOMAINS = {
    None: (
        "BT.601 luma of the training-pool photos (Debian mate-backgrounds, plasma-workspace-wallpapers and "
        "lomiri-wallpapers shrunk to ≤ 1280 px, which hides JPEG blocking, and scikit-image sample photos); "
        "LR by antialiased bicubic; textured patches only (std ≥ 0.04)",
        "Trained on natural-photo luma: a generic sharpening prior, not a physical downscaling model. "
        "Fine-tune on domain data before scientific use (`sciSR.finetune`); the block-mean rows show "
        "transfer, not a tuned result.",
    ),
    "dem": (
        "ETOPO5 (Debian ferret-datasets) cut into 240×240 tiles with relief (std > 30 m, some land), each "
        "scaled by its own min/max; LR by block mean; validation: matplotlib's Jacksboro fault DEM",
        "Fine-tuned on a 5′ global relief product: terrain texture at other resolutions (lidar DEMs) may "
        "differ. Block-mean LR assumes cell-average elevations.",
    ),
    "precip": (
        "NCEP Stage IV hourly precipitation (r-cran-stars test_stageiv_xyt.nc), hours 0–14, each hour "
        "scaled by its own min/max; LR by block mean; validation: hour 15",
        "Fifteen hours of one event (hurricane Florence, 4 km): a small sample of precipitation regimes. "
        "The network does not conserve the coarse totals by itself.",
    ),
    "temperature": (
        "CMIP5 `tas` (libncarg-data nug/tas_rectilinear_grid_2D.nc, months 1–11), each month scaled by "
        "its own min/max; LR by block mean; HR patches of 64 cells, no flips or rotations; validation: "
        "month 12",
        "Fine-tuned on one coarse GCM grid (≈ 1.9°, 11 monthly means): regional model output (EUR-11) "
        "is a transfer case. An earlier GPU fine-tune on 32-cell patches of CMIP5 and iris grids lost to "
        "bicubic on its validation month and was replaced by this one.",
    ),
    "mri": (
        "MNI152 T1 1 mm template (nilearn), axial slices with tissue (every 2nd of 20–170, every 8th held "
        "for validation), one min/max for the volume; LR by k-space truncation (central 1/2 of k-space)",
        "In-plane ×2 of magnitude T1 images from one template: other contrasts, noise levels and "
        "through-plane (slice thickness) degradations are not covered.",
    ),
}


#: The held-out result a tagged card leads with (the catalogue ranks domain weights by the first row).
FIRST_ROW = {
    "dem": "dem_olinda_m",
    "precip": "stageiv_h16_22_mm_per_h",
    "temperature": "tas_eur11_K",
    "mri": "mri_colin27_brain",
}


def _validation_line(weights: Path, meta: dict, spec: dict, rec: dict) -> str:
    """The training-validation figure, recomputed on the CPU for photo weights."""
    if meta.get("scisr_tag") or meta.get("scisr_finetuned_from"):
        last = rec["history"][-1]
        return (
            f"* **Validation during training** (training pool, held out of training; fp32): final PSNR "
            f"{last['psnr']:.2f} dB vs bicubic {last['psnr_bicubic']:.2f} dB (data range 1)."
        )
    import numpy as np

    import sciSR
    from sciSR.train import evaluate

    val = dict(np.load(Path(".pack") / "fields.npz"))
    images = [val[k].astype("float32") for k in sorted(val) if k.startswith("photo_val_")]
    model = sciSR.create_model(
        spec["name"], scale=spec["scale"], pretrained=weights, **dict(spec.get("extra") or {})
    )
    crop = rec["config"].get("val_crop", 384)
    got = evaluate(model, images, spec["scale"], "bicubic", crop=crop)
    return (
        "* **Validation during training** (held out of training, training pool; centre crops of "
        f"{crop} px, recomputed on the CPU in fp32): skimage.camera, skimage.astronaut — final PSNR "
        f"{got['psnr']:.2f} dB vs bicubic {got['psnr_bicubic']:.2f} dB."
    )


def card(weights: Path, heldout: dict, device: str, first_device: str | None = None) -> str:
    """Markdown model card of ``weights`` with the held-out result ``heldout``.

    ``device`` names where the (last) training stage ran, ``first_device`` the first stage of a
    two-stage file (default: ``device``).
    """
    sd, meta = read_state_dict(weights)
    spec = json.loads(meta["spec"])
    rec = json.loads(meta["training"])
    cfg = rec["config"]
    from sciSR.models.catalog import parse_weight_name

    tag = parse_weight_name(weights.name)[3]
    data_text, limits = DOMAINS[tag]
    params = sum(t.numel() for t in sd.values())
    extra = dict(spec.get("extra") or {})
    config = (
        "reduced configuration " + ", ".join(f"{k}={v}" for k, v in sorted(extra.items()))
        if extra
        else "default configuration"
    )
    parent = meta.get("scisr_finetuned_from")
    start = f"fine-tuned from `{parent}_c1` as the same run trained it" if parent else "from random init"
    first = json.loads(meta.get("scisr_first_stage", "null") or "null")
    second = json.loads(meta.get("scisr_second_stage", "{}") or "{}")
    if first:  # a second stage continued these weights
        fc = first["config"]
        origin = f"fine-tuned from `{parent}_c1`" if parent else "from random init"
        start = (
            f"stage 1 {origin}: {fc['steps']:,} Adam steps, batch {fc['batch_size']}, HR patches "
            f"{fc['patch']}×{fc['patch']}, lr {fc['lr']:g} (cosine), {first['precision']} autocast, "
            f"{first['seconds'] / 60:.1f} min on {first_device or device}; "
        )
        if second.get("device", "cpu").startswith("cuda"):  # train_zoo.py --continue-shipped
            start += "stage 2 continued from the stage-1 file on the same GPU kind"
        else:  # continue_photos.py
            start += (
                f"stage 2 continued on the CPU (texture filter min_std={cfg['min_std']}, so flat patches "
                "are seen too"
                + (
                    "; each photo scaled to [0, 1] by its own min/max, as downscale scales a field, so "
                    "zero-valued regions are seen too)"
                    if second.get("stretch")
                    else ")"
                )
            )
            device = "the CPU (2 cores)"
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    lines = [
        f"# Model card: `{weights.stem}`",
        "",
        f"* **Architecture**: `{spec['name']}` ({spec['paper']}), ×{spec['scale']}, "
        f"{spec['in_channels']} channel, {config}, {params:,} parameters, "
        + (
            f"receptive field {spec['receptive_field']} LR px."
            if spec.get("receptive_field") is not None
            else "unbounded receptive field (channel attention pools the whole input; tiles are blended)."
        ),
        f"* **Tag**: `{tag}` (`weights=\"{tag}\"`)" if tag else "* **Tag**: none (natural-photo weights)",
        f"* **Produced by**: `{meta.get('scisr_recipe', 'recipes/pretrain/train_zoo.py')}` (sciSR's own "
        f"recipe), {start}: {cfg['steps']:,} Adam steps, batch {cfg['batch_size']}, HR patches "
        f"{cfg['patch']}×{cfg['patch']}, lr {cfg['lr']:g} → {cfg['lr_min']:g} ({cfg['schedule']}, "
        f"{cfg['warmup']} warm-up steps), {cfg['loss']} loss, EMA {cfg['ema']}, {rec['precision']} autocast "
        f"with fp32 master weights, seed {cfg['seed']}, {rec['seconds'] / 60:.1f} min on {device}.",
        f"* **Training data** (project training pool only): {data_text}.",
        _validation_line(weights, meta, spec, rec),
        '* **Inputs**: `norm="auto"` min-max normalizes each input (recorded in the metadata as '
        "`scisr_norm=minmax`, no fixed statistics).",
        "* **Licence**: BSD-3-Clause (the sciSR package licence; the training data and their licences are "
        "listed in `recipes/pretrain/pack_pool.py`).",
        f"* **sha256**: `{sha}`",
        "",
        "## Held-out scores (reserved evaluation data, never trained or tuned on)",
        "",
        f"Produced by `recipes/pretrain/evaluate_heldout.py`, computed at {heldout.get('precision', 'fp32')} "
        f'(`sciSR.downscale(..., precision="{heldout.get("precision", "fp32")}")`).',
        "",
        "| data | protocol | metric | this model | bicubic |",
        "|---|---|---|---:|---:|",
    ]
    first = FIRST_ROW.get(tag) if tag else None
    for data, protocol, metric, model, base, dec in evaluate_heldout.card_rows(heldout, first):
        lines.append(f"| {data} | {protocol} | {metric} | {model:.{dec}f} | {base:.{dec}f} |")
    lines += ["", "## Limits", "", f"* {limits}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", type=Path)
    ap.add_argument("heldout", type=Path)
    ap.add_argument("--device", default="one NVIDIA H200 GPU (shared by 4 training jobs)")
    ap.add_argument("--first-device", default=None, help="where stage 1 ran (two-stage files)")
    args = ap.parse_args()
    sys.stdout.write(card(args.weights, json.loads(args.heldout.read_text()), args.device, args.first_device))


if __name__ == "__main__":
    main()
