"""Through-plane MRI super-resolution by self-supervision on the volume's own in-plane slices.

The idea is that of SMORE (Zhao et al., "SMORE: A Self-Supervised Anti-Aliasing and Super-Resolution
Algorithm for MRI Using Deep Learning", IEEE TMI 40(3), 2021, first online 2020) and its successor
ECLARE (Remedios et al., which also models slice gaps and estimates the slice profile): a
thick-slice volume is sharp within each slice and blurred/undersampled across slices, so the in-plane
slices, degraded along one in-plane axis by the same slice profile, give training pairs that mimic the
through-plane degradation; the network trained on them is then applied along the slice axis in the
two orthogonal plane families that contain it, and the two results are averaged. This file is our own
code built on sciSR's public API; the network and the interpolation are our choices:

1. **Thick slices** (``simulate = true``): the HR volume (cropped so the slice axis is a multiple of
   ``scale``) is reduced along ``axis`` by ``sciSR.train.degrade(method="slice")``: LR slice ``i`` is
   centred at HR index ``s·i + (s-1)/2`` and averages the HR voxels within ``thickness/2`` of it
   (``gap = scale - thickness``). Its affine is ``A_hr @ C`` (``C[a,a] = s``, ``C[a,3] = (s-1)/2``).
   With ``simulate = false`` the input file is the thick-slice volume itself (nothing is scored).
2. **Pairs** (:func:`make_pairs`): every in-plane slice of the LR volume (perpendicular to ``axis``),
   in both of its orientations, is degraded along its rows with the same slice profile and brought
   back to its size by 1-D cubic interpolation along the rows (``align_corners=False``: the
   cell-centred grid); the pair is (interpolated, original). The degraded direction is always the row
   axis, which is the slice axis at inference.
3. **Training** (``sciSR.train``): a VDSR-style residual CNN at scale 1 (``sciSR.create_model("vdsr",
   scale=1)``: it learns the correction to the cubic interpolation) on those pairs, no rotation
   augmentation (it would move the degraded axis), intensities divided by the 99th percentile of the
   non-zero LR voxels. The weights go to ``OUT/smore_vdsr.safetensors``.
4. **Inference** (:func:`apply_throughplane`): the LR volume is cubic-interpolated along ``axis``
   (×``scale``), the network runs on every plane of the two families containing ``axis`` (slice axis
   as rows), and the two volumes are averaged (SMORE's combination). Outputs are clipped to the LR
   volume's range, as sciSR does for NIfTI (baselines alike).
5. **Output**: ``OUT/smore_x{s}.nii.gz`` float32 with ``A_out = A_lr @ S``, ``S[a,a] = 1/s``,
   ``S[a,3] = (1/s - 1)/2`` on the slice axis ``a`` only: the voxel size along the slice axis is
   divided by ``s`` and the origin moves by ``(1/s - 1)/2`` LR voxel along it, so the field of view is
   kept (for a simulated volume ``A_out`` equals the HR affine). sform and qform carry it, codes kept.
6. **Scores** (simulated only): PSNR, SSIM, RMSE, MAE inside the brain mask (``sciSR.metrics``) for
   nearest (slice replication), linear and cubic interpolation along the slice axis, each single
   orientation and the averaged network output; ``OUT/metrics.csv``, ``OUT/metrics.md``,
   ``OUT/summary.json``.

Usage:
    python recipes/mri/throughplane.py --config recipes/mri/config.toml --out runs/mri_tp
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
    markdown_table,
    refine_affine,
    resolve,
    score,
    write_nifti,
)

import sciSR


def thick_slices(hr: np.ndarray, axis: int, scale: int, thickness: float) -> np.ndarray:
    """Simulated thick-slice acquisition: ``hr`` reduced along ``axis`` by the slice profile.

    Args:
        hr: Volume whose length along ``axis`` is a multiple of ``scale``.
        axis: Voxel axis of the slices (0, 1 or 2).
        scale: Slice spacing in HR voxels.
        thickness: Slice thickness in HR voxels (``gap = scale - thickness``).

    Shape:
        ``(I, J, K) -> (I, J, K/s)`` for ``axis=2``.
    """
    import torch

    v = np.transpose(np.moveaxis(hr, axis, 0), (2, 0, 1))  # (Q, K, P): the slice axis as rows
    t = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))[:, None]
    lr = sciSR.train.degrade(t, scale, "slice", axis=-2, thickness=thickness)[:, 0].numpy()
    return np.moveaxis(np.transpose(lr, (1, 2, 0)), 0, axis)


def upsample_rows(x: np.ndarray, scale: int, mode: str = "cubic") -> np.ndarray:
    """1-D interpolation of the rows axis by ``scale`` on the cell-centred grid (``align_corners=False``).

    ``mode``: ``"nearest"`` (each LR row repeated), ``"linear"`` or ``"cubic"`` (Keys, ``a = -0.75``,
    torch's bicubic with the column axis at scale 1, which leaves the columns untouched).

    Shape:
        ``(N, h, W) -> (N, s·h, W)``.
    """
    import torch
    import torch.nn.functional as F

    if mode == "nearest":
        return np.repeat(x, scale, axis=-2)
    torch_mode = {"linear": "bilinear", "cubic": "bicubic"}.get(mode)
    if torch_mode is None:
        raise ValueError(f"interpolation mode {mode!r}: choose nearest, linear or cubic")
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[:, None]
    size = (scale * x.shape[-2], x.shape[-1])
    return F.interpolate(t, size=size, mode=torch_mode, align_corners=False)[:, 0].numpy()


def make_pairs(
    lr_vol: np.ndarray, axis: int, scale: int, thickness: float, mode: str = "cubic"
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Self-supervised (input, target) pairs from the in-plane slices of a thick-slice volume.

    Each slice perpendicular to ``axis`` (size ``P × Q``) gives two targets, the slice and its
    transpose, cropped to a multiple of ``scale`` along their rows; each input is the target
    degraded along its rows by the slice profile (:func:`sciSR.train.degrade` ``"slice"``, ``axis=-2``)
    and interpolated back along its rows (:func:`upsample_rows`). The columns are never degraded.

    Returns:
        ``(inputs, targets)``, float32 2-D arrays of equal shape per pair.

    Shape:
        ``(I, J, K)`` with ``axis=2`` ``-> 2K`` pairs of ``(I', J)`` and ``(J', I)``.
    """
    import torch

    planes = np.moveaxis(lr_vol, axis, 0)  # (n, P, Q)
    inputs, targets = [], []
    for orient in (planes, np.swapaxes(planes, 1, 2)):
        hr = orient[:, : orient.shape[1] - orient.shape[1] % scale]
        t = torch.from_numpy(np.ascontiguousarray(hr, dtype=np.float32))[:, None]
        lr = sciSR.train.degrade(t, scale, "slice", axis=-2, thickness=thickness)[:, 0].numpy()
        up = upsample_rows(lr, scale, mode)
        inputs.extend(np.ascontiguousarray(a) for a in up)
        targets.extend(np.ascontiguousarray(a, dtype=np.float32) for a in hr)
    return inputs, targets


def _run_net(net: Any, planes: np.ndarray, batch: int) -> np.ndarray:
    """``net`` on a stack of 2-D planes, ``batch`` at a time, without gradients.

    Shape:
        ``(N, H, W) -> (N, H, W)``.
    """
    import torch

    net.eval()
    out = np.empty_like(planes, dtype=np.float32)
    with torch.inference_mode():
        for a in range(0, len(planes), batch):
            x = torch.from_numpy(np.ascontiguousarray(planes[a : a + batch], dtype=np.float32))[:, None]
            out[a : a + batch] = net(x)[:, 0].float().numpy()
    return out


def apply_throughplane(
    net: Any, lr_vol: np.ndarray, axis: int, scale: int, mode: str = "cubic", batch: int = 8
) -> dict[str, np.ndarray]:
    """The network along the slice axis in both plane families containing it, and their mean.

    With the slice axis moved first (``(k, P, Q)``): family ``"planes_q"`` holds the ``Q`` planes
    ``(k, P)`` and family ``"planes_p"`` the ``P`` planes ``(k, Q)``; each plane is interpolated along
    ``k`` (:func:`upsample_rows`) and passed through ``net`` with ``k`` as its rows, exactly as the
    training pairs were laid out.

    Returns:
        ``{"planes_q": ..., "planes_p": ..., "mean": ...}``, volumes with ``axis`` ×``scale``.

    Shape:
        ``(I, J, K) -> (I, J, s·K)`` for ``axis=2``.
    """
    v = np.moveaxis(lr_vol, axis, 0)  # (k, P, Q)
    a = np.transpose(v, (2, 0, 1))  # (Q, k, P)
    ya = _run_net(net, upsample_rows(a, scale, mode), batch)  # (Q, K, P)
    b = np.transpose(v, (1, 0, 2))  # (P, k, Q)
    yb = _run_net(net, upsample_rows(b, scale, mode), batch)  # (P, K, Q)
    vol_a = np.transpose(ya, (1, 2, 0))  # (K, P, Q)
    vol_b = np.transpose(yb, (1, 0, 2))
    out = {"planes_q": vol_a, "planes_p": vol_b, "mean": 0.5 * (vol_a + vol_b)}
    return {k: np.moveaxis(o, 0, axis) for k, o in out.items()}


def interpolate_axis(lr_vol: np.ndarray, axis: int, scale: int, mode: str) -> np.ndarray:
    """Baseline: 1-D interpolation of ``lr_vol`` along ``axis`` only (:func:`upsample_rows`).

    Shape:
        ``(I, J, K) -> (I, J, s·K)`` for ``axis=2``.
    """
    v = np.moveaxis(lr_vol, axis, 0)  # (k, P, Q)
    y = upsample_rows(np.transpose(v, (2, 0, 1)), scale, mode)  # (Q, K, P)
    return np.moveaxis(np.transpose(y, (1, 2, 0)), 0, axis)


def train_network(
    inputs: list[np.ndarray], targets: list[np.ndarray], cfg: dict[str, Any], out: Path | None, source: str
) -> Any:
    """``sciSR.train`` of a scale-1 VDSR on the (normalized) pairs; no rotation augmentation.

    Returns:
        The trained network (EMA weights when ``ema`` > 0).
    """
    import torch

    from sciSR.train.datasets import TrainingData

    net_cfg = cfg.get("network", {})
    tr = dict(cfg.get("train", {}))
    torch.manual_seed(int(tr.get("seed", 0)))
    net = sciSR.create_model(
        "vdsr",
        scale=1,
        in_channels=1,
        pretrained=False,
        depth=int(net_cfg.get("depth", 8)),
        n_feats=int(net_cfg.get("n_feats", 32)),
    )
    n_val = int(tr.pop("val_planes", 0))
    td = TrainingData(
        train=targets[: len(targets) - n_val] if n_val else targets,
        val=targets[len(targets) - n_val :] if n_val else [],
        train_lr=inputs[: len(inputs) - n_val] if n_val else inputs,
        val_lr=inputs[len(inputs) - n_val :] if n_val else None,
        norm={"kind": "none", "fixed": False, "params": {}},
        source=source,
        channels=1,
    )
    steps = int(tr.pop("steps", 200))
    return sciSR.train(
        net,
        td,
        scale=1,
        steps=steps,
        out=out,
        augment=False,
        progress=False,
        metadata={"scisr_recipe": "recipes/mri/throughplane.py (SMORE-style self-supervision)"},
        **tr,
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the recipe; returns the summary written to ``OUT/summary.json``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=Path(__file__).with_name("config.toml"))
    ap.add_argument("--out", type=Path, default=Path("runs/mri_throughplane"))
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    base = args.config.resolve().parent
    data, tp = cfg.get("data", {}), cfg.get("throughplane", {})
    scale = int(tp.get("scale", 2))
    axis = int(tp.get("axis", 2))
    if axis not in (0, 1, 2) or scale < 2:
        raise SystemExit(
            f"throughplane: axis must be 0, 1 or 2 and scale ≥ 2, got axis={axis}, scale={scale}"
        )
    thickness = float(tp.get("thickness", scale - float(tp.get("gap", 0.0))))
    if "gap" in tp and abs(thickness + float(tp["gap"]) - scale) > 1e-9:
        raise SystemExit(
            f"throughplane: thickness {thickness:g} + gap {tp['gap']} must equal the slice spacing, "
            f"scale {scale}; give only one of them"
        )
    if not thickness > 0:
        raise SystemExit(f"throughplane: slice thickness must be positive, got {thickness:g}")
    mode = str(tp.get("interpolation", "cubic"))
    simulate = bool(tp.get("simulate", True))
    threads = cfg.get("train", {}).get("threads")
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    out_dir = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    src = resolve(str(data.get("volume", "sample:mni152_t1_slab.nii.gz")), base)
    vol, img = load_volume(src, data.get("crop"))
    summary: dict[str, Any] = {
        "volume": str(src),
        "scale": scale,
        "axis": axis,
        "thickness": thickness,
        "gap": scale - thickness,
        "simulate": simulate,
    }
    if simulate:
        hr, hr_img = crop_to_multiple(vol, img, scale, (axis,))
        lr = thick_slices(hr, axis, scale, thickness)
        lr_affine = hr_img.affine @ coarsen_matrix(scale, (axis,))
        write_nifti(lr, hr_img, lr_affine, out_dir / "lr.nii.gz", f"thick slices x{scale} axis {axis}")
        like = hr_img
    else:
        hr, lr, lr_affine, like = None, vol, img.affine, img
    summary["lr_shape"] = list(lr.shape)

    nz = lr[lr > 0]
    norm = float(np.percentile(nz, 99)) if nz.size else 1.0
    lo, hi = float(lr.min()), float(lr.max())
    inputs, targets = make_pairs(lr / norm, axis, scale, thickness, mode)
    summary["pairs"] = len(inputs)
    t1 = time.time()
    net = train_network(
        inputs, targets, cfg, out_dir / "smore_vdsr.safetensors", f"{src.name} in-plane slices"
    )
    summary["train_seconds"] = round(time.time() - t1, 1)
    t2 = time.time()
    batch = int(tp.get("batch", 8))
    res = {
        k: np.clip(v * norm, lo, hi)
        for k, v in apply_throughplane(net, lr / norm, axis, scale, mode, batch).items()
    }
    summary["inference_seconds"] = round(time.time() - t2, 1)
    out_affine = refine_affine(lr_affine, scale, (axis,))
    out_path = write_nifti(
        res["mean"],
        like,
        out_affine,
        out_dir / f"smore_x{scale}.nii.gz",
        f"sciSR SMORE-style x{scale} axis {axis}",
    )
    summary["output"] = str(out_path)
    summary["output_shape"] = list(res["mean"].shape)
    summary["output_affine"] = out_affine.tolist()

    if simulate:
        mask = brain_mask(hr, str(data.get("mask", "auto")), base, crop=data.get("crop"))
        if mask.shape != hr.shape:  # pragma: no cover - crop_to_multiple keeps shapes in step
            raise SystemExit("mask and volume shapes differ")
        planes = tuple(a for a in range(3) if a != axis)
        methods = {
            m: np.clip(interpolate_axis(lr, axis, scale, m), lo, hi) for m in ("nearest", "linear", "cubic")
        }
        methods["smore (one family: planes_q)"] = res["planes_q"]
        methods["smore (one family: planes_p)"] = res["planes_p"]
        methods["smore (mean of both)"] = res["mean"]
        rows = {name: score(pred, hr, mask, planes) for name, pred in methods.items()}
        summary["metrics"] = rows
        summary["mask_voxels"] = int(mask.sum())
        summary["hr_affine_equals_output"] = bool(np.allclose(out_affine, like.affine))
        cap = (
            f"Through-plane ×{scale} (axis {axis}, thickness {thickness:g}, gap {scale - thickness:g} "
            f"HR voxels), {src.name}, inside the brain mask ({int(mask.sum())} voxels); "
            f"SSIM on the planes of axes {planes}."
        )
        (out_dir / "metrics.md").write_text(markdown_table(rows, cap))
        with open(out_dir / "metrics.csv", "w") as f:
            names = list(next(iter(rows.values())))
            f.write("method," + ",".join(names) + "\n")
            for m, vals in rows.items():
                f.write(f'"{m}",' + ",".join(f"{vals[n]:.6g}" for n in names) + "\n")
    summary["seconds"] = round(time.time() - t0, 1)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    s = main()
    for k, v in s.get("metrics", {}).items():
        print(f"{k:32s} " + "  ".join(f"{n} {x:.4f}" for n, x in v.items()))
    print(f"wrote {s['output']} ({s['seconds']} s)")
