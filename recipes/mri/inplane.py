"""In-plane MRI ×2: k-space LR, fine-tuning, scores in a brain mask against the baselines, NIfTI out.

Steps (public API only, plus nibabel to write the LR volume):

1. **Fine-tune** (``sciSR.finetune``) the configured network (``rcan`` from its shipped ``mri``
   weights by default) on the axial slices of ``[inplane] train`` (cut to ``train_crop``), LR made by
   truncating each slice's 2-D spectrum to its central half (``degradation = "kspace"``: an MRI
   acquired at half the matrix size). Weights: ``OUT/<model>_x<s>_mri_finetuned.safetensors``.
2. **Evaluate** (``sciSR.evaluate`` with ``degradation="kspace"`` and ``mask=`` a brain mask) on
   ``[data] volume`` cut to ``evaluate_crop`` (by default slices the fine-tuning never saw): the
   baseline ladder (nearest, bilinear, bicubic, block), the shipped weights and the fine-tuned
   network; PSNR/SSIM/RMSE/... inside the mask. Report folder ``OUT/report`` (CSV, Markdown, figures).
3. **NIfTI out**: the k-space LR of the evaluation volume is written to ``OUT/lr_kspace.nii.gz``
   (affine ``A_hr @ C``, ``C = diag(2, 2, 1)`` with translation ``(2-1)/2`` on axes 0 and 1), and
   ``sciSR.downscale`` of that file with the fine-tuned network writes ``OUT/t1_x2_finetuned.nii.gz``:
   sciSR refines the affine (``A_lr @ S``, ``S = C⁻¹``), so the output lands on the HR voxel grid
   (checked in ``OUT/summary.json``: ``output_affine_equals_hr``).

The shipped ``mri`` weights were fine-tuned on the MNI152 template, of which the default sample is a
slab, so the default scores of ``rcan[mri]`` are not held-out figures; the held-out ones are on
Colin27 (README.md).

Usage:
    python recipes/mri/inplane.py --config recipes/mri/config.toml --out runs/mri_inplane
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mri_common import (
    brain_mask,
    coarsen_matrix,
    crop_to_multiple,
    load_config,
    load_volume,
    resolve,
    write_nifti,
)

import sciSR

#: ``sciSR.evaluate`` labels a network by its class name; the recipe renames it.
FINETUNED = "finetuned"


def kspace_lr(vol: np.ndarray, scale: int) -> np.ndarray:
    """Each axial slice (axes 0, 1) truncated in k-space (``sciSR.train.degrade`` ``"kspace"``).

    Shape:
        ``(I, J, K) -> (I/s, J/s, K)``.
    """
    import torch

    t = torch.from_numpy(np.ascontiguousarray(np.moveaxis(vol, 2, 0), dtype=np.float32))[:, None]
    lr = sciSR.train.degrade(t, scale, "kspace")[:, 0].numpy()
    return np.moveaxis(lr, 0, 2)


def model_entry(spec: str, net: Any) -> Any:
    """An entry of ``sciSR.evaluate(models=...)``: ``"finetuned"`` → the network, ``"rcan:mri"`` →
    ``("rcan", {"weights": "mri"})``, ``"rcan"`` → ``"rcan"``."""
    if spec == FINETUNED:
        return net
    name, _, tag = spec.partition(":")
    return (name, {"weights": tag}) if tag else name


def rename_method(rep: Any, old: str, new: str) -> None:
    """Rename method ``old`` to ``new`` in an ``EvaluationReport`` (table, roles, figure data)."""
    ren = {old: new}
    rep.table = rep.table.rename(index=ren, level="method")
    rep.roles = {ren.get(k, k): v for k, v in rep.roles.items()}
    rep.config["methods"] = [ren.get(m, m) for m in rep.config["methods"]]
    rep.config["roles"] = rep.roles
    for res in rep.results.values():
        for attr in ("outputs", "spectra", "quantiles"):
            d = getattr(res, attr, None)
            if isinstance(d, dict):
                setattr(res, attr, {ren.get(k, k): v for k, v in d.items()})


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the recipe; returns the summary written to ``OUT/summary.json``."""
    import xarray as xr

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=Path(__file__).with_name("config.toml"))
    ap.add_argument("--out", type=Path, default=Path("runs/mri_inplane"))
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    base = args.config.resolve().parent
    data, ip = cfg.get("data", {}), cfg.get("inplane", {})
    scale = int(ip.get("scale", 2))
    degradation = str(ip.get("degradation", "kspace"))
    model = str(ip.get("model", "rcan"))
    weights = str(ip.get("weights", "mri")) or None
    if ip.get("threads"):
        import torch

        torch.set_num_threads(int(ip["threads"]))
    out_dir = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    # 1. fine-tune on the training slices
    train_path = resolve(str(ip.get("train", data.get("volume", "sample:mni152_t1_slab.nii.gz"))), base)
    _, train_img = load_volume(train_path, ip.get("train_crop"))
    tag = f"{model}_x{scale}_mri_finetuned"
    opts = {k: ip[k] for k in ("batch_size", "patch", "lr", "seed", "min_std", "val_every") if k in ip}
    net = sciSR.finetune(
        model,
        train_img,
        scale=scale,
        weights=weights,
        steps=int(ip.get("steps", 30)),
        degradation=degradation,
        axis=2,
        out=out_dir / f"{tag}.safetensors",
        progress=False,
        precision=str(ip.get("precision", "fp32")),
        metadata={"scisr_recipe": "recipes/mri/inplane.py", "scisr_train_source": str(train_path)},
        **opts,
    )
    t1 = time.time()

    # 2. evaluate on the evaluation slices inside the brain mask
    eval_path = resolve(str(data.get("volume", "sample:mni152_t1_slab.nii.gz")), base)
    vol, img = load_volume(eval_path, ip.get("evaluate_crop"))
    vol, img = crop_to_multiple(vol, img, scale, (0, 1))
    mask = brain_mask(vol, str(data.get("mask", "auto")), base, crop=ip.get("evaluate_crop"))
    dims = ("i", "j", "k")
    hr = xr.Dataset({"image": (dims, vol)})
    mask_da = xr.DataArray(mask, dims=dims)
    specs = list(ip.get("evaluate_models", [f"{model}:{weights}" if weights else model, FINETUNED]))
    rep = sciSR.evaluate(
        hr,
        scale=scale,
        models=[model_entry(s, net) for s in specs],
        degradation=degradation,
        mask=mask_da,
        progress=False,
    )
    if FINETUNED in specs:
        rename_method(rep, type(net).__name__, f"{model}[{FINETUNED}]")
    rep.save(out_dir / "report", figures=bool(ip.get("figures", True)))
    t2 = time.time()

    # 3. NIfTI out: the LR volume, then sciSR.downscale of that file with the fine-tuned network
    lr = kspace_lr(vol, scale)
    lr_affine = img.affine @ coarsen_matrix(scale, (0, 1))
    lr_path = write_nifti(lr, img, lr_affine, out_dir / "lr_kspace.nii.gz", f"kspace LR x{scale}")
    sr_path = out_dir / f"t1_x{scale}_finetuned.nii.gz"
    sciSR.downscale(str(lr_path), model=net, scale=scale, axes=(0, 1), out=str(sr_path), progress=False)
    import nibabel as nib

    sr = nib.load(str(sr_path))
    table = rep.table.xs("image", level="variable")
    summary = {
        "train": str(train_path),
        "evaluate": str(eval_path),
        "scale": scale,
        "degradation": degradation,
        "mask_voxels": int(mask.sum()),
        "metrics": {m: {k: float(v) for k, v in row.items()} for m, row in table.iterrows()},
        "output": str(sr_path),
        "output_shape": list(sr.shape),
        "output_affine": sr.affine.tolist(),
        "output_affine_equals_hr": bool(np.allclose(sr.affine, img.affine)),
        "output_shape_equals_hr": list(sr.shape) == list(vol.shape),
        "finetune_seconds": round(t1 - t0, 1),
        "evaluate_seconds": round(t2 - t1, 1),
        "seconds": round(time.time() - t0, 1),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    s = main()
    for k, v in s["metrics"].items():
        print(f"{k:18s} psnr {v['psnr']:.3f}  ssim {v['ssim']:.4f}  rmse {v['rmse']:.3f}")
    print(f"wrote {s['output']} ({s['seconds']} s)")
