"""Helpers shared by the MRI recipes (``inplane.py``, ``throughplane.py``): config, volumes, masks, geometry.

Public sciSR API only (``sciSR.data.sample_path``) plus nibabel for reading and writing NIfTI. The
recipes import this file by adding ``recipes/mri`` to ``sys.path``.

Geometry (DESIGN §4, cell-centred voxels): reducing voxel axis ``a`` by an integer ``s`` merges
voxels ``s·i … s·i + s - 1`` into LR voxel ``i`` whose centre is at HR index ``s·i + (s - 1)/2``,
so ``A_lr = A_hr @ C`` with ``C[a, a] = s`` and ``C[a, 3] = (s - 1)/2``. Refining axis ``a`` by
``s`` is the inverse: ``A_new = A @ S`` with ``S[a, a] = 1/s`` and ``S[a, 3] = (1/s - 1)/2``
(``S = C⁻¹``), which keeps the field of view: the centre of an old voxel is the mean of the centres
of its ``s`` new voxels, and the outer faces stay where they were.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluate"))

from recipe_tools import load_config as load_config  # re-exported: shared by the domain recipes
from recipe_tools import resolve as _resolve


def resolve(spec: str, base: Path) -> Path:
    """:func:`recipe_tools.resolve` (``sample:NAME``, ``~``, relative to ``base``), and the file must exist.

    Raises:
        SystemExit: The file does not exist.
    """
    p = _resolve(spec, base)
    if not p.exists():
        raise SystemExit(f"{p} not found; fix the path in the config")
    return p


def load_volume(path: Path, crop: dict[str, list[int]] | None = None) -> tuple[np.ndarray, Any]:
    """A 3-D NIfTI volume as float32 and its nibabel image, optionally cut to voxel index ranges.

    ``crop`` maps ``"i"``/``"j"``/``"k"`` to ``[start, stop]``; the affine of the returned image is
    shifted so that every kept voxel stays at the same world position.

    Raises:
        SystemExit: Not a 3-D volume or a bad crop key.

    Shape:
        ``-> (I, J, K)``.
    """
    import nibabel as nib

    img = nib.load(str(path))
    if len(img.shape) != 3:
        raise SystemExit(f"{path} has shape {img.shape}; the MRI recipes take one 3-D volume")
    idx = [slice(None)] * 3
    for key, (a, b) in (crop or {}).items():
        if key not in "ijk" or len(key) != 1:
            raise SystemExit(f"crop key {key!r} must be one of 'i', 'j', 'k'")
        idx["ijk".index(key)] = slice(int(a), int(b))
    img = img.slicer[tuple(idx)]
    return np.asarray(img.get_fdata(dtype=np.float32)), img


def crop_to_multiple(vol: np.ndarray, img: Any, scale: int, axes: tuple[int, ...]) -> tuple[np.ndarray, Any]:
    """Drop the last voxels of ``axes`` so their lengths are multiples of ``scale`` (affine unchanged).

    Shape:
        ``(I, J, K) -> (I', J', K')``.
    """
    idx = [slice(None)] * 3
    for ax in axes:
        idx[ax] = slice(0, vol.shape[ax] - vol.shape[ax] % scale)
    return vol[tuple(idx)], img.slicer[tuple(idx)]


def brain_mask(
    vol: np.ndarray,
    spec: str,
    base: Path,
    fraction: float = 0.1,
    crop: dict[str, list[int]] | None = None,
) -> np.ndarray:
    """Voxels to score: ``spec`` ``"auto"`` (intensity above ``fraction`` × the 99th percentile of the
    non-zero voxels, holes filled) or a NIfTI path (non-zero voxels on the grid of the volume ``vol``
    was cut from: the file is cut by ``crop`` like the volume, then to ``vol``'s shape, which drops
    the last voxels removed by :func:`crop_to_multiple`).

    Raises:
        SystemExit: A mask file of another shape, or an empty mask.

    Shape:
        ``(I, J, K) -> (I, J, K)`` bool.
    """
    from scipy import ndimage

    if spec == "auto":
        nz = vol[vol > 0]
        thr = fraction * float(np.percentile(nz, 99)) if nz.size else 0.0
        mask = vol > thr
        mask = ndimage.binary_fill_holes(mask)
    else:
        m, _ = load_volume(resolve(spec, base), crop)
        m = m[tuple(slice(0, n) for n in vol.shape)]
        if m.shape != vol.shape:
            raise SystemExit(
                f"mask {spec} has shape {m.shape}, the volume {vol.shape}; use a mask on the volume's grid"
            )
        mask = m > 0
    if not mask.any():
        raise SystemExit(f"the brain mask ({spec}) is empty; check the mask file or the threshold")
    return np.asarray(mask, dtype=bool)


def coarsen_matrix(scale: int, axes: tuple[int, ...]) -> np.ndarray:
    """``C`` of the module notes: ``A_lr = A_hr @ C`` for a reduction by ``scale`` along ``axes``.

    Shape:
        ``-> (4, 4)``.
    """
    c = np.eye(4)
    for ax in axes:
        c[ax, ax] = float(scale)
        c[ax, 3] = (scale - 1) / 2.0
    return c


def refine_affine(affine: np.ndarray, scale: int, axes: tuple[int, ...]) -> np.ndarray:
    """``A @ S``: voxel size along ``axes`` divided by ``scale``, origin moved by ``(1/s - 1)/2`` voxel.

    In world terms, with ``a`` the refined axis and ``v_a`` its column of ``A``: the new column is
    ``v_a / s`` and the new origin is ``o + (1/s - 1)/2 · v_a`` (half a new voxel inside the old
    first voxel's outer face).

    Shape:
        ``(4, 4) -> (4, 4)``.
    """
    s = np.eye(4)
    for ax in axes:
        s[ax, ax] = 1.0 / scale
        s[ax, 3] = (1.0 / scale - 1.0) / 2.0
    return np.asarray(affine, dtype=np.float64) @ s


def write_nifti(data: np.ndarray, like: Any, affine: np.ndarray, path: Path, descrip: str) -> Path:
    """Write ``data`` as float32 NIfTI with ``affine`` as sform and qform (codes of ``like`` kept).

    The header is a copy of ``like``'s with the data type set to float32, ``scl_slope``/``scl_inter``
    reset (no integer packing), zooms from ``affine``; the file is written beside ``path`` and renamed
    into place (no partial file on failure).

    Shape:
        ``data``: ``(I, J, K)``.
    """
    import nibabel as nib

    hdr = like.header.copy()
    s_code = int(hdr["sform_code"]) or 2
    q_code = int(hdr["qform_code"]) or 1
    img = nib.Nifti1Image(np.asarray(data, dtype=np.float32), affine, header=hdr)
    img.set_sform(affine, code=s_code)
    img.set_qform(affine, code=q_code)
    img.header.set_data_dtype(np.float32)
    img.header.set_slope_inter(1.0, 0.0)
    img.header["descrip"] = descrip[:79].encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".nii.gz", dir=path.parent, prefix=".tmp_")
    os.close(fd)
    try:
        nib.save(img, tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def score(
    pred: np.ndarray, truth: np.ndarray, mask: np.ndarray, plane_axes: tuple[int, int]
) -> dict[str, float]:
    """PSNR, SSIM, RMSE and MAE of ``pred`` against ``truth`` inside ``mask`` (``sciSR.metrics``).

    PSNR uses the truth's range inside the mask; SSIM is computed on the 2-D planes spanned by
    ``plane_axes`` (Gaussian window 11, σ = 1.5; windows that leave the mask dropped) and pooled.

    Shape:
        ``(I, J, K)`` each.
    """
    from sciSR import metrics as M

    other = next(a for a in range(3) if a not in plane_axes)
    perm = (other, *plane_axes)
    p, t, m = (np.transpose(np.asarray(v, dtype=np.float64), perm) for v in (pred, truth, mask))
    m = m.astype(bool)
    return {
        "psnr": float(M.psnr(p, t, mask=m)),
        "ssim": float(M.ssim(p, t, mask=m, stack=True)),
        "rmse": float(M.rmse(p, t, mask=m)),
        "mae": float(M.mae(p, t, mask=m)),
    }


def markdown_table(rows: dict[str, dict[str, float]], caption: str) -> str:
    """``rows`` (method → metric → value) as a Markdown table under ``caption``."""
    names = list(next(iter(rows.values())))
    lines = [caption, "", "| method | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for method, vals in rows.items():
        lines.append(f"| {method} | " + " | ".join(f"{vals[n]:.4f}" for n in names) + " |")
    return "\n".join(lines) + "\n"
